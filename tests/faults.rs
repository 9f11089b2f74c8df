//! The fault suite: break what chatd depends on, on purpose, and check what survives.
//!
//! * PostgreSQL stopped and restarted under chat, with write-ahead (`durability = "sync"`) and
//!   with write-behind (`"async"`).
//! * Valkey killed and restarted under chat between two instances (phase 3).
//! * One instance killed with SIGKILL under load (the real binary, phase 3).
//! * SIGTERM: the notice, the flush of the write-behind queue, the exit.
//!
//! Every test starts its own throwaway servers (`tests/support/`); set `CHATD_SKIP_POSTGRES=1`
//! or `CHATD_SKIP_VALKEY=1` to skip them on a machine without those servers. Intervals, TTLs and
//! timeouts are short so that each test stays quick; no test asserts how fast anything happens
//! (timeouts are hang guards). `docs/RELIABILITY.md` turns these tests into a guarantee table.

mod support;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use chatd::pipeline::PipelineConfig;
use chatd::pipeline::config::{Durability, FanoutConfig, LayerConfig, PersistConfig};
use support::binary::Chatd;
use support::http::HttpClient;
use support::postgres::TestPostgres;
use support::valkey::TestValkey;
use support::{Client, PATIENCE, data_dir, default_config, scenarios, start_with, with_store};

/// What a write-ahead sender is told when the database does not take its message in time.
const REFUSED: &str = "! could not store your message (the database is not answering), try again";

/// A PostgreSQL store at `url` with the given mode, queue and write-ahead timeout.
fn pg_store(
    url: &str,
    durability: Durability,
    queue: usize,
    sync_timeout_ms: u64,
) -> PersistConfig {
    PersistConfig::Postgres {
        url: url.to_string(),
        pool_size: 2,
        durability,
        queue,
        batch: 500,
        sync_timeout_ms,
    }
}

/// The texts of chat lines (`[room] nick: text` -> `text`).
fn texts(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            l.split_once(": ")
                .map_or(l.as_str(), |(_, t)| t)
                .to_string()
        })
        .collect()
}

/// The texts stored for `room`, in seq order.
async fn stored_texts(store: &PersistConfig, room: &str) -> Vec<String> {
    let db = scenarios::open_store(store).await;
    let stored = scenarios::stored(&*db, room).await;
    stored.iter().map(|m| m.text.clone()).collect()
}

/// The next chat line (`[room] ...`) `client` gets, skipping notices.
async fn next_chat(client: &mut Client) -> String {
    loop {
        let line = client.line().await;
        if line.starts_with('[') {
            return line;
        }
        assert!(line.starts_with("* "), "unexpected line {line:?}");
    }
}

/// Says `text` over TCP until it is accepted; each refusal must say "try again". Returns how
/// many times it was refused. Proof of acceptance is that no `!` line precedes the `/rooms`
/// answer (TCP handles one line after the other, and a sender does not see its own message).
async fn say_until_accepted(client: &mut Client, text: &str) -> usize {
    let deadline = Instant::now() + PATIENCE * 3;
    let mut refusals = 0;
    loop {
        client.send(text).await;
        client.send("/rooms").await;
        let mut refused = false;
        loop {
            let line = client.line().await;
            if line.starts_with("* rooms:") {
                break;
            }
            if line.starts_with("! ") {
                assert!(line.contains("try again"), "{line}");
                refused = true;
            }
        }
        if !refused {
            return refusals;
        }
        refusals += 1;
        assert!(Instant::now() < deadline, "{text:?} still refused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

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

/// Every log line of this test binary, once [`capture_logs`] has run.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Sends this binary's warnings and errors to [`LOGS`] (as well as stderr), so a test can
/// assert that a loss is logged. Global: tests run in threads of one process.
fn capture_logs() {
    struct Sink;
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            LOGS.lock().unwrap().extend_from_slice(buf);
            std::io::stderr().write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(|| Sink)
            .try_init();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_with_write_behind_chat_goes_on_and_the_loss_is_bounded_counted_and_logged() {
    capture_logs();
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
    let logged = String::from_utf8_lossy(&LOGS.lock().unwrap())
        .matches("message NOT stored: the write queue is full")
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

// ---------------------------------------------------------------------------------------------
// Valkey

/// The phase 3 pipeline for `instance`, over the shared PostgreSQL and Valkey, with the given
/// write-ahead timeout.
fn valkey_config(instance: &str, pg: &str, valkey: &str, sync_timeout_ms: u64) -> PipelineConfig {
    let store = pg_store(pg, Durability::Sync, 1000, sync_timeout_ms);
    let mut config = with_store(default_config(), store);
    config.server.instance = Some(instance.into());
    for layer in &mut config.layers {
        if let LayerConfig::Fanout(fanout) = layer {
            *fanout = FanoutConfig::Valkey {
                url: valkey.to_string(),
                pool_size: 4,
                gap_wait_ms: 200,
            };
        }
    }
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

// ---------------------------------------------------------------------------------------------
// The real binary: SIGKILL and SIGTERM

/// Writes the shipped pipeline `name` into `dir` with its `${...}` urls replaced by the given
/// ones and `extra` inserted after the `kind = "route"` line; returns its path.
fn pipeline_file(dir: &Path, name: &str, pg: &str, valkey: Option<&str>, extra: &str) -> String {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/");
    let text = std::fs::read_to_string(format!("{shipped}{name}")).expect("a shipped pipeline");
    let mut text = text.replace("${DATABASE_URL:-postgres://localhost/chatd}", pg);
    if let Some(valkey) = valkey {
        text = text.replace("${VALKEY_URL:-redis://127.0.0.1:6379}", valkey);
    }
    let route = text.find("kind = \"route\"").expect("a route layer");
    let eol = route + text[route..].find('\n').expect("a line end") + 1;
    text.insert_str(eol, extra);
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the pipeline");
    path.display().to_string()
}

/// `/users ROOM` on `client`, skipping the chat lines around the answer.
async fn users(client: &mut Client, room: &str) -> String {
    client.send(&format!("/users {room}")).await;
    loop {
        let line = client.line().await;
        if line.starts_with(&format!("* users in {room}")) || line.starts_with("* nobody") {
            return line;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_under_load_loses_no_acknowledged_message_and_its_users_vanish() {
    let Some(valkey) = TestValkey::start() else {
        return;
    };
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let dir = data_dir();
    let ttl = 3;
    let pipeline = pipeline_file(
        &dir,
        "phase3-valkey.toml",
        &pg.url(),
        Some(&valkey.url()),
        &format!("presence_ttl_secs = {ttl}\n"),
    );
    let a = Chatd::start(&["--pipeline", &pipeline, "--instance", "a"], &dir);
    let b = Chatd::start(&["--pipeline", &pipeline, "--instance", "b"], &dir);
    let mut bob = Client::named(b.tcp, "bob").await;
    bob.join("general").await;
    let mut dave = Client::named(a.tcp, "dave").await;
    dave.join("general").await;
    let mut senders = Vec::new();
    for i in 1..=3 {
        let sender = HttpClient::connect(a.http, &format!("load{i}")).await;
        assert_eq!(sender.command("/join general").await.status, 200);
        senders.push(sender);
    }
    assert_eq!(
        users(&mut bob, "general").await,
        "* users in general (5): bob, dave, load1, load2, load3"
    );

    // Three senders on a, as fast as a answers; a 202 means stored (write-ahead).
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut load = Vec::new();
    for (n, sender) in senders.into_iter().enumerate() {
        let acked = acked.clone();
        load.push(tokio::spawn(async move {
            for i in 1.. {
                let text = format!("load {n}.{i}");
                match sender.try_say("general", &text).await {
                    Some(answer) if answer.status == 202 => acked.lock().unwrap().push(text),
                    _ => return,
                }
            }
        }));
    }
    // Kill a in the middle of it, once b has relayed a good part of the load.
    let mut seen = Vec::new();
    while seen.len() < 60 {
        seen.push(next_chat(&mut bob).await);
    }
    a.kill().await;
    let killed = Instant::now();
    for task in load {
        tokio::time::timeout(PATIENCE, task)
            .await
            .expect("the senders notice the crash")
            .unwrap();
    }

    // b keeps serving its users: a newcomer there and bob chat, past whatever seqs a numbered
    // and never stored.
    let mut carol = Client::named(b.tcp, "carol").await;
    carol.join("general").await;
    carol.send("still here").await;
    loop {
        let line = next_chat(&mut bob).await;
        if line == "[general] carol: still here" {
            break;
        }
        assert!(line.starts_with("[general] load"), "{line}");
        seen.push(line);
    }

    // a's users vanish from b's /users once a's heartbeat is older than the TTL.
    loop {
        let listed = users(&mut bob, "general").await;
        if listed == "* users in general (2): bob, carol" {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(ttl) + PATIENCE * 2,
            "a's users still listed: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "a's users left b's /users {:?} after the kill (presence_ttl_secs = {ttl})",
        killed.elapsed()
    );

    // Every message a acknowledged, and every message anybody saw, is stored.
    let store = pg_store(&pg.url(), Durability::Sync, 1000, 5000);
    let stored: std::collections::HashSet<String> =
        stored_texts(&store, "general").await.into_iter().collect();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 30, "acknowledged {}", acked.len());
    let missing: Vec<&String> = acked.iter().filter(|t| !stored.contains(*t)).collect();
    assert!(missing.is_empty(), "acknowledged, not stored: {missing:?}");
    let unseen: Vec<String> = texts(&seen)
        .into_iter()
        .filter(|t| !stored.contains(t))
        .collect();
    assert!(unseen.is_empty(), "seen, not stored: {unseen:?}");
    b.terminate().await;
}

/// Reads to the close; the last line must be the shutdown notice.
async fn expect_goodbye(client: &mut Client) {
    let rest = client.expect_closed().await;
    assert_eq!(
        rest.last().map(String::as_str),
        Some("* server shutting down, goodbye"),
        "{rest:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_says_goodbye_flushes_the_write_behind_queue_and_exits() {
    let Some(mut pg) = TestPostgres::start() else {
        return;
    };
    let dir = data_dir();
    let pipeline = pipeline_file(&dir, "phase1-postgres.toml", &pg.url(), None, "");
    let chatd = Chatd::start(&["--pipeline", &pipeline], &dir);
    let mut alice = Client::named(chatd.tcp, "alice").await;
    let mut bob = Client::named(chatd.tcp, "bob").await;
    alice.join("general").await;
    bob.join("general").await;
    alice.expect("* bob joined general").await;

    // With the database down the queue fills up (write-behind: chat goes on)...
    tokio::task::block_in_place(|| pg.stop());
    let queued = 100;
    alice
        .send_many((1..=queued).map(|i| format!("queued {i}")))
        .await;
    for i in 1..=queued {
        assert_eq!(
            next_chat(&mut bob).await,
            format!("[general] alice: queued {i}")
        );
    }

    // ... and SIGTERM arrives: every client is told, and the process waits for the queue.
    let stopping = tokio::spawn(chatd.terminate());
    expect_goodbye(&mut alice).await;
    expect_goodbye(&mut bob).await;
    assert!(!stopping.is_finished(), "the queue is not written yet");
    tokio::task::block_in_place(|| pg.restart());
    tokio::time::timeout(PATIENCE * 6, stopping)
        .await
        .expect("chatd exits once its queue is written")
        .unwrap();

    let store = pg_store(&pg.url(), Durability::Async, 1000, 5000);
    let expected: Vec<String> = (1..=queued).map(|i| format!("queued {i}")).collect();
    assert_eq!(stored_texts(&store, "general").await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_exits_promptly_and_stores_what_was_delivered() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let dir = data_dir();
    let pipeline = pipeline_file(&dir, "phase1-postgres.toml", &pg.url(), None, "");
    let chatd = Chatd::start(&["--pipeline", &pipeline], &dir);
    let mut readers = Vec::new();
    for i in 1..=20 {
        let mut reader = Client::named(chatd.tcp, &format!("reader{i}")).await;
        reader.join("general").await;
        readers.push(reader);
    }
    let mut alice = Client::named(chatd.tcp, "alice").await;
    alice.join("general").await;
    let sent = 2000;
    alice
        .send_many((1..=sent).map(|i| format!("load {i}")))
        .await;
    // Stop while the burst is being handled: the first reader has seen part of it.
    let mut seen = Vec::new();
    while seen.len() < 100 {
        seen.push(next_chat(&mut readers[0]).await);
    }
    let started = Instant::now();
    let stopping = tokio::spawn(chatd.terminate());
    let rest = readers[0].expect_closed().await;
    assert_eq!(
        rest.last().map(String::as_str),
        Some("* server shutting down, goodbye")
    );
    seen.extend(rest.into_iter().filter(|l| l.starts_with('[')));
    tokio::time::timeout(PATIENCE * 3, stopping)
        .await
        .expect("chatd exits")
        .unwrap();
    let took = started.elapsed();

    // What was delivered was accepted, so it was queued and, at exit, written: all of it, in order.
    let store = pg_store(&pg.url(), Durability::Async, 1000, 5000);
    let stored = stored_texts(&store, "general").await;
    let seen = texts(&seen);
    assert!(
        stored.len() >= seen.len(),
        "{} stored, {} seen",
        stored.len(),
        seen.len()
    );
    assert_eq!(
        stored[..seen.len()],
        seen[..],
        "stored in the order delivered"
    );
    let expected: Vec<String> = (1..=stored.len()).map(|i| format!("load {i}")).collect();
    assert_eq!(stored, expected, "a prefix of the burst, without holes");
    eprintln!(
        "SIGTERM to exit: {took:?} (21 clients; {} of the {sent} burst accepted and stored)",
        stored.len()
    );
}
