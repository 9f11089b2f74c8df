//! A lock-free latency histogram: fixed buckets, one relaxed atomic add per observation.
//!
//! **Why not the metrics crate's histogram?** `prometheus-client`'s `Histogram` keeps its buckets
//! behind a lock, and the delivery latency is observed once per message per recipient: in a room
//! of a thousand members that is a thousand lock round trips for one line. Here an observation is
//! a bucket search over a short constant array and two `fetch_add`s (the bucket and the sum);
//! nothing is allocated and nothing waits. A reader that writes many messages at once counts them
//! in a [`Tally`] first and adds that: one `fetch_add` per bucket touched. The exporter (`crate::ops::metrics`) reads the buckets
//! at scrape time and hands them to the Prometheus encoder.
//!
//! **What a scrape sees.** The buckets and the sum are separate atomics, so a scrape that races
//! an observation may count it in one and not yet in the other. Prometheus tolerates that (the
//! next scrape is consistent again); a lock would not be worth it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The upper bounds of the buckets, in microseconds (the last bucket, `+Inf`, is implicit).
/// From 25 µs (an in-process hand-off on an idle machine) to 10 s (a gap filled from the store
/// after a reconnection).
pub const BOUNDS_MICROS: [u64; 18] = [
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Counts of durations by bucket, plus their sum; see the module docs.
#[derive(Debug, Default)]
pub struct Histogram {
    /// `buckets[i]` counts observations in `(BOUNDS_MICROS[i-1], BOUNDS_MICROS[i]]`; the last
    /// one counts those above every bound.
    buckets: [AtomicU64; BOUNDS_MICROS.len() + 1],
    /// The sum of every observation, in microseconds.
    sum_micros: AtomicU64,
}

/// A histogram read at one moment, in seconds, as Prometheus wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// `(upper bound in seconds, observations in that bucket alone)`, the `+Inf` bucket last.
    pub buckets: Vec<(f64, u64)>,
    /// Observations in all.
    pub count: u64,
    /// The sum of the observations, in seconds.
    pub sum_seconds: f64,
}

/// The bucket `elapsed` falls in, and `elapsed` in microseconds. Prometheus buckets are "less
/// than or equal": the first bound at or above the value.
fn bucket(elapsed: Duration) -> (usize, u64) {
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    (
        BOUNDS_MICROS.partition_point(|&bound| bound < micros),
        micros,
    )
}

/// Observations counted in plain integers by one reader, then added to a [`Histogram`] at once
/// ([`Histogram::add`]): a reader that hands forty messages to its socket in one write pays the
/// shared atomics once per bucket it touched, not twice per message (the histogram's cache line
/// is shared by every worker thread, so each atomic add on it is a trip between cores).
#[derive(Debug, Default)]
pub struct Tally {
    buckets: [u64; BOUNDS_MICROS.len() + 1],
    sum_micros: u64,
}

impl Tally {
    /// Counts one duration.
    pub fn observe(&mut self, elapsed: Duration) {
        let (bucket, micros) = bucket(elapsed);
        self.buckets[bucket] += 1;
        self.sum_micros = self.sum_micros.saturating_add(micros);
    }
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, elapsed: Duration) {
        let (bucket, micros) = bucket(elapsed);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Records every duration of `tally`.
    pub fn add(&self, tally: &Tally) {
        let mut any = false;
        for (bucket, &n) in self.buckets.iter().zip(&tally.buckets) {
            if n > 0 {
                bucket.fetch_add(n, Ordering::Relaxed);
                any = true;
            }
        }
        if any {
            self.sum_micros
                .fetch_add(tally.sum_micros, Ordering::Relaxed);
        }
    }

    /// The current counts.
    pub fn snapshot(&self) -> Snapshot {
        let bounds = BOUNDS_MICROS
            .iter()
            .map(|&micros| micros as f64 / 1e6)
            .chain(std::iter::once(f64::INFINITY));
        let buckets: Vec<(f64, u64)> = bounds
            .zip(&self.buckets)
            .map(|(bound, count)| (bound, count.load(Ordering::Relaxed)))
            .collect();
        Snapshot {
            count: buckets.iter().map(|(_, n)| n).sum(),
            buckets,
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_adds_what_single_observations_would() {
        let (one_by_one, tallied) = (Histogram::default(), Histogram::default());
        let mut tally = Tally::default();
        for micros in [10, 25, 26, 3_000, 3_000, 60_000_000] {
            one_by_one.observe(Duration::from_micros(micros));
            tally.observe(Duration::from_micros(micros));
        }
        tallied.add(&tally);
        assert_eq!(tallied.snapshot(), one_by_one.snapshot());
        assert_eq!(tallied.snapshot().count, 6);
        tallied.add(&Tally::default());
        assert_eq!(tallied.snapshot().count, 6, "an empty tally adds nothing");
    }

    #[test]
    fn observations_land_in_the_first_bucket_at_or_above_them() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(25)); // on a bound: that bucket
        h.observe(Duration::from_micros(26));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60)); // above every bound: +Inf
        let s = h.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets.len(), BOUNDS_MICROS.len() + 1);
        assert_eq!(s.buckets[0], (0.000_025, 1));
        assert_eq!(s.buckets[1], (0.000_05, 1));
        let three_ms = s.buckets.iter().position(|(b, _)| *b == 0.005).unwrap();
        assert_eq!(s.buckets[three_ms].1, 1);
        assert_eq!(*s.buckets.last().unwrap(), (f64::INFINITY, 1));
        assert!(
            (s.sum_seconds - 60.003_051).abs() < 1e-9,
            "{}",
            s.sum_seconds
        );
    }
}
