//! The route layer: sessions, nicks, rooms and membership.
//!
//! **Where it sits.** After `parse`, before everything that deals with messages. It is the only
//! layer that changes who is where: it opens and closes sessions, renames them, puts them in and
//! out of rooms, and answers the questions about that state (`/rooms`, `/users`).
//!
//! **What it passes inward.** It turns commands into the finer actions of the layers below:
//! a plain line becomes a numbered [`ChatMessage`] in an `Action::Publish`; a join becomes an
//! `Action::Presence` (to announce it) and an `Action::History` (to replay the room's last
//! messages). Messages from other instances arrive already numbered and pass straight through.
//! Before a room's first use since start it sends an `Action::OpenRoom`, so that a store can
//! warm the ring and the numbering continues where the stored history ends.
//!
//! **Who is where, across instances.** The local registry (the `Hub`'s sessions and rooms) is
//! the delivery path and stays the truth about this process. A [`Directory`] answers what needs
//! every instance: whether a nick is free anywhere (a connect, a guest nick, `/nick`) and who is
//! in a room anywhere (`/users`, `/rooms`); the route layer tells it of every join, leave and
//! quit. With one instance it is the `Hub` itself; with several, tables in PostgreSQL kept fresh
//! by a heartbeat (see `src/backends/directory.rs`).
//!
//! **What it teaches.** Numbering happens here, once, through a [`Sequencer`], before the message
//! is stored or delivered: with one process that is a counter in memory (its seqs reserved in the
//! store); with several it is a shared counter in PostgreSQL, and nothing else in this file
//! changes. If a numbered message then fails further in (a store refusing it), an
//! `AbandonOnDrop` guard tells the room to stop waiting for that number and writes a tombstone for
//! it, so one failure cannot stall the room's ordered delivery nor leave a hole nobody can explain.
//!
//! **Opening a room** (its first use since start) decides where its delivery starts, which is
//! subtler than it looks with several instances: another instance may be sending in the room right
//! now, so seqs may be numbered that are not stored yet. Starting after the counter would drop
//! them; starting after the highest stored seq would drop the ones stored out of order below it.
//! So the room starts after the store's *settled prefix* (every seq up to it is a message or a
//! tombstone), and holds what is stored above it; the bus brings the rest, and the ordered gate
//! waits for the holes (see `Page::settled_until`, `backends::gaps`). Alone, a process knows
//! nothing is in flight: it starts after the last seq it ever reserved.

mod channel;
mod commands;
mod config;
mod evict;
mod guards;
mod moderation;
mod people;
mod replay;
mod staff;
#[cfg(test)]
mod tests;
mod watch;
mod who;
mod window;

pub use config::{DirectoryMode, OperConfig, RouteConfig};
pub use replay::{MAX_REPLAY, REPLAY_PAGE, REPLAY_PAGE_BYTES};

use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{BoxError, Layer, Service};

use super::{Inner, LayerFuture, call_inner, take};
use crate::backends::{Directory, StoreError, Writer};
use crate::core::session::unknown_session;
use crate::core::{
    Action, ChatError, ChatMessage, Connect, Connected, Event, HistoryAnswer, Hub, MessageKind,
    Missed, Nick, OPEN_WINDOW, OpenRoom, Outcome, Presence, PresenceKind, Reply, Request, Room,
    RoomName, Sent, Sequencer, Session, SessionId, Start, StoredRoom,
};
use guards::{AbandonOnDrop, CloseOnDrop};

/// Builds [`Route`] services.
#[derive(Debug, Clone)]
pub struct RouteLayer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    hub: Hub,
    sequencer: Arc<dyn Sequencer>,
    directory: Arc<dyn Directory>,
    max_message_chars: usize,
    /// Most rooms one session may be in.
    max_rooms_per_session: usize,
    /// Most rooms this instance keeps (see `core::rooms` for when one goes).
    max_rooms: usize,
    /// Most rooms in memory that one address created.
    max_rooms_per_ip: usize,
    /// How client addresses are grouped for `max_rooms_per_ip` (`[server] ipv6_prefix`).
    ipv6_prefix: u8,
    /// How long a room without members stays in memory (see `core::rooms`).
    room_idle: std::time::Duration,
    /// How many messages a joiner is shown: the history layer's capacity.
    join_replay: usize,
    /// Where tombstones of abandoned seqs go: the persist layer's writer, if there is a store.
    tombstones: Option<Writer>,
    /// Who may `/oper`.
    opers: Vec<OperConfig>,
}

impl RouteLayer {
    /// A route layer over `hub`, numbering messages with `sequencer`, checking nicks and
    /// listing members with `directory`, replaying `join_replay` messages to each joiner, and
    /// writing the tombstones of abandoned seqs with `tombstones`.
    pub fn new(
        config: &RouteConfig,
        hub: Hub,
        sequencer: Arc<dyn Sequencer>,
        directory: Arc<dyn Directory>,
        join_replay: usize,
        tombstones: Option<Writer>,
    ) -> RouteLayer {
        RouteLayer {
            shared: Arc::new(Shared {
                hub,
                sequencer,
                directory,
                max_message_chars: config.max_message_chars,
                max_rooms_per_session: config.max_rooms_per_session,
                max_rooms: config.max_rooms,
                max_rooms_per_ip: config.max_rooms_per_ip,
                ipv6_prefix: crate::core::address::DEFAULT_IPV6_PREFIX,
                room_idle: std::time::Duration::from_secs(config.room_idle_secs),
                join_replay,
                tombstones,
                opers: config.opers.clone(),
            }),
        }
    }
}

impl RouteLayer {
    /// Groups client addresses for `max_rooms_per_ip` by their first `bits` when IPv6 (the
    /// `[server] ipv6_prefix` every per-address limit uses; see `core::address`).
    pub fn with_ipv6_prefix(mut self, bits: u8) -> RouteLayer {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.ipv6_prefix = bits;
        }
        self
    }
}

impl<S> Layer<S> for RouteLayer {
    type Service = Route<S>;

    fn layer(&self, inner: S) -> Route<S> {
        Route {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// Manages sessions and rooms; see the module docs.
#[derive(Debug, Clone)]
pub struct Route<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: Inner> Service<Request> for Route<S> {
    type Response = Reply;
    type Error = BoxError;
    type Future = LayerFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> LayerFuture {
        let inner = take(&mut self.inner);
        let shared = self.shared.clone();
        Box::pin(async move {
            let mut ctx = Ctx {
                shared: &shared,
                inner,
            };
            match (req.session, req.action) {
                (_, Action::Connect(connect)) => ctx.connect(connect).await,
                (Some(id), Action::Disconnect) => ctx.disconnect(id).await,
                (Some(id), Action::Command(command)) => {
                    let session = shared.hub.sessions().get(id).ok_or_else(unknown_session)?;
                    ctx.command(&session, command).await
                }
                (None, Action::Disconnect | Action::Command(_)) => Err(unknown_session().into()),
                (None, Action::Presence(presence)) => ctx.remote_presence(presence).await,
                (_, Action::EvictIdleRooms) => ctx.evict_idle_rooms().await,
                (session, action) => call_inner(&mut ctx.inner, Request { session, action }).await,
            }
        })
    }
}

/// One request's view: the shared state and the inner service to pass finer actions to.
struct Ctx<'a, S> {
    shared: &'a Shared,
    inner: S,
}

impl<S: Inner> Ctx<'_, S> {
    fn hub(&self) -> &Hub {
        &self.shared.hub
    }

    fn directory(&self) -> &dyn Directory {
        &*self.shared.directory
    }

    /// Opens a session: the nick must be free here (the local registry) and on every instance
    /// (the directory). A guest whose random nick is taken elsewhere draws another one.
    async fn connect(&mut self, connect: Connect) -> Result<Reply, BoxError> {
        let nick = connect.nick.as_deref().map(Nick::parse).transpose()?;
        let mut draws = 0;
        let session = loop {
            let session = self.hub().sessions().open(
                connect.protocol,
                nick.clone(),
                connect.peer,
                connect.outbound.clone(),
                connect.closer.clone(),
            )?;
            // Until the directory says yes, the session is provisional: closed again on a "no",
            // an error, or this future being dropped mid-claim.
            let provisional = CloseOnDrop {
                sessions: self.hub().sessions(),
                id: session.id,
                armed: true,
            };
            let claimed = self.directory().claim(session.id, &session.nick()).await;
            match claimed.map_err(directory_down)? {
                true => {
                    provisional.disarm();
                    break session;
                }
                false if nick.is_none() && draws < GUEST_DRAWS => draws += 1,
                false => {
                    let taken = format!("nick {} is taken", session.nick());
                    return Err(ChatError::conflict(taken).into());
                }
            }
        };
        self.hub().users().opened(session.id, connect.protocol);
        self.tell_watchers(&session.nick(), true);
        let by_protocol = &self.hub().stats().sessions_opened_by;
        by_protocol.get(session.protocol).inc();
        let nick = session.nick();
        tracing::debug!(session = %session.id, %nick, protocol = ?session.protocol, "session opened");
        Ok(Reply::notice(format!(
            "welcome to chatd (instance {}), you are {nick}. /nick NAME picks a name, /join ROOM enters a room, /help lists all commands",
            self.hub().instance()
        ))
        .with(Outcome::Connected(Connected { session: session.id, nick })))
    }

    async fn disconnect(&mut self, id: SessionId) -> Result<Reply, BoxError> {
        let Some(session) = self.hub().sessions().close(id) else {
            return Ok(Reply::default()); // already gone: closing twice is harmless
        };
        let rooms = std::mem::take(&mut session.state().rooms);
        let nick = session.nick();
        let profile = self.hub().users().closed(id, &nick);
        self.hub().watches().clear(id);
        self.tell_watchers(&nick, false);
        let reason = profile.and_then(|p| p.quit_reason);
        for name in rooms {
            if let Some(room) = self.hub().rooms().get(&name) {
                room.leave(id);
                self.unmade_member(&room, &nick);
                let presence =
                    Presence::new(name.clone(), nick.clone(), PresenceKind::Quit, Some(id));
                self.announce_change(&session, presence.with_reason(reason.clone()))
                    .await?;
            }
            self.hub().rooms().release_if_unused(&name);
        }
        // Frees the nick and every membership on all instances.
        if let Err(e) = self.directory().release(id).await {
            tracing::warn!(session = %id, %nick, error = %e, "could not release the nick in the presence directory; the heartbeat will");
        }
        tracing::debug!(session = %id, %nick, "session closed");
        Ok(Reply::default())
    }

    /// Tells the other members of `room` about a change concerning `session`.
    async fn announce(
        &mut self,
        room: &Room,
        session: &Session,
        nick: Nick,
        kind: PresenceKind,
    ) -> Result<Reply, BoxError> {
        let presence = Presence::new(room.name.clone(), nick, kind, Some(session.id));
        let req = Request::from(session.id, Action::Presence(Arc::new(presence)));
        call_inner(&mut self.inner, req).await
    }

    /// The room a command means: the one named, else the session's current room.
    fn target(&self, session: &Session, named: Option<RoomName>) -> Option<RoomName> {
        named.or_else(|| session.state().current.clone())
    }

    /// Opens `room` the first time it is used since start (or since it was evicted): waits
    /// until an evicted room of that name has given back what it held (see `core::rooms`), sends
    /// [`Action::OpenRoom`] inward (the fan-out's bus starts listening to the room, then the
    /// persist layer reads where the store stands) and starts the room's delivery and numbering
    /// from there (see the module docs); if that fails, [`Action::CloseRoom`] stops the bus
    /// listening, and the next use tries again. If it is dropped half-way, nothing runs to close
    /// what the bus holds: the room stays in memory until eviction closes it. Later calls
    /// return at once.
    async fn open(&mut self, session: SessionId, room: &Room) -> Result<(), BoxError> {
        let (window, recent) = (
            OPEN_WINDOW.max(self.shared.join_replay),
            self.shared.join_replay,
        );
        let sequencer = &self.shared.sequencer;
        let own = match sequencer.shared() {
            true => None,
            false => Some(sequencer.reserves_as()),
        };
        let inner = &mut self.inner;
        let closing = self.shared.hub.rooms().closing(&room.name);
        room.open_once(|| async move {
            if let Some(closing) = closing {
                closing.cancelled().await;
            }
            // Before the bus is asked: if this open is dropped half-way, the room is left to
            // eviction, which closes what the bus may hold (see `Room::may_be_listened`).
            room.set_listened(true);
            let opened = async {
                let open = Arc::new(OpenRoom::new(room.name.clone(), window));
                let req = Request::from(session, Action::OpenRoom(open.clone()));
                call_inner(inner, req).await?;
                let Some(stored) = open.stored() else {
                    room.start(Start::default()); // no store: empty, numbering from 1
                    return Ok(());
                };
                let start = starting_point(stored, own, recent);
                sequencer.prepare(room, start.at).await?;
                room.start(start);
                Ok::<(), BoxError>(())
            }
            .await;
            if opened.is_err() {
                // The bus may have started listening before the store's read (or the
                // numbering) failed: it stops, so that a room not open here has no
                // subscription; the next use opens it from the start.
                let close = Request::anonymous(Action::CloseRoom(room.name.clone()));
                match call_inner(inner, close).await {
                    Ok(_) => room.set_listened(false),
                    Err(err) => {
                        tracing::warn!(room = %room.name, "closing a room that failed to open: {err}");
                    }
                }
            }
            opened
        })
        .await
    }

    /// Sends a numbered message inward; see [`AbandonOnDrop`] for what happens if that fails.
    async fn publish(
        &mut self,
        session: &Session,
        room: Arc<Room>,
        text: String,
        kind: MessageKind,
    ) -> Result<Reply, BoxError> {
        let seq = self.shared.sequencer.next(&room).await?;
        let name = room.name.clone();
        let msg = ChatMessage::new(
            name.clone(),
            seq,
            session.nick(),
            text,
            crate::core::Origin::Local(session.id),
        );
        let bot = self
            .hub()
            .users()
            .get(session.id)
            .is_some_and(|p| p.modes.bot);
        let msg = Arc::new(msg.with_kind(kind).by_bot(bot));
        let guard = AbandonOnDrop {
            room,
            msg: msg.clone(),
            tombstones: self.shared.tombstones.clone(),
            armed: true,
        };
        call_inner(
            &mut self.inner,
            Request::from(session.id, Action::Publish(msg)),
        )
        .await?;
        guard.disarm();
        self.hub().stats().messages_in.inc();
        Ok(Reply {
            events: Vec::new(),
            outcome: Outcome::Sent(Sent { room: name, seq }),
            close: false,
        })
    }
}

/// Where a room opened from `stored` starts (see the module docs): alone (`own` is `Some`, with
/// the name this instance reserves seqs under, if it does), after everything numbered or stored
/// (a jump left by a crash of this instance is remembered as unknown, so that readers crossing it
/// are told); with other instances (`own` is `None`), after the store's settled prefix, holding
/// what is stored above it. The room's memory is warmed with the newest
/// `recent` messages at or below that point.
fn starting_point(stored_room: &StoredRoom, own: Option<Option<&str>>, recent: usize) -> Start {
    let page = &stored_room.newest;
    let shared = own.is_none();
    let at = match shared {
        false => stored_room.numbered.max(page.highest().unwrap_or(0)),
        true => page.settled_until(),
    };
    let pending = page
        .messages
        .iter()
        .filter(|m| m.seq > at)
        .map(|m| (m.seq, Some(m.clone())))
        .chain(page.skipped.iter().filter(|s| **s > at).map(|s| (*s, None)))
        .collect();
    // Alone and written behind, a hole in the stored history is a seq whose message may have
    // been shown and lost with a write queue in a crash (or that a crash made the numbering jump
    // over): nobody can say, so readers crossing it are told. So is the jump above everything
    // stored up to `at`, when this instance made the reservation (another instance's block is
    // that one's). Written ahead, whatever was shown is stored: holes carried nothing anybody saw.
    let stored = page.highest().unwrap_or(0);
    let mine = own
        .flatten()
        .is_some_and(|me| stored_room.reserved_by.as_deref() == Some(me));
    let mut unknown = Vec::new();
    if !shared && !stored_room.written_ahead {
        unknown = page.holes();
        if mine && at > stored {
            unknown.push((stored + 1, at));
        }
    }
    let below: Vec<&Arc<ChatMessage>> = page.messages.iter().filter(|m| m.seq <= at).collect();
    let history: Vec<Arc<ChatMessage>> = below
        .iter()
        .skip(below.len().saturating_sub(recent))
        .map(|m| (*m).clone())
        .collect();
    Start {
        at,
        pending,
        history_complete: !page.more && history.len() == below.len(),
        history,
        unknown,
    }
}

/// How many random guest nicks a connect draws before giving up, when the directory finds each
/// taken on another instance (with 9000 four-digit nicks this takes a crowded cluster).
const GUEST_DRAWS: usize = 8;

/// The user-facing error for a directory that cannot be reached: nick claims must fail closed,
/// or two instances could hand out the same nick.
fn directory_down(e: StoreError) -> ChatError {
    tracing::warn!(error = %e, "presence directory unavailable");
    ChatError::unavailable("the presence directory is unavailable; try again shortly")
}

/// Renders a history answer as chat lines after a header notice, with a `missed` notice for each
/// hole the answer has (see [`crate::core::HistoryQuery::answer`]) in its place: before the first
/// message after the hole. A reader learns of a hole before it reads across it, as it does live;
/// a notice after the history would come too late for a client that checks the order as it reads
/// (a hole inside "the last 10" is a crash's lost write-behind queue, for example).
fn with_messages(header: String, room: &RoomName, answer: &HistoryAnswer) -> Vec<Event> {
    let mut holes = answer.missing.iter().copied().peekable();
    let mut events = vec![Event::notice(header)];
    for message in &answer.messages {
        while let Some((from, to)) = holes.next_if(|&(_, to)| to < message.seq) {
            events.push(missed(room, from, to));
        }
        events.push(Event::Message(message.clone()));
    }
    events.extend(holes.map(|(from, to)| missed(room, from, to)));
    events
}

fn missed(room: &RoomName, from: u64, to: u64) -> Event {
    Event::Missed(Arc::new(Missed::new(room.clone(), from, to)))
}
