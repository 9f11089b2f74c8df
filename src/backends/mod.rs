//! Backends: the services outside the process that chatd talks to, each owning its connections.
//!
//! A layer never holds a database connection. It holds a cheap handle to a backend (an
//! `Arc<dyn Store>`, a [`Writer`]) and the backend owns what is expensive: SQLite's connections
//! and their thread hops ([`sqlite`]), PostgreSQL's pool ([`postgres`]), the write-behind queue
//! and its task ([`writer`]). The schema both stores share lives in `migrations/` and is applied
//! at start by [`migrate`].
//!
//! **The seam.** [`Store`] is everything the persist layer needs of a database: append a batch,
//! read history, say where a room's history stands after a restart, and answer a ping for the
//! readiness check (`crate::ops::health`). Two stores implement it;
//! the writer and the layer above do not know which one they talk to, and their unit tests use a
//! mock.
//!
//! **Across instances.** [`Bus`] is the seam of the cross-instance fan-out backends: [`poll`]
//! (phase 2) shares rooms through the PostgreSQL store's tables and its own shared sequence.

pub mod bus;
pub mod directory;
pub mod gaps;
pub mod migrate;
#[cfg(test)]
pub(crate) mod mock;
pub mod options;
pub mod poll;
pub mod postgres;
pub mod postgres_directory;
pub mod presence_codec;
pub mod sequencer;
pub mod sqlite;
pub mod valkey;
pub mod writer;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::core::message::now_ms;
use crate::core::{ChatMessage, HistoryQuery, Nick, Origin, Page, RoomName, StoredRoom};

pub use bus::{Bus, BusHealth};
pub use directory::{Directory, LocalDirectory};
pub use options::{Durability, mask_password, masked};
pub use writer::{Writer, WriterOptions};

/// Why a store operation failed, which decides what the caller does next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or is busy (connection refused, timeout, a lock): the same
    /// request may succeed later, so the writer retries it.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// The store refused this data; sending it again will not help.
    #[error("the store refused the write: {0}")]
    Rejected(String),
    /// A write-ahead message was not stored within the persist layer's `sync_timeout_ms` and was
    /// taken back: it is not stored and never will be, except in the one uncertain case of an
    /// attempt that hangs past its grace and commits later (see `writer/ahead.rs`).
    #[error("the store did not answer within {} ms", .0.as_millis())]
    Timeout(std::time::Duration),
    /// The row's room and seq hold something else already: the instances gave up waiting for
    /// this seq and settled it as empty before the message reached the store (see
    /// `backends::gaps`). Not stored, and never will be.
    #[error("the seq was given up before the message was stored: {0}")]
    Conflict(String),
    /// The database was set up by a newer chatd (see [`migrate`]).
    #[error(
        "the database schema is at version {found}, but this chatd knows versions up to {known} \
         only: a newer chatd has migrated it. Run that newer chatd, or point this one at another \
         database"
    )]
    SchemaTooNew {
        /// The version the database is at.
        found: i64,
        /// The newest version this binary has migrations for.
        known: i64,
    },
}

/// One row for a store: a chat message, or a tombstone for a seq that will never carry one.
#[derive(Debug, Clone)]
pub enum Row {
    /// A message.
    Message(Arc<ChatMessage>),
    /// A seq abandoned by its sender after it was numbered (see `layers::route`): stored so that
    /// every reader, on every instance, can tell this hole is settled.
    Skipped {
        /// The room.
        room: RoomName,
        /// The seq.
        seq: u64,
    },
}

impl Row {
    /// The row's room.
    pub fn room(&self) -> &RoomName {
        match self {
            Row::Message(msg) => &msg.room,
            Row::Skipped { room, .. } => room,
        }
    }

    /// The row's seq.
    pub fn seq(&self) -> u64 {
        match self {
            Row::Message(msg) => msg.seq,
            Row::Skipped { seq, .. } => *seq,
        }
    }
}

/// What [`Store::append`] did with a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Appended {
    /// Rows newly written (a row already stored as it is, as after a retried batch, is not
    /// written again and not counted).
    pub written: usize,
    /// Rows the store refused, by their index in the batch, with the reason. The rest of the
    /// batch is written: one bad row never loses its neighbours.
    pub rejected: Vec<(usize, String)>,
    /// Rows whose room and seq hold something else already, by index: a message whose seq the
    /// instances gave up on (a tombstone took the slot first), or a tombstone for a seq that
    /// carries a message. The stored row stands.
    pub conflicts: Vec<usize>,
}

/// A durable home for chat messages; see the module docs.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Stores `batch`. A row whose room and seq are stored already is left as it is: the same
    /// row again (a batch retried after an error) is stored exactly once; a different one is a
    /// conflict (see [`Appended::conflicts`]).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when nothing could be written and a retry may succeed.
    fn append<'a>(&'a self, batch: &'a [Row]) -> BoxFuture<'a, Result<Appended, StoreError>>;

    /// The newest `query.limit` rows (messages and tombstones) of `query`'s span, oldest first.
    ///
    /// # Errors
    /// When the store cannot be read.
    fn history<'a>(&'a self, query: &'a HistoryQuery) -> BoxFuture<'a, Result<Page, StoreError>>;

    /// Whether the store answers right now, with one cheap round trip (`SELECT 1`). The
    /// readiness check (`GET /readyz`) asks this; it bounds the wait itself.
    ///
    /// # Errors
    /// Why the store did not answer.
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The names of the rooms that have stored messages, sorted, at most `limit` of them: what
    /// `/rooms` lists after a restart, before anybody has joined them. Stores that cannot tell
    /// list none.
    ///
    /// # Errors
    /// When the store cannot be read.
    fn rooms(&self, limit: usize) -> BoxFuture<'_, Result<Vec<RoomName>, StoreError>> {
        let _ = limit;
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    /// Where `room` stands: its newest `window` rows and how far its numbering went (what
    /// [`crate::core::OpenRoom`] asks when a room is first used).
    ///
    /// # Errors
    /// When the store cannot be read.
    fn open_room<'a>(
        &'a self,
        room: &'a RoomName,
        window: usize,
    ) -> BoxFuture<'a, Result<StoredRoom, StoreError>>;

    /// Reserves the next `block` seqs of `room` for the instance called `owner`, after `after`
    /// and after every earlier reservation; returns the highest seq reserved. Durable before it
    /// returns, so that a process numbering in memory never hands a seq out twice across a crash
    /// (see `backends::sequencer`).
    ///
    /// # Errors
    /// When the store cannot be written.
    fn reserve<'a>(
        &'a self,
        room: &'a RoomName,
        after: u64,
        block: u64,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// Gives back what is left of a reservation: if `room`'s reservation still ends at
    /// `ceiling`, it now ends at `last` (the last seq handed out). A clean stop then leaves no
    /// unused seqs behind.
    ///
    /// # Errors
    /// When the store cannot be written.
    fn release<'a>(
        &'a self,
        room: &'a RoomName,
        ceiling: u64,
        last: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Settles the seqs `from..=to` of `room` for good: each one that holds nothing yet gets a
    /// tombstone, in one statement, so that a message written later with such a seq is refused
    /// (it conflicts). Returns what the span holds afterwards: the messages that were there
    /// after all, and the tombstones. The unique (room, seq) index is the referee between the
    /// instance giving up and the one still writing (see `backends::gaps`).
    ///
    /// # Errors
    /// When the store cannot be written.
    fn settle<'a>(
        &'a self,
        room: &'a RoomName,
        from: u64,
        to: u64,
    ) -> BoxFuture<'a, Result<Page, StoreError>>;
}

/// Where the background tasks of the backends (the writer) live, and how they are told to stop.
///
/// Separate from the adapters' shutdown signal on purpose: the writer must keep draining until
/// the adapters have stopped producing, so the server stops them first and only then cancels
/// `stop` and waits for `tracker` (see `crate::server`).
#[derive(Debug, Clone, Default)]
pub struct Background {
    /// Holds every backend task, so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Cancelled once nothing produces work any more: flush and end.
    pub stop: CancellationToken,
}

impl Background {
    /// Tells the backend tasks to finish their work and waits until they have.
    pub async fn finish(&self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Rebuilds a stored message. Its origin is the store: it is not stored again, and nobody's
/// echo rule applies to it.
pub(crate) fn stored_message(
    room: &RoomName,
    seq: i64,
    nick: &str,
    text: String,
    ts_ms: i64,
) -> Result<Arc<ChatMessage>, StoreError> {
    let nick = Nick::parse(nick)
        .map_err(|e| StoreError::Rejected(format!("stored nick {nick:?} is invalid: {e}")))?;
    Ok(Arc::new(ChatMessage::at(
        room.clone(),
        u64::try_from(seq).unwrap_or(0),
        nick,
        text,
        Origin::Remote(Arc::from(STORE_ORIGIN)),
        ts_ms,
    )))
}

/// A row as the `messages` table holds it (a tombstone: empty nick and body, `skipped`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct StoredRow {
    pub(crate) nick: String,
    pub(crate) body: String,
    pub(crate) ts_ms: i64,
    pub(crate) skipped: bool,
}

impl StoredRow {
    pub(crate) fn of(row: &Row) -> StoredRow {
        match row {
            Row::Message(msg) => StoredRow {
                nick: msg.nick.to_string(),
                body: msg.text.clone(),
                ts_ms: msg.ts_ms,
                skipped: false,
            },
            Row::Skipped { .. } => StoredRow {
                nick: String::new(),
                body: String::new(),
                ts_ms: now_ms(),
                skipped: true,
            },
        }
    }

    /// Whether `self`, found stored, is `other` written before (a retried batch): the same
    /// message, or a tombstone for a tombstone (whenever it was written).
    pub(crate) fn same_as(&self, other: &StoredRow) -> bool {
        match (self.skipped, other.skipped) {
            (true, true) => true,
            (false, false) => {
                self.nick == other.nick && self.body == other.body && self.ts_ms == other.ts_ms
            }
            _ => false,
        }
    }
}

/// Rows read back, oldest first, as a page.
pub(crate) fn page(
    room: &RoomName,
    rows: Vec<(i64, StoredRow)>,
    more: bool,
) -> Result<Page, StoreError> {
    let mut page = Page {
        more,
        ..Page::default()
    };
    for (seq, row) in rows {
        if row.skipped {
            page.skipped.push(u64::try_from(seq).unwrap_or(0));
        } else {
            page.messages
                .push(stored_message(room, seq, &row.nick, row.body, row.ts_ms)?);
        }
    }
    Ok(page)
}

/// The origin name of messages read back from a store.
pub const STORE_ORIGIN: &str = "store";

/// A seq as the stores keep it (a signed 64-bit integer; seqs never get near its limit).
pub(crate) fn db_seq(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}
