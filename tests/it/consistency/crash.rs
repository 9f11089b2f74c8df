//! Issue 12, problem 2: with write-behind, `kill -9` loses the queued messages, which is the
//! documented price; but the seqs those messages were given were acknowledged (`202 {"seq"}`)
//! and shown, so they must never be given to new messages after the restart. A browser that
//! stayed open across the crash resumes with the last seq it saw and would drop a reused seq.

use std::collections::BTreeMap;
use std::time::Duration;

use chatd::pipeline::config::Durability;
use tokio_util::sync::CancellationToken;

use super::{assert_none, http_senders, pause, pipeline};
use crate::support::cluster::Cluster;
use crate::support::readers::record_stream;
use crate::support::record::{Outcome, Protocol, Recorder, Seen};
use crate::support::senders::{Endpoint, http_session};

/// Crashes per test: each in a room of its own.
const CRASHES: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_never_gives_a_seq_to_two_messages() {
    let text = pipeline("phase1-single.toml", Durability::Async);
    let cluster = Cluster::start(&text, &["a"])
        .await
        .expect("no service needed");
    let endpoints = cluster.endpoints();
    let node = cluster.nodes[0].clone();
    let mut problems = Vec::new();
    for crash in 1..=CRASHES {
        let room = format!("crash{crash}");
        let rooms = [room.clone()];
        let (log, sending) = (Recorder::default(), CancellationToken::new());
        // ~2,000 msg/s: eight senders at 250 each.
        let senders = http_senders(&log, &sending, &endpoints[0], &room, &rooms, 8, 250.0);
        pause(1500).await;
        node.kill9().await;
        node.start_retrying(Duration::from_secs(30))
            .await
            .expect("chatd restarts");
        // Every sender's first session was on the crashed process: `-g1` (see `Sent::client`).
        let before_crash = |s: &crate::support::record::Sent| s.client.ends_with("-g1");
        let last_acked = (log.snapshot().0.iter())
            .filter(|s| before_crash(s))
            .filter_map(|s| s.outcome.seq())
            .max()
            .expect("messages were acknowledged before the crash");

        // A page that stayed open resumes with the last seq it was told about.
        let reading = CancellationToken::new();
        let reader = tokio::spawn(resume_after(
            endpoints[0].clone(),
            format!("resumer{crash}"),
            room.clone(),
            last_acked,
            log.clone(),
            reading.clone(),
        ));
        pause(1500).await;
        super::stop_all(&sending, senders).await;
        pause(1500).await;
        reading.cancel();
        let _ = reader.await;

        let (sent, views) = log.snapshot();
        let mut texts_of_seq: BTreeMap<u64, Vec<&str>> = BTreeMap::new();
        for s in &sent {
            if let Outcome::Acked(Some(seq)) = s.outcome {
                texts_of_seq.entry(seq).or_default().push(&s.text);
            }
        }
        for (seq, texts) in texts_of_seq.iter().filter(|(_, t)| t.len() > 1) {
            problems.push(format!(
                "crash {crash}: seq {seq} acknowledged for {texts:?}"
            ));
        }
        let shown: Vec<&str> = views
            .iter()
            .filter(|v| v.reader == format!("resumer{crash}"))
            .flat_map(|v| v.items.iter())
            .filter_map(|item| match item {
                Seen::Message { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        let after_restart: Vec<&crate::support::record::Sent> =
            sent.iter().filter(|s| !before_crash(s)).collect();
        let missed: Vec<String> = after_restart
            .iter()
            .filter_map(|s| match s.outcome {
                Outcome::Acked(Some(seq)) if !shown.contains(&s.text.as_str()) => {
                    Some(format!("{seq} {:?}", s.text))
                }
                _ => None,
            })
            .collect();
        eprintln!(
            "crash {crash}: last seq acknowledged before the kill {last_acked}; {} acknowledged after the restart",
            after_restart
                .iter()
                .filter(|s| matches!(s.outcome, Outcome::Acked(_)))
                .count()
        );
        if !missed.is_empty() {
            problems.push(format!(
                "crash {crash}: the stream resumed after {last_acked} silently missed {} message(s) \
                 acknowledged after the restart, e.g. {}",
                missed.len(),
                missed.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    cluster.stop_all().await;
    assert_none(&problems, "seqs across a crash");
}

/// Opens `room`'s stream once with `Last-Event-ID: after` and records it until `stop`.
async fn resume_after(
    endpoint: Endpoint,
    name: String,
    room: String,
    after: u64,
    log: Recorder,
    stop: CancellationToken,
) {
    let client = reqwest::Client::new();
    let token = http_session(&client, &endpoint, &name, &[])
        .await
        .expect("a session on the restarted instance");
    let response = client
        .get(format!("{}/messages/{room}", endpoint.base()))
        .bearer_auth(&token)
        .header("last-event-id", after.to_string())
        .send()
        .await
        .expect("open the stream");
    assert_eq!(response.status().as_u16(), 200, "the resumed stream opens");
    let view = log.view(&name, &room, Protocol::Sse);
    record_stream(response, &view, Some(after), &endpoint.name, &stop).await;
}
