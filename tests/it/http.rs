//! The HTTP adapter over real HTTP: every endpoint and status, cross-protocol chat with netcat
//! users, and gap-free resume of event streams.

use crate::support;
use crate::support::http::HttpClient;
use crate::support::{Client, data_dir, default_config, sqlite, start, start_with, with_store};
use chatd::pipeline::config::{Durability, PersistConfig};
use serde_json::json;

#[tokio::test]
async fn connect_gives_a_token_and_a_cookie() {
    let server = start().await;
    let anon = HttpClient::new(server.http_addr());
    let answer = anon.post("/connect", json!({ "nick": "alice" })).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json["nick"], "alice");
    let token = answer.json["session"].as_str().unwrap();
    assert!(token.len() >= 32, "at least 128 bits: {token}");
    let cookie = answer.cookie.unwrap();
    assert!(
        cookie.starts_with(&format!("chatd_session={token}")),
        "{cookie}"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );

    let guest = anon.post("/connect", json!({})).await;
    assert_eq!(guest.status, 200);
    assert!(guest.json["nick"].as_str().unwrap().starts_with("guest-"));
    assert_ne!(guest.json["session"], answer.json["session"]);

    // The body is optional: no body at all is a guest too (`curl -X POST .../connect`).
    let bodiless = anon.post_raw("/connect", "text/plain", String::new()).await;
    assert_eq!(bodiless.status, 200, "{:?}", bodiless.json);
    assert!(
        bodiless.json["nick"]
            .as_str()
            .unwrap()
            .starts_with("guest-")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn connect_errors() {
    let server = start().await;
    let _alice = Client::named(server.tcp_addr(), "alice").await;
    let anon = HttpClient::new(server.http_addr());
    let taken = anon.post("/connect", json!({ "nick": "Alice" })).await;
    assert_eq!(
        (taken.status, taken.json["error"].as_str()),
        (409, Some("nick Alice is taken"))
    );
    let bad = anon.post("/connect", json!({ "nick": "no spaces" })).await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.json["error"]
            .as_str()
            .unwrap()
            .contains("1 to 32 of A-Z a-z 0-9 _ -")
    );
    let wrong_type = anon.post_raw("/connect", "text/plain", "{}".into()).await;
    assert_eq!(wrong_type.status, 415);
    assert!(
        wrong_type.json["error"]
            .as_str()
            .unwrap()
            .contains("application/json")
    );
    let malformed = anon
        .post_raw("/connect", "application/json", "{nick:".into())
        .await;
    assert_eq!(malformed.status, 400);
    assert!(
        malformed.json["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON")
    );
    let unknown_field = anon.post("/connect", json!({ "nickname": "x" })).await;
    assert_eq!(unknown_field.status, 400);
    let huge = anon
        .post_raw(
            "/connect",
            "application/json",
            format!("{{\"nick\":\"{}\"}}", "a".repeat(100_000)),
        )
        .await;
    assert_eq!(huge.status, 413);
    assert!(huge.json["error"].as_str().unwrap().contains("too large"));
    server.shutdown().await;
}

#[tokio::test]
async fn commands_answer_with_lines_and_data() {
    let server = start().await;
    let alice = HttpClient::connect(server.http_addr(), "alice").await;
    let join = alice.command("/join general").await;
    assert_eq!(join.status, 200);
    assert_eq!(
        join.json["lines"],
        json!(["* you joined general (1 member); no messages yet"])
    );
    assert_eq!(
        (join.json["room"].as_str(), join.json["members"].as_u64()),
        (Some("general"), Some(1))
    );
    let users = alice.command("/users").await;
    assert_eq!(users.json["users"], json!(["alice"]));
    assert_eq!(
        users.json["lines"],
        json!(["* users in general (1): alice"])
    );
    let rooms = alice.command("/rooms").await;
    assert_eq!(
        rooms.json["rooms"],
        json!([{ "name": "general", "members": 1 }])
    );
    let nick = alice.command("/nick alicia").await;
    assert_eq!(
        (nick.status, nick.json["nick"].as_str()),
        (200, Some("alicia"))
    );
    let help = alice.command("/help").await;
    assert!(help.json["lines"].as_array().unwrap().len() > 5);
    server.shutdown().await;
}

#[tokio::test]
async fn command_errors_have_http_twins() {
    let server = start().await;
    let _bob = Client::named(server.tcp_addr(), "bob").await;
    let alice = HttpClient::connect(server.http_addr(), "alice").await;
    let cases = [
        ("/dance", 400, "unknown command /dance (try /help)"),
        ("/nick bob", 409, "nick bob is taken"),
        ("/users nowhere", 404, "no room named nowhere"),
        ("/leave", 400, "you are not in any room"),
        ("hello", 400, "join a room first: /join ROOM"),
        (
            "/history 0",
            400,
            "usage: /history [N], with N from 1 to 100",
        ),
    ];
    for (command, status, error) in cases {
        let answer = alice.command(command).await;
        assert_eq!(
            (answer.status, answer.json["error"].as_str()),
            (status, Some(error)),
            "{command}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn sessions_are_required_and_checked() {
    let server = start().await;
    let mut client = HttpClient::new(server.http_addr());
    let none = client.command("/rooms").await;
    assert_eq!(none.status, 401);
    assert!(
        none.json["error"]
            .as_str()
            .unwrap()
            .contains("POST /connect")
    );
    client.token = Some("f".repeat(64));
    let forged = client.command("/rooms").await;
    assert_eq!(
        (forged.status, forged.json["error"].as_str()),
        (401, Some("unknown or expired session"))
    );
    let forged_message = client.say("general", "hi").await;
    assert_eq!(forged_message.status, 401);
    let (status, _) = client.get("/messages/general").await;
    assert_eq!(status, 401);
    server.shutdown().await;
}

#[tokio::test]
async fn quit_ends_the_session_and_frees_the_nick() {
    let server = start().await;
    let alice = HttpClient::connect(server.http_addr(), "alice").await;
    let quit = alice.command("/quit").await;
    assert_eq!(quit.status, 200);
    assert_eq!(quit.json["closed"], json!(true));
    assert_eq!(quit.json["lines"], json!(["* goodbye"]));
    assert_eq!(alice.command("/rooms").await.status, 401);
    HttpClient::connect(server.http_addr(), "alice").await;
    server.shutdown().await;
}

#[tokio::test]
async fn message_statuses() {
    let server = start().await;
    let alice = HttpClient::connect(server.http_addr(), "alice").await;
    let outside = alice.say("general", "hi").await;
    assert_eq!(outside.status, 403);
    assert_eq!(
        outside.json["error"],
        "you are not in general: /join general first"
    );
    alice.command("/join general").await;
    let sent = alice.say("general", "hi").await;
    assert_eq!(sent.status, 202);
    assert_eq!(sent.json, json!({ "room": "general", "seq": 1 }));
    assert_eq!(alice.say("general", "again").await.json["seq"], 2);
    let empty = alice.say("general", "  ").await;
    assert_eq!(
        (empty.status, empty.json["error"].as_str()),
        (400, Some("empty message"))
    );
    let long = alice.say("general", &"x".repeat(2001)).await;
    assert_eq!(
        (long.status, long.json["error"].as_str()),
        (400, Some("message too long (max 2000 characters)"))
    );
    let ansi = alice.say("general", "\u{1b}[2J").await;
    assert_eq!(ansi.status, 400);
    let bad_room = alice.say("bad room", "x").await;
    assert_eq!(bad_room.status, 400);
    server.shutdown().await;
}

#[tokio::test]
async fn health_static_files_and_unknown_paths() {
    let server = start().await;
    let client = HttpClient::new(server.http_addr());
    let (status, body) = client.get("/healthz").await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, body) = client.get("/").await;
    assert_eq!(status, 200);
    assert!(body.contains("<html"), "the browser client: {body}");
    for path in [
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/..%2fCargo.toml",
        "/nope.html",
    ] {
        let (status, body) = client.get(path).await;
        assert_eq!(status, 404, "{path}");
        assert!(!body.contains("[package]"), "{path} escaped static/");
    }
    let wrong = client
        .post_raw("/healthz", "application/json", "{}".into())
        .await;
    assert_eq!(wrong.status, 405);
    server.shutdown().await;
}

#[tokio::test]
async fn the_stream_sends_history_then_live_messages_and_presence() {
    let server = start().await;
    let mut tcp = Client::named(server.tcp_addr(), "carol").await;
    tcp.join("general").await;
    for i in 1..=12 {
        tcp.send(&format!("early {i}")).await;
    }
    tcp.sync().await;
    let alice = HttpClient::connect(server.http_addr(), "alice").await;
    let mut stream = alice.stream("general", None).await; // opening it joins the room
    for i in 3..=12 {
        let event = stream.next().await;
        assert_eq!(event.event, "message");
        assert_eq!(event.id.as_deref(), Some(i.to_string().as_str()));
        assert_eq!(event.data["text"], format!("early {i}"));
        assert_eq!(event.data["seq"], i);
        assert_eq!(event.data["nick"], "carol");
        assert_eq!(event.data["room"], "general");
        assert!(event.data["ts"].as_str().unwrap().ends_with('Z'));
    }
    tcp.expect("* alice joined general").await;
    // Cross-protocol, both ways.
    tcp.send("from netcat").await;
    assert_eq!(stream.next().await.data["text"], "from netcat");
    assert_eq!(alice.say("general", "from the browser").await.status, 202);
    tcp.expect("[general] alice: from the browser").await;
    assert_eq!(
        stream.next().await.data["text"],
        "from the browser",
        "HTTP sessions see their own messages"
    );
    // Presence.
    let mut dave = Client::named(server.tcp_addr(), "dave").await;
    dave.join("general").await;
    let presence = stream.next().await;
    assert_eq!(presence.event, "presence");
    assert_eq!(
        presence.data,
        json!({ "room": "general", "nick": "dave", "kind": "joined", "text": "dave joined general" })
    );
    dave.send("/nick david").await;
    let renamed = stream.next().await;
    assert_eq!(
        (
            renamed.data["kind"].as_str(),
            renamed.data["new_nick"].as_str()
        ),
        (Some("renamed"), Some("david"))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn resume_gets_exactly_the_missed_messages_while_traffic_flows() {
    // A ring big enough for the whole run: this test is about the resume mechanism, not about
    // how much history the server keeps (resuming from beyond the ring has its own test).
    let mut config = default_config();
    for layer in &mut config.layers {
        if let chatd::pipeline::config::LayerConfig::History(history) = layer {
            history.capacity = 1000;
        }
    }
    let server = start_with(config).await;
    let alice = HttpClient::connect(server.http_addr(), "alice").await;
    let mut first = alice.stream("general", None).await;
    let mut talker = Client::named(server.tcp_addr(), "talker").await;
    talker.join("general").await;
    let total = 300;
    // The talker keeps sending while alice's stream drops and resumes.
    let sender = tokio::spawn(async move {
        for i in 1..=total {
            talker.send(&format!("m{i}")).await;
            if i % 10 == 0 {
                tokio::task::yield_now().await;
            }
        }
        talker.sync().await;
        talker
    });
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let event = first.next_message().await;
        seen.push(event.data["seq"].as_u64().unwrap());
    }
    drop(first); // the connection drops mid-traffic
    let last = *seen.last().unwrap();
    let mut resumed = alice.stream("general", Some(last)).await;
    while seen.len() < total {
        let event = resumed.next().await;
        assert_ne!(
            event.event, "truncated",
            "a resume within the ring is never truncated"
        );
        if event.event == "message" {
            seen.push(event.data["seq"].as_u64().unwrap());
        }
    }
    let _talker = sender.await.unwrap();
    let expected: Vec<u64> = (1..=total as u64).collect();
    assert_eq!(seen, expected, "every message once, in order");
    server.shutdown().await;
}

#[tokio::test]
async fn resume_with_query_parameter_and_session_in_query() {
    let server = start().await;
    let alice = HttpClient::connect(server.http_addr(), "alice").await;
    alice.command("/join general").await;
    for i in 1..=4 {
        alice.say("general", &format!("m{i}")).await;
    }
    let token = alice.token.clone().unwrap();
    let url = format!(
        "{}/messages/general?session={token}&last_event_id=2",
        alice.base
    );
    let resp = reqwest::get(url).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = String::new();
    let mut stream = resp.bytes_stream();
    use futures_util::StreamExt;
    while !body.contains("\"m4\"") {
        let chunk = tokio::time::timeout(support::PATIENCE, stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(body.starts_with("retry: 2000\n\n"), "{body}");
    assert!(
        !body.contains("\"m2\"") && body.contains("id: 3\n") && body.contains("id: 4\n"),
        "{body}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn resuming_from_too_far_back_says_truncated() {
    // No store: the ring of 10 is all the server holds.
    let server = start_with(with_store(default_config(), PersistConfig::None {})).await;
    let alice = HttpClient::connect(server.http_addr(), "alice").await;
    alice.command("/join general").await;
    for i in 1..=30 {
        assert_eq!(alice.say("general", &format!("m{i}")).await.status, 202);
    }
    // The ring holds 21..=30; the client last saw 3.
    let mut stream = alice.stream("general", Some(3)).await;
    let truncated = stream.next().await;
    assert_eq!(truncated.event, "truncated");
    assert_eq!(
        truncated.data,
        json!({ "room": "general", "first_seq": 21 })
    );
    for seq in 21..=30 {
        assert_eq!(stream.next().await.data["seq"], seq);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn resuming_from_before_the_ring_reads_the_store() {
    // Write-ahead, so that every message is in the store before it is acknowledged.
    let db = data_dir().join("chatd.db");
    let server = start_with(with_store(default_config(), sqlite(&db, Durability::Sync))).await;
    let alice = HttpClient::connect(server.http_addr(), "alice").await;
    alice.command("/join general").await;
    for i in 1..=30 {
        assert_eq!(alice.say("general", &format!("m{i}")).await.status, 202);
    }
    let mut stream = alice.stream("general", Some(3)).await;
    for seq in 4..=30 {
        let event = stream.next().await;
        assert_eq!(
            (event.event.as_str(), event.data["seq"].as_u64()),
            ("message", Some(seq))
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_bad_last_event_id_is_refused() {
    let server = start().await;
    let alice = HttpClient::connect(server.http_addr(), "alice").await;
    let (status, body) = alice
        .get(&format!(
            "/messages/general?session={}&last_event_id=abc",
            alice.token.as_ref().unwrap()
        ))
        .await;
    assert_eq!(status, 400);
    assert!(
        body.contains("Last-Event-ID must be a message seq"),
        "{body}"
    );
    server.shutdown().await;
}

/// A server whose HTTP sessions expire after 1 s idle, and a netcat user "carol" in #general who
/// sees what happens to the browser users there.
async fn idle_after_one_second() -> (chatd::server::Server, Client) {
    let mut config = default_config();
    config.server.session_idle_secs = 1;
    let server = start_with(config).await;
    let mut tcp = Client::named(server.tcp_addr(), "carol").await;
    tcp.join("general").await;
    (server, tcp)
}

#[tokio::test]
async fn idle_sessions_expire_and_free_their_nick() {
    let (server, mut tcp) = idle_after_one_second().await;
    let alice = HttpClient::connect(server.http_addr(), "alice").await;
    alice.command("/join general").await;
    tcp.expect("* alice joined general").await;
    // No stream, no request: the session expires and leaves like a disconnecting user.
    tcp.expect("* alice quit").await;
    assert_eq!(alice.command("/rooms").await.status, 401);
    HttpClient::connect(server.http_addr(), "alice").await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_open_stream_keeps_a_session_alive() {
    let (server, mut tcp) = idle_after_one_second().await;
    let alice = HttpClient::connect(server.http_addr(), "alice").await;
    let mut stream = alice.stream("general", None).await;
    tcp.expect("* alice joined general").await;
    // Several idle periods pass with only the stream open (marked by traffic on the stream).
    for i in 0..4 {
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        tcp.send(&format!("tick {i}")).await;
        assert_eq!(
            stream.next_message().await.data["text"],
            format!("tick {i}")
        );
    }
    assert_eq!(
        alice.command("/users").await.json["users"],
        json!(["alice", "carol"])
    );
    server.shutdown().await;
}
