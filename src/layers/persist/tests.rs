//! Unit tests of the persist layer over a mock store (`backends::mock`): what it stores, in which
//! order relative to the layer inside it, and how it answers reads and `OpenRoom`.

use std::sync::Mutex;

use tower::{ServiceExt, service_fn};

use super::*;
use crate::backends::mock::Mock;
use crate::core::message::sample;
use crate::core::{ChatMessage, HistoryQuery, Nick, OpenRoom, RoomName, SessionId};

/// What the layer inside saw: for each `Publish`, whether the store already had the message.
type Seen = Arc<Mutex<Vec<(u64, bool)>>>;

/// A persist layer over `mock`, wrapped around an inner service that records into `seen`.
fn stack(
    mock: &Arc<Mock>,
    durability: Durability,
    background: &Background,
) -> (Persist<crate::core::ChatService>, Seen) {
    stack_with(mock, durability, background, WriterOptions::new(100, 10))
}

/// [`stack`] with the writer's options given.
fn stack_with(
    mock: &Arc<Mock>,
    durability: Durability,
    background: &Background,
    options: WriterOptions,
) -> (Persist<crate::core::ChatService>, Seen) {
    let hub = Hub::new("test");
    let writer = Writer::spawn(mock.clone(), options, hub.stats_handle(), background);
    let seen: Seen = Arc::default();
    let (inner_mock, inner_seen) = (mock.clone(), seen.clone());
    let inner = service_fn(move |req: Request| {
        if let Action::Publish(msg) = &req.action {
            let stored = inner_mock.stored().contains(&msg.seq);
            inner_seen.lock().unwrap().push((msg.seq, stored));
        }
        std::future::ready(Ok::<Reply, BoxError>(Reply::default()))
    });
    let layer = PersistLayer::with_store(mock.clone(), writer, durability, &hub);
    (layer.layer(crate::core::ChatService::new(inner)), seen)
}

fn local(seq: u64) -> Arc<ChatMessage> {
    Arc::new(ChatMessage::new(
        RoomName::parse("general").unwrap(),
        seq,
        Nick::parse("alice").unwrap(),
        format!("message {seq}"),
        Origin::Local(SessionId(1)),
    ))
}

async fn publish(svc: &mut Persist<crate::core::ChatService>, msg: Arc<ChatMessage>) {
    svc.ready()
        .await
        .unwrap()
        .call(Request::anonymous(Action::Publish(msg)))
        .await
        .unwrap();
}

#[tokio::test]
async fn write_ahead_stores_before_the_inner_layer_sees_the_message() {
    let mock = Arc::new(Mock::default());
    let background = Background::default();
    let (mut svc, seen) = stack(&mock, Durability::Sync, &background);
    for seq in 1..=3 {
        publish(&mut svc, local(seq)).await;
    }
    assert_eq!(*seen.lock().unwrap(), vec![(1, true), (2, true), (3, true)]);
    background.finish().await;
}

#[tokio::test]
async fn write_behind_stores_local_messages_and_never_remote_ones() {
    let mock = Arc::new(Mock::default());
    let background = Background::default();
    let (mut svc, seen) = stack(&mock, Durability::Async, &background);
    publish(&mut svc, local(1)).await;
    publish(
        &mut svc,
        sample("general", 2, "bob", "from another instance"),
    )
    .await;
    publish(&mut svc, local(3)).await;
    assert_eq!(
        seen.lock().unwrap().len(),
        3,
        "every message goes on inward"
    );
    background.finish().await; // flushes the queue
    assert_eq!(mock.stored(), vec![1, 3]);
}

#[tokio::test]
async fn open_room_and_history_are_answered_from_the_store() {
    let mock = Arc::new(Mock::default());
    let background = Background::default();
    let (mut svc, _) = stack(&mock, Durability::Sync, &background);
    for seq in 1..=30 {
        publish(&mut svc, local(seq)).await;
    }
    let room = RoomName::parse("general").unwrap();
    let open = Arc::new(OpenRoom::new(room.clone(), 10));
    let req = Request::anonymous(Action::OpenRoom(open.clone()));
    svc.ready().await.unwrap().call(req).await.unwrap();
    let stored = open.stored().expect("answered");
    let seqs: Vec<u64> = stored.newest.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (21..=30).collect::<Vec<_>>());
    assert!(stored.newest.more, "older rows exist");

    let query = HistoryQuery {
        room,
        upto: 25,
        after: 0,
        limit: 5,
    };
    let req = Request::anonymous(Action::History(query));
    let reply = svc.ready().await.unwrap().call(req).await.unwrap();
    let Outcome::Stored(page) = reply.outcome else {
        panic!("no history in {reply:?}")
    };
    let seqs: Vec<u64> = page.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![21, 22, 23, 24, 25]);
    background.finish().await;
}

/// Found by the checker (`scripts/chaos.sh`, phase 3, write-ahead, seed 55): a joiner on an
/// instance whose memory did not reach back was shown 9 of the room's last 10 messages, because
/// the store's newest 10 rows included a tombstone. The read reaches back until it has the
/// messages, however many tombstones are among the newest rows.
#[tokio::test]
async fn a_history_read_reaches_past_tombstones_for_its_messages() {
    let mock = Arc::new(Mock::default());
    let background = Background::default();
    let (mut svc, _) = stack(&mock, Durability::Sync, &background);
    let room = RoomName::parse("general").unwrap();
    let tombstones = [12, 14, 15, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 28];
    for seq in 1..=30 {
        if tombstones.contains(&seq) {
            mock.skipped.lock().unwrap().push((room.clone(), seq));
        } else {
            publish(&mut svc, local(seq)).await;
        }
    }
    let query = HistoryQuery {
        room,
        upto: 30,
        after: 0,
        limit: 10,
    };
    let req = Request::anonymous(Action::History(query.clone()));
    let reply = svc.ready().await.unwrap().call(req).await.unwrap();
    let Outcome::Stored(page) = reply.outcome else {
        panic!("no history in {reply:?}")
    };
    let answer = query.answer(Vec::new(), page);
    let seqs: Vec<u64> = answer.messages.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![7, 8, 9, 10, 11, 13, 16, 27, 29, 30]);
    assert!(answer.missing.is_empty(), "{:?}", answer.missing);
    background.finish().await;
}

#[tokio::test]
async fn an_unavailable_store_refuses_to_open_a_room() {
    let mock = Arc::new(Mock::default());
    mock.set_down(true);
    let background = Background::default();
    let (mut svc, _) = stack(&mock, Durability::Async, &background);
    let open = Arc::new(OpenRoom::new(RoomName::parse("general").unwrap(), 10));
    let req = Request::anonymous(Action::OpenRoom(open.clone()));
    let err = svc.ready().await.unwrap().call(req).await.unwrap_err();
    let err = ChatError::from_box(&err);
    assert_eq!(err.kind, crate::core::ErrorKind::Unavailable);
    assert!(
        err.message
            .starts_with("cannot load the history of general, try again"),
        "{err:?}"
    );
    assert!(
        open.stored().is_none(),
        "the room stays unopened: the next use tries again"
    );
    mock.set_down(false);
    background.finish().await;
}

#[tokio::test]
async fn write_ahead_refuses_a_message_the_store_does_not_take_in_time() {
    let mock = Arc::new(Mock::default());
    mock.set_down(true);
    let background = Background::default();
    let options = WriterOptions {
        retry_base: std::time::Duration::from_millis(5),
        retry_max: std::time::Duration::from_millis(5), // back at once when the store is
        sync_timeout: std::time::Duration::from_millis(500),
        ..WriterOptions::new(100, 10)
    };
    let (mut svc, seen) = stack_with(&mock, Durability::Sync, &background, options);
    let req = Request::anonymous(Action::Publish(local(1)));
    let err = svc.ready().await.unwrap().call(req).await.unwrap_err();
    let err = ChatError::from_box(&err);
    assert_eq!(err.kind, crate::core::ErrorKind::Unavailable);
    assert_eq!(
        err.message,
        "could not store your message (the database is not answering), try again"
    );
    assert!(seen.lock().unwrap().is_empty(), "nobody inside saw it");
    mock.set_down(false);
    publish(&mut svc, local(2)).await;
    assert_eq!(*seen.lock().unwrap(), vec![(2, true)]);
    background.finish().await;
    assert_eq!(mock.stored(), vec![2]);
}

#[tokio::test]
async fn a_room_opened_while_its_last_messages_wait_in_the_queue_opens_with_them() {
    // The store takes nothing until the gate opens: every row stays in the write queue, as for a
    // room evicted from memory right after its last messages.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let mock = Arc::new(Mock {
        gate: Some(gate.clone()),
        ..Mock::default()
    });
    let background = Background::default();
    let (mut svc, _) = stack(&mock, Durability::Async, &background);
    for seq in 1..=5 {
        publish(&mut svc, local(seq)).await;
    }
    let open = Arc::new(OpenRoom::new(RoomName::parse("general").unwrap(), 3));
    let req = Request::anonymous(Action::OpenRoom(open.clone()));
    svc.ready().await.unwrap().call(req).await.unwrap();
    let stored = open.stored().expect("answered");
    let seqs: Vec<u64> = stored.newest.messages.iter().map(|m| m.seq).collect();
    assert_eq!(
        seqs,
        vec![3, 4, 5],
        "the newest rows of the window, from the queue"
    );
    assert!(stored.newest.more, "older rows exist");
    assert!(mock.stored().is_empty(), "none of them was stored yet");
    gate.add_permits(1000);
    background.finish().await;
    assert_eq!(mock.stored(), vec![1, 2, 3, 4, 5]);
}
