//! Issue 12, problem 1: a room that is busy on instance `a` and opened for the first time on
//! instance `b` must reach `b`'s readers whole. The ring on `b` is warmed from the store and the
//! bus's floor read afterwards; a message numbered before that floor but not yet stored or
//! published must still reach `b`, not be counted as delivered.
//!
//! And the other side of that opening: `b` listens to the bus before it reads the store, so a
//! room's first messages can reach `b` both ways. Each must be shown once (under load the busy
//! rooms above are often that young when `b` opens them; the last test makes it the rule).

use chatd::pipeline::config::Durability;
use tokio_util::sync::CancellationToken;

use super::{assert_none, http_senders, pause, pipeline, repetitions, stop_all};
use crate::support::check::against_store;
use crate::support::cluster::Cluster;
use crate::support::readers::{SseReader, record_stream};
use crate::support::record::{Protocol, Recorder, seqs};
use crate::support::senders::{Endpoint, http_session, post_message};

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

/// Rooms opened on `b` as their first messages are sent on `a`, a few at a time.
const YOUNG_ROOMS: usize = 60;
const AT_ONCE: usize = 6;
/// Messages sent into each, one after the other.
const FIRST: usize = 5;

/// Sends the first messages of `room` on `a` while `b` opens its stream, and reads that stream
/// until the last one has had time to arrive.
async fn first_messages_while_b_opens(
    client: reqwest::Client,
    endpoints: Vec<Endpoint>,
    room: String,
    log: Recorder,
) {
    let (a, b) = (&endpoints[0], &endpoints[1]);
    let one = std::slice::from_ref(&room);
    let sender = http_session(&client, a, &format!("s-{room}"), one).await;
    let reader = http_session(&client, b, &format!("r-{room}"), &[]).await;
    let (Some(sender), Some(reader)) = (sender, reader) else {
        return; // no view: counted as missing
    };
    let view = log.view(&format!("b-{room}"), &room, Protocol::Sse);
    let stop = CancellationToken::new();
    let send = async {
        for n in 1..=FIRST {
            post_message(&client, a, &sender, &room, &format!("{room}-{n}")).await;
        }
        pause(1500).await; // a hop through Valkey, or a poll of the store
        stop.cancel();
    };
    let read = async {
        let url = format!("{}/messages/{room}", b.base());
        if let Ok(response) = client.get(url).bearer_auth(&reader).send().await {
            record_stream(response, &view, None, &b.name, &stop).await;
        }
    };
    tokio::join!(send, read);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rooms_first_messages_are_shown_once_on_an_instance_opening_it_meanwhile() {
    let pipeline = pipeline("phase3-valkey.toml", Durability::Sync);
    let Some(cluster) = Cluster::start(&pipeline, &["a", "b"]).await else {
        return;
    };
    let (client, log) = (reqwest::Client::new(), Recorder::default());
    let rooms: Vec<String> = (1..=YOUNG_ROOMS).map(|r| format!("young{r}")).collect();
    for batch in rooms.chunks(AT_ONCE) {
        let streams: Vec<_> = batch
            .iter()
            .map(|room| {
                let run = first_messages_while_b_opens(
                    client.clone(),
                    cluster.endpoints(),
                    room.clone(),
                    log.clone(),
                );
                tokio::spawn(run)
            })
            .collect();
        for stream in streams {
            let _ = stream.await;
        }
    }
    let stored = cluster.stored(&rooms).await;
    let (_, views) = log.snapshot();
    let mut problems = Vec::new();
    if views.len() < YOUNG_ROOMS {
        problems.push(format!("{} of {YOUNG_ROOMS} streams opened", views.len()));
    }
    for view in &views {
        let shown = seqs(view);
        if shown.is_empty() {
            problems.push(format!("{} on b: nothing shown", view.room));
        }
        for problem in against_store(&shown, &stored[&view.room]) {
            problems.push(format!("{} on b, shown {shown:?}: {problem}", view.room));
        }
    }
    cluster.stop_all().await;
    assert_none(&problems, "young rooms' streams on b against the store");
}
