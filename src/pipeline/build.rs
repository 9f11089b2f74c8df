//! From a validated [`PipelineConfig`] to one running tower stack.
//!
//! The layers are folded in reverse, so that the first `[[layer]]` of the file ends up outermost
//! (the order tower's `ServiceBuilder` documents): a request meets them top to bottom. Each step
//! wraps the stack built so far and erases its type into [`ChatService`], because the order is
//! only known at run time. Below the last layer sits [`end_of_pipeline`], which answers whatever
//! no layer handled with an empty reply.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tower::limit::ConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::timeout::TimeoutLayer;
use tower::util::BoxCloneSyncService;
use tower::{BoxError, Layer, service_fn};

use super::cluster::{Cluster, Wiring};
use super::config::{LayerConfig, PipelineConfig};
use crate::backends::Background;
use crate::core::{Action, ChatService, Hub, Reply, Request, Sequencer, end_of_pipeline};
use crate::layers::fanout::FanoutLayer;
use crate::layers::guard::UsersOnlyLayer;
use crate::layers::history::HistoryLayer;
use crate::layers::parse::ParseLayer;
use crate::layers::persist::PersistLayer;
use crate::layers::rate_limit::RateLimitLayer;
use crate::layers::route::RouteLayer;
use crate::ops::Backends;

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
    let route = config.route().cloned().unwrap_or_default();
    // The store, and who numbers messages, carries them to other instances and knows who is
    // where: decided by the persist, fan-out and route options together.
    let cluster = Cluster::of(config.persist(), config.fanout(), config.route());
    let Wiring {
        store,
        sequencer,
        bus,
        directory,
    } = cluster.start(hub, background).await?;
    // The rooms with stored history, so that `/rooms` lists them after a restart too.
    if let Some(opened) = &store {
        match opened.store.rooms(route.max_rooms).await {
            Ok(names) => hub.rooms().remember_stored(names),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the stored rooms; /rooms shows the rooms in use only")
            }
        }
    }
    let join_replay = config
        .history()
        .map_or(DEFAULT_JOIN_REPLAY, |history| history.capacity);
    let mut backends = Backends {
        store: store.as_ref().map(|opened| opened.store.clone()),
        writer: None,
        bus: bus.clone(),
    };

    let mut stack = ChatService::new(service_fn(end_of_pipeline));
    // Where requests that come from no user enter: the route layer, below parse, the rate
    // limit and the guards, which have nothing to do with them.
    let mut from_route = None;
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
        if let LayerConfig::Route(_) = layer {
            from_route = Some(stack.clone());
        }
    }
    // The checks require a route layer; without one (a config built by code) everything enters
    // at the top.
    let from_route = from_route.unwrap_or_else(|| stack.clone());
    // Other instances' messages come in at the route layer: it handles their presence changes,
    // passes their messages to the layers inside (the ring, the store that does not store them
    // again, the room's ordered gate in the fan-out layer).
    if let Some(bus) = bus {
        hub.rooms().keep_opened_rooms();
        bus.start(from_route.clone(), hub.clone(), background)?;
    }
    // Rooms are a cache of the store: idle ones leave memory (see `core::rooms`), and only
    // rooms that never carried a message when nothing stores history.
    if store.is_some() {
        hub.rooms().evict_stored_rooms();
    }
    let idle = Duration::from_secs(route.room_idle_secs);
    background
        .tracker
        .spawn(sweep_idle_rooms(from_route, idle, background.stop.clone()));
    Ok(Built {
        stack,
        backends,
        sequencer,
    })
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
