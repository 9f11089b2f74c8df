//! Every limit with a clear error: what a client reads when it hits one, that the options in the
//! pipeline file set them, and that the server (and every other user) goes on afterwards.
//!
//! Per-address limits need several addresses: Linux routes all of 127.0.0.0/8 to loopback, so a
//! client bound to 127.0.0.2 is, to the server, another machine.

use crate::support;
use std::time::Duration;

use crate::support::http::HttpClient;
use crate::support::{
    Client, PATIENCE, connect_from, default_config, read_until_closed, start_with,
};
use chatd::pipeline::PipelineConfig;
use chatd::pipeline::config::LayerConfig;
use serde_json::{Value, json};

/// The default test pipeline with `edit` applied to its route layer's options.
fn with_route(edit: impl Fn(&mut chatd::pipeline::config::RouteConfig)) -> PipelineConfig {
    let mut config = default_config();
    for layer in &mut config.layers {
        if let LayerConfig::Route(route) = layer {
            edit(route);
        }
    }
    config
}

/// Retries `connect` until the server has given back the slot of a closed connection (it
/// notices the close asynchronously), bounded by [`PATIENCE`].
async fn eventually<T, F: Future<Output = Option<T>>>(mut attempt: impl FnMut() -> F) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(done) = attempt().await {
            return done;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the limit never let up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_session_may_be_in_max_rooms_per_session_rooms() {
    let server = start_with(with_route(|r| r.max_rooms_per_session = 3)).await;
    let addr = server.tcp_addr();
    let mut alice = Client::named(addr, "alice").await;
    for room in ["a", "b", "c"] {
        alice.join(room).await;
    }
    alice.send("/join d").await;
    alice
        .expect("! you are in 3 rooms already (max 3): /leave one first")
        .await;
    alice.send("/join b").await;
    alice.expect("* b is now your current room").await;
    alice.send("/leave a").await;
    alice.expect_prefix("* you left a").await;
    alice.join("d").await;
    // HTTP reads the same words, as a 403.
    let bob = HttpClient::connect(server.http_addr(), "bob").await;
    for room in ["a", "b", "c"] {
        assert_eq!(bob.command(&format!("/join {room}")).await.status, 200);
    }
    let refused = bob.command("/join d").await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        refused.json["error"],
        "you are in 3 rooms already (max 3): /leave one first"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_instance_keeps_at_most_max_rooms_and_frees_rooms_nobody_wrote_in() {
    let server = start_with(with_route(|r| {
        r.max_rooms = 2;
        r.max_rooms_per_session = 2;
    }))
    .await;
    let addr = server.tcp_addr();
    let mut alice = Client::named(addr, "alice").await;
    let mut bob = Client::named(addr, "bob").await;
    alice.join("a").await;
    alice.join("b").await;
    bob.send("/join c").await;
    bob.expect(
        "! this server has 2 rooms already, its limit: join one of them (/rooms lists them) or \
         try again later",
    )
    .await;
    bob.join("a").await; // an existing room is always fine
    alice.expect("* bob joined a").await;
    // b only ever had a visitor: when she leaves, it is freed and c fits.
    alice.send("/leave b").await;
    alice.expect_prefix("* you left b").await;
    bob.join("c").await;
    assert_eq!(server.hub().rooms().len(), 2);
    // A room that carried a message stays (its numbering and history must go on).
    bob.send("/leave a").await;
    bob.expect_prefix("* you left a").await;
    alice.expect("* bob left a").await;
    alice.send("/join a").await;
    alice.expect("* a is now your current room").await;
    alice.send("kept").await;
    alice.send("/leave a").await;
    alice.expect_prefix("* you left a").await;
    let a = chatd::core::RoomName::parse("a").unwrap();
    assert!(server.hub().rooms().get(&a).is_some());
    alice.send("/join d").await;
    alice
        .expect_prefix("! this server has 2 rooms already")
        .await;
    // Over HTTP the full server is a 503.
    let carol = HttpClient::connect(server.http_addr(), "carol").await;
    let full = carol.command("/join e").await;
    assert_eq!(full.status, 503, "{}", full.json);
    server.shutdown().await;
}

#[tokio::test]
async fn connections_per_address_count_tcp_and_http_together() {
    let mut config = default_config();
    config.server.max_connections_per_ip = 2;
    let server = start_with(config).await;
    let (tcp, http) = (server.tcp_addr(), server.http_addr());
    let first = Client::connect(tcp).await;
    let _second = Client::connect(tcp).await;
    let mut third = tokio::net::TcpStream::connect(tcp).await.unwrap();
    assert_eq!(
        read_until_closed(&mut third).await,
        "! too many connections from your address (max 2)\n"
    );
    let refused = reqwest::get(format!("http://{http}/")).await.unwrap();
    assert_eq!(refused.status().as_u16(), 429);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "error": "too many connections from your address (max 2)" })
    );
    // Another address is not affected.
    let mut other = Client::connect_from(tcp, "127.0.0.2").await;
    other.send("/rooms").await;
    other.expect_prefix("* no rooms").await;
    // A closed connection gives its slot back.
    drop(first);
    eventually(|| async {
        let mut stream = tokio::net::TcpStream::connect(tcp).await.unwrap();
        let mut line = vec![0u8; 18];
        tokio::io::AsyncReadExt::read_exact(&mut stream, &mut line)
            .await
            .ok()?;
        (line == b"* welcome to chatd").then_some(())
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_total_connection_limit_refuses_newcomers_with_503_and_a_line() {
    let mut config = default_config();
    config.server.max_connections_per_ip = 1;
    config.server.max_connections = 2;
    let server = start_with(config).await;
    let (tcp, http) = (server.tcp_addr(), server.http_addr());
    let _one = Client::connect_from(tcp, "127.0.0.1").await;
    let _two = Client::connect_from(tcp, "127.0.0.2").await;
    let mut three = connect_from(tcp, "127.0.0.3").await;
    assert_eq!(
        read_until_closed(&mut three).await,
        "! the server is full (2 connections at most): try again later\n"
    );
    let client = reqwest::Client::builder()
        .local_address("127.0.0.4".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let refused = client.get(format!("http://{http}/")).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(
        body["error"],
        "the server is full (2 connections at most): try again later"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn refusals_in_flight_are_bounded_and_the_rest_are_closed_without_a_word() {
    let mut config = default_config();
    config.server.max_connections_per_ip = 1;
    let server = start_with(config).await;
    let tcp = server.tcp_addr();
    let _holder = Client::connect_from(tcp, "127.0.0.1").await;
    // Refused connections that stay open are kept for a moment to be told why, but only so many
    // at once (64): one address connecting in a loop cannot pile up descriptors.
    let mut told = Vec::new();
    for _ in 0..64 {
        let mut refused = connect_from(tcp, "127.0.0.1").await;
        let mut line = String::new();
        let mut reader = tokio::io::BufReader::new(&mut refused);
        tokio::time::timeout(
            PATIENCE,
            tokio::io::AsyncBufReadExt::read_line(&mut reader, &mut line),
        )
        .await
        .expect("a refusal line")
        .unwrap();
        assert_eq!(line, "! too many connections from your address (max 1)\n");
        told.push(refused); // kept open: the server holds it while it drains
    }
    let mut extra = connect_from(tcp, "127.0.0.1").await;
    assert_eq!(
        read_until_closed(&mut extra).await,
        "",
        "closed at once, without the line"
    );
    drop(told);
    server.shutdown().await;
}

#[tokio::test]
async fn http_sessions_per_address_are_limited_even_over_one_connection() {
    let mut config = default_config();
    config.server.max_connections_per_ip = 2;
    let server = start_with(config).await;
    // One client, one kept-alive connection, several sessions.
    let mut anon = HttpClient::new(server.http_addr());
    let mut tokens = Vec::new();
    for nick in ["s1", "s2"] {
        let answer = anon.post("/connect", json!({ "nick": nick })).await;
        assert_eq!(answer.status, 200, "{}", answer.json);
        tokens.push(answer.json["session"].as_str().unwrap().to_string());
    }
    let third = anon.post("/connect", json!({ "nick": "s3" })).await;
    assert_eq!(third.status, 429);
    assert_eq!(
        third.json["error"],
        "too many sessions from your address (max 2)"
    );
    // A session that ends gives its slot back.
    anon.token = Some(tokens[0].clone());
    assert_eq!(anon.command("/quit").await.json["closed"], true);
    anon.token = None;
    let again = anon.post("/connect", json!({ "nick": "s3" })).await;
    assert_eq!(again.status, 200, "{}", again.json);
    server.shutdown().await;
}

#[tokio::test]
async fn the_existing_limits_follow_their_options() {
    let mut config = default_config();
    config.server.max_line_bytes = 100;
    config.server.max_body_bytes = 1024;
    for layer in &mut config.layers {
        if let LayerConfig::Route(route) = layer {
            route.max_message_chars = 10;
        }
    }
    let server = start_with(config).await;
    let mut alice = Client::named(server.tcp_addr(), "alice").await;
    alice.join("general").await;
    alice.send(&"x".repeat(101)).await;
    alice.expect("! line too long (max 100 bytes)").await;
    alice.send(&"y".repeat(11)).await;
    alice.expect("! message too long (max 10 characters)").await;
    let anon = HttpClient::new(server.http_addr());
    let big = anon
        .post_raw(
            "/connect",
            "application/json",
            format!("{{\"nick\":\"{}\"}}", "a".repeat(2000)),
        )
        .await;
    assert_eq!(big.status, 413);
    assert_eq!(big.json["error"], "request body too large (max 1024 bytes)");
    server.shutdown().await;
}

#[test]
fn check_names_a_bad_limit_and_its_range() {
    let dir = support::data_dir();
    let file = dir.join("limits.toml");
    let text = chatd::pipeline::load::EMBEDDED_DEFAULT
        .replace(
            "max_connections_per_ip = 64 ",
            "max_connections_per_ip = 0 ",
        )
        .replace("max_rooms_per_session = 50", "max_rooms_per_session = 0");
    std::fs::write(&file, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatd"))
        .args(["--pipeline", file.to_str().unwrap(), "--check"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("2 problems"), "{stderr}");
    assert!(
        stderr.contains(
            "[server]: option `max_connections_per_ip` = 0 is out of range; it must be from 1 to 1000000"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "(route): option `max_rooms_per_session` = 0 is out of range; it must be from 1 to 10000"
        ),
        "{stderr}"
    );
}
