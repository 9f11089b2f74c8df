//! Phase 4: the values of each table, once serde has given them their types.
//!
//! Serde checks that `capacity` is a whole number; these checks say which whole numbers make
//! sense. The limits keep memory bounded and catch typos such as `capacity = 0`. They are pure
//! functions of a typed config so that [`super::revalidate`] can run them again after
//! command-line overrides, and each problem names its option so a file's messages can give the
//! option's line.

use std::ops::RangeInclusive;

use crate::pipeline::config::{
    ConcurrencyLimitConfig, FanoutConfig, HistoryConfig, LayerConfig, PersistConfig,
    RateLimitConfig, RouteConfig, ServerConfig, TimeoutConfig,
};

/// `[server] max_line_bytes`: a short `/join` line needs some room, and beyond 1 MiB one client
/// could make the server buffer a lot for a single line.
const MAX_LINE_BYTES: RangeInclusive<usize> = 64..=1_048_576;
/// `[server] outbound_queue`: 0 would drop every event, and a huge queue lets one slow reader
/// pin a lot of memory.
const OUTBOUND_QUEUE: RangeInclusive<usize> = 1..=65_536;
/// `[server] outbound_queue_bytes`: below 4 KiB a few notices would cut a reader; beyond 256 MiB
/// one slow reader could pin more than most servers have to spare.
const OUTBOUND_QUEUE_BYTES: RangeInclusive<usize> = 4096..=256 * 1024 * 1024;
/// `[server] max_queued_bytes`: at least 1 MiB, at most 64 GiB (a machine with more memory than
/// that does not need this budget to protect it).
const MAX_QUEUED_BYTES: RangeInclusive<usize> = 1024 * 1024..=64 * 1024 * 1024 * 1024;
/// `[server] max_streams_per_session`: a browser page streams a few rooms at once; beyond 1000 a
/// session could hold a replay per room it is in and then some.
const MAX_STREAMS_PER_SESSION: RangeInclusive<usize> = 1..=1000;
/// `[server] max_streams_per_ip`: as connections (each stream is an HTTP/1.1 connection).
const MAX_STREAMS_PER_IP: RangeInclusive<usize> = 1..=1_000_000;
/// `[server] session_idle_secs`: at least a second, at most a day.
const SESSION_IDLE_SECS: RangeInclusive<u64> = 1..=86_400;
/// `[server] max_body_bytes`: room for a 2000-character message in JSON, and at most 16 MiB.
const MAX_BODY_BYTES: RangeInclusive<usize> = 1024..=16 * 1024 * 1024;
/// `[server] max_connections_per_ip` and `max_connections`: 0 would refuse everyone; beyond a
/// million the process runs out of file descriptors long before the limit means anything.
const MAX_CONNECTIONS: RangeInclusive<usize> = 1..=1_000_000;
/// `[server] header_read_timeout_secs`: 0 would cut every request; beyond an hour a slowloris
/// client holds its connection for nothing.
const HEADER_READ_TIMEOUT_SECS: RangeInclusive<u64> = 1..=3600;
/// `[server] ipv6_prefix`: a prefix shorter than /32 would count a whole provider's customers as
/// one client; /128 counts every address apart (what IPv4 does).
const IPV6_PREFIX: RangeInclusive<u8> = 32..=128;
/// `[server] join_timeout_secs`: at least a second, at most a day.
const JOIN_TIMEOUT_SECS: RangeInclusive<u64> = 1..=86_400;
/// `route.max_rooms_per_session`: at least one room, and a session's room list is scanned on
/// every rename and quit, so not unbounded.
const MAX_ROOMS_PER_SESSION: RangeInclusive<usize> = 1..=10_000;
/// `route.max_rooms`: each room keeps a history ring, so the number of rooms multiplies memory.
const MAX_ROOMS: RangeInclusive<usize> = 1..=10_000_000;
/// `route.max_rooms_per_ip`: at least one room (beyond `max_rooms` it changes nothing).
const MAX_ROOMS_PER_IP: RangeInclusive<usize> = 1..=10_000_000;
/// `route.room_idle_secs`: at least a second; at most a week (rooms that stay longer are
/// `max_rooms`'s to bound).
const ROOM_IDLE_SECS: RangeInclusive<u64> = 1..=604_800;
/// `history.capacity`: a ring of 0 keeps nothing (remove the layer instead), and the ring is
/// per room, so its size multiplies.
const HISTORY_CAPACITY: RangeInclusive<usize> = 1..=10_000;
/// `route.max_message_chars`: 0 would refuse every message.
const MAX_MESSAGE_CHARS: RangeInclusive<usize> = 1..=65_536;
/// `route.presence_ttl_secs`: the heartbeat runs every third of it, so below 2 s it would beat
/// several times a second; beyond an hour a dead instance's users linger for too long.
const PRESENCE_TTL_SECS: RangeInclusive<u64> = 2..=3600;
/// `persist.queue`: 0 would drop (or hold up) every message; beyond a million queued messages
/// the memory a stuck store pins is no longer small.
const PERSIST_QUEUE: RangeInclusive<usize> = 1..=1_000_000;
/// `persist.batch`: PostgreSQL binds one array per column, so a batch is cheap to grow, but a
/// huge transaction holds its locks (and SQLite's single writer) for long.
const PERSIST_BATCH: RangeInclusive<usize> = 1..=10_000;
/// `persist.sync_timeout_ms`: below 100 ms an ordinary commit under load would be refused;
/// beyond 15 s, plus the writer's 10 s grace for an attempt under way and the time a request
/// spends before and after the store, an HTTP sender's request could hit the adapter's 30 s
/// request timeout before its answer.
const SYNC_TIMEOUT_MS: RangeInclusive<u64> = 100..=15_000;
/// `persist.pool_size`: at least one connection; more than 64 from one chatd is a mistake.
const POOL_SIZE: RangeInclusive<usize> = 1..=64;
/// `fanout.gap_wait_ms` (valkey): below 10 ms an ordinary reordering would send every room to the
/// store; beyond a minute a lost message holds up its room for too long.
const VALKEY_GAP_WAIT_MS: RangeInclusive<u64> = 10..=60_000;
/// `fanout.interval_ms` (poll): below 10 ms the instances hammer the database for nothing; above
/// a minute nobody would call it chat.
const POLL_INTERVAL_MS: RangeInclusive<u64> = 10..=60_000;
/// `fanout.gap_wait_ms` (poll): a write-behind store commits within its batch delay, so a missing
/// seq is worth waiting for at least 100 ms; more than 10 minutes holds a room up for nothing.
const POLL_GAP_WAIT_MS: RangeInclusive<u64> = 100..=600_000;
/// `rate_limit.per_second`: 0 would refuse everything after the first burst, for good (remove
/// the layer to turn limiting off); beyond 10,000 a second the bucket no longer limits anything.
const RATE_PER_SECOND: RangeInclusive<u32> = 1..=10_000;
/// `rate_limit.burst`: 0 would refuse every line; the bucket is per session, so its size is what
/// one client may send at once, and 100,000 is already far past any person's paste.
const RATE_BURST: RangeInclusive<u32> = 1..=100_000;
/// `rate_limit.per_address_per_second` and `per_address_burst`: as the per-session ones, ten
/// times over (an address may stand for a whole office).
const RATE_PER_ADDRESS_PER_SECOND: RangeInclusive<u32> = 1..=100_000;
const RATE_PER_ADDRESS_BURST: RangeInclusive<u32> = 1..=1_000_000;
/// `timeout.ms`: at least a millisecond; beyond 10 minutes it no longer protects anyone.
const TIMEOUT_MS: RangeInclusive<u64> = 1..=600_000;
/// `concurrency_limit.max`: 0 would let no request through, ever.
const CONCURRENCY_MAX: RangeInclusive<usize> = 1..=1_000_000;
/// `[server] irc_ping_secs`: at least a second; beyond an hour a dead IRC connection lingers.
const IRC_PING_SECS: RangeInclusive<u64> = 1..=3600;
/// `[server] instance`, in characters: it is shown to every client that connects.
const INSTANCE_CHARS: RangeInclusive<usize> = 1..=32;

/// Phase 4 problems, each with the option it is about.
pub(super) type ValueProblems = Vec<(&'static str, String)>;

/// Phase 4 for `[server]`.
pub(super) fn server_problems(server: &ServerConfig) -> ValueProblems {
    let mut problems = Vec::new();
    out_of_range(
        &mut problems,
        "max_line_bytes",
        server.max_line_bytes,
        MAX_LINE_BYTES,
    );
    out_of_range(
        &mut problems,
        "outbound_queue",
        server.outbound_queue,
        OUTBOUND_QUEUE,
    );
    out_of_range(
        &mut problems,
        "outbound_queue_bytes",
        server.outbound_queue_bytes,
        OUTBOUND_QUEUE_BYTES,
    );
    out_of_range(
        &mut problems,
        "max_queued_bytes",
        server.max_queued_bytes,
        MAX_QUEUED_BYTES,
    );
    if OUTBOUND_QUEUE_BYTES.contains(&server.outbound_queue_bytes)
        && MAX_QUEUED_BYTES.contains(&server.max_queued_bytes)
        && server.outbound_queue_bytes > server.max_queued_bytes
    {
        let problem = format!(
            "option `outbound_queue_bytes` = {} is more than `max_queued_bytes` = {}; one              queue cannot hold more than all of them together",
            server.outbound_queue_bytes, server.max_queued_bytes
        );
        problems.push(("outbound_queue_bytes", problem));
    }
    out_of_range(
        &mut problems,
        "max_streams_per_session",
        server.max_streams_per_session,
        MAX_STREAMS_PER_SESSION,
    );
    out_of_range(
        &mut problems,
        "max_streams_per_ip",
        server.max_streams_per_ip,
        MAX_STREAMS_PER_IP,
    );
    out_of_range(
        &mut problems,
        "session_idle_secs",
        server.session_idle_secs,
        SESSION_IDLE_SECS,
    );
    out_of_range(
        &mut problems,
        "max_body_bytes",
        server.max_body_bytes,
        MAX_BODY_BYTES,
    );
    for (key, value) in [
        ("max_connections_per_ip", server.max_connections_per_ip),
        ("max_connections", server.max_connections),
    ] {
        out_of_range(&mut problems, key, value, MAX_CONNECTIONS);
    }
    // Only between two values that are each in range: one problem per mistake.
    if MAX_CONNECTIONS.contains(&server.max_connections)
        && server.max_connections_per_ip > server.max_connections
    {
        let problem = format!(
            "option `max_connections_per_ip` = {} is more than `max_connections` = {}; one \
             address cannot have more connections than the whole server",
            server.max_connections_per_ip, server.max_connections
        );
        problems.push(("max_connections_per_ip", problem));
    }
    out_of_range(
        &mut problems,
        "header_read_timeout_secs",
        server.header_read_timeout_secs,
        HEADER_READ_TIMEOUT_SECS,
    );
    out_of_range(
        &mut problems,
        "ipv6_prefix",
        server.ipv6_prefix,
        IPV6_PREFIX,
    );
    out_of_range(
        &mut problems,
        "join_timeout_secs",
        server.join_timeout_secs,
        JOIN_TIMEOUT_SECS,
    );
    out_of_range(
        &mut problems,
        "irc_ping_secs",
        server.irc_ping_secs,
        IRC_PING_SECS,
    );
    if let Some(name) = &server.instance
        && !is_instance_name(name)
    {
        let problem = format!(
            "option `instance` = {name:?} is not a valid instance name: use 1 to 32 of the \
             characters A-Z a-z 0-9 _ . -"
        );
        problems.push(("instance", problem));
    }
    problems
}

/// Phase 4 for one layer.
pub(super) fn layer_problems(layer: &LayerConfig) -> ValueProblems {
    let mut problems = Vec::new();
    match layer {
        LayerConfig::History(HistoryConfig { capacity }) => {
            out_of_range(&mut problems, "capacity", *capacity, HISTORY_CAPACITY);
        }
        LayerConfig::Route(RouteConfig {
            max_message_chars: max,
            presence_ttl_secs: ttl,
            max_rooms_per_session: per_session,
            max_rooms,
            max_rooms_per_ip: per_ip,
            room_idle_secs: idle,
            directory: _,
            opers,
        }) => {
            for (i, oper) in opers.iter().enumerate() {
                if oper.name.trim().is_empty() || oper.password.is_empty() {
                    let problem = format!(
                        "option `opers` entry {}: `name` and `password` must not be empty",
                        i + 1
                    );
                    problems.push(("opers", problem));
                }
            }
            out_of_range(&mut problems, "max_rooms_per_ip", *per_ip, MAX_ROOMS_PER_IP);
            out_of_range(&mut problems, "room_idle_secs", *idle, ROOM_IDLE_SECS);
            out_of_range(&mut problems, "max_message_chars", *max, MAX_MESSAGE_CHARS);
            out_of_range(&mut problems, "presence_ttl_secs", *ttl, PRESENCE_TTL_SECS);
            out_of_range(
                &mut problems,
                "max_rooms_per_session",
                *per_session,
                MAX_ROOMS_PER_SESSION,
            );
            out_of_range(&mut problems, "max_rooms", *max_rooms, MAX_ROOMS);
            if MAX_ROOMS.contains(max_rooms) && per_session > max_rooms {
                let problem = format!(
                    "option `max_rooms_per_session` = {per_session} is more than `max_rooms` = \
                     {max_rooms}; a session cannot be in more rooms than the server keeps"
                );
                problems.push(("max_rooms_per_session", problem));
            }
        }
        LayerConfig::RateLimit(limit) => rate_limit_problems(&mut problems, limit),
        LayerConfig::Timeout(TimeoutConfig { ms }) => {
            out_of_range(&mut problems, "ms", *ms, TIMEOUT_MS);
        }
        LayerConfig::ConcurrencyLimit(ConcurrencyLimitConfig { max }) => {
            out_of_range(&mut problems, "max", *max, CONCURRENCY_MAX);
        }
        LayerConfig::Persist(persist) => persist_problems(&mut problems, persist),
        LayerConfig::Fanout(FanoutConfig::Valkey {
            url,
            pool_size,
            gap_wait_ms,
        }) => {
            if let Err(err) = redis_url(url) {
                problems.push(("url", err));
            }
            out_of_range(&mut problems, "pool_size", *pool_size, POOL_SIZE);
            out_of_range(
                &mut problems,
                "gap_wait_ms",
                *gap_wait_ms,
                VALKEY_GAP_WAIT_MS,
            );
        }
        LayerConfig::Fanout(FanoutConfig::Poll {
            interval_ms,
            gap_wait_ms,
        }) => {
            out_of_range(&mut problems, "interval_ms", *interval_ms, POLL_INTERVAL_MS);
            out_of_range(&mut problems, "gap_wait_ms", *gap_wait_ms, POLL_GAP_WAIT_MS);
        }
        LayerConfig::Parse(_)
        | LayerConfig::LoadShed(_)
        | LayerConfig::Fanout(FanoutConfig::Local {}) => {}
    }
    problems
}

fn rate_limit_problems(problems: &mut ValueProblems, limit: &RateLimitConfig) {
    let RateLimitConfig {
        per_second,
        burst,
        per_address_per_second: address_rate,
        per_address_burst: address_burst,
    } = limit;
    // Zero is the likely attempt to turn limiting off: say what it would really do.
    if *per_second == 0 {
        let problem = "option `per_second` = 0 would refuse every line after the first burst, \
                       for good; write at least 1 (or remove the `rate_limit` layer to turn rate \
                       limiting off)";
        problems.push(("per_second", problem.to_string()));
    } else {
        out_of_range(problems, "per_second", *per_second, RATE_PER_SECOND);
    }
    out_of_range(problems, "burst", *burst, RATE_BURST);
    out_of_range(
        problems,
        "per_address_per_second",
        *address_rate,
        RATE_PER_ADDRESS_PER_SECOND,
    );
    out_of_range(
        problems,
        "per_address_burst",
        *address_burst,
        RATE_PER_ADDRESS_BURST,
    );
    // Only between values that are each in range: one problem per mistake.
    for (key, address, session, session_key, ok) in [
        (
            "per_address_per_second",
            address_rate,
            per_second,
            "per_second",
            RATE_PER_SECOND.contains(per_second),
        ),
        (
            "per_address_burst",
            address_burst,
            burst,
            "burst",
            RATE_BURST.contains(burst),
        ),
    ] {
        if ok && *address != 0 && address < session {
            let problem = format!(
                "option `{key}` = {address} is less than `{session_key}` = {session}; all the \
                 sessions of one address together cannot have less than one session alone"
            );
            problems.push((key, problem));
        }
    }
}

fn persist_problems(problems: &mut ValueProblems, persist: &PersistConfig) {
    let (queue, batch) = match persist {
        PersistConfig::None {} => return,
        PersistConfig::Sqlite {
            path, queue, batch, ..
        } => {
            if path.trim().is_empty() {
                let problem = "option `path` is empty; name the database file, e.g. \
                               \"data/chatd.db\"";
                problems.push(("path", problem.to_string()));
            }
            (*queue, *batch)
        }
        PersistConfig::Postgres {
            url,
            pool_size,
            queue,
            batch,
            ..
        } => {
            if let Err(err) = url.parse::<tokio_postgres::Config>() {
                let problem = format!("option `url` is not a PostgreSQL connection string: {err}");
                problems.push(("url", problem));
            }
            out_of_range(problems, "pool_size", *pool_size as usize, POOL_SIZE);
            (*queue, *batch)
        }
    };
    out_of_range(problems, "queue", queue, PERSIST_QUEUE);
    out_of_range(problems, "batch", batch, PERSIST_BATCH);
    let sync_timeout_ms = persist.sync_timeout().as_millis() as u64;
    out_of_range(
        problems,
        "sync_timeout_ms",
        sync_timeout_ms,
        SYNC_TIMEOUT_MS,
    );
}

/// Checks a Valkey url the way the client will read it.
fn redis_url(url: &str) -> Result<(), String> {
    use deadpool_redis::redis::IntoConnectionInfo;
    url.into_connection_info().map(|_| ()).map_err(|err| {
        format!(
            "option `url` = {:?} is not a Valkey url ({err}); write `redis://host:port`",
            crate::pipeline::config::mask_password(url)
        )
    })
}

/// 1 to 32 ASCII letters, digits, `_`, `.` and `-`: safe in logs, keys and URLs alike.
fn is_instance_name(name: &str) -> bool {
    INSTANCE_CHARS.contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// The range of option `key` in the table `subject` names (`` `[server]` ``, `` `history` ``,
/// `` `fanout` with `backend = "poll"` ``), as "from LOW to HIGH": for a value serde could not even
/// read into the option's type (`capacity = -1`, a number beyond 2^64), which never reaches the
/// checks above. `None` for an option without a range.
pub(super) fn range_of(subject: &str, key: &str) -> Option<String> {
    fn text<T: std::fmt::Display>(range: RangeInclusive<T>) -> Option<String> {
        Some(format!("from {} to {}", range.start(), range.end()))
    }
    let valkey = subject.contains("\"valkey\"");
    match key {
        "max_line_bytes" => text(MAX_LINE_BYTES),
        "outbound_queue" => text(OUTBOUND_QUEUE),
        "outbound_queue_bytes" => text(OUTBOUND_QUEUE_BYTES),
        "max_queued_bytes" => text(MAX_QUEUED_BYTES),
        "max_streams_per_session" => text(MAX_STREAMS_PER_SESSION),
        "max_streams_per_ip" => text(MAX_STREAMS_PER_IP),
        "max_rooms_per_ip" => text(MAX_ROOMS_PER_IP),
        "room_idle_secs" => text(ROOM_IDLE_SECS),
        "session_idle_secs" => text(SESSION_IDLE_SECS),
        "max_body_bytes" => text(MAX_BODY_BYTES),
        "max_connections_per_ip" | "max_connections" => text(MAX_CONNECTIONS),
        "header_read_timeout_secs" => text(HEADER_READ_TIMEOUT_SECS),
        "ipv6_prefix" => text(IPV6_PREFIX),
        "join_timeout_secs" => text(JOIN_TIMEOUT_SECS),
        "per_address_per_second" => text(RATE_PER_ADDRESS_PER_SECOND),
        "per_address_burst" => text(RATE_PER_ADDRESS_BURST),
        "max_rooms_per_session" => text(MAX_ROOMS_PER_SESSION),
        "max_rooms" => text(MAX_ROOMS),
        "capacity" => text(HISTORY_CAPACITY),
        "max_message_chars" => text(MAX_MESSAGE_CHARS),
        "presence_ttl_secs" => text(PRESENCE_TTL_SECS),
        "queue" => text(PERSIST_QUEUE),
        "batch" => text(PERSIST_BATCH),
        "sync_timeout_ms" => text(SYNC_TIMEOUT_MS),
        "pool_size" => text(POOL_SIZE),
        "gap_wait_ms" if valkey => text(VALKEY_GAP_WAIT_MS),
        "gap_wait_ms" => text(POLL_GAP_WAIT_MS),
        "interval_ms" => text(POLL_INTERVAL_MS),
        "per_second" => text(RATE_PER_SECOND),
        "burst" => text(RATE_BURST),
        "ms" => text(TIMEOUT_MS),
        "max" => text(CONCURRENCY_MAX),
        _ => None,
    }
}

fn out_of_range<T: PartialOrd + std::fmt::Display>(
    problems: &mut ValueProblems,
    key: &'static str,
    value: T,
    range: RangeInclusive<T>,
) {
    if !range.contains(&value) {
        let (low, high) = (range.start(), range.end());
        let problem =
            format!("option `{key}` = {value} is out of range; it must be from {low} to {high}");
        problems.push((key, problem));
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{FULL, only_error, stack};
    use crate::pipeline::load::parse;

    #[test]
    fn out_of_range_values_are_errors() {
        for (from, to, option) in [
            (
                "kind = \"history\"",
                "kind = \"history\"\ncapacity = 0",
                "`capacity` = 0",
            ),
            (
                "kind = \"history\"",
                "kind = \"history\"\ncapacity = 10001",
                "`capacity` = 10001",
            ),
            (
                "kind = \"route\"",
                "kind = \"route\"\nmax_message_chars = 0",
                "`max_message_chars` = 0",
            ),
            (
                "kind = \"route\"",
                "kind = \"route\"\nmax_message_chars = 65537",
                "`max_message_chars` = 65537",
            ),
            (
                "kind = \"route\"",
                "kind = \"route\"\npresence_ttl_secs = 1",
                "`presence_ttl_secs` = 1",
            ),
            (
                "[server]",
                "[server]\nmax_line_bytes = 63",
                "`max_line_bytes` = 63",
            ),
            (
                "[server]",
                "[server]\nmax_line_bytes = 1048577",
                "`max_line_bytes` = 1048577",
            ),
            (
                "[server]",
                "[server]\noutbound_queue = 0",
                "`outbound_queue` = 0",
            ),
            (
                "[server]",
                "[server]\noutbound_queue = 65537",
                "`outbound_queue` = 65537",
            ),
            (
                "[server]",
                "[server]\nsession_idle_secs = 0",
                "`session_idle_secs` = 0",
            ),
            (
                "[server]",
                "[server]\nmax_body_bytes = 10",
                "`max_body_bytes` = 10",
            ),
            (
                "[server]",
                "[server]\nmax_connections_per_ip = 0",
                "`max_connections_per_ip` = 0",
            ),
            (
                "[server]",
                "[server]\nmax_connections = 1000001",
                "`max_connections` = 1000001",
            ),
            (
                "[server]",
                "[server]\nheader_read_timeout_secs = 0",
                "`header_read_timeout_secs` = 0",
            ),
            (
                "kind = \"route\"",
                "kind = \"route\"\nmax_rooms_per_session = 0",
                "`max_rooms_per_session` = 0",
            ),
            (
                "kind = \"route\"",
                "kind = \"route\"\nmax_rooms = 0",
                "`max_rooms` = 0",
            ),
            (
                "[server]",
                "[server]\nipv6_prefix = 31",
                "`ipv6_prefix` = 31",
            ),
            (
                "[server]",
                "[server]\njoin_timeout_secs = 0",
                "`join_timeout_secs` = 0",
            ),
        ] {
            let error = only_error(&stack(FULL).replacen(from, to, 1));
            assert!(
                error.contains(&format!("option {option} is out of range")),
                "{error}"
            );
            assert!(
                error.starts_with("line 2, [server]") || error.contains("layer"),
                "{error}"
            );
        }
    }

    #[test]
    fn bad_guard_options_are_errors() {
        let guarded = [
            "parse",
            "rate_limit",
            "timeout",
            "concurrency_limit",
            "route",
            "fanout",
        ];
        let text = stack(&guarded);
        assert!(parse("t", &text, &|_| None).is_ok());
        for (from, to, expected) in [
            (
                "\"rate_limit\"",
                "\"rate_limit\"\nper_second = 0",
                "line 8, layer 2 (rate_limit): option `per_second` = 0 would refuse every line \
                 after the first burst, for good; write at least 1 (or remove the `rate_limit` \
                 layer to turn rate limiting off)",
            ),
            (
                "\"rate_limit\"",
                "\"rate_limit\"\nburst = 0",
                "line 8, layer 2 (rate_limit): option `burst` = 0 is out of range; it must be \
                 from 1 to 100000",
            ),
            (
                "\"rate_limit\"",
                "\"rate_limit\"\nper_second = 10001",
                "option `per_second` = 10001 is out of range",
            ),
            (
                "\"rate_limit\"",
                "\"rate_limit\"\nper_minute = 10",
                "unknown option `per_minute`; `rate_limit` takes: per_second, burst, \
                 per_address_per_second, per_address_burst",
            ),
            (
                "\"rate_limit\"",
                "\"rate_limit\"\nper_address_burst = 0",
                "option `per_address_burst` = 0 is out of range; it must be from 1 to 1000000",
            ),
            (
                "\"rate_limit\"",
                "\"rate_limit\"\nper_second = 20\nper_address_per_second = 19",
                "option `per_address_per_second` = 19 is less than `per_second` = 20; all the \
                 sessions of one address together cannot have less than one session alone",
            ),
            ("ms = 1000", "ms = 0", "option `ms` = 0 is out of range"),
            ("max = 64", "max = 0", "option `max` = 0 is out of range"),
            (
                "ms = 1000\n",
                "",
                "missing option `ms`, which `timeout` requires",
            ),
        ] {
            let error = only_error(&text.replacen(from, to, 1));
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn a_per_address_or_per_session_limit_above_the_total_is_an_error() {
        let text = stack(FULL).replace(
            "[server]",
            "[server]\nmax_connections = 10\nmax_connections_per_ip = 11",
        );
        let error = only_error(&text);
        assert!(
            error.starts_with("line 3, [server]: option `max_connections_per_ip` = 11 is more than `max_connections` = 10"),
            "{error}"
        );
        let text = stack(FULL).replace(
            "kind = \"route\"",
            "kind = \"route\"\nmax_rooms = 5\nmax_rooms_per_session = 6",
        );
        let error = only_error(&text);
        assert!(
            error.contains(
                "layer 2 (route): option `max_rooms_per_session` = 6 is more than `max_rooms` = 5"
            ),
            "{error}"
        );
    }

    #[test]
    fn bad_persist_options_are_errors() {
        let sqlite = "store = \"sqlite\"\npath = \"x.db\"";
        for (options, expected) in [
            (
                "store = \"sqlite\"\npath = \" \"".to_string(),
                "option `path` is empty",
            ),
            (
                format!("{sqlite}\nqueue = 0"),
                "option `queue` = 0 is out of range",
            ),
            (
                format!("{sqlite}\nbatch = 10001"),
                "option `batch` = 10001 is out of range",
            ),
            (
                format!("{sqlite}\nsync_timeout_ms = 0"),
                "option `sync_timeout_ms` = 0 is out of range",
            ),
            (
                "store = \"postgres\"\nurl = \"postgres://h/db\"\npool_size = 0".to_string(),
                "option `pool_size` = 0 is out of range",
            ),
            (
                "store = \"postgres\"\nurl = \"host=h port=notanumber\"".to_string(),
                "option `url` is not a PostgreSQL connection string",
            ),
            (
                format!("{sqlite}\ndurability = \"eventually\""),
                "unknown variant `eventually`, expected `async` or `sync`",
            ),
            (format!("{sqlite}\nurl = \"x\""), "unknown option `url`"),
        ] {
            let text = stack(FULL).replace("store = \"none\"", &options);
            let error = only_error(&text);
            assert!(error.contains(expected), "{error}");
            assert!(error.contains("layer 4 (persist)"), "{error}");
        }
    }

    #[test]
    fn bad_valkey_options_are_errors() {
        let persist = "store = \"postgres\"\nurl = \"postgres://h/db\"";
        for (options, expected) in [
            (
                "url = \"http://h\"",
                "option `url` = \"http://h\" is not a Valkey url",
            ),
            (
                "url = \"redis://h\"\npool_size = 0",
                "option `pool_size` = 0 is out of range",
            ),
            (
                "url = \"redis://h\"\ngap_wait_ms = 1",
                "option `gap_wait_ms` = 1 is out of range",
            ),
            ("pool_size = 2", "missing option `url`"),
        ] {
            let text = stack(FULL).replace("store = \"none\"", persist).replace(
                "backend = \"local\"",
                &format!("backend = \"valkey\"\n{options}"),
            );
            let error = only_error(&text);
            assert!(error.contains(expected), "{error}");
            assert!(error.contains("layer 5 (fanout)"), "{error}");
        }
    }

    #[test]
    fn bad_poll_options_are_errors() {
        let poll = stack(FULL).replace("\"local\"", "\"poll\"").replace(
            "store = \"none\"",
            "store = \"postgres\"\nurl = \"postgres://h/db\"",
        );
        assert!(parse("t", &poll, &|_| None).is_ok());
        for (options, expected) in [
            (
                "interval_ms = 0",
                "option `interval_ms` = 0 is out of range",
            ),
            ("interval_ms = 60001", "option `interval_ms` = 60001 is out"),
            (
                "gap_wait_ms = 99",
                "option `gap_wait_ms` = 99 is out of range",
            ),
            ("interval = 100", "unknown option `interval`"),
        ] {
            let text = poll.replace("\"poll\"", &format!("\"poll\"\n{options}"));
            let error = only_error(&text);
            assert!(error.contains(expected), "{error}");
            assert!(error.contains("layer 5 (fanout)"), "{error}");
        }
    }

    #[test]
    fn a_bad_instance_name_is_an_error() {
        for name in ["", "has space", "ünïcode", &"x".repeat(33)] {
            let text = stack(FULL).replace("[server]", &format!("[server]\ninstance = {name:?}"));
            let error = only_error(&text);
            assert!(
                error.starts_with("line 2, [server]: option `instance`"),
                "{error}"
            );
        }
        let text = stack(FULL).replace("[server]", "[server]\ninstance = \"eu-1.chat_b\"");
        assert!(parse("t", &text, &|_| None).is_ok());
    }
}
