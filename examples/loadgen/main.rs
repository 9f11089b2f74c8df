//! loadgen: a load generator for chatd (or any IRC server) that measures end-to-end delivery
//! latency, throughput and the servers' resident memory.
//!
//! ```sh
//! cargo run --release --example loadgen -- --tcp 127.0.0.1:9001 --clients 50 --senders 50 \
//!     --rate 1000 --duration 20 --pid "$(pgrep -n chatd)"
//! ```
//!
//! It connects `--clients` TCP clients and `--sse` SSE clients (round-robin over the `--tcp` and
//! `--http` instances and over `--rooms` rooms named `lg0`, `lg1`, ...), paced at
//! `--ramp-per-sec`; once every client has joined, `--senders` of the TCP clients send `--rate`
//! messages per second in total for `--duration` seconds. Every message carries its send time,
//! so each receiver records `recv - send` for every (message, receiver) pair: all clients live in
//! this one process and share one monotonic clock. The run ends by itself: the ramp is bounded
//! by `--ramp-timeout`, and a hard deadline (ramp + duration + 10 s) stops it whatever happens.
//!
//! Layout: `wire` (the message text and the parsers), `clients` and `sse` (the client tasks),
//! `stats` (counters, histograms, RSS, CPU), `report` (the summary); this file runs the phases.

mod clients;
mod report;
mod sse;
mod stats;
mod wire;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use clients::{Client, Protocol, SendPlan, Shared};
use stats::{Snapshot, Stats};

#[derive(Parser, Debug)]
#[command(about = "Load generator for chatd: latency, throughput and memory under many clients")]
struct Args {
    /// TCP address of an instance (repeatable; clients are assigned round-robin).
    #[arg(long = "tcp", value_name = "ADDR")]
    tcp: Vec<String>,
    /// HTTP address of an instance, for the SSE clients (repeatable, round-robin).
    #[arg(long = "http", value_name = "ADDR")]
    http: Vec<String>,
    /// TCP clients.
    #[arg(long = "clients", short = 'n', default_value_t = 50)]
    clients: usize,
    /// SSE clients (receive only; chatd protocol only).
    #[arg(long = "sse", short = 'm', default_value_t = 0)]
    sse: usize,
    /// Rooms (`lg0` .. `lgK-1`); clients are spread over them round-robin.
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// How many of the TCP clients send (the others only receive).
    #[arg(long, default_value_t = 50)]
    senders: usize,
    /// Messages per second, in total over all senders.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Seconds of sending.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Seconds to keep reading after the last message is sent, for deliveries in flight.
    #[arg(long, default_value_t = 1.0)]
    drain: f64,
    /// New connections per second during the ramp-up.
    #[arg(long, default_value_t = 2000.0)]
    ramp_per_sec: f64,
    /// Seconds the ramp-up may take before sending starts anyway (default: the paced ramp's
    /// length + 10 s).
    #[arg(long)]
    ramp_timeout: Option<f64>,
    /// Protocol of the TCP clients.
    #[arg(long, value_enum, default_value_t = Protocol::Chatd)]
    protocol: Protocol,
    /// A server process whose resident memory (VmRSS) to report (repeatable).
    #[arg(long = "pid")]
    pids: Vec<u32>,
    /// Print the results as one JSON object instead of the summary.
    #[arg(long)]
    json: bool,
}

impl Args {
    /// Every problem with the flags, so one run reports them all.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.clients > 0 && self.tcp.is_empty() {
            problems.push("--clients > 0 needs at least one --tcp ADDR".to_string());
        }
        if self.sse > 0 && self.http.is_empty() {
            problems.push("--sse > 0 needs at least one --http ADDR".to_string());
        }
        if self.sse > 0 && self.protocol == Protocol::Irc {
            problems.push("--sse is chatd's HTTP API: not with --protocol irc".to_string());
        }
        if self.rooms == 0 {
            problems.push("--rooms must be at least 1".to_string());
        }
        if self.senders > self.clients {
            problems.push(format!(
                "--senders {} is more than --clients {}: senders are TCP clients",
                self.senders, self.clients
            ));
        }
        for (flag, value) in [
            ("--rate", self.rate),
            ("--duration", self.duration),
            ("--ramp-per-sec", self.ramp_per_sec),
        ] {
            if !(value.is_finite() && value > 0.0) {
                problems.push(format!("{flag} must be a positive number"));
            }
        }
        if !(self.drain.is_finite() && self.drain >= 0.0) {
            problems.push("--drain must be zero or more".to_string());
        }
        problems
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let problems = args.problems();
    if !problems.is_empty() {
        for problem in problems {
            eprintln!("loadgen: {problem}");
        }
        return ExitCode::from(2);
    }

    let total = args.clients + args.sse;
    let nofile = stats::raise_nofile_limit();
    match &nofile {
        Ok(limit) if (*limit as usize) < total + 64 => eprintln!(
            "loadgen: the open-file limit is {limit}, too low for {total} clients; raise the hard \
             limit (ulimit -Hn, or LimitNOFILE=) and run again"
        ),
        Ok(_) => {}
        Err(e) => eprintln!("loadgen: could not raise the open-file limit: {e}"),
    }

    let ramp = total as f64 / args.ramp_per_sec;
    let ramp_timeout = Duration::from_secs_f64(args.ramp_timeout.unwrap_or(ramp + 10.0));
    let duration = Duration::from_secs_f64(args.duration);
    let drain = Duration::from_secs_f64(args.drain);
    // Whatever happens, the run ends by then: ramp, sending, draining, and 10 s to wind down.
    let deadline = ramp_timeout + duration + drain + Duration::from_secs(10);

    let shared = Arc::new(Shared {
        stats: Stats::new(args.rooms, run_tag()),
        go: CancellationToken::new(),
        stop: CancellationToken::new(),
        settled: AtomicU64::new(0),
        settled_notify: tokio::sync::Notify::new(),
    });
    let before = Snapshot::take(&args.pids);

    let mut tasks = JoinSet::new();
    let phases = tokio::time::timeout(deadline, async {
        let ramp_took = ramp_up(&args, &shared, &mut tasks, ramp_timeout).await;
        // Let the servers settle after the last join before reading their memory.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let connected = Snapshot::take(&args.pids);
        shared.go.cancel();
        tokio::time::sleep(duration + drain).await;
        (ramp_took, connected)
    })
    .await;
    let after = Snapshot::take(&args.pids);
    shared.stop.cancel();
    // Clients flush their latencies as they stop; give them a moment, then drop the stragglers.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();

    let (ramp_took, connected, code) = match phases {
        Ok((ramp_took, connected)) => (ramp_took, connected, ExitCode::SUCCESS),
        Err(_) => {
            eprintln!(
                "loadgen: the hard deadline of {deadline:?} passed; the figures below are partial"
            );
            (Duration::ZERO, after.clone(), ExitCode::FAILURE)
        }
    };
    let snapshots = [before, connected, after];
    let report = report::Report::new(&args, &shared.stats, ramp_took, nofile.ok(), &snapshots);
    report.print(args.json);
    code
}

/// Starts every client, `--ramp-per-sec` a second, and waits until each has joined its room or
/// failed, or until `timeout`. Returns how long that took.
async fn ramp_up(
    args: &Args,
    shared: &Arc<Shared>,
    tasks: &mut JoinSet<()>,
    timeout: Duration,
) -> Duration {
    let began = Instant::now();
    let total = args.clients + args.sse;
    let per_sender = args.rate / args.senders.max(1) as f64;
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    let mut started = 0;
    let ramp = async {
        while started < total {
            ticker.tick().await;
            let due = ((began.elapsed().as_secs_f64() * args.ramp_per_sec) as usize + 1).min(total);
            while started < due {
                let index = started;
                let client = Client {
                    index,
                    room: index % args.rooms,
                    addr: String::new(),
                    send: (index < args.senders).then(|| SendPlan {
                        rate: per_sender,
                        phase: Duration::from_secs_f64(
                            index as f64 / args.senders as f64 / per_sender,
                        ),
                    }),
                    duration: Duration::from_secs_f64(args.duration),
                };
                if index < args.clients {
                    let addr = args.tcp[index % args.tcp.len()].clone();
                    let client = Client { addr, ..client };
                    tasks.spawn(clients::tcp_client(client, args.protocol, shared.clone()));
                } else {
                    let addr = args.http[index % args.http.len()].clone();
                    let client = Client { addr, ..client };
                    tasks.spawn(sse::sse_client(client, http.clone(), shared.clone()));
                }
                started += 1;
            }
        }
        while (shared.settled.load(Relaxed) as usize) < total {
            // A client may settle between the check and the wait: `notify_one` stores a permit.
            shared.settled_notify.notified().await;
        }
    };
    if tokio::time::timeout(timeout, ramp).await.is_err() {
        eprintln!(
            "loadgen: the ramp-up timed out after {timeout:?}: {} of {total} clients settled; \
             sending anyway",
            shared.settled.load(Relaxed)
        );
    }
    began.elapsed()
}

/// A tag for this run's messages, so a room's history from an earlier run is not measured.
fn run_tag() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos ^ std::process::id().rotate_left(16)
}
