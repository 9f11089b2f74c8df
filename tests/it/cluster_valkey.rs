//! Three instances sharing rooms through Valkey pub/sub (phase 3), in one test process: three
//! `Server`s with their own stacks and ports, one throwaway PostgreSQL and one throwaway Valkey.
//!
//! Set `CHATD_SKIP_VALKEY=1` (or `CHATD_SKIP_POSTGRES=1`) to skip these tests on a machine
//! without those servers. Every wait has a generous timeout; no test asserts how fast.

use crate::support;
use crate::support::http::HttpClient;
use crate::support::postgres::TestPostgres;
use crate::support::valkey::TestValkey;
use crate::support::{Client, start_with};
use chatd::pipeline::PipelineConfig;
use chatd::pipeline::config::Durability;
use chatd::server::Server;

/// Three instances, `a`, `b` and `c`, and the servers they share.
struct Cluster {
    servers: Vec<Server>,
    valkey: TestValkey,
    _pg: TestPostgres,
}

/// The valkey pipeline for `instance`, over the shared PostgreSQL and Valkey.
fn config(instance: &str, pg: &str, valkey: &str, durability: Durability) -> PipelineConfig {
    let mut config = support::valkey::pipeline(pg, valkey, durability);
    config.server.instance = Some(instance.into());
    config
}

async fn cluster(durability: Durability) -> Option<Cluster> {
    let valkey = TestValkey::start()?;
    let pg = TestPostgres::start()?;
    let mut servers = Vec::new();
    for instance in ["a", "b", "c"] {
        servers.push(start_with(config(instance, &pg.url(), &valkey.url(), durability)).await);
    }
    Some(Cluster {
        servers,
        valkey,
        _pg: pg,
    })
}

impl Cluster {
    /// On every instance, in `general`: a TCP reader `read_X` and an HTTP sender `say_X`.
    async fn readers_and_senders(&self) -> (Vec<Client>, Vec<HttpClient>) {
        let mut readers = Vec::new();
        let mut senders = Vec::new();
        for (server, name) in self.servers.iter().zip(["a", "b", "c"]) {
            let mut reader = Client::named(server.tcp_addr(), &format!("read_{name}")).await;
            reader.join("general").await;
            readers.push(reader);
            let sender = HttpClient::connect(server.http_addr(), &format!("say_{name}")).await;
            assert_eq!(sender.command("/join general").await.status, 200);
            senders.push(sender);
        }
        (readers, senders)
    }

    async fn shutdown(self) {
        for server in self.servers {
            server.shutdown().await;
        }
    }
}

/// The next `n` chat lines a TCP client gets, skipping notices (`* bob joined general`).
async fn chat_lines(client: &mut Client, n: usize) -> Vec<String> {
    let mut lines = Vec::with_capacity(n);
    while lines.len() < n {
        let line = client.line().await;
        if !line.starts_with("* ") {
            lines.push(line);
        }
    }
    lines
}

/// A room's whole history as `/history 100` shows it on `client`'s instance.
async fn history(client: &mut Client, expected: usize) -> Vec<String> {
    client.send("/history 100").await;
    loop {
        let line = client.line().await;
        if let Some(rest) = line.strip_prefix("* the last ") {
            let count: usize = rest
                .split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("a count");
            let lines = client.lines(count).await;
            assert_eq!(
                count, expected,
                "how many messages the instance has: {lines:#?}"
            );
            return lines;
        }
        assert!(line.starts_with("* "), "unexpected line {line:?}");
    }
}

#[tokio::test]
async fn a_tcp_user_on_a_and_an_sse_user_on_c_chat_and_a_late_joiner_on_b_sees_the_same_last_10() {
    let Some(cluster) = cluster(Durability::Sync).await else {
        return;
    };
    let (a, b, c) = (
        &cluster.servers[0],
        &cluster.servers[1],
        &cluster.servers[2],
    );
    let bob = HttpClient::connect(c.http_addr(), "bob").await;
    let mut stream = bob.stream("general", None).await; // opening it joins the room
    let mut alice = Client::named(a.tcp_addr(), "alice").await;
    assert!(alice.join("general").await.is_empty());

    // The shared directory (on with this pipeline): b lists the users of a and c.
    let mut eve = Client::named(b.tcp_addr(), "eve").await;
    eve.send("/users general").await;
    eve.expect("* users in general (2): alice, bob").await;

    // Both ways, alternating, each line waiting for the other side to see the previous one.
    let mut said = Vec::new();
    for i in 1..=16 {
        if i % 2 == 1 {
            alice.send(&format!("from a {i}")).await;
            let event = stream.next_message().await;
            assert_eq!(event.data["text"], format!("from a {i}"));
            assert_eq!(event.data["nick"], "alice");
            said.push(format!("[general] alice: from a {i}"));
        } else {
            assert_eq!(bob.say("general", &format!("from c {i}")).await.status, 202);
            assert_eq!(
                stream.next_message().await.data["text"],
                format!("from c {i}"),
                "an HTTP sender sees its own message"
            );
            let got = chat_lines(&mut alice, 1).await;
            assert_eq!(got, [format!("[general] bob: from c {i}")]);
            said.push(got[0].clone());
        }
    }
    let last_10 = said[said.len() - 10..].to_vec();

    // Late joiners on b, and on a for comparison, get the same last 10 in the same order.
    let mut carol = Client::named(b.tcp_addr(), "carol").await;
    assert_eq!(carol.join("general").await, last_10);
    let mut dave = Client::named(a.tcp_addr(), "dave").await;
    assert_eq!(dave.join("general").await, last_10);

    // Joins on other instances are announced too (a remote presence change).
    let mut notices = alice.lines(2).await;
    notices.sort();
    assert_eq!(
        notices,
        ["* carol joined general", "* dave joined general"],
        "carol's join came from b through Valkey, dave's from a itself"
    );

    // And carol on b is live too: a and c both hear her.
    carol.send("hello from b").await;
    assert_eq!(stream.next_message().await.data["text"], "hello from b");
    assert_eq!(
        chat_lines(&mut alice, 1).await,
        ["[general] carol: hello from b"]
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn valkey_restarted_mid_conversation_loses_no_message_on_any_instance() {
    let Some(mut cluster) = cluster(Durability::Sync).await else {
        return;
    };
    // A reader (TCP) and a sender (HTTP) on every instance.
    let (mut readers, senders) = cluster.readers_and_senders().await;
    let mut expected = Vec::new();
    let round = |label: &str, expected: &mut Vec<String>| {
        let texts: Vec<(usize, String)> = (0..3).map(|i| (i, format!("{label} {i}"))).collect();
        for (i, text) in &texts {
            expected.push(format!("[general] say_{}: {text}", ["a", "b", "c"][*i]));
        }
        texts
    };

    // Before: every instance hears every other.
    let before = round("before", &mut expected);
    for (i, text) in &before {
        assert_eq!(senders[*i].say("general", text).await.status, 202);
        for reader in &mut readers {
            assert_eq!(
                chat_lines(reader, 1).await,
                [expected[expected.len() - 3 + i].clone()]
            );
        }
    }

    // Valkey dies mid-conversation: chat goes on between the instances, through PostgreSQL.
    // Then it comes back empty (no subscriptions), and the instances re-subscribe.
    cluster.valkey.stop();
    let during = round("while valkey is down", &mut expected);
    for (i, text) in &during {
        assert_eq!(senders[*i].say("general", text).await.status, 202);
    }
    for reader in &mut readers {
        assert_eq!(
            chat_lines(reader, 3).await,
            expected[3..6],
            "through the store, in order"
        );
    }
    cluster.valkey.restart();
    let back = round("after restart", &mut expected);
    for (i, text) in &back {
        assert_eq!(senders[*i].say("general", text).await.status, 202);
    }
    for reader in &mut readers {
        assert_eq!(
            chat_lines(reader, 3).await,
            expected[6..9],
            "live or from the store, in order"
        );
    }

    // Live delivery works again everywhere.
    let after = round("live again", &mut expected);
    for (i, text) in &after {
        assert_eq!(senders[*i].say("general", text).await.status, 202);
        for reader in &mut readers {
            assert_eq!(
                chat_lines(reader, 1).await,
                [expected[expected.len() - 3 + i].clone()]
            );
        }
    }

    // Every instance's history has every message exactly once, in order.
    for reader in &mut readers {
        assert_eq!(history(reader, expected.len()).await, expected);
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_room_evicted_and_reopened_under_traffic_loses_no_message() {
    let (Some(valkey), Some(pg)) = (TestValkey::start(), TestPostgres::start()) else {
        return;
    };
    let start = |instance: &str| {
        let mut config = config(instance, &pg.url(), &valkey.url(), Durability::Sync);
        support::scenarios::evict_after_a_second(&mut config);
        start_with(config)
    };
    let (a, b) = (start("a").await, start("b").await);
    support::scenarios::evicted_and_reopened_under_traffic_loses_nothing(&a, &b).await;
    a.shutdown().await;
    b.shutdown().await;
}

/// Valkey cuts a subscriber that falls behind (its `client-output-buffer-limit pubsub`), while
/// its publishers go on: `CLIENT KILL TYPE pubsub`, three times under traffic, drops every
/// instance's subscription and nothing else. Each instance must notice, read what it missed
/// from PostgreSQL and subscribe again, so that every reader still gets every message once, in
/// each sender's order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_cut_by_valkey_under_traffic_lose_nothing_and_repeat_nothing() {
    let Some(cluster) = cluster(Durability::Sync).await else {
        return;
    };
    let names = ["a", "b", "c"];
    let (mut readers, senders) = cluster.readers_and_senders().await;
    let per_sender = 60;
    let sending: Vec<_> = senders
        .into_iter()
        .map(|sender| {
            tokio::spawn(async move {
                for k in 1..=per_sender {
                    let answer = sender.say("general", &format!("m{k}")).await;
                    assert_eq!(answer.status, 202, "{}", answer.json);
                    tokio::time::sleep(std::time::Duration::from_millis(15)).await;
                }
            })
        })
        .collect();
    let mut killed = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let reply = cluster
            .valkey
            .command(&["CLIENT", "KILL", "TYPE", "pubsub"]);
        let n = reply.trim().trim_start_matches(':').parse::<usize>();
        killed.push(n.unwrap_or_else(|_| panic!("CLIENT KILL: {reply}")));
    }
    assert!(killed[0] >= names.len(), "subscribers cut: {killed:?}");
    for sending in sending {
        sending.await.expect("a sender");
    }

    // Every reader: each message once, each sender's in the order it said them.
    let total = names.len() * per_sender;
    for reader in &mut readers {
        let lines = chat_lines(reader, total).await;
        let mut next = std::collections::HashMap::new();
        for line in &lines {
            let (who, text) = line
                .strip_prefix("[general] ")
                .and_then(|rest| rest.split_once(": "))
                .unwrap_or_else(|| panic!("not a chat line: {line}"));
            let k: usize = text.trim_start_matches('m').parse().expect("m<k>");
            let expected = next.entry(who.to_string()).or_insert(1);
            assert_eq!(
                k, *expected,
                "{who}'s messages out of order or twice: {lines:#?}"
            );
            *expected += 1;
        }
        assert!(next.values().all(|n| *n == per_sender + 1), "{next:?}");
        reader.sync().await; // and nothing more after them
    }
    // Each instance noticed and subscribed again (messages are not merely read from the store).
    for (server, name) in cluster.servers.iter().zip(names) {
        let stats = server.hub().stats_handle();
        let deadline = std::time::Instant::now() + support::PATIENCE;
        while stats.bus_reconnects.get() < 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "{name} never subscribed again"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    cluster.shutdown().await;
}
