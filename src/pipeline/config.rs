//! The typed shape of a pipeline file: a `[server]` table and an ordered list of `[[layer]]`
//! tables, each naming its `kind` and carrying that kind's own options.
//!
//! Each layer owns its options type and reads it (`layers/route/config.rs`, ...); this file has
//! the `[server]` table, which the adapters share, and [`LayerConfig`], one variant per kind,
//! whose names (`LayerKind`) are the ones a `kind = "..."` may take. Adding a layer kind is one
//! variant here, one arm in [`LayerConfig::read`] and in `build.rs`, and one file under
//! `src/layers/`.

use std::net::SocketAddr;

use std::cmp::Ordering::Greater;

use serde::Serialize;
use strum::{Display, EnumDiscriminants, EnumString, VariantNames};

pub use crate::backends::{Durability, mask_password};
use crate::config::Reader;
pub use crate::layers::fanout::FanoutConfig;
pub use crate::layers::guard::{ConcurrencyLimitConfig, LoadShedConfig, TimeoutConfig};
pub use crate::layers::history::HistoryConfig;
pub use crate::layers::parse::ParseConfig;
pub use crate::layers::persist::PersistConfig;
pub use crate::layers::rate_limit::RateLimitConfig;
pub use crate::layers::route::{DirectoryMode, OperConfig, RouteConfig};

/// A whole, validated pipeline: where to listen and which layers to stack, outermost first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelineConfig {
    /// Where the configuration came from (a path, or `<embedded default>`), for messages.
    #[serde(skip)]
    pub source: String,
    /// The `[server]` table.
    pub server: ServerConfig,
    /// The `[[layer]]` tables in file order: the first one is the outermost layer, the one a
    /// request meets first.
    #[serde(rename = "layer")]
    pub layers: Vec<LayerConfig>,
}

/// The `[server]` table: addresses, identity and per-connection limits shared by the adapters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerConfig {
    /// Address of the line protocol (netcat) listener.
    pub tcp: SocketAddr,
    /// Address of the HTTP listener (REST + Server-Sent Events).
    pub http: SocketAddr,
    /// Address of the IRC listener; when absent there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub irc: Option<SocketAddr>,
    /// An IRC client silent for this many seconds is sent a `PING`; one still silent as long
    /// again is disconnected (IRC's idle timeout).
    pub irc_ping_secs: u64,
    /// Name of this instance, shown in the welcome notice and used to tell instances apart.
    /// When absent it is derived from the host name and the TCP port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Longest accepted input line in bytes, without its line ending.
    pub max_line_bytes: usize,
    /// Events that may wait for one slow client (a TCP or IRC session, an event stream) before
    /// it is disconnected.
    pub outbound_queue: usize,
    /// Bytes that may wait for one slow client before it is disconnected (see
    /// `core::outbound`): the event bound alone allows 2,048 short lines or 2,048 of the
    /// longest; by default this bound is the one reached first.
    pub outbound_queue_bytes: usize,
    /// Bytes that may wait in all outbound queues of this process together; beyond it, a client
    /// that is behind is disconnected rather than given more (see `core::outbound`).
    pub max_queued_bytes: usize,
    /// An HTTP session with no open event stream and no request for this long expires and
    /// frees its nick (TCP sessions end with their connection instead).
    pub session_idle_secs: u64,
    /// Largest accepted HTTP request body, in bytes.
    pub max_body_bytes: usize,
    /// Most open connections (TCP and HTTP together) from one IP address; for HTTP it also
    /// bounds the live sessions one address may open with `POST /connect`.
    pub max_connections_per_ip: usize,
    /// Most open connections (TCP and HTTP together) in this process.
    pub max_connections: usize,
    /// How long an HTTP client gets to send a request's head (against slowloris), in seconds.
    pub header_read_timeout_secs: u64,
    /// How many leading bits of an IPv6 address make "one address" for every per-address limit
    /// (`max_connections_per_ip`, the rate limit's per-address bucket); IPv4 counts per address.
    pub ipv6_prefix: u8,
    /// A TCP connection that has neither chosen a nick (`/nick`) nor joined a room (`/join`)
    /// this long after connecting is closed with a notice, in seconds.
    pub join_timeout_secs: u64,
    /// Most event streams (`GET /messages/ROOM`) one HTTP session may have open at once.
    pub max_streams_per_session: usize,
    /// Most event streams open at once from one IP address, over all its sessions.
    pub max_streams_per_ip: usize,
}

impl ServerConfig {
    /// Reads the `[server]` table, one call per option: its default and its range.
    pub fn read(r: &mut Reader<'_, '_>) -> ServerConfig {
        const MIB: usize = 1024 * 1024;
        let config = ServerConfig {
            tcp: r.addr("tcp", SocketAddr::from(([127, 0, 0, 1], 9001))),
            http: r.addr("http", SocketAddr::from(([127, 0, 0, 1], 3001))),
            irc: r.optional_addr("irc"),
            // At least a second; beyond an hour a dead IRC connection lingers.
            irc_ping_secs: r.int("irc_ping_secs", 1..=3600, 120),
            instance: r.optional_string("instance"),
            // A short `/join` line needs some room; beyond 1 MiB one client could make the
            // server buffer a lot for a single line.
            max_line_bytes: r.int("max_line_bytes", 64..=MIB, 4096),
            // 0 would drop every event; a huge queue lets one slow reader pin a lot of memory.
            // 2048 is what the byte bound's default holds of the smallest events (each counts
            // at least 128 bytes), so that by default bytes decide: a burst of short notices (a
            // join storm) is absorbed as a few long messages would be.
            outbound_queue: r.int("outbound_queue", 1..=65_536, 2048),
            // Below 4 KiB a few notices would cut a reader; beyond 256 MiB one slow reader could
            // pin more than most servers have to spare.
            outbound_queue_bytes: r.int("outbound_queue_bytes", 4096..=256 * MIB, 256 * 1024),
            // At least 1 MiB, at most 64 GiB (a machine with more memory than that does not
            // need this budget to protect it).
            max_queued_bytes: r.int("max_queued_bytes", MIB..=64 * 1024 * MIB, 128 * MIB),
            // At least a second, at most a day.
            session_idle_secs: r.int("session_idle_secs", 1..=86_400, 300),
            // Room for a 2000-character message in JSON, and at most 16 MiB.
            max_body_bytes: r.int("max_body_bytes", 1024..=16 * MIB, 64 * 1024),
            // 0 would refuse everyone; beyond a million the process runs out of file
            // descriptors long before the limit means anything.
            max_connections_per_ip: r.int("max_connections_per_ip", 1..=1_000_000, 64),
            max_connections: r.int("max_connections", 1..=1_000_000, 10_000),
            // 0 would cut every request; beyond an hour a slowloris client holds its connection.
            header_read_timeout_secs: r.int("header_read_timeout_secs", 1..=3600, 10),
            // Shorter than /32 would count a whole provider's customers as one client; /128
            // counts every address apart (what IPv4 does).
            ipv6_prefix: r.int(
                "ipv6_prefix",
                32..=128,
                crate::core::address::DEFAULT_IPV6_PREFIX,
            ),
            // At least a second, at most a day.
            join_timeout_secs: r.int("join_timeout_secs", 1..=86_400, 60),
            // A browser page streams a few rooms at once; beyond 1000 a session could hold a
            // replay per room it is in and then some.
            max_streams_per_session: r.int("max_streams_per_session", 1..=1000, 8),
            // As connections (each stream is an HTTP/1.1 connection).
            max_streams_per_ip: r.int("max_streams_per_ip", 1..=1_000_000, 32),
        };
        let queue = ("outbound_queue_bytes", config.outbound_queue_bytes);
        let why = "one queue cannot hold more than all of them together";
        let all = ("max_queued_bytes", config.max_queued_bytes);
        r.never(queue, Greater, all, why);
        let per_ip = ("max_connections_per_ip", config.max_connections_per_ip);
        let why = "one address cannot have more connections than the whole server";
        let total = ("max_connections", config.max_connections);
        r.never(per_ip, Greater, total, why);
        if let Some(name) = &config.instance {
            let ok = (1..=32).contains(&name.chars().count()) && name.chars().all(instance_char);
            r.check(&["instance"], ok, || {
                format!(
                    "option `instance` = {name:?} is not a valid instance name: use 1 to 32 of \
                     the characters A-Z a-z 0-9 _ . -"
                )
            });
        }
        config
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Reader::defaults(ServerConfig::read)
    }
}

/// One `[[layer]]` table. The `kind` key selects the variant; [`LayerKind`] names the kinds.
#[derive(Debug, Clone, PartialEq, Serialize, EnumDiscriminants)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[strum_discriminants(name(LayerKind), derive(EnumString, VariantNames, Display))]
#[strum_discriminants(strum(serialize_all = "snake_case"))]
pub enum LayerConfig {
    /// Turns raw lines into commands.
    Parse(ParseConfig),
    /// A token bucket per session: refuses what a client sends faster than its rate.
    RateLimit(RateLimitConfig),
    /// tower's `Timeout`: a user's request that takes longer than `ms` is abandoned.
    Timeout(TimeoutConfig),
    /// tower's `ConcurrencyLimit`: at most `max` user requests in the layers below at once.
    ConcurrencyLimit(ConcurrencyLimitConfig),
    /// tower's `LoadShed`: refuses a user's request at once when the layers below are not ready.
    LoadShed(LoadShedConfig),
    /// Sessions, nicks, rooms and membership; stamps messages with their sequence number.
    Route(RouteConfig),
    /// The per-room ring buffer of recent messages.
    History(HistoryConfig),
    /// Hands messages to a durable store.
    Persist(PersistConfig),
    /// Delivers messages to the members of a room.
    Fanout(FanoutConfig),
}

impl LayerConfig {
    /// Reads the options of a layer whose `kind` is read already; `None` when the table cannot
    /// say which variant it is (a persist layer without a known `store`).
    pub fn read(kind: LayerKind, r: &mut Reader<'_, '_>) -> Option<LayerConfig> {
        Some(match kind {
            LayerKind::Parse => LayerConfig::Parse(ParseConfig {}),
            LayerKind::RateLimit => LayerConfig::RateLimit(RateLimitConfig::read(r)),
            LayerKind::Timeout => LayerConfig::Timeout(TimeoutConfig::read(r)),
            LayerKind::ConcurrencyLimit => {
                LayerConfig::ConcurrencyLimit(ConcurrencyLimitConfig::read(r))
            }
            LayerKind::LoadShed => LayerConfig::LoadShed(LoadShedConfig {}),
            LayerKind::Route => LayerConfig::Route(RouteConfig::read(r)),
            LayerKind::History => LayerConfig::History(HistoryConfig::read(r)),
            LayerKind::Persist => LayerConfig::Persist(PersistConfig::read(r)?),
            LayerKind::Fanout => LayerConfig::Fanout(FanoutConfig::read(r)?),
        })
    }

    /// The kind of this layer; its `Display` is the `kind` string as written in the file.
    pub fn kind(&self) -> LayerKind {
        self.into()
    }
}

/// `config.route()` and the like: the options of the pipeline's layer of one kind, if it has
/// one (the checks allow each kind once).
macro_rules! layer_of_kind {
    ($($name:ident: $variant:ident($options:ty)),*) => {
        impl PipelineConfig {$(
            #[doc = concat!("The options of the `", stringify!($name), "` layer, if any.")]
            pub fn $name(&self) -> Option<&$options> {
                self.layers.iter().find_map(|layer| match layer {
                    LayerConfig::$variant(options) => Some(options),
                    _ => None,
                })
            }
        )*}
    };
}

layer_of_kind!(route: Route(RouteConfig), history: History(HistoryConfig), persist: Persist(PersistConfig), fanout: Fanout(FanoutConfig));

/// Whether `c` may be part of an instance name: it is shown to every client that connects, and
/// used in logs, keys and URLs alike.
pub(super) fn instance_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_.-".contains(c)
}
