//! Sessions: one per netcat connection or browser login, each with a bounded outbound queue.
//!
//! A session is the core's view of a client: an id, a nick, the rooms it is in, and a queue into
//! which the core pushes [`Event`]s for it. The adapter that opened the session drains the queue
//! onto its socket or event stream. The core never waits on a client: it only `try_send`s.
//!
//! **The slow-consumer rule.** The queue is bounded in events and in bytes (`[server]
//! outbound_queue`, `outbound_queue_bytes`), and all queues together by the instance's budget
//! (`max_queued_bytes`; see `super::outbound`). When a client stops reading, its socket buffer
//! fills, its adapter stops draining, and its queue fills up. The next event for it that would
//! break a bound is refused and the session is *kicked*: marked with a reason (which bound) that
//! its adapter shows as a final notice before closing the connection. Nobody else ever waits for
//! it, and its memory stays bounded. This is the backpressure lesson: a fast room must not run at
//! the speed of its slowest reader.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use tokio_util::sync::{
    CancellationToken, WaitForCancellationFuture, WaitForCancellationFutureOwned,
};

use super::error::ChatError;
use super::event::Event;
use super::identity::{Protocol, SessionId};
use super::names::{Nick, RoomName};
use super::outbound::{Broadcast, Outbound, Overflow, Refused};

/// What the core knows about one connected client.
#[derive(Debug)]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// Which adapter serves it.
    pub protocol: Protocol,
    /// The client's address, when the adapter knows it.
    pub peer: Option<SocketAddr>,
    outbound: Outbound,
    closer: Closer,
    state: Mutex<SessionState>,
}

/// The server's way to end a session: shared by the session (which closes it when its queue
/// overflows) and the adapter (which waits for it, shows the reason and closes the transport).
#[derive(Debug, Clone, Default)]
pub struct Closer {
    inner: Arc<CloserInner>,
}

#[derive(Debug, Default)]
struct CloserInner {
    token: CancellationToken,
    reason: OnceLock<String>,
}

impl Closer {
    /// A closer that also closes, without a reason, when `parent` is cancelled (the server
    /// shutting down): a connection then waits on one future for both, polled once per turn of
    /// its loop. (Polling the server's shared token itself on every turn took a lock that every
    /// connection shares.)
    pub fn child_of(parent: &CancellationToken) -> Closer {
        Closer {
            inner: Arc::new(CloserInner {
                token: parent.child_token(),
                reason: OnceLock::new(),
            }),
        }
    }

    /// Ends the session; the first reason given wins. Returns whether this call closed it.
    pub fn close(&self, reason: impl Into<String>) -> bool {
        let first = self.inner.reason.set(reason.into()).is_ok();
        self.inner.token.cancel();
        first
    }

    /// Resolves once [`Closer::close`] has been called.
    pub fn closed(&self) -> WaitForCancellationFuture<'_> {
        self.inner.token.cancelled()
    }

    /// [`Closer::closed`] as a future that owns what it waits on, for a connection that keeps it
    /// between calls.
    pub fn closed_owned(&self) -> WaitForCancellationFutureOwned {
        self.inner.token.clone().cancelled_owned()
    }

    /// Why the session was closed, once it has been.
    pub fn reason(&self) -> Option<&str> {
        self.inner.reason.get().map(String::as_str)
    }
}

/// The mutable part of a session. Locked briefly, never across an `.await`.
#[derive(Debug)]
pub struct SessionState {
    /// The current nick.
    pub nick: Nick,
    /// The rooms it is in, in the order it joined them.
    pub rooms: Vec<RoomName>,
    /// Where a plain line goes: the room joined or selected last.
    pub current: Option<RoomName>,
}

/// Why an event did not reach a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undelivered {
    /// The queue was full (by this bound): the session has been kicked as a slow consumer.
    Kicked(Overflow),
    /// The adapter has gone; the session is being torn down.
    Closed,
}

impl Session {
    /// The current nick.
    pub fn nick(&self) -> Nick {
        self.state().nick.clone()
    }

    /// The mutable state, locked. Keep the guard short-lived.
    pub fn state(&self) -> MutexGuard<'_, SessionState> {
        // A panic while holding this lock cannot leave the state half-updated in a way that
        // matters more than losing the session, so a poisoned lock is used as is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `event` without waiting. A full queue kicks the session (see the module docs).
    ///
    /// # Errors
    /// [`Undelivered`] says why the event was not queued.
    pub fn deliver(&self, event: Event) -> Result<(), Undelivered> {
        self.delivered(self.outbound.try_send(event))
    }

    /// [`Session::deliver`] for an event handed to many sessions with one `broadcast` (a room's
    /// message or notice): the instance's budget counts its payload once.
    ///
    /// # Errors
    /// As [`Session::deliver`].
    pub fn deliver_shared(
        &self,
        event: Event,
        broadcast: &mut Broadcast,
    ) -> Result<(), Undelivered> {
        self.delivered(self.outbound.try_send_shared(event, broadcast))
    }

    fn delivered(&self, sent: Result<(), Refused>) -> Result<(), Undelivered> {
        match sent {
            Ok(()) => Ok(()),
            Err(Refused::Full(overflow)) => {
                let reason = format!("disconnected: you were not reading fast enough ({overflow})");
                // Only the first overflow kicks; later ones find a session already on its way out.
                if self.closer.close(reason) {
                    Err(Undelivered::Kicked(overflow))
                } else {
                    Err(Undelivered::Closed)
                }
            }
            Err(Refused::Closed) => Err(Undelivered::Closed),
        }
    }

    /// Ends the session from the server's side (a `/kill`): its adapter shows `reason` and
    /// closes the connection. Returns whether this call ended it.
    pub fn disconnect(&self, reason: impl Into<String>) -> bool {
        self.closer.close(reason)
    }

    /// Why the session was kicked, once it has been.
    pub fn kick_reason(&self) -> Option<&str> {
        self.closer.reason()
    }
}

/// All sessions of this process, by id and by nick.
#[derive(Debug, Default)]
pub struct Sessions {
    next_id: AtomicU64,
    inner: Mutex<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    by_id: HashMap<SessionId, Arc<Session>>,
    /// Nick key (`Nick::key`: case and look-alikes folded) -> owner: the uniqueness rule.
    by_nick: HashMap<String, SessionId>,
}

impl Sessions {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session with the requested nick, or a free `guest-NNNN` nick when `nick` is
    /// `None`.
    ///
    /// # Errors
    /// `Conflict` when the nick is taken.
    pub fn open(
        &self,
        protocol: Protocol,
        nick: Option<Nick>,
        peer: Option<SocketAddr>,
        outbound: Outbound,
        closer: Closer,
    ) -> Result<Arc<Session>, ChatError> {
        let mut reg = self.registry();
        let nick = match nick {
            Some(nick) if reg.by_nick.contains_key(&nick.key()) => {
                return Err(ChatError::conflict(format!("nick {nick} is taken")));
            }
            Some(nick) => nick,
            None => guest_nick(&reg.by_nick),
        };
        let id = SessionId(self.next_id.fetch_add(1, Ordering::Relaxed) + 1);
        let session = Arc::new(Session {
            id,
            protocol,
            peer,
            outbound,
            closer,
            state: Mutex::new(SessionState {
                nick: nick.clone(),
                // Room for one: most sessions are in one room, and a first push onto an empty
                // `Vec` would make room for four.
                rooms: Vec::with_capacity(1),
                current: None,
            }),
        });
        reg.by_nick.insert(nick.key(), id);
        reg.by_id.insert(id, session.clone());
        Ok(session)
    }

    /// The session with this id, if it is open.
    pub fn get(&self, id: SessionId) -> Option<Arc<Session>> {
        self.registry().by_id.get(&id).cloned()
    }

    /// The session that holds `nick` (case and look-alikes folded, as uniqueness is).
    pub fn find(&self, nick: &Nick) -> Option<Arc<Session>> {
        let reg = self.registry();
        let id = reg.by_nick.get(&nick.key())?;
        reg.by_id.get(id).cloned()
    }

    /// Gives session `id` the nick `new`, returning the old one.
    ///
    /// # Errors
    /// `Conflict` when another session has it; `NotFound` when `id` is not open.
    pub fn rename(&self, id: SessionId, new: Nick) -> Result<Nick, ChatError> {
        let mut reg = self.registry();
        let session = reg.by_id.get(&id).cloned().ok_or_else(unknown_session)?;
        match reg.by_nick.get(&new.key()) {
            Some(owner) if *owner != id => {
                return Err(ChatError::conflict(format!("nick {new} is taken")));
            }
            _ => {}
        }
        let old = std::mem::replace(&mut session.state().nick, new.clone());
        reg.by_nick.remove(&old.key());
        reg.by_nick.insert(new.key(), id);
        Ok(old)
    }

    /// Removes session `id`, freeing its nick.
    pub fn close(&self, id: SessionId) -> Option<Arc<Session>> {
        let mut reg = self.registry();
        let session = reg.by_id.remove(&id)?;
        reg.by_nick.remove(&session.nick().key());
        Some(session)
    }

    /// How many sessions are open.
    pub fn len(&self) -> usize {
        self.registry().by_id.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many open sessions each adapter serves, in [`Protocol::ALL`]'s order (for the
    /// metrics; counted under the registry lock, nothing copied).
    pub fn count_by_protocol(&self) -> [u64; 3] {
        let registry = self.registry();
        let mut counts = [0; 3];
        for session in registry.by_id.values() {
            if let Some(i) = Protocol::ALL.iter().position(|p| *p == session.protocol) {
                counts[i] += 1;
            }
        }
        counts
    }

    /// Every open session (for shutdown notices).
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.registry().by_id.values().cloned().collect()
    }

    /// The room memberships of every open session (one in three rooms counts three): what a
    /// shared presence directory should list for this instance.
    pub fn memberships(&self) -> usize {
        // Each session's state is read after the registry's lock is let go.
        self.all()
            .iter()
            .map(|session| session.state().rooms.len())
            .sum()
    }
}

/// The error for a request naming a session that is not open.
pub fn unknown_session() -> ChatError {
    ChatError::new(
        super::error::ErrorKind::Unauthenticated,
        "unknown or expired session",
    )
}

/// A free guest nick: `guest-` and four random digits, with more digits if those are crowded.
fn guest_nick(taken: &HashMap<String, SessionId>) -> Nick {
    let mut width = 4u32;
    loop {
        for _ in 0..16 {
            let n = rand::random_range(10u64.pow(width - 1)..10u64.pow(width));
            let candidate =
                Nick::parse(&format!("guest-{n}")).expect("guest nicks follow the nick rules");
            if !taken.contains_key(&candidate.key()) {
                return candidate;
            }
        }
        width += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(
        s: &Sessions,
        nick: Option<&str>,
    ) -> Result<(Arc<Session>, crate::core::outbound::Inbox), ChatError> {
        let (tx, rx) = crate::core::outbound::channel(2);
        let nick = nick.map(|n| Nick::parse(n).unwrap());
        s.open(Protocol::Tcp, nick, None, tx, Closer::default())
            .map(|session| (session, rx))
    }

    #[test]
    fn guests_get_distinct_guest_nicks() {
        let s = Sessions::default();
        let (a, _ra) = open(&s, None).unwrap();
        let (b, _rb) = open(&s, None).unwrap();
        assert!(a.nick().as_str().starts_with("guest-"));
        assert_eq!(a.nick().as_str().len(), "guest-1234".len());
        assert_ne!(a.nick(), b.nick());
        assert_ne!(a.id, b.id);
    }

    #[test]
    fn nicks_are_unique_case_insensitively() {
        let s = Sessions::default();
        let (a, _ra) = open(&s, Some("alice")).unwrap();
        let err = open(&s, Some("ALICE")).unwrap_err();
        assert_eq!(err.message, "nick ALICE is taken");
        let (b, _rb) = open(&s, Some("bob")).unwrap();
        assert!(s.rename(b.id, Nick::parse("Alice").unwrap()).is_err());
        // Renaming to yourself with other case is fine, and frees nothing else.
        assert_eq!(
            s.rename(a.id, Nick::parse("Alice").unwrap())
                .unwrap()
                .as_str(),
            "alice"
        );
        assert_eq!(a.nick().as_str(), "Alice");
        s.close(a.id);
        assert!(open(&s, Some("alice")).is_ok(), "closing frees the nick");
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn a_full_queue_kicks_the_session() {
        let s = Sessions::default();
        let (a, mut rx) = open(&s, None).unwrap();
        assert!(a.deliver(Event::notice("1")).is_ok());
        assert!(a.deliver(Event::notice("2")).is_ok());
        assert_eq!(a.kick_reason(), None);
        assert!(matches!(
            a.deliver(Event::notice("3")),
            Err(Undelivered::Kicked(_))
        ));
        assert!(a.kick_reason().unwrap().contains("not reading fast enough"));
        assert_eq!(
            a.deliver(Event::notice("3b")),
            Err(Undelivered::Closed),
            "kicked once only"
        );
        assert!(matches!(rx.try_recv(), Some(Event::Notice(t)) if t == "1"));
        drop(rx);
        assert_eq!(a.deliver(Event::notice("4")), Err(Undelivered::Closed));
    }
}
