//! What the core pushes into a session's queue, as lines for this client.
//!
//! Chat messages are their shared rendered line in the client's form (`render::message`); the
//! client's own messages come back from the room only when it asked for `echo-message` (the
//! core echoes to every IRC session, in room order, and this is where the choice is made), and
//! the echo of a labeled `PRIVMSG` carries its label. Presence goes through `Presences`, which
//! shows a quit or rename once however many rooms announce it.

use bytes::{Bytes, BytesMut};

use super::caps::Cap;
use super::connection::Client;
use super::message::{Line, tag_pair, with_tags};
use super::render;
use crate::core::stats::Handover;
use crate::core::{Event, PresenceKind};

impl Client {
    /// The bytes for `events` (taken from the queue in one go, charged `charged` bytes: enough
    /// for a buffer that holds their lines); a lone chat message is its shared rendered line,
    /// not a copy. The chat messages among them are handed over now (one clock reading for the
    /// lot, see `Stats::handover`).
    pub(super) fn events(&mut self, mut events: Vec<Event>, charged: usize) -> Bytes {
        let stats = self.stats.clone();
        let mut handover = stats.handover();
        let bytes = if events.len() == 1 {
            let event = events.pop();
            event
                .and_then(|event| self.event(event, &mut handover))
                .unwrap_or_default()
        } else {
            let mut buf = BytesMut::with_capacity(charged);
            for event in events {
                if let Some(line) = self.event(event, &mut handover) {
                    buf.extend_from_slice(&line);
                }
            }
            buf.freeze()
        };
        self.pace.took(handover.now(), handover.oldest_handed());
        bytes
    }

    /// One event as this client reads it, if it reads it at all.
    fn event(&mut self, event: Event, handover: &mut Handover<'_>) -> Option<Bytes> {
        match event {
            Event::Message(msg) => {
                let own = self.session.is_some() && msg.sender() == self.session;
                if own && !self.caps.has(Cap::ECHO) {
                    return None; // the core echoes to IRC sessions; this client did not ask
                }
                handover.message(&msg);
                let line = render::message(&msg, render::form(self.caps));
                match &self.echo_label {
                    Some((room, seq, label)) if own && *room == msg.room && *seq == msg.seq => {
                        let line = with_tags(&line, &tag_pair("label", label));
                        self.echo_label = None;
                        Some(line)
                    }
                    _ => Some(line),
                }
            }
            Event::Presence(presence) => {
                let wanted = match presence.kind {
                    PresenceKind::Away(_) => self.caps.has(Cap::AWAY_NOTIFY),
                    PresenceKind::Realname(_) => self.caps.has(Cap::SETNAME),
                    _ => true,
                };
                if let PresenceKind::Kicked { .. } = presence.kind
                    && presence.nick.as_str().eq_ignore_ascii_case(&self.nick)
                {
                    self.rooms.retain(|room| *room != presence.room); // kicked out
                }
                if !wanted {
                    return None; // a capability the client did not ask for
                }
                self.presences.line(&presence)
            }
            Event::Direct(direct) => Some(render::direct(&direct, self.caps, self.server())),
            // Seqs the room gave up on: told to the channel, as the other protocols tell theirs.
            Event::Missed(missed) => Some(
                Line::new(self.server(), "NOTICE")
                    .param(&format!("#{}", missed.room))
                    .trailing(&missed.text())
                    .bytes(),
            ),
            Event::Notice(text) | Event::Error(text) => Some(
                Line::new(self.server(), "NOTICE")
                    .param(&self.nick)
                    .trailing(&text)
                    .bytes(),
            ),
        }
    }
}
