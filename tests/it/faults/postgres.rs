//! PostgreSQL stopped and restarted under chat. One instance: write-ahead senders are refused in
//! time and nothing seen is lost; write-behind chat goes on and its loss is bounded, counted and
//! logged. Two instances polling it (phase 2): senders are refused plainly, both recover.

use std::sync::Arc;

use chatd::pipeline::config::Durability;
use support::postgres::TestPostgres;
use support::{Client, logs, scenarios, start_with};

use super::{REFUSED, next_chat, pg_store, say_until_accepted, stored_texts, support, texts};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_with_write_ahead_refuses_in_time_and_stores_everything_seen() {
    let Some(mut pg) = TestPostgres::start() else {
        return;
    };
    let store = pg_store(&pg.url(), Durability::Sync, 1000, 300);
    let server = start_with(scenarios::config_for(&store)).await;
    let stats = server.hub().stats_handle();
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    let mut bob = Client::named(server.tcp_addr(), "bob").await;
    alice.join("general").await;
    bob.join("general").await;
    alice.expect("* bob joined general").await;
    let mut seen = Vec::new(); // every chat line bob saw
    for i in 1..=3 {
        alice.send(&format!("before {i}")).await;
        seen.push(next_chat(&mut bob).await);
    }

    // The database goes away: both senders are refused (after the timeout, plus at most the
    // attempt under way), and neither message reaches anybody.
    tokio::task::block_in_place(|| pg.stop());
    alice.send("during, from alice").await;
    bob.send("during, from bob").await;
    alice.expect(REFUSED).await;
    bob.expect(REFUSED).await;
    alice.sync().await; // nothing else is waiting for either of them
    bob.sync().await;
    assert_eq!(stats.persist_timeouts.get(), 2);

    // It comes back: chat works again, and the refused seqs hold nobody up.
    tokio::task::block_in_place(|| pg.restart());
    say_until_accepted(&mut alice, "after 1").await;
    seen.push(next_chat(&mut bob).await);
    for i in 2..=4 {
        alice.send(&format!("after {i}")).await;
        seen.push(next_chat(&mut bob).await);
    }
    assert_eq!(
        texts(&seen),
        [
            "before 1", "before 2", "before 3", "after 1", "after 2", "after 3", "after 4"
        ]
    );
    server.shutdown().await;

    // Write-ahead: the store holds exactly what was seen; the refused messages were taken back
    // and are not written later either.
    assert_eq!(stored_texts(&store, "general").await, texts(&seen));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_with_write_behind_chat_goes_on_and_the_loss_is_bounded_counted_and_logged() {
    logs::capture();
    let Some(mut pg) = TestPostgres::start() else {
        return;
    };
    let queue = 20;
    let store = pg_store(&pg.url(), Durability::Async, queue, 5000);
    let server = start_with(scenarios::config_for(&store)).await;
    let stats = server.hub().stats_handle();
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    let mut bob = Client::named(server.tcp_addr(), "bob").await;
    alice.join("fallback").await;
    bob.join("fallback").await;
    alice.expect("* bob joined fallback").await;
    alice.send("before").await;
    assert_eq!(next_chat(&mut bob).await, "[fallback] alice: before");
    scenarios::until_stored(&*scenarios::open_store(&store).await, "fallback", 1).await;

    // The database goes away; chat does not wait for it.
    tokio::task::block_in_place(|| pg.stop());
    let during = 2 * queue;
    alice
        .send_many((1..=during).map(|i| format!("during {i}")))
        .await;
    for i in 1..=during {
        assert_eq!(
            next_chat(&mut bob).await,
            format!("[fallback] alice: during {i}")
        );
    }
    // The queue holds `queue` messages (the writer may hold one more batch in hand): the rest
    // are dropped, newest first, each counted and logged.
    let dropped = stats.persist_dropped.get() as usize;
    assert!(
        (1..=during - queue).contains(&dropped),
        "dropped {dropped} of {during}"
    );
    // This process's other tests log too: the lines of this room are this test's.
    let logged = logs::warnings()
        .lines()
        .filter(|line| line.contains("message NOT stored: the write queue is full"))
        .filter(|line| line.contains("room=fallback"))
        .count();
    assert!(logged >= dropped, "{logged} loss lines for {dropped} drops");

    // It comes back: the queue is written, oldest first, while chat goes on.
    tokio::task::block_in_place(|| pg.restart());
    let kept = during - dropped;
    let db = scenarios::open_store(&store).await;
    let stored = scenarios::until_stored(&*db, "fallback", 1 + kept).await;
    let mut expected = vec!["before".to_string()];
    expected.extend((1..=kept).map(|i| format!("during {i}")));
    let stored_texts = |stored: &[Arc<chatd::core::ChatMessage>]| -> Vec<String> {
        stored.iter().map(|m| m.text.clone()).collect()
    };
    assert_eq!(stored_texts(&stored), expected);
    alice.send("after").await;
    assert_eq!(next_chat(&mut bob).await, "[fallback] alice: after");
    let stored = scenarios::until_stored(&*db, "fallback", 1 + kept + 1).await;
    expected.push("after".into());
    assert_eq!(stored_texts(&stored), expected);
    // The dropped messages leave holes in the stored seqs: "after" keeps its own number.
    assert_eq!(stored.last().map(|m| m.seq), Some(1 + during as u64 + 1));
    assert_eq!(
        stats.persist_dropped.get() as usize,
        dropped,
        "nothing more lost"
    );
    server.shutdown().await;
}

/// The shipped phase 2 pipeline for `instance`, with `DATABASE_URL` set to `url`, on ephemeral
/// ports.
fn phase2(url: &str, instance: &str) -> chatd::pipeline::PipelineConfig {
    let text = include_str!("../../../pipelines/phase2-poll.toml");
    let mut config = chatd::pipeline::load::parse("pipelines/phase2-poll.toml", text, &|name| {
        (name == "DATABASE_URL").then(|| url.to_string())
    })
    .expect("the phase 2 pipeline is valid");
    config.server.tcp = "127.0.0.1:0".parse().unwrap();
    config.server.http = "127.0.0.1:0".parse().unwrap();
    config.server.irc = None;
    config.server.instance = Some(instance.to_string());
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_in_phase2_refuses_plainly_and_both_instances_recover() {
    let Some(mut pg) = TestPostgres::start() else {
        return;
    };
    let a = start_with(phase2(&pg.url(), "a")).await;
    let b = start_with(phase2(&pg.url(), "b")).await;
    let mut alice = Client::named(a.tcp_addr(), "alice").await;
    let mut bob = Client::named(b.tcp_addr(), "bob").await;
    alice.join("general").await;
    bob.join("general").await;
    alice.expect("* bob joined general").await; // through the database, too
    alice.send("before").await;
    assert_eq!(next_chat(&mut bob).await, "[general] alice: before");

    // The database is the way between instances, and the counter: without it a message cannot
    // be numbered, so it is refused before anything happens to it.
    tokio::task::block_in_place(|| pg.stop());
    alice.send("during").await;
    let refused = alice
        .expect_prefix("! message not sent: cannot reach the database to number it")
        .await;
    assert!(refused.ends_with("try again"), "{refused}");
    tokio::task::block_in_place(|| pg.restart());

    // Back: both instances number, store and poll again.
    say_until_accepted(&mut alice, "after, from a").await;
    assert_eq!(next_chat(&mut bob).await, "[general] alice: after, from a");
    bob.send("after, from b").await;
    assert_eq!(next_chat(&mut alice).await, "[general] bob: after, from b");
    let store = pg_store(&pg.url(), Durability::Sync, 1000, 5000);
    assert_eq!(
        stored_texts(&store, "general").await,
        ["before", "after, from a", "after, from b"]
    );
    a.shutdown().await;
    b.shutdown().await;
}
