//! `GET /messages/:room`: a room's history, then its live messages, as Server-Sent Events.
//!
//! **Gap-free resume.** A browser's `EventSource` reconnects by itself and sends the id of the
//! last event it got as `Last-Event-ID` (curl users pass `?last_event_id=N`). The stream then:
//!
//! 1. attaches to the room's live feed first (a tap, see `sessions`), so nothing that happens
//!    from now on can be missed;
//! 2. asks the core for the messages after N (`Command::Replay`), which also joins the room if
//!    needed and answers with `upto`, the last seq the replay covers;
//! 3. sends the replay, then live events, dropping any live message with a seq at or below what
//!    was already sent: messages that arrived during the replay are in both, and go out once.
//!
//! Nothing is ever skipped in silence. When the missed range is longer than a replay holds (or
//! older than anything the server still keeps), the stream says so with `event: truncated` (and
//! the first seq it replays). A seq inside the replay, or later live, that the server cannot
//! deliver (a message lost in a crash before it was stored, one it gave up waiting for) is
//! announced with `event: gap` (`{"room","from","to"}`). And a client resuming after a seq the
//! room never reached (the server lost its numbering: no store, and a restart) gets
//! `event: reset` (`{"room","last_seq"}`): what follows is the room afresh, history then live.
//!
//! Each message's frame is rendered once and shared by every stream (`Wire::Sse`); the server
//! never compresses the stream, and pings every 15 s keep proxies from closing it.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::StreamBody;
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::json::HttpError;
use super::routes::{authenticate, percent_decode, query_param};
use super::sessions::TapGuard;
use super::{Body, State};
use crate::core::message::Wire;
use crate::core::{
    Action, ChatMessage, Command, Detail, Direct, Event, HistoryAnswer, Presence, PresenceKind,
    Request as ChatRequest, RoomName, Stats,
};

/// A comment line this often keeps idle streams open through proxies.
const PING: Duration = Duration::from_secs(15);
/// How long a browser waits before reconnecting.
const RETRY_MS: u64 = 2000;
/// Frames written to the socket ahead of the client.
const BODY_QUEUE: usize = 16;

/// Opens the stream; see the module docs.
pub(super) async fn open(
    state: &Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, HttpError> {
    let session = authenticate(state, &req)?;
    let raw_room = req.uri().path().trim_start_matches("/messages/");
    let room = RoomName::parse(&percent_decode(raw_room))?;
    let last_event_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| query_param(req.uri().query(), "last_event_id"));
    let after = match last_event_id {
        None => None,
        Some(raw) => Some(raw.trim().parse::<u64>().map_err(|_| {
            HttpError::new(
                StatusCode::BAD_REQUEST,
                format!("Last-Event-ID must be a message seq, not {raw:?}"),
            )
        })?),
    };
    let (tap, live) = session.attach(room.clone());
    let replay_room = Command::Replay {
        room: room.clone(),
        after,
    };
    let reply = state
        .call(ChatRequest::from(session.id, Action::Command(replay_room)))
        .await?;
    let Some(Detail::Replayed {
        upto,
        answer,
        reset,
        ..
    }) = reply.detail
    else {
        return Err(HttpError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the stack gave no replay",
        ));
    };
    let (frames, body) = mpsc::channel::<Bytes>(BODY_QUEUE);
    // A client ahead of this instance (it saw the newest messages elsewhere) is not sent them
    // again when they arrive here.
    let resumed_at = after.filter(|_| reset.is_none()).unwrap_or(0);
    let stream = Stream {
        frames,
        live,
        tap,
        last_sent: upto.max(resumed_at),
        stats: state.ops.hub().stats_handle(),
    };
    let opening = replay(&room, after, upto, &answer, reset);
    state
        .tracker
        .spawn(stream.run(state.shutdown.clone(), opening));

    let body = StreamBody::new(futures_util::stream::unfold(body, |mut body| async move {
        let frame = body.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(Frame::data(frame)), body))
    }));
    let mut response = Response::new(super::full(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The opening of a stream: the retry hint, a `reset` or `truncated` notice if needed, then the
/// replayed messages with a `gap` where the answer has a hole.
fn replay(
    room: &RoomName,
    after: Option<u64>,
    upto: u64,
    answer: &HistoryAnswer,
    reset: Option<u64>,
) -> BytesMut {
    let mut out = BytesMut::new();
    out.extend_from_slice(format!("retry: {RETRY_MS}\n\n").as_bytes());
    match (reset, after) {
        (Some(last_seq), _) => {
            let data = json!({ "room": room, "last_seq": last_seq });
            out.extend_from_slice(format!("event: reset\ndata: {data}\n\n").as_bytes());
        }
        (None, Some(after)) if upto > after && answer.from > after + 1 => {
            let data = json!({ "room": room, "first_seq": answer.from });
            out.extend_from_slice(format!("event: truncated\ndata: {data}\n\n").as_bytes());
        }
        _ => {}
    }
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
    out
}

/// `event: gap`: seqs `from..=to` of `room` will not be delivered on this stream.
fn gap_frame(room: &RoomName, from: u64, to: u64) -> Bytes {
    let data = json!({ "room": room, "from": from, "to": to });
    Bytes::from(format!("event: gap\ndata: {data}\n\n"))
}

/// One open stream.
struct Stream {
    frames: mpsc::Sender<Bytes>,
    live: mpsc::Receiver<Event>,
    /// Keeps the tap attached while the stream runs.
    #[allow(dead_code)]
    tap: TapGuard,
    last_sent: u64,
    /// Where a live message's delivery latency is recorded.
    stats: Arc<Stats>,
}

impl Stream {
    async fn run(mut self, shutdown: tokio_util::sync::CancellationToken, mut out: BytesMut) {
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING, PING);
        loop {
            if !out.is_empty() {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    sent = self.frames.send(out.split().freeze()) => if sent.is_err() { return },
                }
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                _ = self.frames.closed() => return, // the client went away
                event = self.live.recv() => match event {
                    None => return, // cut as too slow, or the session ended: the browser resumes
                    Some(event) => {
                        self.push(event, &mut out);
                        while let Ok(event) = self.live.try_recv() {
                            self.push(event, &mut out);
                        }
                    }
                },
                _ = ping.tick() => out.extend_from_slice(b": ping\n\n"),
            }
        }
    }

    fn push(&mut self, event: Event, out: &mut BytesMut) {
        match event {
            Event::Message(msg) if msg.seq > self.last_sent => {
                self.last_sent = msg.seq;
                self.stats.handed_over(&msg);
                out.extend_from_slice(&message_frame(&msg));
            }
            Event::Presence(presence) => out.extend_from_slice(&presence_frame(&presence)),
            Event::Direct(direct) => out.extend_from_slice(&direct_frame(&direct)),
            Event::Missed(missed) if missed.to > self.last_sent => {
                let from = missed.from.max(self.last_sent + 1);
                self.last_sent = missed.to;
                out.extend_from_slice(&gap_frame(&missed.room, from, missed.to));
            }
            _ => {} // already sent in the replay, or not for streams
        }
    }
}

/// `event: message` with the seq as its id, rendered once per message.
fn message_frame(msg: &ChatMessage) -> Bytes {
    msg.wire(Wire::Sse, |m| {
        Bytes::from(format!(
            "event: message\nid: {}\ndata: {}\n\n",
            m.seq,
            message_json(m)
        ))
    })
}

/// `event: presence`, rendered once per change.
fn presence_frame(presence: &Presence) -> Bytes {
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
fn direct_frame(direct: &Direct) -> Bytes {
    let data = json!({ "from": direct.from, "text": direct.text(), "id": direct.id });
    Bytes::from(format!("event: direct\ndata: {data}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::sample;

    fn general() -> RoomName {
        RoomName::parse("general").unwrap()
    }

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

    fn answer(
        seqs: impl IntoIterator<Item = u64>,
        from: u64,
        missing: Vec<(u64, u64)>,
    ) -> HistoryAnswer {
        HistoryAnswer {
            messages: seqs
                .into_iter()
                .map(|s| sample("general", s, "a", "x"))
                .collect(),
            from,
            missing,
        }
    }

    fn text(out: &BytesMut) -> &str {
        std::str::from_utf8(out).unwrap()
    }

    #[test]
    fn a_resume_from_too_far_back_is_truncated() {
        let out = replay(&general(), Some(3), 50, &answer(41..=50, 41, vec![]), None);
        assert!(
            text(&out).contains("event: truncated\ndata: {\"first_seq\":41,\"room\":\"general\"}"),
            "{}",
            text(&out)
        );
        let out = replay(&general(), Some(40), 50, &answer(41..=50, 41, vec![]), None);
        assert!(!text(&out).contains("truncated"));
        let out = replay(&general(), Some(50), 50, &answer([], 51, vec![]), None);
        assert!(!text(&out).contains("truncated"), "up to date");
    }

    #[test]
    fn a_hole_in_a_replay_is_announced_where_it_is() {
        let out = replay(
            &general(),
            Some(5),
            12,
            &answer([6, 7, 11, 12], 6, vec![(8, 10)]),
            None,
        );
        let text = text(&out);
        let seven = text.find("id: 7\n").unwrap();
        let gap = text
            .find("event: gap\ndata: {\"from\":8,\"room\":\"general\",\"to\":10}")
            .unwrap();
        let eleven = text.find("id: 11\n").unwrap();
        assert!(seven < gap && gap < eleven, "{text}");
        assert!(!text.contains("truncated"));
    }

    #[test]
    fn a_numbering_the_server_lost_is_a_reset_then_the_room_afresh() {
        let out = replay(&general(), Some(500), 3, &answer(1..=3, 1, vec![]), Some(3));
        let text = text(&out);
        assert!(
            text.contains("event: reset\ndata: {\"last_seq\":3,\"room\":\"general\"}"),
            "{text}"
        );
        assert!(text.find("event: reset").unwrap() < text.find("id: 1\n").unwrap());
    }
}
