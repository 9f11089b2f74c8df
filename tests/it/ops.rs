//! What an operator sees: `/metrics` in the Prometheus text format with counters that move when
//! people chat, `/readyz` following its backends down and back up, and JSON logs.
//!
//! The `/readyz` tests run a throwaway Valkey and PostgreSQL; set `CHATD_SKIP_VALKEY=1` (or
//! `CHATD_SKIP_POSTGRES=1`) to skip them on a machine without those servers. Every wait has a
//! generous timeout as a hang guard; no test asserts how fast anything happens.

use crate::support;
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::http::{HttpClient, readyz, readyz_until, until_green, until_red};
use crate::support::postgres::TestPostgres;
use crate::support::valkey::TestValkey;
use crate::support::{Client, PATIENCE, default_config, postgres, start, start_with, with_store};
use chatd::pipeline::PipelineConfig;
use chatd::pipeline::config::{Durability, FanoutConfig, LayerConfig};

/// Samples of a Prometheus text exposition, by `name{labels}` as written.
type Samples = HashMap<String, f64>;

/// Parses `text` as the Prometheus text format (0.0.4), strictly enough to catch a broken
/// exposition: every sample belongs to a family declared with `# HELP` and `# TYPE` before it,
/// names and labels are well-formed, values are numbers, and histogram buckets are cumulative.
fn parse_prometheus(text: &str) -> Samples {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helped: HashSet<String> = HashSet::new();
    let mut samples = Samples::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has a name and a text");
            assert!(valid_name(name), "bad metric name in {line:?}");
            assert!(!help.trim().is_empty(), "empty HELP for {name}");
            helped.insert(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a name and a type");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "unknown type in {line:?}"
            );
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect("a sample is `series value`");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number in {line:?}"));
        let name = series.split('{').next().unwrap();
        assert!(valid_name(name), "bad sample name in {line:?}");
        let labels = &series[name.len()..];
        if !labels.is_empty() {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap_or_else(|| panic!("bad labels in {line:?}"));
            for pair in inner.split(',') {
                let (key, quoted) = pair.split_once('=').expect("label is key=\"value\"");
                assert!(valid_name(key), "bad label name in {line:?}");
                assert!(
                    quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'),
                    "unquoted label value in {line:?}"
                );
            }
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                (types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "{name} has no # TYPE before it");
        assert!(helped.contains(family), "{name} has no # HELP before it");
        assert!(
            samples.insert(series.to_string(), value).is_none(),
            "{series} twice"
        );
    }
    // Buckets count everything at or below their bound, so they never decrease.
    for (family, kind) in &types {
        if kind != "histogram" {
            continue;
        }
        let mut by_series: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
        for (series, value) in &samples {
            let Some(labels) = series.strip_prefix(&format!("{family}_bucket{{")) else {
                continue;
            };
            let (rest, le) = labels
                .trim_end_matches('}')
                .rsplit_once("le=")
                .expect("a bucket has le");
            let le = le.trim_matches('"');
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            by_series
                .entry(rest.to_string())
                .or_default()
                .push((bound, *value));
        }
        for mut buckets in by_series.into_values() {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "{family} buckets are not cumulative: {buckets:?}"
            );
            assert_eq!(
                buckets.last().unwrap().0,
                f64::INFINITY,
                "{family} has +Inf"
            );
        }
    }
    samples
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Scrapes `/metrics` and parses it.
async fn scrape(http: SocketAddr) -> Samples {
    let resp = reqwest::get(format!("http://{http}/metrics"))
        .await
        .expect("GET /metrics");
    assert_eq!(resp.status().as_u16(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    parse_prometheus(&resp.text().await.unwrap())
}

fn sample(samples: &Samples, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("{series} missing from /metrics"))
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_move_when_tcp_and_http_users_chat() {
    let server = start().await;
    let before = scrape(server.http_addr()).await;
    for name in [
        "chatd_messages_in_total",
        "chatd_deliveries_total",
        "chatd_rooms",
        "chatd_persist_queue_depth",
        "chatd_persist_batches_total",
        "chatd_persist_retries_total",
        "chatd_persist_dropped_total",
        "chatd_persist_rejected_total",
        "chatd_bus_publishes_total",
        "chatd_bus_receives_total",
        "chatd_bus_reconnects_total",
        "chatd_gap_fills_total",
        "chatd_slow_consumer_disconnects_total",
        "chatd_budget_disconnects_total",
        "chatd_rate_limited_total",
        "chatd_sessions_open{protocol=\"tcp\"}",
        "chatd_connections_opened_total{protocol=\"http\"}",
        "chatd_delivery_latency_seconds_count{origin=\"remote\"}",
    ] {
        sample(&before, name);
    }
    assert_eq!(sample(&before, "chatd_messages_in_total"), 0.0);
    assert_eq!(sample(&before, "chatd_rooms"), 0.0);

    // Two netcat users and a browser in one room; each side says something.
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    let mut bob = Client::named(server.tcp_addr(), "bob").await;
    alice.join("general").await;
    bob.join("general").await;
    alice.line().await; // * bob joined general
    let carol = HttpClient::connect(server.http_addr(), "carol").await;
    let mut stream = carol.stream("general", None).await;
    alice.line().await; // * carol joined general
    bob.line().await;
    alice.send("hello from netcat").await;
    bob.expect("[general] alice: hello from netcat").await;
    assert_eq!(
        stream.next_message().await.data["text"],
        "hello from netcat"
    );
    assert_eq!(
        carol.say("general", "hello from a browser").await.status,
        202
    );
    alice.expect("[general] carol: hello from a browser").await;
    bob.expect("[general] carol: hello from a browser").await;
    assert_eq!(
        stream.next_message().await.data["text"],
        "hello from a browser",
        "a browser sees its own message on its stream"
    );

    let after = scrape(server.http_addr()).await;
    let tcp = |name: &str| sample(&after, &format!("{name}{{protocol=\"tcp\"}}"));
    let http = |name: &str| sample(&after, &format!("{name}{{protocol=\"http\"}}"));
    assert_eq!(sample(&after, "chatd_messages_in_total"), 2.0);
    // alice's line reached bob and carol; carol's reached alice, bob and carol herself.
    assert_eq!(sample(&after, "chatd_deliveries_total"), 5.0);
    assert_eq!(
        sample(
            &after,
            "chatd_delivery_latency_seconds_count{origin=\"local\"}"
        ),
        5.0,
        "every delivery was handed to a socket or stream, and timed"
    );
    assert!(
        sample(
            &after,
            "chatd_delivery_latency_seconds_sum{origin=\"local\"}"
        ) > 0.0
    );
    assert_eq!(sample(&after, "chatd_rooms"), 1.0);
    assert_eq!(tcp("chatd_sessions_open"), 2.0);
    assert_eq!(http("chatd_sessions_open"), 1.0);
    assert_eq!(tcp("chatd_sessions_opened_total"), 2.0);
    assert_eq!(http("chatd_sessions_opened_total"), 1.0);
    assert_eq!(tcp("chatd_connections_open"), 2.0);
    assert!(
        http("chatd_connections_open") >= 1.0,
        "at least the event stream"
    );
    let http_before = sample(&before, "chatd_connections_opened_total{protocol=\"http\"}");
    assert!(http("chatd_connections_opened_total") > http_before);

    // A netcat user leaves: the gauges go down, the counters do not.
    drop(bob);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = scrape(server.http_addr()).await;
        let open = |name: &str| sample(&now, &format!("{name}{{protocol=\"tcp\"}}"));
        if open("chatd_connections_open") == 1.0 && open("chatd_sessions_open") == 1.0 {
            assert_eq!(open("chatd_sessions_opened_total"), 2.0);
            assert_eq!(open("chatd_connections_opened_total"), 2.0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bob's connection is still counted open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The writer stores both messages (write-behind): persisted and batches move too.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let now = scrape(server.http_addr()).await;
        if sample(&now, "chatd_persisted_total") == 2.0 {
            assert!(sample(&now, "chatd_persist_batches_total") >= 1.0);
            break;
        }
        assert!(Instant::now() < deadline, "the messages were never stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(stream);
    server.shutdown().await;
}

/// The phase-3 pipeline (PostgreSQL store, Valkey bus) over the given servers.
fn valkey_config(pg: &str, valkey: &str) -> PipelineConfig {
    let mut config = support::valkey::pipeline(pg, valkey, Durability::Sync);
    config.server.instance = Some("ops".into());
    config
}

#[tokio::test]
async fn readyz_says_degraded_naming_valkey_when_it_stops_and_green_when_it_returns() {
    let Some(mut valkey) = TestValkey::start() else {
        return;
    };
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let server = start_with(valkey_config(&pg.url(), &valkey.url())).await;
    let http = server.http_addr();
    let (status, body) = readyz(http).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        serde_json::json!({ "status": "ok", "checks": { "store": "ok", "bus": "ok" } })
    );
    assert_eq!(sample(&scrape(http).await, "chatd_bus_degraded"), 0.0);
    // A room is open, so the subscription has a channel to re-subscribe after the outage.
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    alice.join("general").await;

    // Valkey stops: the instance still serves (messages between instances travel through
    // PostgreSQL), so it stays ready, and says it is degraded and why.
    valkey.stop();
    let degraded = readyz_until(http, "degraded", |status, body| {
        status == 200 && body["status"] == "degraded"
    })
    .await;
    assert_eq!(degraded["checks"]["store"], "ok", "{degraded}");
    let bus = degraded["checks"]["bus"].as_str().unwrap_or_default();
    assert!(
        bus.starts_with("degraded: valkey"),
        "the bus check names Valkey: {bus}"
    );
    assert_eq!(sample(&scrape(http).await, "chatd_bus_degraded"), 1.0);

    valkey.restart();
    until_green(http).await;
    let metrics = scrape(http).await;
    assert_eq!(sample(&metrics, "chatd_bus_degraded"), 0.0);
    assert!(sample(&metrics, "chatd_bus_reconnects_total") >= 1.0);
    assert!(sample(&metrics, "chatd_bus_failures_total") >= 1.0);
    alice.sync().await; // the netcat user never noticed
    server.shutdown().await;
}

#[tokio::test]
async fn a_message_between_instances_moves_the_bus_counters_and_the_remote_latency() {
    let Some(valkey) = TestValkey::start() else {
        return;
    };
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let mut config_a = valkey_config(&pg.url(), &valkey.url());
    config_a.server.instance = Some("a".into());
    let mut config_b = config_a.clone();
    config_b.server.instance = Some("b".into());
    let (a, b) = (start_with(config_a).await, start_with(config_b).await);
    let mut alice = Client::named(a.tcp_addr(), "alice").await;
    let mut bob = Client::named(b.tcp_addr(), "bob").await;
    alice.join("general").await;
    bob.join("general").await;
    let published_before = sample(&scrape(a.http_addr()).await, "chatd_bus_publishes_total");
    alice.send("across instances").await;
    loop {
        // Skip the presence notices (alice's join may arrive from the other instance late).
        if !bob.line().await.starts_with("* ") {
            break;
        }
    }
    let (on_a, on_b) = (scrape(a.http_addr()).await, scrape(b.http_addr()).await);
    assert!(sample(&on_a, "chatd_bus_publishes_total") > published_before);
    assert!(sample(&on_b, "chatd_bus_receives_total") >= 1.0);
    assert_eq!(sample(&on_a, "chatd_messages_in_total"), 1.0);
    assert_eq!(
        sample(&on_b, "chatd_messages_in_total"),
        0.0,
        "counted where it was sent"
    );
    let count = |samples: &Samples, origin: &str| {
        sample(
            samples,
            &format!("chatd_delivery_latency_seconds_count{{origin=\"{origin}\"}}"),
        )
    };
    assert_eq!(count(&on_b, "remote"), 1.0, "bob's copy came from a");
    assert_eq!(count(&on_b, "local"), 0.0);
    assert_eq!(
        count(&on_a, "local") + count(&on_a, "remote"),
        0.0,
        "netcat does not echo"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn with_the_poll_backend_a_stopped_postgres_turns_both_store_and_bus_red() {
    let Some(mut pg) = TestPostgres::start() else {
        return;
    };
    let mut config = with_store(default_config(), postgres(&pg.url(), Durability::Sync));
    config.server.instance = Some("ops-poll".into());
    for layer in &mut config.layers {
        if let LayerConfig::Fanout(fanout) = layer {
            *fanout = FanoutConfig::Poll {
                interval_ms: 100,
                gap_wait_ms: 1000,
            };
        }
    }
    chatd::pipeline::load::revalidate(&config).expect("a valid poll pipeline");
    let server = start_with(config).await;
    let http = server.http_addr();
    let green = until_green(http).await;
    assert_eq!(green["checks"]["bus"], "ok", "{green}");

    pg.stop();
    let red = until_red(http, &["store", "bus"]).await;
    let bus = red["checks"]["bus"].as_str().unwrap_or_default();
    assert!(bus.starts_with("poll: no successful poll for "), "{bus}");

    pg.restart();
    until_green(http).await;
    server.shutdown().await;
}

#[tokio::test]
async fn readyz_turns_red_naming_the_store_when_postgres_stops_and_green_when_it_returns() {
    let Some(mut pg) = TestPostgres::start() else {
        return;
    };
    let mut config = with_store(default_config(), postgres(&pg.url(), Durability::Async));
    config.server.instance = Some("ops-pg".into());
    let server = start_with(config).await;
    let http = server.http_addr();
    let (status, body) = readyz(http).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["store"], "ok", "{body}");
    assert!(
        body["checks"].get("bus").is_none(),
        "no bus, no bus check: {body}"
    );

    pg.stop();
    let red = until_red(http, &["store"]).await;
    let store = red["checks"]["store"].as_str().unwrap_or_default();
    assert!(
        store.contains("store"),
        "the store check says what failed: {store}"
    );

    pg.restart();
    until_green(http).await;
    server.shutdown().await;
}

#[test]
fn json_logs_are_one_object_per_line() {
    let data = support::data_dir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .args([
            "--log-format",
            "json",
            "--tcp",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--irc",
            "127.0.0.1:0",
        ])
        .env("CHATD_DATA_DIR", &data)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chatd");
    let stderr = child.stderr.take().expect("piped stderr");
    // Read on a thread, so that a chatd that says nothing fails the test instead of hanging it.
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            if lines.send(line.expect("stderr is UTF-8")).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let up = loop {
        let line = received
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("no `is up` log line; got {seen:#?}"));
        let event: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("a stderr line is not JSON ({e}): {line:?}"));
        assert!(event["level"].is_string(), "{line}");
        assert!(event["timestamp"].is_string(), "{line}");
        let message = event["fields"]["message"].as_str().unwrap_or_default();
        seen.push(line.clone());
        if message.contains(" is up: nc ") {
            break event;
        }
    };
    assert_eq!(up["level"], "INFO");
    assert!(
        seen.iter()
            .any(|line| line.contains("\"message\":\"chatd is listening\"")),
        "structured fields survive: {seen:#?}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// Every queue of the instance draws on one budget, so `chatd_queued_bytes` comes back to zero
/// once everything queued has been read. A room's message is charged to the budget once for all
/// its members; the HTTP sessions' own queues used to draw on a budget of their own, and a room
/// whose netcat member came first in the fan-out was charged for the browser's copy and never
/// given it back (the count crept up by a slot or a payload per message). Eight rooms: the
/// fan-out order differs from room to room.
#[tokio::test]
async fn queued_bytes_come_back_to_zero_once_netcat_and_browser_members_have_read() {
    let server = start().await;
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    let carol = HttpClient::connect(server.http_addr(), "carol").await;
    let rooms: Vec<String> = (0..8).map(|i| format!("room{i}")).collect();
    for room in &rooms {
        alice.join(room).await;
        let joined = carol.command(&format!("/join {room}")).await;
        assert_eq!(joined.status, 200, "{}", joined.json);
        alice.expect(&format!("* carol joined {room}")).await;
    }
    for room in &rooms {
        for i in 0..3 {
            let said = carol.say(room, &format!("hello {i}")).await;
            assert_eq!(said.status, 202);
            alice.expect(&format!("[{room}] carol: hello {i}")).await;
        }
    }
    // Everything has been read by alice; carol's own queue is emptied by its dispatcher as
    // events arrive. Waiting is only a guard against a slow machine: a leak never comes back.
    let deadline = Instant::now() + PATIENCE;
    let mut queued = support::http::metric(server.http_addr(), "chatd_queued_bytes").await;
    while queued != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        queued = support::http::metric(server.http_addr(), "chatd_queued_bytes").await;
    }
    assert_eq!(
        queued, 0,
        "bytes still counted as queued after every event was read"
    );
}
