//! Two instances sharing rooms through Valkey (phase 3), with Valkey, then PostgreSQL, stopped
//! and restarted under chat.

use chatd::pipeline::PipelineConfig;
use chatd::pipeline::config::Durability;
use support::postgres::TestPostgres;
use support::valkey::TestValkey;
use support::{Client, start_with, with_store};

use super::{next_chat, pg_store, say_until_accepted, stored_texts, support, texts};

/// The phase 3 pipeline for `instance`, over the shared PostgreSQL and Valkey, with the given
/// write-ahead timeout.
fn valkey_config(instance: &str, pg: &str, valkey: &str, sync_timeout_ms: u64) -> PipelineConfig {
    let phase3 = support::valkey::pipeline(pg, valkey, Durability::Sync);
    let store = pg_store(pg, Durability::Sync, 1000, sync_timeout_ms);
    let mut config = with_store(phase3, store);
    config.server.instance = Some(instance.into());
    chatd::pipeline::load::revalidate(&config).expect("a valid valkey pipeline");
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valkey_down_keeps_chat_going_between_instances_through_postgres_and_back() {
    let Some(mut valkey) = TestValkey::start() else {
        return;
    };
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let a = start_with(valkey_config("a", &pg.url(), &valkey.url(), 5000)).await;
    let b = start_with(valkey_config("b", &pg.url(), &valkey.url(), 5000)).await;
    let mut alice = Client::named(a.tcp_addr(), "alice").await;
    let mut bob = Client::named(b.tcp_addr(), "bob").await;
    alice.join("general").await;
    bob.join("general").await;
    alice.expect("* bob joined general").await;
    let mut said = Vec::new();
    alice.send("before, from a").await;
    said.push(next_chat(&mut bob).await);
    bob.send("before, from b").await;
    said.push(next_chat(&mut alice).await);

    // Valkey dies. Numbering is PostgreSQL's, so nothing is refused; messages between the
    // instances travel through the store (the poll, fast while the bus is degraded). A join on
    // the same instance is announced there, and the directory (in PostgreSQL) lists everyone.
    valkey.stop();
    for i in 1..=5 {
        alice.send(&format!("during {i}, from a")).await;
        said.push(format!("[general] alice: during {i}, from a"));
        assert_eq!(
            &next_chat(&mut bob).await,
            said.last().unwrap(),
            "through PostgreSQL"
        );
    }
    bob.send("during, from b").await;
    said.push("[general] bob: during, from b".into());
    assert_eq!(&next_chat(&mut alice).await, said.last().unwrap());
    assert!(
        b.hub().stats().bus_failures.get() >= 1,
        "the lost subscription is counted"
    );
    let mut carol = Client::named(a.tcp_addr(), "carol").await;
    carol.join("general").await;
    alice.expect("* carol joined general").await;
    bob.send("/users general").await;
    loop {
        let line = bob.line().await;
        if line.starts_with("* users in general") {
            assert_eq!(line, "* users in general (3): alice, bob, carol");
            break;
        }
    }

    // Valkey comes back empty. Each instance reconnects and re-subscribes; chat goes on, and
    // nothing said meanwhile is lost or seen twice.
    valkey.restart();
    for i in 1..=5 {
        alice.send(&format!("after {i}, from a")).await;
        said.push(format!("[general] alice: after {i}, from a"));
        assert_eq!(&next_chat(&mut bob).await, said.last().unwrap());
    }
    bob.send("back, from b").await;
    said.push("[general] bob: back, from b".into());
    assert_eq!(&next_chat(&mut alice).await, said.last().unwrap());
    for i in 1..=5 {
        assert_eq!(
            next_chat(&mut carol).await,
            format!("[general] alice: after {i}, from a"),
            "a's other user saw a's messages"
        );
    }
    assert_eq!(next_chat(&mut carol).await, said[said.len() - 1]);
    alice.sync().await; // and nothing else came, twice or late
    bob.sync().await;

    let store = pg_store(&pg.url(), Durability::Sync, 1000, 5000);
    assert_eq!(stored_texts(&store, "general").await, texts(&said));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_in_phase3_refuses_plainly_and_nothing_is_half_sent() {
    let Some(valkey) = TestValkey::start() else {
        return;
    };
    let Some(mut pg) = TestPostgres::start() else {
        return;
    };
    let a = start_with(valkey_config("a", &pg.url(), &valkey.url(), 300)).await;
    let b = start_with(valkey_config("b", &pg.url(), &valkey.url(), 300)).await;
    let mut alice = Client::named(a.tcp_addr(), "alice").await;
    let mut bob = Client::named(b.tcp_addr(), "bob").await;
    alice.join("general").await;
    bob.join("general").await;
    alice.expect("* bob joined general").await;
    alice.send("before").await;
    assert_eq!(next_chat(&mut bob).await, "[general] alice: before");

    // PostgreSQL goes away: it numbers and stores every message, so the sender is refused,
    // plainly, and nobody anywhere sees the message.
    tokio::task::block_in_place(|| pg.stop());
    alice.send("during").await;
    let refused = alice
        .expect_prefix("! message not sent: cannot reach the database to number it")
        .await;
    assert!(refused.ends_with("try again"), "{refused}");
    tokio::task::block_in_place(|| pg.restart());

    // Back: the next message gets through, and nothing waits for anything.
    say_until_accepted(&mut alice, "after").await;
    assert_eq!(next_chat(&mut bob).await, "[general] alice: after");
    let store = pg_store(&pg.url(), Durability::Sync, 1000, 5000);
    assert_eq!(stored_texts(&store, "general").await, ["before", "after"]);
    a.shutdown().await;
    b.shutdown().await;
}
