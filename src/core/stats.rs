//! Counters every part of the server can bump without locking.
//!
//! Plain relaxed atomics: a counter is read rarely (by tests, logs and the `/metrics` endpoint,
//! see `crate::ops::metrics`) and bumped often, so it must cost no more than an add. The delivery
//! latency histograms are atomic too (see [`super::latency`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::identity::Protocol;
use super::latency::{Histogram, Tally};
use super::message::{ChatMessage, Origin, now_ms};
use super::outbound::{Overflow, QueueBudget};

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

/// One counter per protocol.
#[derive(Debug, Default)]
pub struct ByProtocol {
    /// The line protocol (netcat).
    pub tcp: Counter,
    /// HTTP (REST and Server-Sent Events).
    pub http: Counter,
    /// IRC.
    pub irc: Counter,
}

impl ByProtocol {
    /// The counter of `protocol`.
    pub fn get(&self, protocol: Protocol) -> &Counter {
        match protocol {
            Protocol::Tcp => &self.tcp,
            Protocol::Http => &self.http,
            Protocol::Irc => &self.irc,
        }
    }
}

/// The server's counters.
#[derive(Debug, Default)]
pub struct Stats {
    /// Sessions opened since start, by protocol.
    pub sessions_opened_by: ByProtocol,
    /// Connections accepted since start, by protocol (an HTTP connection may carry many
    /// requests; a TCP connection is one session).
    pub connections_opened: ByProtocol,
    /// Connections ended since start, by protocol.
    pub connections_closed: ByProtocol,
    /// Chat messages accepted from local sessions.
    pub messages_in: Counter,
    /// Chat messages handed to recipients' queues.
    pub deliveries: Counter,
    /// Sessions disconnected because their outbound queue was full.
    pub slow_consumers: Counter,
    /// Of those, the ones cut because the instance's budget for waiting events was used up
    /// (`[server] max_queued_bytes`) and they held more than their share.
    pub budget_cuts: Counter,
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
    /// Messages and presence changes handed to the bus without error. (With `poll` a message
    /// travels in the store, so its hand-off is a no-op, counted all the same.)
    pub bus_published: Counter,
    /// Messages and presence changes received from other instances and fed into the stack.
    pub bus_received: Counter,
    /// Times the bus's connection was lost and established again.
    pub bus_reconnects: Counter,
    /// Messages read from the store to fill a hole in a room's sequence.
    pub gap_fills: Counter,
    /// Seconds from numbering to hand-off to the socket, for messages sent on this instance.
    pub latency_local: Histogram,
    /// The same for messages from other instances (wall clocks, see [`Stats::handed_over`]).
    pub latency_remote: Histogram,
    /// Requests refused by the `rate_limit` layer.
    pub rate_limited: Counter,
    /// The bytes waiting in every outbound queue (sessions and event streams), against
    /// `[server] max_queued_bytes` (see `core::outbound`).
    pub queued: QueueBudget,
    /// Event streams refused: too many for their session or their address.
    pub streams_refused: Counter,
    /// Pages of history read for event streams (each costs a rate-limit token).
    pub replay_pages: Counter,
    /// Joins refused because they would create a room beyond `max_rooms` or beyond the
    /// creating address's `max_rooms_per_ip`.
    pub rooms_refused: Counter,
    /// Idle rooms evicted from memory (their history stays in the store).
    pub rooms_evicted: Counter,
}

impl Stats {
    /// Counts a reader cut off for its full queue, and among those the ones the instance's
    /// budget cut (`overflow` says which bound was reached).
    pub fn slow_consumer(&self, overflow: Overflow) {
        self.slow_consumers.inc();
        if matches!(overflow, Overflow::Instance(_)) {
            self.budget_cuts.inc();
        }
    }

    /// Records that an adapter handed `msg` to a recipient's socket or event stream: its delivery
    /// latency goes into [`Stats::latency_local`] or [`Stats::latency_remote`] by origin. See
    /// [`ChatMessage::age`] for how the age of a message from another instance is measured.
    pub fn handed_over(&self, msg: &ChatMessage) {
        self.handover().message(msg);
    }

    /// A batch of hand-offs at one moment (one write of many messages): the clock is read once
    /// for the batch and the histograms are updated once, when the [`Handover`] is dropped.
    pub fn handover(&self) -> Handover<'_> {
        Handover {
            stats: self,
            now: Instant::now(),
            wall_ms: None,
            handed: None,
            local: Tally::default(),
            remote: Tally::default(),
        }
    }
}

/// The messages of one batch handed to a socket at the same moment (see [`Stats::handover`]).
#[derive(Debug)]
pub struct Handover<'a> {
    stats: &'a Stats,
    now: Instant,
    /// The wall clock, read once if a message from another instance needs it.
    wall_ms: Option<i64>,
    /// When the oldest message of the batch was handed to the queues (see
    /// [`ChatMessage::handed`]).
    handed: Option<Instant>,
    local: Tally,
    remote: Tally,
}

impl Handover<'_> {
    /// The moment of the handover (its one clock reading).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// When the oldest chat message of the batch was handed to the queues, if it has one.
    pub fn oldest_handed(&self) -> Option<Instant> {
        self.handed
    }

    /// Records that `msg` is handed over now: its delivery latency is counted by origin.
    pub fn message(&mut self, msg: &ChatMessage) {
        if let Some(handed) = msg.handed() {
            self.handed = Some(self.handed.map_or(handed, |oldest| oldest.min(handed)));
        }
        let wall_ms = &mut self.wall_ms;
        // A message from an instance whose clock is ahead has no age to measure: left out rather
        // than counted as instantaneous.
        let Some(age) = msg.age_at(self.now, || *wall_ms.get_or_insert_with(now_ms)) else {
            return;
        };
        match msg.origin {
            Origin::Local(_) => self.local.observe(age),
            Origin::Remote(_) => self.remote.observe(age),
        }
    }
}

impl Drop for Handover<'_> {
    fn drop(&mut self) {
        self.stats.latency_local.add(&self.local);
        self.stats.latency_remote.add(&self.remote);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::sample;

    /// Pacing (`adapters::pace`) reads how long a batch's oldest message waited in its queue:
    /// the earliest `handed` of the batch's messages, whatever their order, and none for a
    /// batch of messages no room handed out (replies, replays).
    #[test]
    fn a_handover_knows_when_its_oldest_message_was_handed_out() {
        let stats = Stats::default();
        let (first, second, never) = (
            sample("a", 1, "ann", "x"),
            sample("a", 2, "bob", "y"),
            sample("a", 3, "cy", "z"),
        );
        first.hand_out();
        std::thread::sleep(std::time::Duration::from_millis(2));
        second.hand_out();
        let (oldest, newer) = (first.handed().unwrap(), second.handed().unwrap());
        assert!(oldest < newer);

        let mut handover = stats.handover();
        assert_eq!(handover.oldest_handed(), None, "nothing taken yet");
        handover.message(&never);
        assert_eq!(
            handover.oldest_handed(),
            None,
            "a message no room handed out"
        );
        handover.message(&second);
        assert_eq!(handover.oldest_handed(), Some(newer));
        handover.message(&first);
        assert_eq!(
            handover.oldest_handed(),
            Some(oldest),
            "the earliest, taken later"
        );
        handover.message(&second);
        assert_eq!(
            handover.oldest_handed(),
            Some(oldest),
            "a newer one changes nothing"
        );
        assert!(handover.now() >= newer);
    }
}
