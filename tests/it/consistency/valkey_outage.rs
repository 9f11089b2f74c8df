//! Issue 12, problem 3: phase 3 while Valkey is down. Chat must go on on every instance (numbering
//! and cross-instance delivery falling back to PostgreSQL, as in phase 2), nothing lost,
//! duplicated or reordered; `/readyz` and `/metrics` must say that the bus is degraded, and
//! healthy again once Valkey is back.

use std::time::{Duration, Instant};

use chatd::pipeline::config::Durability;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{assert_none, http_senders, pause, pipeline, stop_all};
use crate::support::check::check;
use crate::support::cluster::{Cluster, with};
use crate::support::readers::SseReader;
use crate::support::record::{Outcome, Recorder};
use crate::support::senders::Endpoint;

/// `/readyz` as (status, body) and whether `/metrics` says `chatd_bus_degraded 1`.
async fn health(endpoint: &Endpoint) -> (u16, Value, Option<bool>) {
    let client = reqwest::Client::new();
    let (status, body) = match client
        .get(format!("{}/readyz", endpoint.base()))
        .send()
        .await
    {
        Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
        Err(_) => (0, Value::Null),
    };
    let metrics = match client
        .get(format!("{}/metrics", endpoint.base()))
        .send()
        .await
    {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    let degraded = metrics
        .lines()
        .find_map(|l| l.strip_prefix("chatd_bus_degraded "))
        .map(|v| v.trim() == "1");
    (status, body, degraded)
}

/// What is wrong with `endpoint`'s health while Valkey is down (`down`) or back.
async fn health_problems(endpoint: &Endpoint, down: bool) -> Vec<String> {
    let (status, body, degraded) = health(endpoint).await;
    let name = &endpoint.name;
    let mut problems = Vec::new();
    let (want_status, want_bus, want_metric) = match down {
        true => ("degraded", "degraded", Some(true)),
        false => ("ok", "ok", Some(false)),
    };
    let bus = body["checks"]["bus"].as_str().unwrap_or_default();
    if status != 200 || body["status"] != want_status || !bus.starts_with(want_bus) {
        problems.push(format!("{name}: /readyz answered {status} {body}, wanted 200 with status {want_status:?} and a bus check starting with {want_bus:?}"));
    }
    if degraded != want_metric {
        problems.push(format!("{name}: /metrics has chatd_bus_degraded {degraded:?}, wanted {want_metric:?} (1 = degraded)"));
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valkey_outage_does_not_stop_chat() {
    let text = pipeline("phase3-valkey.toml", Durability::Sync);
    let Some(cluster) = Cluster::start(&text, &["a", "b"]).await else {
        return;
    };
    let valkey = cluster.valkey.clone().expect("phase 3 has Valkey");
    let endpoints = cluster.endpoints();
    let rooms = vec!["outage".to_string()];
    let (log, sending, reading) = (
        Recorder::default(),
        CancellationToken::new(),
        CancellationToken::new(),
    );
    let mut readers = Vec::new();
    for home in 0..2 {
        let reader = SseReader {
            name: format!("reader-{}", endpoints[home].name),
            room: rooms[0].clone(),
            endpoints: endpoints.clone(),
            home,
            resume_every_ms: None,
            seed: 0,
        };
        readers.push(tokio::spawn(reader.run(log.clone(), reading.clone())));
    }
    pause(500).await;
    let mut senders = http_senders(&log, &sending, &endpoints[0], "on-a", &rooms, 1, 20.0);
    senders.extend(http_senders(
        &log,
        &sending,
        &endpoints[1],
        "on-b",
        &rooms,
        1,
        20.0,
    ));
    pause(1000).await;

    let mut problems = Vec::new();
    with(&valkey, |v| v.stop()).await;
    let down = log.snapshot().0.len();
    let went_down = Instant::now();
    pause(3000).await;
    for endpoint in &endpoints {
        problems.extend(health_problems(endpoint, true).await);
    }
    let up = log.snapshot().0.len();
    let outage_took = went_down.elapsed();
    with(&valkey, |v| v.restart()).await;
    // Healthy again within a generous bound (chatd reconnects every 5 s at most).
    let deadline = Instant::now() + Duration::from_secs(30);
    for endpoint in &endpoints {
        while !health_problems(endpoint, false).await.is_empty() && Instant::now() < deadline {
            pause(200).await;
        }
        problems.extend(health_problems(endpoint, false).await);
    }
    pause(1500).await;
    stop_all(&sending, senders).await;
    pause(2000).await;
    reading.cancel();
    for reader in readers {
        let _ = reader.await;
    }

    let (sent, views) = log.snapshot();
    let outage = &sent[down..up];
    let refused: Vec<String> = outage
        .iter()
        .filter(|s| !matches!(s.outcome, Outcome::Acked(_)))
        .map(|s| format!("{} on {}: {:?}", s.text, s.instance, s.outcome))
        .collect();
    eprintln!(
        "{} messages sent in the {:.1} s outage, {} not acknowledged",
        outage.len(),
        outage_took.as_secs_f64(),
        refused.len()
    );
    if !refused.is_empty() {
        problems.push(format!(
            "{} of {} messages sent during the outage were not acknowledged, e.g. {}",
            refused.len(),
            outage.len(),
            refused
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    let stored = cluster.stored(&rooms).await;
    let findings = check(&sent, &views, &stored, true, 10);
    problems.extend(findings.anomalies.iter().map(|a| a.to_string()));
    // Every message acknowledged during the outage reached both readers.
    for view in &views {
        let shown: std::collections::HashSet<&str> = view
            .items
            .iter()
            .filter_map(|i| match i {
                crate::support::record::Seen::Message { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        let missing = outage
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::Acked(_)) && !shown.contains(s.text.as_str()))
            .count();
        if missing > 0 {
            problems.push(format!(
                "{}: {missing} message(s) acknowledged during the outage never shown",
                view.reader
            ));
        }
    }
    cluster.stop_all().await;
    assert_none(&problems, "chat through a Valkey outage");
}
