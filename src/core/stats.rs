//! Counters every part of the server can bump without locking.
//!
//! Plain relaxed atomics: a counter is read rarely (by tests, logs and, later, the metrics
//! endpoint) and bumped often, so it must cost no more than an add.

use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn fetch_add(&self, n: u64, order: Ordering) -> u64 {
        self.0.fetch_add(n, order)
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The server's counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Sessions opened since start.
    pub sessions_opened: Counter,
    /// Chat messages accepted from local sessions.
    pub messages_in: Counter,
    /// Chat messages handed to recipients' queues.
    pub deliveries: Counter,
    /// Sessions disconnected because their outbound queue was full.
    pub slow_consumers: Counter,
    /// Sequence numbers given up on (a message that never arrived).
    pub gaps_skipped: Counter,
    /// Messages or presence changes the bus failed to hand to the other instances.
    pub bus_failures: Counter,
    /// Messages written to the store.
    pub persisted: Counter,
    /// Batches written to the store (one transaction or statement each).
    pub persist_batches: Counter,
    /// Batch writes retried because the store was unavailable.
    pub persist_retries: Counter,
    /// Messages never stored: the write queue was full, or the store stayed unreachable
    /// through shutdown. Each one is also logged.
    pub persist_dropped: Counter,
    /// Write-ahead messages refused because the store did not take them within the persist
    /// layer's `sync_timeout_ms`: not stored, not delivered, the sender told to try again.
    pub persist_timeouts: Counter,
    /// Messages the store refused one by one (a row it cannot hold); the rest of their batch
    /// was written.
    pub persist_rejected: Counter,
}
