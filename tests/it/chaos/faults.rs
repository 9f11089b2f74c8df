//! Striking and healing one scheduled fault on a running cluster. Each fault is healed before
//! the function returns: an instance is running again, a service answers, a link passes.

use std::sync::Mutex;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::plan::{Fault, FaultKind, Plan};
use crate::support::cluster::{Cluster, with};
use crate::support::postgres::TestPostgres;
use crate::support::proxy::Mode;
use crate::support::readers::{SseReader, TcpReader};
use crate::support::record::Recorder;
use crate::support::senders::Sender;

/// How long a restarted instance may take to come back.
const RESTART_PATIENCE: Duration = Duration::from_secs(60);

/// What a fault needs besides the cluster.
pub struct Context<'a> {
    /// The run's plan.
    pub plan: &'a Plan,
    /// The run's cluster.
    pub cluster: &'a Cluster,
    /// The run's log.
    pub log: &'a Recorder,
    /// Stops the readers (cold-room readers run until the end).
    pub readers: &'a CancellationToken,
    /// The run's tasks, to be awaited at the end.
    pub tasks: &'a Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Cold rooms opened so far (their names are added to the run's rooms).
    pub cold_rooms: &'a Mutex<Vec<String>>,
}

/// Strikes `fault`, holds it, heals it. An error says what could not be healed.
pub async fn strike(fault: &Fault, cx: &Context<'_>) -> Result<(), String> {
    let node = cx.cluster.nodes[fault.instance].clone();
    let hold = fault.hold;
    match fault.kind {
        FaultKind::Kill9 => {
            node.kill9().await;
            tokio::time::sleep(hold).await;
            node.start_retrying(RESTART_PATIENCE).await?;
        }
        FaultKind::Sigterm => {
            node.sigterm(Duration::from_secs(30)).await;
            tokio::time::sleep(hold).await;
            node.start_retrying(RESTART_PATIENCE).await?;
        }
        FaultKind::ColdRoom => cold_room(fault, cx).await,
        FaultKind::Pause => {
            node.freeze(true).await;
            tokio::time::sleep(hold).await;
            node.freeze(false).await;
        }
        FaultKind::DiskFull => {
            node.limit_file_size(Some(0)).await;
            tokio::time::sleep(hold).await;
            node.limit_file_size(None).await;
        }
        FaultKind::ValkeyEmpty => {
            let valkey = cx.cluster.valkey.as_ref().ok_or("no Valkey")?;
            with(valkey, |v| v.stop()).await;
            tokio::time::sleep(hold).await;
            with(valkey, |v| v.restart()).await;
        }
        FaultKind::ValkeySnapshot => {
            let valkey = cx.cluster.valkey.as_ref().ok_or("no Valkey")?;
            let snapshot = with(valkey, |v| v.snapshot()).await;
            // Traffic goes on past the snapshot, then Valkey comes back with the older counters.
            tokio::time::sleep(hold).await;
            with(valkey, move |v| v.restart_from(&snapshot)).await;
        }
        FaultKind::PgRestart => {
            let pg = cx.cluster.pg.as_ref().ok_or("no PostgreSQL")?;
            with(pg, |pg| pg.stop()).await;
            tokio::time::sleep(hold).await;
            with(pg, |pg| pg.restart()).await;
        }
        FaultKind::PgPause => {
            let pg = cx.cluster.pg.as_ref().ok_or("no PostgreSQL")?;
            with(pg, |pg| pg.pause()).await;
            tokio::time::sleep(hold).await;
            with(pg, |pg| pg.resume()).await;
        }
        FaultKind::PgReadOnly => {
            let pg = cx.cluster.pg.as_ref().ok_or("no PostgreSQL")?;
            let url = with(pg, |pg| pg.url()).await;
            TestPostgres::set_read_only(&url, true).await?;
            tokio::time::sleep(hold).await;
            TestPostgres::set_read_only(&url, false).await?;
        }
        FaultKind::ValkeyPause => {
            let valkey = cx.cluster.valkey.as_ref().ok_or("no Valkey")?;
            with(valkey, |v| v.pause()).await;
            tokio::time::sleep(hold).await;
            with(valkey, |v| v.resume()).await;
        }
        FaultKind::ProxySlow | FaultKind::ProxyCut | FaultKind::ProxyBlackhole => {
            let proxy = match fault.valkey_link {
                true => node.valkey_proxy.as_ref(),
                false => node.pg_proxy.as_ref(),
            }
            .ok_or("no such link")?;
            proxy.set(match fault.kind {
                FaultKind::ProxySlow => Mode::Latency {
                    up: Duration::from_millis(200),
                    down: Duration::from_millis(200),
                },
                FaultKind::ProxyCut => Mode::Cut,
                _ => Mode::Blackhole,
            });
            tokio::time::sleep(hold).await;
            proxy.heal();
        }
    }
    Ok(())
}

/// A new room: two senders keep it busy on one instance (~250 msg/s together); a moment later
/// it is opened for the first time on another, over SSE and TCP, whose readers stay to the end.
async fn cold_room(fault: &Fault, cx: &Context<'_>) {
    let room = {
        let mut cold_rooms = cx.cold_rooms.lock().expect("cold rooms");
        let room = format!("cold{}", cold_rooms.len() + 1);
        cold_rooms.push(room.clone());
        room
    };
    let endpoints = cx.cluster.endpoints();
    let busy = CancellationToken::new();
    let mut senders = Vec::new();
    for i in 0..2 {
        let sender = Sender {
            name: format!("{room}-busy{i}"),
            prefix: format!("s{}", cx.plan.seed),
            target: endpoints[fault.instance].clone(),
            rooms: vec![room.clone()],
            per_second: 125.0,
            seed: cx.plan.seed ^ (0xC01D + i),
        };
        senders.push(tokio::spawn(sender.run_http(cx.log.clone(), busy.clone())));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let opener = &endpoints[fault.other];
    let sse = SseReader {
        name: format!("{room}-sse-{}", opener.name),
        room: room.clone(),
        endpoints: endpoints.clone(),
        home: fault.other,
        resume_every_ms: None,
        seed: cx.plan.seed,
    };
    let sse = tokio::spawn(sse.run(cx.log.clone(), cx.readers.clone()));
    cx.tasks.lock().expect("tasks").push(sse);
    let tcp = TcpReader {
        name: format!("{room}-tcp-{}", opener.name),
        room,
        target: opener.clone(),
    };
    let tcp = tokio::spawn(tcp.run(cx.log.clone(), cx.readers.clone()));
    cx.tasks.lock().expect("tasks").push(tcp);
    tokio::time::sleep(fault.hold + Duration::from_millis(800)).await;
    busy.cancel();
    for sender in senders {
        let _ = sender.await;
    }
}
