//! What the timeline shows besides messages: a separator per day, and the stream's rarer events
//! (`gap`, `reset`), sent on cue by a scripted server (`support/scripted.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;

use super::SCENARIO_LIMIT;
use super::browser::Driver;
use super::scripted::{ScriptedServer, frame, message};
use super::support;
use chatd::backends::Store;
use chatd::backends::sqlite::SqliteStore;
use chatd::core::{ChatMessage, Nick, Origin, RoomName};
use chatd::pipeline::config::{LayerConfig, PersistConfig};

/// Old history is split by day: a separator before the first message of each calendar day,
/// "Yesterday" and "Today" by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_history_is_separated_by_date() {
    let driver = Driver::start();
    let config = support::default_config();
    let path = config
        .layers
        .iter()
        .find_map(|layer| match layer {
            LayerConfig::Persist(PersistConfig::Sqlite { path, .. }) => Some(path.clone()),
            _ => None,
        })
        .expect("the default pipeline stores in SQLite");
    // Two messages stored on earlier days, as a previous run of chatd would have left them.
    let day_ms = 24 * 60 * 60 * 1000;
    let now_ms = chatd::core::message::now_ms();
    let store = SqliteStore::open(std::path::Path::new(&path), false)
        .await
        .expect("open the store");
    let old = |seq, text: &str, ts_ms| {
        Arc::new(ChatMessage::at(
            RoomName::parse("history").unwrap(),
            seq,
            Nick::parse("carol").unwrap(),
            text.to_string(),
            Origin::Remote(Arc::from("earlier")),
            ts_ms,
        ))
    };
    let batch = [
        old(1, "three days ago", now_ms - 3 * day_ms),
        old(2, "a day ago", now_ms - day_ms),
    ]
    .map(chatd::backends::Row::Message);
    store.append(&batch).await.expect("store the old messages");
    drop(store);

    let server = support::start_with(config).await;
    let base = format!("http://{}/", server.http_addr());
    tokio::time::timeout(SCENARIO_LIMIT, async {
        let alice = driver.open().await;
        alice.sign_in(&base, "alice").await;
        alice.join("history").await;
        alice.wait_for_message("carol", "a day ago").await;
        alice.say("today").await;
        alice.wait_for_message("alice", "today").await;
        let days = alice.day_separators().await;
        assert_eq!(days.len(), 3, "{days:?}");
        assert_eq!(days[1..], ["Yesterday", "Today"]);
        assert!(
            days[0].split(", ").count() == 3,
            "the full date, e.g. \"Monday, March 2, 2026\": {days:?}"
        );
        alice.close().await;
    })
    .await
    .unwrap_or_else(|_| panic!("the history scenario took over {SCENARIO_LIMIT:?}"));
}

/// `event: gap` (messages that will never come on this stream) is shown as a quiet notice and
/// skipped; `event: reset` (the server lost the numbering) empties the room's timeline, so that
/// the history sent afresh after it, with seqs the page has seen before, is shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gap_and_reset_events_are_shown() {
    let ts = "2026-01-01T12:00:00Z";
    let mut streams = HashMap::new();
    streams.insert(
        "gappy".to_string(),
        [
            message("gappy", 1, "bob", "one", ts),
            message("gappy", 2, "bob", "two", ts),
            frame("gap", None, json!({ "room": "gappy", "from": 3, "to": 4 })),
            message("gappy", 5, "bob", "five", ts),
        ]
        .concat(),
    );
    streams.insert(
        "lost".to_string(),
        [
            message("lost", 1, "bob", "old one", ts),
            message("lost", 2, "bob", "old two", ts),
            frame("reset", None, json!({ "room": "lost", "last_seq": 2 })),
            message("lost", 1, "bob", "new one", ts),
            message("lost", 2, "bob", "new two", ts),
        ]
        .concat(),
    );
    let server = ScriptedServer::start("alice", streams).await;
    let driver = Driver::start();
    let base = format!("http://{}/", server.addr);
    tokio::time::timeout(SCENARIO_LIMIT, async {
        let alice = driver.open().await;
        alice.sign_in(&base, "alice").await;
        alice.join("gappy").await;
        alice.wait_for_message("bob", "five").await;
        assert_eq!(
            alice.messages().await,
            ["bob: one", "bob: two", "bob: five"]
        );
        alice
            .wait_for_text(
                "[data-testid=notice] .note-text",
                "some messages could not be delivered (#3 to #4)",
            )
            .await;

        alice.join("lost").await;
        alice.wait_for_message("bob", "new two").await;
        assert_eq!(alice.messages().await, ["bob: new one", "bob: new two"]);
        alice.close().await;
    })
    .await
    .unwrap_or_else(|_| panic!("the scripted scenario took over {SCENARIO_LIMIT:?}"));
}
