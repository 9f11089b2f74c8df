//! After the faults, before the clients go: the shared directory lists what each instance holds.
//!
//! `/users` on any instance reads the shared presence directory (phases 2 and 3), so it is exact
//! only if every join and every leave reached it, including those made while an instance could
//! not reach PostgreSQL (a pause, a restart, a cut link). The message checks cannot see a nick
//! or a membership the directory missed or kept. A leave written while the database was away
//! stayed in the directory until its session quit, and a join was missing as long, with every
//! message check green.
//!
//! Once the senders have stopped and the readers have been quiet, and while they are all still
//! connected, each instance's `chatd_sessions_open` must equal the number of live nicks the
//! directory lists for it, and its `chatd_memberships` (the rooms its sessions are in, summed)
//! the number of live memberships, within [`PATIENCE`]: a heartbeat of the instance after the
//! last fault, and a killed run's rows expiring, with room to spare. An instance whose counts
//! never agree is one anomaly.

use std::time::{Duration, Instant};

use chatd::pipeline::config::RouteConfig;

use super::leftovers::scrape;
use crate::support::check::Anomaly;
use crate::support::cluster::{Cluster, lock};

/// How long the directory gets to agree with the instances: a killed run's rows expire one TTL
/// (15 s) and a heartbeat (5 s) after the kill, and a repair waits for a heartbeat.
const PATIENCE: Duration = Duration::from_secs(40);

/// The instances of `cluster` whose sessions or memberships the shared directory does not list
/// as they are, after waiting up to [`PATIENCE`] for it to catch up: one anomaly each.
pub async fn directory_disagrees(cluster: &Cluster) -> Vec<Anomaly> {
    let Some(pg) = &cluster.pg else {
        return Vec::new();
    };
    let url = lock(pg).url();
    let deadline = Instant::now() + PATIENCE;
    let mut anomalies = Vec::new();
    for node in &cluster.nodes {
        let name = &node.endpoint.name;
        let last = loop {
            let counts = counts(node.endpoint.http, &url, name).await;
            match counts {
                Ok((held, listed)) if held == listed => break None,
                _ if Instant::now() > deadline => break Some(counts),
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        };
        let what = match last {
            None => continue,
            Some(Ok((held, listed))) => format!(
                "it has {} sessions, in {} rooms in all, and the shared directory lists {} nicks \
                 and {} memberships of it",
                held.0, held.1, listed.0, listed.1
            ),
            Some(Err(e)) => format!("cannot compare its presence with the directory: {e}"),
        };
        anomalies.push(Anomaly {
            room: "-".into(),
            seq: None,
            who: name.clone(),
            what,
        });
    }
    anomalies
}

/// (sessions, memberships): what the instance holds, and what the directory lists for it.
type Counts = ((u64, u64), (u64, u64));

/// The instance's `chatd_sessions_open` (every protocol) and `chatd_memberships`, and the live
/// nicks and memberships the directory lists for it; the gauges are read on both sides of the
/// query and must not have moved (clients come and go).
async fn counts(http: std::net::SocketAddr, url: &str, name: &str) -> Result<Counts, String> {
    let gauges = || async {
        let metrics = scrape(http).await.map_err(|e| e.to_string())?;
        let sum = |gauge: &str| {
            let series = metrics
                .iter()
                .filter(|(series, _)| series.split('{').next() == Some(gauge));
            series.map(|(_, value)| *value as u64).sum::<u64>()
        };
        match metrics.contains_key("chatd_memberships") {
            true => Ok((sum("chatd_sessions_open"), sum("chatd_memberships"))),
            false => Err("no chatd_memberships in /metrics".to_string()),
        }
    };
    let before = gauges().await?;
    let listed = listed(url, name).await.map_err(|e| e.to_string())?;
    let after = gauges().await?;
    if before != after {
        return Err(format!(
            "sessions and memberships moved from {before:?} to {after:?}"
        ));
    }
    Ok((before, listed))
}

/// The nicks of `instance`, and their memberships, that `/users` would show: rows younger than
/// the TTL.
async fn listed(url: &str, instance: &str) -> Result<(u64, u64), tokio_postgres::Error> {
    // The shipped pipelines leave `presence_ttl_secs` at its default, and so does the checker.
    let ttl = RouteConfig::default().presence_ttl_secs as f64;
    let (db, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let row = db
        .query_one(
            "SELECT (SELECT count(*) FROM presence_nicks n WHERE n.instance = $1 AND LIVE), \
                    (SELECT count(*) FROM presence_members m \
                     JOIN presence_nicks n ON n.nick_key = m.nick_key \
                     WHERE n.instance = $1 AND LIVE)"
                .replace("LIVE", "n.seen_at >= now() - $2 * interval '1 second'")
                .as_str(),
            &[&instance, &ttl],
        )
        .await?;
    let count = |i| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
    Ok((count(0), count(1)))
}
