//! Issue 12, problem 1: a room that is busy on instance `a` and opened for the first time on
//! instance `b` must reach `b`'s readers whole. The ring on `b` is warmed from the store and the
//! bus's floor read afterwards; a message numbered before that floor but not yet stored or
//! published must still reach `b`, not be counted as delivered.

use chatd::pipeline::config::Durability;
use tokio_util::sync::CancellationToken;

use super::{assert_none, http_senders, pause, pipeline, repetitions, stop_all};
use crate::support::check::against_store;
use crate::support::cluster::Cluster;
use crate::support::readers::SseReader;
use crate::support::record::{Recorder, seqs};

/// Rooms kept busy at once, and messages per second in each.
const ROOMS: usize = 12;
const PER_ROOM: f64 = 250.0;

async fn busy_rooms_opened_on_b(pipeline_file: &str) {
    let Some(cluster) =
        Cluster::start(&pipeline(pipeline_file, Durability::Sync), &["a", "b"]).await
    else {
        return;
    };
    let endpoints = cluster.endpoints();
    let mut problems = Vec::new();
    for rep in 1..=repetitions(10) {
        let rooms: Vec<String> = (1..=ROOMS).map(|r| format!("busy{rep}x{r}")).collect();
        let (log, sending, reading) = (
            Recorder::default(),
            CancellationToken::new(),
            CancellationToken::new(),
        );
        let mut senders = Vec::new();
        for room in &rooms {
            let one = std::slice::from_ref(room);
            senders.extend(http_senders(
                &log,
                &sending,
                &endpoints[0],
                room,
                one,
                2,
                PER_ROOM / 2.0,
            ));
        }
        pause(1000).await;
        let mut readers = Vec::new();
        for room in &rooms {
            let reader = SseReader {
                name: format!("b-{room}"),
                room: room.clone(),
                endpoints: endpoints.clone(),
                home: 1,
                resume_every_ms: None,
                seed: 0,
            };
            readers.push(tokio::spawn(reader.run(log.clone(), reading.clone())));
            pause(50).await;
        }
        pause(1500).await;
        stop_all(&sending, senders).await;
        pause(2500).await; // b catches up: a poll interval, a gap wait
        reading.cancel();
        for reader in readers {
            let _ = reader.await;
        }
        let stored = cluster.stored(&rooms).await;
        let (sent, views) = log.snapshot();
        let acked = sent
            .iter()
            .filter(|s| matches!(s.outcome, crate::support::record::Outcome::Acked(_)))
            .count();
        eprintln!("repetition {rep}: {acked} messages acknowledged in {ROOMS} rooms");
        for view in &views {
            let shown = seqs(view);
            for problem in against_store(&shown, &stored[&view.room]) {
                problems.push(format!("repetition {rep}, {} on b: {problem}", view.room));
            }
        }
    }
    cluster.stop_all().await;
    assert_none(&problems, "b's streams against the store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_room_opened_on_a_second_instance_skips_nothing_valkey() {
    busy_rooms_opened_on_b("phase3-valkey.toml").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_room_opened_on_a_second_instance_skips_nothing_poll() {
    busy_rooms_opened_on_b("phase2-poll.toml").await;
}
