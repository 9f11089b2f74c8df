//! The presence directory: who holds which nick and who is in which room, across instances.
//!
//! **The seam.** The route layer keeps its local registry (the `Hub`'s sessions and rooms): that
//! is the delivery path, and it only knows this process's members. The [`Directory`] answers the
//! two questions that need every instance: "is this nick free anywhere?" and "who is in this
//! room, anywhere?" (`/users`, `/rooms`). Two implementations:
//!
//! * [`LocalDirectory`]: one instance. It reads the `Hub` and guards nothing itself (the local
//!   `Sessions` registry already keeps nicks unique), so phase 1 behaves exactly as before.
//! * [`PostgresDirectory`](super::postgres_directory::PostgresDirectory): every instance writes
//!   its nicks and memberships to two tables (`migrations/postgres/0003_presence.sql`) and reads
//!   everybody's from there. A nick is claimed with an `INSERT ... ON CONFLICT`, so two instances
//!   racing for one nick cannot both win.
//!
//! **Heartbeat and TTL: how a dead instance's members disappear.** An instance that stops
//! cleanly deletes its rows. One killed with SIGKILL (or cut off from the database) cannot, so
//! every row carries `seen_at`, the database clock's time of its owner's last heartbeat:
//!
//! * each instance refreshes `seen_at` of its own rows every `ttl / 3` (the `Background` task,
//!   which stops with the backends);
//! * readers (`/users`, `/rooms`, a nick claim) ignore rows older than the TTL, so a dead
//!   instance's members stop being listed, and its nicks become free, **at most one TTL after
//!   its last heartbeat**, hence at most one TTL after it died;
//! * every heartbeat also deletes the expired rows of any instance, so the rows themselves are
//!   gone at most **TTL + one heartbeat period** (`ttl / 3`) after the death, as long as one
//!   instance is alive.
//!
//! An instance that was only cut off (the database unreachable for longer than the TTL) finds
//! its rows gone when it reconnects, and its heartbeat writes them again from its sessions; a
//! nick that somebody else claimed meanwhile stays theirs, and the session here that held it is
//! disconnected with the reason, as IRC servers kill on a nick collision (see
//! `postgres_directory/heartbeat.rs`).
//! One cut off for less than the TTL keeps its rows, but a join or a leave it could not write
//! meanwhile is missing from them: the write's failure marks its memberships for repair, and its
//! next heartbeat that reaches the database rewrites them from its sessions.
//!
//! The TTL is `presence_ttl_secs` on the `route` layer (default 15 s). Refreshing three times
//! per TTL leaves a live instance two missed heartbeats (a slow database, a long pause) before
//! its members would wrongly look gone. Times come from the database's clock only, so instances
//! whose clocks disagree still agree on what expired.

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::StoreError;
use crate::core::{Hub, Nick, RoomName, SessionId};

/// The TTL of presence rows when the pipeline does not set `presence_ttl_secs`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);

/// How often an instance refreshes its rows: three times per TTL (see the module docs).
pub fn heartbeat_period(ttl: Duration) -> Duration {
    ttl / 3
}

/// Who is where across instances; see the module docs.
pub trait Directory: Send + Sync + fmt::Debug + 'static {
    /// Claims `nick` for `session` of this instance. `Ok(false)` when another session (here or
    /// on another instance) holds it; claiming a nick one already holds succeeds.
    ///
    /// # Errors
    /// When the directory cannot be reached.
    fn claim<'a>(
        &'a self,
        session: SessionId,
        nick: &'a Nick,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Moves `session` from nick `old` to `new`, keeping its rooms. `Ok(false)` when `new` is
    /// held by somebody else (nothing changes then).
    ///
    /// # Errors
    /// When the directory cannot be reached.
    fn rename<'a>(
        &'a self,
        session: SessionId,
        old: &'a Nick,
        new: &'a Nick,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Frees `session`'s nick and takes it out of every room (it quit).
    ///
    /// # Errors
    /// When the directory cannot be reached.
    fn release(&self, session: SessionId) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Records that `nick` joined `room`.
    ///
    /// # Errors
    /// When the directory cannot be reached.
    fn joined<'a>(
        &'a self,
        room: &'a RoomName,
        nick: &'a Nick,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Records that `nick` left `room`.
    ///
    /// # Errors
    /// When the directory cannot be reached.
    fn left<'a>(
        &'a self,
        room: &'a RoomName,
        nick: &'a Nick,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The members of `room` on every instance, sorted case-insensitively; `None` when no
    /// instance knows the room.
    ///
    /// # Errors
    /// When the directory cannot be reached.
    fn members<'a>(
        &'a self,
        room: &'a RoomName,
    ) -> BoxFuture<'a, Result<Option<Vec<Nick>>, StoreError>>;

    /// Every room with its member count on all instances, sorted by name.
    ///
    /// # Errors
    /// When the directory cannot be reached.
    fn rooms(&self) -> BoxFuture<'_, Result<Vec<(RoomName, usize)>, StoreError>>;

    /// The instance that holds `nick` (as written there), for a directory shared by several;
    /// `None` when no instance does, or when this directory knows only this instance (whose
    /// sessions the caller asks first).
    ///
    /// # Errors
    /// When the directory cannot be reached.
    fn locate<'a>(
        &'a self,
        _nick: &'a Nick,
    ) -> BoxFuture<'a, Result<Option<(Nick, String)>, StoreError>> {
        now(None)
    }

    /// How many nicks are held on all instances; `None` for a directory of this instance alone.
    ///
    /// # Errors
    /// When the directory cannot be reached.
    fn users(&self) -> BoxFuture<'_, Result<Option<usize>, StoreError>> {
        now(None)
    }
}

/// The directory of one instance alone: the `Hub` already knows everything.
#[derive(Debug, Clone)]
pub struct LocalDirectory {
    hub: Hub,
}

impl LocalDirectory {
    /// The directory that reads `hub`.
    pub fn new(hub: Hub) -> LocalDirectory {
        LocalDirectory { hub }
    }
}

/// An answer that needs no waiting.
fn now<'a, T: Send + 'a>(value: T) -> BoxFuture<'a, Result<T, StoreError>> {
    Box::pin(std::future::ready(Ok(value)))
}

impl Directory for LocalDirectory {
    // Nick uniqueness is the local `Sessions` registry's job; there is nobody else to ask.
    fn claim<'a>(&'a self, _: SessionId, _: &'a Nick) -> BoxFuture<'a, Result<bool, StoreError>> {
        now(true)
    }

    fn rename<'a>(
        &'a self,
        _: SessionId,
        _: &'a Nick,
        _: &'a Nick,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        now(true)
    }

    fn release(&self, _: SessionId) -> BoxFuture<'_, Result<(), StoreError>> {
        now(())
    }

    fn joined<'a>(&'a self, _: &'a RoomName, _: &'a Nick) -> BoxFuture<'a, Result<(), StoreError>> {
        now(())
    }

    fn left<'a>(&'a self, _: &'a RoomName, _: &'a Nick) -> BoxFuture<'a, Result<(), StoreError>> {
        now(())
    }

    fn members<'a>(
        &'a self,
        room: &'a RoomName,
    ) -> BoxFuture<'a, Result<Option<Vec<Nick>>, StoreError>> {
        now(self.hub.rooms().members(room))
    }

    fn rooms(&self) -> BoxFuture<'_, Result<Vec<(RoomName, usize)>, StoreError>> {
        now(self.hub.rooms().list())
    }
}

/// `shared` (the directory's rooms and counts) completed with this instance's rooms that have no
/// member anywhere, so that `/rooms` lists the same rooms as with one instance.
pub fn with_local_rooms(
    mut shared: Vec<(RoomName, usize)>,
    local: Vec<(RoomName, usize)>,
) -> Vec<(RoomName, usize)> {
    for (name, count) in local {
        if !shared.iter().any(|(n, _)| *n == name) {
            shared.push((name, count));
        }
    }
    shared.sort();
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    #[test]
    fn the_heartbeat_runs_three_times_per_ttl() {
        assert_eq!(heartbeat_period(DEFAULT_TTL), Duration::from_secs(5));
        assert_eq!(
            heartbeat_period(Duration::from_secs(2)),
            Duration::from_nanos(666_666_666)
        );
    }

    #[test]
    fn local_rooms_without_members_elsewhere_are_listed_too() {
        let shared = vec![(room("rust"), 3)];
        let local = vec![(room("empty"), 0), (room("rust"), 1)];
        assert_eq!(
            with_local_rooms(shared, local),
            vec![(room("empty"), 0), (room("rust"), 3)]
        );
    }
}
