//! The hub: the state every layer shares (sessions, rooms, counters, this instance's name).
//!
//! Like mini-redis's `Db`, it is a cheap handle (`Clone` is an `Arc` bump) to state behind short
//! mutexes. Layers keep their own state where it is theirs alone (the history layer's rings, the
//! persist layer's queue); what several layers must agree on lives here.

use std::sync::Arc;

use super::channels::Channels;
use super::rooms::Rooms;
use super::session::Sessions;
use super::stats::Stats;
use super::users::Users;
use super::watch::Watches;

/// Shared chat state of one process.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

#[derive(Debug)]
struct HubInner {
    instance: Arc<str>,
    sessions: Sessions,
    rooms: Rooms,
    stats: Arc<Stats>,
    users: Users,
    channels: Channels,
    watches: Watches,
}

impl Hub {
    /// Empty state for the instance called `instance`.
    pub fn new(instance: impl Into<Arc<str>>) -> Hub {
        let stats = Arc::new(Stats::default());
        Hub {
            inner: Arc::new(HubInner {
                instance: instance.into(),
                sessions: Sessions::default(),
                rooms: Rooms::new(stats.clone()),
                stats,
                users: Users::default(),
                channels: Channels::default(),
                watches: Watches::default(),
            }),
        }
    }

    /// This instance's name.
    pub fn instance(&self) -> &Arc<str> {
        &self.inner.instance
    }

    /// The open sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    /// The rooms.
    pub fn rooms(&self) -> &Rooms {
        &self.inner.rooms
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// The users' profiles and recent departures.
    pub fn users(&self) -> &Users {
        &self.inner.users
    }

    /// Who watches for whom (`MONITOR`).
    pub fn watches(&self) -> &Watches {
        &self.inner.watches
    }

    /// The rooms' topics, modes and ranks.
    pub fn channels(&self) -> &Channels {
        &self.inner.channels
    }

    /// The counters, as a handle a background task can keep.
    pub fn stats_handle(&self) -> Arc<Stats> {
        self.inner.stats.clone()
    }
}
