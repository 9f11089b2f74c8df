//! Who numbers a room's messages.
//!
//! Every message gets its room's next sequence number before it is stored or delivered. One
//! process can count by itself; several instances sharing a room must share one counter per room,
//! which is why the route layer asks a `Sequencer` rather than counting itself. The two kinds live
//! in `backends::sequencer`.
//!
//! **The promise: a seq is handed out once, ever.** Not once per process run: a browser that
//! stayed open across a crash resumes with the last seq it saw, and a seq handed out again would
//! be a message it silently skips. So numbering that lives in memory reserves its seqs in the
//! store, in blocks, before handing them out; a shared counter is durable in itself.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tower::BoxError;

use super::room::Room;

/// Hands out a room's sequence numbers: increasing, never twice; see the module docs.
pub trait Sequencer: Send + Sync + std::fmt::Debug + 'static {
    /// The next seq for `room`.
    ///
    /// # Errors
    /// When the counter (or the store holding its reservation) cannot be reached; the message is
    /// then refused.
    fn next<'a>(&'a self, room: &'a Arc<Room>) -> BoxFuture<'a, Result<u64, BoxError>>;

    /// The name this sequencer records with its reservations (see `backends::sequencer`), if it
    /// makes any.
    fn reserves_as(&self) -> Option<&str> {
        None
    }

    /// Whether other processes number this room's messages too. Then a room opened here may have
    /// seqs in flight that it must wait for (see the route layer's `open`); alone, this process
    /// knows everything up to the last seq it reserved is settled.
    fn shared(&self) -> bool;

    /// Gets `room` ready to number after `at`, where it was just opened: a sequencer counting in
    /// memory reserves its first block of seqs there, so that the room can go on chatting for a
    /// while even if the store goes down right after.
    ///
    /// # Errors
    /// When the reservation cannot be made; the room is then not opened (the user tries again).
    fn prepare<'a>(&'a self, _room: &'a Room, _at: u64) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async { Ok(()) })
    }

    /// The highest seq handed out for `room` so far, anywhere: a client claiming to have seen
    /// more holds a numbering the server lost.
    ///
    /// # Errors
    /// When the counter cannot be read.
    fn high_water<'a>(&'a self, room: &'a Room) -> BoxFuture<'a, Result<u64, BoxError>>;

    /// Gives back what this process reserved but did not use, at a clean stop, so that the
    /// numbering continues without a jump after the restart. Failures are logged.
    fn release<'a>(&'a self, rooms: Vec<Arc<Room>>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            for room in rooms {
                if let Err(err) = self.give_back(&room).await {
                    tracing::warn!(room = %room.name, "could not give back unused seqs: {err}");
                }
            }
        })
    }

    /// Gives back what this process reserved for `room` and did not use: at a clean stop
    /// ([`Sequencer::release`]), and when an idle room is evicted from memory (it is then
    /// opened again from the store, and numbers on without a jump).
    ///
    /// # Errors
    /// When the store holding the reservation cannot be written; the reservation stands.
    fn give_back<'a>(&'a self, _room: &'a Room) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async { Ok(()) })
    }
}
