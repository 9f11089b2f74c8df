//! Two instances sharing rooms through Valkey (phase 3), with Valkey, then PostgreSQL, stopped
//! and restarted under chat.

use chatd::pipeline::PipelineConfig;
use chatd::pipeline::config::Durability;
use support::postgres::TestPostgres;
use support::valkey::TestValkey;
use support::{Client, start_with, with_store};

use crate::{REFUSED, next_chat, pg_store, say_until_accepted, stored_texts, support, texts};

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
async fn valkey_down_refuses_new_messages_keeps_local_presence_and_cross_instance_chat_resumes() {
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

    // Valkey dies. Numbering needs it, so new messages are refused, plainly, and nothing is
    // half-sent. Everything that does not need it goes on: connections stay up, a join on the
    // same instance is announced there, and the directory (in PostgreSQL) still lists everyone.
    valkey.stop();
    alice.send("during").await;
    let refused = alice
        .expect_prefix("! message not sent: cannot reach Valkey")
        .await;
    assert!(refused.ends_with("try again"), "{refused}");
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

    // Valkey comes back empty. Each instance reconnects, re-subscribes and reads from the store
    // whatever pub/sub did not bring it; senders go on as soon as their instance accepts again.
    valkey.restart();
    for i in 1..=5 {
        say_until_accepted(&mut alice, &format!("after {i}, from a")).await;
        said.push(format!("[general] alice: after {i}, from a"));
    }
    for expected in &said[2..] {
        assert_eq!(
            &next_chat(&mut bob).await,
            expected,
            "live or from the store, in order"
        );
    }
    say_until_accepted(&mut bob, "back, from b").await;
    said.push("[general] bob: back, from b".into());
    assert_eq!(next_chat(&mut alice).await, said[said.len() - 1]);
    for i in 1..=5 {
        assert_eq!(
            next_chat(&mut carol).await,
            format!("[general] alice: after {i}, from a"),
            "a's other user saw a's messages"
        );
    }
    assert_eq!(next_chat(&mut carol).await, said[said.len() - 1]);

    let store = pg_store(&pg.url(), Durability::Sync, 1000, 5000);
    assert_eq!(stored_texts(&store, "general").await, texts(&said));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_in_phase3_refuses_in_time_and_no_instance_waits_for_the_refused_seq() {
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

    // PostgreSQL goes away. Valkey still numbers the message, but it cannot be stored: it is
    // refused, here and everywhere, and its seq becomes a hole on the other instance.
    tokio::task::block_in_place(|| pg.stop());
    alice.send("during").await;
    alice.expect(REFUSED).await;
    tokio::task::block_in_place(|| pg.restart());

    // The next message gets through: b reads the hole from the store, finds nothing, gives up on
    // it (loudly, counted) and delivers what came after.
    say_until_accepted(&mut alice, "after").await;
    assert_eq!(next_chat(&mut bob).await, "[general] alice: after");
    assert!(b.hub().stats().gaps_skipped.get() >= 1);
    let store = pg_store(&pg.url(), Durability::Sync, 1000, 5000);
    assert_eq!(stored_texts(&store, "general").await, ["before", "after"]);
    a.shutdown().await;
    b.shutdown().await;
}
