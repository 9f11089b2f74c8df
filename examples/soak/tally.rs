//! What the soak counts: the server's resident memory, the normal users' round trips, and every
//! refusal or cut-off, by kind.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Counters of one run, shared by every client task.
pub struct Tally {
    pid: Option<u32>,
    /// `(client kind, what happened)` -> how often: refusals, cut-offs, and the work done.
    events: Mutex<BTreeMap<(&'static str, String), u64>>,
    /// The normal users' round trips, in microseconds.
    trips: Mutex<Histogram<u64>>,
    /// Normal messages that did not arrive within the patience.
    lost: AtomicU64,
    rss_peak: AtomicU64,
}

/// How long a normal user waits for a message before counting it lost.
pub const PATIENCE: Duration = Duration::from_secs(10);

impl Tally {
    pub fn new(pid: Option<u32>) -> Tally {
        Tally {
            pid,
            events: Mutex::new(BTreeMap::new()),
            // 1 µs to 1 hour, 3 significant digits: constant bounds, cannot fail.
            trips: Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("bounds")),
            lost: AtomicU64::new(0),
            rss_peak: AtomicU64::new(0),
        }
    }

    /// Counts `what` for clients of `kind`.
    pub fn count(&self, kind: &'static str, what: impl Into<String>) {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        *events.entry((kind, what.into())).or_insert(0) += 1;
    }

    /// Counts a refusal (an `! ` line, an HTTP error's text) under its kind (see [`classify`]).
    pub fn refused(&self, kind: &'static str, text: &str) {
        self.count(kind, format!("refused: {}", classify(text)));
    }

    /// A normal user's message arrived after `trip`.
    pub fn trip(&self, trip: Duration) {
        let micros = u64::try_from(trip.as_micros()).unwrap_or(u64::MAX).max(1);
        let mut trips = self.trips.lock().unwrap_or_else(|p| p.into_inner());
        let _ = trips.record(micros);
    }

    /// A normal user's message did not arrive within [`PATIENCE`].
    pub fn lost(&self) {
        self.lost.fetch_add(1, Relaxed);
    }

    /// The server's VmRSS in KiB (0 without a pid).
    pub fn rss(&self) -> u64 {
        let Some(pid) = self.pid else { return 0 };
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            })
            .unwrap_or(0)
    }

    /// VmRSS once it stops moving (two samples a second apart within 1 MiB, at most 30 s).
    pub async fn settled_rss(&self) -> u64 {
        let mut last = self.rss();
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = self.rss();
            if now.abs_diff(last) < 1024 {
                return now;
            }
            last = now;
        }
        last
    }

    /// Samples VmRSS every second until `until`, keeping the peak.
    pub async fn sample_rss(self: std::sync::Arc<Self>, until: Instant) {
        while Instant::now() < until {
            self.rss_peak.fetch_max(self.rss(), Relaxed);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// The report: memory, the normal users' round trips, and every count by client kind.
    pub fn summary(&self, run: Duration, before: u64, end: u64, after: u64) -> String {
        let trips = self.trips.lock().unwrap_or_else(|p| p.into_inner());
        let ms = |q: f64| trips.value_at_quantile(q) as f64 / 1000.0;
        let mut out = format!(
            "soak: {:.1} min\nVmRSS: before {}, peak {}, at the end {}, after the clients left {}\n\
             normal users: {} round trips, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} lost\n\
             by client kind:\n",
            run.as_secs_f64() / 60.0,
            kib(before),
            kib(self.rss_peak.load(Relaxed).max(end)),
            kib(end),
            kib(after),
            trips.len(),
            ms(0.50),
            ms(0.99),
            trips.max() as f64 / 1000.0,
            self.lost.load(Relaxed),
        );
        let events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        for ((kind, what), n) in events.iter() {
            out.push_str(&format!("  {kind:<14} {what:<60} {n:>9}\n"));
        }
        out
    }
}

/// `n` KiB in MiB, for the report.
pub fn kib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / 1024.0)
}

/// The kind of a refusal, from its words (the server's `! ` line or HTTP error).
pub fn classify(text: &str) -> &'static str {
    const KINDS: &[(&str, &str)] = &[
        ("slow down", "rate limit (slow down)"),
        ("rooms open already", "rooms per address (max_rooms_per_ip)"),
        ("rooms already, its limit", "rooms per instance (max_rooms)"),
        ("event streams for this session", "streams per session"),
        (
            "too many event streams",
            "streams per address (max_streams_per_ip)",
        ),
        ("too many connections", "connections per address"),
        ("too many sessions", "sessions per address"),
        (
            "for waiting events is used up",
            "slow reader cut (instance budget)",
        ),
        ("waiting)", "slow reader cut (its own queue)"),
        ("server is full", "connections in total"),
        ("rooms already (max", "rooms per session"),
    ];
    KINDS
        .iter()
        .find(|(words, _)| text.contains(words))
        .map_or("other", |(_, kind)| kind)
}
