//! HTTP sessions: a token in place of a socket.
//!
//! A netcat session *is* its TCP connection. HTTP has no such thing (the seed's "stateful vs
//! stateless" lesson), so `POST /connect` opens a core session and hands back an opaque token
//! (256 random bits) that later requests carry. The core pushes the session's events into one
//! outbound queue, as for TCP; a dispatcher task reads it and hands each event to the event
//! streams (`GET /messages/:room`) open for that event's room, through a small bounded queue per
//! stream, a "tap".
//!
//! Two rules keep memory bounded without losing anything a client can notice:
//! * A tap that is full (its browser reads too slowly) is cut: its stream ends, the browser's
//!   `EventSource` reconnects with `Last-Event-ID`, and the resume replays what it missed.
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

use tokio::sync::mpsc;

use crate::adapters::limits::Permit;
use crate::core::{Event, RoomName, SessionId};

/// Events a stream may have waiting before it is cut as too slow.
pub const TAP_QUEUE: usize = 256;

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
    events: mpsc::Sender<Event>,
}

/// Detaches its tap when the stream ends (the browser left, or the server cut it).
#[derive(Debug)]
pub struct TapGuard {
    session: Arc<HttpSession>,
    id: u64,
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

    /// Starts receiving `room`'s events; they arrive on the returned queue until the guard drops.
    pub fn attach(self: &Arc<Self>, room: RoomName) -> (TapGuard, mpsc::Receiver<Event>) {
        let (tx, rx) = mpsc::channel(TAP_QUEUE);
        let id = self.next_tap.fetch_add(1, Ordering::Relaxed);
        self.taps().push(Tap {
            id,
            room,
            events: tx,
        });
        (
            TapGuard {
                session: self.clone(),
                id,
            },
            rx,
        )
    }

    /// Hands `event` to the taps of its room; a full tap is cut (see the module docs).
    pub fn dispatch(&self, event: Event) {
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
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::debug!(session = %self.id, room = %tap.room, "event stream too slow; cutting it");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
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
mod tests {
    use super::*;
    use crate::core::message::sample;

    #[test]
    fn tokens_are_long_and_distinct() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn events_reach_only_their_rooms_taps_and_full_taps_are_cut() {
        let sessions = HttpSessions::default();
        let s = sessions.open(SessionId(1), None);
        let general = RoomName::parse("general").unwrap();
        let (_g, mut general_rx) = s.attach(general.clone());
        let (_r, mut random_rx) = s.attach(RoomName::parse("random").unwrap());
        s.dispatch(Event::Message(sample("general", 1, "a", "hi")));
        assert!(general_rx.try_recv().is_ok());
        assert!(random_rx.try_recv().is_err());
        for seq in 0..=TAP_QUEUE as u64 {
            s.dispatch(Event::Message(sample("general", seq + 2, "a", "flood")));
        }
        assert_eq!(
            s.taps().len(),
            1,
            "the full general tap was cut, random stays"
        );
    }

    #[test]
    fn sessions_expire_only_without_streams() {
        let sessions = HttpSessions::default();
        let s = sessions.open(SessionId(1), None);
        let guard = s.attach(RoomName::parse("general").unwrap());
        assert!(
            sessions
                .take_expired(Duration::ZERO, Duration::ZERO)
                .is_empty(),
            "an open stream keeps it alive"
        );
        drop(guard);
        let expired = sessions.take_expired(Duration::ZERO, Duration::ZERO);
        assert_eq!(expired.len(), 1);
        assert!(sessions.get(&s.token).is_none());
    }

    #[test]
    fn a_session_whose_streams_closed_expires_after_the_grace_not_the_idle_time() {
        let sessions = HttpSessions::default();
        let page = sessions.open(SessionId(1), None);
        let script = sessions.open(SessionId(2), None);
        drop(page.attach(RoomName::parse("general").unwrap()));
        let hour = Duration::from_secs(3600);
        let expired = sessions.take_expired(hour, Duration::ZERO);
        assert_eq!(
            expired.iter().map(|s| s.id).collect::<Vec<_>>(),
            [SessionId(1)],
            "the closed page goes, the client that never streamed stays"
        );
        assert!(sessions.get(&script.token).is_some());
        assert!(
            sessions.take_expired(hour, hour).is_empty(),
            "within the grace nothing expires"
        );
    }
}
