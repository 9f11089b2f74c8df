//! Writes that fail: a disk that takes no more data (the SQLite file, and a log file on the same
//! disk), and a log stream nobody reads any more. One real `chatd` process, phase 1, several
//! senders at once and a reader that sees everything.
//!
//! A full disk is made with the process's file-size limit (`RLIMIT_FSIZE`) set to 0 while it
//! runs ([`Chatd::limit_file_size`]): from then on every write(2) it makes to a regular file
//! fails, exactly what SQLite and the log see on a full disk, and nothing else on this machine
//! is touched. Lifting the limit is the disk getting space back.

use chatd::pipeline::config::Durability;

use super::crowd::{
    ROOM, acked, assert_once_in_order, end, endpoint, pipeline, room, round, stop_cleanly,
    until_each_gets_through,
};
use super::{REFUSED, stored_texts};
use crate::support::binary::{Chatd, Stderr};
use crate::support::http::{metric, until_green, until_red};
use crate::support::line_conn::LineConn;
use crate::support::record::Outcome;
use crate::support::{data_dir, sqlite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_nobody_reads_costs_no_request_and_no_message() {
    // Every request logs at `debug`; the pipe the log goes to is closed once chatd is up, so
    // every one of those writes fails (EPIPE), as when a log collector goes away.
    let data = data_dir();
    std::fs::create_dir_all(&data).unwrap();
    let file = pipeline(&data, "phase1-single.toml", &[]);
    let env = [("RUST_LOG", "debug")];
    let chatd = Chatd::start_logging(
        &["--pipeline", &file],
        &data,
        &env,
        Stderr::ClosedAfterBanner,
    );
    let at = endpoint(&chatd);
    let (mut conns, reading) = room(&at, 4).await;
    let said = round(&mut conns, "before", 1..=25).await;
    let acked = acked(&said);
    assert_eq!(acked.len(), said.len(), "nothing refused: {said:?}");
    let seen = end(&mut conns[0], reading).await;
    assert_once_in_order(&seen, &acked);

    // A clean stop still writes everything (the stop notice on stderr fails too).
    stop_cleanly(chatd).await;
    let store = sqlite(&data.join("chatd.db"), Durability::Async);
    let mut all = seen;
    all.push("end".to_string());
    assert_eq!(stored_texts(&store, ROOM).await, all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_write_ahead_messages_and_chat_resumes_when_space_returns() {
    let data = data_dir();
    std::fs::create_dir_all(&data).unwrap();
    let file = pipeline(
        &data,
        "phase1-sync.toml",
        &[("sync_timeout_ms = 5000", "sync_timeout_ms = 1000")],
    );
    // The log is on the same disk as the database.
    let log = data.join("chatd.log");
    let chatd = Chatd::start_logging(
        &["--pipeline", &file],
        &data,
        &[],
        Stderr::File(log.clone()),
    );
    let at = endpoint(&chatd);
    let (mut conns, reading) = room(&at, 4).await;
    // Before the disk fills, and after it has space again, a commit slower than the timeout (a
    // machine busy with other tests) may still refuse a message, in words: `acked` checks them.
    let mut acked = self::acked(&round(&mut conns, "before", 1..=5).await);

    // The disk is full: nothing can be committed, so every message is refused, in words, and
    // delivered to nobody. Reading goes on: a newcomer joins and gets the room's last messages.
    chatd.limit_file_size(Some(0));
    let during = round(&mut conns, "during", 1..=3).await;
    assert_eq!(self::acked(&during), Vec::<String>::new());
    assert!(
        during.iter().all(|(_, outcome)| match outcome {
            Outcome::Refused(why) => why.starts_with("! ") && why.ends_with("try again"),
            _ => false,
        }),
        "{during:?}"
    );
    let (_, history) = LineConn::join(&at, "newcomer", ROOM).await.expect("a join");
    assert_eq!(history.len(), acked.len().min(10), "{history:?}");

    // The seq of each refused message is written behind as empty (a tombstone), and the
    // writer retries those: `/readyz` names the write SQLite does not take.
    let red = until_red(at.http, &["store"]).await;
    let why = red["checks"]["store"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("the store has taken no write for "),
        "{red}"
    );

    // Space comes back: the tombstones are written and `/readyz` is green before anybody
    // writes again (a load balancer that waits for green before it sends users would
    // otherwise wait for ever). Every sender gets through again (its first try may still meet
    // the writer's back-off) and nothing refused turns up later.
    chatd.limit_file_size(None);
    until_green(at.http).await;
    let refused = |text: &str, why: &str| assert_eq!(why, REFUSED, "{text}");
    acked.extend(until_each_gets_through(&mut conns, refused).await);
    let after = round(&mut conns, "after", 2..=5).await;
    acked.extend(self::acked(&after));
    let seen = end(&mut conns[0], reading).await;
    assert_once_in_order(&seen, &acked);

    // Write-ahead: the file holds exactly what was seen, and the log goes on after the outage.
    stop_cleanly(chatd).await;
    let mut all = seen;
    all.push("end".to_string());
    let store = sqlite(&data.join("chatd.db"), Durability::Sync);
    assert_eq!(stored_texts(&store, ROOM).await, all);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("chatd: shutting down"), "{logged}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_write_behind_keeps_what_its_queue_holds_and_counts_the_rest() {
    let data = data_dir();
    std::fs::create_dir_all(&data).unwrap();
    let queue = 50;
    let file = pipeline(
        &data,
        "phase1-single.toml",
        &[("queue = 10000", &format!("queue = {queue}"))],
    );
    let log = data.join("chatd.log");
    let chatd = Chatd::start_logging(&["--pipeline", &file], &data, &[], Stderr::File(log));
    let at = endpoint(&chatd);
    let store = sqlite(&data.join("chatd.db"), Durability::Async);
    let (mut conns, reading) = room(&at, 4).await;
    let mut acked = self::acked(&round(&mut conns, "before", 1..=5).await);
    let db = crate::support::scenarios::open_store(&store).await;
    crate::support::scenarios::until_stored(&*db, ROOM, acked.len()).await;

    // The disk is full. Write-behind chat goes on (everything is acknowledged and delivered);
    // the queue holds what it can, and what it cannot hold is dropped and counted.
    chatd.limit_file_size(Some(0));
    let during = self::acked(&round(&mut conns, "during", 1..=25).await);
    assert_eq!(during.len(), 100, "write-behind refuses nothing");
    acked.extend(during);
    let dropped = metric(at.http, "chatd_persist_dropped_total").await as usize;
    assert!((1..=100 - queue).contains(&dropped), "dropped {dropped}");
    // SQLite still answers reads, but `/readyz` says it takes no writes.
    let red = until_red(at.http, &["store"]).await;
    let why = red["checks"]["store"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("the store has taken no write for "),
        "{red}"
    );

    // Space comes back: the queue is written (the queue stays full, and drops, until the
    // writer's next try after its back-off), and chat is stored again.
    chatd.limit_file_size(None);
    crate::support::scenarios::until_stored(&*db, ROOM, acked.len() - dropped).await;
    until_green(at.http).await;
    acked.extend(self::acked(&round(&mut conns, "after", 1..=5).await));
    let counted = metric(at.http, "chatd_persist_dropped_total").await as usize;
    assert_eq!(counted, dropped, "dropped after the disk had space again");
    let seen = end(&mut conns[0], reading).await;
    assert_once_in_order(&seen, &acked);
    let stored =
        crate::support::scenarios::until_stored(&*db, ROOM, seen.len() + 1 - dropped).await;
    let stored: Vec<String> = stored.iter().map(|m| m.text.clone()).collect();

    // What is missing is exactly the count, all of it from the outage, and the rest is in the
    // order it was seen.
    stop_cleanly(chatd).await;
    assert_eq!(
        stored_texts(&store, ROOM).await,
        stored,
        "nothing more at the stop"
    );
    assert_eq!(stored.len(), seen.len() + 1 - dropped);
    let mut rest = stored.iter();
    let mut missing = Vec::new();
    let mut next = rest.next();
    for text in seen.iter().chain(["end".to_string()].iter()) {
        if next == Some(text) {
            next = rest.next();
        } else {
            missing.push(text.clone());
        }
    }
    assert_eq!(next, None, "stored in the order seen: {stored:?}");
    assert_eq!(missing.len(), dropped, "{missing:?}");
    assert!(
        missing.iter().all(|t| t.starts_with("during ")),
        "{missing:?}"
    );
}
