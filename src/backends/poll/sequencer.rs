//! One sequence per room, shared by every instance: a counter row in PostgreSQL.
//!
//! `INSERT .. ON CONFLICT DO UPDATE .. RETURNING` is one atomic statement: PostgreSQL locks the
//! room's row for the update, so two instances asking at once get consecutive numbers, and the
//! first message of a room creates its row. It costs a round trip per message, which is the price
//! of a counter that every instance agrees on.
//!
//! **Phase 3 numbers here too, not in Valkey.** A Valkey `INCR` is faster, but Valkey forgets: a
//! restart without persistence, or from an older snapshot, hands out seqs again; and while Valkey
//! is unreachable for one instance, that instance cannot number at all, or (numbering elsewhere)
//! would have to agree with the instances still counting in Valkey, which it cannot reach. The
//! counter row is durable, and it is in the database every instance must reach anyway to store
//! its messages: one authority for "which seq is next", whatever happens to the broker.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tower::BoxError;

use super::Watched;
use crate::backends::postgres::{COUNTER, PostgresStore, classify};
use crate::backends::{StoreError, db_seq};
use crate::core::{ChatError, Room, Sequencer};

/// Takes the next seq, never below `$2`, what this instance has delivered of the room already:
/// a room whose messages were stored before it had a counter row continues after them.
const NEXT_SEQ: &str = "INSERT INTO room_seq (room, last_seq) VALUES ($1, $2::bigint + 1) \
     ON CONFLICT (room) DO UPDATE SET last_seq = GREATEST(room_seq.last_seq, $2::bigint) + 1 \
     RETURNING last_seq";

/// Numbers messages from the `room_seq` table; see the module docs.
#[derive(Debug)]
pub struct PostgresSequencer {
    store: PostgresStore,
    watched: Arc<Watched>,
}

impl PostgresSequencer {
    pub(super) fn new(store: PostgresStore, watched: Arc<Watched>) -> PostgresSequencer {
        PostgresSequencer { store, watched }
    }
}

impl Sequencer for PostgresSequencer {
    fn shared(&self) -> bool {
        true
    }

    fn high_water<'a>(&'a self, room: &'a Room) -> BoxFuture<'a, Result<u64, BoxError>> {
        Box::pin(async move {
            let conn = self.store.conn().await?;
            let row = conn
                .query_opt(COUNTER, &[&room.name.as_str()])
                .await
                .map_err(classify)?;
            Ok(row.map_or(0, |row| u64::try_from(row.get::<_, i64>(0)).unwrap_or(0)))
        })
    }

    fn next<'a>(&'a self, room: &'a Arc<Room>) -> BoxFuture<'a, Result<u64, BoxError>> {
        Box::pin(async move {
            let floor = db_seq(room.delivered());
            // The sender is told plainly; the message was not numbered, so nothing is lost.
            let unreachable = |err: StoreError| match err {
                StoreError::Unavailable(_) => ChatError::unavailable(format!(
                    "message not sent: cannot reach the database to number it ({err}); try again"
                )),
                other => ChatError::unavailable(format!("message not sent: {other}")),
            };
            let conn = self.store.conn().await.map_err(unreachable)?;
            let row = conn
                .query_one(NEXT_SEQ, &[&room.name.as_str(), &floor])
                .await
                .map_err(|e| unreachable(classify(e)))?;
            let seq = u64::try_from(row.get::<_, i64>(0))?;
            // The poll must not feed it back: it is on its way through the local stack.
            self.watched.numbered(&room.name, seq);
            Ok(seq)
        })
    }
}
