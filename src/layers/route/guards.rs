//! The route layer's drop guards: what to undo when a request fails or is dropped half-way.

use std::sync::Arc;

use crate::backends::Writer;
use crate::core::{ChatMessage, Hub, Room, RoomName, SessionId, Sessions};

/// Abandons a numbered message's seq if the request carrying it fails or is dropped before the
/// fan-out committed it: the room stops waiting for it (`Room::abandon`), and the store gets a
/// tombstone for it, so that every instance and every later reader knows the hole is settled
/// rather than lost. A message the fan-out committed stands (the room refuses to abandon it), and
/// so does one the persist layer has claimed (its write under way decides: see
/// `layers::persist`).
pub(super) struct AbandonOnDrop {
    pub(super) room: Arc<Room>,
    pub(super) msg: Arc<ChatMessage>,
    /// Where tombstones are written (the persist layer's writer), if there is a store.
    pub(super) tombstones: Option<Writer>,
    pub(super) armed: bool,
}

impl AbandonOnDrop {
    pub(super) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        if self.armed && !self.msg.is_claimed() {
            crate::layers::abandon(&self.room, self.msg.seq, self.tombstones.as_ref());
        }
    }
}

/// Closes a session that was opened but not (yet) accepted by the directory, unless disarmed.
pub(super) struct CloseOnDrop<'a> {
    pub(super) sessions: &'a Sessions,
    pub(super) id: SessionId,
    pub(super) armed: bool,
}

impl CloseOnDrop<'_> {
    pub(super) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.sessions.close(self.id);
        }
    }
}

/// Frees room `name` when dropped, if nothing would be lost (`Rooms::release_if_unused`): a join
/// that fails or is dropped half-way must not leave behind a room it created, or clients could
/// fill `route.max_rooms` by joining and giving up. Declare it before the `Arc<Room>` it covers,
/// so that the room is dropped first.
pub(super) struct ReleaseIfUnused {
    pub(super) hub: Hub,
    pub(super) name: RoomName,
}

impl Drop for ReleaseIfUnused {
    fn drop(&mut self) {
        self.hub.rooms().release_if_unused(&self.name);
    }
}
