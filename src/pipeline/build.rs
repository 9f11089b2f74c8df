//! From a validated [`PipelineConfig`] to one running tower stack.
//!
//! The layers are folded in reverse, so that the first `[[layer]]` of the file ends up outermost
//! (the order tower's `ServiceBuilder` documents): a request meets them top to bottom. Each step
//! wraps the stack built so far and erases its type into [`ChatService`], because the order is
//! only known at run time. Below the last layer sits [`end_of_pipeline`], which answers whatever
//! no layer handled with an empty reply.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use tower::limit::ConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::timeout::TimeoutLayer;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, Layer, service_fn};

use super::config::{
    DirectoryMode, FanoutConfig, LayerConfig, PersistConfig, PipelineConfig, RouteConfig,
};
use crate::backends::gaps::Settler;
use crate::backends::poll::{self, PollOptions};
use crate::backends::postgres_directory::PostgresDirectory;
use crate::backends::sequencer::LocalSequencer;
use crate::backends::valkey::{self, Valkey, ValkeyOptions};
use crate::backends::{Background, Bus, Directory, LocalDirectory};
use crate::core::{Action, ChatService, Hub, Reply, Request, Sequencer, end_of_pipeline};
use crate::layers::fanout::FanoutLayer;
use crate::layers::guard::UsersOnlyLayer;
use crate::layers::history::HistoryLayer;
use crate::layers::parse::ParseLayer;
use crate::layers::persist::{OpenedStore, PersistLayer, open_store};
use crate::layers::rate_limit::RateLimitLayer;
use crate::layers::route::RouteLayer;
use crate::ops::Backends;
use tokio_util::sync::CancellationToken;

/// The route layer's `max_rooms`: the most stored rooms worth listing.
fn max_rooms(config: &PipelineConfig) -> usize {
    config
        .layers
        .iter()
        .find_map(|layer| match layer {
            LayerConfig::Route(route) => Some(route.max_rooms),
            _ => None,
        })
        .unwrap_or_else(|| RouteConfig::default().max_rooms)
}

/// How many messages a joiner sees when the pipeline has no history layer.
const DEFAULT_JOIN_REPLAY: usize = 10;

/// Builds the stack `config` describes over the shared state `hub`. Backends that need it (a
/// store: connect, migrate, start its writer) are set up here, their tasks on `background`.
///
/// # Errors
/// When a backend cannot be set up (a store unreachable, a schema newer than this chatd).
pub async fn build(
    config: &PipelineConfig,
    hub: &Hub,
    background: &Background,
) -> anyhow::Result<ChatService> {
    Ok(assemble(config, hub, background).await?.stack)
}

/// A built stack and the backends it started.
#[derive(Debug)]
pub struct Built {
    /// The stack.
    pub stack: ChatService,
    /// Its store, writer and bus, for the operator's endpoints (`crate::ops`).
    pub backends: Backends,
    /// Who numbers messages: at a clean stop it gives back what it reserved and did not use.
    pub sequencer: Arc<dyn Sequencer>,
}

/// [`build`], also handing back the backends the stack uses, so that `/metrics` and `/readyz`
/// can look at them.
///
/// # Errors
/// As [`build`].
pub async fn assemble(
    config: &PipelineConfig,
    hub: &Hub,
    background: &Background,
) -> anyhow::Result<Built> {
    // The store, if any: opened once, shared by the persist layer and the fan-out backend.
    let store = match config.layers.iter().find_map(|layer| match layer {
        LayerConfig::Persist(persist) => Some(persist),
        _ => None,
    }) {
        Some(persist) => open_store(persist).await?,
        None => None,
    };
    // The rooms with stored history, so that `/rooms` lists them after a restart too.
    if let Some(opened) = &store {
        match opened.store.rooms(max_rooms(config)).await {
            Ok(names) => hub.rooms().remember_stored(names),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the stored rooms; /rooms shows the rooms in use only")
            }
        }
    }
    // Who numbers messages and who carries them to other instances: the fan-out backend decides.
    let (sequencer, bus) = fanout_backend(config, hub, store.as_ref()).await?;
    let join_replay = config
        .layers
        .iter()
        .find_map(|layer| match layer {
            LayerConfig::History(history) => Some(history.capacity),
            _ => None,
        })
        .unwrap_or(DEFAULT_JOIN_REPLAY);
    // Who holds which nick and who is in which room, on this instance or on all of them.
    let directory = directory(config, hub, background).await?;
    let mut backends = Backends {
        store: store.as_ref().map(|opened| opened.store.clone()),
        writer: None,
        bus: bus.clone(),
    };

    let mut stack = ChatService::new(service_fn(end_of_pipeline));
    for layer in config.layers.iter().rev() {
        stack = match layer {
            // Lines -> commands.
            LayerConfig::Parse(c) => wrap(ParseLayer::new(c), stack),
            // A token bucket per session and one per address over what they send.
            LayerConfig::RateLimit(c) => wrap(
                RateLimitLayer::new(c, config.server.ipv6_prefix, hub.stats_handle()),
                stack,
            ),
            // tower's middleware, over users' lines and commands only (see `layers/guard/`).
            LayerConfig::Timeout(c) => wrap(
                UsersOnlyLayer::new(TimeoutLayer::new(Duration::from_millis(c.ms))),
                stack,
            ),
            LayerConfig::ConcurrencyLimit(c) => wrap(
                UsersOnlyLayer::new(ConcurrencyLimitLayer::new(c.max)),
                stack,
            ),
            LayerConfig::LoadShed(_) => wrap(UsersOnlyLayer::new(LoadShedLayer::new()), stack),
            // Sessions, nicks, rooms; numbers each message (tombstones go to the persist layer's
            // writer, built already: persist is always inside route).
            LayerConfig::Route(c) => wrap(
                RouteLayer::new(
                    c,
                    hub.clone(),
                    sequencer.clone(),
                    directory.clone(),
                    join_replay,
                    backends.writer.clone(),
                )
                .with_ipv6_prefix(config.server.ipv6_prefix),
                stack,
            ),
            // Recent history from each room's memory, the store for the rest.
            LayerConfig::History(c) => wrap(HistoryLayer::new(c, hub.clone()), stack),
            // Durable storage: none, SQLite or PostgreSQL, written behind or ahead.
            LayerConfig::Persist(_) => {
                let persist = PersistLayer::new(store.as_ref(), hub, background);
                backends.writer = persist.writer().cloned();
                wrap(persist, stack)
            }
            // Delivery to room members, here and (through the bus) on other instances.
            LayerConfig::Fanout(_) => wrap(FanoutLayer::new(hub.clone(), bus.clone()), stack),
        };
    }
    // Other instances' messages come in through the very stack just built.
    if let Some(bus) = bus {
        hub.rooms().keep_opened_rooms();
        bus.start(stack.clone(), hub.clone(), background)?;
    }
    // Rooms are a cache of the store: idle ones leave memory (see `core::rooms`), and only
    // rooms that never carried a message when nothing stores history.
    if store.is_some() {
        hub.rooms().evict_stored_rooms();
    }
    let idle = Duration::from_secs(route_config(config).room_idle_secs);
    background.tracker.spawn(sweep_idle_rooms(
        stack.clone(),
        idle,
        background.stop.clone(),
    ));
    Ok(Built {
        stack,
        backends,
        sequencer,
    })
}

/// The pipeline's route options (the defaults if it has no route layer, which the checks refuse).
fn route_config(config: &PipelineConfig) -> RouteConfig {
    config
        .layers
        .iter()
        .find_map(|layer| match layer {
            LayerConfig::Route(route) => Some(route.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Asks the route layer to evict the rooms idle for `idle` (`Action::EvictIdleRooms`), twice per
/// `idle` (at most every 30 s), until `stop`. A sweep under way is finished before it stops:
/// a room half evicted would keep its name closed.
async fn sweep_idle_rooms(stack: ChatService, idle: Duration, stop: CancellationToken) {
    let every = (idle / 2).clamp(Duration::from_millis(100), Duration::from_secs(30));
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let sweep = Request::anonymous(Action::EvictIdleRooms);
        if let Err(err) = tower::ServiceExt::oneshot(stack.clone(), sweep).await {
            tracing::warn!("the idle-room sweep failed: {err}");
        }
    }
}

/// The sequencer and bus of the pipeline's fan-out backend: `local` numbers in memory
/// (reserving its seqs in the store, if any) and has no bus; the cross-instance backends number
/// with PostgreSQL's counter rows and carry messages between instances: `poll` through the store,
/// `valkey` through pub/sub with the same poll underneath as its safety net and fallback.
async fn fanout_backend(
    config: &PipelineConfig,
    hub: &Hub,
    store: Option<&OpenedStore>,
) -> anyhow::Result<(Arc<dyn Sequencer>, Option<Arc<dyn Bus>>)> {
    let fanout = config.layers.iter().find_map(|layer| match layer {
        LayerConfig::Fanout(fanout) => Some(fanout),
        _ => None,
    });
    let (interval_ms, gap_wait_ms, valkey) = match fanout {
        Some(FanoutConfig::Local {}) | None => {
            let store = store.map(|opened| opened.store.clone());
            let sequencer = LocalSequencer::new(store, hub.instance().clone());
            return Ok((Arc::new(sequencer), None));
        }
        Some(FanoutConfig::Poll {
            interval_ms,
            gap_wait_ms,
        }) => (*interval_ms, *gap_wait_ms, None),
        Some(FanoutConfig::Valkey {
            url,
            pool_size,
            gap_wait_ms,
        }) => (
            valkey::POLL_WHILE_DEGRADED.as_millis() as u64,
            *gap_wait_ms,
            Some(ValkeyOptions {
                url: url.clone(),
                pool_size: *pool_size,
            }),
        ),
    };
    // Both cross-instance backends: the counter, the messages and the referee of holes are in
    // the PostgreSQL store the persist layer opened (same pool).
    let opened = store.context(
        "fanout layer: a cross-instance backend needs the persist layer's PostgreSQL store",
    )?;
    let postgres = opened.postgres.clone().context(
        "fanout layer: a cross-instance backend needs the persist layer's PostgreSQL store",
    )?;
    let gap_wait = Duration::from_millis(gap_wait_ms);
    let degraded = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let options = PollOptions {
        interval: Duration::from_millis(interval_ms),
        gap_wait,
        idle: valkey.as_ref().map(|_| (gap_wait, degraded.clone())),
    };
    let settler = Settler {
        store: opened.store.clone(),
        durability: opened.durability,
        wait: gap_wait,
    };
    let (sequencer, poll) = poll::backend(postgres, options, settler, hub.instance().clone())
        .await
        .context("fanout layer: cannot read the presence events")?;
    let bus: Arc<dyn Bus> = match valkey {
        None => poll,
        Some(options) => {
            Arc::new(Valkey::connect(&options, hub.instance().clone(), poll, degraded).await?)
        }
    };
    Ok((sequencer, Some(bus)))
}

/// Whether the pipeline runs as one of several instances, so that nicks and members must be
/// looked up in a directory they all share: a PostgreSQL store to hold it, and a fan-out backend
/// that reaches other instances.
pub fn shared_directory(config: &PipelineConfig) -> bool {
    let postgres = config
        .layers
        .iter()
        .any(|layer| matches!(layer, LayerConfig::Persist(PersistConfig::Postgres { .. })));
    let cross_instance = config.layers.iter().any(|layer| {
        matches!(layer, LayerConfig::Fanout(fanout) if !matches!(fanout, FanoutConfig::Local {}))
    });
    postgres && cross_instance
}

/// The presence directory the route layer uses: the route options' `directory` decides, `auto`
/// by [`shared_directory`]. The shared one lives in the persist layer's PostgreSQL and keeps a
/// heartbeat on `background`.
///
/// # Errors
/// When `directory = "shared"` without a PostgreSQL store, or its pool cannot be built.
async fn directory(
    config: &PipelineConfig,
    hub: &Hub,
    background: &Background,
) -> anyhow::Result<Arc<dyn Directory>> {
    let route = route_config(config);
    let shared = match route.directory {
        DirectoryMode::Auto => shared_directory(config),
        DirectoryMode::Local => false,
        DirectoryMode::Shared => true,
    };
    if !shared {
        return Ok(Arc::new(LocalDirectory::new(hub.clone())));
    }
    let url = config.layers.iter().find_map(|layer| match layer {
        LayerConfig::Persist(PersistConfig::Postgres { url, .. }) => Some(url.as_str()),
        _ => None,
    });
    let Some(url) = url else {
        anyhow::bail!(
            "route layer: `directory = \"shared\"` keeps nicks and members in PostgreSQL, so it \
             needs a persist layer with `store = \"postgres\"`"
        );
    };
    let ttl = std::time::Duration::from_secs(route.presence_ttl_secs);
    let directory = PostgresDirectory::start(url, hub, ttl, background).await?;
    Ok(Arc::new(directory))
}

/// Wraps `inner` in `layer` and erases the result's type.
fn wrap<L>(layer: L, inner: ChatService) -> ChatService
where
    L: Layer<ChatService>,
    L::Service:
        tower::Service<Request, Response = Reply, Error = BoxError> + Clone + Send + Sync + 'static,
    <L::Service as tower::Service<Request>>::Future: Send + 'static,
{
    BoxCloneSyncService::new(layer.layer(inner))
}
