//! The run's results: one struct, printed as a human summary or as JSON (`--json`).

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde::Serialize;

use crate::Args;
use crate::clients::Protocol;
use crate::stats::{Snapshot, Stats};

#[derive(Serialize)]
pub struct Report {
    protocol: Protocol,
    tcp_clients: usize,
    sse_clients: usize,
    rooms: usize,
    senders: usize,
    target_rate: f64,
    duration_s: f64,
    /// Clients that joined their room.
    joined: u64,
    connect_failures: u64,
    ramp_s: f64,
    sent: u64,
    sent_per_s: f64,
    /// Deliveries measured: (message, receiver) pairs of this run.
    deliveries: u64,
    /// Every joined member of a message's room but its sender should get it.
    expected_deliveries: u64,
    /// Deliveries divided by the sending time.
    deliveries_per_s: f64,
    latency_us: Latency,
    errors: u64,
    disconnects: u64,
    samples: Vec<String>,
    open_file_limit: Option<u64>,
    /// loadgen's own CPU while sending and draining, in % of one core.
    loadgen_cpu_percent: Option<f64>,
    servers: Vec<Memory>,
}

#[derive(Serialize)]
struct Latency {
    p50: u64,
    p90: u64,
    p99: u64,
    p999: u64,
    max: u64,
    mean: f64,
}

#[derive(Serialize)]
struct Memory {
    pid: u32,
    /// CPU used while sending and draining, in % of one core.
    cpu_percent: Option<f64>,
    /// CPU-seconds used while sending and draining (user + system, from `/proc/PID/stat`).
    cpu_s: Option<f64>,
    /// `cpu_s` per million deliveries counted in the same window: what one delivery costs the
    /// server, whatever share of the cores the load generator took.
    cpu_s_per_million: Option<f64>,
    before_kib: Option<u64>,
    connected_kib: Option<u64>,
    after_kib: Option<u64>,
    /// (connected - before) / joined clients, in bytes: 0.5 s after the last join, with what
    /// the joins made still in flight.
    per_connection_bytes: Option<u64>,
    /// (after - before) / joined clients, in bytes: at the end, every client still connected,
    /// the sending over and drained.
    per_connection_after_bytes: Option<u64>,
}

impl Report {
    /// `snapshots` are taken before connecting, once connected (when sending starts) and at
    /// the end (after the drain).
    pub fn new(
        args: &Args,
        stats: &Stats,
        ramp: Duration,
        open_file_limit: Option<u64>,
        snapshots: &[Snapshot; 3],
    ) -> Self {
        let histogram = stats.merged();
        let joined = stats.ready.load(Relaxed);
        let sent = stats.sent.load(Relaxed);
        let expected = stats
            .sent_per_room
            .iter()
            .zip(&stats.ready_per_room)
            .map(|(sent, members)| sent.load(Relaxed) * members.load(Relaxed).saturating_sub(1))
            .sum();
        let [before, connected, after] = snapshots;
        let window = after
            .at
            .duration_since(connected.at)
            .as_secs_f64()
            .max(1e-9);
        let busy = |from: Option<f64>, to: Option<f64>| Some((to? - from?) * 100.0 / window);
        let per_connection = |before: Option<u64>, then: Option<u64>| match (before, then) {
            (Some(b), Some(t)) if joined > 0 => Some(t.saturating_sub(b) * 1024 / joined),
            _ => None,
        };
        let servers = args
            .pids
            .iter()
            .enumerate()
            .map(|(i, &pid)| {
                let (b, c) = (before.rss_kib[i], connected.rss_kib[i]);
                let cpu_s = connected.cpu_s[i]
                    .zip(after.cpu_s[i])
                    .map(|(from, to)| to - from);
                Memory {
                    pid,
                    cpu_percent: busy(connected.cpu_s[i], after.cpu_s[i]),
                    cpu_s,
                    cpu_s_per_million: cpu_s
                        .filter(|_| !histogram.is_empty())
                        .map(|s| s * 1e6 / histogram.len() as f64),
                    before_kib: b,
                    connected_kib: c,
                    after_kib: after.rss_kib[i],
                    per_connection_bytes: per_connection(b, c),
                    per_connection_after_bytes: per_connection(b, after.rss_kib[i]),
                }
            })
            .collect();
        Report {
            protocol: args.protocol,
            tcp_clients: args.clients,
            sse_clients: args.sse,
            rooms: args.rooms,
            senders: args.senders,
            target_rate: args.rate,
            duration_s: args.duration,
            joined,
            connect_failures: stats.connect_failures.load(Relaxed),
            ramp_s: ramp.as_secs_f64(),
            sent,
            sent_per_s: sent as f64 / args.duration,
            deliveries: histogram.len(),
            expected_deliveries: expected,
            deliveries_per_s: histogram.len() as f64 / args.duration,
            latency_us: Latency {
                p50: histogram.value_at_quantile(0.50),
                p90: histogram.value_at_quantile(0.90),
                p99: histogram.value_at_quantile(0.99),
                p999: histogram.value_at_quantile(0.999),
                max: histogram.max(),
                mean: histogram.mean(),
            },
            errors: stats.errors.load(Relaxed),
            disconnects: stats.disconnects.load(Relaxed),
            samples: stats.samples(),
            open_file_limit,
            loadgen_cpu_percent: busy(connected.own_cpu_s, after.own_cpu_s),
            servers,
        }
    }

    pub fn print(&self, json: bool) {
        if json {
            match serde_json::to_string_pretty(self) {
                Ok(text) => println!("{text}"),
                Err(e) => eprintln!("loadgen: cannot write JSON: {e}"),
            }
            return;
        }
        let l = &self.latency_us;
        println!(
            "loadgen ({:?}): {} TCP + {} SSE clients in {} room(s), {} sender(s) at {} msg/s for {} s",
            self.protocol,
            self.tcp_clients,
            self.sse_clients,
            self.rooms,
            self.senders,
            self.target_rate,
            self.duration_s
        );
        println!(
            "  joined       {} of {} in {:.2} s ({} connect failures)",
            self.joined,
            self.tcp_clients + self.sse_clients,
            self.ramp_s,
            self.connect_failures
        );
        println!(
            "  sent         {} messages ({:.0}/s)",
            self.sent, self.sent_per_s
        );
        println!(
            "  delivered    {} of {} expected ({:.0}/s)",
            self.deliveries, self.expected_deliveries, self.deliveries_per_s
        );
        println!(
            "  latency µs   p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {:.0})",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        );
        println!(
            "  errors       {}   disconnects {}",
            self.errors, self.disconnects
        );
        for sample in &self.samples {
            println!("    e.g. {sample}");
        }
        let percent = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.0}%"));
        println!(
            "  cpu          loadgen {} of a core while sending",
            percent(self.loadgen_cpu_percent)
        );
        for s in &self.servers {
            let kib = |v: Option<u64>| v.map_or("?".to_string(), |v| format!("{v} KiB"));
            println!(
                "  pid {}    cpu {} of a core while sending ({} CPU-s per million deliveries); \
                 RSS before {}, connected {}, after {}; {} per connection connected, {} after",
                s.pid,
                percent(s.cpu_percent),
                s.cpu_s_per_million
                    .map_or("?".to_string(), |v| format!("{v:.2}")),
                kib(s.before_kib),
                kib(s.connected_kib),
                kib(s.after_kib),
                s.per_connection_bytes
                    .map_or("?".to_string(), |b| format!("{b} bytes")),
                s.per_connection_after_bytes
                    .map_or("?".to_string(), |b| format!("{b} bytes"))
            );
        }
    }
}
