//! Unit tests of the writer against a mock store: batching, retry with backoff, the full-queue
//! policy, the shutdown flush and the queue depth. (The real stores are tested end to end in `tests/it/persist_*`.)

use super::*;
use crate::backends::mock::Mock;
use crate::core::message::sample;

fn options(queue: usize, batch: usize) -> WriterOptions {
    WriterOptions {
        retry_base: Duration::from_millis(1),
        retry_max: Duration::from_millis(4),
        shutdown_grace: Duration::from_millis(50),
        ..WriterOptions::new(queue, batch)
    }
}

fn msg(seq: u64) -> Arc<ChatMessage> {
    sample("general", seq, "alice", "hi")
}

/// A store whose writes wait at the returned gate until it is given permits.
fn gated() -> (Arc<tokio::sync::Semaphore>, Arc<Mock>) {
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let mock = Arc::new(Mock {
        gate: Some(gate.clone()),
        ..Mock::default()
    });
    (gate, mock)
}

#[tokio::test]
async fn queued_messages_are_written_in_batches_and_flushed_at_stop() {
    let (gate, mock) = gated();
    let stats = Arc::new(Stats::default());
    let background = Background::default();
    let writer = Writer::spawn(mock.clone(), options(100, 4), stats.clone(), &background);
    for seq in 1..=10 {
        assert!(writer.enqueue(msg(seq)));
    }
    gate.add_permits(1000); // the store answers from now on
    background.finish().await;
    assert_eq!(mock.stored(), (1..=10).collect::<Vec<_>>());
    let batches = mock.batches.lock().unwrap().clone();
    assert!(batches.iter().all(|b| b.len() <= 4), "{batches:?}");
    assert!(
        batches.len() >= 3,
        "10 messages in batches of at most 4: {batches:?}"
    );
    assert_eq!(stats.persisted.get(), 10);
    assert_eq!(stats.persist_batches.get(), batches.len() as u64);
}

#[tokio::test]
async fn an_unavailable_store_is_retried_until_it_is_back() {
    let mock = Arc::new(Mock::default());
    mock.set_down(true);
    let stats = Arc::new(Stats::default());
    let background = Background::default();
    let writer = Writer::spawn(mock.clone(), options(100, 10), stats.clone(), &background);
    assert!(writer.enqueue(msg(1)));
    let patience = tokio::time::Instant::now() + Duration::from_secs(10);
    while mock.attempts.get() < 4 {
        assert!(tokio::time::Instant::now() < patience, "no retries");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (_, why) = writer.failing().expect("retrying, for `/readyz`");
    assert!(why.contains("down"), "{why}");
    mock.set_down(false);
    let pending = writer.write(msg(2)); // write-ahead waits for the store
    tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("written once the store is back")
        .expect("stored");
    assert_eq!(writer.failing(), None, "the store took it");
    assert!(stats.persist_retries.get() >= 3);
    background.finish().await;
    assert_eq!(mock.stored(), vec![1, 2]);
    assert_eq!(stats.persist_dropped.get(), 0);
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_in_write_behind() {
    let (gate, mock) = gated();
    let stats = Arc::new(Stats::default());
    let background = Background::default();
    let writer = Writer::spawn(mock.clone(), options(3, 1), stats.clone(), &background);
    let accepted = (1..=20).filter(|&seq| writer.enqueue(msg(seq))).count();
    // The writer may have taken one into its hand: at most queue + 1 accepted.
    assert!((3..=4).contains(&accepted), "accepted {accepted}");
    assert_eq!(stats.persist_dropped.get(), 20 - accepted as u64);
    gate.add_permits(1000);
    background.finish().await;
    assert_eq!(mock.stored().len(), accepted);
}

#[tokio::test]
async fn a_refused_row_does_not_lose_its_batch() {
    let mock = Arc::new(Mock::default());
    let stats = Arc::new(Stats::default());
    let background = Background::default();
    let writer = Writer::spawn(mock.clone(), options(10, 10), stats.clone(), &background);
    let bad = sample("general", 2, "alice", "bad");
    let (a, b, c) = tokio::join!(
        writer.write(msg(1)),
        writer.write(bad),
        writer.write(msg(3))
    );
    assert!(a.is_ok() && c.is_ok());
    assert!(matches!(b, Err(StoreError::Rejected(_))), "{b:?}");
    background.finish().await;
    assert_eq!(mock.stored(), vec![1, 3]);
    assert_eq!(stats.persist_rejected.get(), 1);
}

#[tokio::test]
async fn shutdown_gives_up_on_a_store_that_stays_down_and_says_so() {
    let mock = Arc::new(Mock::default());
    mock.set_down(true);
    let stats = Arc::new(Stats::default());
    let background = Background::default();
    let writer = Writer::spawn(mock.clone(), options(10, 10), stats.clone(), &background);
    writer.enqueue(msg(1));
    writer.enqueue(msg(2));
    tokio::time::timeout(Duration::from_secs(10), background.finish())
        .await
        .expect("shutdown ends after its grace period");
    assert_eq!(stats.persist_dropped.get(), 2);
    assert!(!writer.enqueue(msg(3)), "a stopped writer takes nothing");
}

#[tokio::test]
async fn the_queue_depth_counts_what_waits_and_a_stopped_writer_says_so() {
    let (gate, mock) = gated();
    let background = Background::default();
    let stats = Arc::new(Stats::default());
    let writer = Writer::spawn(mock.clone(), options(100, 1), stats, &background);
    assert_eq!(writer.queued(), 0);
    for seq in 1..=5 {
        writer.enqueue(msg(seq));
    }
    // The task takes the first message and waits at the gate: four wait behind it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while writer.queued() != 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "depth {}",
            writer.queued()
        );
        tokio::task::yield_now().await;
    }
    assert!(writer.is_running());
    gate.add_permits(1000);
    background.finish().await;
    assert_eq!(writer.queued(), 0);
    assert!(!writer.is_running(), "the task has ended");
}

#[tokio::test]
async fn a_write_ahead_sender_that_stops_waiting_takes_its_message_back() {
    let mock = Arc::new(Mock::default());
    mock.set_down(true);
    let stats = Arc::new(Stats::default());
    let background = Background::default();
    let options = WriterOptions {
        sync_timeout: Duration::from_secs(60),
        ..options(10, 10)
    };
    let writer = Writer::spawn(mock.clone(), options, stats.clone(), &background);
    // The sender gives up long before its timeout (an HTTP client that went away, say) while the
    // store is down and the writer keeps retrying.
    let sender = tokio::spawn({
        let writer = writer.clone();
        async move { writer.write(msg(1)).await }
    });
    while stats.persist_retries.get() < 2 {
        tokio::task::yield_now().await;
    }
    sender.abort();
    let _ = sender.await;
    mock.set_down(false);
    writer.enqueue(msg(2));
    background.finish().await;
    assert_eq!(
        mock.stored(),
        vec![2],
        "a request that failed stores nothing"
    );
}

#[tokio::test]
async fn a_write_ahead_sender_gets_a_timeout_and_its_message_is_never_stored() {
    let mock = Arc::new(Mock::default());
    mock.set_down(true);
    let stats = Arc::new(Stats::default());
    let background = Background::default();
    let options = WriterOptions {
        sync_timeout: Duration::from_millis(30),
        ..options(10, 10)
    };
    let writer = Writer::spawn(mock.clone(), options, stats.clone(), &background);
    let refused = tokio::time::timeout(Duration::from_secs(10), writer.write(msg(1)))
        .await
        .expect("answered after the timeout, not never");
    assert!(
        matches!(refused, Err(StoreError::Timeout(_))),
        "{refused:?}"
    );
    assert_eq!(stats.persist_timeouts.get(), 1);
    // The writer has nothing left to retry, so it cannot say the store takes no writes: a
    // `/readyz` held red until somebody writes would keep the writers away for ever.
    let patience = tokio::time::Instant::now() + Duration::from_secs(10);
    while writer.failing().is_some() {
        assert!(tokio::time::Instant::now() < patience, "still failing");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The store comes back: the message taken back stays out, the next one goes in.
    mock.set_down(false);
    writer
        .write(msg(2))
        .await
        .expect("stored once the store is back");
    background.finish().await;
    assert_eq!(mock.stored(), vec![2], "nothing its sender was told failed");
    assert_eq!(stats.persist_dropped.get(), 0, "a timeout is not a drop");
}

#[tokio::test]
async fn a_sender_whose_time_is_up_mid_attempt_gets_that_attempts_outcome() {
    let (gate, mock) = gated();
    let stats = Arc::new(Stats::default());
    let background = Background::default();
    let options = WriterOptions {
        sync_timeout: Duration::from_millis(20),
        ..options(10, 10)
    };
    let writer = Writer::spawn(mock.clone(), options, stats.clone(), &background);
    let pending = tokio::spawn({
        let writer = writer.clone();
        async move { writer.write(msg(1)).await }
    });
    // The attempt is held at the gate well past the sender's deadline, then commits (within the
    // default `attempt_grace` of 10 s).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !pending.is_finished(),
        "the sender waits for the attempt under way"
    );
    gate.add_permits(1000);
    let outcome = tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("answered once the attempt ends")
        .unwrap();
    assert!(
        outcome.is_ok(),
        "stored, so the sender is told so: {outcome:?}"
    );
    background.finish().await;
    assert_eq!(mock.stored(), vec![1]);
    assert_eq!(stats.persist_timeouts.get(), 0);
}

#[tokio::test]
async fn messages_queued_behind_a_stuck_batch_are_taken_back_in_time() {
    let mock = Arc::new(Mock::default());
    mock.set_down(true);
    let stats = Arc::new(Stats::default());
    let background = Background::default();
    let options = WriterOptions {
        sync_timeout: Duration::from_millis(50),
        ..options(10, 1)
    };
    let writer = Writer::spawn(mock.clone(), options, stats.clone(), &background);
    // Batches of one: the first is retried in the writer's hand, the others wait in the queue.
    let writes = (1..=3).map(|seq| writer.write(msg(seq)));
    let outcomes = tokio::time::timeout(
        Duration::from_secs(10),
        futures_util::future::join_all(writes),
    )
    .await
    .expect("answered after the timeout, not never");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Err(StoreError::Timeout(_)))),
        "{outcomes:?}"
    );
    mock.set_down(false);
    writer.enqueue(msg(4));
    background.finish().await;
    assert_eq!(mock.stored(), vec![4]);
    assert_eq!(stats.persist_timeouts.get(), 3);
}

#[tokio::test]
async fn a_hung_attempt_holds_the_sender_no_longer_than_its_grace() {
    let (gate, mock) = gated();
    let stats = Arc::new(Stats::default());
    let background = Background::default();
    let options = WriterOptions {
        sync_timeout: Duration::from_millis(20),
        attempt_grace: Duration::from_millis(20),
        ..options(10, 10)
    };
    let writer = Writer::spawn(mock.clone(), options, stats.clone(), &background);
    // The store never answers while the sender waits.
    let refused = tokio::time::timeout(Duration::from_secs(10), writer.write(msg(1)))
        .await
        .expect("answered, though the attempt hangs");
    assert!(
        matches!(refused, Err(StoreError::Timeout(_))),
        "{refused:?}"
    );
    // The documented uncertain case: the hung attempt commits after all.
    gate.add_permits(1000);
    background.finish().await;
    assert_eq!(mock.stored(), vec![1]);
    assert_eq!(stats.persist_timeouts.get(), 1);
}
