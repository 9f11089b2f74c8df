//! Unit tests of `core::outbound`: the bounds, the budget, and the waking rules.

use super::*;
use crate::core::budget::SLOT_BYTES;

fn notice(n: usize) -> Event {
    Event::notice(n.to_string())
}

fn text(event: Event) -> String {
    event.text().trim_start_matches("* ").to_string()
}

#[tokio::test]
async fn bounded_in_order_and_refuses_when_full() {
    let (tx, mut rx) = channel(2);
    assert_eq!(tx.try_send(notice(1)), Ok(()));
    assert_eq!(tx.try_send(notice(2)), Ok(()));
    assert_eq!(
        tx.try_send(notice(3)),
        Err(Refused::Full(Overflow::Events(2)))
    );
    assert_eq!(text(rx.recv().await.unwrap()), "1");
    assert_eq!(tx.try_send(notice(4)), Ok(()));
    assert_eq!(text(rx.try_recv().unwrap()), "2");
    assert_eq!(text(rx.try_recv().unwrap()), "4");
    assert!(rx.try_recv().is_none());
}

#[tokio::test]
async fn recv_wakes_for_a_later_event() {
    let (tx, mut rx) = channel(4);
    let reader = tokio::spawn(async move { rx.recv().await.map(text) });
    tokio::task::yield_now().await;
    tx.try_send(notice(7)).unwrap();
    assert_eq!(reader.await.unwrap().as_deref(), Some("7"));
}

#[tokio::test]
async fn ends_when_every_sender_is_gone_after_draining() {
    let (tx, mut rx) = channel(4);
    let other = tx.clone();
    tx.try_send(notice(1)).unwrap();
    drop(tx);
    other.try_send(notice(2)).unwrap();
    drop(other);
    assert_eq!(text(rx.recv().await.unwrap()), "1");
    assert_eq!(text(rx.recv().await.unwrap()), "2");
    assert!(rx.recv().await.is_none());
}

#[tokio::test]
async fn a_waiting_reader_sees_the_last_sender_go() {
    let (tx, mut rx) = channel(4);
    let reader = tokio::spawn(async move { rx.recv().await.is_none() });
    tokio::task::yield_now().await;
    drop(tx);
    assert!(reader.await.unwrap());
}

#[test]
fn a_burst_wakes_a_waiting_reader_once() {
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::task::Context;

    use futures_util::task::{ArcWake, waker};

    struct Wakes(AtomicUsize);
    impl ArcWake for Wakes {
        fn wake_by_ref(this: &Arc<Self>) {
            this.0.fetch_add(1, SeqCst);
        }
    }
    let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
    let waker = waker(wakes.clone());
    let mut cx = Context::from_waker(&waker);
    let (tx, mut rx) = channel(16);
    {
        let mut recv = std::pin::pin!(rx.recv());
        assert!(recv.as_mut().poll(&mut cx).is_pending());
        for n in 0..10 {
            tx.try_send(notice(n)).unwrap();
        }
        assert_eq!(wakes.0.load(SeqCst), 1, "one wake-up for the whole burst");
        assert!(recv.as_mut().poll(&mut cx).is_ready());
    }
    assert_eq!(rx.try_recv().map(text).as_deref(), Some("1"));
}

#[test]
fn sending_to_a_dropped_inbox_is_refused() {
    let (tx, rx) = channel(4);
    drop(rx);
    assert_eq!(tx.try_send(notice(1)), Err(Refused::Closed));
}

#[test]
fn a_drained_queue_gives_its_buffer_back() {
    let (tx, mut rx) = channel(1000);
    for n in 0..100 {
        tx.try_send(notice(n)).unwrap();
    }
    assert!(rx.shared.lock().events.capacity() >= 100);
    while rx.try_recv().is_some() {}
    assert_eq!(rx.shared.lock().events.capacity(), 0);
    // A small one too: an idle connection's queue keeps nothing between events.
    tx.try_send(notice(0)).unwrap();
    assert!(rx.shared.lock().events.capacity() > 0);
    assert!(rx.try_recv().is_some());
    assert_eq!(rx.shared.lock().events.capacity(), 0);
}

fn limits(events: usize, bytes: usize, budget: &QueueBudget) -> QueueLimits {
    QueueLimits {
        events,
        bytes,
        budget: budget.clone(),
    }
}

/// `n` queues of 100 events and 10,000 bytes each on `budget`.
fn queues(n: usize, budget: &QueueBudget) -> Vec<(Outbound, Inbox)> {
    (0..n)
        .map(|_| bounded(&limits(100, 10_000, budget)))
        .collect()
}

/// A notice charged exactly `n` bytes.
fn sized(n: usize) -> Event {
    Event::notice("x".repeat(n - EVENT_OVERHEAD))
}

/// A presence notice (a payload handed to many queues, which counts its holders) charged
/// exactly `n` bytes: `ann` left `general` with a reason of the right length.
fn shared(n: usize) -> Event {
    use crate::core::message::{Presence, PresenceKind};
    use crate::core::names::{Nick, RoomName};
    let base = EVENT_OVERHEAD + 2 * "ann".len() + "general".len();
    let left = Presence::new(
        RoomName::parse("general").unwrap(),
        Nick::parse("ann").unwrap(),
        PresenceKind::Left,
        None,
    );
    let event = Event::Presence(Arc::new(left.with_reason(Some("x".repeat(n - base)))));
    assert_eq!(event_bytes(&event), n);
    event
}

#[test]
fn a_queue_is_bounded_in_bytes_as_well_as_events() {
    let (tx, mut rx) = bounded(&limits(100, 1000, &QueueBudget::default()));
    assert_eq!(tx.try_send(sized(600)), Ok(()));
    assert_eq!(
        tx.try_send(sized(600)),
        Err(Refused::Full(Overflow::Bytes(1000)))
    );
    assert_eq!(tx.try_send(sized(400)), Ok(()), "what fits is taken");
    assert_eq!(rx.queued_bytes(), 1000);
    rx.try_recv().unwrap();
    assert_eq!(rx.queued_bytes(), 400);
    assert_eq!(tx.try_send(sized(600)), Ok(()));
}

#[test]
fn an_empty_queue_takes_one_event_larger_than_its_byte_bound() {
    let (tx, _rx) = bounded(&limits(100, 1000, &QueueBudget::default()));
    assert_eq!(tx.try_send(sized(5000)), Ok(()));
    assert_eq!(
        tx.try_send(sized(200)),
        Err(Refused::Full(Overflow::Bytes(1000)))
    );
}

#[test]
fn over_the_instance_budget_only_the_readers_beyond_their_share_are_refused() {
    let budget = QueueBudget::new(1000);
    let (behind, _keep) = bounded(&limits(100, 10_000, &budget));
    let (keeping_up, _rx) = bounded(&limits(100, 10_000, &budget));
    behind.try_send(sized(600)).unwrap();
    behind.try_send(sized(300)).unwrap();
    keeping_up.try_send(sized(200)).unwrap(); // an empty queue always takes its event
    assert_eq!(budget.used(), 1100, "over budget now");
    // Two queues hold something: a share is 500 bytes.
    assert_eq!(
        behind.try_send(sized(200)),
        Err(Refused::Full(Overflow::Instance(1000)))
    );
    assert_eq!(
        keeping_up.try_send(sized(200)),
        Ok(()),
        "within its share: a moment's backlog of a reader that keeps up"
    );
    assert_eq!(
        keeping_up.try_send(sized(200)),
        Err(Refused::Full(Overflow::Instance(1000))),
        "beyond its share"
    );
}

#[test]
fn the_budget_counts_the_queues_that_hold_something() {
    let budget = QueueBudget::new(1000);
    let (a, mut a_rx) = bounded(&limits(100, 10_000, &budget));
    let (b, b_rx) = bounded(&limits(100, 10_000, &budget));
    a.try_send(sized(200)).unwrap();
    a.try_send(sized(200)).unwrap();
    b.try_send(sized(200)).unwrap();
    assert_eq!(budget.queues_holding(), 2);
    a_rx.try_recv().unwrap();
    assert_eq!(budget.queues_holding(), 2);
    a_rx.try_recv().unwrap();
    assert_eq!(budget.queues_holding(), 1);
    drop(b_rx);
    assert_eq!(budget.queues_holding(), 0);
}

#[test]
fn the_budget_gets_back_what_is_read_and_what_a_dropped_inbox_held() {
    let budget = QueueBudget::new(10_000);
    let (tx, mut rx) = bounded(&limits(100, 10_000, &budget));
    let (other, other_rx) = bounded(&limits(100, 10_000, &budget));
    tx.try_send(sized(500)).unwrap();
    tx.try_send(sized(500)).unwrap();
    other.try_send(sized(700)).unwrap();
    assert_eq!(budget.used(), 1700);
    rx.try_recv().unwrap();
    assert_eq!(budget.used(), 1200);
    drop(other_rx);
    assert_eq!(budget.used(), 500);
    drop(rx);
    assert_eq!(budget.used(), 0);
}

#[test]
fn overflows_read_as_the_end_of_a_farewell() {
    assert_eq!(Overflow::Events(256).to_string(), "256 events waiting");
    assert_eq!(Overflow::Bytes(256 * 1024).to_string(), "256 KiB waiting");
    assert_eq!(
        Overflow::Instance(128 << 20).to_string(),
        "the server's 128 MiB for waiting events is used up"
    );
    assert_eq!(size(1000), "1000 bytes");
}

#[test]
fn private_messages_and_presence_reasons_are_charged_their_text() {
    use crate::core::direct::{Direct, DirectKind};
    use crate::core::message::{Presence, PresenceKind};
    use crate::core::names::{Nick, RoomName};
    let nick = |n: &str| Nick::parse(n).unwrap();
    let long = "x".repeat(1000);
    let short = Direct::new(nick("ann"), nick("bob"), DirectKind::Message("hi".into()));
    let long_one = Direct::new(nick("ann"), nick("bob"), DirectKind::Message(long.clone()));
    let short = event_bytes(&Event::Direct(Arc::new(short)));
    assert_eq!(event_bytes(&Event::Direct(Arc::new(long_one))), short + 998);
    let room = RoomName::parse("general").unwrap();
    let left = |reason: Option<String>| {
        let p = Presence::new(room.clone(), nick("ann"), PresenceKind::Left, None);
        event_bytes(&Event::Presence(Arc::new(p.with_reason(reason))))
    };
    assert_eq!(left(Some(long)), left(None) + 1000);
    let topic = Presence::new(
        room.clone(),
        nick("ann"),
        PresenceKind::Topic("y".repeat(500)),
        None,
    );
    assert_eq!(
        event_bytes(&Event::Presence(Arc::new(topic))),
        left(None) + 500
    );
}

#[tokio::test]
async fn an_event_handed_to_many_queues_is_charged_to_the_budget_once_until_the_last_reads_it() {
    let budget = QueueBudget::new(1_000_000);
    let queues = queues(100, &budget);
    let mut broadcast = Broadcast::default();
    let event = shared(1000);
    for (tx, _) in &queues {
        tx.try_send_shared(event.clone(), &mut broadcast).unwrap();
    }
    drop(broadcast); // from now on only the queues hold the payload
    let slots = 100 * SLOT_BYTES;
    assert_eq!(
        budget.used(),
        1000 + slots,
        "one payload and a slot per queue"
    );
    let mut inboxes: Vec<_> = queues.into_iter().map(|(_, rx)| rx).collect();
    for rx in &inboxes {
        assert_eq!(
            rx.queued_bytes(),
            1000,
            "a queue's own bound counts the whole event"
        );
    }
    let last = inboxes.pop().unwrap();
    for rx in &mut inboxes {
        rx.recv_batch(usize::MAX).await.unwrap();
    }
    assert_eq!(
        budget.used(),
        1000 + SLOT_BYTES,
        "the payload stays charged while one queue still holds it"
    );
    drop(last);
    assert_eq!(budget.used(), 0);
}

#[test]
fn events_of_separate_broadcasts_are_charged_separately() {
    let budget = QueueBudget::new(1_000_000);
    let (tx, mut rx) = bounded(&limits(100, 10_000, &budget));
    for _ in 0..3 {
        tx.try_send_shared(shared(500), &mut Broadcast::default())
            .unwrap();
    }
    assert_eq!(budget.used(), 3 * (500 + SLOT_BYTES));
    rx.try_recv().unwrap();
    assert_eq!(budget.used(), 2 * (500 + SLOT_BYTES));
    while rx.try_recv().is_some() {}
    assert_eq!(budget.used(), 0);
}

#[test]
fn a_broadcast_pays_its_slots_ahead_and_gives_back_those_no_queue_took() {
    let budget = QueueBudget::new(1_000_000);
    let mut queues = queues(6, &budget);
    // Ten members expected, six reached (the others skipped, as a sender is, or refused).
    let mut broadcast = Broadcast::new(10);
    let event = shared(1000);
    for (tx, _) in &queues {
        tx.try_send_shared(event.clone(), &mut broadcast).unwrap();
    }
    assert_eq!(
        budget.used(),
        1000 + 10 * SLOT_BYTES,
        "the payload and ten slots, paid before the first queue took the event"
    );
    drop(broadcast);
    assert_eq!(
        budget.used(),
        1000 + 6 * SLOT_BYTES,
        "the four slots no queue took are given back"
    );

    // More queues than expected: the ones beyond the count pay their slots one by one.
    let mut broadcast = Broadcast::new(2);
    let event = shared(500);
    for (tx, _) in &queues {
        tx.try_send_shared(event.clone(), &mut broadcast).unwrap();
    }
    drop(broadcast);
    assert_eq!(
        budget.used(),
        1000 + 500 + 12 * SLOT_BYTES,
        "two payloads and a slot per queued event"
    );
    for (_, rx) in &mut queues {
        while rx.try_recv().is_some() {}
    }
    assert_eq!(budget.used(), 0, "everything given back once read");
}

#[test]
fn readers_done_before_their_broadcast_leave_the_payload_to_the_broadcast_to_give_back() {
    let budget = QueueBudget::new(1_000_000);
    let mut queues = queues(3, &budget);
    let event = shared(1000);
    let mut broadcast = Broadcast::new(3);
    for (tx, rx) in &mut queues {
        tx.try_send_shared(event.clone(), &mut broadcast).unwrap();
        rx.try_recv().unwrap(); // read at once, while the fan-out goes on
    }
    assert_eq!(
        budget.used(),
        1000,
        "every slot given back, the payload still charged: the fan-out is not done"
    );
    drop(broadcast);
    assert_eq!(budget.used(), 0, "the broadcast was the last to let it go");
}

#[test]
fn a_payload_handed_out_again_while_held_is_charged_once() {
    let budget = QueueBudget::new(1_000_000);
    let (a, mut a_rx) = bounded(&limits(100, 10_000, &budget));
    let (b, mut b_rx) = bounded(&limits(100, 10_000, &budget));
    let event = shared(1000);
    let mut first = Broadcast::new(1);
    a.try_send_shared(event.clone(), &mut first).unwrap();
    drop(first);
    let mut second = Broadcast::new(1);
    b.try_send_shared(event.clone(), &mut second).unwrap();
    drop(second);
    assert_eq!(
        budget.used(),
        1000 + 2 * SLOT_BYTES,
        "one payload, two slots"
    );
    a_rx.try_recv().unwrap();
    assert_eq!(budget.used(), 1000 + SLOT_BYTES, "still held by b's queue");
    b_rx.try_recv().unwrap();
    assert_eq!(budget.used(), 0);
}

#[test]
fn an_event_of_one_queue_alone_is_charged_in_full_even_in_a_broadcast() {
    let budget = QueueBudget::new(1_000_000);
    let (tx, mut rx) = bounded(&limits(100, 10_000, &budget));
    tx.try_send_shared(sized(500), &mut Broadcast::new(1))
        .unwrap();
    assert_eq!(
        budget.used(),
        500,
        "a plain notice counts no holders: all of it, here"
    );
    rx.try_recv().unwrap();
    assert_eq!(budget.used(), 0);
}

#[test]
fn a_broadcast_to_queues_on_two_budgets_charges_each_what_its_queues_hold() {
    // An HTTP session's queue and a TCP session's in one room: if their budgets differ, the
    // payload charged to one must not be given back to the other (the instance's budget crept
    // up by a payload now and then, and never came back to zero once every client had gone).
    for first in [0, 1] {
        let budgets = [QueueBudget::new(1_000_000), QueueBudget::new(1_000_000)];
        let mut queues: Vec<_> = budgets
            .iter()
            .map(|budget| bounded(&limits(100, 10_000, budget)))
            .collect();
        let event = shared(1000);
        let mut broadcast = Broadcast::new(2);
        for i in [first, 1 - first] {
            queues[i]
                .0
                .try_send_shared(event.clone(), &mut broadcast)
                .unwrap();
        }
        drop(broadcast);
        for budget in &budgets {
            assert!(
                budget.used() >= 1000,
                "each budget holds its queue's copy of the payload: {}",
                budget.used()
            );
        }
        // Read in either order: each budget comes back to zero.
        for i in [1 - first, first] {
            queues[i].1.try_recv().unwrap();
        }
        let used: Vec<usize> = budgets.iter().map(QueueBudget::used).collect();
        assert_eq!(used, [0, 0], "first queue {first}");
    }
}
