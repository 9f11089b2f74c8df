//! A crowd in one room of a real `chatd` process: several line-protocol senders talking at
//! once, each message's outcome recorded, and a reader that sees everything. The fault tests
//! that break what one process writes to (`disk.rs`, `read_only.rs`) share it: they break it
//! mid-round and check the outcomes against what the reader saw and what was stored.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use futures_util::future::join_all;

use crate::support::binary::Chatd;
use crate::support::line_conn::{LineConn, chat_text};
use crate::support::record::Outcome;
use crate::support::senders::Endpoint;
use crate::support::{PATIENCE, drop_layer};

/// The room every test of these files talks in.
pub(super) const ROOM: &str = "crowd";

/// How long the reader waits for a line: past any outage a test holds.
const READER_PATIENCE: Duration = Duration::from_secs(120);

/// `pipelines/NAME` without its rate limit (the senders are fast), with `replace`'s pairs
/// replaced, written to `dir`; the path.
pub(super) fn pipeline(dir: &Path, name: &str, replace: &[(&str, &str)]) -> String {
    let text = std::fs::read_to_string(format!("pipelines/{name}")).expect("a shipped pipeline");
    let mut text = drop_layer(&text, "rate_limit");
    for (from, to) in replace {
        assert!(text.contains(from), "{name} has no {from:?}");
        text = text.replace(from, to);
    }
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the pipeline");
    path.display().to_string()
}

pub(super) fn endpoint(chatd: &Chatd) -> Endpoint {
    Endpoint {
        name: "a".to_string(),
        tcp: chatd.tcp,
        http: chatd.http,
    }
}

/// Connections that joined [`ROOM`]: `senders` of them, and a reader that collects every chat
/// text until it sees `end`.
pub(super) async fn room(
    at: &Endpoint,
    senders: usize,
) -> (Vec<LineConn>, tokio::task::JoinHandle<Vec<String>>) {
    let mut reader = LineConn::joined(at, "reader", ROOM).await.expect("reader");
    let reading = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(line) = reader.line_within(READER_PATIENCE).await {
            match chat_text(&line, ROOM) {
                Some(text) if text == "end" => break,
                Some(text) => seen.push(text),
                None => {}
            }
        }
        seen
    });
    let mut conns = Vec::new();
    for i in 0..senders {
        let conn = LineConn::joined(at, &format!("s{i}"), ROOM).await;
        conns.push(conn.expect("a sender joins"));
    }
    (conns, reading)
}

/// Every sender says the messages `LABEL sI K` for each K of `ks`, one after the other, all
/// senders at once; each message's outcome.
pub(super) async fn round(
    conns: &mut [LineConn],
    label: &str,
    ks: std::ops::RangeInclusive<usize>,
) -> Vec<(String, Outcome)> {
    let rounds = conns.iter_mut().enumerate().map(|(i, conn)| {
        let ks = ks.clone();
        async move {
            let mut said = Vec::new();
            for k in ks {
                let text = format!("{label} s{i} {k}");
                let outcome = conn.say(&text).await;
                said.push((text, outcome));
            }
            said
        }
    });
    join_all(rounds).await.into_iter().flatten().collect()
}

/// The texts of `said` that were acknowledged; asserts that every other one was refused in
/// words that say to try again (never a server error, never no answer).
pub(super) fn acked(said: &[(String, Outcome)]) -> Vec<String> {
    let mut acked = Vec::new();
    for (text, outcome) in said {
        match outcome {
            Outcome::Acked(_) => acked.push(text.clone()),
            Outcome::Refused(why) => assert!(why.ends_with("try again"), "{text}: {why}"),
            Outcome::Unknown => panic!("{text}: no answer"),
        }
    }
    acked
}

/// Says `end`, which the reader stops at, and hands back what it saw.
pub(super) async fn end(
    conn: &mut LineConn,
    reading: tokio::task::JoinHandle<Vec<String>>,
) -> Vec<String> {
    assert!(matches!(conn.say("end").await, Outcome::Acked(_)));
    reading.await.expect("the reader")
}

/// Each message in `seen` once, and each sender's in the order it said them: `seen` is a
/// permutation of `acked` that keeps every sender's order.
pub(super) fn assert_once_in_order(seen: &[String], acked: &[String]) {
    let mut expected = acked.to_vec();
    let mut got = seen.to_vec();
    expected.sort();
    got.sort();
    assert_eq!(
        got, expected,
        "seen once each: exactly what was acknowledged"
    );
    let mut last: HashMap<String, usize> = HashMap::new();
    for text in seen {
        // `LABEL sI K`: per sender, (label order, K) never goes back.
        let mut words = text.split(' ');
        let (label, sender, k) = (words.next(), words.next(), words.next());
        let order = ["before", "during", "after"];
        let rank = order
            .iter()
            .position(|l| Some(*l) == label)
            .expect("a label");
        let n = rank * 1000 + k.and_then(|k| k.parse::<usize>().ok()).expect("a number");
        let previous = last.insert(sender.expect("a sender").to_string(), n);
        assert!(
            previous < Some(n),
            "{text} after a later message of its sender"
        );
    }
}

/// After an outage: every sender says `after sI 1` until it is acknowledged (its first tries may
/// still meet the writer's back-off), with each refusal checked by `refused` (text, why);
/// the texts.
pub(super) async fn until_each_gets_through(
    conns: &mut [LineConn],
    refused: impl Fn(&str, &str),
) -> Vec<String> {
    let mut through = Vec::new();
    for (i, conn) in conns.iter_mut().enumerate() {
        let text = format!("after s{i} 1");
        let deadline = tokio::time::Instant::now() + PATIENCE * 3;
        loop {
            match conn.say(&text).await {
                Outcome::Acked(_) => break,
                Outcome::Refused(why) => refused(&text, &why),
                Outcome::Unknown => panic!("{text}: no answer"),
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{text} still refused"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        through.push(text);
    }
    through
}

/// Stops `chatd` with SIGTERM and asserts that it exits 0.
pub(super) async fn stop_cleanly(chatd: Chatd) {
    let status = chatd.stop(PATIENCE * 3).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}
