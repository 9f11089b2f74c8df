//! The presence directory on PostgreSQL: nicks and memberships of every instance in two tables.
//!
//! The rules (heartbeat every `ttl / 3`, readers ignore rows older than the TTL, the heartbeat
//! deletes expired rows of any instance) are explained in [`super::directory`]; this file is
//! their SQL. Each run of an instance is an *owner*: its name plus a random tag, so that an
//! instance restarted under the same name never mistakes a dead run's rows for its own.
//!
//! The directory has a small pool of its own (two connections), apart from the store's: a
//! heartbeat must not queue behind a write-behind batch, or a busy instance would look dead.
//!
//! A join or a leave is recorded best-effort: the chat goes on when the database is out of
//! reach. A write that failed, or that was dropped half-way with the request it served (given
//! up on by a `timeout` layer), is not forgotten, though: it marks the memberships for repair
//! (`Repair`), and the next heartbeat that reaches the database makes this instance's rows say
//! what its sessions hold (step 4 in `heartbeat.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bb8::{Pool, PooledConnection};
use bb8_postgres::PostgresConnectionManager;
use futures_util::future::BoxFuture;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

mod heartbeat;

use super::directory::{Directory, with_local_rooms};
use super::postgres::{CONNECT_TIMEOUT, classify, pool_error};
use super::{Background, StoreError};
use crate::core::{Hub, Nick, RoomName, SessionId};

type Manager = PostgresConnectionManager<NoTls>;

/// Connections of the directory's own pool.
const POOL_SIZE: u32 = 2;

/// `$TTL` in these statements is the TTL in milliseconds; a row is live while younger.
const LIVE: &str = "n.seen_at >= now() - $TTL::bigint * interval '1 millisecond'";

/// The presence directory on PostgreSQL; see the module docs.
#[derive(Debug, Clone)]
pub struct PostgresDirectory {
    pool: Pool<Manager>,
    hub: Hub,
    owner: String,
    ttl_ms: i64,
    repair: Arc<Repair>,
}

/// Whether this instance's memberships in the tables may be wrong: a join or a leave whose write
/// failed, or nicks the heartbeat restored without their rooms. The heartbeat repairs them from
/// the sessions' own state; `writes` tells it whether a join or a leave ran while it did, whose
/// outcome its repair may have undone, so that it repairs once more.
#[derive(Debug, Default)]
struct Repair {
    /// A membership write failed, or nicks were restored, since the last repair.
    needed: AtomicBool,
    /// Membership writes begun, counted before each one (after the session's own state changed).
    writes: AtomicU64,
}

impl PostgresDirectory {
    /// Connects to `url` (whose schema the store has migrated) and starts this instance's
    /// heartbeat on `background`; when `background` stops, the heartbeat deletes this
    /// instance's rows and ends.
    ///
    /// # Errors
    /// When `url` is not a connection string or the pool cannot be built.
    pub async fn start(
        url: &str,
        hub: &Hub,
        ttl: Duration,
        background: &Background,
    ) -> Result<PostgresDirectory, StoreError> {
        let manager = Manager::new_from_stringlike(url, NoTls)
            .map_err(|e| StoreError::Rejected(format!("invalid PostgreSQL url: {e}")))?;
        let pool = Pool::builder()
            .max_size(POOL_SIZE)
            .connection_timeout(CONNECT_TIMEOUT)
            .test_on_check_out(true)
            .build(manager)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let directory = PostgresDirectory {
            pool,
            hub: hub.clone(),
            owner: format!("{}#{:016x}", hub.instance(), rand::random::<u64>()),
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            repair: Arc::default(),
        };
        heartbeat::spawn(directory.clone(), ttl, background);
        Ok(directory)
    }

    pub(super) async fn conn(&self) -> Result<PooledConnection<'_, Manager>, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Runs `write`, a join's or a leave's; one that fails, or is dropped before it is done (a
    /// request given up on: the session's own state has changed already), leaves a repair to
    /// the heartbeat.
    async fn membership(
        &self,
        write: impl Future<Output = Result<(), StoreError>>,
    ) -> Result<(), StoreError> {
        self.repair.writes.fetch_add(1, Ordering::SeqCst);
        let mut unwritten = Unwritten(Some(&self.repair));
        let result = write.await;
        if result.is_ok() {
            unwritten.0 = None;
        }
        result
    }

    /// An expired holder of `nick` (a dead instance) loses it, and its memberships with it, so
    /// that the nick can be taken.
    async fn evict_expired(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        nick: &Nick,
    ) -> Result<(), StoreError> {
        let sql = live_sql(
            "DELETE FROM presence_nicks n WHERE n.nick_key = $1 AND NOT (LIVE)",
            2,
        );
        tx.execute(&sql, &[&nick.key(), &self.ttl_ms])
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn claim_nick(&self, session: SessionId, nick: &Nick) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(classify)?;
        self.evict_expired(&tx, nick).await?;
        let won = tx
            .execute(
                "INSERT INTO presence_nicks (nick_key, nick, instance, owner, session) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (nick_key) DO UPDATE SET nick = EXCLUDED.nick, seen_at = now() \
                 WHERE presence_nicks.owner = EXCLUDED.owner \
                   AND presence_nicks.session = EXCLUDED.session",
                &[
                    &nick.key(),
                    &nick.as_str(),
                    &self.hub.instance().as_ref(),
                    &self.owner,
                    &db_session(session),
                ],
            )
            .await
            .map_err(classify)?;
        tx.commit().await.map_err(classify)?;
        Ok(won == 1)
    }

    async fn rename_nick(
        &self,
        session: SessionId,
        old: &Nick,
        new: &Nick,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(classify)?;
        self.evict_expired(&tx, new).await?;
        // The memberships follow the key (ON UPDATE CASCADE).
        let moved = tx
            .execute(
                "UPDATE presence_nicks SET nick_key = $1, nick = $2, seen_at = now() \
                 WHERE nick_key = $3 AND owner = $4 AND session = $5",
                &[
                    &new.key(),
                    &new.as_str(),
                    &old.key(),
                    &self.owner,
                    &db_session(session),
                ],
            )
            .await;
        match moved {
            Ok(1) => {
                tx.commit().await.map_err(classify)?;
                Ok(true)
            }
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(false),
            Err(e) => Err(classify(e)),
            // Our row was gone (it expired while the database was out of reach): claim afresh.
            Ok(_) => {
                drop(tx);
                drop(conn);
                self.claim_nick(session, new).await
            }
        }
    }
}

/// Marks the memberships for repair when dropped, unless its write was done.
struct Unwritten<'a>(Option<&'a Repair>);

impl Drop for Unwritten<'_> {
    fn drop(&mut self) {
        if let Some(repair) = self.0 {
            repair.needed.store(true, Ordering::SeqCst);
        }
    }
}

/// `sql` with `LIVE` spelled out, its TTL taken from parameter `$ttl_param`.
fn live_sql(sql: &str, ttl_param: usize) -> String {
    sql.replace("LIVE", &LIVE.replace("$TTL", &format!("${ttl_param}")))
}

/// A session id as the table keeps it.
pub(super) fn db_session(id: SessionId) -> i64 {
    i64::try_from(id.0).unwrap_or(i64::MAX)
}

impl Directory for PostgresDirectory {
    fn claim<'a>(
        &'a self,
        session: SessionId,
        nick: &'a Nick,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.claim_nick(session, nick))
    }

    fn rename<'a>(
        &'a self,
        session: SessionId,
        old: &'a Nick,
        new: &'a Nick,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.rename_nick(session, old, new))
    }

    fn release(&self, session: SessionId) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let conn = self.conn().await?;
            conn.execute(
                "DELETE FROM presence_nicks WHERE owner = $1 AND session = $2",
                &[&self.owner, &db_session(session)],
            )
            .await
            .map_err(classify)?;
            Ok(())
        })
    }

    fn joined<'a>(
        &'a self,
        room: &'a RoomName,
        nick: &'a Nick,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.membership(async move {
            let conn = self.conn().await?;
            conn.execute(
                "INSERT INTO presence_members (room, nick_key) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
                &[&room.as_str(), &nick.key()],
            )
            .await
            .map_err(classify)?;
            Ok(())
        }))
    }

    fn left<'a>(
        &'a self,
        room: &'a RoomName,
        nick: &'a Nick,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.membership(async move {
            let conn = self.conn().await?;
            // Only our own membership: if our nick expired and somebody else claimed it, theirs
            // is not ours to delete.
            conn.execute(
                "DELETE FROM presence_members WHERE room = $1 AND nick_key = $2 \
                 AND nick_key IN (SELECT nick_key FROM presence_nicks WHERE owner = $3)",
                &[&room.as_str(), &nick.key(), &self.owner],
            )
            .await
            .map_err(classify)?;
            Ok(())
        }))
    }

    fn members<'a>(
        &'a self,
        room: &'a RoomName,
    ) -> BoxFuture<'a, Result<Option<Vec<Nick>>, StoreError>> {
        Box::pin(async move {
            let conn = self.conn().await?;
            let sql = live_sql(
                "SELECT n.nick FROM presence_members m \
                 JOIN presence_nicks n ON n.nick_key = m.nick_key \
                 WHERE m.room = $1 AND LIVE ORDER BY n.nick_key",
                2,
            );
            let rows = conn
                .query(&sql, &[&room.as_str(), &self.ttl_ms])
                .await
                .map_err(classify)?;
            let mut nicks = rows
                .iter()
                .filter_map(|row| Nick::parse(row.get::<_, &str>(0)).ok())
                .collect::<Vec<_>>();
            nicks.sort_by_key(|n| n.as_str().to_ascii_lowercase()); // the order one instance shows
            if nicks.is_empty() && self.hub.rooms().members(room).is_none() {
                return Ok(None);
            }
            Ok(Some(nicks))
        })
    }

    fn locate<'a>(
        &'a self,
        nick: &'a Nick,
    ) -> BoxFuture<'a, Result<Option<(Nick, String)>, StoreError>> {
        Box::pin(async move {
            let conn = self.conn().await?;
            let sql = live_sql(
                "SELECT n.nick, n.instance FROM presence_nicks n WHERE n.nick_key = $1 AND LIVE",
                2,
            );
            let row = conn
                .query_opt(&sql, &[&nick.key(), &self.ttl_ms])
                .await
                .map_err(classify)?;
            Ok(row.and_then(|row| {
                let nick = Nick::parse(row.get::<_, &str>(0)).ok()?;
                Some((nick, row.get::<_, String>(1)))
            }))
        })
    }

    fn users(&self) -> BoxFuture<'_, Result<Option<usize>, StoreError>> {
        Box::pin(async move {
            let conn = self.conn().await?;
            let sql = live_sql("SELECT count(*) FROM presence_nicks n WHERE LIVE", 1);
            let row = conn
                .query_one(&sql, &[&self.ttl_ms])
                .await
                .map_err(classify)?;
            Ok(Some(usize::try_from(row.get::<_, i64>(0)).unwrap_or(0)))
        })
    }

    fn rooms(&self) -> BoxFuture<'_, Result<Vec<(RoomName, usize)>, StoreError>> {
        Box::pin(async move {
            let conn = self.conn().await?;
            let sql = live_sql(
                "SELECT m.room, count(*) FROM presence_members m \
                 JOIN presence_nicks n ON n.nick_key = m.nick_key \
                 WHERE LIVE GROUP BY m.room",
                1,
            );
            let rows = conn.query(&sql, &[&self.ttl_ms]).await.map_err(classify)?;
            let shared = rows
                .iter()
                .filter_map(|row| {
                    let room = RoomName::parse(row.get::<_, &str>(0)).ok()?;
                    let count = usize::try_from(row.get::<_, i64>(1)).unwrap_or(0);
                    Some((room, count))
                })
                .collect();
            Ok(with_local_rooms(shared, self.hub.rooms().list()))
        })
    }
}
