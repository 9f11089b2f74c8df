//! The `valkey` fan-out backend (phase 3): rooms shared between instances through Valkey pub/sub.
//!
//! **What it does.** Three jobs, one file each:
//!
//! * **Numbering** (`sequencer.rs`): every room has one counter, `chatd:seq:{room}`, that all
//!   instances increment (`INCR` is atomic in Valkey), so the per-room seq stays 1, 2, 3, ...
//!   across instances and a receiver can see a hole. A small Lua script first raises the counter to
//!   what the room already knows, so a Valkey restarted empty never hands out an old seq again.
//! * **Sending** ([`Valkey::publish`], [`Valkey::announce`]): a local message or presence change
//!   is `PUBLISH`ed as JSON on its room's channel, `chatd:room:{room}`, through a `deadpool-redis`
//!   pool. Pub/sub pushes to subscribers the moment a message is published: about a millisecond
//!   from one instance to another, where polling a database costs half its interval on average.
//! * **Receiving** (`subscriber.rs`): one dedicated pub/sub connection per instance (a connection
//!   in subscribe mode can do nothing else, so it is not pooled) feeds what other instances said
//!   into this instance's stack, marked remote. A background task fills the holes pub/sub leaves.
//!
//! **One channel per room, not a pattern.** The instance subscribes to a room's channel when the
//! room is first used here ([`Valkey::open_room`]). A pattern subscription (`chatd:room:*`) would
//! be simpler, but every instance would then receive, decode and throw away every message of every
//! room, its own included; with per-room channels Valkey only sends an instance the rooms it has.
//! The price is bookkeeping: the set of opened rooms, re-subscribed after every reconnection.
//! (Rooms are never unsubscribed: a room once used here stays subscribed until the process ends,
//! which keeps the ring warm and costs one channel per room.)
//!
//! **Pub/sub is fire and forget.** Valkey keeps nothing for a subscriber that is not connected: a
//! message published while an instance's subscription is down is simply not delivered to it. So
//! the stored history (PostgreSQL, which every instance shares) is the truth and pub/sub the fast
//! path: after a reconnection, and whenever a room's sequence has a hole for longer than
//! `gap_wait_ms`, the missing messages are read from the store. Duplicates cost nothing: the
//! room's ordered gate drops a seq it has delivered already.
//!
//! **Health.** The receive loop records when and why the subscription went down (the connection
//! closed, a PING unanswered, a reconnection refused) and clears it once re-subscribed, and it
//! notes every sign of life (a message, an answered PING every 2 s); [`Bus::health`] reports the
//! first, then a loop silent for three PING intervals (stuck feeding the stack, or gone: a loop
//! that cannot run cannot mark itself down), then whether a pooled connection answers PING. So
//! `/readyz` turns red when the subscription drops or its loop stops, and green once it is back.
//!
//! **Wire format.** JSON, one object per publish, tagged by `type` (see `wire.rs`): a `message`
//! carries room, seq, nick, text, ts_ms and the sending instance; a `presence` carries room, nick,
//! kind (`joined`, `left`, `quit`, `renamed` with `new_nick`) and instance. An instance skips what
//! it published itself: it delivered that locally already.

mod sequencer;
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
use tower::BoxError;

use super::{Background, Bus, Store};
use crate::core::{ChatMessage, Hub, OpenRoom, Presence, RoomName};
use crate::pipeline::ChatService;

pub use sequencer::ValkeySequencer;

/// How long one Valkey operation (a pooled command, a SUBSCRIBE) may take before it counts as
/// failed: a Valkey that is down must not hold a user's message or join for long.
const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// The channel a room's messages and presence changes are published on.
fn channel(room: &RoomName) -> String {
    format!("chatd:room:{room}")
}

/// The key of a room's shared seq counter.
fn counter(room: &RoomName) -> String {
    format!("chatd:seq:{room}")
}

/// What the `valkey` backend needs to start.
#[derive(Debug, Clone)]
pub struct ValkeyOptions {
    /// The server's url, `redis://host:port`.
    pub url: String,
    /// Most pooled connections.
    pub pool_size: usize,
    /// How long a hole in a room's sequence may last before it is read from the store.
    pub gap_wait: Duration,
}

/// The `valkey` bus: see the module docs. Cheap to clone.
#[derive(Clone)]
pub struct Valkey {
    shared: Arc<Shared>,
}

struct Shared {
    /// Pooled connections for PUBLISH, GET and the sequencer's script.
    pool: Pool,
    /// Opens the dedicated subscriber connection (again after each drop).
    client: redis::Client,
    /// This instance's name: what it publishes carries it, and it skips what carries it.
    instance: Arc<str>,
    /// The shared store, read to fill holes (the config check guarantees one).
    store: Option<Arc<dyn Store>>,
    gap_wait: Duration,
    /// Rooms opened (and so subscribed) here; re-subscribed after each reconnection.
    rooms: Mutex<BTreeSet<RoomName>>,
    /// The subscriber connection's command half, `None` while it is down. Held (briefly, across
    /// one SUBSCRIBE) by `open_room` and by a reconnection, so a room opened while the connection
    /// comes back is subscribed exactly once and never missed.
    sink: tokio::sync::Mutex<Option<PubSubSink>>,
    /// The message half of the first connection, until [`Bus::start`] takes it.
    first_stream: Mutex<Option<PubSubStream>>,
    /// Whether the subscriber connection is up: false means other instances' messages are not
    /// arriving live (they are filled from the store once it is back).
    connected: AtomicBool,
    /// Since when the subscriber connection has been down, and the latest reason; `None` while
    /// it is up. What the readiness check reports.
    down: Mutex<Option<Down>>,
    /// When the receive loop last showed it is alive (a message, or an answered PING). A loop
    /// that hangs or has died never marks itself down; its silence is what gives it away.
    alive: Mutex<Instant>,
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
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl Valkey {
    /// Connects to Valkey: a pool for commands and the subscriber connection. `store` is the
    /// shared store holes are filled from.
    ///
    /// # Errors
    /// When the url is invalid or Valkey cannot be reached at start.
    pub async fn connect(
        options: &ValkeyOptions,
        instance: Arc<str>,
        store: Option<Arc<dyn Store>>,
    ) -> anyhow::Result<Valkey> {
        let masked = crate::pipeline::config::mask_password(&options.url);
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
        let (sink, stream) = subscribe_connection(&client)
            .await
            .map_err(|err| anyhow::anyhow!("cannot reach Valkey at {masked}: {err}"))?
            .split();
        Ok(Valkey {
            shared: Arc::new(Shared {
                pool,
                client,
                instance,
                store,
                gap_wait: options.gap_wait,
                rooms: Mutex::default(),
                sink: tokio::sync::Mutex::new(Some(sink)),
                first_stream: Mutex::new(Some(stream)),
                connected: AtomicBool::new(true),
                down: Mutex::new(None),
                alive: Mutex::new(Instant::now()),
            }),
        })
    }

    /// The sequencer that numbers messages through this backend's counters.
    pub fn sequencer(&self) -> ValkeySequencer {
        ValkeySequencer::new(self.shared.pool.clone(), self.shared.store.clone())
    }

    /// Whether the subscriber connection is up. While it is down, messages from other instances
    /// do not arrive live: a health check must not report this instance as fine.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// Publishes `payload` on `room`'s channel through the pool.
    async fn publish_json(&self, room: &RoomName, payload: String) -> Result<(), BoxError> {
        let mut conn = timeout(self.shared.pool.get()).await??;
        let cmd = redis::cmd("PUBLISH")
            .arg(channel(room))
            .arg(payload)
            .to_owned();
        let _receivers: i64 = timeout(cmd.query_async(&mut conn)).await??;
        Ok(())
    }
}

impl Shared {
    fn rooms(&self) -> MutexGuard<'_, BTreeSet<RoomName>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn down(&self) -> MutexGuard<'_, Option<Down>> {
        self.down.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks the subscription lost (or still lost) because of `why`; the first call of an outage
    /// starts its clock.
    fn mark_down(&self, why: impl Into<String>) {
        self.connected.store(false, Ordering::Relaxed);
        let why = why.into();
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

    /// Marks the subscription up again.
    fn mark_up(&self) {
        *self.down() = None;
        self.connected.store(true, Ordering::Relaxed);
        self.mark_alive();
    }

    /// The receive loop is alive: it just got a message or an answer to its PING.
    fn mark_alive(&self) {
        *self.alive.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// How long the receive loop has been silent.
    fn silent_for(&self) -> Duration {
        self.alive
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    /// A backend that has never connected (pools connect lazily), over `store`: enough for the
    /// gap task's unit tests.
    #[cfg(test)]
    fn unconnected(store: Arc<dyn Store>, gap_wait: Duration) -> Shared {
        let url = "redis://127.0.0.1:1";
        Shared {
            pool: deadpool_redis::Config::from_url(url)
                .create_pool(Some(Runtime::Tokio1))
                .expect("a lazy pool"),
            client: redis::Client::open(url).expect("a valid url"),
            instance: Arc::from("test"),
            store: Some(store),
            gap_wait,
            rooms: Mutex::default(),
            sink: tokio::sync::Mutex::new(None),
            first_stream: Mutex::new(None),
            connected: AtomicBool::new(false),
            down: Mutex::new(None),
            alive: Mutex::new(Instant::now()),
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
    fn publish<'a>(&'a self, msg: &'a Arc<ChatMessage>) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let payload = wire::Wire::message(msg, &self.shared.instance).encode()?;
            self.publish_json(&msg.room, payload).await
        })
    }

    fn announce<'a>(&'a self, presence: &'a Arc<Presence>) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let payload = wire::Wire::presence(presence, &self.shared.instance).encode()?;
            self.publish_json(&presence.room, payload).await
        })
    }

    fn open_room<'a>(&'a self, open: &'a OpenRoom) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            // Subscribe first, then read the counter: a message numbered after the read is
            // received live, one numbered before it is covered by the floor and the store.
            {
                let mut sink = self.shared.sink.lock().await;
                let sink = sink
                    .as_mut()
                    .ok_or("the connection to Valkey is down, reconnecting")?;
                timeout(sink.subscribe(channel(&open.room))).await??;
                self.shared.rooms().insert(open.room.clone());
            }
            let mut conn = timeout(self.shared.pool.get()).await??;
            let cmd = redis::cmd("GET").arg(counter(&open.room)).to_owned();
            let seq: Option<u64> = timeout(cmd.query_async(&mut conn)).await??;
            open.raise_floor(seq.unwrap_or(0));
            Ok(())
        })
    }

    /// Red while the subscriber connection is down (other instances' messages are not arriving),
    /// while its receive loop has been silent for three PING intervals (stuck, or gone), or when
    /// a pooled connection cannot PING (this instance's messages cannot leave).
    fn health(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            if let Some(down) = self.shared.down().clone() {
                return Err(format!(
                    "valkey subscription down since {} s: {}",
                    down.since.elapsed().as_secs(),
                    down.why
                ));
            }
            let silent = self.shared.silent_for();
            if silent > 3 * subscriber::PING_EVERY {
                return Err(format!(
                    "valkey subscriber silent for {} s: its receive loop is stuck or has stopped",
                    silent.as_secs()
                ));
            }
            let ping = async {
                let mut conn = timeout(self.shared.pool.get()).await??;
                let cmd = redis::cmd("PING").to_owned();
                let _pong: String = timeout(cmd.query_async(&mut conn)).await??;
                Ok::<(), BoxError>(())
            };
            ping.await
                .map_err(|err| format!("valkey does not answer a PING: {err}"))
        })
    }

    fn start(&self, stack: ChatService, hub: Hub, background: &Background) -> anyhow::Result<()> {
        let stream = self
            .shared
            .first_stream
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .context("the valkey backend was started twice")?;
        let feeder = subscriber::Feeder {
            shared: self.shared.clone(),
            stack,
            hub,
        };
        let stop = background.stop.clone();
        background
            .tracker
            .spawn(subscriber::receive(feeder.clone(), stream, stop.clone()));
        background.tracker.spawn(subscriber::gaps(feeder, stop));
        Ok(())
    }
}
