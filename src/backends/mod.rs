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
pub mod migrate;
#[cfg(test)]
pub(crate) mod mock;
pub mod poll;
pub mod postgres;
pub mod postgres_directory;
pub mod sqlite;
pub mod valkey;
pub mod writer;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::core::{ChatMessage, HistoryQuery, Nick, Origin, RoomName, StoredRoom};

pub use bus::Bus;
pub use directory::{Directory, LocalDirectory};
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
    /// attempt that hangs past its grace and commits later (see `writer_ahead.rs`).
    #[error("the store did not answer within {} ms", .0.as_millis())]
    Timeout(std::time::Duration),
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

/// What [`Store::append`] did with a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Appended {
    /// Rows newly written (a message already stored is not written again).
    pub written: usize,
    /// Messages the store refused, by their index in the batch, with the reason. The rest of the
    /// batch is written: one bad row never loses its neighbours.
    pub rejected: Vec<(usize, String)>,
}

/// A durable home for chat messages; see the module docs.
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Stores `batch`. A message whose room and seq are stored already is left as it is, so a
    /// batch retried after an error is still stored exactly once.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when nothing could be written and a retry may succeed.
    fn append<'a>(
        &'a self,
        batch: &'a [Arc<ChatMessage>],
    ) -> BoxFuture<'a, Result<Appended, StoreError>>;

    /// The stored answer to `query`, oldest first.
    ///
    /// # Errors
    /// When the store cannot be read.
    fn history<'a>(
        &'a self,
        query: &'a HistoryQuery,
    ) -> BoxFuture<'a, Result<Vec<Arc<ChatMessage>>, StoreError>>;

    /// Whether the store answers right now, with one cheap round trip (`SELECT 1`). The
    /// readiness check (`GET /readyz`) asks this; it bounds the wait itself.
    ///
    /// # Errors
    /// Why the store did not answer.
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>>;

    /// The highest seq stored for `room`, 0 if none.
    ///
    /// # Errors
    /// When the store cannot be read.
    fn max_seq<'a>(&'a self, room: &'a RoomName) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// The newest `limit` messages of `room`, oldest first.
    ///
    /// # Errors
    /// When the store cannot be read.
    fn last<'a>(
        &'a self,
        room: &'a RoomName,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Arc<ChatMessage>>, StoreError>> {
        Box::pin(async move {
            let query = HistoryQuery {
                room: room.clone(),
                upto: i64::MAX as u64,
                after: 0,
                limit,
            };
            self.history(&query).await
        })
    }

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

    /// Where `room`'s history stands: what [`crate::core::OpenRoom`] asks after a restart.
    ///
    /// # Errors
    /// When the store cannot be read.
    fn open_room<'a>(
        &'a self,
        room: &'a RoomName,
        limit: usize,
    ) -> BoxFuture<'a, Result<StoredRoom, StoreError>> {
        Box::pin(async move {
            let max_seq = self.max_seq(room).await?;
            let last = self.last(room, limit).await?;
            Ok(StoredRoom { max_seq, last })
        })
    }
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

/// The origin name of messages read back from a store.
pub const STORE_ORIGIN: &str = "store";

/// A seq as the stores keep it (a signed 64-bit integer; seqs never get near its limit).
pub(crate) fn db_seq(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}
