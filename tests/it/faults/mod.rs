//! The fault suite: break what chatd depends on, on purpose, and check what survives.
//!
//! * `faults/postgres.rs`: PostgreSQL stopped and restarted under chat, with write-ahead
//!   (`durability = "sync"`) and with write-behind (`"async"`), and under phase 2 (polling).
//! * `faults/valkey.rs`: Valkey, then PostgreSQL, stopped and restarted under chat between two
//!   instances (phase 3).
//! * `faults/process.rs`: the real binary killed with SIGKILL under load (phase 3), and stopped
//!   with SIGTERM (the notice, the flush of the write-behind queue, the exit).
//! * `faults/disk.rs`: one instance's disk full (its SQLite file and its log file), with
//!   write-ahead and with write-behind, and its log stream closed under it.
//! * `faults/read_only.rs`: PostgreSQL set read-only for a while, with write-ahead and with
//!   write-behind.
//!
//! `faults/crowd.rs` is the room the last two talk in: several senders at once and a reader.
//!
//! Every test starts its own throwaway servers (`support/`); set `CHATD_SKIP_POSTGRES=1`
//! or `CHATD_SKIP_VALKEY=1` to skip them on a machine without those servers. Intervals, TTLs and
//! timeouts are short so that each test stays quick; no test asserts how fast anything happens
//! (timeouts are hang guards). `docs/RELIABILITY.md` turns these tests into a guarantee table.
//! This file holds what they share.

mod crowd;
mod disk;
mod postgres;
mod process;
mod read_only;
mod valkey;

use crate::support;
use std::time::{Duration, Instant};

use crate::support::{Client, PATIENCE, scenarios};
use chatd::pipeline::config::{Durability, PersistConfig};

/// What a write-ahead sender is told when the database does not take its message in time.
const REFUSED: &str = "! could not store your message (the database is not answering), try again";

/// A PostgreSQL store at `url` with the given mode, queue and write-ahead timeout.
fn pg_store(
    url: &str,
    durability: Durability,
    queue: usize,
    sync_timeout_ms: u64,
) -> PersistConfig {
    PersistConfig::Postgres {
        url: url.to_string(),
        pool_size: 2,
        durability,
        queue,
        batch: 500,
        sync_timeout_ms,
    }
}

/// The texts of chat lines (`[room] nick: text` -> `text`).
fn texts(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            l.split_once(": ")
                .map_or(l.as_str(), |(_, t)| t)
                .to_string()
        })
        .collect()
}

/// The texts stored for `room`, in seq order.
async fn stored_texts(store: &PersistConfig, room: &str) -> Vec<String> {
    let db = scenarios::open_store(store).await;
    let stored = scenarios::stored(&*db, room).await;
    stored.iter().map(|m| m.text.clone()).collect()
}

/// The next chat line (`[room] ...`) `client` gets, skipping notices.
async fn next_chat(client: &mut Client) -> String {
    loop {
        let line = client.line().await;
        if line.starts_with('[') {
            return line;
        }
        assert!(line.starts_with("* "), "unexpected line {line:?}");
    }
}

/// Says `text` over TCP until it is accepted; each refusal must say "try again". Returns how
/// many times it was refused. Proof of acceptance is that no `!` line precedes the `/rooms`
/// answer (TCP handles one line after the other, and a sender does not see its own message).
async fn say_until_accepted(client: &mut Client, text: &str) -> usize {
    let deadline = Instant::now() + PATIENCE * 3;
    let mut refusals = 0;
    loop {
        client.send(text).await;
        client.send("/rooms").await;
        let mut refused = false;
        loop {
            let line = client.line().await;
            if line.starts_with("* rooms:") {
                break;
            }
            if line.starts_with("! ") {
                assert!(line.contains("try again"), "{line}");
                refused = true;
            }
        }
        if !refused {
            return refusals;
        }
        refusals += 1;
        assert!(Instant::now() < deadline, "{text:?} still refused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
