//! Persistence scenarios, written once and run against each store (`persist_sqlite.rs`,
//! `persist_postgres.rs`): a user's view over TCP, then the store's own view of what it
//! holds, read back through chatd's `Store` trait.

use std::sync::Arc;

use chatd::backends::postgres::PostgresStore;
use chatd::backends::sqlite::SqliteStore;
use chatd::backends::{Row, Store};
use chatd::core::message::sample;
use chatd::core::{ChatMessage, HistoryQuery, RoomName};
use chatd::pipeline::PipelineConfig;
use chatd::pipeline::config::{Durability, LayerConfig, PersistConfig};
use chatd::server::Server;

use super::http::HttpClient;
use super::{Client, PATIENCE, default_config, start_with, with_store};

/// Declares one `#[tokio::test]` per shared scenario, each running the scenario of that name
/// against the store `$store` gives: `persist_scenarios!(store(); restart_keeps_the_last_10, ...)`.
///
/// `$store` is evaluated once per test, so each test has a store of its own, and it is either a
/// [`PersistConfig`] or, after `server:`, an `Option<(guard, PersistConfig)>`: the guard (a
/// throwaway PostgreSQL, say) lives until the test ends, and `None` skips the test (no
/// PostgreSQL on this machine). A new scenario is a `pub async fn name(store: PersistConfig)`
/// here and its name in each store file's list; the test is `persist_sqlite::name`,
/// `persist_postgres::name`, as if written out by hand.
// The benches include this harness without the persist tests: unused there.
#[allow(unused_macros)]
macro_rules! persist_scenarios {
    (server: $server:expr; $($scenario:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $scenario() {
                let Some((_guard, store)) = $server else { return };
                $crate::support::scenarios::$scenario(store).await;
            }
        )+
    };
    ($store:expr; $($scenario:ident),+ $(,)?) => {
        $crate::support::scenarios::persist_scenarios!(server: Some(((), $store)); $($scenario),+);
    };
}
#[allow(unused_imports)]
pub(crate) use persist_scenarios;

/// The default pipeline with `store` as its persist layer.
pub fn config_for(store: &PersistConfig) -> PipelineConfig {
    with_store(default_config(), store.clone())
}

/// A second handle on the same database, to look at what chatd stored.
pub async fn open_store(store: &PersistConfig) -> Arc<dyn Store> {
    match store {
        PersistConfig::Sqlite { path, .. } => Arc::new(
            SqliteStore::open(path.as_ref(), false)
                .await
                .expect("open the SQLite file"),
        ),
        PersistConfig::Postgres { url, .. } => Arc::new(
            PostgresStore::connect(url, 2)
                .await
                .expect("connect to PostgreSQL"),
        ),
        PersistConfig::None {} => panic!("no store to open"),
    }
}

/// Everything stored for `room`, in seq order.
pub async fn stored(store: &dyn Store, room: &str) -> Vec<Arc<ChatMessage>> {
    let query = HistoryQuery {
        room: RoomName::parse(room).unwrap(),
        upto: i64::MAX as u64,
        after: 0,
        limit: usize::MAX,
    };
    store
        .history(&query)
        .await
        .expect("read the store")
        .messages
}

/// `(seq, text)` of each message.
pub fn seq_text(messages: &[Arc<ChatMessage>]) -> Vec<(u64, String)> {
    messages.iter().map(|m| (m.seq, m.text.clone())).collect()
}

/// Waits until the store holds at least `n` messages of `room`.
pub async fn until_stored(store: &dyn Store, room: &str, n: usize) -> Vec<Arc<ChatMessage>> {
    let deadline = tokio::time::Instant::now() + PATIENCE * 3;
    loop {
        let messages = stored(store, room).await;
        if messages.len() >= n {
            return messages;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} messages stored in time",
            messages.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Restart keeps exactly the last 10, and new messages continue the numbering.
pub async fn restart_keeps_the_last_10(store: PersistConfig) {
    let config = config_for(&store);
    let server = start_with(config.clone()).await;
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    alice.join("general").await;
    alice
        .send_many((1..=25).map(|i| format!("message {i}")))
        .await;
    alice.sync().await;
    server.shutdown().await;

    let server = start_with(config.clone()).await;
    let mut bob = Client::named(server.tcp_addr(), "bob").await;
    let expected: Vec<String> = (16..=25)
        .map(|i| format!("[general] alice: message {i}"))
        .collect();
    assert_eq!(bob.join("general").await, expected, "the ring was warmed");
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    alice.join("general").await;
    bob.expect("* alice joined general").await;
    alice.send("after the restart").await;
    bob.expect("[general] alice: after the restart").await;
    // Beyond the ring: read from the store.
    bob.send("/history 20").await;
    bob.expect("* the last 20 messages in general:").await;
    let mut expected: Vec<String> = (7..=25)
        .map(|i| format!("[general] alice: message {i}"))
        .collect();
    expected.push("[general] alice: after the restart".into());
    assert_eq!(bob.lines(20).await, expected);
    server.shutdown().await;

    let db = open_store(&store).await;
    let all = stored(&*db, "general").await;
    assert_eq!(all.len(), 26);
    assert_eq!(
        seq_text(&all[25..]),
        [(26, "after the restart".to_string())],
        "the seq continued after the stored maximum"
    );
}

/// A room nobody is in leaves memory after `room_idle_secs` (1 s here) and its next use opens
/// it from the store: a browser resuming across the eviction gets exactly what it missed, a
/// joiner the last 10, and the numbering goes on without a jump. The messages are written
/// behind, so the last ones may still be in the write queue when the room is evicted.
pub async fn an_idle_room_is_evicted_and_reopens_where_it_stopped(store: PersistConfig) {
    let mut config = config_for(&store);
    evict_after_a_second(&mut config);
    let server = start_with(config).await;
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    alice.join("quiet").await;
    alice
        .send_many((1..=25).map(|i| format!("message {i}")))
        .await;
    alice.send("/leave quiet").await;
    alice
        .expect("* you left quiet; you are in no room now")
        .await;
    let quiet = RoomName::parse("quiet").unwrap();
    until_evicted(&server, &quiet).await;
    assert_eq!(server.hub().stats().rooms_evicted.get(), 1);
    alice.send("/rooms").await;
    alice.expect("* rooms: quiet (0)").await;

    // A browser that had shown up to message 20 comes back: this opens the room again.
    let browser = HttpClient::connect(server.http_addr(), "browser").await;
    let mut stream = browser.stream("quiet", Some(20)).await;
    for seq in 21..=25 {
        let event = stream.next().await;
        assert_eq!(
            (event.event.as_str(), event.data["seq"].as_u64()),
            ("message", Some(seq))
        );
    }
    let mut bob = Client::named(server.tcp_addr(), "bob").await;
    let expected: Vec<String> = (16..=25)
        .map(|i| format!("[quiet] alice: message {i}"))
        .collect();
    assert_eq!(bob.join("quiet").await, expected, "the last 10");
    bob.send("after the eviction").await;
    let next = stream.next_message().await;
    assert_eq!(
        (next.data["seq"].as_u64(), next.data["text"].as_str()),
        (Some(26), Some("after the eviction")),
        "the numbering goes on after 25"
    );
    server.shutdown().await;
    let db = open_store(&store).await;
    let all = stored(&*db, "quiet").await;
    let seqs: Vec<u64> = all.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        (1..=26).collect::<Vec<_>>(),
        "every seq once, no jump"
    );
}

/// `config` with rooms evicted after one idle second.
pub fn evict_after_a_second(config: &mut PipelineConfig) {
    for layer in &mut config.layers {
        if let LayerConfig::Route(route) = layer {
            route.room_idle_secs = 1;
        }
    }
}

/// Waits until `server` has evicted `room`: out of its table, then closed (its unused seqs given
/// back, its bus state ended).
pub async fn until_evicted(server: &Server, room: &RoomName) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let rooms = server.hub().rooms();
    while rooms.get(room).is_some() || rooms.closing(room).is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{room} never evicted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Bob on instance `b` reads a room through an event stream while alice on `a` keeps talking.
/// Three times he leaves, `b` evicts the idle room (its `room_idle_secs` is 1), and he comes
/// back at once, resuming after the last message he got. He gets every message once, in order:
/// what was said while the room was closed on `b` comes from the store, the rest over the bus.
pub async fn evicted_and_reopened_under_traffic_loses_nothing(a: &Server, b: &Server) {
    const TOTAL: u64 = 200;
    let mut alice = Client::named(a.tcp_addr(), "alice").await;
    alice.join("busy").await;
    let bob = HttpClient::connect(b.http_addr(), "bob").await;
    let busy = RoomName::parse("busy").unwrap();
    let sender = tokio::spawn(async move {
        for i in 1..=TOTAL {
            alice.send(&format!("m{i}")).await;
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        alice
    });
    let mut seen: Vec<u64> = Vec::new();
    let mut cycles = 0;
    loop {
        let mut stream = bob
            .stream("busy", Some(seen.last().copied().unwrap_or(0)))
            .await;
        let reads = if cycles < 3 { 15 } else { usize::MAX };
        for _ in 0..reads {
            let event = stream.next().await;
            match event.event.as_str() {
                "message" => seen.push(event.data["seq"].as_u64().expect("a seq")),
                "presence" => continue,
                other => panic!("{other} after {:?}: {}", seen.last(), event.data),
            }
            if seen.last() == Some(&TOTAL) {
                break;
            }
        }
        if seen.last() == Some(&TOTAL) {
            break;
        }
        drop(stream);
        assert_eq!(bob.command("/leave busy").await.status, 200);
        until_evicted(b, &busy).await;
        cycles += 1;
    }
    assert!(
        cycles >= 3,
        "only {cycles} evictions before the end of the traffic"
    );
    let _alice = sender.await.expect("the sender");
    assert_eq!(
        seen,
        (1..=TOTAL).collect::<Vec<_>>(),
        "every message once, in order"
    );
}

/// 1,000 messages in: all stored exactly once, in seq order.
pub async fn a_thousand_messages_are_stored_once_in_order(store: PersistConfig) {
    let server = start_with(config_for(&store)).await;
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    alice.join("bulk").await;
    alice
        .send_many((1..=1000).map(|i| format!("bulk {i}")))
        .await;
    alice.sync().await;
    let stats = server.hub().stats_handle();
    server.shutdown().await; // flushes the queue
    assert_eq!(stats.persist_dropped.get(), 0);
    let db = open_store(&store).await;
    let expected: Vec<(u64, String)> = (1..=1000).map(|i| (i, format!("bulk {i}"))).collect();
    assert_eq!(seq_text(&stored(&*db, "bulk").await), expected);
}

/// Awkward text comes back byte for byte, from the store (after a restart) and over TCP.
pub async fn awkward_text_round_trips(store: PersistConfig) {
    let texts = [
        "it's \"quoted\" and 'single-quoted'",
        "'; DROP TABLE messages; --",
        r"back\slash \\ and \n not a newline",
        "emoji 🎉👩‍💻 and combining é",
        "עברית מימין לשמאל and العربية",
        "%s %d {} ${HOME} $1 ? :name",
    ];
    let config = config_for(&store);
    let server = start_with(config.clone()).await;
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    alice.join("odd").await;
    alice.send_many(texts.iter().map(|t| t.to_string())).await;
    alice.send("nul\0byte").await;
    alice
        .expect("! control characters are not allowed in messages (found U+0000)")
        .await;
    server.shutdown().await;

    let db = open_store(&store).await;
    let got: Vec<String> = stored(&*db, "odd")
        .await
        .iter()
        .map(|m| m.text.clone())
        .collect();
    assert_eq!(got, texts);
    let server = start_with(config).await;
    let mut bob = Client::named(server.tcp_addr(), "bob").await;
    let expected: Vec<String> = texts.iter().map(|t| format!("[odd] alice: {t}")).collect();
    assert_eq!(bob.join("odd").await, expected);
    server.shutdown().await;
}

/// Shutdown with many messages still queued writes them all before it returns.
pub async fn shutdown_flushes_the_queue(store: PersistConfig) {
    let server = start_with(config_for(&store)).await;
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    alice.join("flush").await;
    alice
        .send_many((1..=2000).map(|i| format!("queued {i}")))
        .await;
    alice.sync().await; // all delivered; many still waiting for the writer
    let stats = server.hub().stats_handle();
    server.shutdown().await;
    assert_eq!(stats.persist_dropped.get(), 0);
    let db = open_store(&store).await;
    assert_eq!(stored(&*db, "flush").await.len(), 2000);
}

/// Write-ahead: whatever a client has seen is already in the store.
pub async fn sync_mode_stores_before_anyone_sees(store: PersistConfig) {
    let store = match store {
        PersistConfig::Sqlite { path, .. } => super::sqlite(path.as_ref(), Durability::Sync),
        PersistConfig::Postgres { url, .. } => super::postgres(&url, Durability::Sync),
        PersistConfig::None {} => panic!("no store"),
    };
    let server = start_with(config_for(&store)).await;
    let db = open_store(&store).await;
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    let mut bob = Client::named(server.tcp_addr(), "bob").await;
    alice.join("ahead").await;
    bob.join("ahead").await;
    alice.expect("* bob joined ahead").await;
    alice.send_many((1..=30).map(|i| format!("safe {i}"))).await;
    for i in 1..=30 {
        bob.expect(&format!("[ahead] alice: safe {i}")).await;
        let now = stored(&*db, "ahead").await;
        assert!(
            now.iter().any(|m| m.text == format!("safe {i}")),
            "bob saw message {i} before it was stored"
        );
    }
    server.shutdown().await;
}

/// A row the database refuses is left out and reported; the rest of its batch is stored, and
/// writing the same messages again stores nothing twice.
pub async fn a_bad_row_does_not_break_its_batch(store: PersistConfig) {
    let db = open_store(&store).await;
    let batch: Vec<Row> = [
        sample("rows", 1, "alice", "one"),
        sample("rows", 0, "alice", "seq 0 breaks CHECK (seq > 0)"),
        sample("rows", 2, "alice", "two"),
    ]
    .into_iter()
    .map(Row::Message)
    .collect();
    let appended = db
        .append(&batch)
        .await
        .expect("the batch as a whole goes through");
    assert_eq!(appended.written, 2);
    let rejected: Vec<usize> = appended.rejected.iter().map(|(i, _)| *i).collect();
    assert_eq!(rejected, [1], "{appended:?}");
    let again = db.append(&batch[..1]).await.expect("a retried batch");
    assert_eq!(again.written, 0, "already stored: not written twice");
    assert!(
        again.conflicts.is_empty(),
        "the same row again is no conflict"
    );
    let other = db
        .append(&[Row::Message(sample("rows", 1, "alice", "another text"))])
        .await
        .expect("a row for a taken seq");
    assert_eq!(
        (other.written, other.conflicts),
        (0, vec![0]),
        "a taken seq is a conflict"
    );
    assert_eq!(
        seq_text(&stored(&*db, "rows").await),
        [(1, "one".to_string()), (2, "two".to_string())]
    );
}
