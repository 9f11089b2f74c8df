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

use std::sync::Arc;
use std::time::Duration;

use bb8::{Pool, PooledConnection, RunError};
use bb8_postgres::PostgresConnectionManager;
use futures_util::future::BoxFuture;
use tokio_postgres::NoTls;

use super::migrate::{self, APPLIED_VERSIONS, CREATE_SCHEMA_TABLE};
use super::{Appended, Store, StoreError, db_seq, stored_message};
use crate::core::message::now_ms;
use crate::core::{ChatMessage, HistoryQuery, RoomName};

/// How long an operation waits for a connection before reporting the store unavailable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Any constant: the key of the advisory lock that serializes migrations between instances.
const MIGRATION_LOCK: i64 = 0x0063_6861_7464; // the bytes of "chatd"

const INSERT_ROOMS: &str = "INSERT INTO rooms (name, created_ms) \
     SELECT DISTINCT r, $2::bigint FROM UNNEST($1::text[]) AS r ON CONFLICT DO NOTHING";
const INSERT_MESSAGES: &str = "INSERT INTO messages (room, seq, nick, body, ts_ms) \
     SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[]) \
     ON CONFLICT (room, seq) DO NOTHING";

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
        self.pool.get().await.map_err(|e| match e {
            RunError::User(e) => StoreError::Unavailable(format!("cannot connect: {e}")),
            RunError::TimedOut => StoreError::Unavailable(format!(
                "no connection within {}s",
                CONNECT_TIMEOUT.as_secs()
            )),
        })
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

    /// The whole batch in one transaction of two statements.
    async fn append_all(&self, batch: &[Arc<ChatMessage>]) -> Result<usize, StoreError> {
        let rooms: Vec<&str> = batch.iter().map(|m| m.room.as_str()).collect();
        let seqs: Vec<i64> = batch.iter().map(|m| db_seq(m.seq)).collect();
        let nicks: Vec<&str> = batch.iter().map(|m| m.nick.as_str()).collect();
        let bodies: Vec<&str> = batch.iter().map(|m| m.text.as_str()).collect();
        let stamps: Vec<i64> = batch.iter().map(|m| m.ts_ms).collect();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(classify)?;
        tx.execute(INSERT_ROOMS, &[&rooms, &now_ms()])
            .await
            .map_err(classify)?;
        let written = tx
            .execute(INSERT_MESSAGES, &[&rooms, &seqs, &nicks, &bodies, &stamps])
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(usize::try_from(written).unwrap_or(usize::MAX))
    }

    /// After the batch statement was refused: each row on its own, to find the bad ones.
    async fn append_each(&self, batch: &[Arc<ChatMessage>]) -> Result<Appended, StoreError> {
        let mut appended = Appended::default();
        for (i, msg) in batch.iter().enumerate() {
            match self.append_all(std::slice::from_ref(msg)).await {
                Ok(n) => appended.written += n,
                Err(StoreError::Rejected(why)) => appended.rejected.push((i, why)),
                Err(other) => return Err(other),
            }
        }
        Ok(appended)
    }
}

/// An error the server sent about the statement or its data is not worth retrying; a broken
/// connection, a timeout or a server shutting down is.
pub(crate) fn classify(err: tokio_postgres::Error) -> StoreError {
    match err.as_db_error() {
        Some(db) if !is_transient(db.code().code()) => {
            StoreError::Rejected(format!("{}: {}", db.code().code(), db.message()))
        }
        _ => StoreError::Unavailable(err.to_string()),
    }
}

/// SQLSTATE classes that mean "try again": 08 connection, 40 serialization/deadlock,
/// 53 insufficient resources, 57 operator intervention (shutdown), 58 system error.
fn is_transient(sqlstate: &str) -> bool {
    ["08", "40", "53", "57", "58"]
        .iter()
        .any(|class| sqlstate.starts_with(class))
}

impl Store for PostgresStore {
    fn append<'a>(
        &'a self,
        batch: &'a [Arc<ChatMessage>],
    ) -> BoxFuture<'a, Result<Appended, StoreError>> {
        Box::pin(async move {
            match self.append_all(batch).await {
                Ok(written) => Ok(Appended {
                    written,
                    rejected: Vec::new(),
                }),
                Err(StoreError::Rejected(why)) if batch.len() > 1 => {
                    tracing::warn!(batch = batch.len(), %why, "batch refused; writing row by row");
                    self.append_each(batch).await
                }
                Err(StoreError::Rejected(why)) => Ok(Appended {
                    written: 0,
                    rejected: vec![(0, why)],
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

    fn history<'a>(
        &'a self,
        query: &'a HistoryQuery,
    ) -> BoxFuture<'a, Result<Vec<Arc<ChatMessage>>, StoreError>> {
        Box::pin(async move {
            let conn = self.conn().await?;
            let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
            let rows = conn
                .query(
                    "SELECT seq, nick, body, ts_ms FROM messages \
                     WHERE room = $1 AND seq <= $2 AND seq > $3 ORDER BY seq DESC LIMIT $4",
                    &[
                        &query.room.as_str(),
                        &db_seq(query.upto),
                        &db_seq(query.after),
                        &limit,
                    ],
                )
                .await
                .map_err(classify)?;
            let mut messages = rows
                .into_iter()
                .map(|row| {
                    stored_message(
                        &query.room,
                        row.get(0),
                        row.get::<_, &str>(1),
                        row.get(2),
                        row.get(3),
                    )
                })
                .collect::<Result<Vec<_>, _>>()?;
            messages.reverse();
            Ok(messages)
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

    fn max_seq<'a>(&'a self, room: &'a RoomName) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            let conn = self.conn().await?;
            let row = conn
                .query_one(
                    "SELECT COALESCE(MAX(seq), 0)::bigint FROM messages WHERE room = $1",
                    &[&room.as_str()],
                )
                .await
                .map_err(classify)?;
            Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
        })
    }
}
