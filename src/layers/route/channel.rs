//! The rules of rooms, as the route layer applies them: who may join (bans, keys, limits,
//! invitations), who may talk (`+n`, `+m`), who operates a room, and the room commands
//! (`core::commands::RoomCommand`); the commands that change a room are in `moderation.rs`.
//!
//! The state is `core::channel`'s, per instance. Changes made here are announced to the room
//! as presence events (`Kicked`, `Topic`, `Mode`), which the bus carries to the other instances
//! like joins and leaves; there, [`Ctx::remote_presence`] delivers them and applies them to that
//! instance's state, and a member kicked on another instance is taken out of the room where it
//! is connected.

use std::sync::Arc;

use tower::BoxError;

use super::Ctx;
use super::guards::ReleaseIfUnused;
use crate::core::channels::Person;
use crate::core::users::HOST;
use crate::core::{
    Action, ChannelMode, ChatError, MessageKind, Nick, Outcome, Presence, PresenceKind, Reply,
    Request, Room, RoomCommand, RoomName, Session, modes,
};
use crate::layers::{Inner, call_inner};

impl<S: Inner> Ctx<'_, S> {
    pub(super) async fn room_command(
        &mut self,
        session: &Arc<Session>,
        command: RoomCommand,
    ) -> Result<Reply, BoxError> {
        match command {
            RoomCommand::JoinWithKey { room, key } => self.join(session, room, Some(&key)).await,
            RoomCommand::Part { room, reason } => {
                self.leave(session, Some(room), Some(reason)).await
            }
            RoomCommand::Notice { room, text } => {
                self.say(session, Some(room), text, MessageKind::Notice)
                    .await
            }
            RoomCommand::Topic { room, text } => self.topic(session, room, text).await,
            RoomCommand::Mode { room, args } => self.mode(session, room, args).await,
            RoomCommand::Kick { room, nick, reason } => {
                self.kick(session, room, nick, reason).await
            }
            RoomCommand::Invite { nick, room } => self.invite(session, nick, room).await,
            RoomCommand::Invitations => {
                let rooms = self.hub().channels().invitations(&session.nick().key());
                let shown: Vec<&str> = rooms.iter().map(RoomName::as_str).collect();
                let text = match shown.is_empty() {
                    true => "you are not invited anywhere".to_string(),
                    false => format!("you are invited to: {}", shown.join(", ")),
                };
                Ok(Reply::notice(text).with(Outcome::Invitations(rooms)))
            }
            RoomCommand::Names(room) => self.names(session, room).await,
        }
    }

    /// `session` as room rules see it: `nick!user@chatd` and its nick key.
    pub(super) fn person(&self, session: &Session) -> (String, String) {
        let nick = session.nick();
        let profile = self.hub().users().get(session.id);
        let user = profile
            .as_ref()
            .map_or(nick.as_str(), |p| p.user_or(nick.as_str()));
        (format!("{nick}!{user}@{HOST}"), nick.key())
    }

    /// Whether `session` may join `name` with `key` (the room's bans, key, limit, invitations);
    /// `Ok(true)` when the room has no member anywhere (as the directory says), so that the
    /// joiner will operate it.
    pub(super) async fn admit(
        &mut self,
        session: &Session,
        name: &RoomName,
        key: Option<&str>,
    ) -> Result<bool, BoxError> {
        // When the directory cannot say who is in the room on other instances, this one's
        // members bound a `+l` limit, and nobody becomes the room's operator on that guess: it
        // may have one elsewhere.
        let (members, known) = match self.directory().members(name).await {
            Ok(members) => (members.map_or(0, |m| m.len()), true),
            Err(_) => (
                self.hub().rooms().get(name).map_or(0, |r| r.member_count()),
                false,
            ),
        };
        let (mask, nick_key) = self.person(session);
        let person = Person {
            mask: &mask,
            key: &nick_key,
        };
        self.hub().channels().admit(name, person, key, members)?;
        Ok(known && members == 0)
    }

    /// `session` became a member of `name`; `first` members operate their room.
    pub(super) fn made_member(&self, session: &Session, name: &RoomName, first: bool) {
        let (mask, key) = self.person(session);
        let person = Person {
            mask: &mask,
            key: &key,
        };
        self.hub().channels().joined(name, person, first);
    }

    /// `nick` is no longer a member of `room` here; the room's state goes with its last local
    /// member.
    pub(super) fn unmade_member(&self, room: &Room, nick: &Nick) {
        let empty = room.member_count() == 0;
        self.hub().channels().left(&room.name, &nick.key(), empty);
    }

    /// The room `session` may send `text` to, by the room's rules: a member, or anybody when
    /// the room is `-n`; voiced or operators only when it is `+m`.
    pub(super) fn sendable(
        &self,
        session: &Session,
        name: &RoomName,
    ) -> Result<Arc<Room>, ChatError> {
        let room = self.hub().rooms().get(name);
        let member = room.as_ref().is_some_and(|r| r.is_member(session.id));
        let (mask, key) = self.person(session);
        let person = Person {
            mask: &mask,
            key: &key,
        };
        self.hub().channels().may_send(name, person, member)?;
        room.ok_or_else(|| {
            let text = format!("you are not in {name}: /join {name} first");
            ChatError::forbidden(text).because(crate::core::Refusal::CannotSend)
        })
    }

    /// Whether `session` may see `name` in lists (`/rooms`, `/users`): secret rooms (`+s`)
    /// are seen by their members only.
    pub(super) fn visible(&self, session: &Session, name: &RoomName) -> bool {
        let secret = self
            .hub()
            .channels()
            .get(name)
            .is_some_and(|c| c.has(ChannelMode::Secret));
        !secret
            || self
                .hub()
                .rooms()
                .get(name)
                .is_some_and(|r| r.is_member(session.id))
    }

    /// Sends `presence` (a change made by `session`) to the room and the other instances.
    pub(super) async fn announce_change(
        &mut self,
        session: &Session,
        presence: Presence,
    ) -> Result<Reply, BoxError> {
        let req = Request::from(session.id, Action::Presence(Arc::new(presence)));
        call_inner(&mut self.inner, req).await
    }

    /// Takes `member` out of `room` (a kick): its state, the directory, the room's rules.
    pub(super) async fn remove_member(&mut self, member: &Session, room: &Arc<Room>) {
        // The room may be left unused: freed at the end.
        let _release = ReleaseIfUnused {
            hub: self.hub().clone(),
            name: room.name.clone(),
        };
        if !room.leave(member.id) {
            return;
        }
        {
            let mut state = member.state();
            state.rooms.retain(|r| *r != room.name);
            if state.current.as_ref() == Some(&room.name) {
                state.current = state.rooms.last().cloned();
            }
        }
        let nick = member.nick();
        self.unmade_member(room, &nick);
        if let Err(e) = self.directory().left(&room.name, &nick).await {
            tracing::warn!(room = %room.name, %nick, error = %e, "could not record a kick in the presence directory; the next heartbeat that reaches it will");
        }
    }

    /// A change that another instance announced: delivered here, then applied to this
    /// instance's state of the room (see the module docs).
    pub(super) async fn remote_presence(
        &mut self,
        presence: Arc<Presence>,
    ) -> Result<Reply, BoxError> {
        let req = Request::anonymous(Action::Presence(presence.clone()));
        let reply = call_inner(&mut self.inner, req).await?;
        let (name, nick) = (&presence.room, &presence.nick);
        let channels = self.hub().channels();
        match &presence.kind {
            PresenceKind::Left | PresenceKind::Quit => channels.left(name, &nick.key(), false),
            PresenceKind::Renamed(new) => channels.renamed(&nick.key(), &new.key()),
            PresenceKind::Topic(text) if channels.get(name).is_some() => {
                let topic = self.topic_of(nick, text);
                channels.update(name, |c| c.topic = topic);
            }
            PresenceKind::Mode(change) if channels.get(name).is_some() => {
                let args: Vec<&str> = change.split(' ').collect();
                channels.apply(name, &modes::parse(&args).0, nick);
            }
            PresenceKind::Kicked { .. } => {
                let member = self.hub().sessions().find(nick);
                match (member, self.hub().rooms().get(name)) {
                    (Some(member), Some(room)) => self.remove_member(&member, &room).await,
                    _ => self.hub().channels().left(name, &nick.key(), false),
                }
            }
            _ => {}
        }
        Ok(reply)
    }

    /// `NAMES`: the members of a room with their ranks, if `session` may see the room.
    async fn names(&mut self, session: &Session, name: RoomName) -> Result<Reply, BoxError> {
        let channel = self.hub().channels().get(&name);
        let secret = channel.as_ref().is_some_and(|c| c.has(ChannelMode::Secret));
        let nicks = match self.visible(session, &name) {
            true => self
                .directory()
                .members(&name)
                .await
                .map_err(super::directory_down)?,
            false => None,
        };
        let members = nicks
            .unwrap_or_default()
            .into_iter()
            .map(|nick| {
                let rank = channel
                    .as_ref()
                    .map(|c| c.rank(&nick.key()))
                    .unwrap_or_default();
                (nick, rank)
            })
            .collect();
        Ok(Reply::default().with(Outcome::Names {
            room: name,
            secret,
            members,
        }))
    }
}
