//! The writer's write-ahead side: a sender waits for its message to be stored, but not forever.
//!
//! **The promise.** A write-ahead sender waits at most `sync_timeout` (the persist layer's
//! `sync_timeout_ms`). Then it takes its message back and gets [`StoreError::Timeout`]; the
//! message is not stored, so it must not be delivered either (the persist layer refuses it, and
//! the route layer frees its seq so that the room goes on).
//!
//! **Taking it back must be certain**, or a message could be stored after its sender was told
//! it failed (and then show up in the history, or on another instance that fills a gap from the
//! store). So each waiting message has a small state, a [`Claim`], that the sender and the writer
//! move with compare-and-swap:
//!
//! * `QUEUED`: in the queue, or in the writer's hand between two attempts. The sender may take it
//!   back (`QUEUED` to `ABANDONED`).
//! * `WRITING`: an attempt to store it is under way. Its outcome decides: the sender waits for
//!   that one attempt, for at most `attempt_grace`.
//! * `ABANDONED`: taken back. The writer leaves it out of every later attempt.
//!
//! Before each attempt the writer claims its batch (`QUEUED` to `WRITING`) and drops what was
//! taken back; after a failed attempt it answers, with `Timeout`, every message whose time is up
//! and hands the others back (`QUEUED`). The wait is therefore `sync_timeout`, plus the attempt
//! under way if there is one (a PostgreSQL that is down fails an attempt within its 3 s connect
//! timeout), but never more than `attempt_grace` (10 s) beyond `sync_timeout`: a store that hangs
//! mid-statement gets its senders a `Timeout` too. That one case is uncertain: if the hung attempt
//! commits later, the message is stored without having been delivered (it shows in the history),
//! and [`finish`] logs it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Job, Writer};
use crate::backends::{Row, StoreError};
use crate::core::ChatMessage;

/// The write-ahead sender of a queued message: where to send the outcome, and until when.
pub(super) struct Waiter {
    done: oneshot::Sender<Result<(), StoreError>>,
    claim: Arc<Claim>,
    deadline: Instant,
}

impl Waiter {
    /// Claims the message for an attempt; false when its sender has taken it back.
    pub(super) fn claim_for_attempt(&self) -> bool {
        self.claim.swap(Claim::QUEUED, Claim::WRITING)
    }
}

/// Who holds a write-ahead message: its sender or the writer (see the module docs).
#[derive(Debug, Default)]
pub(super) struct Claim(AtomicU8);

impl Claim {
    /// In the queue or between attempts: the sender may take it back.
    const QUEUED: u8 = 0;
    /// In an attempt to store it: the attempt's outcome decides.
    const WRITING: u8 = 1;
    /// Taken back by its sender: never to be stored.
    const ABANDONED: u8 = 2;

    /// Moves `from` to `to`; false when the state was not `from`.
    fn swap(&self, from: u8, to: u8) -> bool {
        self.0
            .compare_exchange(from, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn set(&self, state: u8) {
        self.0.store(state, Ordering::Release);
    }
}

impl Writer {
    /// Write-ahead: queues `msg` (waiting for room) and waits until its batch is committed, or
    /// until `sync_timeout` has passed and the message is taken back (see the module docs).
    ///
    /// # Errors
    /// [`StoreError::Timeout`] when the store did not take the message in time (it is then not
    /// stored, except in the one uncertain case the module docs describe); the store's own error
    /// when it refused the message; `Unavailable` when the writer stopped before writing it.
    pub async fn write(&self, msg: Arc<ChatMessage>) -> Result<(), StoreError> {
        let result = self.write_within(msg).await;
        if matches!(result, Err(StoreError::Timeout(_))) {
            self.stats.persist_timeouts.inc();
        }
        result
    }

    async fn write_within(&self, msg: Arc<ChatMessage>) -> Result<(), StoreError> {
        let deadline = Instant::now() + self.sync_timeout;
        let timed_out = || StoreError::Timeout(self.sync_timeout);
        let stopped = || StoreError::Unavailable("the writer has stopped".into());
        let claim = Arc::new(Claim::default());
        let (done, mut result) = oneshot::channel();
        let job = Job {
            row: Row::Message(msg),
            waiter: Some(Waiter {
                done,
                claim: claim.clone(),
                deadline,
            }),
        };
        match tokio::time::timeout_at(deadline, self.tx.send(job)).await {
            Err(_) => return Err(timed_out()), // the queue stayed full: never queued
            Ok(Err(_)) => return Err(stopped()),
            Ok(Ok(())) => {}
        }
        // A sender that stops waiting early (its HTTP client went away, a `timeout` layer or the
        // adapter's request timeout dropped this future) takes its message back too: the
        // request failed, so the message must not be stored behind its back.
        let _take_back = TakeBackOnDrop(claim.clone());
        tokio::select! {
            outcome = &mut result => return outcome.map_err(|_| stopped())?,
            () = tokio::time::sleep_until(deadline) => {}
        }
        if claim.swap(Claim::QUEUED, Claim::ABANDONED) {
            return Err(timed_out()); // the writer will leave it out
        }
        // An attempt to store it is under way (or has just answered): its outcome decides, if it
        // comes within `attempt_grace`.
        match tokio::time::timeout(self.attempt_grace, result).await {
            Ok(outcome) => outcome.map_err(|_| stopped())?,
            Err(_) => Err(timed_out()),
        }
    }
}

/// Takes a queued message back when its sender's future is dropped; once an attempt has claimed
/// it (or it was answered), this does nothing.
struct TakeBackOnDrop(Arc<Claim>);

impl Drop for TakeBackOnDrop {
    fn drop(&mut self) {
        self.0.swap(Claim::QUEUED, Claim::ABANDONED);
    }
}

/// After a failed attempt: answers the write-ahead messages whose time is up (they are not
/// stored, and now never will be), drops those whose sender is gone, and hands the others back to
/// their senders' claim; returns what is left to retry.
pub(super) fn release(batch: Vec<Job>, now: Instant, sync_timeout: Duration) -> Vec<Job> {
    let mut left = Vec::with_capacity(batch.len());
    for job in batch {
        match job.waiter {
            // Time is up, or the sender stopped waiting during the attempt: out for good.
            Some(waiter) if now >= waiter.deadline || waiter.done.is_closed() => {
                waiter.claim.set(Claim::ABANDONED);
                let _ = waiter.done.send(Err(StoreError::Timeout(sync_timeout)));
            }
            Some(ref waiter) => {
                waiter.claim.set(Claim::QUEUED);
                left.push(job);
            }
            None => left.push(job),
        }
    }
    left
}

/// Tells each waiting sender of `batch` its result.
pub(super) fn finish(batch: Vec<Job>, results: Vec<Result<(), StoreError>>) {
    for (job, result) in batch.into_iter().zip(results) {
        if let Some(waiter) = job.waiter
            && let Err(Ok(())) = waiter.done.send(result)
        {
            // Stored, but its sender stopped waiting (an attempt that hung past the grace, or a
            // sender that disconnected): in the history, never delivered live.
            tracing::warn!(room = %job.row.room(), seq = job.row.seq(),
                "message stored after its sender stopped waiting: it was not delivered live, but is in the history");
        }
    }
}

/// Tells each waiting sender of `batch` the same error.
pub(super) fn finish_all(batch: Vec<Job>, err: StoreError) {
    let n = batch.len();
    finish(batch, vec![Err(err); n]);
}
