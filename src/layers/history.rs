//! The history layer: a ring buffer of each room's recent messages, in front of the store.
//!
//! **Where it sits.** After `route`, before `persist` and `fanout`. On the way in it remembers
//! every `Publish` in its room's ring (messages from other instances too); `History` reads it
//! answers from the ring when the ring holds enough, and passes inward to the store otherwise.
//!
//! **What it teaches.** The seed's approach B, a cache: a join's "last 10 messages" come from
//! memory in well under a microsecond instead of a database round trip (`docs/BENCHMARKS.md`
//! measures the difference). The price is bounded memory per room and a cache that must never
//! show what the room has not delivered: reads are cut at the `upto` the room gives (see
//! `core::room`), and a message whose request fails further in is taken back out of the ring.
//!
//! A read is answered here when the ring has at least `limit` matching messages, or when nothing
//! older than the ring's oldest message can exist (`floor`): otherwise the store is asked, and if
//! there is no store, the ring's partial answer is the best there is. A store's answer is merged
//! with the ring's (a store written behind may lack the newest messages the ring has).
//!
//! After a restart the ring starts full: the first use of a room (`Action::OpenRoom`) brings its
//! last `capacity` messages back from the store, and `floor` records that older ones exist there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use tower::{BoxError, Layer, Service};

use super::{Inner, LayerFuture, call_inner, take};
use crate::core::{
    Action, ChatMessage, Detail, HistoryQuery, Reply, Request, Ring, RoomName, StoredRoom,
};
use crate::pipeline::config::HistoryConfig;

/// Every room's ring. Shared by all clones of the layer.
#[derive(Debug)]
pub struct HistoryCache {
    capacity: usize,
    rooms: Mutex<HashMap<RoomName, RoomRing>>,
}

#[derive(Debug)]
struct RoomRing {
    ring: Ring<Arc<ChatMessage>>,
    /// Messages with a seq at or below this may exist but are not in the ring (evicted, or from
    /// before it was filled). 0: the ring has every message the room ever had.
    floor: u64,
}

impl HistoryCache {
    /// Rings of `capacity` messages per room.
    pub fn new(capacity: usize) -> HistoryCache {
        HistoryCache {
            capacity,
            rooms: Mutex::default(),
        }
    }

    fn rooms(&self) -> MutexGuard<'_, HashMap<RoomName, RoomRing>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers `msg` in its room's ring.
    pub fn insert(&self, msg: Arc<ChatMessage>) {
        let mut rooms = self.rooms();
        let entry = rooms.entry(msg.room.clone()).or_insert_with(|| RoomRing {
            ring: Ring::new(self.capacity),
            floor: 0,
        });
        let evicted = if entry.ring.len() == entry.ring.capacity() {
            entry.ring.get(0).map(|m| m.seq)
        } else {
            None
        };
        let seq = msg.seq;
        if !entry.ring.insert_by_key(msg, |m| m.seq) {
            entry.floor = entry.floor.max(seq); // older than the whole ring: dropped
        } else if let Some(evicted) = evicted {
            entry.floor = entry.floor.max(evicted);
        }
    }

    /// Fills a ring from a store's answer to [`Action::OpenRoom`]: `stored.last` are the room's
    /// newest messages, at most `limit`. When the store gave fewer than `limit`, the ring now
    /// holds everything the room ever had; otherwise older messages stay in the store only.
    pub fn warm(&self, room: &RoomName, stored: &StoredRoom, limit: usize) {
        for msg in &stored.last {
            self.insert(msg.clone());
        }
        let floor = match stored.last.first() {
            Some(oldest) if stored.last.len() >= limit => oldest.seq.saturating_sub(1),
            _ => 0,
        };
        if let Some(entry) = self.rooms().get_mut(room) {
            entry.floor = entry.floor.max(floor);
        }
    }

    /// Forgets `msg` again (its request failed further in).
    pub fn remove(&self, msg: &ChatMessage) {
        if let Some(entry) = self.rooms().get_mut(&msg.room) {
            let mut kept = Ring::new(self.capacity);
            for m in entry.ring.iter().filter(|m| m.seq != msg.seq) {
                kept.push(m.clone());
            }
            entry.ring = kept;
        }
    }

    /// The ring's answer to `query`, and whether it is complete (nothing older could be missing).
    pub fn read(&self, query: &HistoryQuery) -> (Vec<Arc<ChatMessage>>, bool) {
        let rooms = self.rooms();
        let Some(entry) = rooms.get(&query.room) else {
            return (Vec::new(), true);
        };
        let mut newest_first: Vec<Arc<ChatMessage>> = entry
            .ring
            .iter()
            .rev()
            .filter(|m| m.seq <= query.upto && m.seq > query.after)
            .take(query.limit)
            .cloned()
            .collect();
        let complete = newest_first.len() >= query.limit || entry.floor <= query.after;
        newest_first.reverse();
        (newest_first, complete)
    }
}

/// Builds [`History`] services.
#[derive(Debug, Clone)]
pub struct HistoryLayer {
    cache: Arc<HistoryCache>,
}

impl HistoryLayer {
    /// A history layer with rings of the configured capacity.
    pub fn new(config: &HistoryConfig) -> HistoryLayer {
        HistoryLayer {
            cache: Arc::new(HistoryCache::new(config.capacity)),
        }
    }
}

impl<S> Layer<S> for HistoryLayer {
    type Service = History<S>;

    fn layer(&self, inner: S) -> History<S> {
        History {
            inner,
            cache: self.cache.clone(),
        }
    }
}

/// Keeps and serves recent history; see the module docs.
#[derive(Debug, Clone)]
pub struct History<S> {
    inner: S,
    cache: Arc<HistoryCache>,
}

impl<S: Inner> Service<Request> for History<S> {
    type Response = Reply;
    type Error = BoxError;
    type Future = LayerFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> LayerFuture {
        let mut inner = take(&mut self.inner);
        let cache = self.cache.clone();
        Box::pin(async move {
            match &req.action {
                Action::Publish(msg) => {
                    let msg = msg.clone();
                    cache.insert(msg.clone());
                    let result = call_inner(&mut inner, req).await;
                    if result.is_err() {
                        cache.remove(&msg);
                    }
                    result
                }
                Action::History(query) => {
                    let (cached, complete) = cache.read(query);
                    let room = query.room.clone();
                    let query = query.clone();
                    let mut messages = cached;
                    if !complete {
                        let reply = call_inner(&mut inner, req).await?;
                        if let Some(Detail::History {
                            messages: stored, ..
                        }) = reply.detail
                        {
                            messages = query.merge(messages, stored);
                        }
                    }
                    Ok(Reply::default().with(Detail::History { room, messages }))
                }
                Action::OpenRoom(open) => {
                    // Inside the persist layer the answer arrives during the call; outside it,
                    // it was there before. Either way it is in the request's slot afterwards.
                    let open = open.clone();
                    let reply = call_inner(&mut inner, req).await?;
                    if let Some(stored) = open.stored() {
                        cache.warm(&open.room, stored, open.limit);
                    }
                    Ok(reply)
                }
                _ => call_inner(&mut inner, req).await,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::sample;

    fn query(upto: u64, limit: usize) -> HistoryQuery {
        HistoryQuery {
            room: RoomName::parse("general").unwrap(),
            upto,
            after: 0,
            limit,
        }
    }

    fn seqs(messages: &[Arc<ChatMessage>]) -> Vec<u64> {
        messages.iter().map(|m| m.seq).collect()
    }

    #[test]
    fn reads_are_cut_at_upto_and_limit() {
        let cache = HistoryCache::new(10);
        for seq in 1..=5 {
            cache.insert(sample("general", seq, "alice", "hi"));
        }
        let (msgs, complete) = cache.read(&query(4, 10));
        assert_eq!(seqs(&msgs), vec![1, 2, 3, 4]);
        assert!(complete, "the ring has everything since seq 1");
        let (msgs, complete) = cache.read(&query(5, 2));
        assert_eq!(seqs(&msgs), vec![4, 5]);
        assert!(complete);
    }

    #[test]
    fn eviction_makes_longer_reads_incomplete() {
        let cache = HistoryCache::new(3);
        for seq in 1..=5 {
            cache.insert(sample("general", seq, "alice", "hi"));
        }
        let (msgs, complete) = cache.read(&query(5, 10));
        assert_eq!(seqs(&msgs), vec![3, 4, 5]);
        assert!(!complete, "1 and 2 were evicted: a store might have them");
        assert!(cache.read(&query(5, 3)).1);
    }

    #[test]
    fn failed_messages_are_removed() {
        let cache = HistoryCache::new(3);
        let failed = sample("general", 2, "alice", "lost");
        for msg in [
            sample("general", 1, "a", "x"),
            failed.clone(),
            sample("general", 3, "a", "y"),
        ] {
            cache.insert(msg);
        }
        cache.remove(&failed);
        assert_eq!(seqs(&cache.read(&query(3, 10)).0), vec![1, 3]);
    }

    #[test]
    fn a_warmed_ring_knows_whether_older_messages_exist() {
        let room = RoomName::parse("general").unwrap();
        let cache = HistoryCache::new(3);
        let stored = StoredRoom {
            max_seq: 9,
            last: (7..=9).map(|s| sample("general", s, "a", "x")).collect(),
        };
        cache.warm(&room, &stored, 3);
        let (msgs, complete) = cache.read(&query(9, 5));
        assert_eq!(seqs(&msgs), vec![7, 8, 9]);
        assert!(!complete, "1 to 6 are in the store only");
        let small = HistoryCache::new(3);
        let stored = StoredRoom {
            max_seq: 2,
            last: (1..=2).map(|s| sample("general", s, "a", "x")).collect(),
        };
        small.warm(&room, &stored, 3);
        assert!(small.read(&query(2, 5)).1, "the store had only these two");
    }

    #[test]
    fn unknown_rooms_are_empty_and_complete() {
        let cache = HistoryCache::new(3);
        let (msgs, complete) = cache.read(&query(0, 10));
        assert!(msgs.is_empty() && complete);
    }
}
