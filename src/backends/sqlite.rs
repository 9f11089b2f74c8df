//! The SQLite store: chat history in one file, with nothing to install (`store = "sqlite"`).
//!
//! **Threads.** SQLite's API blocks, and a blocked tokio worker stalls every connection it
//! serves, so each call runs on tokio's blocking pool (`spawn_blocking`). The store owns two
//! connections, each behind a mutex: one writes (SQLite allows one writer at a time anyway) and
//! one reads, so a join's history read never waits behind a batch being committed.
//!
//! **WAL.** The file is in write-ahead-log mode: readers see the last committed state while the
//! writer appends to the log, and a commit is one sequential write. `synchronous = NORMAL`
//! (write-behind) survives a crash of chatd but may lose the last commits on a power cut;
//! `synchronous = FULL` (write-ahead, `durability = "sync"`) syncs the log on every commit.
//!
//! **Batches.** One transaction per batch: committing is the expensive part (a sync to disk), so
//! 500 messages cost about what one does. Each row is its own statement inside it, so a row SQLite
//! refuses is reported and skipped without losing the rest of the batch.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use rusqlite::{Connection, ErrorCode, OptionalExtension, TransactionBehavior, params};

use super::migrate::{self, APPLIED_VERSIONS, CREATE_SCHEMA_TABLE};
use super::{Appended, Row, Store, StoreError, StoredRow, db_seq, page};
use crate::core::message::now_ms;
use crate::core::{HistoryQuery, Page, RoomName, StoredRoom};

/// How long a statement waits for another process's lock before reporting the store busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A SQLite database file; see the module docs.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    reader: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    /// Opens (creating it and its directory if needed) the database at `path` and migrates it.
    /// `full_sync` makes every commit reach the disk before it returns (write-ahead mode).
    ///
    /// # Errors
    /// When the directory or file cannot be created or opened, or the schema is too new.
    pub async fn open(path: &Path, full_sync: bool) -> Result<SqliteStore, StoreError> {
        let path = path.to_path_buf();
        let opened = path.clone();
        let (writer, reader) = tokio::task::spawn_blocking(move || {
            if let Some(dir) = opened.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            let mut writer = connect(&opened, full_sync)?;
            migrate(&mut writer)?;
            let reader = connect(&opened, full_sync)?;
            Ok::<_, StoreError>((writer, reader))
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("the SQLite open task failed: {e}")))??;
        Ok(SqliteStore {
            path,
            writer: Arc::new(Mutex::new(writer)),
            reader: Arc::new(Mutex::new(reader)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with `conn` on the blocking pool.
    async fn with<T: Send + 'static>(
        conn: &Arc<Mutex<Connection>>,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("a SQLite task failed: {e}")))?
    }
}

fn connect(path: &Path, full_sync: bool) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| {
        StoreError::Unavailable(format!("cannot open SQLite file {}: {e}", path.display()))
    })?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(classify)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(classify)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), %mode, "SQLite refused WAL mode");
    }
    let sync = if full_sync { "FULL" } else { "NORMAL" };
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON;"
    ))
    .map_err(classify)?;
    Ok(conn)
}

/// Applies the pending migrations, holding SQLite's write lock from the version check on.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(classify)?;
    tx.execute(CREATE_SCHEMA_TABLE, []).map_err(classify)?;
    let applied: Vec<i64> = {
        let mut stmt = tx.prepare(APPLIED_VERSIONS).map_err(classify)?;
        stmt.query_map([], |row| row.get(0))
            .map_err(classify)?
            .collect::<Result<_, _>>()
            .map_err(classify)?
    };
    for m in migrate::pending(migrate::SQLITE, &applied)? {
        tx.execute_batch(m.sql).map_err(|e| {
            StoreError::Rejected(format!("migration {} ({}) failed: {e}", m.version, m.name))
        })?;
        tx.execute(
            "INSERT INTO chatd_schema (version, name, applied_at_ms) VALUES (?1, ?2, ?3)",
            params![m.version, m.name, now_ms()],
        )
        .map_err(classify)?;
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied SQLite migration"
        );
    }
    tx.commit().map_err(classify)
}

/// Busy, locked or I/O trouble may pass; anything else is about the data or the statement.
fn classify(err: rusqlite::Error) -> StoreError {
    let transient = matches!(
        err.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::OutOfMemory
        )
    );
    if transient {
        StoreError::Unavailable(err.to_string())
    } else {
        StoreError::Rejected(err.to_string())
    }
}

fn append_batch(conn: &mut Connection, batch: &[Row]) -> Result<Appended, StoreError> {
    let tx = conn.transaction().map_err(classify)?;
    let mut appended = Appended::default();
    {
        let mut room = tx
            .prepare_cached(
                "INSERT INTO rooms (name, created_ms) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )
            .map_err(classify)?;
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO messages (room, seq, nick, body, ts_ms, skipped) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (room, seq) DO NOTHING",
            )
            .map_err(classify)?;
        let mut existing = tx
            .prepare_cached(
                "SELECT nick, body, ts_ms, skipped FROM messages WHERE room = ?1 AND seq = ?2",
            )
            .map_err(classify)?;
        for (i, row) in batch.iter().enumerate() {
            let stored = StoredRow::of(row);
            let outcome = room
                .execute(params![row.room().as_str(), stored.ts_ms])
                .and_then(|_| {
                    insert.execute(params![
                        row.room().as_str(),
                        db_seq(row.seq()),
                        stored.nick,
                        stored.body,
                        stored.ts_ms,
                        stored.skipped
                    ])
                })
                .and_then(|written| match written {
                    0 => existing
                        .query_row(params![row.room().as_str(), db_seq(row.seq())], |r| {
                            Ok(StoredRow {
                                nick: r.get(0)?,
                                body: r.get(1)?,
                                ts_ms: r.get(2)?,
                                skipped: r.get(3)?,
                            })
                        })
                        .map(|found| if found.same_as(&stored) { 0 } else { 2 }),
                    n => Ok(n.min(1)),
                });
            match outcome.map_err(classify) {
                Ok(2) => appended.conflicts.push(i),
                Ok(n) => appended.written += n,
                Err(StoreError::Rejected(why)) => appended.rejected.push((i, why)),
                Err(other) => return Err(other), // the transaction rolls back on drop
            }
        }
    }
    tx.commit().map_err(classify)?;
    Ok(appended)
}

/// The newest `limit` rows of `room` in `after+1..=upto`, as a page.
fn read_page(
    conn: &Connection,
    room: &RoomName,
    after: u64,
    upto: u64,
    limit: usize,
) -> Result<Page, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, nick, body, ts_ms, skipped FROM messages \
             WHERE room = ?1 AND seq <= ?2 AND seq > ?3 ORDER BY seq DESC LIMIT ?4",
        )
        .map_err(classify)?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map(
            params![room.as_str(), db_seq(upto), db_seq(after), limit],
            |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    StoredRow {
                        nick: row.get(1)?,
                        body: row.get(2)?,
                        ts_ms: row.get(3)?,
                        skipped: row.get(4)?,
                    },
                ))
            },
        )
        .map_err(classify)?;
    let mut newest_first = Vec::new();
    for row in rows {
        newest_first.push(row.map_err(classify)?);
    }
    let more = newest_first.len() as i64 >= limit;
    newest_first.reverse();
    page(room, newest_first, more)
}

impl Store for SqliteStore {
    fn append<'a>(&'a self, batch: &'a [Row]) -> BoxFuture<'a, Result<Appended, StoreError>> {
        let batch = batch.to_vec(); // Arc clones: the blocking task needs owned data
        Box::pin(SqliteStore::with(&self.writer, move |conn| {
            append_batch(conn, &batch)
        }))
    }

    fn history<'a>(&'a self, query: &'a HistoryQuery) -> BoxFuture<'a, Result<Page, StoreError>> {
        let query = query.clone();
        Box::pin(SqliteStore::with(&self.reader, move |conn| {
            read_page(conn, &query.room, query.after, query.upto, query.limit)
        }))
    }

    fn rooms(&self, limit: usize) -> BoxFuture<'_, Result<Vec<RoomName>, StoreError>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Box::pin(SqliteStore::with(&self.reader, move |conn| {
            let mut statement = conn
                .prepare("SELECT name FROM rooms ORDER BY name LIMIT ?1")
                .map_err(classify)?;
            let names = statement
                .query_map(params![limit], |row| row.get::<_, String>(0))
                .map_err(classify)?
                .filter_map(|name| RoomName::parse(&name.ok()?).ok())
                .collect();
            Ok(names)
        }))
    }

    /// On the read connection: the writer's may be busy with a batch, which is not a failure.
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(SqliteStore::with(&self.reader, |conn| {
            conn.query_row("SELECT 1", [], |_| Ok(())).map_err(classify)
        }))
    }

    fn open_room<'a>(
        &'a self,
        room: &'a RoomName,
        window: usize,
    ) -> BoxFuture<'a, Result<StoredRoom, StoreError>> {
        let room = room.clone();
        Box::pin(SqliteStore::with(&self.reader, move |conn| {
            let newest = read_page(conn, &room, 0, i64::MAX as u64, window)?;
            let counter: Option<(i64, Option<String>)> = conn
                .query_row(
                    "SELECT last_seq, owner FROM room_seq WHERE room = ?1",
                    params![room.as_str()],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(classify)?;
            Ok(StoredRoom::from_counter(newest, counter))
        }))
    }

    fn reserve<'a>(
        &'a self,
        room: &'a RoomName,
        after: u64,
        block: u64,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        let (room, owner) = (room.clone(), owner.to_string());
        Box::pin(SqliteStore::with(&self.writer, move |conn| {
            let ceiling: i64 = conn
                .query_row(
                    "INSERT INTO room_seq (room, last_seq, owner) VALUES (?1, ?2 + ?3, ?4) \
                     ON CONFLICT (room) DO UPDATE SET last_seq = MAX(last_seq, ?2) + ?3, \
                     owner = ?4 RETURNING last_seq",
                    params![room.as_str(), db_seq(after), db_seq(block), owner],
                    |row| row.get(0),
                )
                .map_err(classify)?;
            Ok(u64::try_from(ceiling).unwrap_or(0))
        }))
    }

    fn release<'a>(
        &'a self,
        room: &'a RoomName,
        ceiling: u64,
        last: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let room = room.clone();
        Box::pin(SqliteStore::with(&self.writer, move |conn| {
            conn.execute(
                "UPDATE room_seq SET last_seq = ?3 WHERE room = ?1 AND last_seq = ?2 AND ?3 > 0",
                params![room.as_str(), db_seq(ceiling), db_seq(last)],
            )
            .map_err(classify)?;
            Ok(())
        }))
    }

    fn settle<'a>(
        &'a self,
        room: &'a RoomName,
        from: u64,
        to: u64,
    ) -> BoxFuture<'a, Result<Page, StoreError>> {
        let room = room.clone();
        Box::pin(SqliteStore::with(&self.writer, move |conn| {
            let tx = conn.transaction().map_err(classify)?;
            {
                tx.execute(
                    "INSERT INTO rooms (name, created_ms) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![room.as_str(), now_ms()],
                )
                .map_err(classify)?;
                let mut tombstone = tx
                    .prepare_cached(
                        "INSERT INTO messages (room, seq, nick, body, ts_ms, skipped) \
                         VALUES (?1, ?2, '', '', ?3, 1) ON CONFLICT (room, seq) DO NOTHING",
                    )
                    .map_err(classify)?;
                for seq in from..=to {
                    tombstone
                        .execute(params![room.as_str(), db_seq(seq), now_ms()])
                        .map_err(classify)?;
                }
            }
            let span = (to - from + 1) as usize;
            let page = read_page(&tx, &room, from - 1, to, span)?;
            tx.commit().map_err(classify)?;
            Ok(Page {
                more: false,
                ..page
            })
        }))
    }
}
