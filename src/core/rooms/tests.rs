//! Unit tests of `core::rooms`: limits, freeing, eviction.

use super::*;
use crate::core::identity::Protocol;
use crate::core::message::sample;
use crate::core::outbound;
use crate::core::room::Start;
use crate::core::session::{Closer, Sessions};

fn name(n: &str) -> RoomName {
    RoomName::parse(n).unwrap()
}

fn within(max: usize) -> Creation {
    Creation {
        max,
        per_ip: usize::MAX,
        creator: None,
    }
}

fn from(ip: &str, per_ip: usize) -> Creation {
    Creation {
        max: 100,
        per_ip,
        creator: Some(crate::core::address::AddressGroup::of(
            ip.parse().unwrap(),
            crate::core::address::DEFAULT_IPV6_PREFIX,
        )),
    }
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
    let a = rooms.get_or_create_within(&name("a"), within(2)).unwrap();
    rooms.get_or_create_within(&name("b"), within(2)).unwrap();
    assert_eq!(
        rooms
            .get_or_create_within(&name("c"), within(2))
            .unwrap_err(),
        TooManyRooms::Total { max: 2 }
    );
    assert!(
        rooms.get_or_create_within(&name("a"), within(2)).is_ok(),
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
    let c = rooms.get_or_create_within(&name("c"), within(2)).unwrap();
    c.commit(sample("c", 1, "x", "kept"));
    drop(c);
    assert!(!rooms.release_if_unused(&name("c")), "it has a message");
    assert_eq!(rooms.len(), 1);
}

#[tokio::test]
async fn with_a_bus_an_opened_room_is_left_to_eviction() {
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
fn with_a_bus_a_room_it_may_listen_to_is_left_to_eviction_until_that_is_closed() {
    let rooms = Rooms::new(Arc::default());
    rooms.keep_opened_rooms();
    // An open asked the bus to listen, and was dropped before it finished.
    rooms.get_or_create(&name("dropped")).set_listened(true);
    assert!(
        !rooms.release_if_unused(&name("dropped")),
        "the bus may hold state for it"
    );
    // An open that failed and closed what it asked.
    rooms.get(&name("dropped")).unwrap().set_listened(false);
    assert!(
        rooms.release_if_unused(&name("dropped")),
        "closed: nothing held"
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

#[test]
fn one_address_cannot_create_more_than_its_share_of_rooms() {
    let rooms = Rooms::new(Arc::default());
    rooms
        .get_or_create_within(&name("a1"), from("10.0.0.1", 2))
        .unwrap();
    rooms
        .get_or_create_within(&name("a2"), from("10.0.0.1", 2))
        .unwrap();
    assert_eq!(
        rooms
            .get_or_create_within(&name("a3"), from("10.0.0.1", 2))
            .unwrap_err(),
        TooManyRooms::PerIp { max: 2 }
    );
    assert!(
        rooms
            .get_or_create_within(&name("a1"), from("10.0.0.1", 2))
            .is_ok(),
        "joining a room that exists creates nothing"
    );
    rooms
        .get_or_create_within(&name("b1"), from("10.0.0.2", 2))
        .unwrap();
    assert!(rooms.release_if_unused(&name("a1")));
    rooms
        .get_or_create_within(&name("a3"), from("10.0.0.1", 2))
        .unwrap();
    assert!(rooms.table().per_ip.len() == 2);
}

/// A room that carried message `seq`, as a room numbering in memory would.
#[test]
fn the_addresses_of_one_ipv6_prefix_share_one_budget() {
    let rooms = Rooms::new(Arc::default());
    rooms
        .get_or_create_within(&name("v1"), from("2001:db8:1:2::1", 1))
        .unwrap();
    assert!(
        rooms
            .get_or_create_within(&name("v2"), from("2001:db8:1:2::ffff", 1))
            .is_err(),
        "another address of the same /64"
    );
    rooms
        .get_or_create_within(&name("v3"), from("2001:db8:1:3::1", 1))
        .unwrap();
}

fn with_a_message(rooms: &Rooms, n: &str) -> Arc<Room> {
    let room = rooms.get_or_create(&name(n));
    room.commit(sample(n, 1, "x", "kept"));
    room
}

#[test]
fn a_room_with_stored_history_is_evicted_after_its_idle_time_and_closing_until_closed() {
    let rooms = Rooms::new(Arc::default());
    rooms.evict_stored_rooms();
    drop(with_a_message(&rooms, "quiet"));
    let busy = with_a_message(&rooms, "busy"); // held: a join or a message in flight
    assert!(
        rooms.take_idle(Duration::ZERO).is_empty(),
        "first seen idle now"
    );
    let evicted = rooms.take_idle(Duration::ZERO);
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0].room.name, name("quiet"));
    assert!(rooms.get(&name("quiet")).is_none());
    assert!(rooms.get(&name("busy")).is_some());
    let closing = rooms.closing(&name("quiet")).expect("closing until closed");
    assert!(!closing.is_cancelled());
    rooms.closed(evicted.into_iter().next().unwrap());
    assert!(closing.is_cancelled());
    assert!(rooms.closing(&name("quiet")).is_none());
    assert_eq!(
        rooms.list(),
        vec![(name("busy"), 0), (name("quiet"), 0)],
        "an evicted room is still listed"
    );
    assert_eq!(rooms.members(&name("quiet")), Some(vec![]));
    assert_eq!(rooms.members(&name("never")), None);
    drop(busy);
}

#[test]
fn a_room_used_since_the_last_sweep_is_not_evicted() {
    let rooms = Rooms::new(Arc::default());
    rooms.evict_stored_rooms();
    drop(with_a_message(&rooms, "general"));
    assert!(rooms.take_idle(Duration::ZERO).is_empty());
    drop(rooms.get_or_create(&name("general"))); // a join came and went
    assert!(rooms.take_idle(Duration::ZERO).is_empty(), "idle from now");
    assert_eq!(rooms.take_idle(Duration::ZERO).len(), 1);
}

#[test]
fn without_a_store_a_room_with_messages_is_never_evicted() {
    let rooms = Rooms::new(Arc::default());
    drop(with_a_message(&rooms, "general"));
    drop(rooms.get_or_create(&name("empty")));
    for _ in 0..3 {
        let evicted = rooms.take_idle(Duration::ZERO);
        for e in evicted {
            assert_eq!(e.room.name, name("empty"), "nothing to lose there");
            rooms.closed(e);
        }
    }
    assert_eq!(rooms.list(), vec![(name("general"), 0)]);
}

#[test]
fn a_room_with_a_member_or_a_held_message_stays() {
    let sessions = Sessions::default();
    let rooms = Rooms::new(Arc::default());
    rooms.evict_stored_rooms();
    let (tx, _rx) = outbound::channel(8);
    let s = sessions
        .open(Protocol::Tcp, None, None, tx, Closer::default())
        .unwrap();
    with_a_message(&rooms, "member").join(&s);
    let waiting = rooms.get_or_create(&name("waiting"));
    waiting.start(Start::default());
    waiting.commit(sample("waiting", 2, "x", "1 is missing"));
    drop(waiting);
    for _ in 0..3 {
        assert!(rooms.take_idle(Duration::ZERO).is_empty());
    }
}

#[test]
fn a_room_whose_opening_failed_is_evicted_with_what_it_held() {
    // The bus brought a message while the room opened, then the store's read failed: the room
    // never started, and what it holds waits for a start nobody may ask for again. Idle, it
    // leaves memory like any room with stored history.
    let rooms = Rooms::new(Arc::default());
    rooms.evict_stored_rooms();
    rooms
        .get_or_create(&name("failed"))
        .commit(sample("failed", 7, "x", "from the bus"));
    assert!(rooms.take_idle(Duration::ZERO).is_empty(), "idle from now");
    let evicted = rooms.take_idle(Duration::ZERO);
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0].room.name, name("failed"));
}

#[test]
fn an_evicted_room_that_could_not_be_closed_goes_back_unless_reopened_meanwhile() {
    let rooms = Rooms::new(Arc::default());
    rooms.evict_stored_rooms();
    drop(with_a_message(&rooms, "a"));
    drop(with_a_message(&rooms, "b"));
    rooms.take_idle(Duration::ZERO);
    let mut evicted = rooms.take_idle(Duration::ZERO);
    evicted.sort_by(|x, y| x.room.name.cmp(&y.room.name));
    let (a, b) = (evicted.remove(0), evicted.remove(0));
    let a_room = a.room.clone();
    assert!(rooms.restore(a).is_ok());
    assert!(Arc::ptr_eq(&rooms.get(&name("a")).unwrap(), &a_room));
    let fresh = rooms.get_or_create(&name("b"));
    let b = rooms.restore(b).expect_err("the name is in use again");
    assert!(rooms.closing(&name("b")).is_some(), "closing until closed");
    rooms.closed(b);
    assert!(Arc::ptr_eq(&rooms.get(&name("b")).unwrap(), &fresh));
}
