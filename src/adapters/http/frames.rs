//! Core types as the HTTP adapter's JSON and Server-Sent Events frames.
//!
//! A chat message, a presence change, a direct message and a gap each have one JSON shape and
//! one SSE frame (docs/PROTOCOL.md). They are rendered here for the three places that send
//! them: a stream's opening (`sse`), its later pages and live events (`stream`), and the JSON
//! answer to `/history` (`routes`). A message's and a presence's frame is rendered once and
//! shared by every stream that sends it (`Wire::Sse`).

use bytes::{Bytes, BytesMut};
use serde_json::{Value, json};

use crate::core::message::Wire;
use crate::core::{ChatMessage, Direct, HistoryAnswer, Presence, PresenceKind, RoomName};

/// The frames of a replayed answer: its messages, with a `gap` where it has a hole.
pub(super) fn answer_frames(room: &RoomName, answer: &HistoryAnswer, out: &mut BytesMut) {
    let mut missing = answer.missing.iter().peekable();
    for msg in &answer.messages {
        while let Some(&&(from, to)) = missing.peek().filter(|(from, _)| *from < msg.seq) {
            out.extend_from_slice(&gap_frame(room, from, to));
            missing.next();
        }
        out.extend_from_slice(&message_frame(msg));
    }
    for &(from, to) in missing {
        out.extend_from_slice(&gap_frame(room, from, to));
    }
}

/// `event: gap`: seqs `from..=to` of `room` will not be delivered on this stream.
pub(super) fn gap_frame(room: &RoomName, from: u64, to: u64) -> Bytes {
    let data = json!({ "room": room, "from": from, "to": to });
    Bytes::from(format!("event: gap\ndata: {data}\n\n"))
}

/// `event: message` with the seq as its id, rendered once per message.
pub(super) fn message_frame(msg: &ChatMessage) -> Bytes {
    msg.wire(Wire::Sse, |m| {
        Bytes::from(format!(
            "event: message\nid: {}\ndata: {}\n\n",
            m.seq,
            message_json(m)
        ))
    })
}

/// `event: presence`, rendered once per change.
pub(super) fn presence_frame(presence: &Presence) -> Bytes {
    presence.wire(Wire::Sse, |p| {
        Bytes::from(format!("event: presence\ndata: {}\n\n", presence_json(p)))
    })
}

/// A message as JSON. The seq is a number: it stays far below 2^53, where JavaScript would lose
/// precision.
pub(super) fn message_json(msg: &ChatMessage) -> Value {
    json!({ "room": msg.room, "seq": msg.seq, "nick": msg.nick, "text": msg.text, "ts": msg.timestamp() })
}

fn presence_json(presence: &Presence) -> Value {
    let (kind, by, detail) = crate::backends::presence_codec::encode(presence);
    let mut value = json!({ "room": presence.room, "nick": presence.nick, "kind": kind, "text": presence.text() });
    match &presence.kind {
        PresenceKind::Renamed(new) => value["new_nick"] = json!(new),
        PresenceKind::Kicked { .. } => value["by"] = json!(by),
        _ => {}
    }
    if let Some(detail) = detail {
        value["detail"] = json!(detail);
    }
    value
}

/// `event: direct`, something said to the session alone (a private message, an invitation):
/// sent on every stream the session has open.
pub(super) fn direct_frame(direct: &Direct) -> Bytes {
    let data = json!({ "from": direct.from, "text": direct.text(), "id": direct.id });
    Bytes::from(format!("event: direct\ndata: {data}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::sample;

    #[test]
    fn frames_are_sse_and_shared() {
        let msg = sample("general", 7, "alice", "hi \"there\"");
        let frame = message_frame(&msg);
        let text = std::str::from_utf8(&frame).unwrap();
        assert!(text.starts_with("event: message\nid: 7\ndata: {"), "{text}");
        assert!(text.ends_with("}\n\n"));
        assert!(text.contains(r#""text":"hi \"there\"""#));
        assert_eq!(frame.as_ptr(), message_frame(&msg).as_ptr());
    }
}
