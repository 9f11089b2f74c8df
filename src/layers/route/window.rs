//! History windows (`Command::Window`): IRC's `CHATHISTORY`, in the core's terms.
//!
//! A window is the messages of a room strictly between two bounds, the oldest or the newest
//! `limit` of them. It is answered with the same reads as a join or `/history`
//! ([`HistoryQuery`]: the ring first, then the store), so every protocol sees one history.
//!
//! **Seqs, not times.** A room's messages are numbered without gaps, so a bound given as a seq is
//! exact. A bound given as a time is first turned into a seq: the last message stamped at or
//! before it. Timestamps grow with seqs (both are taken when the route layer numbers a message),
//! so the last recent messages answer most of these with one read, and an older time is found by
//! a binary search over seqs, one single-message read per step (~20 for a million messages).
//! With several instances a timestamp comes from the clock of the instance that numbered the
//! message, so a time bound is as precise as those clocks agree; a seq bound is exact anywhere.
//!
//! **Oldest first.** A [`HistoryQuery`] returns the newest `limit` messages below its `upto`. The
//! oldest `limit` after a point are the newest below `after + limit` (seqs have no gaps), read
//! again past any seq that was given up on (a message that failed after it was numbered).

use std::sync::Arc;

use tower::BoxError;

use super::Ctx;
use crate::core::{Bound, ChatError, ChatMessage, HistoryQuery, HistoryWindow, Session};
use crate::layers::Inner;
use crate::layers::parse::MAX_HISTORY;

/// Messages read at once to place a recent time bound without a search.
const RECENT: usize = MAX_HISTORY;
/// Reads an oldest-first window makes at most (each past seqs that were given up on).
const MAX_READS: usize = 8;

impl<S: Inner> Ctx<'_, S> {
    /// Answers a history window for a member of its room.
    pub(super) async fn window(
        &mut self,
        session: &Session,
        window: HistoryWindow,
    ) -> Result<Vec<Arc<ChatMessage>>, BoxError> {
        let name = window.room.clone();
        let room = match self.hub().rooms().get(&name) {
            Some(room) if room.is_member(session.id) => room,
            _ => {
                return Err(ChatError::forbidden(format!(
                    "you are not in {name}: /join {name} first"
                ))
                .into());
            }
        };
        let delivered = room.delivered();
        let limit = window.limit.clamp(1, MAX_HISTORY);
        let low = match window.after {
            Bound::Open => 0,
            Bound::Seq(seq) => seq,
            Bound::Time(ms) => {
                self.last_at_or_before(session, &window, ms, delivered)
                    .await?
            }
        };
        let high = match window.before {
            Bound::Open => delivered,
            Bound::Seq(seq) => seq.saturating_sub(1).min(delivered),
            Bound::Time(ms) => {
                self.last_at_or_before(session, &window, ms.saturating_sub(1), delivered)
                    .await?
            }
        };
        if low >= high {
            return Ok(Vec::new());
        }
        let query = |after: u64, upto: u64, limit: usize| HistoryQuery {
            room: name.clone(),
            upto,
            after,
            limit,
        };
        if !window.oldest_first {
            return self.read_history(session, query(low, high, limit)).await;
        }
        let mut found = Vec::with_capacity(limit);
        let mut after = low;
        for _ in 0..MAX_READS {
            if found.len() >= limit || after >= high {
                break;
            }
            let wanted = limit - found.len();
            let upto = high.min(after + wanted as u64);
            found.extend(
                self.read_history(session, query(after, upto, wanted))
                    .await?,
            );
            after = upto;
        }
        Ok(found)
    }

    /// The seq of the last message of the window's room stamped at or before `ms` (0 if none),
    /// among the first `delivered`; see the module docs.
    async fn last_at_or_before(
        &mut self,
        session: &Session,
        window: &HistoryWindow,
        ms: i64,
        delivered: u64,
    ) -> Result<u64, BoxError> {
        let read = |upto: u64, limit: usize| HistoryQuery {
            room: window.room.clone(),
            upto,
            after: 0,
            limit,
        };
        let recent = self.read_history(session, read(delivered, RECENT)).await?;
        if let Some(hit) = recent.iter().rev().find(|m| m.ts_ms <= ms) {
            return Ok(hit.seq);
        }
        // Every recent message is later than `ms`: search below the oldest of them.
        let Some(oldest) = recent.first() else {
            return Ok(0);
        };
        // Invariant: the answer is in [low, high]; `low` is 0 or a message stamped at or
        // before `ms`.
        let (mut low, mut high) = (0, oldest.seq - 1);
        while low < high {
            let mid = low + (high - low).div_ceil(2);
            match self.read_history(session, read(mid, 1)).await?.pop() {
                Some(msg) if msg.seq > low && msg.ts_ms <= ms => low = msg.seq,
                Some(msg) if msg.seq > low => high = msg.seq - 1,
                // Nothing between `low` and `mid` (seqs given up on): look below.
                _ => high = mid - 1,
            }
        }
        Ok(low)
    }
}
