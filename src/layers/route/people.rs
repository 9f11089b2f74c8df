//! The commands about people (`core::commands::UserCommand`): private messages, away, what a
//! user tells about itself, who is who (`/whois`, IRC's `WHO` and `WHOWAS`), user modes, the
//! census. The server operators' commands are in `staff.rs`.
//!
//! Profiles are this instance's (`core::users`); a user of another instance is known only by
//! what the shared directory holds: its nick and its instance.

use std::sync::Arc;

use tower::BoxError;

use super::Ctx;
use super::moderation::{no_such_nick, other_instance};
use crate::core::message::check_text;
use crate::core::{
    ChatError, Direct, DirectKind, Event, Nick, Outcome, Presence, PresenceKind, Reply, RoomName,
    Session, UserCommand,
};
use crate::layers::Inner;

/// The longest user name or real name kept.
const MAX_PROFILE_CHARS: usize = 64;

impl<S: Inner> Ctx<'_, S> {
    pub(super) async fn user_command(
        &mut self,
        session: &Arc<Session>,
        command: UserCommand,
    ) -> Result<Reply, BoxError> {
        match command {
            UserCommand::Direct { to, text, notice } => {
                self.direct(session, to, text, notice).await
            }
            UserCommand::Away(text) => {
                let away = text.filter(|t| !t.trim().is_empty());
                if let Some(text) = &away {
                    check_text(text, self.shared.max_message_chars)?;
                }
                self.hub()
                    .users()
                    .update(session.id, |p| p.away = away.clone());
                self.tell_rooms(session, PresenceKind::Away(away.clone()))
                    .await?;
                let shown = match &away {
                    Some(text) => format!("you are away: {text}"),
                    None => "you are back".to_string(),
                };
                Ok(Reply::notice(shown).with(Outcome::Away(away)))
            }
            UserCommand::Profile { user, realname } => {
                let reply = self.profile(session, user, realname.clone())?;
                if let Some(realname) = realname {
                    self.tell_rooms(session, PresenceKind::Realname(realname))
                        .await?;
                }
                Ok(reply)
            }
            UserCommand::Whois(nick) => self.whois(session, nick).await,
            UserCommand::Who(mask) => self.who(session, mask).await,
            UserCommand::Whowas { nick, count } => {
                let was = self.hub().users().whowas(&nick, count.max(1));
                let shown = match was.first() {
                    Some(last) => {
                        format!("{nick} was {}!{}: {}", last.nick, last.user, last.realname)
                    }
                    None => format!("no record of {nick} on this instance"),
                };
                Ok(Reply::notice(shown).with(Outcome::Whowas(was)))
            }
            UserCommand::UserMode(changes) => self.user_mode(session, &changes),
            UserCommand::Oper { name, password } => self.oper(session, &name, &password),
            UserCommand::Kill { nick, reason } => self.kill(session, nick, reason).await,
            UserCommand::Wallops(text) => self.wallops(session, text),
            UserCommand::Census => self.census().await,
            UserCommand::Monitor(op) => self.monitor(session, op).await,
            UserCommand::QuitWith(reason) => {
                let reason = Some(reason).filter(|r| !r.trim().is_empty());
                self.hub()
                    .users()
                    .update(session.id, |p| p.quit_reason = reason);
                Ok(Reply {
                    close: true,
                    ..Reply::notice("goodbye")
                })
            }
        }
    }

    /// Tells each of `session`'s rooms about a change of its own (away, real name).
    async fn tell_rooms(&mut self, session: &Session, kind: PresenceKind) -> Result<(), BoxError> {
        let rooms = session.state().rooms.clone();
        for room in rooms {
            let presence = Presence::new(room, session.nick(), kind.clone(), Some(session.id));
            self.announce_change(session, presence).await?;
        }
        Ok(())
    }

    /// A member that joins `room` while away: the room is told it is away.
    pub(super) async fn joined_away(
        &mut self,
        session: &Session,
        room: &RoomName,
    ) -> Result<(), BoxError> {
        let away = self.hub().users().get(session.id).and_then(|p| p.away);
        if let Some(away) = away {
            let kind = PresenceKind::Away(Some(away));
            let presence = Presence::new(room.clone(), session.nick(), kind, Some(session.id));
            self.announce_change(session, presence).await?;
        }
        Ok(())
    }

    /// A nick changed from `old` (the rooms were told): its ranks and invitations follow it, and
    /// the old nick is remembered for `WHOWAS`.
    pub(super) fn renamed(&self, session: &Session, old: &Nick, new: &Nick) {
        self.hub().channels().renamed(&old.key(), &new.key());
        self.hub().users().renamed(session.id, old);
        if old.key() != new.key() {
            self.tell_watchers(old, false);
            self.tell_watchers(new, true);
        }
    }

    async fn direct(
        &mut self,
        session: &Session,
        to: Nick,
        text: String,
        notice: bool,
    ) -> Result<Reply, BoxError> {
        check_text(&text, self.shared.max_message_chars)?;
        let Some(target) = self.hub().sessions().find(&to) else {
            return Err(match self.find_user(&to).await? {
                Some(user) => other_instance(&user.nick),
                None => no_such_nick(to.as_str()),
            }
            .into());
        };
        let to = target.nick();
        let kind = match notice {
            true => DirectKind::Notice(text.clone()),
            false => DirectKind::Message(text.clone()),
        };
        let users = self.hub().users();
        let mut direct = Direct::new(session.nick(), to.clone(), kind);
        direct.bot = users.get(session.id).is_some_and(|p| p.modes.bot);
        let direct = Arc::new(direct);
        let _ = target.deliver(Event::Direct(direct.clone()));
        users.update(session.id, |p| p.active = std::time::Instant::now());
        // A notice is never answered automatically, not even by the away message.
        let away = users
            .get(target.id)
            .and_then(|p| p.away)
            .filter(|_| !notice);
        let mut reply = Reply::notice(format!("to {to}: {text}"));
        if let Some(away) = &away {
            reply
                .events
                .push(Event::notice(format!("{to} is away: {away}")));
        }
        Ok(reply.with(Outcome::Direct { direct, away }))
    }

    fn profile(
        &self,
        session: &Session,
        user: Option<String>,
        realname: Option<String>,
    ) -> Result<Reply, BoxError> {
        let user = user.map(|u| {
            let kept = u
                .chars()
                .filter(|c| c.is_ascii_graphic() && *c != '@' && *c != '!');
            kept.take(MAX_PROFILE_CHARS).collect::<String>()
        });
        let realname = realname.map(|r| r.chars().take(MAX_PROFILE_CHARS).collect::<String>());
        if let Some(realname) = &realname {
            check_text(realname, MAX_PROFILE_CHARS)?;
        }
        self.hub().users().update(session.id, |p| {
            if let Some(user) = user.filter(|u| !u.is_empty()) {
                p.user = user;
            }
            if let Some(realname) = &realname {
                p.realname = realname.clone().into();
            }
        });
        Ok(match realname {
            Some(realname) => Reply::notice(format!("your real name is now {realname}")),
            None => Reply::default(),
        })
    }

    fn user_mode(&self, session: &Session, changes: &str) -> Result<Reply, BoxError> {
        let mut on = true;
        let mut changed = String::new();
        let mut unknown = None;
        let modes = self.hub().users().update(session.id, |p| {
            for letter in changes.chars() {
                let slot = match letter {
                    '+' | '-' => {
                        on = letter == '+';
                        continue;
                    }
                    'i' => &mut p.modes.invisible,
                    'w' => &mut p.modes.wallops,
                    'B' => &mut p.modes.bot,
                    'o' if !on => &mut p.modes.oper, // only /oper sets it
                    'o' => continue,
                    other => {
                        unknown = Some(other);
                        continue;
                    }
                };
                if std::mem::replace(slot, on) != on {
                    changed.push(if on { '+' } else { '-' });
                    changed.push(letter);
                }
            }
            p.modes
        });
        let modes = modes.unwrap_or_default();
        if let (Some(letter), true) = (unknown, changed.is_empty()) {
            return Err(
                ChatError::invalid(format!("{letter} is not a user mode chatd has")).into(),
            );
        }
        let shown = format!("your modes are {}", modes.letters());
        Ok(Reply::notice(shown).with(Outcome::UserModes { modes, changed }))
    }

    async fn census(&mut self) -> Result<Reply, BoxError> {
        let here = self.hub().users().census();
        let everywhere = match self.directory().users().await {
            Ok(Some(n)) => n,
            Ok(None) | Err(_) => here.users,
        };
        let rooms = self
            .directory()
            .rooms()
            .await
            .map_err(super::directory_down)?;
        let rooms = rooms.iter().filter(|(_, n)| *n > 0).count();
        let text = format!(
            "{everywhere} users on all instances, {} here; {rooms} rooms",
            here.users
        );
        Ok(Reply::notice(text).with(Outcome::Census {
            here,
            everywhere,
            rooms,
        }))
    }
}
