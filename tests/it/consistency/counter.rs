//! Issue 12, problem 4, third part: Valkey's per-room counter lost (restarted empty) or rolled
//! back (restarted from an older snapshot) while a numbered message is not yet stored. The
//! sequencer then continues from the store's highest seq or the old counter, and may hand out a
//! seq already given; the insert is `ON CONFLICT DO NOTHING`, so the second message would be
//! acknowledged and silently not stored. Here instance `a` reaches PostgreSQL through a slow
//! link, so that its newest numbered messages wait to be stored when Valkey comes back and `b`,
//! quiet until then, numbers new ones.

use std::time::Duration;

use chatd::pipeline::config::Durability;
use tokio_util::sync::CancellationToken;

use super::{assert_none, http_senders, pause, pipeline, stop_all};
use crate::support::check::check;
use crate::support::cluster::{Cluster, with};
use crate::support::proxy::Mode;
use crate::support::record::{Outcome, Recorder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_or_older_valkey_counter_never_gives_a_seq_twice() {
    let text = pipeline("phase3-valkey.toml", Durability::Sync);
    let Some(cluster) = Cluster::start(&text, &["a", "b"]).await else {
        return;
    };
    let valkey = cluster.valkey.clone().expect("Valkey");
    let endpoints = cluster.endpoints();
    let slow_link = cluster.nodes[0]
        .pg_proxy
        .as_ref()
        .expect("a's link to PostgreSQL");
    let mut problems = Vec::new();
    for from_snapshot in [false, true] {
        let room = if from_snapshot { "older" } else { "lost" }.to_string();
        let rooms = [room.clone()];
        let (log, sending) = (Recorder::default(), CancellationToken::new());
        let mut senders = http_senders(
            &log,
            &sending,
            &endpoints[0],
            &format!("{room}-a"),
            &rooms,
            2,
            20.0,
        );
        pause(1000).await;
        let snapshot = with(&valkey, |v| v.snapshot()).await;
        pause(1000).await;
        slow_link.set(Mode::Latency {
            up: Duration::from_millis(800),
            down: Duration::from_millis(800),
        });
        pause(500).await;
        match from_snapshot {
            true => with(&valkey, move |v| v.restart_from(&snapshot)).await,
            false => with(&valkey, |v| v.restart()).await,
        }
        // b speaks up now, while a's newest numbered messages are still on their way to the store.
        senders.extend(http_senders(
            &log,
            &sending,
            &endpoints[1],
            &format!("{room}-b"),
            &rooms,
            2,
            20.0,
        ));
        pause(4000).await;
        slow_link.heal();
        pause(1000).await;
        stop_all(&sending, senders).await;
        pause(1000).await;
        let (sent, views) = log.snapshot();
        let stored = cluster.stored(&rooms).await;
        let findings = check(&sent, &views, &stored, true, 10);
        let how = if from_snapshot {
            "restarted from an older snapshot"
        } else {
            "restarted empty"
        };
        let refused = sent
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::Refused(_)))
            .count();
        eprintln!(
            "Valkey {how}: {} messages acknowledged, {refused} refused",
            findings.acked
        );
        problems.extend(
            findings
                .anomalies
                .iter()
                .map(|a| format!("Valkey {how}: {a}")),
        );
    }
    cluster.stop_all().await;
    assert_none(
        &problems,
        "seqs after Valkey lost or rolled back its counters",
    );
}
