//! Named reproductions of the consistency problems of issue 12, each a test with the real binary,
//! real PostgreSQL and real Valkey, built from the checker's parts (`support/`: cluster,
//! senders, readers, record, check). Each states the promise it checks in its name, and fails
//! with every broken instance of it listed:
//!
//! * `scale_out.rs`: a busy room opened on a second instance skips nothing (Valkey, polling);
//! * `crash.rs`: a crash never gives a seq to two messages, and a resume after it skips nothing;
//! * `valkey_outage.rs`: a Valkey outage does not stop chat, and says it is degraded;
//! * `replay.rs`: a resume beyond the ring never skips silently; a cancelled request leaves
//!   nothing in the ring;
//! * `counter.rs`: a lost or older Valkey counter never gives a seq twice.
//!
//! No test asserts how fast anything happens: pauses only give the servers room to misbehave,
//! and every wait for an outcome is bounded.

mod counter;
mod crash;
mod replay;
mod scale_out;
mod valkey_outage;

use std::time::Duration;

use chatd::pipeline::config::Durability;
use tokio_util::sync::CancellationToken;

use crate::support::cluster::{shipped, unthrottled, with_durability};
use crate::support::record::Recorder;
use crate::support::senders::{Endpoint, Sender};

/// The shipped pipeline `name`, unthrottled, with `durability`.
fn pipeline(name: &str, durability: Durability) -> String {
    with_durability(&unthrottled(&shipped(name)), durability)
}

/// `count` HTTP senders on `target`, each at `per_second` into `rooms`, until `stop`.
fn http_senders(
    log: &Recorder,
    stop: &CancellationToken,
    target: &Endpoint,
    name: &str,
    rooms: &[String],
    count: usize,
    per_second: f64,
) -> Vec<tokio::task::JoinHandle<usize>> {
    (0..count)
        .map(|i| {
            let sender = Sender {
                name: format!("{name}{i}"),
                prefix: "t".into(),
                target: target.clone(),
                rooms: rooms.to_vec(),
                per_second,
                seed: i as u64,
            };
            tokio::spawn(sender.run_http(log.clone(), stop.clone()))
        })
        .collect()
}

/// Stops `senders` and waits for them.
async fn stop_all(stop: &CancellationToken, senders: Vec<tokio::task::JoinHandle<usize>>) {
    stop.cancel();
    for sender in senders {
        let _ = sender.await;
    }
}

/// Fails with every problem found, one per line.
fn assert_none(problems: &[String], what: &str) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// How many repetitions a repeated test makes: `CHATD_REPEAT`, default `default`.
fn repetitions(default: usize) -> usize {
    std::env::var("CHATD_REPEAT")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// A short pause that gives the servers room to act (never an assertion about time).
async fn pause(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}
