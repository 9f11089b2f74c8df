//! The `valkey` fan-out backend (phase 3): rooms shared between instances through Valkey pub/sub,
//! with PostgreSQL as the truth and the fallback.
//!
//! **What it does.**
//!
//! * **Sending** ([`Valkey::publish`], [`Valkey::announce`]): a local message or presence change
//!   is `PUBLISH`ed as JSON on its room's channel, `chatd:room:{room}`, through a `deadpool-redis`
//!   pool, by a publisher task fed from a bounded queue, so that a sender never waits for Valkey.
//!   Pub/sub pushes to subscribers the moment a message is published: about a millisecond from one
//!   instance to another, where polling a database costs half its interval on average.
//! * **Receiving** (`subscriber.rs`): one dedicated pub/sub connection per instance (a connection
//!   in subscribe mode can do nothing else, so it is not pooled) feeds what other instances said
//!   into this instance's stack, marked remote.
//! * **The safety net** (`backends::poll`, the phase-2 backend, run underneath): every `gap_wait`
//!   it reads from PostgreSQL what each open room has not received yet. Pub/sub is fire and
//!   forget: Valkey keeps nothing for a subscriber that is not connected, and a publish can be
//!   lost while Valkey restarts. The store, which every instance writes its messages to anyway,
//!   has them; holes that last are settled through it (`backends::gaps`).
//! * **Numbering** is not Valkey's: seqs come from PostgreSQL's counter rows
//!   (`backends::poll::PostgresSequencer`), so that neither a Valkey restart (empty, or from an
//!   older snapshot) nor an outage can ever make two messages share a seq.
//!
//! **Degraded, not down.** When Valkey cannot be reached (the subscription is lost, or publishes
//! fail), the bus says it is degraded (`GET /readyz`, `chatd_bus_degraded` in `/metrics`), the
//! poll switches from every `gap_wait` to every `POLL_WHILE_DEGRADED`, presence changes are
//! written to PostgreSQL for the other instances' polls, and chat goes on, between instances too,
//! at the speed of polling. When Valkey is back, the subscriber re-subscribes every room and the
//! poll slows down again; what was said meanwhile is in the store, so nothing is lost.
//!
//! **One channel per room, not a pattern.** The instance subscribes to a room's channel when the
//! room is first used here ([`Valkey::open_room`]). A pattern subscription (`chatd:room:*`) would
//! be simpler, but every instance would then receive, decode and throw away every message of every
//! room, its own included; with per-room channels Valkey only sends an instance the rooms it has.
//! The price is bookkeeping: the set of opened rooms, re-subscribed after every reconnection. A
//! room evicted from this instance's memory (`core::rooms`) is unsubscribed and leaves the set
//! ([`Valkey::close_room`]); its next use subscribes it again before reading the store.
//!
//! **Health.** The receive loop records when and why the subscription went down (the connection
//! closed, a PING unanswered, a reconnection refused) and clears it once re-subscribed, and it
//! notes every sign of life (a message, an answered PING every 2 s); [`Bus::health`] reports
//! Valkey trouble as degraded, and only a failing poll (PostgreSQL gone too) as down.
//!
//! **Wire format.** JSON, one object per publish, tagged by `type` (see `wire.rs`): a `message`
//! carries room, seq, nick, text, ts_ms and the sending instance; a `presence` carries room, nick,
//! kind (`joined`, `left`, `quit`, `renamed` with `new_nick`) and instance. An instance skips what
//! it published itself: it delivered that locally already.

mod publisher;
mod subscriber;
mod wire;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use deadpool_redis::redis::aio::{PubSubSink, PubSubStream};
use deadpool_redis::{Pool, Runtime, Timeouts, redis};
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;
use tower::BoxError;

use super::poll::PollBus;
use super::{Background, Bus, BusHealth};
use crate::core::ChatService;
use crate::core::{ChatMessage, Hub, OpenRoom, Presence, RoomName};

/// How long one Valkey operation (a pooled command, a SUBSCRIBE) may take before it counts as
/// failed: a Valkey that is down must not hold a user's message or join for long.
const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the poll underneath reads the store while Valkey is unreachable.
pub const POLL_WHILE_DEGRADED: Duration = Duration::from_millis(100);

/// Publishes that may wait for the publisher task; beyond that they are dropped (the poll brings
/// those messages to the other instances, a little later).
const OUTBOX: usize = 4096;

/// The channel a room's messages and presence changes are published on.
fn channel(room: &RoomName) -> String {
    format!("chatd:room:{room}")
}

/// What the `valkey` backend needs to start.
#[derive(Debug, Clone)]
pub struct ValkeyOptions {
    /// The server's url, `redis://host:port`.
    pub url: String,
    /// Most pooled connections.
    pub pool_size: usize,
}

/// The `valkey` bus: see the module docs. Cheap to clone.
#[derive(Clone)]
pub struct Valkey {
    shared: Arc<Shared>,
}

struct Shared {
    /// Pooled connections for PUBLISH and PING.
    pool: Pool,
    /// Opens the dedicated subscriber connection (again after each drop).
    client: redis::Client,
    /// This instance's name: what it publishes carries it, and it skips what carries it.
    instance: Arc<str>,
    /// The store underneath: the safety net, and the way between instances while degraded.
    poll: Arc<PollBus>,
    /// Set while Valkey cannot be reached: the poll reads the store often, presence changes go
    /// through the store. Shared with the poll task.
    degraded: Arc<AtomicBool>,
    /// Rooms opened (and so subscribed) here; re-subscribed after each reconnection.
    rooms: Mutex<BTreeSet<RoomName>>,
    /// The subscriber connection's command half, `None` while it is down. Held (briefly, across
    /// one SUBSCRIBE) by `open_room` and by a reconnection, so a room opened while the connection
    /// comes back is subscribed exactly once and never missed.
    sink: tokio::sync::Mutex<Option<PubSubSink>>,
    /// The message half of the first connection, until [`Bus::start`] takes it.
    first_stream: Mutex<Option<PubSubStream>>,
    /// Since when the subscriber connection has been down, and the latest reason; `None` while
    /// it is up.
    down: Mutex<Option<Down>>,
    /// Why publishing failed last, while it fails.
    publish_failing: Mutex<Option<String>>,
    /// When the receive loop last showed it is alive (a message, or an answered PING). A loop
    /// that hangs or has died never marks itself down; its silence is what gives it away.
    alive: Mutex<Instant>,
    /// The publisher task's queue, and its receiving end until [`Bus::start`] takes it.
    outbox: mpsc::Sender<publisher::Outgoing>,
    outbox_rx: Mutex<Option<mpsc::Receiver<publisher::Outgoing>>>,
}

/// Why and since when the subscription is down.
#[derive(Debug, Clone)]
pub(crate) struct Down {
    since: Instant,
    why: String,
}

impl std::fmt::Debug for Valkey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Valkey")
            .field("instance", &self.shared.instance)
            .field("degraded", &self.is_degraded())
            .finish_non_exhaustive()
    }
}

impl Valkey {
    /// Connects to Valkey: a pool for commands and the subscriber connection, over `poll`, the
    /// PostgreSQL bus underneath, whose pace follows `degraded` (built with it). When Valkey
    /// cannot be reached at start, the bus starts degraded and keeps trying.
    ///
    /// # Errors
    /// When the url is invalid.
    pub async fn connect(
        options: &ValkeyOptions,
        instance: Arc<str>,
        poll: Arc<PollBus>,
        degraded: Arc<AtomicBool>,
    ) -> anyhow::Result<Valkey> {
        let masked = crate::backends::mask_password(&options.url);
        let mut config = deadpool_redis::Config::from_url(options.url.clone());
        let mut pool_config = deadpool_redis::PoolConfig::new(options.pool_size);
        pool_config.timeouts = Timeouts {
            wait: Some(OP_TIMEOUT),
            create: Some(OP_TIMEOUT),
            recycle: Some(OP_TIMEOUT),
        };
        config.pool = Some(pool_config);
        let pool = config
            .create_pool(Some(Runtime::Tokio1))
            .with_context(|| format!("cannot set up a Valkey pool for {masked}"))?;
        let client = redis::Client::open(options.url.as_str())
            .with_context(|| format!("invalid Valkey url {masked}"))?;
        let (outbox, outbox_rx) = mpsc::channel(OUTBOX);
        let shared = Arc::new(Shared {
            pool,
            client,
            instance,
            poll,
            degraded,
            rooms: Mutex::default(),
            sink: tokio::sync::Mutex::new(None),
            first_stream: Mutex::new(None),
            down: Mutex::new(None),
            publish_failing: Mutex::new(None),
            alive: Mutex::new(Instant::now()),
            outbox,
            outbox_rx: Mutex::new(Some(outbox_rx)),
        });
        match subscribe_connection(&shared.client).await {
            Ok(pubsub) => {
                let (sink, stream) = pubsub.split();
                *shared.sink.lock().await = Some(sink);
                *lock(&shared.first_stream) = Some(stream);
            }
            Err(err) => {
                tracing::warn!(
                    "cannot reach Valkey at {masked} ({err}): starting degraded, messages travel through PostgreSQL until it is back"
                );
                shared.mark_down(format!("cannot connect: {err}"));
            }
        }
        Ok(Valkey { shared })
    }

    /// Whether messages between instances take the slow path (see the module docs).
    pub fn is_degraded(&self) -> bool {
        self.shared.degraded.load(Ordering::Relaxed)
    }

    /// Queues `payload` for `room`'s channel; false when the queue is full (dropped).
    fn queue(&self, room: &RoomName, payload: String) -> bool {
        let outgoing = publisher::Outgoing {
            channel: channel(room),
            payload,
        };
        self.shared.outbox.try_send(outgoing).is_ok()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn rooms(&self) -> MutexGuard<'_, BTreeSet<RoomName>> {
        lock(&self.rooms)
    }

    fn down(&self) -> MutexGuard<'_, Option<Down>> {
        lock(&self.down)
    }

    /// Recomputes the degraded flag from the subscription and the publisher.
    fn update_degraded(&self) {
        let degraded = self.down().is_some() || lock(&self.publish_failing).is_some();
        self.degraded.store(degraded, Ordering::Relaxed);
    }

    /// Marks the subscription lost (or still lost) because of `why`; the first call of an outage
    /// starts its clock.
    fn mark_down(&self, why: impl Into<String>) {
        let why = why.into();
        {
            let mut down = self.down();
            match down.as_mut() {
                Some(down) => down.why = why,
                None => {
                    *down = Some(Down {
                        since: Instant::now(),
                        why,
                    })
                }
            }
        }
        self.update_degraded();
    }

    /// Marks the subscription up again: Valkey answers, so publishing is given another chance
    /// too (the next batch says otherwise if it still fails).
    fn mark_up(&self) {
        *self.down() = None;
        *lock(&self.publish_failing) = None;
        self.update_degraded();
        self.mark_alive();
    }

    /// Records the outcome of a publish.
    fn published(&self, outcome: Result<(), String>) {
        *lock(&self.publish_failing) = outcome.err();
        self.update_degraded();
    }

    /// The receive loop is alive: it just got a message or an answer to its PING.
    fn mark_alive(&self) {
        *lock(&self.alive) = Instant::now();
    }

    /// How long the receive loop has been silent.
    fn silent_for(&self) -> Duration {
        lock(&self.alive).elapsed()
    }

    /// Whether a pooled connection answers PING; if it does, publishing is given another chance.
    async fn pings(&self) -> bool {
        let ping = async {
            let mut conn = timeout(self.pool.get()).await??;
            let cmd = redis::cmd("PING").to_owned();
            let _pong: String = timeout(cmd.query_async(&mut conn)).await??;
            Ok::<(), BoxError>(())
        };
        let ok = ping.await.is_ok();
        if ok {
            self.published(Ok(()));
        }
        ok
    }

    /// Unsubscribes from `room`'s channel and forgets it (it is not re-subscribed after a
    /// reconnection). A failure marks the subscription down: the reconnection subscribes the
    /// rooms that remain, and a publish that still arrives for `room` meanwhile only reaches an
    /// empty room.
    async fn unsubscribe(&self, room: &RoomName) {
        let mut sink = self.sink.lock().await;
        self.rooms().remove(room);
        let Some(connection) = sink.as_mut() else {
            return;
        };
        if let Err(err) = timeout(connection.unsubscribe(channel(room)))
            .await
            .and_then(|r| r.map_err(Into::into))
        {
            tracing::warn!(%room, "cannot unsubscribe: {err}");
            self.mark_down(format!("cannot unsubscribe from {room}: {err}"));
        }
    }

    /// Subscribes to `room`'s channel if the subscriber connection is up. A failure marks the
    /// subscription down: the receive loop reconnects and subscribes every room again.
    async fn subscribe(&self, room: &RoomName) {
        let mut sink = self.sink.lock().await;
        self.rooms().insert(room.clone());
        let Some(connection) = sink.as_mut() else {
            return; // down: the reconnection subscribes it
        };
        if let Err(err) = timeout(connection.subscribe(channel(room)))
            .await
            .and_then(|r| r.map_err(Into::into))
        {
            tracing::warn!(%room, "cannot subscribe: {err}");
            self.mark_down(format!("cannot subscribe to {room}: {err}"));
        }
    }
}

/// Opens a connection in subscribe mode.
async fn subscribe_connection(client: &redis::Client) -> Result<redis::aio::PubSub, BoxError> {
    Ok(timeout(client.get_async_pubsub()).await??)
}

/// `fut`, or an error once [`OP_TIMEOUT`] has passed.
async fn timeout<F: Future>(fut: F) -> Result<F::Output, BoxError> {
    tokio::time::timeout(OP_TIMEOUT, fut)
        .await
        .map_err(|_| format!("Valkey did not answer within {OP_TIMEOUT:?}").into())
}

impl Bus for Valkey {
    /// Queued for the publisher task: the sender does not wait for Valkey. A full queue drops the
    /// publish (counted as a bus failure); the poll brings the message to the others.
    fn publish<'a>(&'a self, msg: &'a Arc<ChatMessage>) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let payload = wire::Wire::message(msg, &self.shared.instance).encode()?;
            match self.queue(&msg.room, payload) {
                true => Ok(()),
                false => {
                    Err("the publish queue is full; the others will read it from PostgreSQL".into())
                }
            }
        })
    }

    /// On Valkey when it is reachable, else in PostgreSQL for the other instances' polls.
    fn announce<'a>(&'a self, presence: &'a Arc<Presence>) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            if self.is_degraded() {
                return self.shared.poll.announce(presence).await;
            }
            let payload = wire::Wire::presence(presence, &self.shared.instance).encode()?;
            match self.queue(&presence.room, payload) {
                true => Ok(()),
                false => self.shared.poll.announce(presence).await,
            }
        })
    }

    /// Subscribes first (when Valkey is reachable), then starts the poll's watch: a message
    /// published after the subscription arrives live; one published before it is in the store.
    fn open_room<'a>(&'a self, open: &'a OpenRoom) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            self.shared.subscribe(&open.room).await;
            self.shared.poll.open_room(open).await
        })
    }

    /// Unsubscribes, then ends the poll's watch.
    fn close_room<'a>(&'a self, room: &'a RoomName) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.shared.unsubscribe(room).await;
            self.shared.poll.close_room(room).await;
        })
    }

    /// Down when the store underneath cannot be polled (then nothing flows); degraded while
    /// Valkey cannot be reached (messages flow through the store); else ok.
    fn health(&self) -> BoxFuture<'_, BusHealth> {
        Box::pin(async move {
            if let Err(why) = self.shared.poll.poll_health() {
                return BusHealth::Down(why);
            }
            if let Some(down) = self.shared.down().clone() {
                return BusHealth::Degraded(format!(
                    "degraded: valkey subscription down since {} s ({}); messages between \
                     instances travel through PostgreSQL",
                    down.since.elapsed().as_secs(),
                    down.why
                ));
            }
            let failing = lock(&self.shared.publish_failing).clone();
            if let Some(why) = failing
                && !self.shared.pings().await
            {
                return BusHealth::Degraded(format!(
                    "degraded: cannot publish to valkey ({why}); messages between instances \
                     travel through PostgreSQL"
                ));
            }
            let silent = self.shared.silent_for();
            if silent > 3 * subscriber::PING_EVERY {
                return BusHealth::Degraded(format!(
                    "degraded: valkey subscriber silent for {} s (its receive loop is stuck or \
                     has stopped); messages between instances travel through PostgreSQL",
                    silent.as_secs()
                ));
            }
            BusHealth::Ok
        })
    }

    fn degraded(&self) -> bool {
        self.is_degraded()
    }

    /// The larger of the channels subscribed and the rooms polled (the two follow the same
    /// opens and closes).
    fn listening(&self) -> usize {
        self.shared.rooms().len().max(self.shared.poll.listening())
    }

    fn start(&self, stack: ChatService, hub: Hub, background: &Background) -> anyhow::Result<()> {
        let stream = lock(&self.shared.first_stream).take();
        let outbox = lock(&self.shared.outbox_rx)
            .take()
            .context("the valkey backend was started twice")?;
        let feeder = subscriber::Feeder {
            shared: self.shared.clone(),
            stack: stack.clone(),
            hub: hub.clone(),
        };
        let stop = background.stop.clone();
        background
            .tracker
            .spawn(subscriber::receive(feeder, stream, stop.clone()));
        background.tracker.spawn(publisher::run(
            self.shared.clone(),
            outbox,
            hub.stats_handle(),
            stop,
        ));
        self.shared.poll.start(stack, hub, background)
    }
}
