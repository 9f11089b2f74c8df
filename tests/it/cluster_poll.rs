//! Three chatd instances sharing rooms through one PostgreSQL (`backend = "poll"`, phase 2).
//!
//! Each test starts its own throwaway server (`support::postgres`) and three in-process
//! instances (`a`, `b`, `c`) of `pipelines/phase2-poll.toml`, each with its own stack, hub and
//! ephemeral ports: as separate as three processes, except for the address space. Set
//! `CHATD_SKIP_POSTGRES=1` to skip them on a machine without PostgreSQL. No test asserts how
//! fast anything happens, only what arrives, in which order, and how often.

use crate::support;
use std::time::Duration;

use crate::support::Client;
use crate::support::http::HttpClient;
use crate::support::postgres::TestPostgres;
use chatd::pipeline::{PipelineConfig, load};
use chatd::server::Server;

/// The shipped phase 2 pipeline, with `DATABASE_URL` set to `url`, on ephemeral ports, without
/// its rate limit (these tests send bursts to test ordering).
fn phase2(url: &str, instance: &str) -> PipelineConfig {
    let text = include_str!("../../pipelines/phase2-poll.toml");
    let mut config = load::parse("pipelines/phase2-poll.toml", text, &|name| {
        (name == "DATABASE_URL").then(|| url.to_string())
    })
    .expect("the phase 2 pipeline is valid");
    config.server.tcp = "127.0.0.1:0".parse().unwrap();
    config.server.http = "127.0.0.1:0".parse().unwrap();
    config.server.irc = None;
    config.server.instance = Some(instance.to_string());
    support::without_rate_limit(config)
}

/// A database and three instances on it.
struct Cluster {
    pg: TestPostgres,
    a: Server,
    b: Server,
    c: Server,
}

async fn cluster() -> Option<Cluster> {
    support::logs::capture();
    let pg = TestPostgres::start()?;
    let url = pg.url();
    let start = |name: &'static str| {
        let config = phase2(&url, name);
        async move { Server::start(&config).await.expect("instance starts") }
    };
    let (a, b, c) = (start("a").await, start("b").await, start("c").await);
    Some(Cluster { pg, a, b, c })
}

/// A plain connection to the test database, for what the tests do behind chatd's back.
async fn sql(pg: &TestPostgres) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    client
}

/// Takes the room's next `n` seqs from the shared counter, as an instance would, and returns
/// the first.
async fn take_seqs(db: &tokio_postgres::Client, room: &str, n: i64) -> i64 {
    let row = db
        .query_one(
            "UPDATE room_seq SET last_seq = last_seq + $2 WHERE room = $1 RETURNING last_seq",
            &[&room, &n],
        )
        .await
        .expect("the room has a counter");
    row.get::<_, i64>(0) - n + 1
}

/// Commits one message, as another instance's writer would.
async fn insert(db: &tokio_postgres::Client, room: &str, seq: i64, text: &str) {
    db.execute(
        "INSERT INTO messages (room, seq, nick, body, ts_ms) VALUES ($1, $2, 'zed', $3, 0)",
        &[&room, &seq, &text],
    )
    .await
    .expect("insert a message");
}

/// Reads `client`'s lines up to `expected`, which must come; every line before it must be a
/// notice (another member's join may arrive first).
async fn notice(client: &mut Client, expected: &str) {
    loop {
        let line = client.line().await;
        if line == expected {
            return;
        }
        assert!(
            line.starts_with("* "),
            "{line:?} while waiting for {expected:?}"
        );
    }
}

#[tokio::test]
async fn a_tcp_user_on_a_and_an_sse_user_on_c_chat_both_ways() {
    let Some(cl) = cluster().await else { return };
    let mut alice = Client::named(cl.a.tcp_addr(), "alice").await;
    alice.join("general").await;
    let carol = HttpClient::connect(cl.c.http_addr(), "carol").await;
    let mut stream = carol.stream("general", None).await;
    // Her join reaches a through the database too (a presence event, polled).
    alice.expect("* carol joined general").await;

    alice.send("hello from a").await;
    let event = stream.next_message().await;
    assert_eq!(event.data["text"], "hello from a");
    assert_eq!(event.data["nick"], "alice");
    assert_eq!(event.data["seq"], 1);

    assert_eq!(carol.say("general", "hello from c").await.status, 202);
    alice.expect("[general] carol: hello from c").await;
    let echo = stream.next_message().await;
    assert_eq!(
        echo.data["text"], "hello from c",
        "the browser sees its own"
    );
    assert_eq!(echo.data["seq"], 2, "one counter for both instances");

    // Each once: nothing else is waiting for alice, and the next thing carol sees is new.
    alice.sync().await;
    alice.send("again from a").await;
    assert_eq!(stream.next_message().await.data["text"], "again from a");
    alice.sync().await;

    // The shared directory (on with this pipeline): b lists the users of a and c.
    let mut bob = Client::named(cl.b.tcp_addr(), "bob").await;
    bob.send("/users general").await;
    bob.expect("* users in general (2): alice, carol").await;
}

#[tokio::test]
async fn a_join_on_a_is_announced_to_an_sse_user_on_c_and_a_tcp_user_on_b() {
    let Some(cl) = cluster().await else { return };
    let carol = HttpClient::connect(cl.c.http_addr(), "carol").await;
    let mut stream = carol.stream("lobby", None).await; // opening it joins the room
    let mut bob = Client::named(cl.b.tcp_addr(), "bob").await;
    bob.join("lobby").await;
    let mut alice = Client::named(cl.a.tcp_addr(), "alice").await;
    alice.join("lobby").await;

    // c: a `presence` event (bob's join, from b, may come first).
    loop {
        let event = stream.next().await;
        assert_eq!(event.event, "presence", "{event:?}");
        if event.data["nick"] == "alice" {
            assert_eq!(event.data["kind"], "joined");
            assert_eq!(event.data["room"], "lobby");
            assert_eq!(event.data["text"], "alice joined lobby");
            break;
        }
    }
    // b: the TCP notice.
    notice(&mut bob, "* alice joined lobby").await;

    // A leave travels the same way.
    alice.send("/leave lobby").await;
    notice(&mut bob, "* alice left lobby").await;
    loop {
        let event = stream.next().await;
        if event.data["nick"] == "alice" {
            assert_eq!(event.data["kind"], "left");
            break;
        }
    }

    // a does not read its own events back: alice never hears of her own join.
    tokio::time::sleep(Duration::from_millis(300)).await;
    alice.send("/rooms").await;
    loop {
        let line = alice.line().await;
        assert!(!line.contains("alice joined"), "{line:?}");
        if line.starts_with("* rooms:") || line.starts_with("* no rooms") {
            break;
        }
    }
}

#[tokio::test]
async fn a_late_joiner_on_any_instance_gets_the_same_last_10_in_order() {
    let Some(cl) = cluster().await else { return };
    let mut alice = Client::named(cl.a.tcp_addr(), "alice").await;
    alice.join("late").await;
    let carol = HttpClient::connect(cl.c.http_addr(), "carol").await;
    let mut live = carol.stream("late", None).await;
    alice
        .send_many((1..=15).map(|i| format!("message {i}")))
        .await;
    // Once c has seen all 15, all 15 are stored.
    for i in 1..=15 {
        assert_eq!(
            live.next_message().await.data["text"],
            format!("message {i}")
        );
    }
    let expected: Vec<String> = (6..=15)
        .map(|i| format!("[late] alice: message {i}"))
        .collect();
    notice(&mut alice, "* carol joined late").await;
    for server in [&cl.b, &cl.a, &cl.c] {
        // A nick per instance: nicks are unique across instances.
        let nick = format!("joiner-{}", server.hub().instance());
        let mut joiner = Client::named(server.tcp_addr(), &nick).await;
        assert_eq!(
            joiner.join("late").await,
            expected,
            "{}",
            server.hub().instance()
        );
        // Once a and c have shown this join, no notice of it can slip in between the next
        // joiner's entering the room and the reply to its `/join`.
        notice(&mut alice, &format!("* {nick} joined late")).await;
        while live.next().await.data["nick"] != nick.as_str() {}
    }
    // And over HTTP on b: the stream's replay is the same ten.
    let dave = HttpClient::connect(cl.b.http_addr(), "dave").await;
    let mut replay = dave.stream("late", None).await;
    for i in 6..=15 {
        assert_eq!(
            replay.next_message().await.data["text"],
            format!("message {i}")
        );
    }
}

#[tokio::test]
async fn out_of_order_commits_are_delivered_in_order_once_and_a_lost_seq_is_settled_with_a_tombstone()
 {
    let Some(cl) = cluster().await else { return };
    let db = sql(&cl.pg).await;
    let mut alice = Client::named(cl.a.tcp_addr(), "alice").await;
    alice.join("ooo").await;
    let mut bob = Client::named(cl.b.tcp_addr(), "bob").await;
    bob.join("ooo").await;
    alice.expect("* bob joined ooo").await;
    alice.send("first").await;
    bob.expect("[ooo] alice: first").await;

    // Two other writers take N+1 and N+2; N+2 commits first. The classic `id > last_seen`
    // poll would read N+2, move past it, and never read N+1.
    let n1 = take_seqs(&db, "ooo", 2).await;
    insert(&db, "ooo", n1 + 1, "second, committed first").await;
    // Several polls see N+2 alone and hold it: nothing reaches bob yet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    bob.sync().await;
    insert(&db, "ooo", n1, "first, committed second").await;
    bob.expect("[ooo] zed: first, committed second").await;
    bob.expect("[ooo] zed: second, committed first").await;
    alice.expect("[ooo] zed: first, committed second").await;
    alice.expect("[ooo] zed: second, committed first").await;
    // Exactly once: more polls go by and nothing comes again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    bob.sync().await;
    alice.sync().await;

    // A seq taken and never stored (its instance died): the one after it is held for
    // `gap_wait_ms`, then the instances settle the hole through the store: a tombstone takes the
    // seq's slot (the pipeline writes ahead, so nobody can have been shown a message that is
    // not stored), nobody is told of a loss because there is none, and chat goes on.
    let lost = take_seqs(&db, "ooo", 2).await;
    insert(&db, "ooo", lost + 1, "after a lost one").await;
    bob.expect("[ooo] zed: after a lost one").await;
    alice.expect("[ooo] zed: after a lost one").await;
    let skipped: bool = db
        .query_one(
            "SELECT skipped FROM messages WHERE room = 'ooo' AND seq = $1",
            &[&lost],
        )
        .await
        .expect("the lost seq's slot is taken by a tombstone")
        .get(0);
    assert!(skipped);
    assert_eq!(cl.b.hub().stats().gaps_skipped.get(), 0, "nothing was lost");
    assert_eq!(cl.a.hub().stats().gaps_skipped.get(), 0);
    // The dead instance's write, should it come after all, finds the slot taken.
    let late = db
        .execute(
            "INSERT INTO messages (room, seq, nick, body, ts_ms) VALUES ('ooo', $1, 'zed', \
             'too late', 0) ON CONFLICT (room, seq) DO NOTHING",
            &[&lost],
        )
        .await
        .unwrap();
    assert_eq!(late, 0);
    // And numbering goes on after it, from either instance.
    bob.send("still here").await;
    alice.expect("[ooo] bob: still here").await;
    let last: i64 = db
        .query_one("SELECT max(seq) FROM messages WHERE room = 'ooo'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(last, lost + 2);
}

#[tokio::test]
async fn two_instances_numbering_at_once_share_one_gap_free_sequence() {
    let Some(cl) = cluster().await else { return };
    let mut alice = Client::named(cl.a.tcp_addr(), "alice").await;
    alice.join("busy").await;
    let mut bob = Client::named(cl.b.tcp_addr(), "bob").await;
    bob.join("busy").await;
    alice.expect("* bob joined busy").await;
    let carol = HttpClient::connect(cl.c.http_addr(), "carol").await;
    let mut watcher = carol.stream("busy", None).await;
    alice.expect("* carol joined busy").await;
    bob.expect("* carol joined busy").await;
    // Both send 20 lines in one write each, at the same time.
    tokio::join!(
        alice.send_many((1..=20).map(|i| format!("a{i}"))),
        bob.send_many((1..=20).map(|i| format!("b{i}"))),
    );
    // c sees seqs 1..=40, each once, in order, with each sender's lines in the order sent.
    let mut seen = Vec::new();
    for seq in 1..=40 {
        let event = watcher.next_message().await;
        assert_eq!(event.data["seq"], seq);
        seen.push(event.data["text"].as_str().unwrap().to_string());
    }
    for who in ["a", "b"] {
        let mine: Vec<&String> = seen.iter().filter(|t| t.starts_with(who)).collect();
        let sent: Vec<String> = (1..=20).map(|i| format!("{who}{i}")).collect();
        assert_eq!(mine, sent.iter().collect::<Vec<_>>());
    }
    // alice (TCP: no echo of her own) sees bob's 20, in the same relative order as c.
    let from_bob: Vec<String> = seen
        .iter()
        .filter(|t| t.starts_with('b'))
        .map(|t| format!("[busy] bob: {t}"))
        .collect();
    assert_eq!(alice.lines(20).await, from_bob);
    alice.sync().await;
}

#[tokio::test]
async fn a_room_stored_before_the_shared_counter_continues_after_its_messages() {
    let Some(cl) = cluster().await else { return };
    let db = sql(&cl.pg).await;
    // Written by a phase 1 chatd on the same database: messages, but no counter row.
    db.batch_execute(
        "INSERT INTO rooms (name, created_ms) VALUES ('old', 0);
         INSERT INTO messages (room, seq, nick, body, ts_ms)
         SELECT 'old', s, 'zed', 'old ' || s, 0 FROM generate_series(1, 7) AS s;",
    )
    .await
    .expect("seed an old room");
    let mut alice = Client::named(cl.a.tcp_addr(), "alice").await;
    let history = alice.join("old").await;
    assert_eq!(history.last().map(String::as_str), Some("[old] zed: old 7"));
    let carol = HttpClient::connect(cl.c.http_addr(), "carol").await;
    let mut stream = carol.stream("old", None).await;
    for i in 1..=7 {
        assert_eq!(stream.next_message().await.data["seq"], i);
    }
    alice.send("new").await;
    let event = stream.next_message().await;
    assert_eq!(
        (event.data["seq"].as_u64(), event.data["text"].as_str()),
        (Some(8), Some("new"))
    );
}

#[tokio::test]
async fn a_room_evicted_and_reopened_under_traffic_loses_no_message() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let start = |name: &'static str| {
        let mut config = phase2(&pg.url(), name);
        support::scenarios::evict_after_a_second(&mut config);
        async move { Server::start(&config).await.expect("instance starts") }
    };
    let (a, b) = (start("a").await, start("b").await);
    support::scenarios::evicted_and_reopened_under_traffic_loses_nothing(&a, &b).await;
    a.shutdown().await;
    b.shutdown().await;
}
