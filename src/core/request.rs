//! The one request type that flows through every layer.
//!
//! Both adapters translate what they receive into a [`Request`] and call the same tower stack
//! with it; messages from other instances enter the same stack as [`Action::Publish`] with a
//! remote origin. Each layer looks at the action, handles the variants it is responsible for and
//! passes the rest inward. Early layers turn coarse actions into finer ones: the parse layer turns
//! `Line` into `Command`, the route layer turns `Command`s into `Publish`, `Presence` and
//! `History` actions for the layers below it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::event::Event;
use super::message::{ChatMessage, Presence};
use super::names::{Nick, RoomName};
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
    pub outbound: mpsc::Sender<Event>,
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
}

impl Protocol {
    /// Whether a sender sees its own chat messages come back. A terminal already shows what was
    /// typed, so TCP does not echo; a browser renders the room from its event stream, so HTTP does.
    pub fn echoes_own_messages(self) -> bool {
        matches!(self, Protocol::Http)
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
