//! `WHO` (with IRCv3's WHOX fields) and `WHOWAS`: the core's answers about users, in IRC's
//! `352`/`354` and `314` lines.

use bytes::Bytes;

use super::caps::Cap;
use super::connection::{Client, End};
use super::render;
use crate::core::ask::people::{Who, Whowas};
use crate::core::{Departed, Nick, UserInfo};

/// WHOX's fields, in the order a reply lists them.
const WHOX_FIELDS: &str = "tcuihsnfdlaor";

impl Client {
    /// `WHO mask [%fields[,token]]`: `352` per user (`354` with WHOX fields), then `315`.
    pub(super) async fn who(&mut self, mask: &str, whox: Option<&str>) -> Result<Vec<Bytes>, End> {
        // A refusal (a bad mask) finds nobody: only the `315`.
        let found = self
            .ask_lagged(Who(mask.to_string()))
            .await?
            .unwrap_or_default();
        let mut out: Vec<Bytes> = found.iter().map(|info| self.who_line(info, whox)).collect();
        out.push(
            self.numeric("315")
                .param(mask)
                .trailing("End of WHO list")
                .bytes(),
        );
        Ok(out)
    }

    fn who_line(&self, info: &UserInfo, whox: Option<&str>) -> Bytes {
        let (channel, rank) = match info.rooms.first() {
            Some((room, rank)) => (format!("#{room}"), *rank),
            None => ("*".to_string(), Default::default()),
        };
        let profile = info.profile.as_ref();
        let mut flags = String::from(if profile.is_some_and(|p| p.away.is_some()) {
            "G"
        } else {
            "H"
        });
        if profile.is_some_and(|p| p.modes.oper) {
            flags.push('*');
        }
        if profile.is_some_and(|p| p.modes.bot) {
            flags.push('B');
        }
        flags.push_str(rank.prefix(self.caps.has(Cap::MULTI_PREFIX)));
        let server = self.server_of(info);
        let Some(fields) = whox else {
            let realname = format!("0 {}", info.realname());
            return self
                .numeric("352")
                .param(&channel)
                .param(info.user())
                .param(render::HOST)
                .param(&server)
                .param(info.nick.as_str())
                .param(&flags)
                .trailing(&realname)
                .bytes();
        };
        let (fields, token) = fields.split_once(',').unwrap_or((fields, ""));
        let idle = profile
            .map_or(0, |p| p.active.elapsed().as_secs())
            .to_string();
        let mut line = self.numeric("354");
        let wanted: Vec<char> = WHOX_FIELDS
            .chars()
            .filter(|c| fields.contains(*c))
            .collect();
        for (i, field) in wanted.iter().enumerate() {
            let value = match field {
                't' => token.to_string(),
                'c' => channel.clone(),
                'u' => info.user().to_string(),
                'i' => "255.255.255.255".to_string(), // chatd shows nobody's address
                'h' => render::HOST.to_string(),
                's' => server.clone(),
                'n' => info.nick.to_string(),
                'f' => flags.clone(),
                'd' => "0".to_string(),
                'l' => idle.clone(),
                'a' => "0".to_string(), // no accounts
                'o' => "n/a".to_string(),
                _ => info.realname(),
            };
            line = match (i + 1 == wanted.len(), *field == 'r') {
                (true, _) | (_, true) => line.trailing(&value),
                _ => line.param(&value),
            };
        }
        line.bytes()
    }

    /// `WHOWAS nick [count]`: `314` and `312` per departure, `406` for none, then `369`.
    pub(super) async fn whowas(
        &mut self,
        nick: &str,
        count: Option<&str>,
    ) -> Result<Vec<Bytes>, End> {
        let count = count.and_then(|c| c.parse::<i64>().ok()).filter(|c| *c > 0);
        let count = usize::try_from(count.unwrap_or(i64::MAX)).unwrap_or(usize::MAX);
        let mut was: Vec<Departed> = Vec::new();
        if let Ok(parsed) = Nick::parse(nick) {
            let asked = Whowas {
                nick: parsed,
                count,
            };
            was = self.ask_lagged(asked).await?.unwrap_or_default();
        }
        let mut out = Vec::new();
        for departed in &was {
            let numeric = |code: &str| self.numeric(code).param(departed.nick.as_str());
            out.push(
                numeric("314")
                    .param(&departed.user)
                    .param(render::HOST)
                    .param("*")
                    .trailing(&departed.realname)
                    .bytes(),
            );
            let when = crate::core::message::rfc3339(departed.at_ms);
            out.push(numeric("312").param(self.server()).trailing(&when).bytes());
        }
        if was.is_empty() {
            out.push(
                self.numeric("406")
                    .param(nick)
                    .trailing("There was no such nickname")
                    .bytes(),
            );
        }
        out.push(
            self.numeric("369")
                .param(nick)
                .trailing("End of WHOWAS")
                .bytes(),
        );
        Ok(out)
    }
}
