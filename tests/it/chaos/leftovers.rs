//! After the clients: once every client has gone, each instance lets go of all they held.
//!
//! The other checks judge messages (order, exactly once, nothing acknowledged lost). This one
//! judges memory: a session, a room, a queued byte or a subscription that outlives every client
//! is growth that clients drive and nobody bounds (ground rule 3), and the message checks cannot
//! see it. A join given up on while its room opened once left the bus subscribed to that room
//! for as long as the process ran, with every message check green.
//!
//! The checker's pipelines expire an idle HTTP session after [`SESSION_IDLE_SECS`] and evict a
//! room idle for [`ROOM_IDLE_SECS`] (the shipped files wait minutes). Once the readers have gone,
//! each instance's `/metrics` must come down to nothing within [`PATIENCE`]: no connection but
//! the scrape's own, no session, no room in memory, no room the bus listens to, no byte queued
//! for a client or for the store; Valkey must have no room channel subscribed, and PostgreSQL's
//! shared directory no nick and no membership. Each thing still held at the end is one anomaly.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::support::check::Anomaly;
use crate::support::cluster::{Cluster, lock, with};

/// How long an HTTP session with no stream and no request lives in the checker's pipelines.
pub const SESSION_IDLE_SECS: u64 = 4;
/// How long a room nobody is in stays in memory in the checker's pipelines.
pub const ROOM_IDLE_SECS: u64 = 3;
/// How long the instances get to let go, after the last client has gone: a session's idle time,
/// then a room's, each found by a sweep, with room to spare on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// What the instances of `cluster` still hold once its clients have gone, after waiting up to
/// [`PATIENCE`] for them to let go: one anomaly per thing held (see the module docs).
pub async fn leftovers(cluster: &Cluster) -> Vec<Anomaly> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let held = held(cluster).await;
        if held.is_empty() || Instant::now() > deadline {
            return held;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What the instances hold right now.
async fn held(cluster: &Cluster) -> Vec<Anomaly> {
    let mut held = Vec::new();
    let mut anomaly = |who: &str, what: String| {
        held.push(Anomaly {
            room: "-".into(),
            seq: None,
            who: who.to_string(),
            what,
        })
    };
    for node in &cluster.nodes {
        let name = &node.endpoint.name;
        let metrics = match scrape(node.endpoint.http).await {
            Ok(metrics) => metrics,
            Err(e) => {
                anomaly(name, format!("cannot read /metrics: {e}"));
                continue;
            }
        };
        for (series, value) in &metrics {
            // This scrape is one HTTP connection; nothing else may be open.
            let allowed = match series.as_str() {
                "chatd_connections_open{protocol=\"http\"}" => 1.0,
                _ => 0.0,
            };
            let gauge = series.split('{').next().unwrap_or_default();
            let counted = [
                "chatd_connections_open",
                "chatd_sessions_open",
                "chatd_rooms",
                "chatd_bus_rooms",
                "chatd_queued_bytes",
                "chatd_persist_queue_depth",
            ];
            if counted.contains(&gauge) && *value > allowed {
                let what = format!("{series} is {value} after every client has gone");
                anomaly(name, what);
            }
        }
    }
    if let Some(valkey) = &cluster.valkey {
        let channels = with(valkey, |valkey| {
            valkey.command(&["PUBSUB", "CHANNELS", "chatd:room:*"])
        })
        .await;
        if channels != "*0" {
            let what = format!(
                "Valkey has room channels subscribed ({channels}) after every room has gone"
            );
            anomaly("valkey", what);
        }
    }
    if let Some(pg) = &cluster.pg {
        let url = lock(pg).url();
        match directory_rows(&url).await {
            Ok(rows) => {
                for (table, n) in rows {
                    if n > 0 {
                        let what = format!(
                            "the shared directory's {table} has {n} rows after every client has gone"
                        );
                        anomaly("postgres", what);
                    }
                }
            }
            Err(e) => anomaly("postgres", format!("cannot read the shared directory: {e}")),
        }
    }
    held
}

/// How many rows each table of the shared directory (nicks, memberships) holds. A crashed
/// instance's rows count until they expire: one TTL and a heartbeat after the crash, well
/// within [`PATIENCE`] of the end of a run.
async fn directory_rows(url: &str) -> Result<Vec<(&'static str, i64)>, tokio_postgres::Error> {
    let (db, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let mut rows = Vec::new();
    for table in ["presence_nicks", "presence_members"] {
        let n: i64 = db
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await?
            .get(0);
        rows.push((table, n));
    }
    Ok(rows)
}

/// Every sample of `GET /metrics` on `addr`, by its series (name and labels).
pub async fn scrape(addr: std::net::SocketAddr) -> Result<BTreeMap<String, f64>, reqwest::Error> {
    // A client of its own, dropped with its connection: the next scrape counts only itself.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()?;
    let text = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect())
}
