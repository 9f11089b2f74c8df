//! Server operators: `/oper NAME PASSWORD` (against the route layer's `opers` option), then
//! `/kill` and `/wallops`, which act on the users of this instance.
//!
//! An operator is a user mode (`+o`, `core::users::UserModes`), set by a successful `/oper`
//! and dropped with `-o` or at the end of the session. Passwords are compared in constant time
//! (the time taken does not tell how much of a guess was right) and never logged.

use std::sync::Arc;

use tower::BoxError;

use super::Ctx;
use super::moderation::{no_such_nick, other_instance};
use crate::core::message::check_text;
use crate::core::{ChatError, Direct, DirectKind, Event, Nick, Outcome, Refusal, Reply, Session};
use crate::layers::Inner;

impl<S: Inner> Ctx<'_, S> {
    pub(super) fn oper(
        &self,
        session: &Session,
        name: &str,
        password: &str,
    ) -> Result<Reply, BoxError> {
        let known = self.shared.opers.iter().any(|oper| {
            // Both compared whatever the first gives, so that timing tells nothing either.
            let name_ok = same(oper.name.as_bytes(), name.as_bytes());
            let password_ok = same(oper.password.as_bytes(), password.as_bytes());
            name_ok & password_ok
        });
        if !known {
            tracing::info!(session = %session.id, "refused /oper");
            let text = "wrong operator name or password";
            return Err(ChatError::forbidden(text)
                .because(Refusal::BadPassword)
                .into());
        }
        self.hub()
            .users()
            .update(session.id, |p| p.modes.oper = true);
        tracing::info!(session = %session.id, nick = %session.nick(), "server operator");
        Ok(Reply::notice("you are now a server operator").with(Outcome::Oper))
    }

    fn require_oper(&self, session: &Session) -> Result<(), ChatError> {
        let oper = self
            .hub()
            .users()
            .get(session.id)
            .is_some_and(|p| p.modes.oper);
        match oper {
            true => Ok(()),
            false => {
                let text = "only server operators may do this (/oper first)";
                Err(ChatError::forbidden(text).because(Refusal::NoPrivileges))
            }
        }
    }

    pub(super) async fn kill(
        &mut self,
        session: &Session,
        nick: Nick,
        reason: String,
    ) -> Result<Reply, BoxError> {
        self.require_oper(session)?;
        let Some(target) = self.hub().sessions().find(&nick) else {
            return Err(match self.find_user(&nick).await? {
                Some(user) => other_instance(&user.nick),
                None => no_such_nick(nick.as_str()),
            }
            .into());
        };
        let (by, killed) = (session.nick(), target.nick());
        let why = format!("killed by {by}: {reason}");
        self.hub()
            .users()
            .update(target.id, |p| p.quit_reason = Some(why.clone()));
        // Its adapter shows the reason and closes; the disconnect tells its rooms.
        target.disconnect(why);
        tracing::info!(%by, %killed, "killed");
        Ok(Reply::notice(format!("you killed {killed}")))
    }

    pub(super) fn wallops(&self, session: &Session, text: String) -> Result<Reply, BoxError> {
        self.require_oper(session)?;
        check_text(&text, self.shared.max_message_chars)?;
        let from = session.nick();
        let mut readers = self.hub().users().with_modes(|m| m.wallops);
        readers.push(session.id); // the sender sees what it sent
        readers.sort_unstable();
        readers.dedup();
        for id in readers {
            if let Some(reader) = self.hub().sessions().get(id) {
                let kind = DirectKind::Wallops(text.clone());
                let direct = Direct::new(from.clone(), reader.nick(), kind);
                let _ = reader.deliver(Event::Direct(Arc::new(direct)));
            }
        }
        Ok(Reply::default())
    }
}

/// Whether `a` and `b` are equal, in a time that depends on their lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_compare_whole() {
        assert!(super::same(b"sesame", b"sesame"));
        assert!(!super::same(b"sesame", b"sesamo"));
        assert!(!super::same(b"sesame", b"sesam"));
        assert!(!super::same(b"", b"x"));
    }
}
