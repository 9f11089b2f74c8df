//! The writer: one task that drains a bounded queue of messages into a [`Store`], in batches.
//!
//! **Write-behind** (`durability = "async"`, the default) hands a message to the queue with
//! [`Writer::enqueue`], which never waits, and chat goes on. **Write-ahead** (`"sync"`) uses
//! [`Writer::write`], which waits until the message's batch is committed; concurrent senders
//! share one batch (a "group commit"), so even write-ahead mode writes in batches under load.
//!
//! **Batches form by themselves.** The task takes the first waiting message and whatever else is
//! queued behind it, up to `batch`, and writes them in one go. Under light load a batch is one
//! message and nothing waits for a timer; under heavy load the queue fills while a batch is being
//! written and the next batch is large: the cost of a commit is shared by more messages exactly
//! when that matters.
//!
//! **When the store is down**, the batch in hand is retried with exponential backoff (from
//! `retry_base`, doubling, capped at `retry_max`) until it succeeds; meanwhile new messages wait
//! in the queue, and chat continues. **When the queue is full** (the store has been down for a
//! while, or is slower than the chat), write-behind keeps chatting and drops the write: every
//! dropped message is counted (`Stats::persist_dropped`) and logged at error level, because a
//! silent loss is the worst kind. Write-ahead waits for room in the queue instead: that mode
//! promises storage before delivery, so it slows the sender down rather than drop.
//!
//! **A write-ahead sender waits at most `sync_timeout`** (the persist layer's `sync_timeout_ms`):
//! then it takes its message back, certainly unstored, and gets [`StoreError::Timeout`]. How
//! "certainly" is kept while the writer may be in the middle of writing that very message is
//! `writer_ahead.rs`.
//!
//! **Shutdown.** The task lives on the server's backend [`TaskTracker`](super::Background). When
//! the server stops, it first stops the adapters (nothing produces messages any more) and then
//! cancels `stop`: the task closes the queue, writes everything still in it, and ends. If the
//! store stays unreachable, it gives up `shutdown_grace` after `stop` and logs how many messages
//! were lost.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Background, Store, StoreError};
use crate::core::{ChatMessage, Stats};
use ahead::{Waiter, finish, finish_all, release};

/// How the writer batches, queues and retries.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Messages that may wait in the queue.
    pub queue: usize,
    /// Most messages per batch.
    pub batch: usize,
    /// The first retry delay when the store is unavailable.
    pub retry_base: Duration,
    /// The longest retry delay.
    pub retry_max: Duration,
    /// How long shutdown keeps retrying an unavailable store before giving up.
    pub shutdown_grace: Duration,
    /// How long a write-ahead sender waits for its message to be stored (see the module docs).
    pub sync_timeout: Duration,
    /// How much longer a sender whose time is up waits for an attempt already under way.
    pub attempt_grace: Duration,
}

impl WriterOptions {
    /// The given queue and batch sizes with the default retry policy: 50 ms doubling up to 2 s,
    /// 30 s of retries at shutdown, and write-ahead senders waiting 5 s, plus up to 10 s for an
    /// attempt under way (longer than the stores' own timeouts: PostgreSQL's connect timeout is
    /// 3 s, SQLite's busy timeout 5 s).
    pub fn new(queue: usize, batch: usize) -> WriterOptions {
        WriterOptions {
            queue,
            batch,
            retry_base: Duration::from_millis(50),
            retry_max: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(30),
            sync_timeout: Duration::from_secs(5),
            attempt_grace: Duration::from_secs(10),
        }
    }
}

/// A queued message, with someone waiting for it in write-ahead mode.
struct Job {
    msg: Arc<ChatMessage>,
    waiter: Option<Waiter>,
}

/// A handle to the writer task; cheap to clone.
#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    stats: Arc<Stats>,
    sync_timeout: Duration,
    attempt_grace: Duration,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job({} #{})", self.msg.room, self.msg.seq)
    }
}

impl Writer {
    /// Starts the writer task for `store` on `background`.
    pub fn spawn(
        store: Arc<dyn Store>,
        options: WriterOptions,
        stats: Arc<Stats>,
        background: &Background,
    ) -> Writer {
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let (sync_timeout, attempt_grace) = (options.sync_timeout, options.attempt_grace);
        let task = Task {
            store,
            rx,
            options,
            stats: stats.clone(),
            stop: background.stop.clone(),
            give_up_at: None,
        };
        background.tracker.spawn(task.run());
        Writer {
            tx,
            stats,
            sync_timeout,
            attempt_grace,
        }
    }

    /// Write-behind: queues `msg` and returns at once. Returns false when the message was dropped
    /// (queue full, or the writer has stopped); that is counted and logged here.
    pub fn enqueue(&self, msg: Arc<ChatMessage>) -> bool {
        let job = Job { msg, waiter: None };
        match self.tx.try_send(job) {
            Ok(()) => true,
            Err(err) => {
                let (why, job) = match err {
                    mpsc::error::TrySendError::Full(job) => ("the write queue is full", job),
                    mpsc::error::TrySendError::Closed(job) => ("the writer has stopped", job),
                };
                self.stats.persist_dropped.inc();
                tracing::error!(
                    room = %job.msg.room,
                    seq = job.msg.seq,
                    queue = self.tx.max_capacity(),
                    dropped_total = self.stats.persist_dropped.get(),
                    "message NOT stored: {why}; it was delivered, but is lost at restart"
                );
                false
            }
        }
    }

    /// Messages waiting in the queue now (the batch being written is no longer counted).
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Whether the writer task is still running: once it has ended (shutdown, or a panic) no
    /// message is stored any more.
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }
}

/// The task's state.
struct Task {
    store: Arc<dyn Store>,
    rx: mpsc::Receiver<Job>,
    options: WriterOptions,
    stats: Arc<Stats>,
    stop: CancellationToken,
    /// Set when shutdown starts: retries end there.
    give_up_at: Option<Instant>,
}

impl Task {
    async fn run(mut self) {
        loop {
            let first = tokio::select! {
                job = self.rx.recv() => match job {
                    Some(job) => job,
                    None => break, // every handle dropped: nothing more can come
                },
                () = self.stop.cancelled() => break,
            };
            let batch = self.fill(first);
            self.write(batch).await;
        }
        // Shutdown: nothing produces any more; write what is still queued, then end.
        self.rx.close();
        let (before, dropped_before) =
            (self.stats.persisted.get(), self.stats.persist_dropped.get());
        while let Some(first) = self.rx.recv().await {
            let batch = self.fill(first);
            self.write(batch).await;
        }
        tracing::info!(
            flushed = self.stats.persisted.get() - before,
            lost = self.stats.persist_dropped.get() - dropped_before,
            "store writer stopped"
        );
    }

    /// `first` and whatever is queued behind it, up to a batch.
    fn fill(&mut self, first: Job) -> Vec<Job> {
        let mut batch = vec![first];
        while batch.len() < self.options.batch {
            match self.rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        batch
    }

    /// Writes `batch`, retrying while the store is unavailable (see the module docs).
    async fn write(&mut self, mut batch: Vec<Job>) {
        let mut delay = self.options.retry_base;
        loop {
            // Write-ahead messages their senders took back are not written; the others are
            // claimed for this attempt.
            batch.retain(|job| job.waiter.as_ref().is_none_or(Waiter::claim_for_attempt));
            if batch.is_empty() {
                return;
            }
            let msgs: Vec<Arc<ChatMessage>> = batch.iter().map(|job| job.msg.clone()).collect();
            let err = match self.store.append(&msgs).await {
                Ok(appended) => {
                    self.stats.persist_batches.inc();
                    let rejected = appended.rejected;
                    let ok = batch.len() - rejected.len();
                    self.stats
                        .persisted
                        .fetch_add(ok as u64, std::sync::atomic::Ordering::Relaxed);
                    let mut results: Vec<Result<(), StoreError>> = vec![Ok(()); batch.len()];
                    for (i, why) in rejected {
                        self.stats.persist_rejected.inc();
                        let msg = &msgs[i];
                        tracing::error!(room = %msg.room, seq = msg.seq, %why, "the store refused a message; the rest of its batch is stored");
                        if let Some(slot) = results.get_mut(i) {
                            *slot = Err(StoreError::Rejected(why));
                        }
                    }
                    finish(batch, results);
                    return;
                }
                Err(StoreError::Unavailable(why)) => why,
                Err(other) => {
                    self.lose(&batch, &other.to_string());
                    finish_all(batch, other);
                    return;
                }
            };
            if self.stop.is_cancelled() {
                let give_up_at = *self
                    .give_up_at
                    .get_or_insert_with(|| Instant::now() + self.options.shutdown_grace);
                if Instant::now() >= give_up_at {
                    self.lose(&batch, &format!("still unavailable at shutdown: {err}"));
                    finish_all(batch, StoreError::Unavailable(err));
                    return;
                }
            }
            batch = release(batch, Instant::now(), self.options.sync_timeout);
            if batch.is_empty() {
                return;
            }
            self.stats.persist_retries.inc();
            tracing::warn!(batch = batch.len(), retry_in = ?delay, "store unavailable, retrying: {err}");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.options.retry_max);
        }
    }

    fn lose(&self, batch: &[Job], why: &str) {
        self.stats
            .persist_dropped
            .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
        for job in batch {
            tracing::error!(room = %job.msg.room, seq = job.msg.seq, "message NOT stored: {why}");
        }
    }
}

#[path = "writer_ahead.rs"]
mod ahead;

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
