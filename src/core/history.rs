//! What a read of a room's history asks and what it is answered: the types the route, history
//! and persist layers and the stores pass one another.
//!
//! A read is a [`HistoryQuery`] (the last `limit` messages up to a seq) or, for IRC's
//! `CHATHISTORY`, a [`HistoryWindow`] between two [`Bound`]s. A store answers with a [`Page`] (its
//! rows, messages and tombstones, of a span of seqs), a room's memory with its ring, and
//! [`HistoryQuery::answer`] makes of the two a [`HistoryAnswer`]: every message once, and every
//! seq of the span neither explains, reported as missing rather than skipped in silence. An event
//! stream reads its replay a [`ReplayPage`] at a time; a room being opened learns from its store a
//! [`StoredRoom`] (its newest rows and how far its numbering went).
//!
//! These are data, with the merge rules that belong to them; the requests that carry them
//! (`Action::History`, `Command::Window`, `Action::OpenRoom`) are in `core::request`.

use std::sync::Arc;

use super::message::ChatMessage;
use super::names::RoomName;

/// What a store (or its write queue) holds of a span of one room's seqs, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The messages.
    pub messages: Vec<Arc<ChatMessage>>,
    /// Seqs known to carry no message (tombstones: their senders abandoned them, or the
    /// instances agreed to give them up).
    pub skipped: Vec<u64>,
    /// Whether the read stopped at its limit: older rows than the ones returned may exist.
    pub more: bool,
}

impl Page {
    /// The lowest seq of the page, message or tombstone.
    pub fn lowest(&self) -> Option<u64> {
        let message = self.messages.first().map(|m| m.seq);
        let skipped = self.skipped.first().copied();
        message.into_iter().chain(skipped).min()
    }

    /// The highest seq of the page, message or tombstone.
    pub fn highest(&self) -> Option<u64> {
        let message = self.messages.last().map(|m| m.seq);
        let skipped = self.skipped.last().copied();
        message.into_iter().chain(skipped).max()
    }

    /// Adds `other`'s rows (a write queue's rows to a store's, say): every seq once, in order.
    pub fn merge(&mut self, other: Page) {
        self.messages.extend(other.messages);
        self.messages.sort_by_key(|m| m.seq);
        self.messages.dedup_by_key(|m| m.seq);
        self.skipped.extend(other.skipped);
        self.skipped.sort_unstable();
        self.skipped.dedup();
        let messages: std::collections::BTreeSet<u64> =
            self.messages.iter().map(|m| m.seq).collect();
        self.skipped.retain(|s| !messages.contains(s));
        self.more |= other.more;
    }

    /// Keeps the newest `window` rows (messages and tombstones), marking the page as having
    /// more when it drops any.
    pub fn keep_newest(&mut self, window: usize) {
        let mut seqs: Vec<u64> = self.messages.iter().map(|m| m.seq).collect();
        seqs.extend(&self.skipped);
        if seqs.len() <= window {
            return;
        }
        seqs.sort_unstable();
        let lowest_kept = seqs.get(seqs.len() - window).copied().unwrap_or(u64::MAX);
        self.messages.retain(|m| m.seq >= lowest_kept);
        self.skipped.retain(|s| *s >= lowest_kept);
        self.more = true;
    }

    /// The seqs between its lowest and its highest row that it holds nothing for, as ranges.
    pub fn holes(&self) -> Vec<(u64, u64)> {
        let mut seqs: Vec<u64> = self.messages.iter().map(|m| m.seq).collect();
        seqs.extend(&self.skipped);
        seqs.sort_unstable();
        seqs.windows(2)
            .filter(|pair| pair[1] > pair[0] + 1)
            .map(|pair| (pair[0] + 1, pair[1] - 1))
            .collect()
    }

    /// The lowest seq after which the page holds every row up to its highest: where its
    /// settled prefix ends (every seq up to the returned one is a message or a tombstone here,
    /// counting from the page's lowest row).
    pub fn settled_until(&self) -> u64 {
        let mut seqs: Vec<u64> = self.messages.iter().map(|m| m.seq).collect();
        seqs.extend(&self.skipped);
        seqs.sort_unstable();
        let Some(&first) = seqs.first() else {
            return 0;
        };
        let mut until = first;
        for seq in seqs.into_iter().skip(1) {
            if seq != until + 1 {
                break;
            }
            until = seq;
        }
        until
    }
}

/// What a store holds about a room.
#[derive(Debug, Clone, Default)]
pub struct StoredRoom {
    /// Its newest rows (messages and tombstones), at most the window asked for.
    pub newest: Page,
    /// The highest seq its shared counter or reservation has reached (0 if none): every seq
    /// handed out so far, anywhere, is at or below it.
    pub numbered: u64,
    /// The instance that made the last reservation of seqs, if one did (see
    /// `backends::sequencer`).
    pub reserved_by: Option<String>,
    /// Whether messages are stored before anybody sees them (write-ahead): then every message
    /// ever shown is in the store, and a seq missing from it carried nothing anybody saw.
    pub written_ahead: bool,
}

impl StoredRoom {
    /// A room as a store reads it: its newest rows and its `room_seq` row (`last_seq`, `owner`),
    /// if it has one. `written_ahead` is the persist layer's to set (see
    /// [`OpenRoom`](super::request::OpenRoom)).
    pub fn from_counter(newest: Page, counter: Option<(i64, Option<String>)>) -> StoredRoom {
        let (numbered, reserved_by) = counter.unzip();
        StoredRoom {
            newest,
            numbered: numbered.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
            reserved_by: reserved_by.flatten(),
            written_ahead: false,
        }
    }
}

/// The messages of `room` strictly between two bounds, at most `limit` of them (the route layer
/// caps it at 100, as `/history`), counted from the oldest or the newest end of the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryWindow {
    /// The room; the session must be a member.
    pub room: RoomName,
    /// Only messages after this (exclusive).
    pub after: Bound,
    /// Only messages before this (exclusive).
    pub before: Bound,
    /// At most this many.
    pub limit: usize,
    /// Which end `limit` counts from: `true` for the oldest messages of the window, `false` for
    /// the newest.
    pub oldest_first: bool,
}

/// One end of a [`HistoryWindow`], exclusive: as `after`, `Seq(5)` starts the window at seq 6
/// and `Time(t)` at the first message stamped later than `t`; as `before`, they end it at seq 4
/// and at the last message stamped earlier than `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// No bound: the room's first message, or the last one delivered.
    Open,
    /// A message's seq (IRC's `msgid`).
    Seq(u64),
    /// A time, in milliseconds since the Unix epoch (IRC's `timestamp=`).
    Time(i64),
}

/// A read of recent history: the last `limit` messages of `room` with seq at most `upto`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// The room.
    pub room: RoomName,
    /// Only messages with a seq at most this (what the room has delivered; see
    /// [`super::room::Room::join`]).
    pub upto: u64,
    /// Only messages with a seq above this (0 for no lower bound).
    pub after: u64,
    /// At most this many, the newest ones.
    pub limit: usize,
}

impl HistoryQuery {
    /// The answer made of what a room's memory (`ring`, which may be empty) and a store (`page`,
    /// its rows in the query's span) hold: every message once, in seq order, cut to the query's
    /// bounds and its newest `limit`, and every seq of the span that neither explains.
    ///
    /// The span the answer vouches for starts after `after`, unless the limit cut older messages
    /// off (then it starts at the oldest message returned) or the store's read stopped at its own
    /// limit. A seq of the span that is not a message and not a tombstone is missing: a message
    /// not stored (lost in a crash before its write, or still on its way from another instance)
    /// or a seq nobody can vouch for. It is reported so that the reader is told, never skipped
    /// in silence.
    pub fn answer(&self, ring: Vec<Arc<ChatMessage>>, page: Page) -> HistoryAnswer {
        let mut all: Vec<Arc<ChatMessage>> = ring
            .into_iter()
            .chain(page.messages)
            .filter(|m| m.seq > self.after && m.seq <= self.upto)
            .collect();
        all.sort_by_key(|m| m.seq);
        all.dedup_by_key(|m| m.seq);
        let skip = all.len().saturating_sub(self.limit);
        let messages = all.split_off(skip);
        let mut from = self.after + 1;
        if skip > 0 || messages.len() >= self.limit {
            from = messages.first().map_or(from, |m| m.seq);
        }
        if page.more {
            let oldest_row = page.skipped.first().copied().into_iter();
            let oldest = messages
                .first()
                .map(|m| m.seq)
                .into_iter()
                .chain(oldest_row)
                .min();
            from = from.max(oldest.unwrap_or(from));
        }
        let missing = missing(from, self.upto, &messages, &page.skipped);
        HistoryAnswer {
            messages,
            from,
            missing,
        }
    }
}

/// The seqs of `from..=upto` that are neither in `messages` nor in `skipped`, as ranges.
fn missing(
    from: u64,
    upto: u64,
    messages: &[Arc<ChatMessage>],
    skipped: &[u64],
) -> Vec<(u64, u64)> {
    let mut known: Vec<u64> = messages.iter().map(|m| m.seq).collect();
    known.extend(
        skipped
            .iter()
            .copied()
            .filter(|s| (from..=upto).contains(s)),
    );
    known.sort_unstable();
    let mut ranges = Vec::new();
    let mut next = from;
    for seq in known.into_iter().chain(std::iter::once(upto + 1)) {
        if seq > next {
            ranges.push((next, seq - 1));
        }
        next = next.max(seq + 1);
    }
    ranges
}

/// One page of an event stream's replay (see `layers::route`).
#[derive(Debug, Clone, Default)]
pub struct ReplayPage {
    /// The page's messages and holes. Seqs after the page's start and before `answer.from` are
    /// not held by the server (older than what it keeps).
    pub answer: HistoryAnswer,
    /// The last seq the page accounts for: the next page starts after it.
    pub until: u64,
}

/// A history read's answer: see [`HistoryQuery::answer`].
#[derive(Debug, Clone, Default)]
pub struct HistoryAnswer {
    /// The messages, oldest first.
    pub messages: Vec<Arc<ChatMessage>>,
    /// The answer covers the seqs from this one to the query's `upto`: with `after + 1` it is
    /// everything asked; a higher value means older messages were left out (the limit).
    pub from: u64,
    /// Ranges within the covered span that are missing (see [`HistoryQuery::answer`]).
    pub missing: Vec<(u64, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::sample;

    fn query(after: u64, upto: u64, limit: usize) -> HistoryQuery {
        HistoryQuery {
            room: RoomName::parse("general").unwrap(),
            upto,
            after,
            limit,
        }
    }

    fn m(seq: u64) -> Arc<ChatMessage> {
        sample("general", seq, "a", "x")
    }

    fn seqs(answer: &HistoryAnswer) -> Vec<u64> {
        answer.messages.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn an_answer_keeps_each_seq_once_in_order_within_bounds() {
        let page = Page {
            messages: vec![m(1), m(2), m(3), m(4), m(5)],
            ..Page::default()
        };
        let answer = query(1, 6, 4).answer(vec![m(5), m(6), m(7)], page);
        assert_eq!(seqs(&answer), vec![3, 4, 5, 6]);
        assert_eq!(answer.from, 3, "the limit cut 2 off");
        assert!(answer.missing.is_empty());
    }

    #[test]
    fn holes_are_missing_unless_a_tombstone_explains_them() {
        // The store is behind the ring (a write queue draining): 11 to 19 are nowhere.
        let page = Page {
            messages: (6..=10).map(m).collect(),
            skipped: vec![21],
            more: false,
        };
        let ring: Vec<_> = (20..=25).filter(|s| *s != 21).map(m).collect();
        let answer = query(5, 25, 1000).answer(ring, page);
        assert_eq!(answer.from, 6);
        assert_eq!(answer.missing, vec![(11, 19)]);
        assert_eq!(seqs(&answer).len(), 5 + 5);
    }

    #[test]
    fn a_store_read_cut_at_its_limit_vouches_only_for_what_it_returned() {
        let page = Page {
            messages: vec![m(40), m(41)],
            skipped: vec![39],
            more: true,
        };
        let answer = query(0, 41, 1000).answer(Vec::new(), page);
        assert_eq!(answer.from, 39);
        assert!(answer.missing.is_empty());
    }

    #[test]
    fn a_page_keeps_its_newest_rows_and_says_it_has_more() {
        let mut page = Page {
            messages: vec![m(1), m(2), m(4), m(5)],
            skipped: vec![3],
            more: false,
        };
        page.keep_newest(5);
        assert!(!page.more, "nothing to drop");
        page.keep_newest(3);
        assert_eq!(
            page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [4, 5]
        );
        assert_eq!((page.skipped.clone(), page.more), (vec![3], true));
    }

    #[test]
    fn a_page_knows_where_its_settled_prefix_ends() {
        let page = Page {
            messages: vec![m(5), m(6), m(9)],
            skipped: vec![7],
            more: false,
        };
        assert_eq!(page.settled_until(), 7, "8 is not there");
        assert_eq!(page.holes(), vec![(8, 8)]);
        assert_eq!((page.lowest(), page.highest()), (Some(5), Some(9)));
        assert_eq!(Page::default().settled_until(), 0);
    }
}
