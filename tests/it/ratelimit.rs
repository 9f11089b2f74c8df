//! Rate limits and tower's middleware, through real sockets: a flooding netcat user is slowed
//! down but stays connected, HTTP gets `429` with `Retry-After`, `--check` refuses a rate of 0,
//! and the `timeout`, `concurrency_limit` and `load_shed` layers built from TOML give their clear
//! errors when a stopped PostgreSQL holds requests up.
//!
//! The flood tests run the shipped default's `rate_limit` layer at 1 line a second (burst 20), so
//! that no token comes back while 50 lines are read: a second is far longer than that takes.
//! The PostgreSQL tests skip with `CHATD_SKIP_POSTGRES=1` (see `support::postgres`).

use crate::support;
use std::time::Duration;

use crate::support::http::HttpClient;
use crate::support::postgres::TestPostgres;
use crate::support::{Client, PATIENCE, shipped_config, start_with};
use chatd::pipeline::PipelineConfig;
use chatd::pipeline::config::{LayerConfig, RateLimitConfig};
use chatd::pipeline::load;
use chatd::server::Server;

/// The shipped default pipeline with its rate limit slowed to 1 line a second.
fn one_per_second() -> PipelineConfig {
    let mut config = shipped_config();
    let limit = config.layers.iter_mut().find_map(|layer| match layer {
        LayerConfig::RateLimit(limit) => Some(limit),
        _ => None,
    });
    let limit = limit.expect("the shipped default has a rate_limit layer");
    assert_eq!(
        *limit,
        RateLimitConfig {
            per_second: 10,
            burst: 20,
            per_address_per_second: 50,
            per_address_burst: 200,
        },
        "the shipped default limits to 10 a second, 20 at once (50 and 200 per address)"
    );
    limit.per_second = 1;
    config
}

/// The wait a `! slow down: ... (try again in N ms)` line asks for.
fn wait_asked(line: &str) -> Duration {
    let ms = line
        .rsplit_once("(try again in ")
        .and_then(|(_, rest)| rest.strip_suffix(" ms)"))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no wait in {line:?}"));
    Duration::from_millis(ms)
}

#[tokio::test]
async fn a_tcp_flood_gets_the_burst_through_and_slow_down_for_the_rest() {
    let server = start_with(one_per_second()).await;
    let mut bob = Client::named(server.tcp_addr(), "bob").await;
    bob.join("flood").await;
    let mut alice = Client::connect(server.tcp_addr()).await;
    // 50 lines in one write: two commands, then 48 messages. 20 tokens cover the commands and
    // the first 18 messages.
    let burst = ["/nick alice".to_string(), "/join flood".to_string()]
        .into_iter()
        .chain((1..=48).map(|i| format!("m{i}")));
    alice.send_many(burst).await;
    alice.expect("* you are now alice").await;
    alice
        .expect("* you joined flood (2 members); no messages yet")
        .await;
    let mut last = String::new();
    for _ in 0..30 {
        last = alice
            .expect_prefix("! slow down: at most 1 line a second, 20 at once (try again in ")
            .await;
    }
    bob.expect("* alice joined flood").await;
    for i in 1..=18 {
        bob.expect(&format!("[flood] alice: m{i}")).await;
    }
    assert_eq!(server.hub().stats().rate_limited.get(), 30);

    // Still connected: after the wait it was told, the next line gets through, and it is the
    // next thing bob sees (none of the refused 30 slipped through).
    let wait = wait_asked(&last);
    assert!(wait <= Duration::from_secs(1), "{last}");
    tokio::time::sleep(wait).await;
    alice.send("after the wait").await;
    bob.expect("[flood] alice: after the wait").await;
    server.shutdown().await;
}

#[tokio::test]
async fn http_gets_429_with_retry_after_and_can_go_on_after_it() {
    let server = start_with(one_per_second()).await;
    let carol = HttpClient::connect(server.http_addr(), "carol").await;
    let mut allowed = 0;
    let refused = loop {
        let answer = carol.command("/rooms").await;
        match answer.status {
            200 => allowed += 1,
            _ => break answer,
        }
        assert!(allowed <= 40, "40 requests and still no 429");
    };
    // The bucket starts full; a token may come back while the requests go out one by one.
    assert!(allowed >= 20, "only {allowed} requests before the 429");
    assert_eq!(refused.status, 429, "{}", refused.json);
    let message = refused.json["error"].as_str().unwrap();
    assert!(
        message.starts_with("slow down: at most 1 line a second, 20 at once (try again in "),
        "{message}"
    );
    let ms = refused.json["retry_after_ms"].as_u64().unwrap();
    assert!((1..=1000).contains(&ms), "{ms}");
    assert_eq!(wait_asked(message), Duration::from_millis(ms));
    // Whole seconds, rounded up.
    assert_eq!(refused.retry_after.as_deref(), Some("1"));
    // Opening an event stream costs a token too, but waits for it rather than failing: a
    // browser's EventSource would give up for good on a 429. (`stream` asserts the 200.)
    let _stream = carol.stream("lobby", None).await;

    // The stream took the token that came back; the next request waits for the one after.
    let mut answer = carol.command("/rooms").await;
    if answer.status == 429 {
        let ms = answer.json["retry_after_ms"].as_u64().unwrap();
        tokio::time::sleep(Duration::from_millis(ms)).await;
        answer = carol.command("/rooms").await;
    }
    assert_eq!(answer.status, 200, "{}", answer.json);
    server.shutdown().await;
}

#[test]
fn check_refuses_a_rate_of_zero() {
    let dir = support::data_dir();
    let path = dir.join("zero.toml");
    let text = load::EMBEDDED_DEFAULT.replace("per_second = 10", "per_second = 0");
    assert_ne!(text, load::EMBEDDED_DEFAULT, "the default sets per_second");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatd"))
        .args(["--pipeline", path.to_str().unwrap(), "--check"])
        .env("CHATD_DATA_DIR", dir.join("data"))
        .output()
        .expect("run chatd --check");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "layer 2 (rate_limit): option `per_second` = 0 would refuse every line after the \
             first burst, for good; write at least 1 (or remove the `rate_limit` layer to turn \
             rate limiting off)"
        ),
        "{stderr}"
    );
}

/// A pipeline with `guards` (TOML `[[layer]]` tables) between parse and route, storing in `pg`
/// before delivering (so a stopped PostgreSQL holds a message up), on ephemeral ports.
fn guarded(pg: &TestPostgres, guards: &str) -> PipelineConfig {
    let text = format!(
        r#"
[server]
tcp = "127.0.0.1:0"
http = "127.0.0.1:0"
instance = "guarded"

[[layer]]
kind = "parse"
{guards}
[[layer]]
kind = "route"

[[layer]]
kind = "persist"
store = "postgres"
url = "{}"
durability = "sync"

[[layer]]
kind = "fanout"
backend = "local"
"#,
        pg.url()
    );
    load::parse("guarded.toml", &text, &|_| None).expect("a valid pipeline")
}

/// Two members of `room`.
async fn alice_and_bob(server: &Server, room: &str) -> (Client, Client) {
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    alice.join(room).await;
    let mut bob = Client::named(server.tcp_addr(), "bob").await;
    bob.join(room).await;
    alice.expect(&format!("* bob joined {room}")).await;
    (alice, bob)
}

#[tokio::test]
async fn a_timeout_layer_answers_a_stuck_message_and_the_room_goes_on() {
    let Some(mut pg) = TestPostgres::start() else {
        return;
    };
    let config = guarded(&pg, "[[layer]]\nkind = \"timeout\"\nms = 300\n");
    let server = start_with(config).await;
    let (mut alice, mut bob) = alice_and_bob(&server, "slow").await;

    pg.stop();
    alice.send("held up").await;
    alice
        .expect(&format!("! {}", chatd::core::error::TIMED_OUT))
        .await;
    // Still connected, and commands that need no store still work.
    alice.send("/users").await;
    alice.expect("* users in slow (2): alice, bob").await;

    // The abandoned message left no hole that holds the room up.
    pg.restart();
    bob.send("back").await;
    alice.expect("[slow] bob: back").await;
    server.shutdown().await;
}

#[tokio::test]
async fn load_shed_over_a_concurrency_limit_answers_server_busy() {
    let Some(mut pg) = TestPostgres::start() else {
        return;
    };
    let guards = "[[layer]]\nkind = \"load_shed\"\n\n\
                  [[layer]]\nkind = \"concurrency_limit\"\nmax = 1\n";
    let server = start_with(guarded(&pg, guards)).await;
    let (mut alice, mut bob) = alice_and_bob(&server, "busy").await;

    // Alice's message waits for the stopped store while it holds the only permit; bob asks until
    // his request arrives after hers and is shed.
    pg.stop();
    alice.send("stuck").await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        assert!(tokio::time::Instant::now() < deadline, "never shed");
        bob.send("/rooms").await;
        match bob.line().await.as_str() {
            "! server busy, try again" => break,
            "* rooms: busy (2)" => tokio::task::yield_now().await,
            other => panic!("unexpected {other:?}"),
        }
    }

    // Shed, not disconnected: once the store is back, alice's message arrives and bob talks.
    pg.restart();
    bob.expect("[busy] alice: stuck").await;
    bob.send("free again").await;
    alice.expect("[busy] bob: free again").await;
    server.shutdown().await;
}
