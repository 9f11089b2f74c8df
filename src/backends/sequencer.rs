//! Numbering in this process's memory (one instance, phase 1), with its seqs reserved in the
//! store before they are handed out.
//!
//! **Why reserve.** Counting in memory is the fastest sequencer there is, but memory forgets. The
//! obvious restart rule, "continue after the highest stored seq", is wrong with write-behind: the
//! last messages numbered before a crash were delivered (browsers saw them, with their seqs) but
//! were still in the write queue, so their seqs would be handed out again to new messages, and a
//! browser resuming after one of them would skip the new one in silence. So before handing out a
//! seq above what it has reserved, the sequencer reserves the next [`BLOCK`] seqs of the room in
//! the store's `room_seq` table (one small durable write per block), and after a restart numbering
//! continues above the last reservation. The first block is reserved when the room is opened, and
//! the next one in the background once half of the current one is used, so a message waits for
//! the store only when it has been down for half a block of a room's messages (write-behind
//! promises that chat goes on while the store is down: it does, for that long). A crash then leaves a jump in the numbering (the unused
//! rest of the block, and the lost messages), never a seq used twice; a reader resuming across it
//! is told that messages may be missing there (the seqs are unknown to the store). At a clean stop
//! the unused rest is given back ([`Sequencer::release`]), so no jump is left.
//!
//! With `store = "none"` there is nothing to reserve in, and nothing survives a restart anyway:
//! numbering starts again at 1, and a browser resuming with a seq the room never reached is told
//! to start afresh (the SSE `reset` event).

use std::sync::Arc;

use futures_util::future::{BoxFuture, FutureExt, ready};
use tower::BoxError;

use super::Store;
use crate::core::{ChatError, Room, Sequencer};

/// How many seqs one reservation covers: one store write per this many messages of a room, and
/// at most this many seqs left unused by a crash.
pub const BLOCK: u64 = 1000;

/// Counts in memory, reserving blocks in `store` (if any); see the module docs.
#[derive(Debug, Default)]
pub struct LocalSequencer {
    store: Option<Arc<dyn Store>>,
    /// This instance's name, recorded with each reservation: after a crash, the jump in the
    /// numbering is this instance's own only if it made the last reservation.
    instance: Arc<str>,
}

impl LocalSequencer {
    /// A sequencer reserving its seqs in `store` (`None`: counting only, nothing to reserve in)
    /// under the name `instance`.
    pub fn new(store: Option<Arc<dyn Store>>, instance: Arc<str>) -> LocalSequencer {
        LocalSequencer { store, instance }
    }

    /// Reserves the block after the current one in the background, once per block.
    fn reserve_ahead(&self, room: &Arc<Room>) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let (room, instance) = (room.clone(), self.instance.clone());
        tokio::spawn(async move {
            let Ok(_reserving) = room.reserving.try_lock() else {
                return; // a reservation is under way
            };
            let ceiling = room.local_ceiling();
            match store.reserve(&room.name, ceiling, BLOCK, &instance).await {
                Ok(next) => room.reserve_up_to(next.max(room.local_ceiling())),
                Err(err) => {
                    tracing::warn!(room = %room.name, "cannot reserve the next seqs ahead (the next message will try again): {err}")
                }
            }
        });
    }

    async fn numbered(&self, room: &Room) -> Result<u64, BoxError> {
        loop {
            if let Some(seq) = room.next_local_seq() {
                return Ok(seq);
            }
            let Some(store) = &self.store else {
                return Err("this room's numbering has no reservation to continue in".into());
            };
            // One reservation at a time per room; whoever waited finds the new block in place.
            let _reserving = room.reserving.lock().await;
            let last = room.last_local_seq();
            if last < room.local_ceiling() {
                continue;
            }
            let reserved = store.reserve(&room.name, last, BLOCK, &self.instance);
            let ceiling = reserved.await.map_err(|err| {
                ChatError::unavailable(format!(
                    "message not sent: cannot reserve numbers for {} in the store ({err}); \
                     try again",
                    room.name
                ))
            })?;
            room.reserve_up_to(ceiling);
        }
    }
}

impl Sequencer for LocalSequencer {
    fn next<'a>(&'a self, room: &'a Arc<Room>) -> BoxFuture<'a, Result<u64, BoxError>> {
        match room.next_local_seq() {
            Some(seq) => {
                if room.local_ceiling().checked_sub(seq) == Some(BLOCK / 2) {
                    self.reserve_ahead(room);
                }
                ready(Ok(seq)).boxed()
            }
            None => Box::pin(self.numbered(room)),
        }
    }

    fn prepare<'a>(&'a self, room: &'a Room, at: u64) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let Some(store) = &self.store else {
                return Ok(());
            };
            room.reserve_up_to(at); // nothing may be handed out before the reservation
            let reserved = store.reserve(&room.name, at, BLOCK, &self.instance);
            let ceiling = reserved.await.map_err(|err| {
                ChatError::unavailable(format!(
                    "cannot open {}: cannot reserve its numbers in the store ({err}); try again",
                    room.name
                ))
            })?;
            room.reserve_up_to(ceiling);
            Ok(())
        })
    }

    fn shared(&self) -> bool {
        false
    }

    fn reserves_as(&self) -> Option<&str> {
        self.store.as_ref().map(|_| &*self.instance)
    }

    fn high_water<'a>(&'a self, room: &'a Room) -> BoxFuture<'a, Result<u64, BoxError>> {
        ready(Ok(room.last_local_seq())).boxed()
    }

    fn give_back<'a>(&'a self, room: &'a Room) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let Some(store) = &self.store else {
                return Ok(());
            };
            let (last, ceiling) = (room.last_local_seq(), room.local_ceiling());
            if last >= ceiling || ceiling == u64::MAX {
                return Ok(());
            }
            store.release(&room.name, ceiling, last).await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::mock::Mock;
    use crate::core::{RoomName, Start};

    fn room() -> Arc<Room> {
        Arc::new(Room::new(
            RoomName::parse("general").unwrap(),
            Arc::default(),
            0,
        ))
    }

    #[tokio::test]
    async fn seqs_are_reserved_in_blocks_before_they_are_handed_out() {
        let store = Arc::new(Mock::default());
        let sequencer = LocalSequencer::new(Some(store.clone()), Arc::from("a"));
        let room = room();
        room.start(Start::default());
        room.reserve_up_to(0); // opened with a store: nothing reserved yet
        assert_eq!(sequencer.next(&room).await.unwrap(), 1);
        let reserved = |store: &Mock| store.reserved.lock().unwrap()[&room.name];
        assert_eq!(reserved(&store), BLOCK);
        for expected in 2..=BLOCK + 1 {
            assert_eq!(sequencer.next(&room).await.unwrap(), expected);
        }
        assert_eq!(
            reserved(&store),
            2 * BLOCK,
            "a second block once the first ran out"
        );
    }

    #[tokio::test]
    async fn after_a_crash_numbering_continues_above_the_reservation() {
        let store = Arc::new(Mock::default());
        let first = room();
        first.start(Start::default());
        first.reserve_up_to(0);
        let sequencer = LocalSequencer::new(Some(store.clone()), Arc::from("a"));
        for _ in 0..5 {
            sequencer.next(&first).await.unwrap();
        }
        // The process dies: nothing is given back. The next one starts above the reservation.
        let stored = store.open_room(&first.name, 10).await.unwrap();
        let again = room();
        again.start(Start {
            at: stored.numbered,
            ..Start::default()
        });
        again.reserve_up_to(stored.numbered);
        assert_eq!(sequencer.next(&again).await.unwrap(), BLOCK + 1);
    }

    #[tokio::test]
    async fn a_clean_stop_gives_the_unused_seqs_back() {
        let store = Arc::new(Mock::default());
        let sequencer = LocalSequencer::new(Some(store.clone()), Arc::from("a"));
        let room = room();
        room.start(Start::default());
        room.reserve_up_to(0);
        for _ in 0..5 {
            sequencer.next(&room).await.unwrap();
        }
        sequencer.release(vec![room.clone()]).await;
        assert_eq!(store.reserved.lock().unwrap()[&room.name], 5);
    }

    #[tokio::test]
    async fn a_room_opens_with_a_block_in_hand_and_reserves_the_next_ahead() {
        let store = Arc::new(Mock::default());
        let sequencer = LocalSequencer::new(Some(store.clone()), Arc::from("a"));
        let room = room();
        sequencer.prepare(&room, 40).await.unwrap();
        room.start(Start {
            at: 40,
            ..Start::default()
        });
        store.set_down(true); // chat goes on with the block reserved at open
        for expected in 41..=40 + BLOCK / 2 - 1 {
            assert_eq!(sequencer.next(&room).await.unwrap(), expected);
        }
        store.set_down(false);
        assert_eq!(sequencer.next(&room).await.unwrap(), 40 + BLOCK / 2);
        // Half the block is used: the next one is reserved in the background.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while room.local_ceiling() != 40 + 2 * BLOCK {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no reservation ahead"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn a_store_that_is_down_refuses_the_message_plainly() {
        let store = Arc::new(Mock::default());
        store.set_down(true);
        let sequencer = LocalSequencer::new(Some(store), Arc::from("a"));
        let room = room();
        room.start(Start::default());
        room.reserve_up_to(0);
        let err = sequencer.next(&room).await.unwrap_err().to_string();
        assert!(err.contains("cannot reserve numbers for general"), "{err}");
        assert!(err.ends_with("try again"), "{err}");
    }

    #[tokio::test]
    async fn without_a_store_it_just_counts() {
        let sequencer = LocalSequencer::new(None, Arc::from("a"));
        let room = room();
        assert_eq!(sequencer.next(&room).await.unwrap(), 1);
        assert_eq!(sequencer.next(&room).await.unwrap(), 2);
        assert_eq!(sequencer.high_water(&room).await.unwrap(), 2);
    }
}
