//! The one request type that flows through every layer.
//!
//! Both adapters translate what they receive into a [`Request`] and call the same tower stack
//! with it; messages from other instances enter the same stack as [`Action::Publish`] with a
//! remote origin. Each layer looks at the action, handles the variants it is responsible for and
//! passes the rest inward. Early layers turn coarse actions into finer ones: the parse layer turns
//! `Line` into `Command`, the route layer turns `Command`s into `Publish`, `Presence` and
//! `History` actions for the layers below it.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use super::message::{ChatMessage, Presence};
use super::names::{Nick, RoomName};
use super::outbound::Outbound;
use super::session::{Closer, SessionId};

/// A request to the chat stack.
#[derive(Debug)]
pub struct Request {
    /// The session it comes from; `None` for a new connection or a message from another instance.
    pub session: Option<SessionId>,
    /// What is asked.
    pub action: Action,
}

impl Request {
    /// A request from an existing session.
    pub fn from(session: SessionId, action: Action) -> Request {
        Request {
            session: Some(session),
            action,
        }
    }

    /// A request made of its two parts.
    pub fn from_parts(session: Option<SessionId>, action: Action) -> Request {
        Request { session, action }
    }

    /// A request without a session (a new connection, or a message from another instance).
    pub fn anonymous(action: Action) -> Request {
        Request {
            session: None,
            action,
        }
    }
}

/// What a request asks for.
#[derive(Debug)]
pub enum Action {
    /// Open a session. Handled by the route layer.
    Connect(Connect),
    /// The transport closed (or the HTTP session expired). Handled by the route layer.
    Disconnect,
    /// A raw input line, as typed. Turned into a `Command` by the parse layer.
    Line(String),
    /// A parsed command. Handled by the route layer.
    Command(Command),
    /// A chat message to store and deliver. Created by the route layer (or received from another
    /// instance); the history, persist and fan-out layers each do their part.
    Publish(Arc<ChatMessage>),
    /// A membership change to announce. Delivered by the fan-out layer.
    Presence(Arc<Presence>),
    /// A read of a room's recent messages. Answered by the history layer from its ring when it
    /// can, else by the persist layer from its store.
    History(HistoryQuery),
    /// A room's first use since this process started. Sent inward once per room by the route
    /// layer, before the room's first join, message or history read: the persist layer fills in
    /// what its store knows ([`OpenRoom::stored`]), the history layer warms its ring from that,
    /// and the route layer continues the room's numbering after the stored maximum.
    OpenRoom(Arc<OpenRoom>),
}

/// What [`Action::OpenRoom`] asks and, once a store answered, carries back out.
///
/// The answer travels in the request (a slot filled once) rather than in the reply so that the
/// layers see it whatever their order in the pipeline: a history layer inside the persist layer
/// sees it on the way in, one outside sees it on the way back.
#[derive(Debug)]
pub struct OpenRoom {
    /// The room.
    pub room: RoomName,
    /// How many of its latest messages to load (the ring's capacity).
    pub limit: usize,
    stored: OnceLock<StoredRoom>,
    /// The highest seq already used for this room anywhere (raised by a shared sequencer, which
    /// knows about other instances' messages that this store may not have yet).
    floor: std::sync::atomic::AtomicU64,
}

/// What a store holds about a room.
#[derive(Debug, Clone, Default)]
pub struct StoredRoom {
    /// The highest seq stored (0 for a room never written to).
    pub max_seq: u64,
    /// Its latest messages, oldest first, at most the limit asked for.
    pub last: Vec<Arc<ChatMessage>>,
}

impl OpenRoom {
    /// A request to open `room`, loading at most `limit` of its latest messages.
    pub fn new(room: RoomName, limit: usize) -> OpenRoom {
        OpenRoom {
            room,
            limit,
            stored: OnceLock::new(),
            floor: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Raises the seq the room's numbering and live delivery continue after.
    pub fn raise_floor(&self, seq: u64) {
        self.floor
            .fetch_max(seq, std::sync::atomic::Ordering::Relaxed);
    }

    /// Where the room's numbering continues: after the store's maximum or a raised floor.
    pub fn start_after(&self) -> u64 {
        let floor = self.floor.load(std::sync::atomic::Ordering::Relaxed);
        self.stored().map_or(floor, |s| s.max_seq.max(floor))
    }

    /// Records the store's answer (the first answer wins).
    pub fn answer(&self, stored: StoredRoom) {
        let _ = self.stored.set(stored);
    }

    /// The store's answer, if a store answered.
    pub fn stored(&self) -> Option<&StoredRoom> {
        self.stored.get()
    }
}

/// What an adapter supplies when it opens a session.
#[derive(Debug)]
pub struct Connect {
    /// Which adapter, for the session registry and the echo rule.
    pub protocol: Protocol,
    /// The nick asked for, unchecked; `None` means a guest nick.
    pub nick: Option<String>,
    /// The remote address, for logs and per-address limits.
    pub peer: Option<SocketAddr>,
    /// Where the core pushes this session's events. Bounded: see [`super::session`].
    pub outbound: Outbound,
    /// How the core tells the adapter to close the session (a slow consumer, say).
    pub closer: Closer,
}

/// The adapters that can open sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The line protocol (netcat).
    Tcp,
    /// REST + Server-Sent Events (browsers).
    Http,
    /// IRC (irssi, WeeChat, bots).
    Irc,
}

impl Protocol {
    /// Every protocol, in the order the metrics list them.
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Http, Protocol::Irc];

    /// The protocol's name in metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Http => "http",
            Protocol::Irc => "irc",
        }
    }

    /// Whether a sender sees its own chat messages come back. A terminal already shows what was
    /// typed, so TCP does not echo; a browser renders the room from its event stream, so HTTP does.
    /// IRC leaves it to each client (the IRCv3 `echo-message` capability): its sessions get their
    /// own messages, in room order, and the IRC adapter drops them for a client that did not ask.
    pub fn echoes_own_messages(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Irc)
    }
}

/// A parsed command (a slash command, or a plain line to say in the current room).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/nick NAME`.
    Nick(Nick),
    /// `/join ROOM`.
    Join(RoomName),
    /// `/leave [ROOM]` (default: the current room).
    Leave(Option<RoomName>),
    /// `/rooms`.
    Rooms,
    /// `/users [ROOM]` (default: the current room).
    Users(Option<RoomName>),
    /// `/history [N]` in the current room.
    History(usize),
    /// `/help`.
    Help,
    /// `/quit`.
    Quit,
    /// Opens a room's event stream (HTTP): joins the room if needed and reads the messages after
    /// `after` (a resume), or the recent history when `after` is `None`. Answered with
    /// [`Detail::Replayed`](super::Detail::Replayed).
    Replay {
        /// The room.
        room: RoomName,
        /// The last seq the client has, from `Last-Event-ID`.
        after: Option<u64>,
    },
    /// A chat message: to `room`, or to the current room when `None`.
    Say {
        /// The room, when the client names it (HTTP does); `None` for the current room.
        room: Option<RoomName>,
        /// The text, checked by the route layer.
        text: String,
    },
    /// A window of a member's room history (IRC's `CHATHISTORY`), answered with
    /// [`Detail::History`](super::Detail::History).
    Window(HistoryWindow),
}

/// The messages of `room` strictly between two bounds, at most `limit` of them (the route layer
/// caps it at 100, as `/history`), counted from the oldest or the newest end of the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryWindow {
    /// The room; the session must be a member.
    pub room: RoomName,
    /// Only messages after this (exclusive).
    pub after: Bound,
    /// Only messages before this (exclusive).
    pub before: Bound,
    /// At most this many.
    pub limit: usize,
    /// Which end `limit` counts from: `true` for the oldest messages of the window, `false` for
    /// the newest.
    pub oldest_first: bool,
}

/// One end of a [`HistoryWindow`], exclusive: as `after`, `Seq(5)` starts the window at seq 6
/// and `Time(t)` at the first message stamped later than `t`; as `before`, they end it at seq 4
/// and at the last message stamped earlier than `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// No bound: the room's first message, or the last one delivered.
    Open,
    /// A message's seq (IRC's `msgid`).
    Seq(u64),
    /// A time, in milliseconds since the Unix epoch (IRC's `timestamp=`).
    Time(i64),
}

/// A read of recent history: the last `limit` messages of `room` with seq at most `upto`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// The room.
    pub room: RoomName,
    /// Only messages with a seq at most this (what the room has delivered; see
    /// [`super::room::Room::join`]).
    pub upto: u64,
    /// Only messages with a seq above this (0 for no lower bound).
    pub after: u64,
    /// At most this many, the newest ones.
    pub limit: usize,
}

impl HistoryQuery {
    /// Merges two answers to this query (the ring's and the store's, say): every message once,
    /// in seq order, cut to the query's bounds and its newest `limit`. A store written behind
    /// may not have the newest messages yet and a ring has only the latest ones, so neither
    /// answer alone is always the whole truth.
    pub fn merge(
        &self,
        a: Vec<Arc<ChatMessage>>,
        b: Vec<Arc<ChatMessage>>,
    ) -> Vec<Arc<ChatMessage>> {
        let mut all: Vec<Arc<ChatMessage>> = a
            .into_iter()
            .chain(b)
            .filter(|m| m.seq > self.after && m.seq <= self.upto)
            .collect();
        all.sort_by_key(|m| m.seq);
        all.dedup_by_key(|m| m.seq);
        let skip = all.len().saturating_sub(self.limit);
        all.split_off(skip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::sample;

    #[test]
    fn merge_keeps_each_seq_once_in_order_within_bounds() {
        let query = HistoryQuery {
            room: RoomName::parse("general").unwrap(),
            upto: 6,
            after: 1,
            limit: 4,
        };
        let m = |seq| sample("general", seq, "a", "x");
        let merged = query.merge(vec![m(5), m(6), m(7)], vec![m(1), m(2), m(3), m(4), m(5)]);
        let seqs: Vec<u64> = merged.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, vec![3, 4, 5, 6]);
    }
}
