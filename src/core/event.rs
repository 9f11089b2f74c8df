//! What the core shows a session: [`Event`]s, in replies and pushed to its queue.
//!
//! The core never writes to a socket. It answers each request with a
//! [`Reply`](super::reply::Reply) (for the session that asked, made of events and an outcome)
//! and pushes [`Event`]s into the outbound queues of other sessions (the seed's "transport
//! callbacks"). Adapters render both: the TCP adapter as lines, the HTTP adapter as
//! JSON and Server-Sent Events. The text of every line is decided here, once, so that netcat and
//! browser users read the same words.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::budget::Holders;
use super::direct::Direct;
use super::error::ChatError;
use super::message::{ChatMessage, Presence};
use super::names::RoomName;

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
    /// The queues holding this notice (see `core::budget`).
    pub(crate) holders: Holders,
}

impl Missed {
    /// Messages `from..=to` of `room` that will not be delivered.
    pub fn new(room: RoomName, from: u64, to: u64) -> Missed {
        Missed {
            room,
            from,
            to,
            holders: Holders::default(),
        }
    }

    /// The notice text, `missed messages #A to #B in ROOM`.
    pub fn text(&self) -> String {
        format!(
            "missed messages #{} to #{} in {}",
            self.from, self.to, self.room
        )
    }
}

impl Event {
    /// Who holds the event's payload, if it is one payload handed to many queues (a chat
    /// message, a presence notice, a missed-messages notice; see `core::budget`).
    pub(crate) fn holders(&self) -> Option<&Holders> {
        match self {
            Event::Message(msg) => Some(&msg.holders),
            Event::Presence(presence) => Some(&presence.holders),
            Event::Missed(missed) => Some(&missed.holders),
            Event::Notice(_) | Event::Error(_) | Event::Direct(_) => None,
        }
    }

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

    /// Appends [`Event::line`] to `buf`, a chat message's shared line copied without taking a
    /// reference to it (see [`ChatMessage::line_ref`]).
    pub fn put_line(&self, buf: &mut BytesMut) {
        match self {
            Event::Message(msg) => buf.extend_from_slice(msg.line_ref()),
            other => buf.extend_from_slice(&other.line()),
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
