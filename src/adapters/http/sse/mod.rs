//! `GET /messages/:room`: a room's history, then its live messages, as Server-Sent Events.
//!
//! **Gap-free resume.** A browser's `EventSource` reconnects by itself and sends the id of the
//! last event it got as `Last-Event-ID` (curl users pass `?last_event_id=N`). The stream then:
//!
//! 1. attaches to the room's live feed first (a tap, see `sessions`), so nothing that happens
//!    from now on can be missed;
//! 2. asks the core for the messages after N (`Command::Replay`), which also joins the room if
//!    needed and answers with `upto`, the last seq the replay covers, and its first page;
//! 3. sends the replay a page at a time (`stream`), then live events, dropping any live message
//!    with a seq at or below what was already sent: messages that arrived during the replay are
//!    in both, and go out once.
//!
//! Nothing is ever skipped in silence. When the missed range is longer than a replay holds (or
//! older than anything the server still keeps), the stream says so with `event: truncated` (and
//! the first seq it replays). A seq inside the replay, or later live, that the server cannot
//! deliver (a message lost in a crash before it was stored, one it gave up waiting for) is
//! announced with `event: gap` (`{"room","from","to"}`). And a client resuming after a seq the
//! room never reached (the server lost its numbering: no store, and a restart) gets
//! `event: reset` (`{"room","last_seq"}`): what follows is the room afresh, history then live.
//!
//! **Bounded, whoever the client is.** A replay is read a page at a time, and the next page only
//! once the client has taken the previous one (`stream`); each page costs a rate-limit token,
//! and a stream that finds its session's bucket empty waits for it rather than failing (at the
//! open, for a few seconds at most, then `429`). A session has at most
//! `[server] max_streams_per_session` streams and an address `max_streams_per_ip`: one more is
//! refused with `429` and `Retry-After`.
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
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::auth::{authenticate, percent_decode, query_param};
use super::frames::answer_frames;
use super::json::HttpError;
use super::stream::{BODY_QUEUE, Replay, Stream};
use super::{Body, Peer, State};
use crate::core::{ChatError, ErrorKind, OpenReplay, ReplayPage, Replayed, RoomName, SessionId};

/// How long a browser waits before reconnecting.
pub(super) const RETRY_MS: u64 = 2000;
/// How long an open waits for its session's rate-limit bucket before it is refused.
const OPEN_PATIENCE: Duration = Duration::from_secs(5);

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
    // The budgets first: a refused stream costs nothing more.
    let stats = state.ops.hub().stats_handle();
    let refused = |mut error: HttpError| {
        stats.streams_refused.inc();
        error.retry_after = Some(Duration::from_millis(RETRY_MS));
        error
    };
    let permit = match req.extensions().get::<Peer>() {
        Some(peer) => Some(
            state
                .options
                .stream_limits
                .admit(peer.0.ip())
                .map_err(|e| refused(HttpError::from(e)))?,
        ),
        None => None,
    };
    let (tap, live) = session
        .attach(
            room.clone(),
            &state.options.queue,
            state.options.max_streams_per_session,
            permit,
        )
        .map_err(|e| refused(HttpError::new(StatusCode::TOO_MANY_REQUESTS, e.to_string())))?;
    let Replayed {
        upto, page, reset, ..
    } = replay(state, session.id, &room, after).await?;
    let (frames, body) = mpsc::channel::<Bytes>(BODY_QUEUE);
    // A client ahead of this instance (it saw the newest messages elsewhere) is not sent them
    // again when they arrive here.
    let resumed_at = after.filter(|_| reset.is_none()).unwrap_or(0);
    let (opening, replay) = opening(&room, after, upto, page, reset);
    let stream = Stream {
        state: state.clone(),
        session: session.id,
        room,
        frames,
        live,
        _tap: tap,
        last_sent: upto.max(resumed_at),
        stats,
        replay,
    };
    state.tracker.spawn(stream.run(opening));

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

/// Asks the core to open the replay. An empty rate-limit bucket is waited for, up to
/// [`OPEN_PATIENCE`]: a browser's `EventSource` gives up on an error status, so a stream that
/// comes a little too fast is better late than refused.
async fn replay(
    state: &State,
    session: SessionId,
    room: &RoomName,
    after: Option<u64>,
) -> Result<Replayed, HttpError> {
    let give_up = Instant::now() + OPEN_PATIENCE;
    loop {
        let open = OpenReplay {
            room: room.clone(),
            after,
        };
        let err = match state.ask(Some(session), open).await {
            Ok(answered) => return Ok(answered.answer),
            Err(err) => ChatError::from_box(&err),
        };
        match err.kind {
            ErrorKind::RateLimited { retry_after } if Instant::now() + retry_after <= give_up => {
                tokio::select! {
                    _ = state.shutdown.cancelled() => return Err(err.into()),
                    _ = tokio::time::sleep(retry_after) => {}
                }
            }
            _ => return Err(err.into()),
        }
    }
}

/// The opening of a stream: the retry hint, a `reset` or `truncated` notice if needed, then the
/// replay's first page; and the rest of the replay, if any, for the stream to read.
pub(super) fn opening(
    room: &RoomName,
    after: Option<u64>,
    upto: u64,
    page: ReplayPage,
    reset: Option<u64>,
) -> (BytesMut, Option<Replay>) {
    let mut out = BytesMut::new();
    out.extend_from_slice(format!("retry: {RETRY_MS}\n\n").as_bytes());
    match (reset, after) {
        (Some(last_seq), _) => {
            let data = json!({ "room": room, "last_seq": last_seq });
            out.extend_from_slice(format!("event: reset\ndata: {data}\n\n").as_bytes());
        }
        // The first seq the page vouches for is after the resume point: the seqs between are
        // older than anything this server keeps (or than a replay holds).
        (None, Some(after)) if upto > after && page.answer.from > after + 1 => {
            let data = json!({ "room": room, "first_seq": page.answer.from });
            out.extend_from_slice(format!("event: truncated\ndata: {data}\n\n").as_bytes());
        }
        _ => {}
    }
    answer_frames(room, &page.answer, &mut out);
    let replay = Replay::after_first(page.until, upto, page.answer.messages.len());
    (out, replay)
}

#[cfg(test)]
mod tests;
