//! The PostgreSQL store (`store = "postgres"`): a `bb8` pool of `tokio-postgres` connections.
//!
//! **The pool.** Opening a PostgreSQL connection costs a few round trips and a server process, so
//! the store keeps up to `pool_size` of them and lends one per operation. `bb8` checks each one
//! before lending it (`test_on_check_out`), so after the server restarts the dead connections are
//! replaced instead of failing a request; while the server is down, `get` fails after
//! [`CONNECT_TIMEOUT`] and the writer retries later.
//!
//! **Batches.** A whole batch is one statement: each column travels as one array parameter and
//! `UNNEST` turns the arrays back into rows, so 500 messages cost one round trip and one plan
//! instead of 500 (a multi-row `VALUES` list would need a different statement per batch size).
//! If PostgreSQL refuses the statement because of one row's data, the batch is written again row
//! by row so that only that row is left out.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bb8::{Pool, PooledConnection, RunError};
use bb8_postgres::PostgresConnectionManager;
use futures_util::future::BoxFuture;
use tokio_postgres::{GenericClient, NoTls};

use super::migrate::{self, APPLIED_VERSIONS, CREATE_SCHEMA_TABLE};
use super::{Appended, Row, Store, StoreError, StoredRow, db_seq, page};
use crate::core::message::now_ms;
use crate::core::{HistoryQuery, Page, RoomName, StoredRoom};

/// How long an operation waits for a connection before reporting the store unavailable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Any constant: the key of the advisory lock that serializes migrations between instances.
const MIGRATION_LOCK: i64 = 0x0063_6861_7464; // the bytes of "chatd"

const INSERT_ROOMS: &str = "INSERT INTO rooms (name, created_ms) \
     SELECT DISTINCT r, $2::bigint FROM UNNEST($1::text[]) AS r ON CONFLICT DO NOTHING";
const INSERT_MESSAGES: &str = "INSERT INTO messages (room, seq, nick, body, ts_ms, skipped) \
     SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], \
     $6::bool[]) ON CONFLICT (room, seq) DO NOTHING RETURNING room, seq";
/// What the slots of rows that were not inserted hold (to tell a retried row from a conflict).
const EXISTING: &str = "SELECT m.room, m.seq, m.nick, m.body, m.ts_ms, m.skipped \
     FROM UNNEST($1::text[], $2::bigint[]) AS w(room, seq) \
     JOIN messages m ON m.room = w.room AND m.seq = w.seq";
/// A room's newest rows in a span, messages and tombstones.
const PAGE: &str = "SELECT seq, nick, body, ts_ms, skipped FROM messages \
     WHERE room = $1 AND seq <= $2 AND seq > $3 ORDER BY seq DESC LIMIT $4";
/// Tombstones for every empty slot of a span (see `Store::settle`).
const SETTLE: &str = "INSERT INTO messages (room, seq, nick, body, ts_ms, skipped) \
     SELECT $1, s, '', '', $4, true FROM generate_series($2::bigint, $3::bigint) AS s \
     ON CONFLICT (room, seq) DO NOTHING";
/// A block of seqs after `$2` and after every earlier reservation (see `Store::reserve`).
const RESERVE: &str = "INSERT INTO room_seq (room, last_seq, owner) \
     VALUES ($1, $2::bigint + $3::bigint, $4) ON CONFLICT (room) DO UPDATE \
     SET last_seq = GREATEST(room_seq.last_seq, $2::bigint) + $3::bigint, owner = $4 \
     RETURNING last_seq";

/// A room's counter row: the highest seq handed out or reserved, and who reserved it.
pub(crate) const COUNTER: &str = "SELECT last_seq, owner FROM room_seq WHERE room = $1";

/// Why PostgreSQL at `url` cannot be used at start, for a person: where chatd looked (host, port,
/// database), what the server said when asked once more directly (the pool only says that no
/// connection came in time), and what usually helps.
async fn unreachable(url: &str) -> String {
    let config = url.parse::<tokio_postgres::Config>().ok();
    let host = config
        .as_ref()
        .and_then(|c| c.get_hosts().first().cloned())
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name,
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".to_string());
    let port = config
        .as_ref()
        .and_then(|c| c.get_ports().first().copied())
        .unwrap_or(5432);
    let db = config
        .as_ref()
        .and_then(|c| c.get_dbname().map(str::to_string))
        .unwrap_or_else(|| "chatd".to_string());
    let said =
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio_postgres::connect(url, NoTls)).await {
            // tokio-postgres's message is "error connecting to server"; its source says why.
            Ok(Err(e)) => match std::error::Error::source(&e) {
                Some(why) => format!("{e}: {why}"),
                None => e.to_string(),
            },
            Ok(Ok(_)) => "it answered only now; try again".to_string(),
            Err(_) => format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
        };
    format!(
        "cannot reach PostgreSQL at {host}:{port}, database {db:?} ({said}). Is the server \
         running there (`pg_isready -h {host} -p {port}` tells)? Create the database once with \
         `createdb -h {host} -p {port} {db}`, or point DATABASE_URL (or the pipeline's `url`) at \
         another one"
    )
}

/// The pool's connection manager.
pub(crate) type Manager = PostgresConnectionManager<NoTls>;

/// A PostgreSQL database; see the module docs.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: Pool<Manager>,
}

impl PostgresStore {
    /// Connects to `url` with a pool of at most `pool_size` connections and migrates the schema.
    ///
    /// # Errors
    /// When `url` is not a connection string, the server cannot be reached, or the schema is too
    /// new.
    pub async fn connect(url: &str, pool_size: u32) -> Result<PostgresStore, StoreError> {
        let manager = Manager::new_from_stringlike(url, NoTls)
            .map_err(|e| StoreError::Rejected(format!("invalid PostgreSQL url: {e}")))?;
        let pool = Pool::builder()
            .max_size(pool_size)
            .connection_timeout(CONNECT_TIMEOUT)
            .test_on_check_out(true)
            .build(manager)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let store = PostgresStore { pool };
        match store.migrate().await {
            Ok(()) => Ok(store),
            Err(StoreError::Unavailable(_)) => Err(StoreError::Unavailable(unreachable(url).await)),
            Err(other) => Err(other),
        }
    }

    /// A connection from the pool, for the cross-instance pieces that share it (`poll`).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when no connection can be had within [`CONNECT_TIMEOUT`].
    pub(crate) async fn conn(&self) -> Result<PooledConnection<'_, Manager>, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(classify)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(classify)?;
        tx.batch_execute(CREATE_SCHEMA_TABLE)
            .await
            .map_err(classify)?;
        let applied: Vec<i64> = tx
            .query(APPLIED_VERSIONS, &[])
            .await
            .map_err(classify)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        for m in migrate::pending(migrate::POSTGRES, &applied)? {
            tx.batch_execute(m.sql).await.map_err(|e| {
                StoreError::Rejected(format!("migration {} ({}) failed: {e}", m.version, m.name))
            })?;
            tx.execute(
                "INSERT INTO chatd_schema (version, name, applied_at_ms) VALUES ($1, $2, $3)",
                &[&m.version, &m.name, &now_ms()],
            )
            .await
            .map_err(classify)?;
            tracing::info!(
                version = m.version,
                name = m.name,
                "applied PostgreSQL migration"
            );
        }
        tx.commit().await.map_err(classify)
    }

    /// The whole batch in one transaction: the rooms, the rows, and a look at the slots of the
    /// rows that were not inserted.
    async fn append_all(&self, batch: &[Row]) -> Result<Appended, StoreError> {
        let rows: Vec<StoredRow> = batch.iter().map(StoredRow::of).collect();
        let rooms: Vec<&str> = batch.iter().map(|r| r.room().as_str()).collect();
        let seqs: Vec<i64> = batch.iter().map(|r| db_seq(r.seq())).collect();
        let nicks: Vec<&str> = rows.iter().map(|r| r.nick.as_str()).collect();
        let bodies: Vec<&str> = rows.iter().map(|r| r.body.as_str()).collect();
        let stamps: Vec<i64> = rows.iter().map(|r| r.ts_ms).collect();
        let skipped: Vec<bool> = rows.iter().map(|r| r.skipped).collect();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(classify)?;
        tx.execute(INSERT_ROOMS, &[&rooms, &now_ms()])
            .await
            .map_err(classify)?;
        let inserted: HashSet<(String, i64)> = tx
            .query(
                INSERT_MESSAGES,
                &[&rooms, &seqs, &nicks, &bodies, &stamps, &skipped],
            )
            .await
            .map_err(classify)?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let mut appended = Appended {
            written: inserted.len(),
            ..Appended::default()
        };
        if inserted.len() < batch.len() {
            let found = tx
                .query(EXISTING, &[&rooms, &seqs])
                .await
                .map_err(classify)?;
            let found: HashMap<(String, i64), StoredRow> = found
                .iter()
                .map(|row| {
                    let slot = (row.get::<_, String>(0), row.get::<_, i64>(1));
                    (slot, stored_row(row, 2))
                })
                .collect();
            for (i, (room, seq)) in rooms.iter().zip(&seqs).enumerate() {
                let slot = ((*room).to_string(), *seq);
                if inserted.contains(&slot) {
                    continue;
                }
                if !found.get(&slot).is_some_and(|f| f.same_as(&rows[i])) {
                    appended.conflicts.push(i);
                }
            }
        }
        tx.commit().await.map_err(classify)?;
        Ok(appended)
    }

    /// After the batch statement was refused: each row on its own, to find the bad ones.
    async fn append_each(&self, batch: &[Row]) -> Result<Appended, StoreError> {
        let mut appended = Appended::default();
        for (i, row) in batch.iter().enumerate() {
            match self.append_all(std::slice::from_ref(row)).await {
                Ok(one) => {
                    appended.written += one.written;
                    if !one.conflicts.is_empty() {
                        appended.conflicts.push(i);
                    }
                }
                Err(StoreError::Rejected(why)) => appended.rejected.push((i, why)),
                Err(other) => return Err(other),
            }
        }
        Ok(appended)
    }

    /// The newest `limit` rows of `room` in `after+1..=upto`.
    async fn page(
        &self,
        conn: &impl GenericClient,
        room: &RoomName,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = conn
            .query(
                PAGE,
                &[&room.as_str(), &db_seq(upto), &db_seq(after), &limit],
            )
            .await
            .map_err(classify)?;
        let more = rows.len() as i64 >= limit;
        let rows = rows
            .iter()
            .rev()
            .map(|row| (row.get::<_, i64>(0), stored_row(row, 1)))
            .collect();
        page(room, rows, more)
    }
}

/// The `nick, body, ts_ms, skipped` columns of `row`, from column `at` on.
fn stored_row(row: &tokio_postgres::Row, at: usize) -> StoredRow {
    StoredRow {
        nick: row.get(at),
        body: row.get(at + 1),
        ts_ms: row.get(at + 2),
        skipped: row.get(at + 3),
    }
}

/// An error the server sent about the statement or its data is not worth retrying; a broken
/// connection, a timeout or a server shutting down is.
pub(crate) fn classify(err: tokio_postgres::Error) -> StoreError {
    match err.as_db_error() {
        Some(db) if !is_transient(db.code().code()) => StoreError::Rejected(describe(&err)),
        _ => StoreError::Unavailable(describe(&err)),
    }
}

/// Why a pool (the store's, the directory's) gave no connection: none could be opened, or none
/// came free within [`CONNECT_TIMEOUT`]. Either may pass.
pub(crate) fn pool_error(err: RunError<tokio_postgres::Error>) -> StoreError {
    match err {
        RunError::User(e) => StoreError::Unavailable(format!("cannot connect: {}", describe(&e))),
        RunError::TimedOut => StoreError::Unavailable(format!(
            "no connection within {}s",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// What went wrong, for logs and messages: a server's error shows as "db error" alone, so its
/// SQLSTATE and message are spelt out (`25006: cannot execute INSERT in a read-only
/// transaction`).
fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => err.to_string(),
    }
}

/// SQLSTATEs that mean "try again": the classes 08 connection, 40 serialization/deadlock,
/// 53 insufficient resources, 57 operator intervention (shutdown), 58 system error; and two
/// codes of other classes that say "not now" rather than "not this": 25006, a server that takes
/// no writes for now (a standby after a failover, a database set read-only by its operator or a
/// storage quota), and 55P03, a lock not had within `lock_timeout`. Treated as a refusal of the
/// rows, either would drop every message written behind while it lasts
/// (`tests/it/faults/read_only.rs`).
fn is_transient(sqlstate: &str) -> bool {
    ["08", "40", "53", "57", "58"]
        .iter()
        .any(|class| sqlstate.starts_with(class))
        || ["25006", "55P03"].contains(&sqlstate)
}

impl Store for PostgresStore {
    fn append<'a>(&'a self, batch: &'a [Row]) -> BoxFuture<'a, Result<Appended, StoreError>> {
        Box::pin(async move {
            match self.append_all(batch).await {
                Ok(appended) => Ok(appended),
                Err(StoreError::Rejected(why)) if batch.len() > 1 => {
                    tracing::warn!(batch = batch.len(), %why, "batch refused; writing row by row");
                    self.append_each(batch).await
                }
                Err(StoreError::Rejected(why)) => Ok(Appended {
                    rejected: vec![(0, why)],
                    ..Appended::default()
                }),
                Err(other) => Err(other),
            }
        })
    }

    /// Through the pool, like every other query: a connection that died is replaced first
    /// (`test_on_check_out`), so this fails only when the server cannot be reached.
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let conn = self.conn().await?;
            conn.simple_query("SELECT 1").await.map_err(classify)?;
            Ok(())
        })
    }

    fn history<'a>(&'a self, query: &'a HistoryQuery) -> BoxFuture<'a, Result<Page, StoreError>> {
        Box::pin(async move {
            let conn = self.conn().await?;
            self.page(&*conn, &query.room, query.after, query.upto, query.limit)
                .await
        })
    }

    fn rooms(&self, limit: usize) -> BoxFuture<'_, Result<Vec<RoomName>, StoreError>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        Box::pin(async move {
            let conn = self.conn().await?;
            let rows = conn
                .query("SELECT name FROM rooms ORDER BY name LIMIT $1", &[&limit])
                .await
                .map_err(classify)?;
            Ok(rows
                .iter()
                .filter_map(|row| RoomName::parse(row.get::<_, &str>(0)).ok())
                .collect())
        })
    }

    fn open_room<'a>(
        &'a self,
        room: &'a RoomName,
        window: usize,
    ) -> BoxFuture<'a, Result<StoredRoom, StoreError>> {
        Box::pin(async move {
            let conn = self.conn().await?;
            let newest = self.page(&*conn, room, 0, i64::MAX as u64, window).await?;
            let counter: Option<(i64, Option<String>)> = conn
                .query_opt(COUNTER, &[&room.as_str()])
                .await
                .map_err(classify)?
                .map(|row| (row.get(0), row.get(1)));
            Ok(StoredRoom::from_counter(newest, counter))
        })
    }

    fn reserve<'a>(
        &'a self,
        room: &'a RoomName,
        after: u64,
        block: u64,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let conn = self.conn().await?;
            let row = conn
                .query_one(
                    RESERVE,
                    &[&room.as_str(), &db_seq(after), &db_seq(block), &owner],
                )
                .await
                .map_err(classify)?;
            Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
        })
    }

    fn release<'a>(
        &'a self,
        room: &'a RoomName,
        ceiling: u64,
        last: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let conn = self.conn().await?;
            conn.execute(
                "UPDATE room_seq SET last_seq = $3::bigint WHERE room = $1 AND last_seq = $2::bigint \
                 AND $3::bigint > 0",
                &[&room.as_str(), &db_seq(ceiling), &db_seq(last)],
            )
            .await
            .map_err(classify)?;
            Ok(())
        })
    }

    fn settle<'a>(
        &'a self,
        room: &'a RoomName,
        from: u64,
        to: u64,
    ) -> BoxFuture<'a, Result<Page, StoreError>> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let tx = conn.transaction().await.map_err(classify)?;
            tx.execute(INSERT_ROOMS, &[&vec![room.as_str()], &now_ms()])
                .await
                .map_err(classify)?;
            tx.execute(
                SETTLE,
                &[&room.as_str(), &db_seq(from), &db_seq(to), &now_ms()],
            )
            .await
            .map_err(classify)?;
            let span = usize::try_from(to - from + 1).unwrap_or(usize::MAX);
            let page = self.page(&tx, room, from - 1, to, span).await?;
            tx.commit().await.map_err(classify)?;
            Ok(Page {
                more: false,
                ..page
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_transient;

    #[test]
    fn a_server_that_may_take_the_write_later_is_retried_and_a_bad_row_is_not() {
        // Connection lost, shutdown, deadlock, disk full, read-only for now, a lock timeout.
        for later in ["08006", "57P01", "40P01", "53100", "25006", "55P03"] {
            assert!(is_transient(later), "{later}");
        }
        // A duplicate key, bad text, a transaction already failed, a state no retry changes.
        for never in ["23505", "22P02", "25P02", "55000", "XX000"] {
            assert!(!is_transient(never), "{never}");
        }
    }
}
