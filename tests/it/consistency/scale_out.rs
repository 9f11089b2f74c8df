//! Issue 12, problem 1: a room that is busy on instance `a` and opened for the first time on
//! instance `b` must reach `b`'s readers whole. The ring on `b` is warmed from the store and the
//! bus's floor read afterwards; a message numbered before that floor but not yet stored or
//! published must still reach `b`, not be counted as delivered.
//!
//! And the other side of that opening: `b` listens to the bus before it reads the store, so a
//! room's first messages can reach `b` both ways. Each must be shown once (under load the busy
//! rooms above are often that young when `b` opens them; a test makes it the rule). And when
//! `b`'s read of the store hangs, more can arrive that way than a room holds out of order: a
//! test holds that `b` gives up on none of it. And a join given up on while that read hangs
//! must not leave `b` subscribed to a room it no longer has: the last test.

use chatd::pipeline::config::Durability;
use tokio_util::sync::CancellationToken;

use super::{assert_none, http_senders, pause, pipeline, repetitions, stop_all};
use crate::support::PATIENCE;
use crate::support::check::against_store;
use crate::support::cluster::{Cluster, lock, with_layer_before};
use crate::support::http::metric;
use crate::support::proxy::Mode;
use crate::support::readers::{SseReader, record_stream};
use crate::support::record::{Outcome, Protocol, Recorder, seqs};
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
        let (_, views) = log.snapshot();
        let acked = acked(&log);
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

/// Messages that reach `b` through pub/sub while its first read of a room's store hangs: more
/// than a room holds out of order (`MAX_PENDING`, 1,024).
const WHILE_OPENING: u64 = 1_200;

/// `b` subscribes to a room, then its read of where the store stands hangs (its link to
/// PostgreSQL is blackholed; the read fails after the pool's 3 s, and is tried again), while `a`
/// keeps the room busy.
/// Until the read answers, `b` does not know where the room's sequence begins, so what pub/sub
/// brings meanwhile is neither late nor missing: `b` must give up on no seq (it gave up on every
/// seq below what it held once it held 1,025, counting messages the store has as lost), and once
/// the read answers, a stream on `b` must show the room whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_whose_first_store_read_hangs_while_pubsub_brings_more_than_it_holds_loses_nothing()
{
    let pipeline = pipeline("phase3-valkey.toml", Durability::Sync);
    let Some(cluster) = Cluster::start(&pipeline, &["a", "b"]).await else {
        return;
    };
    let endpoints = cluster.endpoints();
    let (a, b) = (&endpoints[0], &endpoints[1]);
    let (client, room) = (reqwest::Client::new(), "slowopen".to_string());
    // The reader signs in while `b` still reaches PostgreSQL: a connect claims its nick there.
    let reader = http_session(&client, b, "reader", &[])
        .await
        .expect("a session on b");
    let (log, sending) = (Recorder::default(), CancellationToken::new());
    let senders = http_senders(
        &log,
        &sending,
        a,
        "s",
        std::slice::from_ref(&room),
        4,
        150.0,
    );
    while acked(&log) < 20 {
        pause(50).await; // seqs below what `b` will hold
    }
    let received = metric(b.http, "chatd_bus_receives_total").await;
    let to_pg = cluster.nodes[1]
        .pg_proxy
        .as_ref()
        .expect("b's link to PostgreSQL");
    to_pg.set(Mode::Blackhole);
    let url = format!("{}/messages/{room}", b.base());
    // Each try subscribes, then fails after the pool's 3 s and unsubscribes; the room holds
    // what every try received, and never starts while the link is silent.
    let open = || tokio::spawn(client.get(&url).bearer_auth(&reader).send());
    let mut trying = open();
    let patience = std::time::Instant::now() + 6 * PATIENCE;
    loop {
        let arrived = metric(b.http, "chatd_bus_receives_total").await - received;
        if arrived >= WHILE_OPENING {
            break;
        }
        let waited = std::time::Instant::now() > patience;
        assert!(
            !waited,
            "b got {arrived} of {WHILE_OPENING} messages while opening"
        );
        if trying.is_finished() {
            trying = open();
        }
        pause(100).await;
    }
    stop_all(&sending, senders).await;
    to_pg.heal();
    let _ = trying.await; // refused after the pool's timeout, or answered once healed
    let given_up = metric(b.http, "chatd_gaps_skipped_total").await;

    // The room on `b`, from well inside what arrived while it opened to the end.
    let last = (log.snapshot().0.iter())
        .filter_map(|sent| sent.outcome.seq())
        .max()
        .expect("acknowledged messages");
    let after = last.saturating_sub(900);
    let view = log.view("b-reader", &room, Protocol::Sse);
    let stop = CancellationToken::new();
    let response = client
        .get(&url)
        .bearer_auth(&reader)
        .header("last-event-id", after.to_string())
        .send()
        .await
        .expect("the stream on b");
    assert_eq!(
        response.status().as_u16(),
        200,
        "the room opens once the store answers"
    );
    let reading = tokio::spawn({
        let (view, stop, name) = (view.clone(), stop.clone(), b.name.clone());
        async move { record_stream(response, &view, Some(after), &name, &stop).await }
    });
    pause(3000).await; // the replay, and a poll for anything the room let go
    stop.cancel();
    let _ = reading.await;
    let stored = cluster.stored(std::slice::from_ref(&room)).await;
    let (_, views) = log.snapshot();
    cluster.stop_all().await;

    let mut problems = Vec::new();
    if given_up > 0 {
        problems.push(format!(
            "b gave up on {given_up} seqs while the room opened"
        ));
    }
    let shown = seqs(&views[0]);
    if shown.last() != Some(&last) {
        let end = shown.last();
        problems.push(format!("the stream on b ends at {end:?}, not at {last}"));
    }
    for problem in against_store(&shown, &stored[&room]) {
        problems.push(format!("the stream on b: {problem}"));
    }
    assert_none(&problems, "a room opened on b while its store read hung");
}

/// How many messages the senders of `log` have had acknowledged so far.
fn acked(log: &Recorder) -> usize {
    let (sent, _) = log.snapshot();
    (sent.iter())
        .filter(|sent| matches!(sent.outcome, Outcome::Acked(_)))
        .count()
}

/// Rooms whose joins the timeout layer abandons while they open, in the test below.
const ABANDONED: usize = 4;

/// A join abandoned while its room opens (here by a `timeout` layer above `route`; a client that
/// goes away does the same) must not leave the bus listening to a room this instance no longer
/// has. An open subscribes to the room's Valkey channel before it reads the store, so when `b`'s
/// read hangs and the join is dropped, the subscription is already made; nothing may keep it
/// once the room is gone from memory, or every room name tried that way would stay subscribed
/// (and re-subscribed after each reconnection) for as long as `b` runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_abandoned_while_its_room_opens_leaves_no_subscription_behind() {
    let text = pipeline("phase3-valkey.toml", Durability::Sync).replace(
        "kind = \"route\"",
        "kind = \"route\"\nroom_idle_secs = 5\ndirectory = \"local\"",
    );
    let text = with_layer_before(&text, "route", "kind = \"timeout\"\nms = 500");
    let Some(cluster) = Cluster::start(&text, &["b"]).await else {
        return;
    };
    let b = &cluster.endpoints()[0];
    let client = reqwest::Client::new();
    let reader = http_session(&client, b, "reader", &[])
        .await
        .expect("a session on b");
    let valkey = cluster.valkey.clone().expect("Valkey");
    let channels = move |pattern: &str| lock(&valkey).command(&["PUBSUB", "CHANNELS", pattern]);
    let to_pg = cluster.nodes[0]
        .pg_proxy
        .as_ref()
        .expect("b's link to PostgreSQL");
    to_pg.set(Mode::Blackhole);
    let mut subscribed = Vec::new();
    for i in 0..ABANDONED {
        let url = format!("{}/messages/abandoned{i}", b.base());
        let answer = client.get(&url).bearer_auth(&reader).send().await;
        let status = answer.map(|response| response.status().as_u16());
        assert!(
            !matches!(status, Ok(200)),
            "the join of abandoned{i} is abandoned, not answered"
        );
        // Looked at at once, seconds before the room can be idle long enough to be evicted.
        subscribed.push(channels(&format!("chatd:room:abandoned{i}")));
    }
    to_pg.heal();
    // Without these the test would prove nothing: each abandoned open did subscribe.
    assert_eq!(
        subscribed,
        vec!["*1"; ABANDONED],
        "each abandoned open subscribed before its store read hung"
    );
    // Nobody is in the rooms: once idle for `room_idle_secs`, they are evicted, and the bus
    // listens to none of them.
    let patience = std::time::Instant::now() + 3 * PATIENCE;
    let mut left = channels("chatd:room:abandoned*");
    while left != "*0" && std::time::Instant::now() < patience {
        pause(250).await;
        left = channels("chatd:room:abandoned*");
    }
    // b's own count of the rooms its bus listens to says the same.
    let bus_rooms_left = metric(b.http, "chatd_bus_rooms").await;
    // And the name opens again as usual afterwards.
    let url = format!("{}/messages/abandoned0", b.base());
    let again = client.get(&url).bearer_auth(&reader).send().await;
    let reopened = again.map(|response| response.status().as_u16());
    let subscribed_again = channels("chatd:room:abandoned0");
    let bus_rooms_again = metric(b.http, "chatd_bus_rooms").await;
    cluster.stop_all().await;
    assert_eq!(
        left, "*0",
        "b still listens to rooms whose joins were abandoned while they opened"
    );
    assert_eq!(
        bus_rooms_left, 0,
        "chatd_bus_rooms once every room has gone"
    );
    assert!(matches!(reopened, Ok(200)), "reopened: {reopened:?}");
    assert_eq!(
        subscribed_again, "*1",
        "the room opened again subscribes again"
    );
    assert_eq!(
        bus_rooms_again, 1,
        "chatd_bus_rooms with the room open again"
    );
}
