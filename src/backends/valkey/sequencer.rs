//! One counter per room, shared by every instance: `INCR chatd:seq:{room}`, never below a floor.
//!
//! `INCR` alone is atomic and gap-free, but it forgets: a Valkey restarted without persistence
//! starts every counter at 0 and would hand out seq 1 again, which the store already holds. So
//! each `next` runs a small Lua script (atomic, like every script) that raises the counter to a
//! floor before incrementing it. The floor passed is what the room has delivered here; when the
//! counter is missing altogether (Valkey restarted, or a room never used), the script refuses,
//! and the sequencer asks the store for the room's highest seq first, because other instances
//! may have numbered messages this one has not received yet. That store read happens once per
//! room after a restart, not per message.

use std::sync::Arc;

use deadpool_redis::{Pool, redis};
use futures_util::future::BoxFuture;
use tower::BoxError;

use super::{counter, timeout};
use crate::backends::Store;
use crate::core::{ChatError, Room, Sequencer};

/// KEYS[1]: the counter; ARGV[1]: the floor; ARGV[2]: "1" to create a missing counter at the
/// floor, "0" to answer -1 instead (so the caller can find a better floor).
const NEXT_SEQ: &str = r"
local current = redis.call('GET', KEYS[1])
local floor = tonumber(ARGV[1])
if not current then
  if ARGV[2] == '0' then return -1 end
  redis.call('SET', KEYS[1], floor)
elseif tonumber(current) < floor then
  redis.call('SET', KEYS[1], floor)
end
return redis.call('INCR', KEYS[1])
";

/// Numbers messages with Valkey counters; see the module docs.
#[derive(Clone)]
pub struct ValkeySequencer {
    pool: Pool,
    store: Option<Arc<dyn Store>>,
}

impl std::fmt::Debug for ValkeySequencer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValkeySequencer").finish_non_exhaustive()
    }
}

impl ValkeySequencer {
    pub(super) fn new(pool: Pool, store: Option<Arc<dyn Store>>) -> ValkeySequencer {
        ValkeySequencer { pool, store }
    }

    async fn run(&self, key: &str, floor: u64, create: bool) -> Result<i64, BoxError> {
        let mut conn = timeout(self.pool.get()).await??;
        let cmd = redis::cmd("EVAL")
            .arg(NEXT_SEQ)
            .arg(1)
            .arg(key)
            .arg(floor)
            .arg(if create { "1" } else { "0" })
            .to_owned();
        Ok(timeout(cmd.query_async(&mut conn)).await??)
    }

    /// The next seq for `room`; see the module docs.
    async fn numbered(&self, room: &Room) -> Result<u64, BoxError> {
        let key = counter(&room.name);
        let floor = room.delivered();
        let mut seq = self.run(&key, floor, false).await?;
        if seq < 0 {
            let stored = match &self.store {
                Some(store) => store.max_seq(&room.name).await?,
                None => 0,
            };
            tracing::info!(room = %room.name, floor = floor.max(stored),
                "Valkey has no counter for this room: continuing after the stored history");
            seq = self.run(&key, floor.max(stored), true).await?;
        }
        Ok(u64::try_from(seq)?)
    }
}

impl Sequencer for ValkeySequencer {
    fn next<'a>(&'a self, room: &'a Room) -> BoxFuture<'a, Result<u64, BoxError>> {
        Box::pin(async move {
            // The sender is told plainly; the message was not numbered, so nothing is lost.
            self.numbered(room).await.map_err(|err| {
                ChatError::unavailable(format!(
                    "message not sent: cannot reach Valkey to number it ({err}); try again"
                ))
                .into()
            })
        })
    }
}
