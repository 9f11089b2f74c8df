//! Starting and stopping a chatd instance.
//!
//! [`Server::start`] builds the shared state and the layer stack from a pipeline config, binds
//! the listeners and spawns the adapters. Binding happens before `start` returns, so a caller
//! (the binary, or a test on port 0) knows the real addresses and that they are open.
//!
//! **The shutdown story.** One [`CancellationToken`] is the shutdown signal for everything: the
//! accept loops stop accepting, every connection tells its client `* server shutting down` and
//! closes, and each closed session leaves its rooms through the stack like any other disconnect.
//! A [`TaskTracker`] holds every task so that [`Server::shutdown`] can wait for all of them to
//! finish. Backends that must flush (a store's write queue) have their own pair, a
//! [`Background`]: [`Server::shutdown`] stops them only once the adapters' tasks have all ended,
//! so the writer drains every message the last sessions sent.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use std::path::PathBuf;
use std::time::Duration;

use crate::adapters::http::{self, HttpOptions};
use crate::adapters::irc::{self, IrcOptions};
use crate::adapters::limits::ConnectionLimits;
use crate::adapters::tcp::{self, TcpOptions};
use crate::backends::Background;
use crate::core::outbound::QueueLimits;
use crate::core::{Hub, Sequencer};
use crate::ops::Ops;
use crate::pipeline::config::LayerConfig;
use crate::pipeline::{self, ChatService, PipelineConfig};

/// A running instance.
#[derive(Debug)]
pub struct Server {
    tcp_addr: SocketAddr,
    http_addr: SocketAddr,
    irc_addr: Option<SocketAddr>,
    hub: Hub,
    stack: ChatService,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    background: Background,
    sequencer: Arc<dyn Sequencer>,
}

impl Server {
    /// Builds the stack `config` describes, binds its listeners and starts serving.
    ///
    /// # Errors
    /// When a listener cannot be bound (address in use, permission denied), or a backend cannot
    /// be set up (a store unreachable, a database schema newer than this chatd).
    pub async fn start(config: &PipelineConfig) -> anyhow::Result<Server> {
        let hub = Hub::new(config.instance_id());
        let background = Background::default();
        let built = pipeline::assemble(config, &hub, &background).await?;
        let (stack, sequencer) = (built.stack, built.sequencer);
        let ops = Ops::new(hub.clone(), built.backends);
        let listener = TcpListener::bind(config.server.tcp)
            .await
            .with_context(|| format!("cannot listen for TCP on {}", config.server.tcp))?;
        let tcp_addr = listener.local_addr()?;
        let http_listener = TcpListener::bind(config.server.http)
            .await
            .with_context(|| format!("cannot listen for HTTP on {}", config.server.http))?;
        let http_addr = http_listener.local_addr()?;
        let irc_listener = match config.server.irc {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen for IRC on {addr}"))?,
            ),
            None => None,
        };
        let irc_addr = irc_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?;
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        // Every outbound queue (TCP, IRC and HTTP sessions, event streams) draws on one budget.
        hub.stats().queued.set_max(config.server.max_queued_bytes);
        let queue = QueueLimits {
            events: config.server.outbound_queue,
            bytes: config.server.outbound_queue_bytes,
            budget: hub.stats().queued.clone(),
        };
        let options = TcpOptions {
            max_line_bytes: config.server.max_line_bytes,
            join_timeout: Duration::from_secs(config.server.join_timeout_secs),
            queue: queue.clone(),
        };
        let http_options = HttpOptions {
            queue: queue.clone(),
            max_streams_per_session: config.server.max_streams_per_session,
            stream_limits: ConnectionLimits::new(
                "event streams",
                config.server.max_streams_per_ip,
                config.server.max_connections,
                config.server.ipv6_prefix,
            ),
            session_idle: Duration::from_secs(config.server.session_idle_secs),
            max_body_bytes: config.server.max_body_bytes,
            header_read_timeout: Duration::from_secs(config.server.header_read_timeout_secs),
            session_limits: ConnectionLimits::new(
                "sessions",
                config.server.max_connections_per_ip,
                config.server.max_connections,
                config.server.ipv6_prefix,
            ),
            static_dir: static_dir(),
        };
        // One count for every listener: the limits are per address, whatever the protocol.
        let limits = ConnectionLimits::new(
            "connections",
            config.server.max_connections_per_ip,
            config.server.max_connections,
            config.server.ipv6_prefix,
        );
        tracker.spawn(http::serve(
            http_listener,
            stack.clone(),
            http_options,
            ops,
            limits.clone(),
            shutdown.clone(),
            tracker.clone(),
        ));
        if let Some(listener) = irc_listener {
            tracker.spawn(irc::serve(
                listener,
                stack.clone(),
                irc_options(config, &hub, queue),
                hub.stats_handle(),
                limits.clone(),
                shutdown.clone(),
                tracker.clone(),
            ));
        }
        tracker.spawn(tcp::serve(
            listener,
            stack.clone(),
            options,
            hub.stats_handle(),
            limits,
            shutdown.clone(),
            tracker.clone(),
        ));
        tracker.spawn(crate::ops::memory::give_back_after_bursts(shutdown.clone()));
        let irc = irc_addr.map_or_else(|| "off".to_string(), |addr| addr.to_string());
        tracing::info!(instance = %hub.instance(), tcp = %tcp_addr, http = %http_addr, %irc, "chatd is listening");
        Ok(Server {
            tcp_addr,
            http_addr,
            irc_addr,
            hub,
            stack,
            shutdown,
            tracker,
            background,
            sequencer,
        })
    }

    /// The address the line protocol listens on.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// The address the HTTP adapter listens on.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The address the IRC adapter listens on, if it runs.
    pub fn irc_addr(&self) -> Option<SocketAddr> {
        self.irc_addr
    }

    /// The shared state (for tests and diagnostics).
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// A clone of the layer stack, to call it directly (tests, benches, bridges).
    pub fn stack(&self) -> ChatService {
        self.stack.clone()
    }

    /// Stops accepting, says goodbye to every client and waits for every task to end; then lets
    /// the backends finish (the store's writer flushes its queue) and waits for them too.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        // Nothing is numbered any more: give back the seqs reserved and not used.
        self.sequencer.release(self.hub.rooms().all()).await;
        self.background.finish().await;
        tracing::info!(instance = %self.hub.instance(), "chatd stopped");
    }
}

/// Where the browser client's files are: `static/` in the working directory, or else the one in
/// the source tree this binary was built from (so `cargo run` works from any directory).
fn static_dir() -> PathBuf {
    let local = PathBuf::from("static");
    if local.join("index.html").is_file() {
        local
    } else {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/static"))
    }
}

/// The IRC adapter's options: the `[server]` table's, the outbound `queue` bounds every adapter
/// shares, and what it announces of the pipeline (the route layer's room limit, the history
/// layer's replay on join).
fn irc_options(config: &PipelineConfig, hub: &Hub, queue: QueueLimits) -> IrcOptions {
    let mut options = IrcOptions {
        server_name: hub.instance().clone(),
        ping: Duration::from_secs(config.server.irc_ping_secs),
        queue,
        max_rooms_per_session: crate::pipeline::config::RouteConfig::default()
            .max_rooms_per_session,
        join_replay: 0,
    };
    for layer in &config.layers {
        match layer {
            LayerConfig::Route(route) => {
                options.max_rooms_per_session = route.max_rooms_per_session
            }
            LayerConfig::History(history) => options.join_replay = history.capacity,
            _ => {}
        }
    }
    options
}
