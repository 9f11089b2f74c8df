//! Commands about people: `PRIVMSG`/`NOTICE` to a nick, `AWAY`, `WHOIS`, `WHO` (with IRCv3's
//! WHOX fields), `WHOWAS`, `USERHOST`, `ISON`, `LUSERS`.
//!
//! Each is a core command (`core::UserCommand`), the same one `/msg`, `/away` and `/whois`
//! are on the other protocols; this file only writes the answer in IRC's numerics. A user of
//! another instance is known by nick and instance only: its user name is its nick, its real
//! name says where it is, and its server is its instance.

use bytes::Bytes;

use super::caps::Cap;
use super::connection::{Client, End};
use super::render;
use crate::core::ask::people::{CountUsers, SendDirect, SetAway, Whois};
use crate::core::{Nick, UserInfo};

impl Client {
    /// `PRIVMSG`/`NOTICE` to a nick: a private message, echoed with `echo-message`; `301` when
    /// the recipient is away (never for a notice, never an error for a notice).
    pub(super) async fn direct(
        &mut self,
        target: &str,
        text: &str,
        notice: bool,
    ) -> Result<Vec<Bytes>, End> {
        let Ok(to) = Nick::parse(target) else {
            return Ok(match notice {
                true => Vec::new(),
                false => vec![self.no_such_nick(target)],
            });
        };
        let text = render::inbound_text(text);
        let (direct, away) = match self.ask_lagged(SendDirect { to, text, notice }).await? {
            Ok(answer) => answer,
            Err(_) if notice => return Ok(Vec::new()),
            Err(e) => return Ok(vec![self.refusal(&e, target)]),
        };
        let mut out = Vec::new();
        if self.caps.has(Cap::ECHO) {
            out.push(render::direct(&direct, self.caps, self.server())); // what the recipient got
        }
        if let Some(away) = away {
            let line = self.numeric("301").param(direct.to.as_str());
            out.push(line.trailing(&away).bytes());
        }
        Ok(out)
    }

    pub(super) fn no_such_nick(&self, nick: &str) -> Bytes {
        self.numeric("401")
            .param(nick)
            .trailing("No such nick/channel")
            .bytes()
    }

    /// `AWAY [:message]`: `306` away, `305` back.
    pub(super) async fn away(&mut self, text: Option<&str>) -> Result<Vec<Bytes>, End> {
        let text = text.filter(|t| !t.is_empty()).map(str::to_string);
        Ok(match self.ask_lagged(SetAway(text)).await? {
            Ok(Some(_)) => vec![
                self.numeric("306")
                    .trailing("You have been marked as being away")
                    .bytes(),
            ],
            Ok(None) => vec![
                self.numeric("305")
                    .trailing("You are no longer marked as being away")
                    .bytes(),
            ],
            Err(e) => vec![self.notice(&e)],
        })
    }

    /// What is known of `nick`, or `None` (and the refusal) when nobody has it.
    async fn lookup(&mut self, nick: &str) -> Result<Option<UserInfo>, End> {
        let Ok(nick) = Nick::parse(nick) else {
            return Ok(None);
        };
        Ok(self.ask_lagged(Whois(nick)).await?.ok().map(|info| *info))
    }

    /// `WHOIS nick`: `311`, `319`, `312`, `313`, `301`, `317`, `318` (or `401` and `318`).
    pub(super) async fn whois(&mut self, nick: &str) -> Result<Vec<Bytes>, End> {
        let Some(info) = self.lookup(nick).await? else {
            return Ok(vec![
                self.no_such_nick(nick),
                self.numeric("318")
                    .param(nick)
                    .trailing("End of /WHOIS list")
                    .bytes(),
            ]);
        };
        let name = info.nick.as_str();
        let numeric = |code: &str| self.numeric(code).param(name);
        let mut out = vec![
            numeric("311")
                .param(info.user())
                .param(render::HOST)
                .param("*")
                .trailing(&info.realname())
                .bytes(),
        ];
        let all = self.caps.has(Cap::MULTI_PREFIX);
        let rooms: Vec<String> = info
            .rooms
            .iter()
            .map(|(room, rank)| format!("{}#{room}", rank.prefix(all)))
            .collect();
        if !rooms.is_empty() {
            out.push(numeric("319").trailing(&rooms.join(" ")).bytes());
        }
        out.push(
            numeric("312")
                .param(&self.server_of(&info))
                .trailing("chatd")
                .bytes(),
        );
        if let Some(profile) = &info.profile {
            if profile.modes.bot {
                out.push(numeric("335").trailing("is a bot").bytes());
            }
            if profile.modes.oper {
                out.push(numeric("313").trailing("is an IRC operator").bytes());
            }
            if let Some(away) = &profile.away {
                out.push(numeric("301").trailing(away).bytes());
            }
            let idle = profile.active.elapsed().as_secs().to_string();
            let signon = (profile.signon_ms / 1000).to_string();
            let line = numeric("317").param(&idle).param(&signon);
            out.push(line.trailing("seconds idle, signon time").bytes());
        }
        out.push(numeric("318").trailing("End of /WHOIS list").bytes());
        Ok(out)
    }

    /// The server a user is on: this one, or its instance.
    pub(super) fn server_of(&self, info: &UserInfo) -> String {
        match info.profile {
            Some(_) => self.server().to_string(),
            None => info.instance.clone(),
        }
    }

    /// `USERHOST nick...`: `nick=+user@host` (`-` when away, `*` after an operator's nick).
    pub(super) async fn userhost(&mut self, nicks: &[&str]) -> Result<Vec<Bytes>, End> {
        let mut found = Vec::new();
        for nick in nicks.iter().take(5) {
            if let Some(info) = self.lookup(nick).await? {
                let profile = info.profile.as_ref();
                let oper = if profile.is_some_and(|p| p.modes.oper) {
                    "*"
                } else {
                    ""
                };
                let away = if profile.is_some_and(|p| p.away.is_some()) {
                    "-"
                } else {
                    "+"
                };
                found.push(format!(
                    "{}{oper}={away}{}@{}",
                    info.nick,
                    info.user(),
                    render::HOST
                ));
            }
        }
        Ok(vec![self.numeric("302").trailing(&found.join(" ")).bytes()])
    }

    /// `ISON nick...`: the nicks that are connected.
    pub(super) async fn ison(&mut self, nicks: &[&str]) -> Result<Vec<Bytes>, End> {
        let mut found = Vec::new();
        for nick in nicks
            .iter()
            .flat_map(|n| n.split(' '))
            .filter(|n| !n.is_empty())
            .take(16)
        {
            if let Some(info) = self.lookup(nick).await? {
                found.push(info.nick.to_string());
            }
        }
        Ok(vec![self.numeric("303").trailing(&found.join(" ")).bytes()])
    }

    /// `LUSERS`: `251`, `252`, `254`, `255`, `265`, `266`.
    pub(super) async fn lusers(&mut self) -> Result<Vec<Bytes>, End> {
        let (here, everywhere, rooms) = match self.ask_lagged(CountUsers).await? {
            Ok(census) => census,
            Err(e) => return Ok(vec![self.notice(&e)]),
        };
        let visible = everywhere.saturating_sub(here.invisible);
        let n = |n: usize| n.to_string();
        let most_everywhere = here.most.max(everywhere);
        Ok(vec![
            self.numeric("251")
                .trailing(&format!(
                    "There are {visible} users and {} invisible on 1 servers",
                    here.invisible
                ))
                .bytes(),
            self.numeric("252")
                .param(&n(here.opers))
                .trailing("operator(s) online")
                .bytes(),
            self.numeric("254")
                .param(&n(rooms))
                .trailing("channels formed")
                .bytes(),
            self.numeric("255")
                .trailing(&format!("I have {} clients and 1 servers", here.users))
                .bytes(),
            self.numeric("265")
                .param(&n(here.users))
                .param(&n(here.most))
                .trailing(&format!(
                    "Current local users {}, max {}",
                    here.users, here.most
                ))
                .bytes(),
            self.numeric("266")
                .param(&n(everywhere))
                .param(&n(most_everywhere))
                .trailing(&format!(
                    "Current global users {everywhere}, max {most_everywhere}"
                ))
                .bytes(),
        ])
    }
}
