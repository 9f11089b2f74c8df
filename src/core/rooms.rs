//! Every room of this process: created on first use, bounded by `route.max_rooms`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::names::RoomName;
use super::room::Room;
use super::stats::Stats;

/// The instance keeps as many rooms as `route.max_rooms` allows and `name` is not one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyRooms {
    /// The limit.
    pub max: usize,
}

/// Every room of this process.
#[derive(Debug, Default)]
pub struct Rooms {
    map: Mutex<HashMap<RoomName, Arc<Room>>>,
    stats: Arc<Stats>,
    /// How many delivered messages each room keeps in memory (the history layer's capacity).
    recent: AtomicUsize,
    /// Set when a cross-instance bus keeps per-room state (a Valkey subscription, a poll watch)
    /// for every room opened here: such rooms are never freed (see [`Rooms::release_if_unused`]).
    keep_opened: AtomicBool,
    /// Rooms the store holds messages of, read once at start ([`Rooms::remember_stored`]): listed
    /// by `/rooms` with no members until they are used, without costing a `Room` each.
    stored: Mutex<Vec<RoomName>>,
}

impl Rooms {
    /// An empty registry whose rooms count into `stats` and keep no messages in memory until
    /// [`Rooms::keep_recent`] says how many.
    pub fn new(stats: Arc<Stats>) -> Rooms {
        Rooms {
            stats,
            ..Rooms::default()
        }
    }

    /// Remembers the names of rooms with stored history, so that [`Rooms::list`] (and `/rooms`)
    /// shows them after a restart, with 0 members, before anybody joins them.
    pub fn remember_stored(&self, names: Vec<RoomName>) {
        *self.stored.lock().unwrap_or_else(|p| p.into_inner()) = names;
    }

    /// Rooms created from now on keep their `capacity` newest delivered messages in memory: the
    /// history layer's ring (`pipeline::build` sets it from the layer's `capacity`).
    pub fn keep_recent(&self, capacity: usize) {
        self.recent.store(capacity, Ordering::Relaxed);
    }

    /// From now on, a room that was opened (`Room::open_once`) is never freed: the pipeline's
    /// bus holds state for it that freeing the room would leak (`pipeline::build` calls this when
    /// the fan-out crosses instances). `route.max_rooms` then bounds the rooms and that state.
    pub fn keep_opened_rooms(&self) {
        self.keep_opened.store(true, Ordering::Relaxed);
    }

    fn map(&self) -> MutexGuard<'_, HashMap<RoomName, Arc<Room>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn create(&self, name: &RoomName) -> Arc<Room> {
        Arc::new(Room::new(
            name.clone(),
            self.stats.clone(),
            self.recent.load(Ordering::Relaxed),
        ))
    }

    /// The room called `name`, created on first use.
    pub fn get_or_create(&self, name: &RoomName) -> Arc<Room> {
        let mut map = self.map();
        if let Some(room) = map.get(name) {
            return room.clone();
        }
        let room = self.create(name);
        map.insert(name.clone(), room.clone());
        room
    }

    /// The room called `name`, created on first use unless there are `max` rooms already.
    ///
    /// # Errors
    /// [`TooManyRooms`] when `name` does not exist and `max` rooms do.
    pub fn get_or_create_within(
        &self,
        name: &RoomName,
        max: usize,
    ) -> Result<Arc<Room>, TooManyRooms> {
        let mut map = self.map();
        if let Some(room) = map.get(name) {
            return Ok(room.clone());
        }
        if map.len() >= max {
            return Err(TooManyRooms { max });
        }
        let room = self.create(name);
        map.insert(name.clone(), room.clone());
        Ok(room)
    }

    /// Forgets room `name` if nothing would be lost: it has no members, never had a message
    /// (so there is no numbering to continue and no history to keep), and nobody else holds it at
    /// this moment (a join in progress does). Returns whether it was freed.
    ///
    /// This is what keeps `/join x1`, `/leave`, `/join x2`, ... from filling the registry: a
    /// room that only ever had visitors costs nothing once they are gone. A room that carried
    /// messages stays until restart, counted against `route.max_rooms`: freeing it would
    /// restart its numbering under the feet of event streams resuming with `Last-Event-ID`, and
    /// would need the fan-out backends' per-room state dropped in step. For the same reason,
    /// with a cross-instance bus ([`Rooms::keep_opened_rooms`]) a room that was opened stays too.
    pub fn release_if_unused(&self, name: &RoomName) -> bool {
        let keep_opened = self.keep_opened.load(Ordering::Relaxed);
        let mut map = self.map();
        let unused = map.get(name).is_some_and(|room| {
            // The map's own reference is the only one: nobody is between a lookup and a join.
            Arc::strong_count(room) == 1
                && room.is_unused()
                && !(keep_opened && room.opened.initialized())
        });
        if unused {
            map.remove(name);
        }
        unused
    }

    /// How many rooms exist.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether there are no rooms.
    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    /// The room called `name`, if it exists.
    pub fn get(&self, name: &RoomName) -> Option<Arc<Room>> {
        self.map().get(name).cloned()
    }

    /// Every room.
    pub fn all(&self) -> Vec<Arc<Room>> {
        self.map().values().cloned().collect()
    }

    /// Every room with its member count, sorted by name; the rooms of the store not opened since
    /// start (see [`Rooms::remember_stored`]) with 0.
    pub fn list(&self) -> Vec<(RoomName, usize)> {
        let rooms: Vec<Arc<Room>> = self.map().values().cloned().collect();
        let mut list: Vec<(RoomName, usize)> = rooms
            .iter()
            .map(|r| (r.name.clone(), r.member_count()))
            .collect();
        let stored = self
            .stored
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for name in stored {
            if !list.iter().any(|(listed, _)| *listed == name) {
                list.push((name, 0));
            }
        }
        list.sort();
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::message::sample;
    use crate::core::outbound;
    use crate::core::request::Protocol;
    use crate::core::session::{Closer, Sessions};

    fn name(n: &str) -> RoomName {
        RoomName::parse(n).unwrap()
    }

    #[test]
    fn rooms_registry_lists_sorted_with_counts() {
        let sessions = Sessions::default();
        let rooms = Rooms::new(Arc::default());
        let (tx, _rx) = outbound::channel(8);
        let a = sessions
            .open(Protocol::Tcp, None, None, tx, Closer::default())
            .unwrap();
        rooms.get_or_create(&name("zeta")).join(&a);
        rooms.get_or_create(&name("alpha"));
        let names: Vec<(String, usize)> = rooms
            .list()
            .into_iter()
            .map(|(n, c)| (n.to_string(), c))
            .collect();
        assert_eq!(
            names,
            vec![("alpha".to_string(), 0), ("zeta".to_string(), 1)]
        );
        assert!(rooms.get(&name("nope")).is_none());
    }

    #[test]
    fn stored_rooms_are_listed_once_with_no_members_until_used() {
        let sessions = Sessions::default();
        let rooms = Rooms::new(Arc::default());
        rooms.remember_stored(vec![name("general"), name("old")]);
        let (tx, _rx) = outbound::channel(8);
        let a = sessions
            .open(Protocol::Tcp, None, None, tx, Closer::default())
            .unwrap();
        rooms.get_or_create(&name("general")).join(&a);
        assert_eq!(rooms.list(), vec![(name("general"), 1), (name("old"), 0)]);
        assert_eq!(
            rooms.len(),
            1,
            "a stored room costs no Room until it is used"
        );
    }

    #[test]
    fn the_registry_is_bounded_and_frees_rooms_that_never_carried_a_message() {
        let sessions = Sessions::default();
        let rooms = Rooms::new(Arc::default());
        let a = rooms.get_or_create_within(&name("a"), 2).unwrap();
        rooms.get_or_create_within(&name("b"), 2).unwrap();
        assert_eq!(
            rooms.get_or_create_within(&name("c"), 2).unwrap_err(),
            TooManyRooms { max: 2 }
        );
        assert!(
            rooms.get_or_create_within(&name("a"), 2).is_ok(),
            "an existing room"
        );
        let (tx, _rx) = outbound::channel(8);
        let s = sessions
            .open(Protocol::Tcp, None, None, tx, Closer::default())
            .unwrap();
        a.join(&s);
        assert!(
            !rooms.release_if_unused(&name("a")),
            "held here, and a member"
        );
        drop(a);
        assert!(!rooms.release_if_unused(&name("a")), "a member");
        rooms.get(&name("a")).unwrap().leave(s.id);
        assert!(rooms.release_if_unused(&name("a")));
        assert!(rooms.release_if_unused(&name("b")), "never joined at all");
        assert!(rooms.is_empty());
        let c = rooms.get_or_create_within(&name("c"), 2).unwrap();
        c.commit(sample("c", 1, "x", "kept"));
        drop(c);
        assert!(!rooms.release_if_unused(&name("c")), "it has a message");
        assert_eq!(rooms.len(), 1);
    }

    #[tokio::test]
    async fn with_a_bus_an_opened_room_is_kept() {
        let rooms = Rooms::new(Arc::default());
        rooms.keep_opened_rooms();
        let opened = rooms.get_or_create(&name("opened"));
        opened
            .open_once(|| async { Ok::<(), ()>(()) })
            .await
            .unwrap();
        drop(opened);
        drop(rooms.get_or_create(&name("visited")));
        assert!(
            !rooms.release_if_unused(&name("opened")),
            "the bus holds state for it"
        );
        assert!(
            rooms.release_if_unused(&name("visited")),
            "never opened: nothing held"
        );
    }

    #[test]
    fn rooms_keep_as_many_recent_messages_as_they_were_told() {
        let rooms = Rooms::new(Arc::default());
        rooms.keep_recent(2);
        let room = rooms.get_or_create(&name("general"));
        for seq in 1..=3 {
            room.commit(sample("general", seq, "x", "y"));
        }
        let read = room.recent(0, 3, 10);
        assert_eq!(read.messages.len(), 2);
        assert!(!read.complete);
    }
}
