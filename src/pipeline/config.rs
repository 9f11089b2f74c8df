//! The typed shape of a pipeline file.
//!
//! A pipeline file has a `[server]` table and an ordered list of `[[layer]]` tables. Each layer
//! table names its `kind` and carries that kind's own options, nothing else: every options struct
//! denies unknown fields, so a typo is an error instead of a silently ignored setting.
//!
//! This file only describes the shape. Reading a file, substituting `${VAR}`s and checking the
//! whole pipeline (reporting every problem at once) is [`super::load`]; turning a valid config
//! into a running tower stack is [`super::build()`].
//!
//! Adding a layer kind is one variant here, one match arm in `load.rs` and `build.rs`, and one
//! file under `src/layers/`.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the line protocol (netcat) listener.
    #[serde(default = "default_tcp")]
    pub tcp: SocketAddr,
    /// Address of the HTTP listener (REST + Server-Sent Events).
    #[serde(default = "default_http")]
    pub http: SocketAddr,
    /// Address of the IRC listener; when absent there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub irc: Option<SocketAddr>,
    /// An IRC client silent for this many seconds is sent a `PING`; one still silent as long
    /// again is disconnected (IRC's idle timeout).
    #[serde(default = "default_irc_ping_secs")]
    pub irc_ping_secs: u64,
    /// Name of this instance, shown in the welcome notice and used to tell instances apart.
    /// When absent it is derived from the host name and the TCP port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Longest accepted input line in bytes, without its line ending.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// Events that may wait for one slow client (a TCP session, an event stream) before it is
    /// disconnected.
    #[serde(default = "default_outbound_queue")]
    pub outbound_queue: usize,
    /// Bytes that may wait for one slow client before it is disconnected (see
    /// `core::outbound`): the event bound alone allows 256 short lines or 256 of the longest.
    #[serde(default = "default_outbound_queue_bytes")]
    pub outbound_queue_bytes: usize,
    /// Bytes that may wait in all outbound queues of this process together; beyond it, a client
    /// that is behind is disconnected rather than given more (see `core::outbound`).
    #[serde(default = "default_max_queued_bytes")]
    pub max_queued_bytes: usize,
    /// An HTTP session with no open event stream and no request for this long expires and
    /// frees its nick (TCP sessions end with their connection instead).
    #[serde(default = "default_session_idle_secs")]
    pub session_idle_secs: u64,
    /// Largest accepted HTTP request body, in bytes.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Most open connections (TCP and HTTP together) from one IP address; for HTTP it also
    /// bounds the live sessions one address may open with `POST /connect`.
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// Most open connections (TCP and HTTP together) in this process.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// How long an HTTP client gets to send a request's head (against slowloris), in seconds.
    #[serde(default = "default_header_read_timeout_secs")]
    pub header_read_timeout_secs: u64,
    // Against clients that hold slots without chatting (issue 13): per-address grouping and idle
    // TCP connections.
    /// How many leading bits of an IPv6 address make "one address" for every per-address limit
    /// (`max_connections_per_ip`, the rate limit's per-address bucket); IPv4 counts per address.
    #[serde(default = "default_ipv6_prefix")]
    pub ipv6_prefix: u8,
    /// A TCP connection that has neither chosen a nick (`/nick`) nor joined a room (`/join`)
    /// this long after connecting is closed with a notice, in seconds.
    #[serde(default = "default_join_timeout_secs")]
    pub join_timeout_secs: u64,
    /// Most event streams (`GET /messages/ROOM`) one HTTP session may have open at once.
    #[serde(default = "default_max_streams_per_session")]
    pub max_streams_per_session: usize,
    /// Most event streams open at once from one IP address, over all its sessions.
    #[serde(default = "default_max_streams_per_ip")]
    pub max_streams_per_ip: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            tcp: default_tcp(),
            http: default_http(),
            irc: None,
            irc_ping_secs: default_irc_ping_secs(),
            instance: None,
            max_line_bytes: default_max_line_bytes(),
            outbound_queue: default_outbound_queue(),
            session_idle_secs: default_session_idle_secs(),
            max_body_bytes: default_max_body_bytes(),
            max_connections_per_ip: default_max_connections_per_ip(),
            max_connections: default_max_connections(),
            header_read_timeout_secs: default_header_read_timeout_secs(),
            ipv6_prefix: default_ipv6_prefix(),
            join_timeout_secs: default_join_timeout_secs(),
            outbound_queue_bytes: default_outbound_queue_bytes(),
            max_queued_bytes: default_max_queued_bytes(),
            max_streams_per_session: default_max_streams_per_session(),
            max_streams_per_ip: default_max_streams_per_ip(),
        }
    }
}

fn default_tcp() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9001))
}
fn default_http() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 3001))
}
fn default_irc_ping_secs() -> u64 {
    120
}
fn default_max_line_bytes() -> usize {
    4096
}
fn default_outbound_queue() -> usize {
    256
}
fn default_outbound_queue_bytes() -> usize {
    256 * 1024
}
fn default_max_queued_bytes() -> usize {
    128 * 1024 * 1024
}
fn default_max_streams_per_session() -> usize {
    8
}
fn default_max_streams_per_ip() -> usize {
    32
}
fn default_session_idle_secs() -> u64 {
    300
}
fn default_max_body_bytes() -> usize {
    64 * 1024
}
fn default_max_connections_per_ip() -> usize {
    64
}
fn default_max_connections() -> usize {
    10_000
}
fn default_header_read_timeout_secs() -> u64 {
    10
}
fn default_ipv6_prefix() -> u8 {
    crate::core::address::DEFAULT_IPV6_PREFIX
}
fn default_join_timeout_secs() -> u64 {
    60
}

/// One `[[layer]]` table. The `kind` key selects the variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
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
    /// Every kind a `[[layer]]` may name, in the order they may appear in a pipeline.
    pub const KINDS: &'static [&'static str] = &[
        "parse",
        "rate_limit",
        "timeout",
        "concurrency_limit",
        "load_shed",
        "route",
        "history",
        "persist",
        "fanout",
    ];

    /// The `kind` string of this layer, as written in the file.
    pub fn kind(&self) -> &'static str {
        match self {
            LayerConfig::Parse(_) => "parse",
            LayerConfig::RateLimit(_) => "rate_limit",
            LayerConfig::Timeout(_) => "timeout",
            LayerConfig::ConcurrencyLimit(_) => "concurrency_limit",
            LayerConfig::LoadShed(_) => "load_shed",
            LayerConfig::Route(_) => "route",
            LayerConfig::History(_) => "history",
            LayerConfig::Persist(_) => "persist",
            LayerConfig::Fanout(_) => "fanout",
        }
    }
}

/// Options of `kind = "parse"` (none yet).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseConfig {}

/// Options of `kind = "rate_limit"`: a token bucket per session (see `src/layers/rate_limit.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Lines or commands a session may send per second, on average: the bucket's refill rate.
    #[serde(default = "default_per_second")]
    pub per_second: u32,
    /// How many it may send at once after a quiet spell: the bucket's size.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Lines, commands and connects all the sessions of one address (an IPv6 prefix, see
    /// `[server] ipv6_prefix`) may send per second together: a second bucket, per address, so
    /// that reconnecting (a fresh session, a fresh bucket) does not multiply the rate.
    #[serde(default = "default_per_address_per_second")]
    pub per_address_per_second: u32,
    /// The per-address bucket's size.
    #[serde(default = "default_per_address_burst")]
    pub per_address_burst: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_second: default_per_second(),
            burst: default_burst(),
            per_address_per_second: default_per_address_per_second(),
            per_address_burst: default_per_address_burst(),
        }
    }
}

fn default_per_second() -> u32 {
    10
}
fn default_burst() -> u32 {
    20
}
/// Five sessions' worth: an office of people behind one NAT address, of whom a few talk at once
/// (see docs/CONFIG.md for the reasoning).
fn default_per_address_per_second() -> u32 {
    50
}
/// Room for everybody behind one address reconnecting at once (after a restart of chatd, each
/// page or netcat user spends a connect, a `/nick` and a few `/join`s).
fn default_per_address_burst() -> u32 {
    200
}

/// Options of `kind = "timeout"` (tower's `Timeout`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutConfig {
    /// How long a user's request may take in the layers below, in milliseconds.
    pub ms: u64,
}

/// Options of `kind = "concurrency_limit"` (tower's `ConcurrencyLimit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyLimitConfig {
    /// Most user requests in the layers below at once, over all sessions; the others wait (or,
    /// under a `load_shed` layer, are refused).
    pub max: usize,
}

/// Options of `kind = "load_shed"` (tower's `LoadShed`; none).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadShedConfig {}

/// Options of `kind = "route"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Longest accepted chat message, in characters (Discord's limit is 2000).
    #[serde(default = "default_max_message_chars")]
    pub max_message_chars: usize,
    /// Where nicks and memberships are looked up; see [`DirectoryMode`].
    #[serde(default)]
    pub directory: DirectoryMode,
    /// With a shared directory: how long an instance's members stay listed after its last
    /// heartbeat (it beats every third of this). An instance that dies vanishes from `/users`
    /// elsewhere within this time. See `src/backends/directory.rs`.
    #[serde(default = "default_presence_ttl_secs")]
    pub presence_ttl_secs: u64,
    /// Most rooms one session may be in at once; beyond it `/join` asks to `/leave` one first.
    #[serde(default = "default_max_rooms_per_session")]
    pub max_rooms_per_session: usize,
    /// Most rooms this instance keeps; beyond it `/join` of a new room is refused (existing
    /// rooms can still be joined). See `core::rooms` for when a room is freed again.
    #[serde(default = "default_max_rooms")]
    pub max_rooms: usize,
    /// Server operators: who may `/oper NAME PASSWORD` (IRC's `OPER`), and then `/kill` and
    /// `/wallops`. None by default. Write passwords as `${VAR}` to keep them out of the file;
    /// `--check` shows them hidden.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub opers: Vec<OperConfig>,
    /// Most rooms one IP address may have created that are in memory at once: one address
    /// cannot fill `max_rooms` by itself.
    #[serde(default = "default_max_rooms_per_ip")]
    pub max_rooms_per_ip: usize,
    /// A room nobody has been in for this long, whose history is stored, is evicted from memory
    /// (and reopened from the store when used again), in seconds. See `core::rooms`.
    #[serde(default = "default_room_idle_secs")]
    pub room_idle_secs: u64,
}

/// One server operator of [`RouteConfig::opers`].
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperConfig {
    /// The name given to `/oper`.
    pub name: String,
    /// The password given to `/oper`.
    pub password: String,
}

/// Shown and serialized (by `--check`) without its password.
impl std::fmt::Debug for OperConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperConfig")
            .field("name", &self.name)
            .field("password", &HIDDEN)
            .finish()
    }
}

impl Serialize for OperConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut oper = serializer.serialize_struct("OperConfig", 2)?;
        oper.serialize_field("name", &self.name)?;
        oper.serialize_field("password", HIDDEN)?;
        oper.end()
    }
}

/// What stands for a password wherever the configuration is shown.
const HIDDEN: &str = "(hidden)";

impl Default for RouteConfig {
    fn default() -> Self {
        RouteConfig {
            max_message_chars: default_max_message_chars(),
            max_rooms_per_session: default_max_rooms_per_session(),
            max_rooms: default_max_rooms(),
            max_rooms_per_ip: default_max_rooms_per_ip(),
            room_idle_secs: default_room_idle_secs(),
            directory: DirectoryMode::default(),
            presence_ttl_secs: default_presence_ttl_secs(),
            opers: Vec::new(),
        }
    }
}

fn default_presence_ttl_secs() -> u64 {
    15
}

/// Which presence directory the route layer asks "is this nick free?" and "who is in this room?".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectoryMode {
    /// Shared (in PostgreSQL) when the pipeline runs several instances, that is with
    /// `store = "postgres"` and a fan-out backend other than `local`; local otherwise.
    #[default]
    Auto,
    /// This instance only, whatever the other layers say.
    Local,
    /// Shared in the persist layer's PostgreSQL, even with the `local` fan-out backend (members
    /// of every instance are listed, though messages stay on their instance): for tests and
    /// demonstrations. Requires `store = "postgres"`.
    Shared,
}

fn default_max_message_chars() -> usize {
    2000
}
fn default_max_rooms_per_session() -> usize {
    50
}
fn default_max_rooms() -> usize {
    10_000
}
fn default_max_rooms_per_ip() -> usize {
    500
}
fn default_room_idle_secs() -> u64 {
    300
}

/// Options of `kind = "history"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// Messages kept per room in memory, and replayed to a joiner.
    #[serde(default = "default_capacity")]
    pub capacity: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            capacity: default_capacity(),
        }
    }
}

fn default_capacity() -> usize {
    10
}

/// Options of `kind = "persist"`: the `store` key selects the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "store", rename_all = "snake_case", deny_unknown_fields)]
pub enum PersistConfig {
    /// Keep nothing: history lives only in the ring and is gone after a restart.
    None {},
    /// An embedded SQLite file: durable history with nothing to install.
    Sqlite {
        /// The database file; it and its directory are created on first start.
        path: String,
        /// When a message counts as stored; see [`Durability`].
        #[serde(default)]
        durability: Durability,
        /// Messages that may wait for the writer before new ones are dropped (async) or wait
        /// (sync).
        #[serde(default = "default_queue")]
        queue: usize,
        /// Most messages written in one transaction.
        #[serde(default = "default_batch")]
        batch: usize,
        /// Write-ahead only: how long a sender waits for its message to be stored before it
        /// is refused ("could not store your message ..., try again") and not delivered.
        #[serde(default = "default_sync_timeout_ms")]
        sync_timeout_ms: u64,
    },
    /// A PostgreSQL server, through a pool of connections.
    Postgres {
        /// A connection string, `postgres://user:password@host:port/database` or
        /// `host=... dbname=...`. Shown by `--check` with its password masked.
        #[serde(serialize_with = "serialize_masked_url")]
        url: String,
        /// Most connections the pool opens.
        #[serde(default = "default_pool_size")]
        pool_size: u32,
        /// When a message counts as stored; see [`Durability`].
        #[serde(default)]
        durability: Durability,
        /// Messages that may wait for the writer; see `Sqlite::queue`.
        #[serde(default = "default_queue")]
        queue: usize,
        /// Most messages written in one statement.
        #[serde(default = "default_batch")]
        batch: usize,
        /// Write-ahead only: see `Sqlite::sync_timeout_ms`.
        #[serde(default = "default_sync_timeout_ms")]
        sync_timeout_ms: u64,
    },
}

impl PersistConfig {
    /// Every value `store` may take, for messages; keep in step with the variants.
    pub const STORES: &'static [&'static str] = &["none", "sqlite", "postgres"];

    /// The `store` string of this config, as written in the file.
    pub fn store(&self) -> &'static str {
        match self {
            PersistConfig::None {} => "none",
            PersistConfig::Sqlite { .. } => "sqlite",
            PersistConfig::Postgres { .. } => "postgres",
        }
    }
}

/// When the persist layer considers a message safe: the seed's approaches B and C.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// Write-behind: the message is queued for the writer and delivered at once; the store
    /// catches up in batches. Fast; a crash (not a clean stop) loses what was queued.
    #[default]
    Async,
    /// Write-ahead: the message's batch is committed before anybody sees the message, and
    /// before the sender's request is answered.
    Sync,
}

/// Serializes a connection string with its password replaced by `***`, so that `chatd --check`
/// (which prints the options through serde) never shows it.
fn serialize_masked_url<S: serde::Serializer>(url: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&mask_password(url))
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`, and
/// `host=h password=secret` -> `host=h password=***`.
pub fn mask_password(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.split_once('@')
            && let Some((user, _password)) = userinfo.split_once(':')
        {
            return format!("{scheme}://{user}:***@{host}");
        }
        return url.to_string();
    }
    url.split_whitespace()
        .map(|pair| match pair.split_once('=') {
            Some(("password", _)) => "password=***".to_string(),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn default_queue() -> usize {
    10_000
}
fn default_batch() -> usize {
    500
}
fn default_pool_size() -> u32 {
    4
}
fn default_sync_timeout_ms() -> u64 {
    5000
}

impl PersistConfig {
    /// How long a write-ahead sender waits for the store (`sync_timeout_ms`); the default for
    /// `store = "none"`, which never waits.
    pub fn sync_timeout(&self) -> std::time::Duration {
        let ms = match self {
            PersistConfig::None {} => default_sync_timeout_ms(),
            PersistConfig::Sqlite {
                sync_timeout_ms, ..
            }
            | PersistConfig::Postgres {
                sync_timeout_ms, ..
            } => *sync_timeout_ms,
        };
        std::time::Duration::from_millis(ms)
    }
}

/// Options of `kind = "fanout"`: the `backend` key selects how messages reach members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case", deny_unknown_fields)]
pub enum FanoutConfig {
    /// Deliver to the members connected to this process only.
    Local {},
    /// Share rooms with other instances through PostgreSQL: each instance reads what the others
    /// stored every `interval_ms` (phase 2). Needs `persist` with `store = "postgres"`.
    Poll {
        /// How often the database is asked for new messages, in milliseconds.
        #[serde(default = "default_poll_interval_ms")]
        interval_ms: u64,
        /// How long a missing seq is waited for before it is settled with the other instances
        /// (see `backends::gaps`), in milliseconds.
        #[serde(default = "default_poll_gap_wait_ms")]
        gap_wait_ms: u64,
    },
    /// Share rooms with other instances through Valkey (or Redis) pub/sub: one channel per room,
    /// with the PostgreSQL store polled underneath as a safety net (and as the way between
    /// instances while Valkey is down). Seqs come from PostgreSQL's counter rows.
    Valkey {
        /// The server, `redis://host:port` (or `rediss://` for TLS, `redis://:password@host`).
        /// Shown by `--check` with its password masked.
        #[serde(serialize_with = "serialize_masked_url")]
        url: String,
        /// Most pooled connections (for PUBLISH); the subscriber has its own.
        #[serde(default = "default_valkey_pool_size")]
        pool_size: usize,
        /// How often the store is read for what pub/sub did not bring, and how long a missing seq
        /// is waited for before it is settled with the other instances.
        #[serde(default = "default_valkey_gap_wait_ms")]
        gap_wait_ms: u64,
    },
}

impl FanoutConfig {
    /// Every value `backend` may take, for messages; keep in step with the variants.
    pub const BACKENDS: &'static [&'static str] = &["local", "poll", "valkey"];

    /// The `backend` string of this config, as written in the file.
    pub fn backend(&self) -> &'static str {
        match self {
            FanoutConfig::Local {} => "local",
            FanoutConfig::Poll { .. } => "poll",
            FanoutConfig::Valkey { .. } => "valkey",
        }
    }

    /// Whether this backend shares rooms with other instances (and so needs a shared store).
    pub fn is_cross_instance(&self) -> bool {
        !matches!(self, FanoutConfig::Local {})
    }
}

fn default_poll_interval_ms() -> u64 {
    100
}
fn default_poll_gap_wait_ms() -> u64 {
    2000
}
fn default_valkey_pool_size() -> usize {
    8
}
fn default_valkey_gap_wait_ms() -> u64 {
    500
}

#[cfg(test)]
mod tests {
    use super::mask_password;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_password("postgres://chatd:s3cret@db:5432/chatd"),
            "postgres://chatd:***@db:5432/chatd"
        );
        assert_eq!(
            mask_password("postgres://chatd@db/chatd"),
            "postgres://chatd@db/chatd"
        );
        assert_eq!(
            mask_password("host=db password=s3cret dbname=chatd"),
            "host=db password=*** dbname=chatd"
        );
    }
}
