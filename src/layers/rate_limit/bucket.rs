//! The token bucket of the rate-limit layer: its rate, one bucket (kept as the instant it will be
//! full again; the arithmetic is explained in the layer's module docs), and a map of buckets by
//! key that sweeps itself of full ones as it grows.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// Below this many buckets a map is never swept: sweeping a small map saves nothing.
pub(super) const SWEEP_FLOOR: usize = 1024;

/// A bucket's size and refill rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Time for one token to come back: a second divided by `per_second`.
    interval: Duration,
    /// The most tokens the bucket holds.
    burst: u32,
}

impl Rate {
    /// `per_second` tokens a second, at most `burst` at once. Both are at least 1 (the pipeline
    /// check makes sure; a 0 here is treated as 1).
    pub fn new(per_second: u32, burst: u32) -> Rate {
        Rate {
            interval: Duration::from_secs(1) / per_second.max(1),
            burst: burst.max(1),
        }
    }

    /// How long an empty bucket takes to fill up.
    fn fill_time(&self) -> Duration {
        self.interval * self.burst
    }
}

/// One token bucket, kept as the instant it will be full again (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    full_at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn full(now: Instant) -> Bucket {
        Bucket { full_at: now }
    }

    /// Takes one token at `now`.
    ///
    /// # Errors
    /// When the bucket is empty: how long until it holds a token again.
    pub fn take(&mut self, rate: &Rate, now: Instant) -> Result<(), Duration> {
        *self = self.after_take(rate, now)?;
        Ok(())
    }

    /// The bucket as it would be after a token is taken at `now`, without taking it: two
    /// buckets are checked before either is charged, so a request refused by one costs nothing
    /// from the other.
    ///
    /// # Errors
    /// As [`Bucket::take`].
    fn after_take(&self, rate: &Rate, now: Instant) -> Result<Bucket, Duration> {
        // Taking a token pushes the moment the bucket is full again one interval further. The
        // bucket is short of `burst` tokens exactly when that moment is a fill time away, so a
        // take is allowed while it stays within one fill time of now.
        let full_at = self.full_at.max(now) + rate.interval;
        let deficit = full_at - now;
        if deficit <= rate.fill_time() {
            Ok(Bucket { full_at })
        } else {
            Err(deficit - rate.fill_time())
        }
    }

    /// Whether the bucket has refilled completely by `now` (and so carries no information).
    pub fn is_full(&self, now: Instant) -> bool {
        self.full_at <= now
    }
}

/// Buckets by key (session or address) at one rate, swept of full ones as the map grows.
#[derive(Debug)]
pub(super) struct BucketMap<K> {
    rate: Rate,
    pub(super) buckets: HashMap<K, Bucket>,
    /// The map's size after its last sweep: the next sweep waits until it has doubled.
    swept_at: usize,
}

impl<K: Hash + Eq + Copy> BucketMap<K> {
    pub(super) fn new(rate: Rate) -> BucketMap<K> {
        BucketMap {
            rate,
            buckets: HashMap::new(),
            swept_at: 0,
        }
    }

    /// `key`'s bucket after a token is taken at `now` (a new key's bucket starts full), or how
    /// long to wait; nothing changes until [`BucketMap::put`].
    pub(super) fn check(&mut self, key: K, now: Instant) -> Result<Bucket, Duration> {
        if self.buckets.len() >= (2 * self.swept_at).max(SWEEP_FLOOR) {
            self.buckets.retain(|_, bucket| !bucket.is_full(now));
            self.swept_at = self.buckets.len();
        }
        let bucket = self.buckets.get(&key).copied();
        bucket
            .unwrap_or_else(|| Bucket::full(now))
            .after_take(&self.rate, now)
    }

    pub(super) fn put(&mut self, key: K, bucket: Bucket) {
        self.buckets.insert(key, bucket);
    }
}
