//! What the stack answers the session that asked: a [`Reply`], its lines and its [`Outcome`].
//!
//! Every request gets a `Reply`: the lines a line-protocol client reads (`events`), whether the
//! session is over (`close`), and the same answer as data (`outcome`) for the adapters that
//! speak structured formats. The outcome is an enum with a `Done` variant for replies whose
//! lines say everything, rather than an `Option`: an adapter that renders outcomes matches
//! them all (the HTTP adapter's `reply_json` has no catch-all arm), so a new outcome is a
//! compile error where it must be decided.
//!
//! The requests whose answer an adapter cannot do without (a `Connect` must give a session, a
//! `Say` a seq, an event stream its replay) are typed one level up, in `core::ask`: each names
//! the answer type it gets, and the one place that turns a reply into it also says what a
//! pipeline that does not answer means. This module depends on the rest of the core's data
//! types and nothing depends on it but the service type, the asks and the layers: see
//! `scripts/module-cycles.sh core`.

use std::sync::Arc;

use super::channel::{Channel, Mask, Rank, Topic};
use super::direct::Direct;
use super::error::ChatError;
use super::event::Event;
use super::history::{HistoryAnswer, Page, ReplayPage};
use super::identity::SessionId;
use super::modes::{ChannelMode, ModeChange};
use super::names::{Nick, RoomName};
use super::users::{Census, Departed, UserInfo, UserModes};

/// The answer to one request, for the session that made it.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// What to show, in order.
    pub events: Vec<Event>,
    /// The same answer as data, for adapters that speak structured formats; [`Outcome::Done`]
    /// when the lines say it all.
    pub outcome: Outcome,
    /// The session is over: the adapter sends `events`, then closes the connection.
    pub close: bool,
}

impl Reply {
    /// A reply of one notice.
    pub fn notice(text: impl Into<String>) -> Reply {
        Reply {
            events: vec![Event::notice(text)],
            ..Reply::default()
        }
    }

    /// The same reply with its structured outcome.
    pub fn with(mut self, outcome: Outcome) -> Reply {
        self.outcome = outcome;
        self
    }
}

/// Structured data behind a reply, so an HTTP or IRC client need not parse the notice text.
/// Which variant a request gets is written on the request's kind (see `core::request`); the
/// answers adapters cannot do without are typed by `core::ask`.
#[derive(Debug, Clone, Default)]
pub enum Outcome {
    /// Nothing beyond the lines of the reply (`/help`, a refusal shown as a line, a request no
    /// layer answers with data).
    #[default]
    Done,
    /// A session was opened: the answer to `Action::Connect` (see `core::ask`).
    Connected(Connected),
    /// The session's nick changed.
    Nick(Nick),
    /// The session joined (or re-selected) a room.
    Joined {
        /// The room.
        room: RoomName,
        /// The members now in it.
        members: usize,
        /// The last seq the session has been given as history; live delivery starts after it.
        upto: u64,
    },
    /// The session left a room.
    Left(RoomName),
    /// A message was accepted: the answer to `Command::Say` (see `core::ask`).
    Sent(Sent),
    /// The members of a room.
    Users {
        /// The room.
        room: RoomName,
        /// Their nicks, sorted.
        nicks: Vec<Nick>,
    },
    /// Every room with its member count, sorted by name.
    Rooms(Vec<(RoomName, usize)>),
    /// The start of a room's event stream: the answer to `Command::Replay` (see `core::ask`).
    Replayed(Replayed),
    /// The next page of a replay.
    ReplayPage(ReplayPage),
    /// Recent messages of a room, oldest first.
    History {
        /// The room.
        room: RoomName,
        /// The messages, the span they cover and its holes.
        answer: HistoryAnswer,
    },
    /// Rows a store (and its write queue) holds for a history read: the persist layer's answer,
    /// which the history layer merges with the room's memory.
    Stored(Page),
    /// A private message or notice reached its recipient.
    Direct {
        /// What the recipient got (an echo shows the same).
        direct: Arc<Direct>,
        /// The recipient's away message, if it is away.
        away: Option<String>,
    },
    /// The session's away message now (`None`: back).
    Away(Option<String>),
    /// What is known of a user (`/whois`).
    Whois(Box<UserInfo>),
    /// The users matching a `WHO` (for a room: its members, each with that room's rank).
    Who(Vec<UserInfo>),
    /// The recent departures of a nick, newest first.
    Whowas(Vec<Departed>),
    /// A room's topic, after a change or on request.
    Topic {
        /// The room.
        room: RoomName,
        /// Its topic; `None` when there is none.
        topic: Option<Topic>,
    },
    /// A room's modes, or what a change of them did.
    Mode(Box<ModeAnswer>),
    /// The session's user modes now, and the change made (`+iw`; empty: none).
    UserModes {
        /// The modes now.
        modes: UserModes,
        /// What changed.
        changed: String,
    },
    /// A member was kicked out of a room.
    Kicked {
        /// The room.
        room: RoomName,
        /// Who was kicked.
        nick: Nick,
        /// Why.
        reason: String,
    },
    /// A user was invited to a room.
    Invited {
        /// The room.
        room: RoomName,
        /// Who.
        nick: Nick,
    },
    /// The rooms the session is invited to.
    Invitations(Vec<RoomName>),
    /// How many are here and everywhere (IRC's `LUSERS`).
    Census {
        /// This instance's counts.
        here: Census,
        /// Users connected to any instance.
        everywhere: usize,
        /// Rooms with members.
        rooms: usize,
    },
    /// A room's members with their ranks, for a member or a visible room.
    Names {
        /// The room.
        room: RoomName,
        /// Whether the room is secret (`+s`).
        secret: bool,
        /// The members, sorted, with their rank here.
        members: Vec<(Nick, Rank)>,
    },
    /// The session is a server operator now.
    Oper,
    /// What a `/watch` found: the nicks online and offline now (for an add or a status), the
    /// ones the list had no room for, and the list (for a listing).
    Watch {
        /// Watched nicks connected now (to any instance), as they are written there.
        online: Vec<Nick>,
        /// Watched nicks nobody holds.
        offline: Vec<Nick>,
        /// Nicks not added: the list is full.
        refused: Vec<Nick>,
        /// Every nick watched (for `Monitor::List`).
        list: Vec<Nick>,
    },
}

/// A session the stack opened.
#[derive(Debug, Clone)]
pub struct Connected {
    /// The new session.
    pub session: SessionId,
    /// Its nick (a guest nick when none was asked for).
    pub nick: Nick,
}

/// A chat message the stack accepted, numbered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Its room.
    pub room: RoomName,
    /// Its sequence number.
    pub seq: u64,
}

/// The start of a room's event stream: history up to `upto`, live delivery after it.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// The room.
    pub room: RoomName,
    /// The last seq covered by the replay; live delivery to the session starts after it.
    pub upto: u64,
    /// The first page of what the client missed after the point it asked for (or, on a
    /// first open, of the recent history), with the span it covers and the holes it could
    /// not fill. The stream reads on after `page.until` until it reaches `upto`.
    pub page: ReplayPage,
    /// The client asked to resume after a seq this room never reached: the numbering it
    /// holds is gone (a server without a store restarted, or its store was replaced). The
    /// value is the room's highest seq; `page` is then the recent history, as on a first
    /// open.
    pub reset: Option<u64>,
}

/// What [`Outcome::Mode`] says: a room's modes (on request), one of its lists, or the changes
/// made and refused.
#[derive(Debug, Clone)]
pub struct ModeAnswer {
    /// The room.
    pub room: RoomName,
    /// The changes made, in order (empty for a request to see).
    pub applied: Vec<ModeChange>,
    /// The changes refused, each with its reason.
    pub refused: Vec<ChatError>,
    /// The room's state, when the request was to see it.
    pub channel: Option<Channel>,
    /// A mask list asked for (`+b`, `+e`, `+I`).
    pub list: Option<(ChannelMode, Vec<Mask>)>,
    /// Whether the session is a member (members see the key).
    pub member: bool,
}
