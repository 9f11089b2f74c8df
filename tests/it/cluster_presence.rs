//! Shared presence: several instances on one PostgreSQL agree on who is where and who holds which
//! nick, and the members of an instance killed with SIGKILL disappear within the TTL.
//!
//! The instances here use the `local` fan-out backend (messages stay on their instance) with the
//! route layer's `directory = "shared"`: presence is what is under test, not delivery. Each test
//! starts its own throwaway PostgreSQL (`support::postgres`); set `CHATD_SKIP_POSTGRES=1` to skip
//! them on a machine without PostgreSQL.

use std::time::{Duration, Instant};

use crate::support::binary::Chatd;
use crate::support::http::HttpClient;
use crate::support::postgres::TestPostgres;
use crate::support::proxy::{FaultProxy, Mode};
use crate::support::{Client, data_dir, default_config, postgres, start_with, with_store};
use chatd::pipeline::PipelineConfig;
use chatd::pipeline::config::{DirectoryMode, Durability, LayerConfig};
use chatd::server::Server;
use serde_json::json;

/// How long a test waits for presence to converge (the TTL is 2 s here): generous, so a slow
/// machine fails nothing; the tests assert what happens, never how fast.
const CONVERGE: Duration = Duration::from_secs(60);

/// The default pipeline on `url`, as instance `name`, with the shared directory and `ttl_secs`.
fn cluster_config(url: &str, name: &str, ttl_secs: u64) -> PipelineConfig {
    let mut config = with_store(default_config(), postgres(url, Durability::Async));
    config.server.instance = Some(name.into());
    for layer in &mut config.layers {
        if let LayerConfig::Route(route) = layer {
            route.directory = DirectoryMode::Shared;
            route.presence_ttl_secs = ttl_secs;
        }
    }
    config
}

/// Instances `a` and `b` with the shared directory and `ttl_secs`, `a` reaching PostgreSQL
/// through the returned proxy (so that a test can cut `a` alone off), `b` directly.
async fn a_behind_a_link(pg: &TestPostgres, ttl_secs: u64) -> (FaultProxy, Server, Server) {
    let link = FaultProxy::start(pg.addr()).await;
    let a = start_with(cluster_config(
        &TestPostgres::url_via(link.addr()),
        "a",
        ttl_secs,
    ))
    .await;
    let b = start_with(cluster_config(&pg.url(), "b", ttl_secs)).await;
    (link, a, b)
}

/// Sends `command` every 200 ms until its one-line reply is `expected`; panics with the last
/// reply after [`CONVERGE`].
async fn until_reply(client: &mut Client, command: &str, expected: &str) {
    let start = Instant::now();
    loop {
        client.send(command).await;
        let got = client.line().await;
        if got == expected {
            return;
        }
        assert!(
            start.elapsed() < CONVERGE,
            "`{command}` still answers {got:?}, not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn users_and_rooms_span_instances() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let a = start_with(cluster_config(&pg.url(), "a", 15)).await;
    let b = start_with(cluster_config(&pg.url(), "b", 15)).await;
    let c = start_with(cluster_config(&pg.url(), "c", 15)).await;

    let mut alice = Client::named(a.tcp_addr(), "alice").await;
    alice.join("rust").await;
    let mut carol = Client::named(c.tcp_addr(), "carol").await;
    carol.join("rust").await;
    carol.join("go").await;

    let mut bob = Client::named(b.tcp_addr(), "bob").await;
    bob.send("/users rust").await;
    bob.expect("* users in rust (2): alice, carol").await;
    bob.send("/rooms").await;
    bob.expect("* rooms: go (1), rust (2)").await;
    // The join counts the members of every instance, as `/users` does.
    bob.send("/join rust").await;
    bob.expect("* you joined rust (3 members); no messages yet")
        .await;
    alice.send("/users").await;
    alice.expect("* users in rust (3): alice, bob, carol").await;

    // A rename carries the memberships along, everywhere.
    alice.send("/nick Alicia").await;
    alice.expect("* you are now Alicia").await;
    bob.send("/users rust").await;
    bob.expect("* users in rust (3): Alicia, bob, carol").await;

    // Leaving and quitting show on the other instances.
    carol.send("/leave go").await;
    carol.expect_prefix("* you left go").await;
    carol.send("/quit").await;
    carol.expect_closed().await;
    until_reply(&mut bob, "/users rust", "* users in rust (2): Alicia, bob").await;
    bob.send("/rooms").await;
    bob.expect("* rooms: rust (2)").await;

    // A clean stop takes an instance's members with it.
    a.shutdown().await;
    until_reply(&mut bob, "/users rust", "* users in rust (1): bob").await;
    b.shutdown().await;
    c.shutdown().await;
}

#[tokio::test]
async fn a_nick_taken_on_one_instance_is_refused_on_another_until_freed() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let a = start_with(cluster_config(&pg.url(), "a", 15)).await;
    let b = start_with(cluster_config(&pg.url(), "b", 15)).await;

    let mut alice = Client::named(a.tcp_addr(), "alice").await;
    let mut other = Client::connect(b.tcp_addr()).await;
    other.send("/nick alice").await;
    other.expect("! nick alice is taken").await;
    other.send("/nick ALICE").await;
    other.expect("! nick ALICE is taken").await;
    // Look-alikes too: the directory keys nicks by their skeleton, as one instance does.
    other.send("/nick a1ice").await;
    other.expect("! nick a1ice is taken").await;
    other.send("/nick aIice").await;
    other.expect("! nick aIice is taken").await;
    let anon = HttpClient::new(b.http_addr());
    let taken = anon.post("/connect", json!({ "nick": "Alice" })).await;
    assert_eq!(
        (taken.status, taken.json["error"].as_str()),
        (409, Some("nick Alice is taken"))
    );
    // A guest on B gets a nick nobody holds anywhere, and keeps it.
    let guest = anon.post("/connect", json!({})).await;
    assert_eq!(guest.status, 200, "{}", guest.json);
    assert!(guest.json["nick"].as_str().unwrap().starts_with("guest-"));

    // Once alice quits on A, the nick is free on B.
    alice.send("/quit").await;
    alice.expect_closed().await;
    until_reply(&mut other, "/nick alice", "* you are now alice").await;
    // ... and now held on B, so A refuses it.
    let mut late = Client::connect(a.tcp_addr()).await;
    late.send("/nick Alice").await;
    late.expect("! nick Alice is taken").await;

    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn an_instance_killed_with_sigkill_vanishes_within_the_ttl() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    // The victim: the real binary, from a pipeline file, with a 2 s TTL.
    let dir = data_dir();
    let pipeline = dir.join("killed.toml");
    let toml = format!(
        r#"
[[layer]]
kind = "parse"

[[layer]]
kind = "route"
directory = "shared"
presence_ttl_secs = 2

[[layer]]
kind = "history"

[[layer]]
kind = "persist"
store = "postgres"
url = "{}"

[[layer]]
kind = "fanout"
backend = "local"
"#,
        pg.url()
    );
    std::fs::write(&pipeline, toml).unwrap();
    let victim = Chatd::start(
        &["--pipeline", pipeline.to_str().unwrap(), "--instance", "k"],
        &dir,
    );
    let survivor = start_with(cluster_config(&pg.url(), "s", 2)).await;

    let mut zed = Client::named(victim.tcp, "zed").await;
    zed.join("rust").await;
    let mut bob = Client::named(survivor.tcp_addr(), "bob").await;
    bob.join("rust").await;
    bob.send("/users rust").await;
    bob.expect("* users in rust (2): bob, zed").await;
    let mut other = Client::connect(survivor.tcp_addr()).await;
    other.send("/nick zed").await;
    other.expect("! nick zed is taken").await;

    // No clean stop: nothing of the victim runs after this, its rows stay behind.
    victim.kill().await;
    until_reply(&mut bob, "/users rust", "* users in rust (1): bob").await;
    bob.send("/rooms").await;
    bob.expect("* rooms: rust (1)").await;
    // Its nicks are free again.
    other.send("/nick zed").await;
    other.expect("* you are now zed").await;

    survivor.shutdown().await;
}

#[tokio::test]
async fn a_shared_directory_needs_postgres() {
    // The default pipeline keeps its history in SQLite: nowhere to share presence.
    let mut config = default_config();
    for layer in &mut config.layers {
        if let LayerConfig::Route(route) = layer {
            route.directory = DirectoryMode::Shared;
        }
    }
    let err = Server::start(&config).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("needs a `persist` layer with `store = \"postgres\"`"),
        "{err:#}"
    );
}

#[tokio::test]
async fn an_instance_whose_rows_expired_while_cut_off_restores_them() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let a = start_with(cluster_config(&pg.url(), "a", 2)).await;
    let b = start_with(cluster_config(&pg.url(), "b", 2)).await;
    let mut alice = Client::named(a.tcp_addr(), "alice").await;
    alice.join("rust").await;
    let mut bob = Client::named(b.tcp_addr(), "bob").await;
    bob.join("rust").await;
    bob.send("/users rust").await;
    bob.expect("* users in rust (2): alice, bob").await;

    // What the other instances do to an instance that misses its heartbeats for a whole TTL.
    let (db, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    let deleted = db
        .execute("DELETE FROM presence_nicks WHERE instance = 'a'", &[])
        .await
        .unwrap();
    assert_eq!(deleted, 1);

    // A's next heartbeat finds its rows gone and writes them again, rooms included.
    until_reply(&mut bob, "/users rust", "* users in rust (2): alice, bob").await;
    let mut other = Client::connect(b.tcp_addr()).await;
    other.send("/nick alice").await;
    other.expect("! nick alice is taken").await;
    a.shutdown().await;
    b.shutdown().await;
}

/// A join and a leave made while one instance cannot reach PostgreSQL (shorter than the TTL, so
/// nobody expires its rows) are still recorded once it can: before, the shared directory missed
/// the join and kept the leave's membership until the session quit, and `/users` on every
/// instance said so.
#[tokio::test]
async fn a_join_and_a_leave_made_while_postgres_was_out_of_reach_reach_the_directory_later() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    // A TTL far longer than the cut: this is about writes that failed, not expired rows.
    let (link, a, b) = a_behind_a_link(&pg, 30).await;
    let mut alice = Client::named(a.tcp_addr(), "alice").await;
    alice.join("old").await;
    // carol keeps `new` open on A, so that alice's join needs nothing from the store.
    let mut carol = Client::named(a.tcp_addr(), "carol").await;
    carol.join("new").await;
    let mut bob = Client::named(b.tcp_addr(), "bob").await;
    bob.join("old").await;
    until_reply(&mut bob, "/users old", "* users in old (2): alice, bob").await;
    until_reply(&mut bob, "/users new", "* users in new (1): carol").await;

    link.set(Mode::Cut);
    alice.send("/join new").await;
    alice.expect_prefix("* you joined new (").await;
    alice.send("/leave old").await;
    alice
        .expect("* you left old; your current room is new")
        .await;
    link.heal();

    until_reply(&mut bob, "/users new", "* users in new (2): alice, carol").await;
    until_reply(&mut bob, "/users old", "* users in old (1): bob").await;
    a.shutdown().await;
    b.shutdown().await;
}

/// An instance cut off from PostgreSQL for longer than the TTL loses its nicks to the others,
/// who may give them out again. When it is back, a session of it whose nick went to somebody
/// else meanwhile is disconnected, with the reason, as an IRC server kills on a nick collision:
/// one nick, one user, again. Its other sessions are restored. Before, both users kept the nick.
#[tokio::test]
async fn a_nick_given_out_while_its_holder_was_cut_off_is_taken_from_the_holder_when_it_is_back() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let (link, a, b) = a_behind_a_link(&pg, 2).await;
    let mut alice = Client::named(a.tcp_addr(), "alice").await;
    alice.join("rust").await;
    let mut carol = Client::named(a.tcp_addr(), "carol").await;
    carol.join("rust").await;
    let mut bob = Client::named(b.tcp_addr(), "bob").await;
    until_reply(&mut bob, "/users rust", "* users in rust (2): alice, carol").await;

    // A is cut off; once its rows have expired, B gives `alice` to somebody else.
    link.set(Mode::Cut);
    let mut other = Client::connect(b.tcp_addr()).await;
    until_reply(&mut other, "/nick alice", "* you are now alice").await;
    other.join("rust").await;

    // A is back: its alice is told why and disconnected; carol is listed again, with the new
    // alice, and the nick stays taken for everybody else.
    link.heal();
    let last = alice.expect_closed().await;
    assert!(
        last.iter()
            .any(|line| line.starts_with("! your nick alice was given to another user")),
        "{last:?}"
    );
    until_reply(&mut bob, "/users rust", "* users in rust (2): alice, carol").await;
    let mut late = Client::connect(a.tcp_addr()).await;
    late.send("/nick alice").await;
    late.expect("! nick alice is taken").await;
    // Her room here saw her go, and why.
    carol
        .expect("* alice quit (nick collision: alice went to another user while this server was out of reach)")
        .await;
    carol.send("/users rust").await;
    carol.expect("* users in rust (2): alice, carol").await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn the_directory_folds_look_alikes_as_chatd_does_and_step_6_rewrites_old_keys() {
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let server = start_with(cluster_config(&pg.url(), "a", 15)).await; // migrates
    let (db, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    for nick in [
        "alice",
        "aIice",
        "A1ICE",
        "b0b",
        "BOB",
        "rnodern",
        "vvill",
        "rrnn",
        "guest-1010",
        "x_-9",
    ] {
        let row = db
            .query_one("SELECT chatd_nick_key($1)", &[&nick])
            .await
            .unwrap();
        let sql: String = row.get(0);
        assert_eq!(sql, chatd::core::Nick::parse(nick).unwrap().key(), "{nick}");
    }
    // Rows written before step 6 were keyed by the lowercase nick. Two look-alikes among them
    // cannot both keep a row under one key: the one seen last does, and memberships follow.
    db.batch_execute(
        "INSERT INTO presence_nicks (nick_key, nick, instance, owner, session, seen_at) VALUES \
           ('a1ice', 'a1ice', 'old', 'old#1', 1, now() - interval '1 second'), \
           ('aiice', 'aIice', 'old', 'old#1', 2, now()), \
           ('bob', 'bob', 'old', 'old#1', 3, now()); \
         INSERT INTO presence_members (room, nick_key) VALUES ('r', 'a1ice'), ('r', 'aiice');",
    )
    .await
    .unwrap();
    db.batch_execute(include_str!(
        "../../migrations/postgres/0006_nick_skeleton.sql"
    ))
    .await
    .unwrap();
    let rows = db
        .query(
            "SELECT nick_key, nick FROM presence_nicks WHERE owner = 'old#1' ORDER BY nick_key",
            &[],
        )
        .await
        .unwrap();
    let rows: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        rows,
        [
            ("allce".to_string(), "aIice".to_string()),
            ("bob".to_string(), "bob".to_string())
        ]
    );
    let members = db
        .query(
            "SELECT nick_key FROM presence_members WHERE room = 'r'",
            &[],
        )
        .await
        .unwrap();
    let members: Vec<String> = members.iter().map(|r| r.get(0)).collect();
    assert_eq!(members, ["allce"]);
    server.shutdown().await;
}
