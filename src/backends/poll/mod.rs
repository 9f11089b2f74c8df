//! The `poll` fan-out backend (phase 2): instances share rooms by reading each other's messages
//! from PostgreSQL every `interval_ms`.
//!
//! **Why polling first.** It needs nothing but the database the instances already share: every
//! message is stored anyway, so "what did the others say" is one `SELECT`. The price is latency
//! and load. A message reaches another instance after its write-behind delay (the writer's batch,
//! or none with `durability = "sync"`), plus on average half an interval waiting for the next
//! poll, plus the query; and each instance asks the database ten times a second (at the default
//! 100 ms) whether anybody said anything, even in a silent room. Phase 3 (Valkey pub/sub) pushes
//! instead of asking; `docs/BENCHMARKS.md` measures both.
//!
//! **Numbering.** [`PostgresSequencer`] takes each message's seq from the room's row in
//! `room_seq` (migration 0002) in one atomic upsert, so seqs stay gap-free and unique across
//! instances and a receiver can tell when one is missing.
//!
//! **Reading by seq, not by id.** The classic mistake is `WHERE id > last_seen`: two instances
//! take ids (or seqs) 41 and 42, 42's transaction commits first, a poll sees 42 and moves
//! `last_seen` to 42, then 41 commits and is never read. Commits do not happen in numbering order.
//! This bus reads, for every open room, `seq > room.delivered()`: the room's ordered gate
//! ([`Room::commit`](crate::core::Room::commit)) has delivered everything up to that point and
//! nothing after, so a message that commits late is still above it and is read by the next poll;
//! 42 waits in the gate until 41 arrives. If 41 never comes (its instance crashed after numbering
//! it, or its write was dropped), the room waits `gap_wait_ms` and then settles it with the other
//! instances through the store (`backends::gaps`), so one lost message cannot stall a room
//! forever, nor be skipped here while another instance still delivers it.
//!
//! **Own messages.** This instance's messages are in the table too. The ones already delivered
//! are below the read point; the ones numbered here and still on their way through the local
//! stack are remembered by the sequencer and not fed again, so a TCP sender never
//! sees its own line echoed back by the database, and no message enters the ring twice.
//!
//! **Opening a room**: the route layer starts the room after the store's settled prefix (see
//! `layers::route`), and polling reads from there once the room is open: a message numbered
//! elsewhere but not committed yet is read when it commits. (Starting after the counter instead
//! would mark such a message delivered before anybody here had seen it.)
//!
//! **Under pub/sub.** The `valkey` backend runs this same poll task beside its subscription, as
//! a safety net: every `idle` interval while Valkey is healthy (a message whose publish was lost
//! is read from the store, as is the newest message of a room that no later message reveals as
//! missing), and every `interval` while it is degraded, so that chat between instances goes on
//! through the database, slower, while Valkey is down.
//!
//! **Durability.** With `durability = "async"` a message is delivered here at once and stored a
//! batch later, so the other instances see it one writer delay plus one poll later; with
//! `durability = "sync"` it is stored before it is delivered anywhere, so every instance (this one
//! included) shows only what survives a crash. `pipelines/phase2-poll.toml` uses `sync`: in
//! phase 2 the database is the bus, and a message must be in the bus before it counts as sent.
//!
//! **Presence events** (`* bob joined general`, the SSE `presence` event) travel through the
//! database too. [`PollBus::announce`] inserts a row into `presence_events` (migration 0004) for
//! each join, leave, quit or rename of a local user, naming this instance; each poll then reads,
//! for the rooms open here, the rows above the last id it read that *other* instances wrote, and
//! feeds them into the stack as remote presence changes (`session: None`), exactly as the
//! `valkey` backend feeds what it receives on a room's channel. `publish` does nothing: a message
//! reaches the others through the store.
//!
//! **Why `id > last_id` is acceptable for presence.** It is the very trap described above: two
//! instances insert events 41 and 42, 42 commits first, a poll reads it and moves past 41, and 41
//! is never read. For a message that would be a silent loss; for a presence event it costs at
//! worst one late or missed "joined" notice, which is only a notice. Who is in a room is not
//! decided by these events: `/users`, `/rooms` and nick uniqueness are answered by the shared
//! presence directory (`backends::directory`, heartbeat + TTL), which is authoritative. So
//! presence events get the cheap design: no per-room sequence, no gap detection, no waiting. Each
//! poll first reads the table's newest id, then the rows up to it, and then reads on from that id
//! (not from the last row it fed); and a room opened here records the newest id at that moment,
//! so its members are not handed notices from before they came.
//!
//! **Closing a room.** A room evicted from this instance's memory (`core::rooms`) loses its
//! watch ([`Bus::close_room`]): the poll stops reading it until it is opened again.
//!
//! **Health.** The poll task records each poll's outcome; the bus is unhealthy once no poll has
//! succeeded for five intervals (at least two seconds), with the last error as the reason.
//!
//! **No replay, and a small table.** Reading starts at the table's newest id when the bus is
//! built: an instance that starts does not announce joins from before it ran. Every minute each
//! instance deletes the events older than five minutes (any instance may delete anybody's: they
//! are all read within a poll or two), so the table stays a few hundred rows.

mod presence;
mod sequencer;
mod task;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, ready};
use tower::BoxError;

pub use sequencer::PostgresSequencer;

use super::gaps::Settler;
use super::postgres::{PostgresStore, classify};
use super::{Background, Bus, BusHealth, StoreError};
use crate::core::ChatService;
use crate::core::{ChatMessage, Hub, OpenRoom, Presence, RoomName};

/// The options of `backend = "poll"` (and of the poll under `valkey`).
#[derive(Debug, Clone)]
pub struct PollOptions {
    /// How often the database is asked for new messages.
    pub interval: Duration,
    /// How long a missing seq is waited for before it is settled (see `backends::gaps`).
    pub gap_wait: Duration,
    /// Under pub/sub: how often to poll while `degraded` is not set (the safety net); `None`
    /// for the plain `poll` backend, which always polls every `interval`.
    pub idle: Option<(Duration, Arc<AtomicBool>)>,
}

/// The sequencer and bus of `backend = "poll"`, sharing one view of the rooms open here.
/// `instance` names this instance in the presence events it writes; the presence events already
/// in the database are not read (see the module docs).
///
/// # Errors
/// When the database cannot be read.
pub async fn backend(
    store: PostgresStore,
    options: PollOptions,
    settler: Settler,
    instance: Arc<str>,
) -> Result<(Arc<PostgresSequencer>, Arc<PollBus>), StoreError> {
    let presence_from = {
        let conn = store.conn().await?;
        conn.query_one(presence::NEWEST, &[])
            .await
            .map_err(classify)?
            .get::<_, i64>(0)
    };
    let watched = Arc::new(Watched::default());
    let sequencer = PostgresSequencer::new(store.clone(), watched.clone());
    let bus = PollBus {
        store,
        options,
        settler,
        watched,
        instance,
        presence_from,
        last_poll: Arc::new(LastPoll::new()),
    };
    Ok((Arc::new(sequencer), Arc::new(bus)))
}

/// The rooms this instance polls, and the seqs it already has in hand in each.
#[derive(Debug, Default)]
pub(crate) struct Watched {
    rooms: Mutex<HashMap<RoomName, Watch>>,
}

#[derive(Debug, Default)]
pub(crate) struct Watch {
    /// Seqs above the room's delivery point that need no feeding: numbered here (they reach the
    /// room through the local stack, or are skipped by it) or fed by an earlier poll and held
    /// by the room's gate.
    in_hand: BTreeSet<u64>,
    /// The newest presence event when the room was opened here: older ones are not shown.
    presence_floor: i64,
}

impl Watched {
    fn lock(&self) -> MutexGuard<'_, HashMap<RoomName, Watch>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts polling `room` (once it is open) and its presence events after id
    /// `presence_floor`.
    fn open(&self, room: &RoomName, presence_floor: i64) {
        let mut rooms = self.lock();
        let watch = rooms.entry(room.clone()).or_default();
        watch.presence_floor = watch.presence_floor.max(presence_floor);
    }

    /// Stops polling `room` (it was evicted here).
    fn close(&self, room: &RoomName) {
        self.lock().remove(room);
    }

    /// How many rooms are polled.
    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Records that `seq` was numbered here, so the poll leaves it to the local stack.
    fn numbered(&self, room: &RoomName, seq: u64) {
        self.lock()
            .entry(room.clone())
            .or_default()
            .in_hand
            .insert(seq);
    }
}

/// How recent the last successful poll is, and why the ones since failed: the bus's health.
#[derive(Debug)]
pub(crate) struct LastPoll(Mutex<(Instant, Option<String>)>);

impl LastPoll {
    /// Counts from now, as if a poll had just succeeded (the bus was just built by reading the
    /// database).
    fn new() -> LastPoll {
        LastPoll(Mutex::new((Instant::now(), None)))
    }

    fn lock(&self) -> MutexGuard<'_, (Instant, Option<String>)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A poll read the database.
    pub(crate) fn succeeded(&self) {
        *self.lock() = (Instant::now(), None);
    }

    /// A poll failed because of `why`.
    pub(crate) fn failed(&self, why: String) {
        self.lock().1 = Some(why);
    }

    /// Healthy while the last success is less than `stale` ago.
    pub(crate) fn health(&self, stale: Duration) -> Result<(), String> {
        let (at, why) = self.lock().clone();
        let age = at.elapsed();
        if age < stale {
            return Ok(());
        }
        Err(format!(
            "poll: no successful poll for {:.1} s: {}",
            age.as_secs_f64(),
            why.as_deref()
                .unwrap_or("the poll under way is still waiting for the database")
        ))
    }
}

/// A poll this many intervals old (and at least [`MIN_STALE`]) means delivery is broken.
const STALE_INTERVALS: u32 = 5;
/// The least time without a successful poll that counts as broken: one slow query is not.
const MIN_STALE: Duration = Duration::from_secs(2);

/// A [`Bus`] over a shared PostgreSQL database; see the module docs.
#[derive(Debug)]
pub struct PollBus {
    store: PostgresStore,
    options: PollOptions,
    /// How holes that last are settled with the other instances.
    settler: Settler,
    watched: Arc<Watched>,
    /// This instance's name, written with its presence events and skipped when reading them.
    instance: Arc<str>,
    /// The newest presence event when the bus was built: reading starts after it.
    presence_from: i64,
    /// When the poll task last read the database: see [`Bus::health`].
    last_poll: Arc<LastPoll>,
}

impl PollBus {
    /// Whether polls succeed: see [`LastPoll::health`]. Under pub/sub a healthy bus polls only
    /// every `idle`, so staleness is judged against that.
    pub(crate) fn poll_health(&self) -> Result<(), String> {
        let every = match &self.options.idle {
            Some((idle, _)) => *idle,
            None => self.options.interval,
        };
        self.last_poll
            .health((every * STALE_INTERVALS).max(MIN_STALE))
    }
}

impl Bus for PollBus {
    /// Nothing to send: the persist layer stores the message, and the other instances read it.
    fn publish<'a>(&'a self, _msg: &'a Arc<ChatMessage>) -> BoxFuture<'a, Result<(), BoxError>> {
        ready(Ok(())).boxed()
    }

    /// Writes the change to `presence_events`, for the other instances' next poll.
    fn announce<'a>(&'a self, presence: &'a Arc<Presence>) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let conn = self.store.conn().await?;
            presence::insert(&conn, presence, &self.instance).await?;
            Ok(())
        })
    }

    fn open_room<'a>(&'a self, open: &'a OpenRoom) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let presence_floor = self
                .store
                .conn()
                .await?
                .query_one(presence::NEWEST, &[])
                .await
                .map_err(classify)?
                .get::<_, i64>(0);
            self.watched.open(&open.room, presence_floor);
            Ok(())
        })
    }

    /// Stops polling `room`: its watch (and the seqs it had in hand) goes. A poll already under
    /// way may still feed a row it read; the stack then finds no open room for it (a fresh one
    /// holds it until it is opened, which settles it, see `Room::start`).
    fn close_room<'a>(&'a self, room: &'a RoomName) -> BoxFuture<'a, ()> {
        self.watched.close(room);
        ready(()).boxed()
    }

    fn listening(&self) -> usize {
        self.watched.len()
    }

    /// Red when no poll has succeeded for a few intervals: other instances' messages are not
    /// arriving.
    fn health(&self) -> BoxFuture<'_, BusHealth> {
        ready(match self.poll_health() {
            Ok(()) => BusHealth::Ok,
            Err(why) => BusHealth::Down(why),
        })
        .boxed()
    }

    fn start(&self, stack: ChatService, hub: Hub, background: &Background) -> anyhow::Result<()> {
        let poller = task::Poller {
            last_poll: self.last_poll.clone(),
            store: self.store.clone(),
            watched: self.watched.clone(),
            options: self.options.clone(),
            settler: self.settler.clone(),
            stack,
            hub,
            instance: self.instance.clone(),
            presence_after: self.presence_from,
        };
        let stop = background.stop.clone();
        background.tracker.spawn(poller.run(stop));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn general() -> RoomName {
        RoomName::parse("general").unwrap()
    }

    #[test]
    fn a_watch_keeps_its_highest_presence_floor_and_remembers_its_own_seqs() {
        let watched = Watched::default();
        watched.open(&general(), 5);
        watched.open(&general(), 2); // a second open never moves the floor back
        watched.numbered(&general(), 8);
        watched.numbered(&general(), 10);
        let rooms = watched.lock();
        let watch = &rooms[&general()];
        assert_eq!(watch.presence_floor, 5);
        assert_eq!(
            watch.in_hand.iter().copied().collect::<Vec<_>>(),
            vec![8, 10]
        );
    }

    #[test]
    fn the_bus_is_unhealthy_once_polls_have_failed_for_too_long() {
        let last = LastPoll::new();
        assert_eq!(last.health(Duration::from_secs(60)), Ok(()));
        last.failed("connection refused".into());
        assert_eq!(
            last.health(Duration::from_secs(60)),
            Ok(()),
            "one failure is not stale"
        );
        let err = last.health(Duration::ZERO).unwrap_err();
        assert!(err.starts_with("poll: no successful poll for "), "{err}");
        assert!(err.ends_with(": connection refused"), "{err}");
        last.succeeded();
        assert_eq!(last.health(Duration::from_secs(60)), Ok(()));
    }
}
