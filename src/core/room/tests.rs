use super::*;
use crate::core::identity::Protocol;
use crate::core::message::sample;
use crate::core::outbound::{self, Inbox};
use crate::core::session::{Closer, Sessions};

fn member(sessions: &Sessions, protocol: Protocol) -> (Arc<Session>, Inbox) {
    let (tx, rx) = outbound::channel(64);
    (
        sessions
            .open(protocol, None, None, tx, Closer::default())
            .unwrap(),
        rx,
    )
}

/// The seqs of the messages a member was handed.
fn received(rx: &mut Inbox) -> Vec<u64> {
    let mut seqs = Vec::new();
    while let Some(event) = rx.try_recv() {
        if let Event::Message(m) = event {
            seqs.push(m.seq);
        }
    }
    seqs
}

fn missed(rx: &mut Inbox) -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    while let Some(event) = rx.try_recv() {
        if let Event::Missed(m) = event {
            ranges.push((m.from, m.to));
        }
    }
    ranges
}

fn room() -> Room {
    Room::new(RoomName::parse("general").unwrap(), Arc::default(), 10)
}

#[test]
fn delivery_waits_for_the_missing_seq() {
    let sessions = Sessions::default();
    let room = room();
    let (a, mut rx) = member(&sessions, Protocol::Tcp);
    room.join(&a);
    assert_eq!(
        room.commit(sample("general", 2, "x", "second")),
        0,
        "2 waits for 1"
    );
    assert_eq!(room.commit(sample("general", 3, "x", "third")), 0);
    assert!(received(&mut rx).is_empty());
    assert_eq!(room.commit(sample("general", 1, "x", "first")), 3);
    assert_eq!(received(&mut rx), vec![1, 2, 3]);
    assert_eq!(room.delivered(), 3);
}

#[test]
fn duplicates_are_dropped() {
    let sessions = Sessions::default();
    let room = room();
    let (a, mut rx) = member(&sessions, Protocol::Tcp);
    room.join(&a);
    room.commit(sample("general", 1, "x", "once"));
    assert_eq!(room.commit(sample("general", 1, "x", "once")), 0);
    assert_eq!(received(&mut rx), vec![1]);
}

#[test]
fn an_abandoned_seq_releases_the_ones_behind_it() {
    let sessions = Sessions::default();
    let room = room();
    let (a, mut rx) = member(&sessions, Protocol::Tcp);
    room.join(&a);
    room.commit(sample("general", 2, "x", "waits"));
    assert!(room.abandon(1));
    assert_eq!(received(&mut rx), vec![2]);
    assert!(!room.abandon(1), "settled already");
}

#[test]
fn a_committed_message_cannot_be_abandoned_behind_its_back() {
    // Committed while 1 is missing, then its request is dropped: it is held for delivery and
    // must be delivered when 1 arrives, not turned into a hole.
    let sessions = Sessions::default();
    let room = room();
    let (a, mut rx) = member(&sessions, Protocol::Tcp);
    room.join(&a);
    room.commit(sample("general", 2, "x", "stored and committed"));
    assert!(!room.abandon(2));
    room.commit(sample("general", 1, "x", "first"));
    assert_eq!(received(&mut rx), vec![1, 2]);
}

#[test]
fn a_joiner_gets_live_only_what_is_after_its_history() {
    let sessions = Sessions::default();
    let room = room();
    room.commit(sample("general", 1, "x", "before"));
    room.commit(sample("general", 3, "x", "in flight"));
    let (a, mut rx) = member(&sessions, Protocol::Tcp);
    let joined = room.join(&a);
    assert_eq!(
        joined,
        Joined {
            new: true,
            members: 1,
            upto: 1
        }
    );
    room.commit(sample("general", 2, "x", "late"));
    assert_eq!(
        received(&mut rx),
        vec![2, 3],
        "history covers 1; 2 and 3 arrive live"
    );
    assert!(!room.join(&a).new);
}

#[test]
fn the_memory_holds_what_was_delivered_and_nothing_in_flight() {
    let room = room();
    room.commit(sample("general", 1, "x", "delivered"));
    room.commit(sample("general", 3, "x", "held"));
    let read = room.recent(0, 3, 10);
    assert_eq!(
        read.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![1],
        "3 waits for 2: not delivered, not in memory"
    );
    assert!(room.abandon(2));
    let read = room.recent(0, 3, 10);
    assert_eq!(
        read.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![1, 3]
    );
}

#[test]
fn senders_get_their_own_message_only_over_http() {
    let sessions = Sessions::default();
    let room = room();
    let (tcp, mut tcp_rx) = member(&sessions, Protocol::Tcp);
    let (http, mut http_rx) = member(&sessions, Protocol::Http);
    room.join(&tcp);
    room.join(&http);
    let own = |id| {
        Arc::new(ChatMessage::new(
            RoomName::parse("general").unwrap(),
            room.next_local_seq().unwrap(),
            Nick::parse("me").unwrap(),
            "mine".into(),
            crate::core::Origin::Local(id),
        ))
    };
    room.commit(own(tcp.id));
    room.commit(own(http.id));
    assert_eq!(received(&mut tcp_rx), vec![2]);
    assert_eq!(received(&mut http_rx), vec![1, 2]);
}

#[test]
fn too_many_pending_gives_up_on_the_gap_and_says_so() {
    let sessions = Sessions::default();
    let room = room();
    room.start(Start::default());
    let (a, mut rx) = member(&sessions, Protocol::Tcp);
    room.join(&a);
    for seq in 2..=(MAX_PENDING as u64 + 2) {
        room.commit(sample("general", seq, "x", "y"));
    }
    assert_eq!(room.delivered(), MAX_PENDING as u64 + 2);
    assert_eq!(room.stats.gaps_skipped.get(), 1);
    assert_eq!(missed(&mut rx), vec![(1, 1)]);
}

#[test]
fn a_room_that_has_not_started_gives_up_on_nothing() {
    // A room listens to the bus before it reads the store (the route layer's `open`), so in a
    // busy room more than MAX_PENDING of another instance's messages can arrive while that read
    // is slow. Until `start` says where the room's sequence begins, the seqs below them are not
    // missing, only unknown: giving up on them would tell of thousands of "missed" messages the
    // store has, and start the room past the ones the store returns above its starting point.
    let sessions = Sessions::default();
    let room = room();
    let at = 5_000;
    let arrived = MAX_PENDING as u64 + 10;
    for seq in at + 1..=at + arrived {
        room.commit(sample("general", seq, "x", "from the bus, while opening"));
    }
    assert_eq!(room.stats.gaps_skipped.get(), 0, "nothing given up");
    assert_eq!(
        room.gap(),
        None,
        "nothing is missing before the start says where to begin"
    );
    room.start(Start {
        at,
        history: (at - 9..=at)
            .map(|s| sample("general", s, "x", "stored"))
            .collect(),
        ..Start::default()
    });
    let kept = at + MAX_PENDING as u64;
    assert_eq!(
        room.delivered(),
        kept,
        "what it held, in order from the start"
    );
    assert_eq!(
        room.lost_within(1, kept),
        vec![],
        "no hole below or above the start"
    );
    assert_eq!(room.gap(), None);
    // The newest it could not hold are a gap like any lost message, filled from the store.
    let (a, mut rx) = member(&sessions, Protocol::Tcp);
    room.join(&a);
    room.commit(sample("general", at + arrived + 1, "x", "live"));
    let gap = room.gap().map(|gap| (gap.from, gap.to));
    assert_eq!(gap, Some((kept + 1, at + arrived)));
    assert!(
        received(&mut rx).is_empty(),
        "the live one waits for the gap"
    );
}

#[test]
fn start_holds_what_is_known_above_the_starting_point() {
    let sessions = Sessions::default();
    let room = room();
    let (a, mut rx) = member(&sessions, Protocol::Tcp);
    room.commit(sample("general", 45, "x", "arrived live while opening"));
    room.start(Start {
        at: 41,
        pending: vec![(42, Some(sample("general", 42, "x", "stored"))), (44, None)],
        history: (39..=41)
            .map(|s| sample("general", s, "x", "old"))
            .collect(),
        history_complete: false,
        unknown: Vec::new(),
    });
    assert_eq!(room.delivered(), 42, "43 is missing");
    room.join(&a);
    room.commit(sample("general", 43, "x", "late"));
    assert_eq!(received(&mut rx), vec![43, 45], "44 carries nothing");
    assert_eq!(
        room.next_local_seq(),
        Some(42),
        "numbering continues after the start"
    );
    let read = room.recent(0, 45, 3);
    assert_eq!(
        read.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        vec![42, 43, 45]
    );
}

#[test]
fn a_message_delivered_while_the_room_opens_is_remembered_once() {
    // The room listens to the bus before it reads the store, so another instance's first
    // messages can arrive in between: the gate, still at 0, delivers them at once, and the
    // store's answer holds some of them too. Seen under load as `seq 1 shown twice` on a new
    // stream (consistency::scale_out).
    for arrived in [vec![1], vec![1, 2]] {
        let room = room();
        for &seq in &arrived {
            room.commit(sample("general", seq, "x", "from the bus"));
        }
        room.start(Start {
            at: 1,
            history: vec![sample("general", 1, "x", "from the store")],
            history_complete: true,
            ..Start::default()
        });
        let read = room.recent(0, room.delivered(), 10);
        assert_eq!(
            read.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            arrived,
            "each seq once, in order"
        );
    }
}

#[test]
fn local_numbering_stops_at_its_ceiling() {
    let room = room();
    room.start(Start {
        at: 10,
        ..Start::default()
    });
    room.reserve_up_to(12);
    assert_eq!(room.next_local_seq(), Some(11));
    assert_eq!(room.next_local_seq(), Some(12));
    assert_eq!(room.next_local_seq(), None, "the reserved block is used up");
    room.reserve_up_to(20);
    assert_eq!(room.next_local_seq(), Some(13));
    assert_eq!(room.last_local_seq(), 13);
}

#[test]
fn a_gap_is_reported_resolved_or_given_up_on_with_a_notice() {
    let sessions = Sessions::default();
    let room = room();
    room.start(Start::default());
    let (a, mut rx) = member(&sessions, Protocol::Tcp);
    room.join(&a);
    assert_eq!(room.gap(), None);
    room.commit(sample("general", 1, "x", "one"));
    room.commit(sample("general", 4, "x", "four"));
    room.commit(sample("general", 7, "x", "seven"));
    let gap = room.gap().unwrap();
    assert_eq!((gap.from, gap.to), (2, 3));
    room.commit(sample("general", 2, "x", "two")); // a late arrival still counts
    assert_eq!(room.gap().map(|g| (g.from, g.to)), Some((3, 3)));
    room.skip(3); // the store says 3 carries nothing
    assert_eq!(room.gap().map(|g| (g.from, g.to)), Some((5, 6)));
    assert_eq!(received(&mut rx), vec![1, 2, 4]);
    assert_eq!(
        room.give_up_until(6),
        1,
        "7 is delivered once 5 and 6 are given up"
    );
    assert_eq!(room.gap(), None);
    assert_eq!(room.stats.gaps_skipped.get(), 2);
    let mut events = Vec::new();
    while let Some(event) = rx.try_recv() {
        events.push(event.text());
    }
    assert_eq!(
        events,
        vec![
            "* missed messages #5 to #6 in general".to_string(),
            "[general] x: seven".to_string()
        ]
    );
    assert_eq!(room.lost_within(1, 7), vec![(5, 6)]);
}

/// A room of `members` TCP sessions whose queues (256 events, 256 KiB) share a budget of 1 MiB,
/// and their sessions and inboxes; the registry comes first and must be kept alive.
fn members_under_a_budget(
    members: usize,
) -> (
    Sessions,
    Room,
    outbound::QueueBudget,
    Vec<(Arc<Session>, Inbox)>,
) {
    let sessions = Sessions::default();
    let room = room();
    let budget = outbound::QueueBudget::new(1 << 20);
    let limits = outbound::QueueLimits {
        events: 256,
        bytes: 256 * 1024,
        budget: budget.clone(),
    };
    let mut inboxes = Vec::new();
    for _ in 0..members {
        let (tx, rx) = outbound::bounded(&limits);
        let session = sessions
            .open(Protocol::Tcp, None, None, tx, Closer::default())
            .unwrap();
        room.join(&session);
        inboxes.push((session, rx));
    }
    (sessions, room, budget, inboxes)
}

/// The instance's budget counts what waits for readers once per message, not once per reader: a
/// room of 40 members who are all a little behind holds 50 messages of 2 KB (100 KB), not 40
/// times that, so a 1 MiB budget cuts nobody (charging every queue the whole message, as chatd
/// did, "used" 4 MB of it and cut most of them). What they hold goes back as they read.
#[test]
fn a_message_waiting_for_many_members_is_counted_once_by_the_instance_budget() {
    let (_sessions, room, budget, mut inboxes) = members_under_a_budget(40);
    let text = "x".repeat(2000);
    for seq in 1..=50 {
        assert_eq!(room.commit(sample("general", seq, "alice", &text)), 40);
    }
    assert!(inboxes.iter().all(|(s, _)| s.kick_reason().is_none()));
    let per_message = outbound::message_bytes(&sample("general", 1, "alice", &text));
    assert!(
        budget.used() < 50 * per_message + 40 * 50 * crate::core::budget::SLOT_BYTES + 1,
        "{} used",
        budget.used()
    );
    for (_, rx) in &mut inboxes {
        assert_eq!(received(rx), (1..=50).collect::<Vec<_>>());
    }
    assert_eq!(budget.used(), 0);
}

/// The join storm the shared charge is for: each join is announced to every member so far, and
/// a notice waiting for 40 members is counted once (plus a slot per queue), not 40 times.
/// Charged per queue, 200 joins announced to 40 members who have not read yet came to 1.2 MB,
/// over the 1 MiB budget, and it cut them.
#[test]
fn a_presence_notice_waiting_for_many_members_is_counted_once_by_the_instance_budget() {
    use crate::core::message::{Presence, PresenceKind};
    let (_sessions, room, budget, mut inboxes) = members_under_a_budget(40);
    let joined = |n: usize| {
        let nick = Nick::parse(&format!("joiner{n}")).unwrap();
        Arc::new(Presence::new(
            RoomName::parse("general").unwrap(),
            nick,
            PresenceKind::Joined,
            None,
        ))
    };
    let per_notice = outbound::event_bytes(&Event::Presence(joined(199))); // the longest nick
    for n in 0..200 {
        assert_eq!(room.announce(&joined(n)), 40);
    }
    assert!(inboxes.iter().all(|(s, _)| s.kick_reason().is_none()));
    let slot = crate::core::budget::SLOT_BYTES;
    assert!(
        budget.used() <= 200 * (per_notice + 40 * slot),
        "{} used",
        budget.used()
    );
    for (_, rx) in &mut inboxes {
        let mut notices = 0;
        while rx.try_recv().is_some() {
            notices += 1;
        }
        assert_eq!(notices, 200);
    }
    assert_eq!(budget.used(), 0);
}
