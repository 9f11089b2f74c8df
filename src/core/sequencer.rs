//! Who numbers a room's messages.
//!
//! Every message gets its room's next sequence number before it is stored or delivered. One
//! process can count by itself ([`LocalSequencer`]); several instances sharing a room must share
//! one counter per room (an atomic `INCR` in Valkey, or a counter row in PostgreSQL), which is why
//! the route layer asks a `Sequencer` rather than counting itself. The call is async for those
//! remote counters; the local one answers at once.

use futures_util::future::{BoxFuture, FutureExt, ready};
use tower::BoxError;

use super::room::Room;

/// Hands out a room's sequence numbers: 1, 2, 3, ... with no gaps and no repeats.
pub trait Sequencer: Send + Sync + std::fmt::Debug + 'static {
    /// The next seq for `room`.
    ///
    /// # Errors
    /// When a shared counter cannot be reached; the message is then refused.
    fn next<'a>(&'a self, room: &'a Room) -> BoxFuture<'a, Result<u64, BoxError>>;
}

/// Counts in this process's memory: right for one instance (phase 1).
#[derive(Debug, Default)]
pub struct LocalSequencer;

impl Sequencer for LocalSequencer {
    fn next<'a>(&'a self, room: &'a Room) -> BoxFuture<'a, Result<u64, BoxError>> {
        ready(Ok(room.next_local_seq())).boxed()
    }
}
