//! The real `chatd` binary, stopped the hard way (SIGKILL, under load, in a phase 3 cluster) and
//! the clean way (SIGTERM, and SIGINT and SIGHUP like it): what survives each.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatd::pipeline::config::Durability;
use support::binary::Chatd;
use support::http::HttpClient;
use support::postgres::TestPostgres;
use support::valkey::TestValkey;
use support::{Client, PATIENCE, data_dir};

use super::{next_chat, pg_store, stored_texts, support, texts};

/// Writes the shipped pipeline `name` into `dir` with its `${...}` urls replaced by the given
/// ones, its `rate_limit` layer removed (these tests send faster than people) and `extra`
/// inserted after the `kind = "route"` line; returns its path.
fn pipeline_file(dir: &Path, name: &str, pg: &str, valkey: Option<&str>, extra: &str) -> String {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/pipelines/");
    let text = std::fs::read_to_string(format!("{shipped}{name}")).expect("a shipped pipeline");
    let text = support::drop_layer(&text, "rate_limit");
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
    a_stop_signal_says_goodbye_flushes_the_write_behind_queue_and_exits("TERM").await;
}

/// Ctrl-C in the terminal chatd runs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_says_goodbye_flushes_the_write_behind_queue_and_exits() {
    a_stop_signal_says_goodbye_flushes_the_write_behind_queue_and_exits("INT").await;
}

/// The terminal chatd runs in was closed (an ssh session dropped), or an operator sent the
/// signal many servers reload on: SIGHUP's default action ends the process on the spot, which
/// lost every message in the write-behind queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_says_goodbye_flushes_the_write_behind_queue_and_exits() {
    a_stop_signal_says_goodbye_flushes_the_write_behind_queue_and_exits("HUP").await;
}

/// `nohup chatd ...`: whoever started it asked it to outlive its terminal, so SIGHUP stays
/// ignored, and chat goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_nohup_sighup_is_ignored() {
    let dir = data_dir();
    let chatd = Chatd::start_nohup(&[], &dir);
    let mut alice = Client::named(chatd.tcp, "alice").await;
    alice.join("general").await;
    let pid = chatd.pid().to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status();
    assert!(hup.unwrap().success());
    let mut bob = Client::named(chatd.tcp, "bob").await;
    bob.join("general").await;
    alice.expect("* bob joined general").await;
    bob.send("still here").await;
    assert_eq!(next_chat(&mut alice).await, "[general] bob: still here");
    chatd.terminate().await;
}

async fn a_stop_signal_says_goodbye_flushes_the_write_behind_queue_and_exits(signal: &'static str) {
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

    // ... and the signal arrives: every client is told, and the process waits for the queue.
    let stopping = tokio::spawn(chatd.terminate_with(signal));
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
