//! HTTP sessions: a token in place of a socket.
//!
//! A netcat session *is* its TCP connection. HTTP has no such thing (the seed's "stateful vs
//! stateless" lesson), so `POST /connect` opens a core session and hands back an opaque token
//! (256 random bits) that later requests carry. The core pushes the session's events into one
//! outbound queue, as for TCP; a dispatcher task reads it and hands each event to the event
//! streams (`GET /messages/:room`) open for that event's room, through a bounded queue per
//! stream, a "tap". A tap is the same queue as a TCP session's (`core::outbound`), with the same
//! bounds: `[server] outbound_queue` events, `outbound_queue_bytes` bytes, and the instance's
//! `max_queued_bytes` shared with every other queue.
//!
//! These rules keep memory bounded without losing anything a client can notice:
//! * A tap that is full (its browser reads too slowly) is cut: its stream ends, the browser's
//!   `EventSource` reconnects with `Last-Event-ID`, and the resume replays what it missed.
//! * A session has at most `[server] max_streams_per_session` streams open at once (a page
//!   streams a few rooms); one more is refused (HTTP 429), as is one beyond the address's
//!   `max_streams_per_ip` (counted by the stream, see `sse`).
//! * A session with no open stream and no request for `session_idle_secs` expires: it leaves its
//!   rooms like a disconnecting netcat user, and its nick is free again.
//! * A session that had a stream and has none left expires sooner, [`STREAM_GRACE`] after its
//!   last stream closed and its last request: that is a browser tab that was closed. Its nick and
//!   its place in member lists are free within seconds, not minutes; the grace is long enough for
//!   an `EventSource` to reconnect (after `retry: 2000` ms) or for a page to switch rooms. A
//!   client that never opened a stream (curl, a script) keeps the longer idle time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::adapters::limits::Permit;
use crate::core::outbound::{self, QueueLimits, Refused};
use crate::core::{Event, Inbox, Outbound, RoomName, SessionId, Stats};

/// How long a session that had event streams survives its last one, without requests (a closed
/// tab); see the module docs. Never longer than `session_idle_secs`.
pub const STREAM_GRACE: Duration = Duration::from_secs(10);

/// One logged-in HTTP client.
#[derive(Debug)]
pub struct HttpSession {
    /// The core session behind it.
    pub id: SessionId,
    /// The bearer token.
    pub token: String,
    last_seen: Mutex<Instant>,
    taps: Mutex<Vec<Tap>>,
    /// Counts the streams ever attached: a session that had one is a page, gone once its last
    /// stream has been closed for [`STREAM_GRACE`].
    next_tap: AtomicU64,
    /// Its slot in the per-address session limit, given back when the session is removed
    /// (not when the last handle drops: an event stream may hold one a little longer).
    permit: Mutex<Option<Permit>>,
}

#[derive(Debug)]
struct Tap {
    id: u64,
    room: RoomName,
    events: Outbound,
}

/// Detaches its tap when the stream ends (the browser left, or the server cut it), and gives
/// back the stream's place among its address's streams.
#[derive(Debug)]
pub struct TapGuard {
    session: Arc<HttpSession>,
    id: u64,
    _permit: Option<Permit>,
}

/// A session asked for more event streams than `max_streams_per_session`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyStreams {
    /// The limit.
    pub max: usize,
}

impl std::fmt::Display for TooManyStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "too many event streams for this session (max {}): close one first",
            self.max
        )
    }
}

impl Drop for TapGuard {
    fn drop(&mut self) {
        self.session.taps().retain(|tap| tap.id != self.id);
        self.session.touch(); // idleness counts from the last stream's end
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl HttpSession {
    fn taps(&self) -> MutexGuard<'_, Vec<Tap>> {
        lock(&self.taps)
    }

    /// Records activity, postponing expiry.
    pub fn touch(&self) {
        *lock(&self.last_seen) = Instant::now();
    }

    /// Starts receiving `room`'s events into a queue within `limits`: they arrive on the
    /// returned [`Inbox`] until the guard drops. The guard also holds `permit`, the stream's
    /// place among its address's streams.
    ///
    /// # Errors
    /// [`TooManyStreams`] when the session has `max` streams open already.
    pub fn attach(
        self: &Arc<Self>,
        room: RoomName,
        limits: &QueueLimits,
        max: usize,
        permit: Option<Permit>,
    ) -> Result<(TapGuard, Inbox), TooManyStreams> {
        let mut taps = self.taps();
        if taps.len() >= max {
            return Err(TooManyStreams { max });
        }
        let (tx, rx) = outbound::bounded(limits);
        let id = self.next_tap.fetch_add(1, Ordering::Relaxed);
        taps.push(Tap {
            id,
            room,
            events: tx,
        });
        drop(taps);
        let guard = TapGuard {
            session: self.clone(),
            id,
            _permit: permit,
        };
        Ok((guard, rx))
    }

    /// Hands `event` to the taps of its room; a full tap is cut (see the module docs) and
    /// counted in `stats` as a slow consumer.
    pub fn dispatch(&self, event: Event, stats: &Stats) {
        let room = match &event {
            Event::Message(msg) => Some(&msg.room),
            Event::Presence(presence) => Some(&presence.room),
            Event::Missed(missed) => Some(&missed.room),
            Event::Direct(_) => None, // said to the session: every open stream shows it
            Event::Notice(_) | Event::Error(_) => return, // replies travel in HTTP responses
        };
        self.taps().retain(|tap| {
            if room.is_some_and(|room| tap.room != *room) {
                return true;
            }
            match tap.events.try_send(event.clone()) {
                Ok(()) => true,
                Err(Refused::Full(overflow)) => {
                    stats.slow_consumer(overflow);
                    tracing::debug!(session = %self.id, room = %tap.room, %overflow, "event stream too slow; cutting it");
                    false
                }
                Err(Refused::Closed) => false,
            }
        });
    }

    /// Whether the session has had no open stream and no request for `idle`, or for `grace` when
    /// it had streams before (see the module docs).
    fn expired(&self, idle: Duration, grace: Duration) -> bool {
        let had_streams = self.next_tap.load(Ordering::Relaxed) > 0;
        let quiet = lock(&self.last_seen).elapsed();
        self.taps().is_empty() && (quiet >= idle || (had_streams && quiet >= grace.min(idle)))
    }
}

/// Every HTTP session, by token.
#[derive(Debug, Default)]
pub struct HttpSessions {
    by_token: Mutex<HashMap<String, Arc<HttpSession>>>,
}

impl HttpSessions {
    /// Registers a new session for core session `id`, holding `permit` (its slot in the
    /// session limits) until it is removed, and returns it with its fresh token.
    pub fn open(&self, id: SessionId, permit: Option<Permit>) -> Arc<HttpSession> {
        let token = new_token();
        let session = Arc::new(HttpSession {
            id,
            token: token.clone(),
            last_seen: Mutex::new(Instant::now()),
            taps: Mutex::default(),
            next_tap: AtomicU64::new(0),
            permit: Mutex::new(permit),
        });
        lock(&self.by_token).insert(token, session.clone());
        session
    }

    /// The session holding `token`, if any.
    pub fn get(&self, token: &str) -> Option<Arc<HttpSession>> {
        lock(&self.by_token).get(token).cloned()
    }

    /// Forgets a session; its token stops working at once.
    pub fn remove(&self, token: &str) -> Option<Arc<HttpSession>> {
        let session = lock(&self.by_token).remove(token)?;
        lock(&session.permit).take();
        Some(session)
    }

    /// Removes and returns the sessions without streams idle for at least `idle`, or for `grace`
    /// after their last stream closed.
    pub fn take_expired(&self, idle: Duration, grace: Duration) -> Vec<Arc<HttpSession>> {
        let mut map = lock(&self.by_token);
        let expired: Vec<String> = map
            .iter()
            .filter(|(_, s)| s.expired(idle, grace))
            .map(|(t, _)| t.clone())
            .collect();
        let expired: Vec<Arc<HttpSession>> = expired.iter().filter_map(|t| map.remove(t)).collect();
        for session in &expired {
            lock(&session.permit).take();
        }
        expired
    }
}

/// 256 random bits from the thread-local CSPRNG, as 64 hex digits.
fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
