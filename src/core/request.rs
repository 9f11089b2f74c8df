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

use super::commands::{RoomCommand, UserCommand};
use super::history::{HistoryQuery, HistoryWindow, StoredRoom};
use super::identity::{Protocol, SessionId};
use super::message::{ChatMessage, Presence};
use super::names::{Nick, RoomName};
use super::outbound::{Inbox, Outbound};
use super::session::Closer;

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
    /// Open a session. Handled by the route layer, answered with
    /// [`Outcome::Connected`](super::Outcome::Connected): ask it with [`ask`](super::ask::ask).
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
    /// A room's first use since this process started (or since it was evicted). Sent inward
    /// once per room by the route layer, before the room's first join, message or history read:
    /// the persist layer fills in what its store knows ([`OpenRoom::stored`]), the history layer
    /// warms its ring from that, and the route layer continues the room's numbering after the
    /// stored maximum.
    OpenRoom(Arc<OpenRoom>),
    /// An idle room was evicted from memory (see `core::rooms`): the fan-out's bus stops
    /// listening to it. Sent inward by the route layer's sweep; the room's next use is an
    /// `OpenRoom` again.
    CloseRoom(RoomName),
    /// Evict the rooms that have been idle long enough: sent from outside the stack every
    /// fraction of `route.room_idle_secs` (see `pipeline::build`), handled by the route layer.
    EvictIdleRooms,
}

/// What [`Action::OpenRoom`] asks and, once a store answered, carries back out.
///
/// The answer travels in the request (a slot filled once) rather than in the reply so that the
/// layers see it whatever their order in the pipeline.
#[derive(Debug)]
pub struct OpenRoom {
    /// The room.
    pub room: RoomName,
    /// How many of its newest stored rows to read (see [`OPEN_WINDOW`]).
    pub window: usize,
    stored: OnceLock<StoredRoom>,
}

/// How many of a room's newest stored rows an instance reads when it opens the room. Besides the
/// history a joiner sees, they tell where the room's settled prefix ends: with several
/// instances, a seq may be numbered but not stored yet, and delivery must start below it (see
/// `layers::route`). Holes further back than this are taken as settled.
pub const OPEN_WINDOW: usize = 1024;

impl OpenRoom {
    /// A request to open `room`, reading its `window` newest stored rows.
    pub fn new(room: RoomName, window: usize) -> OpenRoom {
        OpenRoom {
            room,
            window,
            stored: OnceLock::new(),
        }
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

impl Connect {
    /// A convenience for tests and benches: a connect from `protocol` asking for `nick`, from no
    /// address, with a fresh closer and a queue of `capacity` events whose receiving end is
    /// returned (keep it to read the session's events, or drop it).
    pub fn sample(protocol: Protocol, nick: Option<&str>, capacity: usize) -> (Connect, Inbox) {
        let (outbound, inbox) = super::outbound::channel(capacity);
        let connect = Connect {
            protocol,
            nick: nick.map(str::to_string),
            peer: None,
            outbound,
            closer: Closer::default(),
        };
        (connect, inbox)
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
    /// Opens a room's event stream (HTTP): joins the room if needed and reads the first page of
    /// the messages after `after` (a resume), or of the recent history when `after` is `None`.
    /// Answered with [`Outcome::Replayed`](super::Outcome::Replayed) (asked as
    /// [`OpenReplay`](super::ask::OpenReplay)); the stream reads the rest
    /// with `ReplayPage`.
    Replay {
        /// The room.
        room: RoomName,
        /// The last seq the client has, from `Last-Event-ID`.
        after: Option<u64>,
    },
    /// The next page of an event stream's replay: the messages after `after`, up to `upto`
    /// (the replay's end), at most `span` seqs of them. Answered with
    /// [`Outcome::ReplayPage`](super::Outcome::ReplayPage) (asked as
    /// [`NextPage`](super::ask::NextPage)).
    ReplayPage {
        /// The room.
        room: RoomName,
        /// The last seq the stream has sent (or accounted for).
        after: u64,
        /// The end of the replay: the room's watermark when the stream opened.
        upto: u64,
        /// The most seqs to read.
        span: u64,
    },
    /// A chat message: to `room`, or to the current room when `None`. Answered with
    /// [`Outcome::Sent`](super::Outcome::Sent); `POST /message` asks it as
    /// [`ask::Say`](super::ask::Say).
    Say {
        /// The room, when the client names it (HTTP does); `None` for the current room.
        room: Option<RoomName>,
        /// The text, checked by the route layer.
        text: String,
    },
    /// A window of a member's room history (IRC's `CHATHISTORY`), answered with
    /// [`Outcome::History`](super::Outcome::History).
    Window(HistoryWindow),
    /// A room's rules and members: topic, modes, kicks, invitations (see `core::commands`).
    Room(RoomCommand),
    /// People: private messages, away, who is who, server operators (see `core::commands`).
    User(UserCommand),
}
