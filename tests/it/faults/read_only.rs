//! PostgreSQL that is up but takes no writes for a while: a standby after a failover, or a
//! database an operator (or a hosting service's storage quota) set read-only. Every write fails
//! with SQLSTATE 25006 ("cannot execute INSERT in a read-only transaction") while reads still
//! work. That is "try again later", like a server that is down: nothing chatd was asked to
//! store may be dropped as if the store had refused that one message.
//!
//! The database is made read-only the way an operator does it, `ALTER SYSTEM SET
//! default_transaction_read_only = on` and a reload ([`TestPostgres::set_read_only`]), which
//! reaches the connections chatd already holds at their next statement. One real `chatd` process (`phase1-postgres.toml`),
//! four senders at once and a reader ([`super::crowd`]).

use std::time::Duration;

use chatd::pipeline::config::Durability;

use super::crowd::{
    ROOM, acked, assert_once_in_order, end, endpoint, pipeline, room, round, stop_cleanly,
    until_each_gets_through,
};
use super::{pg_store, stored_texts};
use crate::support::binary::{Chatd, Stderr};
use crate::support::http::{metric, until_green, until_red};
use crate::support::postgres::TestPostgres;
use crate::support::senders::Endpoint;
use crate::support::{data_dir, scenarios};

/// Sets `pg` read-only, or writable again.
async fn read_only(pg: &TestPostgres, on: bool) {
    TestPostgres::set_read_only(&pg.url(), on)
        .await
        .expect("set read-only");
}

/// The single-instance PostgreSQL pipeline on `pg` with `durability`, written to a fresh
/// directory, and chatd started on it; and where to reach it.
fn start(pg: &TestPostgres, durability: &str) -> (Chatd, Endpoint) {
    let data = data_dir();
    std::fs::create_dir_all(&data).unwrap();
    let durability = format!("durability = \"{durability}\"");
    let file = pipeline(
        &data,
        "phase1-postgres.toml",
        &[("durability = \"async\"", &durability)],
    );
    let url = pg.url();
    let log = Stderr::File(data.join("chatd.log"));
    let chatd = Chatd::start_logging(
        &["--pipeline", &file],
        &data,
        &[("DATABASE_URL", &url)],
        log,
    );
    let at = endpoint(&chatd);
    (chatd, at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_postgres_keeps_write_behind_messages_until_it_takes_writes_again() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let (chatd, at) = start(&pg, "async");
    let store = pg_store(&pg.url(), Durability::Async, 10_000, 5000);
    let db = scenarios::open_store(&store).await;
    let (mut conns, reading) = room(&at, 4).await;
    let mut acked = self::acked(&round(&mut conns, "before", 1..=5).await);
    assert_eq!(acked.len(), 20, "write-behind refuses nothing");
    scenarios::until_stored(&*db, ROOM, acked.len()).await;

    // Read-only: chat goes on (write-behind acknowledges and delivers at once), and nothing
    // said now can be stored yet.
    read_only(&pg, true).await;
    let during = self::acked(&round(&mut conns, "during", 1..=25).await);
    assert_eq!(during.len(), 100, "write-behind refuses nothing");
    acked.extend(during);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        scenarios::stored(&*db, ROOM).await.len(),
        20,
        "stored while the database was read-only"
    );
    // It answers reads, but `/readyz` says it takes no writes.
    let red = until_red(at.http, &["store"]).await;
    let why = red["checks"]["store"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("the store has taken no write for "),
        "{red}"
    );
    assert!(why.contains("read-only transaction"), "{red}");

    // Writes come back: the queue is written, in order, and chat is stored again. Nothing was
    // refused one by one or dropped.
    read_only(&pg, false).await;
    acked.extend(self::acked(&round(&mut conns, "after", 1..=5).await));
    let seen = end(&mut conns[0], reading).await;
    assert_once_in_order(&seen, &acked);
    let mut all = seen;
    all.push("end".to_string());
    scenarios::until_stored(&*db, ROOM, all.len()).await;
    until_green(at.http).await;
    assert_eq!(metric(at.http, "chatd_persist_rejected_total").await, 0);
    assert_eq!(metric(at.http, "chatd_persist_dropped_total").await, 0);
    stop_cleanly(chatd).await;
    assert_eq!(stored_texts(&store, ROOM).await, all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_postgres_refuses_write_ahead_messages_with_try_again() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let (chatd, at) = start(&pg, "sync");
    let (mut conns, reading) = room(&at, 4).await;
    // A commit slower than the timeout (a busy machine) may refuse a message at any time, in
    // words: `acked` checks them.
    let mut acked = self::acked(&round(&mut conns, "before", 1..=5).await);

    // Read-only: every message is refused, with words that say to try again (the store is
    // not refusing *this* message), and delivered to nobody.
    read_only(&pg, true).await;
    let during = round(&mut conns, "during", 1..=3).await;
    assert_eq!(self::acked(&during), Vec::<String>::new());

    // Writes come back: every sender gets through again, and nothing refused turns up later.
    read_only(&pg, false).await;
    let refused = |text: &str, why: &str| assert!(why.ends_with("try again"), "{text}: {why}");
    acked.extend(until_each_gets_through(&mut conns, refused).await);
    acked.extend(self::acked(&round(&mut conns, "after", 2..=5).await));
    let seen = end(&mut conns[0], reading).await;
    assert_once_in_order(&seen, &acked);
    stop_cleanly(chatd).await;
    let mut all = seen;
    all.push("end".to_string());
    let store = pg_store(&pg.url(), Durability::Sync, 10_000, 5000);
    assert_eq!(stored_texts(&store, ROOM).await, all);
}
