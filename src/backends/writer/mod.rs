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
//! `ahead.rs`.
//!
//! **Read your writes.** A message written behind is delivered at once and stored a batch later;
//! until then it is in the queue, in neither the store nor (once evicted) a room's ring. So the
//! writer keeps an index of what it holds for each room ([`Writer::pending`]), and history reads
//! consult it before the store: a message the server has shown is never missing from a read.
//! Write-ahead messages are not in it: they count only once stored. Tombstones ([`Row::Skipped`],
//! seqs whose senders abandoned them) are written behind, and indexed, like messages.
//!
//! **Conflicts.** A row whose slot holds something else (a tombstone written first by instances
//! that gave up waiting for it, see `backends::gaps`) is not stored: a write-ahead sender is told
//! so ([`StoreError::Conflict`]); a message written behind is lost, counted and logged.
//!
//! **Shutdown.** The task lives on the server's backend [`TaskTracker`](super::Background). When
//! the server stops, it first stops the adapters (nothing produces messages any more) and then
//! cancels `stop`: the task closes the queue, writes everything still in it, and ends. If the
//! store stays unreachable, it gives up `shutdown_grace` after `stop` and logs how many messages
//! were lost.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Background, Row, Store, StoreError};
use crate::core::{ChatMessage, Page, RoomName, Stats};
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

/// A queued row, with someone waiting for it in write-ahead mode.
struct Job {
    row: Row,
    waiter: Option<Waiter>,
}

/// A handle to the writer task; cheap to clone.
#[derive(Debug, Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    stats: Arc<Stats>,
    sync_timeout: Duration,
    attempt_grace: Duration,
    pending: Pending,
    failing: Failing,
}

/// Since when, and why, the writer has been retrying the batch in hand ([`Writer::failing`]);
/// `None` while it is not retrying.
type Failing = Arc<Mutex<Option<(Instant, String)>>>;

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job({} #{})", self.row.room(), self.row.seq())
    }
}

/// The rows written behind that the writer holds, by room and seq (see the module docs).
#[derive(Debug, Clone, Default)]
struct Pending(Arc<Mutex<HashMap<RoomName, BTreeMap<u64, Row>>>>);

impl Pending {
    fn lock(&self) -> MutexGuard<'_, HashMap<RoomName, BTreeMap<u64, Row>>> {
        lock(&self.0)
    }

    fn add(&self, row: &Row) {
        self.lock()
            .entry(row.room().clone())
            .or_default()
            .insert(row.seq(), row.clone());
    }

    fn remove(&self, row: &Row) {
        let mut rooms = self.lock();
        if let Some(rows) = rooms.get_mut(row.room()) {
            rows.remove(&row.seq());
            if rows.is_empty() {
                rooms.remove(row.room());
            }
        }
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
        let (pending, failing) = (Pending::default(), Failing::default());
        let task = Task {
            store,
            rx,
            options,
            stats: stats.clone(),
            stop: background.stop.clone(),
            give_up_at: None,
            pending: pending.clone(),
            failing: failing.clone(),
        };
        background.tracker.spawn(task.run());
        Writer {
            tx,
            stats,
            sync_timeout,
            attempt_grace,
            pending,
            failing,
        }
    }

    /// Write-behind: queues `msg` and returns at once. Returns false when the message was dropped
    /// (queue full, or the writer has stopped); that is counted and logged here.
    pub fn enqueue(&self, msg: Arc<ChatMessage>) -> bool {
        self.behind(Row::Message(msg))
    }

    /// Records that `seq` of `room` carries no message (its sender abandoned it): a tombstone,
    /// written behind. Returns false when it could not be queued (counted and logged).
    pub fn enqueue_skip(&self, room: RoomName, seq: u64) -> bool {
        self.behind(Row::Skipped { room, seq })
    }

    fn behind(&self, row: Row) -> bool {
        self.pending.add(&row);
        let job = Job { row, waiter: None };
        match self.tx.try_send(job) {
            Ok(()) => true,
            Err(err) => {
                let (why, job) = match err {
                    mpsc::error::TrySendError::Full(job) => ("the write queue is full", job),
                    mpsc::error::TrySendError::Closed(job) => ("the writer has stopped", job),
                };
                self.pending.remove(&job.row);
                self.stats.persist_dropped.inc();
                let (room, seq) = (job.row.room(), job.row.seq());
                let (queue, dropped_total) =
                    (self.tx.max_capacity(), self.stats.persist_dropped.get());
                match job.row {
                    Row::Message(_) => tracing::error!(%room, seq, queue, dropped_total,
                        "message NOT stored: {why}; it was delivered, but is lost at restart"),
                    Row::Skipped { .. } => tracing::error!(%room, seq, queue, dropped_total,
                        "tombstone NOT stored: {why}; readers crossing this seq will be told it is missing"),
                }
                false
            }
        }
    }

    /// The rows of `room` in `after+1..=upto` that are queued to be written behind (or being
    /// written): what a history read adds to the store's answer. Read it before the store: a row
    /// leaves this index only once it is stored.
    pub fn pending(&self, room: &RoomName, after: u64, upto: u64) -> Page {
        let rooms = self.pending.lock();
        let mut page = Page::default();
        let Some(rows) = rooms.get(room) else {
            return page;
        };
        for row in rows
            .range(after.saturating_add(1)..=upto)
            .map(|(_, row)| row)
        {
            match row {
                Row::Message(msg) => page.messages.push(msg.clone()),
                Row::Skipped { seq, .. } => page.skipped.push(*seq),
            }
        }
        page
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

    /// Since when the writer has been retrying the batch in hand because the store did not
    /// take it (unavailable), and the last error; `None` while it is not retrying: the store
    /// took the last batch, or the writer has nothing in hand (the senders of a write-ahead
    /// batch took their messages back at their timeout), so that it cannot tell. A store can
    /// answer a read and still take no write: a full disk, a database set read-only. `/readyz`
    /// asks this beside its `SELECT 1` (`crate::ops::health`).
    pub fn failing(&self) -> Option<(Instant, String)> {
        lock(&self.failing).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
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
    /// The index of what is written behind: a row leaves it once its fate is known.
    pending: Pending,
    /// Shared with the handles: whether the batch in hand is being retried.
    failing: Failing,
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
            *lock(&self.failing) = None;
        }
        // Shutdown: nothing produces any more; write what is still queued, then end.
        self.rx.close();
        let (before, dropped_before) =
            (self.stats.persisted.get(), self.stats.persist_dropped.get());
        while let Some(first) = self.rx.recv().await {
            let batch = self.fill(first);
            self.write(batch).await;
            *lock(&self.failing) = None;
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
            let rows: Vec<Row> = batch.iter().map(|job| job.row.clone()).collect();
            let result = self.store.append(&rows).await;
            self.note(&result);
            let err = match result {
                Ok(appended) => {
                    self.stats.persist_batches.inc();
                    let failed = appended.rejected.len() + appended.conflicts.len();
                    self.stats.persisted.fetch_add(
                        (batch.len() - failed) as u64,
                        std::sync::atomic::Ordering::Relaxed,
                    );
                    let mut results: Vec<Result<(), StoreError>> = vec![Ok(()); batch.len()];
                    for (i, why) in appended.rejected {
                        self.stats.persist_rejected.inc();
                        let row = &rows[i];
                        tracing::error!(room = %row.room(), seq = row.seq(), %why, "the store refused a row; the rest of its batch is stored");
                        results[i] = Err(StoreError::Rejected(why));
                    }
                    for i in appended.conflicts {
                        results[i] = Err(self.conflict(&batch[i]));
                    }
                    for job in &batch {
                        self.pending.remove(&job.row);
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

    /// Keeps [`Writer::failing`] up to date with an attempt at the batch in hand: failing since
    /// the first attempt the store was unavailable for, and no longer once it answered.
    /// [`Task::run`] clears it too once the batch is done with, whichever way.
    fn note<T>(&self, result: &Result<T, StoreError>) {
        let mut failing = lock(&self.failing);
        *failing = match result {
            Err(StoreError::Unavailable(why)) => {
                let since = failing
                    .as_ref()
                    .map_or_else(Instant::now, |(since, _)| *since);
                Some((since, why.clone()))
            }
            _ => None,
        };
    }

    fn lose(&self, batch: &[Job], why: &str) {
        self.stats
            .persist_dropped
            .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
        for job in batch {
            self.pending.remove(&job.row);
            tracing::error!(room = %job.row.room(), seq = job.row.seq(), "NOT stored: {why}");
        }
    }

    /// What a row whose slot was taken becomes (see the module docs).
    fn conflict(&self, job: &Job) -> StoreError {
        let (room, seq) = (job.row.room(), job.row.seq());
        match (&job.row, &job.waiter) {
            (Row::Skipped { .. }, _) => {
                tracing::debug!(%room, seq, "a tombstone found its seq taken: the stored row stands");
            }
            (Row::Message(_), Some(_)) => {
                tracing::warn!(%room, seq, "message refused: the other instances gave up waiting for its seq");
            }
            (Row::Message(_), None) => {
                self.stats.persist_dropped.inc();
                tracing::error!(%room, seq, "message NOT stored: the other instances gave up waiting for its seq; it was delivered here, but is lost");
            }
        }
        StoreError::Conflict(format!("{room} #{seq} is taken"))
    }
}

mod ahead;

#[cfg(test)]
mod tests;
