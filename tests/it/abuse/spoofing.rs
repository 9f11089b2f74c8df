//! Finding 7: bidi overrides (U+202E), zero-width and tag characters passed the control-character
//! filter (`x`, U+202E, `gnp.exe` reached terminals and pages reading `xexe.png`), and ASCII
//! look-alike nicks (`aIice` beside `alice`, `a1ice`) were accepted.

use serde_json::json;

use crate::support::http::HttpClient;
use crate::support::{Client, default_config, start_with};

#[tokio::test]
async fn invisible_and_direction_changing_text_is_refused_with_its_code_point() {
    let server = start_with(default_config()).await;
    let tcp = server.tcp_addr();
    let mut alice = Client::connect_from(tcp, "127.0.4.1").await;
    alice.send("/nick alice").await;
    alice.expect("* you are now alice").await;
    alice.join("files").await;
    let mut eve = Client::connect_from(tcp, "127.0.4.2").await;
    eve.send("/nick eve").await;
    eve.expect("* you are now eve").await;
    eve.join("files").await;
    alice.expect("* eve joined files").await;

    for (text, refusal) in [
        (
            "x\u{202E}gnp.exe",
            "! direction-changing characters are not allowed in messages (found U+202E \
             RIGHT-TO-LEFT OVERRIDE)",
        ),
        (
            "\u{2067}isolated",
            "! direction-changing characters are not allowed in messages (found U+2067 \
             RIGHT-TO-LEFT ISOLATE)",
        ),
        (
            "pay\u{200B}pal",
            "! invisible characters are not allowed in messages (found U+200B ZERO WIDTH SPACE)",
        ),
        (
            "hello\u{E0069}\u{E0067}\u{E006E}\u{E006F}\u{E0072}\u{E0065}",
            "! invisible characters are not allowed in messages (found U+E0069 TAG CHARACTER)",
        ),
        (
            "a\u{2060}b",
            "! invisible characters are not allowed in messages (found U+2060 WORD JOINER)",
        ),
    ] {
        eve.send(text).await;
        eve.expect(refusal).await;
    }
    // Names: the same characters, named; an error never echoes them raw.
    eve.send("/nick x\u{202E}gnp").await;
    eve.expect(
        "! invalid nick: direction-changing characters are not allowed in nicks (found U+202E \
         RIGHT-TO-LEFT OVERRIDE)",
    )
    .await;
    eve.send("/join gen\u{200D}eral").await;
    eve.expect(
        "! invalid room name: invisible characters are not allowed in room names (found U+200D \
         ZERO WIDTH JOINER)",
    )
    .await;
    eve.send("/x\u{202E}y").await;
    let unknown = eve.line().await;
    assert!(!unknown.contains('\u{202E}'), "echoed raw: {unknown:?}");
    // Over HTTP, the same words as a 400.
    let mallory = HttpClient::connect(server.http_addr(), "mallory").await;
    assert_eq!(mallory.command("/join files").await.status, 200);
    alice.expect("* mallory joined files").await;
    let refused = mallory.say("files", "x\u{202E}gnp.exe").await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.json["error"],
        "direction-changing characters are not allowed in messages (found U+202E RIGHT-TO-LEFT \
         OVERRIDE)"
    );

    // What people write keeps working: other scripts, emoji sequences joined by ZWJ, a flag.
    let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
    let england = "\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}";
    for text in [
        "שלום, مرحبا, こんにちは".to_string(),
        format!("family {family}, flag {england}"),
    ] {
        eve.send(&text).await;
        alice.expect(&format!("[files] eve: {text}")).await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn look_alike_nicks_are_taken() {
    let server = start_with(default_config()).await;
    let tcp = server.tcp_addr();
    let mut alice = Client::named(tcp, "alice").await;
    let mut bob = Client::named(tcp, "bob").await;
    let mut eve = Client::connect_from(tcp, "127.0.4.3").await;
    for nick in ["aIice", "a1ice", "ALICE", "AL1CE", "b0b", "B0B"] {
        eve.send(&format!("/nick {nick}")).await;
        eve.expect(&format!("! nick {nick} is taken")).await;
    }
    // Over HTTP too, as a 409, whether connecting or renaming.
    let mut anon = HttpClient::new(server.http_addr());
    let refused = anon.post("/connect", json!({ "nick": "a1ice" })).await;
    assert_eq!(refused.status, 409);
    assert_eq!(refused.json["error"], "nick a1ice is taken");
    let connected = anon.post("/connect", json!({ "nick": "carol" })).await;
    anon.token = connected.json["session"].as_str().map(str::to_string);
    assert_eq!(anon.command("/nick b0b").await.status, 409);
    // A nick that only looks like itself is fine, and once alice is gone hers is free.
    eve.send("/nick alicia").await;
    eve.expect("* you are now alicia").await;
    alice.send("/quit").await;
    alice.expect("* goodbye").await;
    let deadline = tokio::time::Instant::now() + crate::support::PATIENCE;
    loop {
        eve.send("/nick a1ice").await;
        let line = eve.line().await;
        if line == "* you are now a1ice" {
            break;
        }
        assert_eq!(line, "! nick a1ice is taken");
        assert!(
            tokio::time::Instant::now() < deadline,
            "alice's nick never freed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    bob.sync().await;
    server.shutdown().await;
}
