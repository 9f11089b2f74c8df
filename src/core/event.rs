//! What the core says back: replies to a request and events pushed to a session.
//!
//! The core never writes to a socket. It answers each request with a [`Reply`] (for the session
//! that asked) and pushes [`Event`]s into the outbound queues of other sessions (the seed's
//! "transport callbacks"). Adapters render both: the TCP adapter as lines, the HTTP adapter as
//! JSON and Server-Sent Events. The text of every line is decided here, once, so that netcat and
//! browser users read the same words.

use std::sync::Arc;

use bytes::Bytes;

use super::channel::{Channel, Mask, Rank, Topic};
use super::direct::Direct;
use super::error::ChatError;
use super::message::{ChatMessage, Presence};
use super::modes::{ChannelMode, ModeChange};
use super::names::{Nick, RoomName};
use super::request::{HistoryAnswer, Page, ReplayPage};
use super::session::SessionId;
use super::users::{Census, Departed, UserInfo, UserModes};

/// One thing to show a session.
#[derive(Debug, Clone)]
pub enum Event {
    /// Information from the server; shown as `* text`.
    Notice(String),
    /// A refusal or problem; shown as `! text`.
    Error(String),
    /// A chat message; shown as `[room] nick: text`.
    Message(Arc<ChatMessage>),
    /// Someone joined, left, quit or changed nick; shown as a notice.
    Presence(Arc<Presence>),
    /// Messages of a room that will not be delivered to this session (see
    /// `core::room::Room::give_up_until`); shown as a notice.
    Missed(Arc<Missed>),
    /// Something said to this session alone (a private message, an invitation); shown as
    /// [`Direct::text`] says.
    Direct(Arc<Direct>),
}

/// A range of a room's seqs that will not be delivered: the room gave up waiting for them without
/// knowing whether they exist. Clients are told rather than left with a silent hole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missed {
    /// The room.
    pub room: RoomName,
    /// The first seq missed.
    pub from: u64,
    /// The last seq missed.
    pub to: u64,
}

impl Missed {
    /// The notice text, `missed messages #A to #B in ROOM`.
    pub fn text(&self) -> String {
        format!(
            "missed messages #{} to #{} in {}",
            self.from, self.to, self.room
        )
    }
}

impl Event {
    /// A notice event.
    pub fn notice(text: impl Into<String>) -> Event {
        Event::Notice(text.into())
    }

    /// The line protocol form of the event, newline included. Chat messages share one rendered
    /// buffer between all recipients (see [`ChatMessage::line`]).
    pub fn line(&self) -> Bytes {
        match self {
            Event::Message(msg) => msg.line(),
            Event::Presence(presence) => presence.line(),
            other => Bytes::from(format!("{}\n", other.text())),
        }
    }

    /// The line protocol form without the newline, for replies in JSON.
    pub fn text(&self) -> String {
        match self {
            Event::Notice(text) => format!("* {text}"),
            Event::Error(text) => format!("! {text}"),
            Event::Message(msg) => format!("[{}] {}: {}", msg.room, msg.nick, msg.text),
            Event::Presence(p) => format!("* {}", p.text()),
            Event::Missed(m) => format!("* {}", m.text()),
            Event::Direct(d) => d.text(),
        }
    }
}

impl From<&ChatError> for Event {
    fn from(err: &ChatError) -> Event {
        Event::Error(err.message.clone())
    }
}

/// The answer to one request, for the session that made it.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// What to show, in order.
    pub events: Vec<Event>,
    /// The same answer as data, for adapters that speak structured formats.
    pub detail: Option<Detail>,
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

    /// Adds a structured detail.
    pub fn with(mut self, detail: Detail) -> Reply {
        self.detail = Some(detail);
        self
    }
}

/// Structured data behind a reply, so an HTTP client need not parse the notice text.
#[derive(Debug, Clone)]
pub enum Detail {
    /// A session was opened.
    Connected {
        /// The new session.
        session: SessionId,
        /// Its nick (a guest nick when none was asked for).
        nick: Nick,
    },
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
    /// A message was accepted.
    Sent {
        /// Its room.
        room: RoomName,
        /// Its sequence number.
        seq: u64,
    },
    /// The members of a room.
    Users {
        /// The room.
        room: RoomName,
        /// Their nicks, sorted.
        nicks: Vec<Nick>,
    },
    /// Every room with its member count, sorted by name.
    Rooms(Vec<(RoomName, usize)>),
    /// The start of a room's event stream: history up to `upto`, live delivery after it.
    Replayed {
        /// The room.
        room: RoomName,
        /// The last seq covered by the replay; live delivery to the session starts after it.
        upto: u64,
        /// The first page of what the client missed after the point it asked for (or, on a
        /// first open, of the recent history), with the span it covers and the holes it could
        /// not fill. The stream reads on after `page.until` until it reaches `upto`.
        page: ReplayPage,
        /// The client asked to resume after a seq this room never reached: the numbering it
        /// holds is gone (a server without a store restarted, or its store was replaced). The
        /// value is the room's highest seq; `page` is then the recent history, as on a first
        /// open.
        reset: Option<u64>,
    },
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

/// What [`Detail::Mode`] says: a room's modes (on request), one of its lists, or the changes
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::sample;

    #[test]
    fn events_render_as_protocol_lines() {
        assert_eq!(&Event::notice("hello").line()[..], b"* hello\n");
        assert_eq!(Event::Error("nope".into()).text(), "! nope");
        let msg = Event::Message(sample("general", 3, "bob", "hi there"));
        assert_eq!(msg.text(), "[general] bob: hi there");
        assert_eq!(&msg.line()[..], b"[general] bob: hi there\n");
    }
}
