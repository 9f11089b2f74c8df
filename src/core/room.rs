//! Rooms: who is in them, and delivery of their messages in sequence order.
//!
//! A [`Room`] is where two consistency promises are kept:
//!
//! * **In order.** Two members may send at the same moment; the route layer numbers their
//!   messages (say 7 and 8), but the two requests race through the layers and 8 may reach the
//!   fan-out first. [`Room::commit`] delivers strictly by seq: 8 waits in `pending` until 7 has
//!   been delivered. A client that has seen 8 has therefore seen 7, which is what makes "resume
//!   after 8" (SSE `Last-Event-ID`) gap-free. Other instances' messages (phases 2 and 3) go through
//!   the same gate.
//! * **No gap, no duplicate on join.** `delivered` is the highest seq handed to members. A joiner
//!   is added under the same lock that delivery takes, with `after = delivered`: everything up to
//!   `delivered` it gets as history (the history layer reads with `upto = delivered`), everything
//!   after it gets live. No message falls between the two and none is in both.
//!
//! The lock is a plain mutex held for microseconds and never across an `.await`; delivery inside
//! it is a non-blocking `try_send` per member (see [`super::session`] for the slow-consumer rule).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::event::Event;
use super::message::{ChatMessage, Presence};
use super::names::{Nick, RoomName};
use super::session::{Session, SessionId, Undelivered};
use super::stats::Stats;

/// Out-of-order messages a room holds while waiting for a missing seq. Beyond this the gap is
/// declared lost, so that a lost message cannot make a room buffer without bound.
pub const MAX_PENDING: usize = 1024;

/// One chat room.
#[derive(Debug)]
pub struct Room {
    /// Its name.
    pub name: RoomName,
    /// The last seq handed out by the local sequencer (phase 1).
    last_seq: AtomicU64,
    /// Set once the room's stored history has been loaded (see [`Room::open_once`]).
    opened: tokio::sync::OnceCell<()>,
    state: Mutex<RoomState>,
    stats: Arc<Stats>,
}

#[derive(Debug, Default)]
struct RoomState {
    members: HashMap<SessionId, Member>,
    /// The highest seq delivered to members; everything at or below it is settled.
    delivered: u64,
    /// Messages that arrived before their predecessor. `None` marks a seq that will never come.
    pending: BTreeMap<u64, Option<Arc<ChatMessage>>>,
    /// Since when the oldest missing seq has been awaited (`None`: nothing is missing).
    gap_since: Option<Instant>,
}

/// A hole in a room's sequence: messages after it arrived, the ones in it have not (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The first missing seq.
    pub from: u64,
    /// The last missing seq before the first message held.
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

impl Room {
    /// An empty room; `stats` counts its deliveries.
    pub fn new(name: RoomName, stats: Arc<Stats>) -> Room {
        Room {
            name,
            last_seq: AtomicU64::new(0),
            opened: tokio::sync::OnceCell::new(),
            state: Mutex::default(),
            stats,
        }
    }

    fn state(&self) -> MutexGuard<'_, RoomState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next seq from this process's own counter (the local sequencer).
    pub fn next_local_seq(&self) -> u64 {
        self.last_seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Moves both the local counter and the delivery point to at least `seq`: used when a room's
    /// history is loaded from somewhere (a store, another instance) so numbering continues. A
    /// message held for `seq + 1` (another instance's, received while the room was opening) is
    /// delivered now rather than waiting for the next one.
    pub fn settle_at(&self, seq: u64) {
        self.last_seq.fetch_max(seq, Ordering::Relaxed);
        let mut st = self.state();
        if st.delivered < seq {
            st.delivered = seq;
            st.pending.retain(|&s, _| s > seq);
            self.drain_locked(&mut st);
        }
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
    fn is_unused(&self) -> bool {
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
        nicks.sort_by_key(|n| n.key());
        nicks
    }

    /// The highest seq delivered so far.
    pub fn delivered(&self) -> u64 {
        self.state().delivered
    }

    /// Delivers `msg` to the members once every earlier seq has been delivered (see the module
    /// docs). Returns how many members it reached now (0 if it had to wait or was a duplicate).
    pub fn commit(&self, msg: Arc<ChatMessage>) -> usize {
        self.settle(msg.seq, Some(msg))
    }

    /// Declares that `seq` will never be committed (its request failed after being numbered), so
    /// the messages behind it need not wait for it.
    pub fn skip(&self, seq: u64) {
        self.settle(seq, None);
    }

    fn settle(&self, seq: u64, msg: Option<Arc<ChatMessage>>) -> usize {
        let mut st = self.state();
        if seq <= st.delivered {
            return 0; // already delivered: a duplicate (e.g. a re-sent remote message)
        }
        st.pending.insert(seq, msg);
        if st.pending.len() > MAX_PENDING {
            // The oldest gap is not coming: give up on it and go on from the first message held.
            let first = st.pending.keys().next().copied().unwrap_or(seq);
            tracing::warn!(room = %self.name, from = st.delivered + 1, to = first - 1,
                "gave up waiting for missing messages");
            self.stats
                .gaps_skipped
                .fetch_add(first - 1 - st.delivered, Ordering::Relaxed);
            st.delivered = first - 1;
        }
        self.drain_locked(&mut st)
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
    /// that lasts is filled from the store, or given up on with [`Room::give_up_until`].
    pub fn gap(&self) -> Option<Gap> {
        let st = self.state();
        let first_held = *st.pending.keys().next()?;
        Some(Gap {
            from: st.delivered + 1,
            to: first_held - 1,
            since: st.gap_since.unwrap_or_else(Instant::now),
        })
    }

    /// Stops waiting for every seq up to `seq` that has not arrived (counted as lost, and logged
    /// loudly), and delivers what was held behind them.
    pub fn give_up_until(&self, seq: u64) -> usize {
        let missing: Vec<u64> = {
            let st = self.state();
            (st.delivered + 1..=seq)
                .filter(|s| !st.pending.contains_key(s))
                .collect()
        };
        if !missing.is_empty() {
            tracing::error!(room = %self.name, first = missing[0], count = missing.len(),
                "gave up waiting for missing messages");
            self.stats
                .gaps_skipped
                .fetch_add(missing.len() as u64, Ordering::Relaxed);
        }
        missing.into_iter().map(|s| self.settle(s, None)).sum()
    }

    fn deliver_locked(&self, st: &RoomState, msg: &Arc<ChatMessage>) -> usize {
        let sender = msg.sender();
        let mut reached = 0;
        for member in st.members.values() {
            let own = sender == Some(member.session.id);
            if msg.seq <= member.after || (own && !member.session.protocol.echoes_own_messages()) {
                continue;
            }
            reached += self.hand(&member.session, Event::Message(msg.clone()));
        }
        self.stats
            .deliveries
            .fetch_add(reached as u64, Ordering::Relaxed);
        reached
    }

    /// Queues `event` for `session`: 1 if it was queued, 0 if not (a full queue kicks the
    /// session, counted as a slow consumer).
    fn hand(&self, session: &Session, event: Event) -> usize {
        match session.deliver(event) {
            Ok(()) => 1,
            Err(Undelivered::Kicked) => {
                self.stats.slow_consumers.inc();
                0
            }
            Err(Undelivered::Closed) => 0,
        }
    }

    /// Tells every member except the one concerned about a membership change.
    pub fn announce(&self, presence: &Arc<Presence>) -> usize {
        let st = self.state();
        let mut reached = 0;
        for member in st
            .members
            .values()
            .filter(|m| Some(m.session.id) != presence.session)
        {
            reached += self.hand(&member.session, Event::Presence(presence.clone()));
        }
        reached
    }
}

/// The instance keeps as many rooms as `route.max_rooms` allows and `name` is not one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyRooms {
    /// The limit.
    pub max: usize,
}

/// Every room of this process.
#[derive(Debug, Default)]
pub struct Rooms {
    map: Mutex<HashMap<RoomName, Arc<Room>>>,
    stats: Arc<Stats>,
    /// Set when a cross-instance bus keeps per-room state (a Valkey subscription, a poll watch)
    /// for every room opened here: such rooms are never freed (see [`Rooms::release_if_unused`]).
    keep_opened: AtomicBool,
    /// Rooms the store holds messages of, read once at start ([`Rooms::remember_stored`]): listed
    /// by `/rooms` with no members until they are used, without costing a `Room` each.
    stored: Mutex<Vec<RoomName>>,
}

impl Rooms {
    /// An empty registry whose rooms count into `stats`.
    pub fn new(stats: Arc<Stats>) -> Rooms {
        Rooms {
            map: Mutex::default(),
            stats,
            keep_opened: AtomicBool::new(false),
            stored: Mutex::default(),
        }
    }

    /// Remembers the names of rooms with stored history, so that [`Rooms::list`] (and `/rooms`)
    /// shows them after a restart, with 0 members, before anybody joins them.
    pub fn remember_stored(&self, names: Vec<RoomName>) {
        *self.stored.lock().unwrap_or_else(|p| p.into_inner()) = names;
    }

    /// From now on, a room that was opened (`Room::open_once`) is never freed: the pipeline's
    /// bus holds state for it that freeing the room would leak (`pipeline::build` calls this when
    /// the fan-out crosses instances). `route.max_rooms` then bounds the rooms and that state.
    pub fn keep_opened_rooms(&self) {
        self.keep_opened.store(true, Ordering::Relaxed);
    }

    fn map(&self) -> MutexGuard<'_, HashMap<RoomName, Arc<Room>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The room called `name`, created on first use.
    pub fn get_or_create(&self, name: &RoomName) -> Arc<Room> {
        self.map()
            .entry(name.clone())
            .or_insert_with(|| Arc::new(Room::new(name.clone(), self.stats.clone())))
            .clone()
    }

    /// The room called `name`, created on first use unless there are `max` rooms already.
    ///
    /// # Errors
    /// [`TooManyRooms`] when `name` does not exist and `max` rooms do.
    pub fn get_or_create_within(
        &self,
        name: &RoomName,
        max: usize,
    ) -> Result<Arc<Room>, TooManyRooms> {
        let mut map = self.map();
        if let Some(room) = map.get(name) {
            return Ok(room.clone());
        }
        if map.len() >= max {
            return Err(TooManyRooms { max });
        }
        let room = Arc::new(Room::new(name.clone(), self.stats.clone()));
        map.insert(name.clone(), room.clone());
        Ok(room)
    }

    /// Forgets room `name` if nothing would be lost: it has no members, never had a message
    /// (so there is no numbering to continue and no history ring to keep), and nobody else
    /// holds it at this moment (a join in progress does). Returns whether it was freed.
    ///
    /// This is what keeps `/join x1`, `/leave`, `/join x2`, ... from filling the registry: a
    /// room that only ever had visitors costs nothing once they are gone. A room that carried
    /// messages stays until restart, counted against `route.max_rooms`: freeing it would
    /// restart its numbering at 1 under the feet of event streams resuming with
    /// `Last-Event-ID`, and would need the history ring and the fan-out backends' per-room
    /// state dropped in step. For the same reason, with a cross-instance bus
    /// ([`Rooms::keep_opened_rooms`]) a room that was opened stays too.
    pub fn release_if_unused(&self, name: &RoomName) -> bool {
        let keep_opened = self.keep_opened.load(Ordering::Relaxed);
        let mut map = self.map();
        let unused = map.get(name).is_some_and(|room| {
            // The map's own reference is the only one: nobody is between a lookup and a join.
            Arc::strong_count(room) == 1
                && room.is_unused()
                && !(keep_opened && room.opened.initialized())
        });
        if unused {
            map.remove(name);
        }
        unused
    }

    /// How many rooms exist.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether there are no rooms.
    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    /// The room called `name`, if it exists.
    pub fn get(&self, name: &RoomName) -> Option<Arc<Room>> {
        self.map().get(name).cloned()
    }

    /// Every room with its member count, sorted by name; the rooms of the store not opened since
    /// start (see [`Rooms::remember_stored`]) with 0.
    pub fn list(&self) -> Vec<(RoomName, usize)> {
        let rooms: Vec<Arc<Room>> = self.map().values().cloned().collect();
        let mut list: Vec<(RoomName, usize)> = rooms
            .iter()
            .map(|r| (r.name.clone(), r.member_count()))
            .collect();
        let stored = self
            .stored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for name in stored {
            if !list.iter().any(|(listed, _)| *listed == name) {
                list.push((name, 0));
            }
        }
        list.sort();
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::sample;
    use crate::core::outbound::{self, Inbox};
    use crate::core::request::Protocol;
    use crate::core::session::{Closer, Sessions};

    fn member(sessions: &Sessions, protocol: Protocol) -> (Arc<Session>, Inbox) {
        let (tx, rx) = outbound::channel(64);
        (
            sessions
                .open(protocol, None, None, tx, Closer::default())
                .unwrap(),
            rx,
        )
    }

    fn received(rx: &mut Inbox) -> Vec<u64> {
        let mut seqs = Vec::new();
        while let Some(event) = rx.try_recv() {
            if let Event::Message(m) = event {
                seqs.push(m.seq);
            }
        }
        seqs
    }

    fn room() -> Room {
        Room::new(RoomName::parse("general").unwrap(), Arc::default())
    }

    #[test]
    fn delivery_waits_for_the_missing_seq() {
        let sessions = Sessions::default();
        let room = room();
        let (a, mut rx) = member(&sessions, Protocol::Tcp);
        room.join(&a);
        assert_eq!(
            room.commit(sample("general", 2, "x", "second")),
            0,
            "2 waits for 1"
        );
        assert_eq!(room.commit(sample("general", 3, "x", "third")), 0);
        assert!(received(&mut rx).is_empty());
        assert_eq!(room.commit(sample("general", 1, "x", "first")), 3);
        assert_eq!(received(&mut rx), vec![1, 2, 3]);
        assert_eq!(room.delivered(), 3);
    }

    #[test]
    fn duplicates_are_dropped() {
        let sessions = Sessions::default();
        let room = room();
        let (a, mut rx) = member(&sessions, Protocol::Tcp);
        room.join(&a);
        room.commit(sample("general", 1, "x", "once"));
        assert_eq!(room.commit(sample("general", 1, "x", "once")), 0);
        assert_eq!(received(&mut rx), vec![1]);
    }

    #[test]
    fn a_skipped_seq_releases_the_ones_behind_it() {
        let sessions = Sessions::default();
        let room = room();
        let (a, mut rx) = member(&sessions, Protocol::Tcp);
        room.join(&a);
        room.commit(sample("general", 2, "x", "waits"));
        room.skip(1);
        assert_eq!(received(&mut rx), vec![2]);
    }

    #[test]
    fn a_joiner_gets_live_only_what_is_after_its_history() {
        let sessions = Sessions::default();
        let room = room();
        room.commit(sample("general", 1, "x", "before"));
        room.commit(sample("general", 3, "x", "in flight"));
        let (a, mut rx) = member(&sessions, Protocol::Tcp);
        let joined = room.join(&a);
        assert_eq!(
            joined,
            Joined {
                new: true,
                members: 1,
                upto: 1
            }
        );
        room.commit(sample("general", 2, "x", "late"));
        assert_eq!(
            received(&mut rx),
            vec![2, 3],
            "history covers 1; 2 and 3 arrive live"
        );
        assert!(!room.join(&a).new);
    }

    #[test]
    fn senders_get_their_own_message_only_over_http() {
        let sessions = Sessions::default();
        let room = room();
        let (tcp, mut tcp_rx) = member(&sessions, Protocol::Tcp);
        let (http, mut http_rx) = member(&sessions, Protocol::Http);
        room.join(&tcp);
        room.join(&http);
        let own = |id| {
            Arc::new(ChatMessage::new(
                RoomName::parse("general").unwrap(),
                room.next_local_seq(),
                Nick::parse("me").unwrap(),
                "mine".into(),
                crate::core::Origin::Local(id),
            ))
        };
        room.commit(own(tcp.id));
        room.commit(own(http.id));
        assert_eq!(received(&mut tcp_rx), vec![2]);
        assert_eq!(received(&mut http_rx), vec![1, 2]);
    }

    #[test]
    fn too_many_pending_gives_up_on_the_gap() {
        let room = room();
        for seq in 2..=(MAX_PENDING as u64 + 2) {
            room.commit(sample("general", seq, "x", "y"));
        }
        assert_eq!(room.delivered(), MAX_PENDING as u64 + 2);
        assert_eq!(room.stats.gaps_skipped.get(), 1);
    }

    #[test]
    fn settle_at_releases_a_message_held_for_the_next_seq() {
        let sessions = Sessions::default();
        let room = room();
        let (a, mut rx) = member(&sessions, Protocol::Tcp);
        room.join(&a);
        room.commit(sample("general", 42, "x", "arrived while opening"));
        room.settle_at(41);
        assert_eq!(received(&mut rx), vec![42]);
        assert_eq!(room.gap(), None);
    }

    #[test]
    fn settle_at_continues_numbering() {
        let room = room();
        room.settle_at(41);
        assert_eq!(room.next_local_seq(), 42);
        assert_eq!(room.delivered(), 41);
    }

    #[test]
    fn rooms_registry_lists_sorted_with_counts() {
        let sessions = Sessions::default();
        let rooms = Rooms::new(Arc::default());
        let (a, _rx) = member(&sessions, Protocol::Tcp);
        rooms
            .get_or_create(&RoomName::parse("zeta").unwrap())
            .join(&a);
        rooms.get_or_create(&RoomName::parse("alpha").unwrap());
        let names: Vec<(String, usize)> = rooms
            .list()
            .into_iter()
            .map(|(n, c)| (n.to_string(), c))
            .collect();
        assert_eq!(
            names,
            vec![("alpha".to_string(), 0), ("zeta".to_string(), 1)]
        );
        assert!(rooms.get(&RoomName::parse("nope").unwrap()).is_none());
    }

    #[test]
    fn stored_rooms_are_listed_once_with_no_members_until_used() {
        let sessions = Sessions::default();
        let rooms = Rooms::new(Arc::default());
        let name = |n: &str| RoomName::parse(n).unwrap();
        rooms.remember_stored(vec![name("general"), name("old")]);
        let (a, _rx) = member(&sessions, Protocol::Tcp);
        rooms.get_or_create(&name("general")).join(&a);
        assert_eq!(rooms.list(), vec![(name("general"), 1), (name("old"), 0)]);
        assert_eq!(
            rooms.len(),
            1,
            "a stored room costs no Room until it is used"
        );
    }

    #[test]
    fn the_registry_is_bounded_and_frees_rooms_that_never_carried_a_message() {
        let sessions = Sessions::default();
        let rooms = Rooms::new(Arc::default());
        let name = |n: &str| RoomName::parse(n).unwrap();
        let a = rooms.get_or_create_within(&name("a"), 2).unwrap();
        rooms.get_or_create_within(&name("b"), 2).unwrap();
        assert_eq!(
            rooms.get_or_create_within(&name("c"), 2).unwrap_err(),
            TooManyRooms { max: 2 }
        );
        assert!(
            rooms.get_or_create_within(&name("a"), 2).is_ok(),
            "an existing room"
        );
        let (s, _rx) = member(&sessions, Protocol::Tcp);
        a.join(&s);
        assert!(
            !rooms.release_if_unused(&name("a")),
            "held here, and a member"
        );
        drop(a);
        assert!(!rooms.release_if_unused(&name("a")), "a member");
        rooms.get(&name("a")).unwrap().leave(s.id);
        assert!(rooms.release_if_unused(&name("a")));
        assert!(rooms.release_if_unused(&name("b")), "never joined at all");
        assert!(rooms.is_empty());
        let c = rooms.get_or_create_within(&name("c"), 2).unwrap();
        c.commit(sample("c", 1, "x", "kept"));
        drop(c);
        assert!(!rooms.release_if_unused(&name("c")), "it has a message");
        assert_eq!(rooms.len(), 1);
    }

    #[tokio::test]
    async fn with_a_bus_an_opened_room_is_kept() {
        let name = |n: &str| RoomName::parse(n).unwrap();
        let rooms = Rooms::new(Arc::default());
        rooms.keep_opened_rooms();
        let opened = rooms.get_or_create(&name("opened"));
        opened
            .open_once(|| async { Ok::<(), ()>(()) })
            .await
            .unwrap();
        drop(opened);
        drop(rooms.get_or_create(&name("visited")));
        assert!(
            !rooms.release_if_unused(&name("opened")),
            "the bus holds state for it"
        );
        assert!(
            rooms.release_if_unused(&name("visited")),
            "never opened: nothing held"
        );
    }

    #[test]
    fn a_gap_is_reported_and_can_be_given_up_on() {
        let sessions = Sessions::default();
        let room = room();
        let (a, mut rx) = member(&sessions, Protocol::Tcp);
        room.join(&a);
        assert_eq!(room.gap(), None);
        room.commit(sample("general", 1, "x", "one"));
        room.commit(sample("general", 4, "x", "four"));
        room.commit(sample("general", 6, "x", "six"));
        let gap = room.gap().unwrap();
        assert_eq!((gap.from, gap.to), (2, 3));
        room.commit(sample("general", 2, "x", "two")); // a late arrival still counts
        assert_eq!(room.gap().map(|g| (g.from, g.to)), Some((3, 3)));
        assert_eq!(
            room.give_up_until(3),
            1,
            "4 is delivered once 3 is given up"
        );
        assert_eq!(room.gap().map(|g| (g.from, g.to)), Some((5, 5)));
        room.give_up_until(5);
        assert_eq!(room.gap(), None);
        assert_eq!(received(&mut rx), vec![1, 2, 4, 6]);
        assert_eq!(room.stats.gaps_skipped.get(), 2);
    }
}
