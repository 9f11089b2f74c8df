//! Finding 6: the page had no security headers, POSTs had no Origin check, and the joining
//! `GET /messages/ROOM` could be triggered by a same-site page (another port on the same host).

use serde_json::{Value, json};

use crate::support::http::HttpClient;
use crate::support::{default_config, start_with};

/// The headers every response must carry, with a part of their value.
const HARDENED: [(&str, &str); 4] = [
    ("content-security-policy", "frame-ancestors 'none'"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
];

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let server = start_with(default_config()).await;
    let base = format!("http://{}", server.http_addr());
    for path in ["/", "/js/app.js", "/style.css", "/healthz", "/nowhere"] {
        let response = reqwest::get(format!("{base}{path}")).await.expect(path);
        let headers = response.headers();
        for (name, part) in HARDENED {
            let value = headers.get(name).and_then(|v| v.to_str().ok());
            assert!(
                value.is_some_and(|v| v.contains(part)),
                "{path}: {name} = {value:?}"
            );
        }
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains("style-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
    }
    server.shutdown().await;
}

#[test]
fn the_page_has_no_inline_script_or_style_for_the_policy_to_block() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/static");
    let html = std::fs::read_to_string(format!("{dir}/index.html")).expect("index.html");
    // What the page is, not what its comments say.
    let html: String = html
        .split("<!--")
        .enumerate()
        .map(|(i, part)| match i {
            0 => part,
            _ => part.split_once("-->").map_or("", |(_, after)| after),
        })
        .collect();
    for tag in html.split("<script").skip(1) {
        let open = tag.split('>').next().unwrap_or_default();
        assert!(open.contains("src="), "an inline <script{open}>");
    }
    assert!(!html.contains("<style"), "an inline <style>");
    assert!(!html.contains(" style="), "a style attribute");
    let handler = html.split(" on").skip(1).find(|rest| {
        let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
        !name.is_empty() && rest[name.len()..].starts_with('=')
    });
    assert_eq!(handler, None, "an inline event handler");
    for entry in std::fs::read_dir(format!("{dir}/js")).expect("static/js") {
        let path = entry.expect("an entry").path();
        let js = std::fs::read_to_string(&path).expect("a script");
        for banned in [
            "eval(",
            "new Function(",
            "setAttribute('style'",
            ".innerHTML",
            "document.write",
        ] {
            assert!(!js.contains(banned), "{} uses {banned}", path.display());
        }
    }
}

#[tokio::test]
async fn state_changes_from_another_origin_are_refused_and_curl_is_not() {
    let server = start_with(default_config()).await;
    let addr = server.http_addr();
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    let sessions = || server.hub().sessions().len();

    // A page on another site, or on another port of this host (same-site), cannot connect.
    for (header, value) in [
        ("origin", "http://evil.example".to_string()),
        ("origin", format!("http://{}:1", addr.ip())),
        ("origin", "null".to_string()),
        ("sec-fetch-site", "cross-site".to_string()),
        ("sec-fetch-site", "same-site".to_string()),
    ] {
        let refused = client
            .post(format!("{base}/connect"))
            .header(header, &value)
            .json(&json!({ "nick": "victim" }))
            .send()
            .await
            .expect("an answer");
        assert_eq!(refused.status(), 403, "{header}: {value}");
        let body: Value = refused.json().await.expect("JSON");
        assert_eq!(
            body["error"],
            "cross-site request refused: only chatd's own page (or a client that is not a \
             browser, such as curl) may do this"
        );
    }
    assert_eq!(sessions(), 0, "no session was opened");

    // A session opened by curl (no Origin) or by chatd's own page (its own origin) works...
    let own_page = client
        .post(format!("{base}/connect"))
        .header("origin", &base)
        .header("sec-fetch-site", "same-origin")
        .json(&json!({ "nick": "pageuser" }))
        .send()
        .await
        .expect("connect");
    assert_eq!(own_page.status(), 200);
    let victim = HttpClient::connect(addr, "victim").await;
    let token = victim.token.clone().expect("a token");
    assert_eq!(victim.command("/join lobby").await.status, 200);

    // ...but another site's page holding its cookie can make it neither talk, nor command, nor
    // join a room by opening its stream (a GET that changes state).
    let cookie = format!("chatd_session={token}");
    let forged = [
        client
            .post(format!("{base}/message"))
            .json(&json!({ "room": "lobby", "text": "forged" })),
        client
            .post(format!("{base}/command"))
            .json(&json!({ "command": "/nick pwned" })),
        client.get(format!("{base}/messages/trap")),
        client.get(format!("{base}/messages/trap?session={token}")),
    ];
    for request in forged {
        let answer = request
            .header("cookie", &cookie)
            .header("sec-fetch-site", "same-site")
            .send()
            .await
            .expect("an answer");
        assert_eq!(answer.status(), 403);
    }
    let rooms = victim.command("/rooms").await;
    assert_eq!(
        rooms.json["rooms"],
        json!([{ "name": "lobby", "members": 1 }])
    );
    let history = victim.command("/history").await;
    assert!(
        !history.json.to_string().contains("forged"),
        "{}",
        history.json
    );
    let users = victim.command("/users lobby").await;
    assert_eq!(users.json["users"], json!(["victim"]), "not renamed");
    // curl, which sends neither header, is not affected.
    let mut stream = victim.stream("lobby", None).await;
    assert_eq!(victim.say("lobby", "curl still works").await.status, 202);
    assert_eq!(stream.next_message().await.data["text"], "curl still works");
    server.shutdown().await;
}
