//! After the faults, before the clients go: the shared directory lists what each instance holds.
//!
//! `/users` on any instance reads the shared presence directory (phases 2 and 3), so it is exact
//! only if every join and every leave reached it, including those made while an instance could
//! not reach PostgreSQL (a pause, a restart, a cut link). The message checks cannot see a
//! membership the directory missed or kept. A leave written while the database was away stayed
//! in the directory until its session quit, and a join was missing as long, with every message
//! check green.
//!
//! Once the senders have stopped and the readers have been quiet, and while they are all still
//! connected, each instance's `chatd_memberships` (the rooms its sessions are in, summed) must
//! equal the number of live memberships the directory lists for it, within [`PATIENCE`]: a
//! heartbeat of the instance after the last fault, and a killed run's rows expiring, with room to
//! spare. An instance whose two counts never agree is one anomaly.

use std::time::{Duration, Instant};

use super::leftovers::scrape;
use crate::support::check::Anomaly;
use crate::support::cluster::{Cluster, lock};

/// How long the directory gets to agree with the instances: a killed run's rows expire one TTL
/// (15 s) and a heartbeat (5 s) after the kill, and a repair waits for a heartbeat.
const PATIENCE: Duration = Duration::from_secs(40);

/// The instances of `cluster` whose memberships the shared directory does not list as they
/// are, after waiting up to [`PATIENCE`] for it to catch up: one anomaly each.
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
                "its sessions are in {held} rooms in all, and the shared directory lists {listed} \
                 memberships of it"
            ),
            Some(Err(e)) => format!("cannot compare its memberships with the directory: {e}"),
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

/// The instance's `chatd_memberships`, and the live memberships the directory lists for it; the
/// gauge is read on both sides of the query and must not have moved (clients come and go).
async fn counts(http: std::net::SocketAddr, url: &str, name: &str) -> Result<(u64, u64), String> {
    let gauge = || async {
        let metrics = scrape(http).await.map_err(|e| e.to_string())?;
        let value = metrics.get("chatd_memberships").copied();
        value
            .map(|n| n as u64)
            .ok_or_else(|| "no chatd_memberships in /metrics".to_string())
    };
    let before = gauge().await?;
    let listed = listed(url, name).await.map_err(|e| e.to_string())?;
    let after = gauge().await?;
    if before != after {
        return Err(format!("chatd_memberships moved from {before} to {after}"));
    }
    Ok((before, listed))
}

/// The shipped pipelines' `presence_ttl_secs`, which the checker keeps.
const TTL_SECS: f64 = 15.0;

/// The memberships of `instance`'s nicks that `/users` would show: rows younger than the TTL.
async fn listed(url: &str, instance: &str) -> Result<u64, tokio_postgres::Error> {
    let (db, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let n: i64 = db
        .query_one(
            "SELECT count(*) FROM presence_members m \
             JOIN presence_nicks n ON n.nick_key = m.nick_key \
             WHERE n.instance = $1 AND n.seen_at >= now() - $2 * interval '1 second'",
            &[&instance, &TTL_SECS],
        )
        .await?
        .get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}
