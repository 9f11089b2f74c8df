//! Every room of this process: created on first use, bounded by `route.max_rooms` and, per
//! creating address, by `route.max_rooms_per_ip`; a cache of the store, not a second copy of it.
//!
//! **Rooms come and go.** A room exists in memory while it is used: members, a join or a history
//! read in progress, a message on its way. Two rules free it once it is not:
//! * a room that never carried a message goes as soon as its last user does
//!   ([`Rooms::release_if_unused`]): `/join x1`, `/leave`, `/join x2`, ... cannot fill the table;
//! * a room that did carry messages, **whose history is stored**, is evicted after
//!   `route.room_idle_secs` without members ([`Rooms::take_idle`], run by the route layer's
//!   sweep). Its next use opens it again from the store, like the first use after a restart:
//!   the numbering continues, the history is there.
//!
//! **Eviction is a small shutdown.** A room numbering in memory holds a block of seqs reserved in
//! the store; a cross-instance bus holds a subscription or a watch for it. Both must be given
//! back before the room can be opened again, or the reopened room would start after the whole
//! block (a jump readers are told about as missing) or miss the bus's state. So an evicted room
//! leaves the table at once (nobody can find it any more), its name is marked *closing* until the
//! route layer has released its seqs and closed it through the stack (`Action::CloseRoom`), and a
//! reopen of the same name waits for that ([`Rooms::closing`]) before it runs the full open path.
//! A room is only taken when nothing can still be delivered into it or decided about it: no
//! member, no held message, and no reference outside the table (a join, a read, a message in
//! flight each hold one).
//!
//! **Without a store** (`store = "none"`) a room with messages is never evicted: its history and
//! numbering exist only here. Evicting it would lose the history, and restart the numbering at 1
//! under browsers that resume with `Last-Event-ID`: they would be shown the new numbering's
//! messages as if they came next. `max_rooms` and the per-address budget bound such rooms
//! instead, until restart.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::address::AddressGroup;
use super::names::{Nick, RoomName};
use super::room::Room;
use super::stats::Stats;

/// Why [`Rooms::get_or_create_within`] did not create a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TooManyRooms {
    /// The instance keeps `max` rooms already (`route.max_rooms`).
    Total {
        /// The limit.
        max: usize,
    },
    /// The creating address has `max` rooms in memory already (`route.max_rooms_per_ip`).
    PerIp {
        /// The limit.
        max: usize,
    },
}

/// The limits a new room is created within, and who creates it.
#[derive(Debug, Clone, Copy)]
pub struct Creation {
    /// `route.max_rooms`.
    pub max: usize,
    /// `route.max_rooms_per_ip`.
    pub per_ip: usize,
    /// The address of the client whose join creates the room (`None`: not counted).
    pub creator: Option<AddressGroup>,
}

/// Every room of this process.
#[derive(Debug, Default)]
pub struct Rooms {
    table: Mutex<Table>,
    stats: Arc<Stats>,
    /// How many delivered messages each room keeps in memory (the history layer's capacity).
    recent: AtomicUsize,
    /// Set when a cross-instance bus keeps per-room state (a Valkey subscription, a poll watch)
    /// for every room opened here: such a room is only freed by eviction, which closes that
    /// state through the stack (see [`Rooms::release_if_unused`]).
    keep_opened: AtomicBool,
    /// Set when the pipeline stores history: rooms with messages may then be evicted.
    stored_history: AtomicBool,
    /// Rooms the store holds messages of ([`Rooms::remember_stored`], and evicted rooms): listed
    /// by `/rooms` with no members until they are used, without costing a `Room` each.
    stored: Mutex<Vec<RoomName>>,
}

#[derive(Debug, Default)]
struct Table {
    rooms: HashMap<RoomName, Slot>,
    /// Rooms in memory per creating address.
    per_ip: HashMap<AddressGroup, usize>,
    /// Names whose evicted room is still being closed; cancelled once it is.
    closing: HashMap<RoomName, CancellationToken>,
}

#[derive(Debug)]
struct Slot {
    room: Arc<Room>,
    creator: Option<AddressGroup>,
    /// Since when the sweep has found the room unused (`None`: used since its last look).
    idle_since: Option<Instant>,
}

impl Table {
    /// Takes `name` out, giving its creator's count back.
    fn remove(&mut self, name: &RoomName) -> Option<Slot> {
        let slot = self.rooms.remove(name)?;
        if let Some(ip) = slot.creator
            && let Some(n) = self.per_ip.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
        Some(slot)
    }
}

/// Nobody but the table holds it, it has no member and holds no message waiting for another.
fn quiet(room: &Arc<Room>) -> bool {
    // The table's own reference is the only one: nobody is between a lookup and a join.
    Arc::strong_count(room) == 1 && room.member_count() == 0 && room.gap().is_none()
}

/// An evicted room, out of the table: give back what it holds, then call [`Rooms::closed`].
#[derive(Debug)]
pub struct Evicted {
    /// The room.
    pub room: Arc<Room>,
    closed: CancellationToken,
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
        *self.stored() = names;
    }

    fn stored(&self) -> MutexGuard<'_, Vec<RoomName>> {
        self.stored.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rooms created from now on keep their `capacity` newest delivered messages in memory: the
    /// history layer's ring (`pipeline::build` sets it from the layer's `capacity`).
    pub fn keep_recent(&self, capacity: usize) {
        self.recent.store(capacity, Ordering::Relaxed);
    }

    /// From now on, a room that was opened (`Room::open_once`) is not freed at once when its
    /// last user goes: the pipeline's bus holds state for it that only eviction closes
    /// (`pipeline::build` calls this when the fan-out crosses instances).
    pub fn keep_opened_rooms(&self) {
        self.keep_opened.store(true, Ordering::Relaxed);
    }

    /// From now on rooms with messages may be evicted: the pipeline stores their history.
    pub fn evict_stored_rooms(&self) {
        self.stored_history.store(true, Ordering::Relaxed);
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn create(&self, name: &RoomName) -> Arc<Room> {
        Arc::new(Room::new(
            name.clone(),
            self.stats.clone(),
            self.recent.load(Ordering::Relaxed),
        ))
    }

    /// The room called `name`, created on first use (without limits: a message from another
    /// instance, tests).
    pub fn get_or_create(&self, name: &RoomName) -> Arc<Room> {
        let creation = Creation {
            max: usize::MAX,
            per_ip: usize::MAX,
            creator: None,
        };
        match self.get_or_create_within(name, creation) {
            Ok(room) => room,
            Err(_) => self.create(name), // unreachable: no limit to break
        }
    }

    /// The room called `name`, created on first use within `creation`'s limits.
    ///
    /// # Errors
    /// [`TooManyRooms`] when `name` does not exist and creating it would break a limit.
    pub fn get_or_create_within(
        &self,
        name: &RoomName,
        creation: Creation,
    ) -> Result<Arc<Room>, TooManyRooms> {
        let mut table = self.table();
        if let Some(slot) = table.rooms.get_mut(name) {
            slot.idle_since = None;
            return Ok(slot.room.clone());
        }
        if table.rooms.len() >= creation.max {
            return Err(TooManyRooms::Total { max: creation.max });
        }
        if let Some(ip) = creation.creator {
            let count = table.per_ip.entry(ip).or_insert(0);
            if *count >= creation.per_ip {
                if *count == 0 {
                    table.per_ip.remove(&ip);
                }
                return Err(TooManyRooms::PerIp {
                    max: creation.per_ip,
                });
            }
            *count += 1;
        }
        let room = self.create(name);
        let slot = Slot {
            room: room.clone(),
            creator: creation.creator,
            idle_since: None,
        };
        table.rooms.insert(name.clone(), slot);
        Ok(room)
    }

    /// Forgets room `name` if nothing would be lost: it has no members, never had a message
    /// (so there is no numbering to continue and no history to keep), and nobody else holds it at
    /// this moment (a join in progress does). Returns whether it was freed. With a bus
    /// ([`Rooms::keep_opened_rooms`]) a room the bus may be listening to (opened, or whose open
    /// was dropped half-way: [`Room::may_be_listened`]) is left to eviction, which closes the
    /// bus's state for it.
    ///
    /// Either way the room's idle time counts from now: its last user may just have left.
    pub fn release_if_unused(&self, name: &RoomName) -> bool {
        let keep_opened = self.keep_opened.load(Ordering::Relaxed);
        let mut table = self.table();
        let Some(slot) = table.rooms.get_mut(name) else {
            return false;
        };
        slot.idle_since = None;
        let room = &slot.room;
        let unused = quiet(room) && room.is_unused() && !(keep_opened && room.may_be_listened());
        if unused {
            table.remove(name);
        }
        unused
    }

    /// Takes out of the table every room that has been quiet for at least `idle` as seen by
    /// earlier calls (the route layer's sweep calls this every fraction of `idle`), and marks
    /// the rest that are quiet now as idle from now. A room that never carried a message and
    /// holds no bus state is simply dropped; one with messages only when its history is stored
    /// (see the module docs). The caller gives back what each [`Evicted`] room holds, then calls
    /// [`Rooms::closed`].
    pub fn take_idle(&self, idle: Duration) -> Vec<Evicted> {
        let evict_stored = self.stored_history.load(Ordering::Relaxed);
        let now = Instant::now();
        let mut table = self.table();
        let mut due = Vec::new();
        for (name, slot) in &mut table.rooms {
            if !quiet(&slot.room) || !(evict_stored || slot.room.is_unused()) {
                slot.idle_since = None;
                continue;
            }
            match slot.idle_since {
                Some(since) if now.duration_since(since) >= idle => due.push(name.clone()),
                Some(_) => {}
                None => slot.idle_since = Some(now),
            }
        }
        let mut evicted = Vec::new();
        for name in due {
            let Some(slot) = table.remove(&name) else {
                continue;
            };
            let closed = CancellationToken::new();
            table.closing.insert(name, closed.clone());
            evicted.push(Evicted {
                room: slot.room,
                closed,
            });
        }
        evicted
    }

    /// An evicted room has given back what it held: its name may be opened again. A room with
    /// stored messages stays listed by `/rooms`, with no members.
    pub fn closed(&self, evicted: Evicted) {
        let name = evicted.room.name.clone();
        let had_messages = !evicted.room.is_unused();
        let mut table = self.table();
        table.closing.remove(&name);
        drop(table);
        evicted.closed.cancel();
        if had_messages {
            self.stats.rooms_evicted.inc();
            let mut stored = self.stored();
            if !stored.contains(&name) {
                stored.push(name);
            }
        }
    }

    /// An evicted room that could not give back what it held (the store is down): back into the
    /// table, as it was, unless its name is in use again already; then it is handed back, for
    /// the caller to close after all.
    ///
    /// # Errors
    /// The room, when its name is in use again.
    pub fn restore(&self, evicted: Evicted) -> Result<(), Evicted> {
        let name = evicted.room.name.clone();
        let mut table = self.table();
        if table.rooms.contains_key(&name) {
            return Err(evicted);
        }
        table.closing.remove(&name);
        let slot = Slot {
            room: evicted.room.clone(),
            creator: None,
            idle_since: None,
        };
        table.rooms.insert(name, slot);
        drop(table);
        evicted.closed.cancel();
        Ok(())
    }

    /// When room `name` was evicted and is still being closed: the token cancelled once it is.
    /// Opening the name again must wait for that (see the module docs).
    pub fn closing(&self, name: &RoomName) -> Option<CancellationToken> {
        self.table().closing.get(name).cloned()
    }

    /// How many rooms exist.
    pub fn len(&self) -> usize {
        self.table().rooms.len()
    }

    /// Whether there are no rooms.
    pub fn is_empty(&self) -> bool {
        self.table().rooms.is_empty()
    }

    /// The room called `name`, if it exists.
    pub fn get(&self, name: &RoomName) -> Option<Arc<Room>> {
        self.table().rooms.get(name).map(|slot| slot.room.clone())
    }

    /// Every room.
    pub fn all(&self) -> Vec<Arc<Room>> {
        self.table()
            .rooms
            .values()
            .map(|slot| slot.room.clone())
            .collect()
    }

    /// The members of room `name` here: its nicks when it is in memory, none when it only has
    /// stored history (it was evicted, or not used since start), `None` when there is no such
    /// room.
    pub fn members(&self, name: &RoomName) -> Option<Vec<Nick>> {
        match self.get(name) {
            Some(room) => Some(room.nicks()),
            None => self.stored().contains(name).then(Vec::new),
        }
    }

    /// Every room with its member count, sorted by name; the rooms of the store not in memory
    /// (see [`Rooms::remember_stored`]) with 0.
    pub fn list(&self) -> Vec<(RoomName, usize)> {
        let mut list: Vec<(RoomName, usize)> = self
            .all()
            .iter()
            .map(|r| (r.name.clone(), r.member_count()))
            .collect();
        let stored = self.stored().clone();
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
mod tests;
