//! Holes in a room's sequence on one instance, and how they are settled with the others.
//!
//! With several instances a room's seqs come from a shared counter, so an instance can see 8
//! before 7: 7 was numbered elsewhere and is still on its way (being stored, or published), or it
//! never will arrive (its sender's instance crashed after numbering it, or its publish was lost).
//! The room's ordered gate holds 8 and waits. The bus reads the store every poll for what arrived
//! there; if 7 is still missing after `gap_wait`, waiting longer cannot be the answer, but
//! *skipping* 7 is only safe if 7 can never appear later: its sender may be alive and about to be
//! told "202, stored" (a message everybody else would then have skipped in silence).
//!
//! **Consensus by unique index.** With write-ahead (`durability = "sync"`) a message counts only
//! once it is stored, so the store can referee: the instance giving up inserts a *tombstone* in
//! 7's slot, `ON CONFLICT DO NOTHING` ([`Store::settle`]), and reads the slot back. Exactly one of
//! the two writes wins the (room, seq) slot: if the message was there first, it is delivered after
//! all; if the tombstone was, the message's own write later finds its slot taken and its sender is
//! refused (`StoreError::Conflict`), so nobody anywhere ever sees it. Either way every instance
//! ends up agreeing on what 7 is, and no reader is left with an unexplained hole.
//!
//! **Write-behind** (`"async"`) cannot do that: a message is delivered, and its sender answered,
//! before it is stored, so the store cannot veto it. There the instance gives up on its own after
//! `gap_wait` and tells its readers which seqs they will not get ([`Room::give_up_until`]): a
//! hole, but never a silent one.

use std::sync::Arc;
use std::time::Duration;

use super::Store;
use crate::backends::Durability;
use crate::core::{ChatMessage, Gap, Room};

/// How an instance settles a hole that lasted (see the module docs).
#[derive(Debug, Clone)]
pub struct Settler {
    /// The shared store.
    pub store: Arc<dyn Store>,
    /// Whether messages are stored before they are delivered.
    pub durability: Durability,
    /// How long a hole may last before it is settled.
    pub wait: Duration,
}

impl Settler {
    /// Settles `gap` of `room` if it has lasted long enough. Messages found in the store are
    /// returned, to be fed through the stack like any other remote message; seqs found to carry
    /// nothing are skipped in the room at once.
    pub async fn settle(&self, room: &Room, gap: &Gap) -> Vec<Arc<ChatMessage>> {
        if gap.since.elapsed() < self.wait {
            return Vec::new();
        }
        match self.durability {
            Durability::Async => {
                room.give_up_until(gap.to);
                Vec::new()
            }
            Durability::Sync => match self.store.settle(&room.name, gap.from, gap.to).await {
                Ok(page) => {
                    for seq in page.skipped {
                        room.skip(seq);
                    }
                    page.messages
                }
                Err(err) => {
                    // The store is the only referee: without it, wait (nothing can be numbered
                    // while it is down either, so nothing piles up behind the hole for long).
                    tracing::warn!(room = %room.name, from = gap.from, to = gap.to,
                        "cannot settle a hole in the sequence yet: {err}");
                    Vec::new()
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::Row;
    use crate::backends::mock::Mock;
    use crate::core::message::sample;
    use crate::core::{Hub, RoomName, Start};

    fn general() -> RoomName {
        RoomName::parse("general").unwrap()
    }

    fn settler(store: Arc<Mock>, durability: Durability) -> Settler {
        Settler {
            store,
            durability,
            wait: Duration::ZERO,
        }
    }

    #[tokio::test]
    async fn with_write_ahead_the_store_decides_what_a_hole_is() {
        let store = Arc::new(Mock::default());
        store
            .append(&[Row::Message(sample("general", 2, "x", "stored late"))])
            .await
            .unwrap();
        let hub = Hub::new("test");
        let room = hub.rooms().get_or_create(&general());
        room.start(Start::default());
        room.commit(sample("general", 1, "x", "one"));
        room.commit(sample("general", 4, "x", "four")); // 2 is in the store, 3 nowhere
        let gap = room.gap().unwrap();
        let found = settler(store.clone(), Durability::Sync)
            .settle(&room, &gap)
            .await;
        assert_eq!(found.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![2]);
        assert_eq!(*store.skipped.lock().unwrap(), vec![(general(), 3)]);
        // The late write of 3 now finds its slot taken.
        let late = store
            .append(&[Row::Message(sample("general", 3, "x", "too late"))])
            .await;
        assert_eq!(late.unwrap().conflicts, vec![0]);
        room.commit(found[0].clone());
        assert_eq!(room.delivered(), 4);
        assert_eq!(hub.stats().gaps_skipped.get(), 0, "nothing was lost");
    }

    #[tokio::test]
    async fn with_write_behind_the_hole_is_given_up_and_told() {
        let store = Arc::new(Mock::default());
        let hub = Hub::new("test");
        let room = hub.rooms().get_or_create(&general());
        room.start(Start::default());
        room.commit(sample("general", 2, "x", "two"));
        let gap = room.gap().unwrap();
        assert!(
            settler(store.clone(), Durability::Async)
                .settle(&room, &gap)
                .await
                .is_empty()
        );
        assert_eq!(room.delivered(), 2);
        assert_eq!(room.lost_within(1, 2), vec![(1, 1)]);
        assert!(
            store.skipped.lock().unwrap().is_empty(),
            "no tombstone: the store cannot veto"
        );
    }

    #[tokio::test]
    async fn a_young_hole_is_left_alone() {
        let store = Arc::new(Mock::default());
        let hub = Hub::new("test");
        let room = hub.rooms().get_or_create(&general());
        room.start(Start::default());
        room.commit(sample("general", 2, "x", "two"));
        let gap = room.gap().unwrap();
        let patient = Settler {
            wait: Duration::from_secs(3600),
            ..settler(store, Durability::Sync)
        };
        assert!(patient.settle(&room, &gap).await.is_empty());
        assert_eq!(room.delivered(), 0);
    }
}
