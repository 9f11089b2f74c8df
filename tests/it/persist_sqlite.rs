//! Persistence on the embedded SQLite store (the default pipeline): the shared scenarios, and the
//! binary as a new user runs it: chat, Ctrl-C, start again, the history is back.

use crate::support;
use chatd::pipeline::config::Durability;
use std::process::Command;

use crate::support::binary::Chatd;
use crate::support::{Client, data_dir, scenarios, sqlite};

fn store() -> chatd::pipeline::config::PersistConfig {
    sqlite(&data_dir().join("chatd.db"), Durability::Async)
}

scenarios::persist_scenarios!(store();
    restart_keeps_the_last_10,
    a_thousand_messages_are_stored_once_in_order,
    awkward_text_round_trips,
    a_bad_row_does_not_break_its_batch,
    an_idle_room_is_evicted_and_reopens_where_it_stopped,
    shutdown_flushes_the_queue,
    sync_mode_stores_before_anyone_sees,
);

#[tokio::test]
async fn the_binary_keeps_history_across_a_sigterm_restart() {
    let data = data_dir().join("fresh"); // does not exist yet: chatd creates it
    // The embedded default, without the rate limit that would refuse most of the burst below.
    let pipeline = support::unthrottled_default_file(&data_dir());
    let args = [
        "--instance",
        "restart",
        "--pipeline",
        pipeline.to_str().unwrap(),
    ];
    let chatd = Chatd::start(&args, &data);
    let mut alice = Client::named(chatd.tcp, "alice").await;
    alice.join("general").await;
    // Many lines at once, SIGTERM right after: what is still queued is flushed on the way out.
    alice
        .send_many((1..=500).map(|i| format!("line {i}")))
        .await;
    alice.sync().await;
    chatd.terminate().await;
    assert!(
        data.join("chatd.db").is_file(),
        "the data dir and file were created"
    );

    let chatd = Chatd::start(&args, &data);
    let mut bob = Client::named(chatd.tcp, "bob").await;
    let expected: Vec<String> = (491..=500)
        .map(|i| format!("[general] alice: line {i}"))
        .collect();
    assert_eq!(bob.join("general").await, expected);
    bob.send("/history 100").await;
    bob.expect("* the last 100 messages in general:").await;
    let expected: Vec<String> = (401..=500)
        .map(|i| format!("[general] alice: line {i}"))
        .collect();
    assert_eq!(bob.lines(100).await, expected);
    chatd.terminate().await;
}

#[tokio::test]
async fn rooms_with_stored_history_are_listed_after_a_restart() {
    let config = scenarios::config_for(&store());
    let server = support::start_with(config.clone()).await;
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    alice.join("general").await;
    alice.send("kept").await;
    alice.join("empty").await; // never carries a message: nothing to list after a restart
    alice.sync().await;
    server.shutdown().await;

    let server = support::start_with(config).await;
    let mut bob = Client::named(server.tcp_addr(), "bob").await;
    bob.send("/rooms").await;
    bob.expect("* rooms: general (0)").await;
    bob.join("general").await;
    bob.send("/rooms").await;
    bob.expect("* rooms: general (1)").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_database_from_a_newer_chatd_is_refused() {
    let data = data_dir();
    let path = data.join("chatd.db");
    drop(scenarios::open_store(&sqlite(&path, Durability::Async)).await); // migrated
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO chatd_schema (version, name, applied_at_ms) VALUES (999, 'future', 0)",
        [],
    )
    .unwrap();
    drop(conn);
    let config = scenarios::config_for(&sqlite(&path, Durability::Async));
    let err = chatd::server::Server::start(&config).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("schema is at version 999"),
        "{err:#}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_chatd"))
        .args([
            "--tcp",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--irc",
            "127.0.0.1:0",
        ])
        .env("CHATD_DATA_DIR", &data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let known = chatd::backends::migrate::SQLITE.last().unwrap().version;
    assert!(
        stderr.contains("chatd: persist layer: cannot use SQLite file")
            && stderr.contains(&format!(
                "the database schema is at version 999, but this chatd knows versions up to {known}"
            )),
        "{stderr}"
    );
}

#[tokio::test]
async fn starting_twice_changes_no_schema() {
    let path = data_dir().join("chatd.db");
    let version = || {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.query_row("SELECT COUNT(*), MAX(version) FROM chatd_schema", [], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })
        .unwrap()
    };
    drop(scenarios::open_store(&sqlite(&path, Durability::Async)).await);
    let first = version();
    drop(scenarios::open_store(&sqlite(&path, Durability::Async)).await);
    assert_eq!(version(), first);
    let migrations = chatd::backends::migrate::SQLITE;
    let known = (migrations.len() as i64, migrations.last().unwrap().version);
    assert_eq!(first, known, "every migration once");
}
