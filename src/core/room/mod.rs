//! A room: who is in it, and delivery of its messages in sequence order.
//!
//! A [`Room`] is where the consistency promises are kept:
//!
//! * **In order.** Two members may send at the same moment; the route layer numbers their
//!   messages (say 7 and 8), but the two requests race through the layers and 8 may reach the
//!   fan-out first. [`Room::commit`] delivers strictly by seq: 8 waits in `pending` until 7 has
//!   been delivered or is known never to come. A client that has seen 8 has therefore seen 7 (or
//!   been told it is missing), which is what makes "resume after 8" (SSE `Last-Event-ID`) exact.
//!   Other instances' messages (phases 2 and 3) go through the same gate.
//! * **No gap, no duplicate on join.** `delivered` is the highest seq settled. A joiner is added
//!   under the same lock that delivery takes, with `after = delivered`: everything up to
//!   `delivered` it gets as history, everything after it live. No message falls between the two
//!   and none is in both. The history comes from the room's [`Recent`] memory, which the gate
//!   writes as it delivers (see `super::recent` for why that is the point where it must happen).
//! * **A hole is settled, never skipped silently.** A seq is settled in one of three ways: its
//!   message is delivered ([`Room::commit`]); it is known to carry no message, because its sender
//!   abandoned it ([`Room::abandon`]) or the store says so ([`Room::skip`]); or, when nobody can
//!   know, the room gives up on it ([`Room::give_up_until`]) and tells every member that those
//!   seqs will not be delivered (an [`Event::Missed`]).
//! * **Nothing is missing before the start.** A room listens to the bus before it reads where
//!   the store stands, so messages can arrive before [`Room::start`] says where its sequence
//!   begins. Until then it holds them, reports no gap and gives up on nothing: the seqs below
//!   them are unknown, not missing. Past [`MAX_PENDING`] it lets the newest go, which the store
//!   poll brings back once the room runs.
//!
//! The lock is a plain mutex held for microseconds and never across an `.await`; delivery inside
//! it is a non-blocking push per member (see [`super::session`] for the slow-consumer rule).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::event::{Event, Missed};
use super::identity::SessionId;
use super::message::{ChatMessage, Presence};
use super::names::{Nick, RoomName};
use super::outbound::Broadcast;
use super::recent::{Recent, RingRead};
use super::session::{Session, Undelivered};
use super::stats::Stats;

/// Out-of-order messages a room holds while waiting for a missing seq. Beyond this the oldest
/// gap is given up on, so that a lost message cannot make a room buffer without bound.
pub const MAX_PENDING: usize = 1024;

/// One chat room.
#[derive(Debug)]
pub struct Room {
    /// Its name.
    pub name: RoomName,
    /// This process's own numbering (the local sequencer, phase 1): the last seq handed out and
    /// the highest seq it may hand out before reserving more (see `super::sequencer`).
    last_seq: AtomicU64,
    ceiling: AtomicU64,
    /// Held while a block of seqs is being reserved, so that one reservation runs at a time.
    pub(crate) reserving: tokio::sync::Mutex<()>,
    /// Set once the room's stored history has been loaded (see [`Room::open_once`]).
    pub(crate) opened: tokio::sync::OnceCell<()>,
    /// Set while a bus may be listening to the room although it has not opened (see
    /// [`Room::may_be_listened`]).
    listened: AtomicBool,
    state: Mutex<RoomState>,
    stats: Arc<Stats>,
}

#[derive(Debug, Default)]
struct RoomState {
    members: HashMap<SessionId, Member>,
    /// The highest seq settled: delivered, or known or declared to carry nothing.
    delivered: u64,
    /// Seqs that arrived before their predecessor. `None` marks a seq that carries no message.
    pending: BTreeMap<u64, Option<Arc<ChatMessage>>>,
    /// Since when the oldest missing seq has been awaited (`None`: nothing is missing).
    gap_since: Option<Instant>,
    /// The newest delivered messages, and what the room gave up on.
    recent: Recent,
    /// Whether [`Room::start`] has said where the room's sequence begins. Before it, `delivered`
    /// is a placeholder, and the seqs below what is held are unknown rather than missing.
    started: bool,
}

/// A hole in a room's sequence: messages after it arrived, the ones in it have not (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The first missing seq.
    pub from: u64,
    /// The last missing seq before the first one held.
    pub to: u64,
    /// When the room started waiting for `from`.
    pub since: Instant,
}

#[derive(Debug)]
struct Member {
    session: Arc<Session>,
    /// Messages up to this seq were given to the member as history when it joined.
    after: u64,
}

/// What [`Room::join`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Joined {
    /// Whether the session was not a member before.
    pub new: bool,
    /// Members now.
    pub members: usize,
    /// History up to this seq is the joiner's to read; live delivery starts after it.
    pub upto: u64,
}

/// Where a room's delivery starts when it is opened: see [`Room::start`].
#[derive(Debug, Clone, Default)]
pub struct Start {
    /// Every seq up to this one is settled.
    pub at: u64,
    /// Seqs above `at` already known: their messages, or `None` for a seq known to carry none.
    pub pending: Vec<(u64, Option<Arc<ChatMessage>>)>,
    /// The newest messages at or below `at`, oldest first, to warm the room's memory with.
    pub history: Vec<Arc<ChatMessage>>,
    /// Whether `history` is all the room ever had.
    pub history_complete: bool,
    /// Ranges of seqs at or below `at` whose fate nobody knows (lost with a write queue in a
    /// crash, or jumped over by the numbering after one: some may have carried messages that were
    /// shown and never stored). Reads crossing them report them missing.
    pub unknown: Vec<(u64, u64)>,
}

impl Room {
    /// An empty room keeping `recent` delivered messages in memory; `stats` counts its
    /// deliveries.
    pub fn new(name: RoomName, stats: Arc<Stats>, recent: usize) -> Room {
        Room {
            name,
            last_seq: AtomicU64::new(0),
            ceiling: AtomicU64::new(u64::MAX),
            reserving: tokio::sync::Mutex::new(()),
            opened: tokio::sync::OnceCell::new(),
            listened: AtomicBool::new(false),
            state: Mutex::new(RoomState {
                recent: Recent::new(recent),
                ..RoomState::default()
            }),
            stats,
        }
    }

    fn state(&self) -> MutexGuard<'_, RoomState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next seq from this process's own counter, or `None` when the seqs reserved so far
    /// are used up (the local sequencer then reserves more and asks again).
    pub fn next_local_seq(&self) -> Option<u64> {
        let ceiling = self.ceiling.load(Ordering::Acquire);
        self.last_seq
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                (last < ceiling).then_some(last + 1)
            })
            .ok()
            .map(|last| last + 1)
    }

    /// The highest seq this process has handed out (or started after).
    pub fn last_local_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Acquire)
    }

    /// The highest seq this process may hand out without reserving more.
    pub fn local_ceiling(&self) -> u64 {
        self.ceiling.load(Ordering::Acquire)
    }

    /// Sets the highest seq this process may hand out (a block was reserved up to it).
    pub fn reserve_up_to(&self, ceiling: u64) {
        self.ceiling.store(ceiling, Ordering::Release);
    }

    /// Starts the room's delivery (and its own numbering) after `start.at`, with what is already
    /// known above it held in line, and its memory warmed with the stored history. Called once,
    /// when the room is opened (see the route layer); what arrived before is kept.
    pub fn start(&self, start: Start) {
        self.last_seq.fetch_max(start.at, Ordering::AcqRel);
        let mut st = self.state();
        st.started = true;
        st.recent.warm(&start.history, start.history_complete);
        for (from, to) in start.unknown {
            st.recent.lost(from, to);
        }
        if st.delivered < start.at {
            st.delivered = start.at;
            st.pending = st.pending.split_off(&(start.at + 1));
        }
        for (seq, entry) in start.pending {
            if seq > st.delivered {
                hold(&mut st.pending, seq, entry);
            }
        }
        self.drain_locked(&mut st);
    }

    /// Runs `open` the first time the room is used since the process started: the route layer
    /// loads the room's stored history there. Callers that arrive while it runs wait for it; if
    /// it fails, the next use tries again, so a store that was down at the first try cannot leave
    /// a room numbering from 1 again.
    ///
    /// # Errors
    /// Whatever `open` returned.
    pub async fn open_once<F, Fut, E>(&self, open: F) -> Result<(), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(), E>>,
    {
        self.opened.get_or_try_init(open).await.map(|_| ())
    }

    /// Whether the room has been opened (its stored history loaded and its starting point set).
    pub fn is_open(&self) -> bool {
        self.opened.initialized()
    }

    /// Whether a cross-instance bus may be listening to the room (a Valkey subscription, a
    /// poll's watch): it has opened, or an open asked the bus to listen and did not close that
    /// again. An open asks before it reads the store, so one dropped half-way (its client gone,
    /// a `timeout` layer) leaves the bus listening and nothing running to undo it; such a room
    /// is freed only by eviction, which closes the bus's state (see `core::rooms`).
    pub fn may_be_listened(&self) -> bool {
        self.is_open() || self.listened.load(Ordering::Relaxed)
    }

    /// The route layer's open says it asks the bus to listen (`true`, before it asks), or that a
    /// failed open has closed that again (`false`).
    pub fn set_listened(&self, asked: bool) {
        self.listened.store(asked, Ordering::Relaxed);
    }

    /// Adds `session` (or finds it already there).
    pub fn join(&self, session: &Arc<Session>) -> Joined {
        let mut st = self.state();
        let upto = st.delivered;
        let new = !st.members.contains_key(&session.id);
        if new {
            st.members.insert(
                session.id,
                Member {
                    session: session.clone(),
                    after: upto,
                },
            );
        }
        Joined {
            new,
            members: st.members.len(),
            upto,
        }
    }

    /// Removes `id`; returns whether it was a member.
    pub fn leave(&self, id: SessionId) -> bool {
        self.state().members.remove(&id).is_some()
    }

    /// Whether `id` is a member.
    pub fn is_member(&self, id: SessionId) -> bool {
        self.state().members.contains_key(&id)
    }

    /// No members, and no message ever numbered, held or delivered here.
    pub(crate) fn is_unused(&self) -> bool {
        let st = self.state();
        st.members.is_empty()
            && st.delivered == 0
            && st.pending.is_empty()
            && self.last_seq.load(Ordering::Relaxed) == 0
    }

    /// How many members it has.
    pub fn member_count(&self) -> usize {
        self.state().members.len()
    }

    /// The members' nicks, sorted case-insensitively.
    pub fn nicks(&self) -> Vec<Nick> {
        let sessions: Vec<Arc<Session>> = self
            .state()
            .members
            .values()
            .map(|m| m.session.clone())
            .collect();
        let mut nicks: Vec<Nick> = sessions.iter().map(|s| s.nick()).collect();
        nicks.sort_by_key(|n| n.as_str().to_ascii_lowercase());
        nicks
    }

    /// The highest seq settled so far.
    pub fn delivered(&self) -> u64 {
        self.state().delivered
    }

    /// The newest delivered messages in `after+1..=upto`, at most `limit`, from memory; see
    /// [`RingRead`] for whether that is the whole answer.
    pub fn recent(&self, after: u64, upto: u64, limit: usize) -> RingRead {
        self.state().recent.read(after, upto, limit)
    }

    /// The ranges within `from..=upto` this room gave up on without knowing their fate.
    pub fn lost_within(&self, from: u64, upto: u64) -> Vec<(u64, u64)> {
        self.state().recent.lost_within(from, upto)
    }

    /// Delivers `msg` to the members once every earlier seq is settled (see the module docs).
    /// Returns how many members it reached now (0 if it had to wait or was a duplicate).
    pub fn commit(&self, msg: Arc<ChatMessage>) -> usize {
        let mut st = self.state();
        if msg.seq <= st.delivered {
            return 0; // settled already: a duplicate (e.g. a re-sent remote message)
        }
        hold(&mut st.pending, msg.seq, Some(msg));
        self.bound_pending(&mut st);
        self.drain_locked(&mut st)
    }

    /// Declares that `seq` will never carry a message because its sender abandoned it (its
    /// request failed or was dropped after numbering), so the messages behind it need not wait.
    /// Returns false when it is too late: the message was delivered, or is held for delivery
    /// (committed), in which case it stands.
    pub fn abandon(&self, seq: u64) -> bool {
        let mut st = self.state();
        if seq <= st.delivered || st.pending.contains_key(&seq) {
            return false;
        }
        st.pending.insert(seq, None);
        self.drain_locked(&mut st);
        true
    }

    /// Settles `seq` as carrying no message: the store holds a tombstone for it (see
    /// `backends::gaps`). A message already held for it stands.
    pub fn skip(&self, seq: u64) {
        let mut st = self.state();
        if seq > st.delivered {
            st.pending.entry(seq).or_insert(None);
            self.drain_locked(&mut st);
        }
    }

    /// Stops waiting for every seq up to `seq` that has not arrived, without knowing whether
    /// messages with those seqs exist: each missing range is counted, logged, remembered and told
    /// to every member (an [`Event::Missed`]), and what was held behind it is delivered. Returns
    /// how many members the released messages reached.
    pub fn give_up_until(&self, seq: u64) -> usize {
        let mut st = self.state();
        self.give_up_locked(&mut st, seq);
        self.drain_locked(&mut st)
    }

    /// Marks the missing seqs up to `seq` as lost (see [`Room::give_up_until`]).
    fn give_up_locked(&self, st: &mut RoomState, seq: u64) {
        let mut from = st.delivered + 1;
        while from <= seq {
            if st.pending.contains_key(&from) {
                from += 1;
                continue;
            }
            let to = (from..=seq)
                .take_while(|s| !st.pending.contains_key(s))
                .last()
                .unwrap_or(from);
            tracing::warn!(room = %self.name, from, to, "gave up waiting for missing messages");
            self.stats
                .gaps_skipped
                .fetch_add(to - from + 1, Ordering::Relaxed);
            for s in from..=to {
                st.pending.insert(s, None);
            }
            st.recent.lost(from, to);
            let missed = Arc::new(Missed::new(self.name.clone(), from, to));
            let mut broadcast = Broadcast::new(st.members.len());
            for member in st.members.values() {
                self.hand(
                    &member.session,
                    Event::Missed(missed.clone()),
                    &mut broadcast,
                );
            }
            from = to + 1;
        }
    }

    /// Beyond [`MAX_PENDING`] held seqs, the oldest gap is given up on. Before the room has
    /// started, the newest held message is let go instead: nothing below it is known to be
    /// missing yet, and a message let go is a gap like a lost one once the room runs, filled
    /// from the store (the bus only feeds a room before its start under pub/sub, whose store
    /// poll reads what the room has not delivered).
    fn bound_pending(&self, st: &mut RoomState) {
        if st.pending.len() <= MAX_PENDING {
            return;
        }
        if !st.started {
            st.pending.pop_last();
        } else if let Some(&first) = st.pending.keys().next() {
            self.give_up_locked(st, first - 1);
        }
    }

    /// Delivers the held messages that are next in line, and notes whether a gap remains.
    fn drain_locked(&self, st: &mut RoomState) -> usize {
        let mut reached = 0;
        loop {
            let next = st.delivered + 1;
            let Some(entry) = st.pending.remove(&next) else {
                break;
            };
            st.delivered = next;
            if let Some(msg) = entry {
                reached += self.deliver_locked(st, &msg);
                st.recent.delivered(&msg);
            }
        }
        st.gap_since = match (st.pending.is_empty(), st.gap_since) {
            (true, _) => None,
            (false, None) => Some(Instant::now()),
            (false, since) => since,
        };
        reached
    }

    /// The hole the room is waiting to fill, if any. Cross-instance backends poll this: a gap
    /// that lasts is resolved through the store, or given up on with [`Room::give_up_until`].
    /// A room that has not started has none: what it holds waits for [`Room::start`] to say
    /// where its sequence begins, not for a missing message (so an idle room whose opening
    /// failed can be evicted, see `core::rooms`).
    pub fn gap(&self) -> Option<Gap> {
        let st = self.state();
        if !st.started {
            return None;
        }
        let first_held = *st.pending.keys().next()?;
        Some(Gap {
            from: st.delivered + 1,
            to: first_held - 1,
            since: st.gap_since.unwrap_or_else(Instant::now),
        })
    }

    fn deliver_locked(&self, st: &RoomState, msg: &Arc<ChatMessage>) -> usize {
        let sender = msg.sender();
        let mut reached = 0;
        msg.hand_out();
        let mut broadcast = Broadcast::new(st.members.len());
        for member in st.members.values() {
            let own = sender == Some(member.session.id);
            if msg.seq <= member.after || (own && !member.session.protocol.echoes_own_messages()) {
                continue;
            }
            reached += self.hand(&member.session, Event::Message(msg.clone()), &mut broadcast);
        }
        self.stats
            .deliveries
            .fetch_add(reached as u64, Ordering::Relaxed);
        reached
    }

    /// Queues `event`, one of `broadcast`'s, for `session`: 1 if it was queued, 0 if not (a
    /// full queue kicks the session, counted as a slow consumer).
    fn hand(&self, session: &Session, event: Event, broadcast: &mut Broadcast) -> usize {
        match session.deliver_shared(event, broadcast) {
            Ok(()) => 1,
            Err(Undelivered::Kicked(overflow)) => {
                self.stats.slow_consumer(overflow);
                0
            }
            Err(Undelivered::Closed) => 0,
        }
    }

    /// Tells every member except the one concerned about a membership change.
    pub fn announce(&self, presence: &Arc<Presence>) -> usize {
        let st = self.state();
        let mut reached = 0;
        let mut broadcast = Broadcast::new(st.members.len());
        for member in st
            .members
            .values()
            .filter(|m| Some(m.session.id) != presence.session)
        {
            let event = Event::Presence(presence.clone());
            reached += self.hand(&member.session, event, &mut broadcast);
        }
        reached
    }
}

/// Holds `entry` for `seq`: a message takes the place of a "nothing", never the other way round.
fn hold(
    pending: &mut BTreeMap<u64, Option<Arc<ChatMessage>>>,
    seq: u64,
    entry: Option<Arc<ChatMessage>>,
) {
    match pending.entry(seq) {
        Entry::Vacant(slot) => {
            slot.insert(entry);
        }
        Entry::Occupied(mut slot) => {
            if slot.get().is_none() && entry.is_some() {
                slot.insert(entry);
            }
        }
    }
}

#[cfg(test)]
mod tests;
