//! Findings 5 and 8, on the real binary: the session token was logged at `RUST_LOG=debug`
//! (`uri=/messages/ROOM?session=<token>`), and any client could write `ERROR` lines into the log
//! at will (each 503, such as "rooms full", logged one).

use futures_util::StreamExt;
use serde_json::{Value, json};

use super::{LoggedChatd, http_from};
use crate::support::{PATIENCE, connect_from, data_dir, read_until_closed};
use chatd::pipeline::load::EMBEDDED_DEFAULT;

#[tokio::test]
async fn no_log_line_carries_a_session_token_even_at_trace_level() {
    let dir = data_dir();
    let chatd = LoggedChatd::start(&dir, EMBEDDED_DEFAULT, Some("trace"));
    let base = format!("http://{}", chatd.http);
    let client = reqwest::Client::new();
    let connected: Value = client
        .post(format!("{base}/connect"))
        .json(&json!({ "nick": "secretive" }))
        .send()
        .await
        .expect("connect")
        .json()
        .await
        .expect("JSON");
    let token = connected["session"].as_str().expect("a token").to_string();
    // The token in every place it may travel: the bearer header, the cookie, the query string.
    let joined = client
        .post(format!("{base}/command"))
        .bearer_auth(&token)
        .json(&json!({ "command": "/join vault" }))
        .send()
        .await
        .expect("join");
    assert_eq!(joined.status(), 200);
    let said = client
        .post(format!("{base}/message"))
        .header("cookie", format!("chatd_session={token}"))
        .json(&json!({ "room": "vault", "text": "psst" }))
        .send()
        .await
        .expect("say");
    assert_eq!(said.status(), 202);
    let stream = client
        .get(format!(
            "{base}/messages/vault?session={token}&last_event_id=0"
        ))
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), 200);
    let mut body = stream.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("psst") {
        let chunk = tokio::time::timeout(PATIENCE, body.next()).await;
        let chunk = chunk
            .expect("an event in time")
            .expect("a chunk")
            .expect("bytes");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(body);
    // A wrong token and an expired-looking one are not logged either.
    let unknown = client
        .get(format!("{base}/messages/vault?session={token}0"))
        .send()
        .await
        .expect("refused");
    assert_eq!(unknown.status(), 401);

    let log = chatd.stop().await;
    assert!(
        log.contains("/messages/vault?session=REDACTED&last_event_id=0"),
        "the request was logged, its token redacted:\n{log}"
    );
    assert!(!log.contains(&token), "the token is in the log:\n{log}");
    assert!(
        !log.contains(&token[..16]),
        "part of the token is in the log"
    );
}

/// The default pipeline with a server that fills up fast: 2 rooms, 4 connections per address,
/// 2 lines a second per session.
fn crowded() -> String {
    let text = EMBEDDED_DEFAULT
        .replace("max_rooms = 10000", "max_rooms = 2")
        .replace("max_rooms_per_session = 50", "max_rooms_per_session = 2")
        .replace(
            "max_connections_per_ip = 64 ",
            "max_connections_per_ip = 4 ",
        )
        .replace("per_second = 10 ", "per_second = 2 ");
    for edited in [
        "max_rooms = 2",
        "max_connections_per_ip = 4 ",
        "per_second = 2 ",
    ] {
        assert!(
            text.contains(edited),
            "the default pipeline changed: {edited}"
        );
    }
    text
}

#[tokio::test]
async fn a_flood_of_client_caused_refusals_writes_no_error_line_and_few_warnings() {
    let dir = data_dir();
    let chatd = LoggedChatd::start(&dir, &crowded(), None);
    let base = format!("http://{}", chatd.http);
    let client = http_from("127.0.3.1");
    let connected: Value = client
        .post(format!("{base}/connect"))
        .json(&json!({ "nick": "mallory" }))
        .send()
        .await
        .expect("connect")
        .json()
        .await
        .expect("JSON");
    let filler = connected["session"].as_str().expect("a token").to_string();
    for room in ["room0", "room1"] {
        let joined = client
            .post(format!("{base}/command"))
            .bearer_auth(&filler)
            .json(&json!({ "command": format!("/join {room}") }))
            .send()
            .await
            .expect("join");
        assert_eq!(joined.status(), 200, "{room}");
    }
    // The server holds its 2 rooms: a newcomer's joins are refused as full (503) until the
    // rate limit (429) stops them; and bad JSON (400), and a cross-site connect (403).
    let connected: Value = client
        .post(format!("{base}/connect"))
        .json(&json!({ "nick": "mallory2" }))
        .send()
        .await
        .expect("connect")
        .json()
        .await
        .expect("JSON");
    let token = connected["session"].as_str().expect("a token").to_string();
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for i in 2..32 {
        let requests = [
            client
                .post(format!("{base}/command"))
                .bearer_auth(&token)
                .json(&json!({ "command": format!("/join room{i}") })),
            client
                .post(format!("{base}/message"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{not json"),
            client
                .post(format!("{base}/connect"))
                .header("origin", "http://evil.example"),
        ];
        for request in requests {
            let status = request.send().await.expect("an answer").status().as_u16();
            *by_status.entry(status).or_default() += 1;
        }
    }
    // Connections over the per-address limit (4), 30 times.
    let holders: Vec<_> =
        futures_util::future::join_all((0..4).map(|_| connect_from(chatd.tcp, "127.0.3.2"))).await;
    for _ in 0..30 {
        let mut refused = connect_from(chatd.tcp, "127.0.3.2").await;
        let line = read_until_closed(&mut refused).await;
        assert_eq!(line, "! too many connections from your address (max 4)\n");
    }
    drop(holders);
    println!("answers by status: {by_status:?}");
    for status in [503, 429, 400, 403] {
        assert!(
            by_status.get(&status).copied().unwrap_or(0) > 0,
            "no {status} among {by_status:?}"
        );
    }

    let log = chatd.stop().await;
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ")).collect();
    assert!(
        errors.is_empty(),
        "client-caused ERROR lines:\n{}",
        errors.join("\n")
    );
    // One warning per kind of refusal (503s, the rate limit, the connection limit) in a minute.
    assert!(
        (1..=3).contains(&warnings.len()),
        "{} warnings for 120 refusals:\n{}",
        warnings.len(),
        warnings.join("\n")
    );
    assert!(
        warnings.iter().any(|w| w.contains("answered 503")),
        "{}",
        warnings.join("\n")
    );
}
