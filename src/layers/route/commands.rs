//! The route layer's commands, one method each. The reply texts here are the line protocol's
//! (documented in docs/PROTOCOL.md); HTTP shows the same lines.

use std::sync::Arc;

use tower::BoxError;

use super::guards::ReleaseIfUnused;
use super::{Ctx, directory_down, with_messages};
use crate::core::address::AddressGroup;
use crate::core::message::check_text;
use crate::core::room::Joined;
use crate::core::{
    Action, ChatError, Command, Creation, ErrorKind, Event, HistoryAnswer, HistoryQuery,
    MessageKind, Nick, Outcome, Presence, PresenceKind, Reply, Request, RoomName, Session,
    TooManyRooms,
};
use crate::layers::parse::HELP;
use crate::layers::{Inner, call_inner};

impl<S: Inner> Ctx<'_, S> {
    pub(super) async fn command(
        &mut self,
        session: &Arc<Session>,
        command: Command,
    ) -> Result<Reply, BoxError> {
        match command {
            Command::Nick(nick) => self.nick(session, nick).await,
            Command::Join(room) => self.join(session, room, None).await,
            Command::Leave(room) => self.leave(session, room, None).await,
            Command::Rooms => self.rooms(session).await,
            Command::Users(room) => self.users(session, room).await,
            Command::History(n) => self.history(session, n).await,
            Command::Help => Ok(Reply {
                events: HELP.iter().map(|l| Event::notice(*l)).collect(),
                ..Reply::default()
            }),
            Command::Quit => Ok(Reply {
                close: true,
                ..Reply::notice("goodbye")
            }),
            Command::Replay { room, after } => self.replay(session, room, after).await,
            Command::ReplayPage {
                room,
                after,
                upto,
                span,
            } => self.replay_page(session, room, after, upto, span).await,
            Command::Say { room, text } => self.say(session, room, text, MessageKind::Say).await,
            Command::Window(window) => {
                let room = window.room.clone();
                let messages = self.window(session, window).await?;
                let answer = HistoryAnswer {
                    messages,
                    ..HistoryAnswer::default()
                };
                Ok(Reply::default().with(Outcome::History { room, answer }))
            }
            Command::Room(command) => self.room_command(session, command).await,
            Command::User(command) => self.user_command(session, command).await,
        }
    }

    async fn nick(&mut self, session: &Arc<Session>, nick: Nick) -> Result<Reply, BoxError> {
        // The directory first: it knows every instance's nicks, this one's included.
        let current = session.nick();
        let claimed = self
            .directory()
            .rename(session.id, &current, &nick)
            .await
            .map_err(directory_down)?;
        if !claimed {
            return Err(ChatError::conflict(format!("nick {nick} is taken")).into());
        }
        let old = match self.hub().sessions().rename(session.id, nick.clone()) {
            Ok(old) => old,
            Err(e) => {
                // Taken here after all (a race with a local connect): give the new nick back.
                if let Err(undo) = self.directory().rename(session.id, &nick, &current).await {
                    tracing::warn!(error = %undo, "could not undo a nick claim in the directory");
                }
                return Err(e.into());
            }
        };
        if old != nick {
            self.renamed(session, &old, &nick);
            let rooms = session.state().rooms.clone();
            for name in rooms {
                if let Some(room) = self.hub().rooms().get(&name) {
                    self.announce(
                        &room,
                        session,
                        old.clone(),
                        PresenceKind::Renamed(nick.clone()),
                    )
                    .await?;
                }
            }
        }
        Ok(Reply::notice(format!("you are now {nick}")).with(Outcome::Nick(nick)))
    }

    /// Puts `session` in room `name` (announcing it when new) and makes it the current room.
    ///
    /// Limits apply to a room the session is not in yet: `max_rooms_per_session`; and when the
    /// room does not exist yet either, `max_rooms` and the creating address's
    /// `max_rooms_per_ip`; then the room's own rules (bans, a key, a limit, invitations:
    /// `channel.rs`).
    pub(super) async fn enter(
        &mut self,
        session: &Arc<Session>,
        name: &RoomName,
        key: Option<&str>,
    ) -> Result<Joined, BoxError> {
        let max = self.shared.max_rooms_per_session;
        let in_rooms = |session: &Session| {
            let state = session.state();
            (state.rooms.len(), state.rooms.contains(name))
        };
        if let (n, false) = in_rooms(session)
            && n >= max
        {
            return Err(too_many_rooms(n, max).into());
        }
        let first = match in_rooms(session).1 {
            true => false,
            false => self.admit(session, name, key).await?,
        };
        // Declared before `room`, so dropped after it: whichever way this ends (an error, or the
        // request dropped half-way), a room this join created and nobody uses is freed again.
        let _release = ReleaseIfUnused {
            hub: self.hub().clone(),
            name: name.clone(),
        };
        let creation = Creation {
            max: self.shared.max_rooms,
            per_ip: self.shared.max_rooms_per_ip,
            creator: session
                .peer
                .map(|peer| AddressGroup::of(peer.ip(), self.shared.ipv6_prefix)),
        };
        let room = self
            .hub()
            .rooms()
            .get_or_create_within(name, creation)
            .map_err(|full| {
                self.hub().stats().rooms_refused.inc();
                self.too_many_rooms_here(full)
            })?;
        self.open(session.id, &room).await?;
        let joined = room.join(session);
        {
            let mut state = session.state();
            // Checked again where it counts: two joins of one HTTP session can run at once.
            if joined.new && state.rooms.len() >= max {
                let n = state.rooms.len();
                drop(state);
                room.leave(session.id);
                return Err(too_many_rooms(n, max).into());
            }
            if joined.new {
                state.rooms.push(name.clone());
            }
            state.current = Some(name.clone());
        }
        if joined.new {
            self.made_member(session, name, first);
            let nick = session.nick();
            if let Err(e) = self.directory().joined(name, &nick).await {
                tracing::warn!(room = %name, %nick, error = %e, "could not record a join in the presence directory; the next heartbeat that reaches it will");
            }
            self.announce(&room, session, nick, PresenceKind::Joined)
                .await?;
            self.joined_away(session, name).await?;
        }
        Ok(joined)
    }

    pub(super) async fn join(
        &mut self,
        session: &Arc<Session>,
        name: RoomName,
        key: Option<&str>,
    ) -> Result<Reply, BoxError> {
        let joined = self.enter(session, &name, key).await?;
        let outcome = Outcome::Joined {
            room: name.clone(),
            members: joined.members,
            upto: joined.upto,
        };
        if !joined.new {
            return Ok(Reply::notice(format!("{name} is now your current room")).with(outcome));
        }
        let query = HistoryQuery {
            room: name.clone(),
            upto: joined.upto,
            after: 0,
            limit: self.shared.join_replay,
        };
        let answer = self.read_history(session, query).await?;
        // The members on every instance, as `/users` counts them: the room's count here is only
        // this instance's. The directory knows of this join already (`enter` told it).
        let everywhere = match self.directory().members(&name).await {
            Ok(Some(nicks)) => nicks.len().max(1),
            Ok(None) | Err(_) => joined.members,
        };
        let outcome = Outcome::Joined {
            room: name.clone(),
            members: everywhere,
            upto: joined.upto,
        };
        let members = match everywhere {
            1 => "1 member".to_string(),
            n => format!("{n} members"),
        };
        let header = match answer.messages.len() {
            0 => format!("you joined {name} ({members}); no messages yet"),
            1 => format!("you joined {name} ({members}); its last message follows"),
            n => format!("you joined {name} ({members}); its last {n} messages follow"),
        };
        Ok(Reply {
            events: with_messages(header, &name, &answer),
            outcome,
            close: false,
        })
    }

    /// Takes `session` out of a room, telling the room (with `reason`, if one is given).
    pub(super) async fn leave(
        &mut self,
        session: &Arc<Session>,
        named: Option<RoomName>,
        reason: Option<String>,
    ) -> Result<Reply, BoxError> {
        let name = self
            .target(session, named)
            .ok_or_else(|| ChatError::invalid("you are not in any room"))?;
        // The room may be left unused: freed at the end, however this ends.
        let _release = ReleaseIfUnused {
            hub: self.hub().clone(),
            name: name.clone(),
        };
        let room = match self.hub().rooms().get(&name) {
            Some(room) if room.leave(session.id) => room,
            _ => return Err(ChatError::invalid(format!("you are not in {name}")).into()),
        };
        let current = {
            let mut state = session.state();
            state.rooms.retain(|r| *r != name);
            if state.current.as_ref() == Some(&name) {
                state.current = state.rooms.last().cloned();
            }
            state.current.clone()
        };
        let nick = session.nick();
        self.unmade_member(&room, &nick);
        if let Err(e) = self.directory().left(&name, &nick).await {
            tracing::warn!(room = %name, %nick, error = %e, "could not record a leave in the presence directory; the next heartbeat that reaches it will");
        }
        let presence = Presence::new(name.clone(), nick, PresenceKind::Left, Some(session.id));
        self.announce_change(session, presence.with_reason(reason))
            .await?;
        let text = match current {
            Some(current) => format!("you left {name}; your current room is {current}"),
            None => format!("you left {name}; you are in no room now"),
        };
        Ok(Reply::notice(text).with(Outcome::Left(name)))
    }

    async fn rooms(&mut self, session: &Session) -> Result<Reply, BoxError> {
        let mut list = self.directory().rooms().await.map_err(directory_down)?;
        list.retain(|(name, _)| self.visible(session, name));
        let text = if list.is_empty() {
            "no rooms yet: /join ROOM creates one".to_string()
        } else {
            let shown: Vec<String> = list
                .iter()
                .map(|(name, n)| format!("{name} ({n})"))
                .collect();
            format!("rooms: {}", shown.join(", "))
        };
        Ok(Reply::notice(text).with(Outcome::Rooms(list)))
    }

    async fn users(
        &mut self,
        session: &Session,
        named: Option<RoomName>,
    ) -> Result<Reply, BoxError> {
        let name = self.target(session, named).ok_or_else(not_in_a_room)?;
        let nicks = self
            .directory()
            .members(&name)
            .await
            .map_err(directory_down)?
            .filter(|_| self.visible(session, &name))
            .ok_or_else(|| super::moderation::no_such_room(&name))?;
        let shown: Vec<&str> = nicks.iter().map(Nick::as_str).collect();
        let text = format!("users in {name} ({}): {}", nicks.len(), shown.join(", "));
        Ok(Reply::notice(text).with(Outcome::Users { room: name, nicks }))
    }

    async fn history(&mut self, session: &Session, n: usize) -> Result<Reply, BoxError> {
        let name = self.target(session, None).ok_or_else(not_in_a_room)?;
        let room = self.hub().rooms().get_or_create(&name);
        self.open(session.id, &room).await?;
        let query = HistoryQuery {
            room: name.clone(),
            upto: room.delivered(),
            after: 0,
            limit: n,
        };
        let answer = self.read_history(session, query).await?;
        let header = match answer.messages.len() {
            0 => format!("no messages in {name} yet"),
            1 => format!("the last message in {name}:"),
            k => format!("the last {k} messages in {name}:"),
        };
        Ok(Reply {
            events: with_messages(header, &name, &answer),
            outcome: Outcome::History { room: name, answer },
            close: false,
        })
    }

    /// A chat message (or notice) to a room: a member's, or anybody's in a `-n` room.
    pub(super) async fn say(
        &mut self,
        session: &Session,
        named: Option<RoomName>,
        text: String,
        kind: MessageKind,
    ) -> Result<Reply, BoxError> {
        let name = self.target(session, named).ok_or_else(not_in_a_room)?;
        let room = self.sendable(session, &name)?;
        check_text(&text, self.shared.max_message_chars)?;
        // No `open` here: the room has a member here, and a join opens the room first.
        self.publish(session, room, text, kind).await
    }

    /// Asks the layers below for history: the history layer's answer, or the persist layer's
    /// rows when there is no history layer; nothing at all means nobody keeps any.
    pub(super) async fn read_history(
        &mut self,
        session: &Session,
        query: HistoryQuery,
    ) -> Result<HistoryAnswer, BoxError> {
        let reply = call_inner(
            &mut self.inner,
            Request::from(session.id, Action::History(query.clone())),
        )
        .await?;
        Ok(match reply.outcome {
            Outcome::History { answer, .. } => answer,
            Outcome::Stored(page) => query.answer(Vec::new(), page),
            _ => HistoryAnswer {
                from: query.upto + 1, // vouches for nothing: nothing is kept
                ..HistoryAnswer::default()
            },
        })
    }
}

impl<S: Inner> Ctx<'_, S> {
    /// The refusal of a join that would create a room beyond `max_rooms` or the address's
    /// `max_rooms_per_ip`. The second is the address's own doing, so it is a 429 with the time
    /// after which idle rooms are evicted as its `Retry-After`.
    fn too_many_rooms_here(&self, full: TooManyRooms) -> ChatError {
        match full {
            TooManyRooms::Total { max } => ChatError::unavailable(format!(
                "this server has {max} rooms already, its limit: join one of them (/rooms lists \
                 them) or try again later"
            )),
            TooManyRooms::PerIp { max } => ChatError::new(
                ErrorKind::RateLimited {
                    retry_after: self.shared.room_idle,
                },
                format!(
                    "your address has {max} rooms open already, its limit: join one of them \
                     (/rooms lists them) or try again once some have been idle for {} s",
                    self.shared.room_idle.as_secs()
                ),
            ),
        }
    }
}

/// The refusal of a join beyond `route.max_rooms_per_session`.
fn too_many_rooms(n: usize, max: usize) -> ChatError {
    ChatError::forbidden(format!(
        "you are in {n} rooms already (max {max}): /leave one first"
    ))
}

fn not_in_a_room() -> ChatError {
    ChatError::invalid("join a room first: /join ROOM")
}
