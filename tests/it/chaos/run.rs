//! One run: start the cluster of the plan's phase, start its clients, strike its faults, let it
//! settle, stop everything cleanly, read the store and check.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chatd::pipeline::config::Durability;
use tokio_util::sync::CancellationToken;

use super::faults::{Context, strike};
use super::leftovers::{ROOM_IDLE_SECS, SESSION_IDLE_SECS, leftovers};
use super::plan::{FaultKind, Phase, Plan};
use super::presence::directory_disagrees;
use crate::support::check::{Anomaly, Findings, check};
use crate::support::cluster::{
    Cluster, shipped, unthrottled, with_durability, with_layer_before, with_option,
};
use crate::support::readers::{SseReader, TcpReader};
use crate::support::record::{Recorder, dump};
use crate::support::senders::Sender;

/// How long clients keep reading after the senders stop: long enough for a poll interval, a
/// gap wait and a resumer's reconnection.
const QUIET: Duration = Duration::from_secs(4);
/// The ring's capacity in the shipped pipelines: what a join replays.
const CAPACITY: usize = 10;

/// What one run did and found.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Its plan.
    pub plan: Plan,
    /// The checks' counts and anomalies.
    pub findings: Findings,
    /// A fault that could not be healed, or a cluster that did not start (counted as an anomaly).
    pub trouble: Option<String>,
    /// Wall time of the run, set-up included.
    pub took: Duration,
}

/// The pipeline of `plan`: the shipped one of its phase with its durability, unthrottled, with
/// idle sessions and rooms let go of within seconds (for the leftovers check), with its
/// `timeout` layer if it has one.
pub fn pipeline(plan: &Plan) -> String {
    let text = match (plan.phase, plan.ahead) {
        (Phase::One, false) => shipped("phase1-single.toml"),
        (Phase::One, true) => shipped("phase1-sync.toml"),
        (Phase::Two, _) => shipped("phase2-poll.toml"),
        (Phase::Three, _) => shipped("phase3-valkey.toml"),
    };
    let durability = if plan.ahead {
        Durability::Sync
    } else {
        Durability::Async
    };
    let text = with_durability(&unthrottled(&text), durability);
    let text = with_option(
        &text,
        "[server]",
        "session_idle_secs",
        &SESSION_IDLE_SECS.to_string(),
    );
    let route = "kind = \"route\"";
    let text = with_option(&text, route, "room_idle_secs", &ROOM_IDLE_SECS.to_string());
    match plan.timeout_ms {
        Some(ms) => with_layer_before(&text, "route", &format!("kind = \"timeout\"\nms = {ms}")),
        None => text,
    }
}

/// Runs `plan`; see the module docs.
pub async fn run(plan: &Plan) -> Outcome {
    let started = Instant::now();
    eprintln!("{plan}");
    let Some(cluster) = Cluster::start(&pipeline(plan), &plan.instances).await else {
        return Outcome {
            plan: plan.clone(),
            findings: Findings::default(),
            trouble: Some("a service is missing (skipped)".into()),
            took: started.elapsed(),
        };
    };
    let endpoints = cluster.endpoints();
    let log = Recorder::default();
    let (readers, senders) = (CancellationToken::new(), CancellationToken::new());
    let mut tasks: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let mut seed = plan.seed.wrapping_mul(1000);
    let mut next_seed = || {
        seed += 1;
        seed
    };

    // Readers everywhere first: a plain SSE reader and a TCP reader per instance and room.
    for (i, endpoint) in endpoints.iter().enumerate() {
        for room in &plan.rooms {
            let sse = SseReader {
                name: format!("sse-{}-{room}", endpoint.name),
                room: room.clone(),
                endpoints: endpoints.clone(),
                home: i,
                resume_every_ms: None,
                seed: next_seed(),
            };
            tasks.push(tokio::spawn(sse.run(log.clone(), readers.clone())));
            let tcp = TcpReader {
                name: format!("tcp-{}-{room}", endpoint.name),
                room: room.clone(),
                target: endpoint.clone(),
            };
            tasks.push(tokio::spawn(tcp.run(log.clone(), readers.clone())));
        }
    }
    for (k, (home, room)) in plan.resumers.iter().enumerate() {
        let resumer = SseReader {
            name: format!("resumer{k}"),
            room: plan.rooms[*room].clone(),
            endpoints: endpoints.clone(),
            home: *home,
            resume_every_ms: Some((300, 1500)),
            seed: next_seed(),
        };
        tasks.push(tokio::spawn(resumer.run(log.clone(), readers.clone())));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Senders on every instance: two over HTTP (80% of the rate), one over TCP.
    let n = endpoints.len() as f64;
    let mut sending = Vec::new();
    for endpoint in &endpoints {
        for h in 0..2 {
            let sender = Sender {
                name: format!("http{h}{}", endpoint.name),
                prefix: format!("s{}", plan.seed),
                target: endpoint.clone(),
                rooms: plan.rooms.clone(),
                per_second: plan.rate * 0.4 / n,
                seed: next_seed(),
            };
            sending.push(tokio::spawn(sender.run_http(log.clone(), senders.clone())));
        }
        let room = plan.rooms[(next_seed() % plan.rooms.len() as u64) as usize].clone();
        let sender = Sender {
            name: format!("tcp{}", endpoint.name),
            prefix: format!("s{}", plan.seed),
            target: endpoint.clone(),
            rooms: vec![room],
            per_second: plan.rate * 0.2 / n,
            seed: next_seed(),
        };
        sending.push(tokio::spawn(sender.run_tcp(log.clone(), senders.clone())));
    }
    let traffic = tokio::time::Instant::now();

    // Joiners at their times.
    for (k, joiner) in plan.joiners.iter().enumerate() {
        let (log, stop, endpoints) = (log.clone(), readers.clone(), endpoints.clone());
        let room = plan.rooms[joiner.room].clone();
        let (at, instance, tcp, seed) = (joiner.at, joiner.instance, joiner.tcp, next_seed());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(traffic + at).await;
            if tcp {
                let target = endpoints[instance].clone();
                let name = format!("joiner{k}-tcp-{}", target.name);
                TcpReader { name, room, target }.run(log, stop).await;
            } else {
                let name = format!("joiner{k}-sse-{}", endpoints[instance].name);
                let reader = SseReader {
                    name,
                    room,
                    endpoints,
                    home: instance,
                    resume_every_ms: None,
                    seed,
                };
                reader.run(log, stop).await;
            }
        }));
    }

    // The faults: one after the other, or all at once in an overlapping plan (each sleeps until
    // its time, so there they strike while the ones before them hold).
    let (fault_tasks, cold_rooms) = (Mutex::new(Vec::new()), Mutex::new(Vec::new()));
    let cx = Context {
        plan,
        cluster: &cluster,
        log: &log,
        readers: &readers,
        tasks: &fault_tasks,
        cold_rooms: &cold_rooms,
    };
    let strikes = plan.faults.iter().map(|fault| {
        let cx = &cx;
        async move {
            tokio::time::sleep_until(traffic + fault.at).await;
            let name = fault.kind.name();
            eprintln!("  {:.1}s: {name}", traffic.elapsed().as_secs_f64());
            (strike(fault, cx).await).map_err(|e| format!("{name} not healed: {e}"))
        }
    });
    let struck = match plan.overlap {
        true => futures_util::future::join_all(strikes).await,
        false => {
            let mut struck = Vec::new();
            for strike in strikes {
                struck.push(strike.await);
            }
            struck
        }
    };
    let trouble = struck.into_iter().filter_map(Result::err).next_back();
    tasks.extend(fault_tasks.into_inner().expect("tasks"));
    let cold_rooms = cold_rooms.into_inner().expect("cold rooms");
    tokio::time::sleep_until(traffic + Duration::from_secs(plan.seconds)).await;
    senders.cancel();
    for task in sending {
        let _ = task.await;
    }
    tokio::time::sleep(QUIET).await;
    let disagrees = directory_disagrees(&cluster).await;
    readers.cancel();
    for task in tasks {
        let _ = task.await;
    }
    let held = leftovers(&cluster).await;
    cluster.stop_all().await;

    let mut rooms = plan.rooms.clone();
    rooms.extend(cold_rooms);
    let stored = cluster.stored(&rooms).await;
    let (sent, views) = log.snapshot();
    let mut findings = check(&sent, &views, &stored, plan.ahead, CAPACITY);
    findings.anomalies.extend(disagrees);
    findings.anomalies.extend(held);
    findings
        .anomalies
        .extend(loss_without_a_crash(plan, &findings));
    if !findings.anomalies.is_empty() {
        let _ = dump(&cluster.dir.join("record.txt"), &sent, &views);
    }
    // The run's directory holds every instance's log, for a look at an anomaly.
    eprintln!(
        "  {} acked, {} of unknown outcome, {} deliveries, {} anomalies; logs in {}",
        findings.acked,
        findings.unknown,
        findings.deliveries,
        findings.anomalies.len(),
        cluster.dir.display()
    );
    Outcome {
        plan: plan.clone(),
        findings,
        trouble,
        took: started.elapsed(),
    }
}

/// One instance written behind loses messages only in a crash: the queue a `kill -9` takes
/// with it. A SIGTERM writes the queue before the exit, and a full disk's queue waits for space
/// (the checker's 10,000 places are never full), so a phase 1 run without a `kill-9` that lost
/// messages broke a promise.
pub(super) fn loss_without_a_crash(plan: &Plan, findings: &Findings) -> Option<Anomaly> {
    let crashed = plan.faults.iter().any(|f| f.kind == FaultKind::Kill9);
    (plan.phase == Phase::One && !crashed && findings.losses > 0).then(|| Anomaly {
        room: "-".into(),
        seq: None,
        who: plan.instances[0].to_string(),
        what: format!(
            "{} written-behind messages lost without a crash",
            findings.losses
        ),
    })
}
