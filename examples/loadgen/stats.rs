//! What every client task counts, shared through one `Arc<Stats>`, and the process-level
//! measurements (resident memory, the open-file limit).
//!
//! Counting must cost the receivers less than the server's work it measures: counters are relaxed
//! atomics, and latencies are gathered in a small per-client `Batch` and merged into one of a few
//! mutex-guarded histograms only every `FLUSH_EVERY` deliveries, so a lock is taken once per
//! few hundred deliveries and rarely contended. (One histogram per client would cost ~100 KiB
//! each at 3 significant digits: 1 GiB for 10,000 clients.)

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use hdrhistogram::Histogram;

/// Histograms the clients' batches are merged into, picked by client index.
const SHARDS: usize = 16;
/// Deliveries a client gathers before it takes a shard's lock.
const FLUSH_EVERY: usize = 256;
/// At most this many error lines are kept verbatim for the summary.
const MAX_SAMPLES: usize = 5;

/// Counters and latencies of one run.
pub struct Stats {
    /// Every timestamp is in µs since this instant.
    pub start: Instant,
    /// Tags this run's messages (see `wire::encode_payload`).
    pub run: u32,
    shards: Vec<Mutex<Histogram<u64>>>,
    /// Messages written by senders.
    pub sent: AtomicU64,
    /// Messages sent into each room, for the expected deliveries.
    pub sent_per_room: Vec<AtomicU64>,
    /// Clients in each room that finished joining.
    pub ready_per_room: Vec<AtomicU64>,
    /// Clients that finished joining.
    pub ready: AtomicU64,
    /// Connects (or the HTTP handshake) that failed or timed out.
    pub connect_failures: AtomicU64,
    /// Error lines from the server (`! `, IRC 4xx/5xx numerics, HTTP errors).
    pub errors: AtomicU64,
    /// Connections the server closed (or that failed) while the run went on.
    pub disconnects: AtomicU64,
    samples: Mutex<Vec<String>>,
}

impl Stats {
    pub fn new(rooms: usize, run: u32) -> Self {
        let histogram = || {
            // 1 µs to 1 hour, 3 significant digits. Bounds are constants, so this cannot fail.
            Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"))
        };
        let zeros = || (0..rooms).map(|_| AtomicU64::new(0)).collect();
        Stats {
            start: Instant::now(),
            run,
            shards: (0..SHARDS).map(|_| histogram()).collect(),
            sent: AtomicU64::new(0),
            sent_per_room: zeros(),
            ready_per_room: zeros(),
            ready: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            samples: Mutex::new(Vec::new()),
        }
    }

    /// µs since the run's start: the clock in every message.
    pub fn now_micros(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// Counts an error line from the server and keeps the first few verbatim.
    pub fn error(&self, line: &str) {
        self.errors.fetch_add(1, Relaxed);
        self.sample(line);
    }

    /// Keeps a line (an error, a reason for a disconnect) for the summary, up to a few.
    pub fn sample(&self, line: &str) {
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if samples.len() < MAX_SAMPLES {
            samples.push(line.chars().take(200).collect());
        }
    }

    pub fn samples(&self) -> Vec<String> {
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// All latencies merged into one histogram.
    pub fn merged(&self) -> Histogram<u64> {
        let mut all = Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            // Same bounds on both sides: adding cannot fail.
            let _ = all.add(&*shard);
        }
        all
    }
}

/// One client's latencies not yet merged into the shared histograms.
pub struct Batch {
    shard: usize,
    latencies: Vec<u64>,
}

impl Batch {
    pub fn new(client: usize) -> Self {
        Batch {
            shard: client % SHARDS,
            latencies: Vec::with_capacity(FLUSH_EVERY),
        }
    }

    /// Records one delivery's latency (µs; clamped to at least 1, the histogram's floor).
    pub fn record(&mut self, stats: &Stats, micros: u64) {
        self.latencies.push(micros.max(1));
        if self.latencies.len() >= FLUSH_EVERY {
            self.flush(stats);
        }
    }

    pub fn flush(&mut self, stats: &Stats) {
        if self.latencies.is_empty() {
            return;
        }
        let mut shard = stats.shards[self.shard]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for &v in &self.latencies {
            shard.saturating_record(v);
        }
        self.latencies.clear();
    }
}

/// What loadgen reads about the server processes (and itself) at a point of the run.
#[derive(Clone)]
pub struct Snapshot {
    /// When it was taken.
    pub at: Instant,
    /// VmRSS of each `--pid`, KiB.
    pub rss_kib: Vec<Option<u64>>,
    /// CPU time (user + system) of each `--pid`, seconds.
    pub cpu_s: Vec<Option<f64>>,
    /// loadgen's own CPU time, seconds.
    pub own_cpu_s: Option<f64>,
}

impl Snapshot {
    pub fn take(pids: &[u32]) -> Self {
        Snapshot {
            at: Instant::now(),
            rss_kib: pids.iter().map(|&p| rss_kib(p)).collect(),
            cpu_s: pids.iter().map(|&p| cpu_secs(&p.to_string())).collect(),
            own_cpu_s: cpu_secs("self"),
        }
    }
}

/// User + system CPU time of a process (`/proc/PID/stat`), seconds.
fn cpu_secs(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces: count fields after its closing ')'.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    // Fields 3.. follow; utime and stime are fields 14 and 15.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf only reads a constant of the system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) / ticks as f64)
}

/// The resident memory of a process in KiB (`VmRSS` in `/proc/PID/status`); `None` when it
/// cannot be read (no such process, not Linux).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Raises this process's soft open-file limit to its hard limit; returns the new soft limit.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    // `rlim_t` is u64 on Linux but not everywhere.
    #[allow(clippy::unnecessary_cast)]
    Ok(limit.rlim_cur as u64)
}
