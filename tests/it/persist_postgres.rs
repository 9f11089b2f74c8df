//! Persistence on a real PostgreSQL: the shared scenarios, plus what only a server can do: go
//! away in the middle of a chat and come back.
//!
//! Each test starts its own throwaway server (`support::postgres`); set `CHATD_SKIP_POSTGRES=1`
//! to skip them on a machine without PostgreSQL.

use crate::support;
use crate::support::postgres::TestPostgres;
use crate::support::{Client, postgres, scenarios, start_with};
use chatd::core::message::sample;
use chatd::pipeline::config::{Durability, PersistConfig};

fn server() -> Option<(TestPostgres, PersistConfig)> {
    let pg = TestPostgres::start()?;
    let store = postgres(&pg.url(), Durability::Async);
    Some((pg, store))
}

scenarios::persist_scenarios!(server: server();
    restart_keeps_the_last_10,
    a_thousand_messages_are_stored_once_in_order,
    an_idle_room_is_evicted_and_reopens_where_it_stopped,
    awkward_text_round_trips,
    shutdown_flushes_the_queue,
    sync_mode_stores_before_anyone_sees,
);

#[tokio::test]
async fn a_bad_row_does_not_break_its_batch() {
    let Some((_pg, store)) = server() else { return };
    scenarios::a_bad_row_does_not_break_its_batch(store.clone()).await;
    // PostgreSQL text cannot hold NUL (chatd refuses it at the door; this is the store's guard).
    let db = scenarios::open_store(&store).await;
    let batch = [
        sample("nul", 1, "alice", "fine"),
        sample("nul", 2, "alice", "nul\0byte"),
        sample("nul", 3, "alice", "fine too"),
    ]
    .map(chatd::backends::Row::Message);
    let appended = db.append(&batch).await.expect("the batch goes through");
    assert_eq!(appended.written, 2);
    assert_eq!(appended.rejected.len(), 1);
    assert_eq!(appended.rejected[0].0, 1);
    assert!(
        appended.rejected[0].1.contains("22021"),
        "{:?}",
        appended.rejected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_blocks_no_chat_and_loses_no_message() {
    let Some((mut pg, store)) = server() else {
        return;
    };
    let server = start_with(scenarios::config_for(&store)).await;
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    let mut bob = Client::named(server.tcp_addr(), "bob").await;
    alice.join("general").await;
    bob.join("general").await;
    alice.expect("* bob joined general").await;
    alice
        .send_many((1..=10).map(|i| format!("before {i}")))
        .await;
    for i in 1..=10 {
        bob.expect(&format!("[general] alice: before {i}")).await;
    }

    tokio::task::block_in_place(|| pg.stop());
    // The database is down: chat goes on, every line arrives.
    for i in 1..=20 {
        alice.send(&format!("during {i}")).await;
        bob.expect(&format!("[general] alice: during {i}")).await;
    }
    // Bring it back once the writer has seen it fail (not after some fixed time).
    let stats = server.hub().stats_handle();
    let deadline = tokio::time::Instant::now() + support::PATIENCE * 3;
    while stats.persist_retries.get() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the writer never saw the outage"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::task::block_in_place(|| pg.restart());

    let db = scenarios::open_store(&store).await;
    let all = scenarios::until_stored(&*db, "general", 30).await;
    let mut expected: Vec<(u64, String)> = (1..=10).map(|i| (i, format!("before {i}"))).collect();
    expected.extend((1..=20).map(|i| (10 + i, format!("during {i}"))));
    assert_eq!(scenarios::seq_text(&all), expected);
    assert_eq!(stats.persist_dropped.get(), 0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_a_database_that_comes_back() {
    let Some((mut pg, store)) = server() else {
        return;
    };
    let server = start_with(scenarios::config_for(&store)).await;
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    alice.join("general").await;
    tokio::task::block_in_place(|| pg.stop());
    alice
        .send_many((1..=200).map(|i| format!("queued {i}")))
        .await;
    alice.sync().await; // delivered, and all of it waiting in the writer's queue
    let stats = server.hub().stats_handle();
    // Stop chatd while the database is still down; bring it back while shutdown waits.
    let shutdown = tokio::spawn(server.shutdown());
    tokio::task::block_in_place(|| pg.restart());
    tokio::time::timeout(support::PATIENCE * 3, shutdown)
        .await
        .expect("shutdown ends once the queue is flushed")
        .unwrap();
    assert_eq!(stats.persist_dropped.get(), 0);
    let db = scenarios::open_store(&store).await;
    assert_eq!(scenarios::stored(&*db, "general").await.len(), 200);
}

#[tokio::test]
async fn a_database_from_a_newer_chatd_is_refused() {
    let Some((_pg, store)) = server() else { return };
    drop(scenarios::open_store(&store).await); // migrated
    let (client, connection) = tokio_postgres::connect(&_pg.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .execute(
            "INSERT INTO chatd_schema (version, name, applied_at_ms) VALUES (999, 'future', 0)",
            &[],
        )
        .await
        .unwrap();
    let err = chatd::server::Server::start(&scenarios::config_for(&store))
        .await
        .unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains("cannot use PostgreSQL"), "{err}");
    assert!(err.contains("schema is at version 999"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_keeps_chatting_drops_the_newest_writes_and_flushes_the_rest() {
    let Some((mut pg, _)) = server() else { return };
    let store = PersistConfig::Postgres {
        url: pg.url(),
        pool_size: 2,
        durability: Durability::Async,
        queue: 100,
        batch: 500,
        sync_timeout_ms: 5000,
    };
    let server = start_with(scenarios::config_for(&store)).await;
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    let mut bob = Client::named(server.tcp_addr(), "bob").await;
    alice.join("general").await;
    bob.join("general").await;
    alice.expect("* bob joined general").await;
    tokio::task::block_in_place(|| pg.stop());
    alice
        .send_many((1..=150).map(|i| format!("full {i}")))
        .await;
    for i in 1..=150 {
        bob.expect(&format!("[general] alice: full {i}")).await; // chat never waits
    }
    let stats = server.hub().stats_handle();
    let dropped = stats.persist_dropped.get();
    assert!((1..=50).contains(&dropped), "dropped {dropped}");
    // SIGTERM-like stop with the queue full and the database down; it comes back meanwhile.
    let shutdown = tokio::spawn(server.shutdown());
    tokio::task::block_in_place(|| pg.restart());
    tokio::time::timeout(support::PATIENCE * 3, shutdown)
        .await
        .expect("shutdown ends once the queue is flushed")
        .unwrap();
    assert_eq!(
        stats.persist_dropped.get(),
        dropped,
        "the flush itself lost nothing"
    );
    let db = scenarios::open_store(&store).await;
    let kept = 150 - dropped;
    let expected: Vec<(u64, String)> = (1..=kept).map(|i| (i, format!("full {i}"))).collect();
    assert_eq!(
        scenarios::seq_text(&scenarios::stored(&*db, "general").await),
        expected,
        "everything queued was written; the dropped ones are the newest"
    );
}
