//! Issue 12, problem 4, first two parts: what the ring and the store replay.
//!
//! * A resume beyond the ring merges the ring with the store. While the store is behind (a
//!   write-behind queue draining after an outage), the merge has a hole in the middle: the
//!   stream must deliver it or signal it (`gap`, `truncated`), never skip it silently.
//! * A request cancelled by a `timeout` layer: the ring must agree with the store afterwards. (It
//!   did not: the ring kept a message whose seq and write were taken back, so later joiners saw a
//!   message nobody was delivered and that is not stored. Now a message whose write-ahead is under
//!   way is finished by the persist layer: stored and delivered, or abandoned, whatever becomes of
//!   the request; its sender is told the outcome is open, HTTP 504.)

use std::time::{Duration, Instant};

use chatd::pipeline::config::Durability;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{assert_none, pause, pipeline};
use crate::support::check::check;
use crate::support::cluster::{Cluster, with, with_layer_before};
use crate::support::line_conn::{LineConn, chat_text};
use crate::support::proxy::Mode;
use crate::support::readers::record_stream;
use crate::support::record::{Outcome, Protocol, Recorder, Sent};
use crate::support::senders::{http_session, post_message};

/// How many messages of `room` the store holds now.
async fn stored_count(cluster: &Cluster, room: &str) -> usize {
    let rooms = [room.to_string()];
    cluster.stored(&rooms).await[room].len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_beyond_the_ring_never_skips_silently() {
    // Small batches through a slow link: the queue drains over seconds, not in one statement.
    let text =
        pipeline("phase1-postgres.toml", Durability::Async).replace("batch = 500", "batch = 20");
    let Some(cluster) = Cluster::start(&text, &["a"]).await else {
        return;
    };
    let (pg, endpoint) = (
        cluster.pg.clone().expect("PostgreSQL"),
        cluster.endpoints()[0].clone(),
    );
    let proxy = cluster.nodes[0]
        .pg_proxy
        .as_ref()
        .expect("a link to PostgreSQL");
    let (client, room) = (reqwest::Client::new(), "resume".to_string());
    let token = http_session(&client, &endpoint, "alice", std::slice::from_ref(&room))
        .await
        .expect("a session");
    let log = Recorder::default();
    let say = |n: usize| {
        let (client, endpoint, token, room, log) = (&client, &endpoint, &token, &room, &log);
        async move {
            let text = format!("m{n}");
            let outcome = post_message(client, endpoint, token, room, &text).await;
            let client = "alice".into();
            let instance = endpoint.name.clone();
            log.sent(Sent {
                room: room.clone(),
                text,
                client,
                instance,
                outcome,
            });
        }
    };
    for n in 1..=5 {
        say(n).await;
    }
    while stored_count(&cluster, &room).await < 5 {
        pause(50).await;
    }
    with(&pg, |pg| pg.stop()).await;
    for n in 6..=305 {
        say(n).await; // queued: write-behind acknowledges at once
    }
    proxy.set(Mode::Latency {
        up: Duration::from_millis(100),
        down: Duration::from_millis(100),
    });
    with(&pg, |pg| pg.restart()).await;
    // Resume while the queue drains: some of it stored, the rest not yet.
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored_count(&cluster, &room).await <= 25 && Instant::now() < deadline {
        pause(100).await;
    }
    let stored_at_resume = stored_count(&cluster, &room).await;
    let stop = CancellationToken::new();
    let resumer = http_session(&client, &endpoint, "bob", &[])
        .await
        .expect("a session");
    let response = client
        .get(format!("{}/messages/{room}", endpoint.base()))
        .bearer_auth(&resumer)
        .header("last-event-id", "5")
        .send()
        .await
        .expect("open the stream");
    let view = log.view("bob", &room, Protocol::Sse);
    let reading = tokio::spawn({
        let (view, stop, name) = (view.clone(), stop.clone(), endpoint.name.clone());
        async move { record_stream(response, &view, Some(5), &name, &stop).await }
    });
    proxy.heal();
    while stored_count(&cluster, &room).await < 305
        && Instant::now() < deadline + Duration::from_secs(30)
    {
        pause(100).await;
    }
    pause(1000).await;
    stop.cancel();
    let _ = reading.await;
    eprintln!("resumed after 5 with {stored_at_resume} of 305 messages stored");
    let (sent, views) = log.snapshot();
    let stored = cluster.stored(std::slice::from_ref(&room)).await;
    let findings = check(&sent, &views, &stored, false, 10);
    let problems: Vec<String> = findings.anomalies.iter().map(|a| a.to_string()).collect();
    cluster.stop_all().await;
    assert_none(&problems, "a resume after 5 while the store catches up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_request_leaves_nothing_in_the_ring() {
    let text = pipeline("phase1-postgres.toml", Durability::Sync);
    let text = with_layer_before(&text, "route", "kind = \"timeout\"\nms = 200");
    let Some(cluster) = Cluster::start(&text, &["a"]).await else {
        return;
    };
    let (pg, endpoint) = (
        cluster.pg.clone().expect("PostgreSQL"),
        cluster.endpoints()[0].clone(),
    );
    let (client, room) = (reqwest::Client::new(), "cancel".to_string());
    let rooms = [room.clone()];
    let mut tokens = Vec::new();
    for i in 0..5 {
        let token = http_session(&client, &endpoint, &format!("user{i}"), &rooms).await;
        tokens.push(token.expect("a session"));
    }
    for n in 1..=3 {
        let outcome = post_message(
            &client,
            &endpoint,
            &tokens[0],
            &room,
            &format!("before {n}"),
        )
        .await;
        assert_eq!(
            outcome,
            Outcome::Acked(Some(n)),
            "stored while PostgreSQL answers"
        );
    }
    // PostgreSQL frozen: five senders at once, each given up on by the timeout layer.
    with(&pg, |pg| pg.pause()).await;
    let mut timed_out = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let (client, endpoint, token, room) = (
            client.clone(),
            endpoint.clone(),
            token.clone(),
            room.clone(),
        );
        timed_out.push(tokio::spawn(async move {
            let text = format!("cancelled {i}");
            (
                post_message(&client, &endpoint, &token, &room, &text).await,
                text,
            )
        }));
    }
    let mut outcomes = Vec::new();
    for task in timed_out {
        outcomes.push(task.await.expect("the request task"));
    }
    with(&pg, |pg| pg.resume()).await;
    let mut problems = Vec::new();
    // A timeout is not a refusal: the server says the outcome is open (504), and a message
    // whose write was under way is still stored and delivered if the write succeeds.
    for (outcome, text) in &outcomes {
        if outcome != &Outcome::Unknown {
            problems.push(format!(
                "{text:?} was not answered as timed out (outcome open): {outcome:?}"
            ));
        }
    }
    pause(1000).await;
    let after = post_message(&client, &endpoint, &tokens[0], &room, "after").await;
    assert!(
        matches!(after, Outcome::Acked(_)),
        "chat goes on: {after:?}"
    );

    // A later joiner's history is the store's last 10.
    let (_conn, history) = LineConn::join(&endpoint, "joiner", &room)
        .await
        .expect("join");
    let history: Vec<String> = history.iter().filter_map(|l| chat_text(l, &room)).collect();
    let stored = cluster.stored(&rooms).await;
    let rows = &stored[&room];
    let last10: Vec<String> = rows[rows.len().saturating_sub(10)..]
        .iter()
        .map(|(_, t)| t.clone())
        .collect();
    eprintln!(
        "timeouts: {:?}",
        outcomes
            .iter()
            .map(|(o, _)| format!("{o:?}"))
            .collect::<Vec<_>>()
    );
    if history != last10 {
        problems.push(format!(
            "a joiner's history {history:?} is not the store's last 10 {last10:?}"
        ));
    }
    let seqs: Vec<u64> = rows.iter().map(|(s, _)| *s).collect();
    eprintln!("stored seqs: {seqs:?}; {}", json!(history));
    cluster.stop_all().await;
    assert_none(&problems, "after cancelled requests");
}
