//! What travels on a room's channel: one JSON object per publish, tagged by `type`.
//!
//! JSON rather than a binary encoding because it can be read with `valkey-cli SUBSCRIBE`, which is
//! what a learner does first; a message is encoded once per publish, not once per recipient.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tower::BoxError;

use crate::backends::presence_codec;
use crate::core::{ChatMessage, MessageKind, Nick, Origin, Presence, RoomName};

/// One publish on a room's channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Wire {
    /// A chat message.
    Message {
        room: String,
        seq: u64,
        nick: String,
        text: String,
        ts_ms: i64,
        instance: String,
        /// A notice (IRC's `NOTICE`) rather than a message; see `core::message::MessageKind`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        notice: bool,
        /// Sent by a bot (user mode `+B`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        bot: bool,
    },
    /// A membership change.
    Presence {
        room: String,
        nick: String,
        /// `joined`, `left`, `quit`, `renamed`, `kicked`, `topic` or `mode`.
        kind: String,
        /// The new nick of a `renamed`, the operator of a `kicked`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_nick: Option<String>,
        /// A reason, a topic or a mode change (see `backends::presence_codec`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        instance: String,
    },
}

/// What a publish decodes to, ready for the stack.
#[derive(Debug)]
pub(super) enum Received {
    Message(Arc<ChatMessage>),
    Presence(Arc<Presence>),
}

impl Wire {
    pub(super) fn message(msg: &ChatMessage, instance: &str) -> Wire {
        Wire::Message {
            room: msg.room.to_string(),
            seq: msg.seq,
            nick: msg.nick.to_string(),
            text: msg.text.clone(),
            ts_ms: msg.ts_ms,
            instance: instance.to_string(),
            notice: msg.kind == MessageKind::Notice,
            bot: msg.bot,
        }
    }

    pub(super) fn presence(presence: &Presence, instance: &str) -> Wire {
        let (kind, new_nick, detail) = presence_codec::encode(presence);
        Wire::Presence {
            room: presence.room.to_string(),
            nick: presence.nick.to_string(),
            kind: kind.to_string(),
            new_nick,
            detail,
            instance: instance.to_string(),
        }
    }

    pub(super) fn encode(&self) -> Result<String, BoxError> {
        Ok(serde_json::to_string(self)?)
    }

    /// Decodes a payload; `None` for what this instance published itself.
    ///
    /// # Errors
    /// When the payload is not a valid publish (another program on the channel, a newer chatd).
    pub(super) fn decode(payload: &[u8], me: &str) -> Result<Option<Received>, BoxError> {
        let wire: Wire = serde_json::from_slice(payload)?;
        match wire {
            Wire::Message { instance, .. } | Wire::Presence { instance, .. } if instance == me => {
                Ok(None)
            }
            Wire::Message {
                room,
                seq,
                nick,
                text,
                ts_ms,
                instance,
                notice,
                bot,
            } => {
                let kind = match notice {
                    true => MessageKind::Notice,
                    false => MessageKind::Say,
                };
                let msg = ChatMessage::at(
                    RoomName::parse(&room)?,
                    seq,
                    Nick::parse(&nick)?,
                    text,
                    Origin::Remote(Arc::from(instance)),
                    ts_ms,
                );
                Ok(Some(Received::Message(Arc::new(
                    msg.with_kind(kind).by_bot(bot),
                ))))
            }
            Wire::Presence {
                room,
                nick,
                kind,
                new_nick,
                detail,
                ..
            } => Ok(Some(Received::Presence(presence_codec::decode(
                &room,
                &nick,
                &kind,
                new_nick.as_deref(),
                detail.as_deref(),
            )?))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::PresenceKind;
    use crate::core::message::sample;

    #[test]
    fn a_message_round_trips_and_its_own_is_skipped() {
        let msg = sample("general", 7, "ann", "hi \"there\"");
        let payload = Wire::message(&msg, "a").encode().unwrap();
        assert!(payload.starts_with(r#"{"type":"message","room":"general","seq":7"#));
        assert!(Wire::decode(payload.as_bytes(), "a").unwrap().is_none());
        let Some(Received::Message(got)) = Wire::decode(payload.as_bytes(), "b").unwrap() else {
            panic!("a message");
        };
        assert_eq!((got.seq, got.text.as_str()), (7, "hi \"there\""));
        assert_eq!(got.origin, Origin::Remote(Arc::from("a")));
        assert_eq!(got.ts_ms, msg.ts_ms);
    }

    #[test]
    fn a_rename_round_trips_without_its_session() {
        let presence = Presence::new(
            RoomName::parse("general").unwrap(),
            Nick::parse("ann").unwrap(),
            PresenceKind::Renamed(Nick::parse("anna").unwrap()),
            None,
        );
        let payload = Wire::presence(&presence, "a").encode().unwrap();
        let Some(Received::Presence(got)) = Wire::decode(payload.as_bytes(), "b").unwrap() else {
            panic!("a presence");
        };
        assert_eq!(*got, presence);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Wire::decode(b"hello", "a").is_err());
        let bad =
            r#"{"type":"presence","room":"general","nick":"x","kind":"danced","instance":"b"}"#;
        assert!(Wire::decode(bad.as_bytes(), "a").is_err());
    }
}
