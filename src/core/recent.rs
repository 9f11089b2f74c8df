//! A room's memory of what it delivered last: the ring of recent messages, and the holes it
//! could not vouch for.
//!
//! The ring is written by the room's delivery gate ([`super::room::Room::commit`]) at the moment
//! a message is handed to the members, under the same lock. That is the whole trick: a cache that
//! is updated where visibility is decided can never show a joiner a message the room has not
//! delivered (one still in flight, or one whose request failed), nor miss one it has. A joiner
//! with watermark `upto` reads "the last N messages at or below `upto`" from it; live delivery
//! starts after `upto`.
//!
//! Two more facts make reads exact:
//! * `floor`: every message delivered with a seq above it is in the ring. Below it messages
//!   were evicted (or the ring was warmed with only the newest ones): a read reaching below the
//!   floor must also ask the store.
//! * `lost`: seqs the gate gave up on without knowing whether a message with that seq exists
//!   somewhere (see `Room::give_up`). Their members were told when it happened; a reader whose
//!   replay crosses one is told again. Kept for the last [`LOST_KEPT`] ranges.

use std::collections::VecDeque;
use std::sync::Arc;

use super::message::ChatMessage;
use super::ring::Ring;

/// How many ranges of given-up seqs a room remembers.
pub const LOST_KEPT: usize = 64;

/// See the module docs.
#[derive(Debug, Default)]
pub struct Recent {
    /// `None` when the pipeline keeps no history in memory (no `history` layer).
    ring: Option<Ring<Arc<ChatMessage>>>,
    floor: u64,
    lost: VecDeque<(u64, u64)>,
}

/// What the ring could answer to a read.
#[derive(Debug, Clone, Default)]
pub struct RingRead {
    /// The newest matching messages, oldest first, at most the limit asked.
    pub messages: Vec<Arc<ChatMessage>>,
    /// Whether this is the whole answer: the limit was reached, or nothing older than the ring
    /// can match.
    pub complete: bool,
    /// Ranges of the read's span the room gave up on without knowing their fate.
    pub lost: Vec<(u64, u64)>,
}

impl Recent {
    /// A memory of `capacity` messages (0: none).
    pub fn new(capacity: usize) -> Recent {
        Recent {
            ring: (capacity > 0).then(|| Ring::new(capacity)),
            floor: 0,
            lost: VecDeque::new(),
        }
    }

    /// The gate delivered `msg`, the newest seq so far.
    pub fn delivered(&mut self, msg: &Arc<ChatMessage>) {
        let Some(ring) = &mut self.ring else {
            self.floor = msg.seq;
            return;
        };
        if ring.len() == ring.capacity()
            && let Some(oldest) = ring.get(0)
        {
            self.floor = self.floor.max(oldest.seq);
        }
        ring.push(msg.clone());
    }

    /// Fills the memory with a room's stored history: `newest` are its newest messages at or
    /// below the room's starting point, oldest first; `complete` says whether they are all it has.
    ///
    /// The memory need not be empty. A room listens to the bus before it reads the store (so
    /// that nothing falls between the two), and another instance's first messages can arrive in
    /// between: the gate, still at 0, delivers them at once, and the store's answer may hold
    /// them too. The two are merged, each seq once and in seq order, since a read takes the
    /// ring as it is: appended, the store's copy would be shown a second time.
    pub fn warm(&mut self, newest: &[Arc<ChatMessage>], complete: bool) {
        let mut all: Vec<Arc<ChatMessage>> =
            self.ring.iter().flat_map(Ring::iter).cloned().collect();
        all.extend(newest.iter().cloned());
        all.sort_by_key(|m| m.seq);
        all.dedup_by_key(|m| m.seq);
        if let Some(ring) = &mut self.ring {
            *ring = Ring::new(ring.capacity());
        }
        for msg in &all {
            self.delivered(msg); // raises the floor over whatever no longer fits
        }
        if !complete {
            let below = newest.first().map_or(0, |m| m.seq.saturating_sub(1));
            self.floor = self.floor.max(below);
        }
    }

    /// The room gave up on `from..=to` without knowing whether they exist.
    pub fn lost(&mut self, from: u64, to: u64) {
        if self.lost.len() == LOST_KEPT {
            self.lost.pop_front();
        }
        self.lost.push_back((from, to));
    }

    /// The newest messages in `after+1..=upto`, at most `limit`; see [`RingRead`].
    pub fn read(&self, after: u64, upto: u64, limit: usize) -> RingRead {
        let mut newest_first: Vec<Arc<ChatMessage>> = self
            .ring
            .iter()
            .flat_map(|ring| ring.iter().rev())
            .filter(|m| m.seq <= upto && m.seq > after)
            .take(limit)
            .cloned()
            .collect();
        let complete = newest_first.len() >= limit || self.floor <= after;
        newest_first.reverse();
        let from = match newest_first.first() {
            Some(first) if newest_first.len() >= limit => first.seq,
            _ => after + 1,
        };
        RingRead {
            lost: self.lost_within(from, upto),
            messages: newest_first,
            complete,
        }
    }

    /// The remembered lost ranges that meet `from..=upto`, clipped to it.
    pub fn lost_within(&self, from: u64, upto: u64) -> Vec<(u64, u64)> {
        self.lost
            .iter()
            .filter(|(a, b)| *b >= from && *a <= upto)
            .map(|(a, b)| ((*a).max(from), (*b).min(upto)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::sample;

    fn seqs(read: &RingRead) -> Vec<u64> {
        read.messages.iter().map(|m| m.seq).collect()
    }

    fn memory(capacity: usize, delivered: impl IntoIterator<Item = u64>) -> Recent {
        let mut recent = Recent::new(capacity);
        for seq in delivered {
            recent.delivered(&sample("general", seq, "a", "x"));
        }
        recent
    }

    #[test]
    fn reads_are_cut_at_upto_and_limit() {
        let recent = memory(10, 1..=5);
        let read = recent.read(0, 4, 10);
        assert_eq!(seqs(&read), vec![1, 2, 3, 4]);
        assert!(read.complete, "the ring has everything since seq 1");
        let read = recent.read(0, 5, 2);
        assert_eq!(seqs(&read), vec![4, 5]);
        assert!(read.complete);
    }

    #[test]
    fn eviction_makes_longer_reads_incomplete() {
        let recent = memory(3, 1..=5);
        let read = recent.read(0, 5, 10);
        assert_eq!(seqs(&read), vec![3, 4, 5]);
        assert!(
            !read.complete,
            "1 and 2 were evicted: a store might have them"
        );
        assert!(recent.read(0, 5, 3).complete);
        assert!(
            recent.read(2, 5, 10).complete,
            "nothing after 2 was evicted"
        );
    }

    #[test]
    fn a_skipped_seq_is_simply_absent() {
        let recent = memory(10, [1, 2, 4]);
        let read = recent.read(0, 4, 10);
        assert_eq!(seqs(&read), vec![1, 2, 4]);
        assert!(read.complete && read.lost.is_empty());
    }

    #[test]
    fn a_warmed_memory_knows_whether_older_messages_exist() {
        let mut recent = Recent::new(3);
        let stored: Vec<_> = (7..=9).map(|s| sample("general", s, "a", "x")).collect();
        recent.warm(&stored, false);
        let read = recent.read(0, 9, 5);
        assert_eq!(seqs(&read), vec![7, 8, 9]);
        assert!(!read.complete, "1 to 6 are in the store only");
        let mut small = Recent::new(3);
        let stored: Vec<_> = (1..=2).map(|s| sample("general", s, "a", "x")).collect();
        small.warm(&stored, true);
        assert!(small.read(0, 2, 5).complete, "the store had only these two");
    }

    #[test]
    fn warming_after_deliveries_keeps_each_seq_once_in_seq_order() {
        let mut recent = memory(10, [1, 2]);
        let stored: Vec<_> = (1..=1).map(|s| sample("general", s, "a", "x")).collect();
        recent.warm(&stored, true);
        assert_eq!(seqs(&recent.read(0, 2, 10)), vec![1, 2]);
        // Full: the oldest go, and the floor says a read below what is left needs the store.
        let mut small = memory(3, [1]);
        let stored: Vec<_> = (5..=7).map(|s| sample("general", s, "a", "x")).collect();
        small.warm(&stored, false);
        let read = small.read(0, 7, 10);
        assert_eq!(seqs(&read), vec![5, 6, 7]);
        assert!(!read.complete, "2 to 4 are in the store only");
        assert!(small.read(4, 7, 10).complete);
    }

    #[test]
    fn lost_ranges_are_reported_within_a_read() {
        let mut recent = memory(10, [1, 2]);
        recent.lost(3, 4);
        recent.delivered(&sample("general", 5, "a", "x"));
        let read = recent.read(0, 5, 10);
        assert_eq!(seqs(&read), vec![1, 2, 5]);
        assert_eq!(read.lost, vec![(3, 4)]);
        assert_eq!(
            recent.read(3, 5, 10).lost,
            vec![(4, 4)],
            "clipped to the read"
        );
        assert!(recent.read(0, 2, 10).lost.is_empty());
    }

    #[test]
    fn without_a_ring_every_read_goes_to_the_store() {
        let recent = memory(0, 1..=3);
        let read = recent.read(0, 3, 10);
        assert!(read.messages.is_empty() && !read.complete);
        assert!(recent.read(3, 3, 10).complete, "nothing to read");
    }
}
