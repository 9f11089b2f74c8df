//! The sweep that evicts idle rooms from memory (`core::rooms` says which, and why it is safe).
//!
//! An `Action::EvictIdleRooms` arrives every fraction of `route.room_idle_secs` (from a task of
//! `pipeline::build`). The rooms that have been quiet long enough are taken out of the table;
//! each one that was opened then gives back what it holds, in the order a clean shutdown does:
//! first the seqs it reserved and did not use (`Sequencer::give_back`), then, through the stack
//! (`Action::CloseRoom`), the bus's subscription or watch. Only then may its name be opened
//! again, by the full open path, which subscribes first and reads the store after: a message
//! published meanwhile is in the store, one published later arrives live.
//!
//! If the seqs cannot be given back (the store is down), the room goes back into memory as it
//! was and a later sweep tries again; evicting it anyway would leave the rest of its block as a
//! jump in the numbering.

use tower::BoxError;

use super::Ctx;
use crate::core::rooms::Evicted;
use crate::core::{Action, Reply, Request};
use crate::layers::{Inner, call_inner};

impl<S: Inner> Ctx<'_, S> {
    /// Evicts the rooms that have been idle for `room_idle_secs` (see the module docs).
    pub(super) async fn evict_idle_rooms(&mut self) -> Result<Reply, BoxError> {
        let evicted = self.hub().rooms().take_idle(self.shared.room_idle);
        for room in evicted {
            self.evict(room).await;
        }
        Ok(Reply::default())
    }

    async fn evict(&mut self, evicted: Evicted) {
        let name = evicted.room.name.clone();
        if !evicted.room.is_open() {
            // Never opened: it reserved nothing and no bus listens to it.
            self.hub().rooms().closed(evicted);
            return;
        }
        let evicted = match self.shared.sequencer.give_back(&evicted.room).await {
            Ok(()) => evicted,
            Err(err) => match self.hub().rooms().restore(evicted) {
                Ok(()) => {
                    tracing::warn!(room = %name, "idle room kept in memory: cannot give back its unused seqs ({err})");
                    return;
                }
                Err(evicted) => {
                    tracing::warn!(room = %name, "idle room evicted without giving back its unused seqs ({err}): its numbering will jump");
                    evicted
                }
            },
        };
        let close = Request::anonymous(Action::CloseRoom(name.clone()));
        if let Err(err) = call_inner(&mut self.inner, close).await {
            tracing::warn!(room = %name, "closing an evicted room failed: {err}");
        }
        tracing::debug!(room = %name, "idle room evicted from memory");
        self.hub().rooms().closed(evicted);
    }
}
