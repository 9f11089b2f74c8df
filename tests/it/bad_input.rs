//! The bad-input suite: what a careless or hostile client can send, and what it gets back.
//!
//! Every case asserts three things: the clear error the client reads, that the server never
//! echoes anything that could repaint a terminal, and that two bystanders on the same server
//! still chat afterwards ([`Bystanders::still_chat`]). Where a case could grow the server's
//! memory (a 1 MiB line, 10,000 joins) it runs against the built binary and compares its
//! resident size before and after against a generous bound: a leak of the input's size fails,
//! allocator noise does not.

use crate::support;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::binary::Chatd;
use crate::support::http::HttpClient;
use crate::support::{Client, PATIENCE, default_config, read_until_closed, start, start_with};

/// Two users in `general` who check, after each bad input, that chat still works for them.
struct Bystanders {
    alice: Client,
    bob: Client,
    said: usize,
}

impl Bystanders {
    async fn join(addr: SocketAddr) -> Bystanders {
        let mut alice = Client::named(addr, "alice").await;
        let mut bob = Client::named(addr, "bob").await;
        alice.join("general").await;
        bob.join("general").await;
        alice.expect("* bob joined general").await;
        Bystanders {
            alice,
            bob,
            said: 0,
        }
    }

    /// Alice says something and Bob reads exactly that next: nothing the bad input caused
    /// reached him in between.
    async fn still_chat(&mut self) {
        self.said += 1;
        let text = format!("still here {}", self.said);
        self.alice.send(&text).await;
        self.bob.expect(&format!("[general] alice: {text}")).await;
    }
}

/// A client in `general` with the bystanders, for the cases that need a room.
async fn intruder(addr: SocketAddr, by: &mut Bystanders) -> Client {
    let mut mallory = Client::named(addr, "mallory").await;
    mallory.join("general").await;
    by.alice.expect("* mallory joined general").await;
    by.bob.expect("* mallory joined general").await;
    mallory
}

/// The next line, asserted free of control characters (an ESC would start an ANSI sequence).
async fn clean_line(client: &mut Client) -> String {
    let line = client.line().await;
    assert!(
        !line.chars().any(|c| c.is_control()),
        "a control character reached a terminal: {line:?}"
    );
    line
}

#[tokio::test]
async fn invalid_utf8_is_refused_and_the_session_goes_on() {
    let server = start().await;
    let mut by = Bystanders::join(server.tcp_addr()).await;
    let mut mallory = intruder(server.tcp_addr(), &mut by).await;
    for bad in [
        &b"caf\xe9\n"[..],
        b"\xff\xfe\xfd\n",
        b"\xc0\x80 overlong NUL\n",
    ] {
        mallory.send_raw(bad).await;
        assert_eq!(
            clean_line(&mut mallory).await,
            "! invalid UTF-8: lines must be UTF-8 text"
        );
    }
    by.still_chat().await;
    server.shutdown().await;
}

#[tokio::test]
async fn nul_and_other_control_characters_are_refused() {
    let server = start().await;
    let mut by = Bystanders::join(server.tcp_addr()).await;
    let mut mallory = intruder(server.tcp_addr(), &mut by).await;
    for (text, code) in [
        ("nul \0 inside", "0000"),
        ("bell \u{7}", "0007"),
        ("back\u{8}space", "0008"),
        ("carriage \r return", "000D"),
        ("delete \u{7f}", "007F"),
        ("c1 csi \u{9b}2J", "009B"),
    ] {
        mallory.send(text).await;
        assert_eq!(
            clean_line(&mut mallory).await,
            format!("! control characters are not allowed in messages (found U+{code})")
        );
    }
    // A tab is fine.
    mallory.send("tab\there").await;
    by.bob.expect("[general] mallory: tab\there").await;
    by.alice.expect("[general] mallory: tab\there").await;
    by.still_chat().await;
    server.shutdown().await;
}

#[tokio::test]
async fn ansi_escapes_never_reach_another_terminal_nor_come_back_raw() {
    let server = start().await;
    let addr = server.tcp_addr();
    let mut by = Bystanders::join(addr).await;
    let mut mallory = intruder(addr, &mut by).await;
    let clear = "\u{1b}[2J\u{1b}[H";
    let cases = [
        // A message: refused, naming the character.
        (
            format!("{clear}you have been hacked"),
            "! control characters are not allowed in messages (found U+001B)",
        ),
        // A nick, a room, a command name: refused, the input quoted escaped.
        (
            format!("/nick {clear}x"),
            "! invalid nick \"\\u{1b}[2J\\u{1b}[Hx\": use 1 to 32 of A-Z a-z 0-9 _ -",
        ),
        (
            format!("/join {clear}"),
            "! invalid room name \"\\u{1b}[2J\\u{1b}[H\": use 1 to 32 of a-z 0-9 _ - (an \
             optional leading # is fine)",
        ),
        (
            format!("/{clear}"),
            "! unknown command /\\u{1b}[2j\\u{1b}[h (try /help)",
        ),
        (
            "//\u{1b}]0;new window title\u{7}".to_string(),
            "! control characters are not allowed in messages (found U+001B)",
        ),
    ];
    for (line, expected) in cases {
        mallory.send(&line).await;
        assert_eq!(clean_line(&mut mallory).await, expected);
    }
    // Over HTTP: the same refusal, and JSON escapes whatever it quotes.
    let web = HttpClient::connect(server.http_addr(), "web").await;
    assert_eq!(web.command("/join general").await.status, 200);
    by.alice.expect("* web joined general").await;
    by.bob.expect("* web joined general").await;
    let said = web.say("general", &format!("{clear}boo")).await;
    assert_eq!(said.status, 400);
    assert_eq!(
        said.json["error"],
        "control characters are not allowed in messages (found U+001B)"
    );
    let command = web.command(&format!("/{clear}")).await;
    assert_eq!(command.status, 400);
    assert!(
        !command.json["error"].as_str().unwrap().contains('\u{1b}'),
        "{}",
        command.json
    );
    by.still_chat().await;
    // Mallory's bad nick and room changed nothing.
    by.alice.send("/users").await;
    assert_eq!(
        clean_line(&mut by.alice).await,
        "* users in general (4): alice, bob, mallory, web"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_connects_and_sends_nothing_holds_up_nobody() {
    let server = start().await;
    // One that never even reads its welcome, and one that reads it and goes quiet.
    let _mute = TcpStream::connect(server.tcp_addr()).await.unwrap();
    let mut quiet = Client::connect(server.tcp_addr()).await;
    let mut by = Bystanders::join(server.tcp_addr()).await;
    by.still_chat().await;
    // And one that opens the HTTP port and sends nothing.
    let _silent_http = TcpStream::connect(server.http_addr()).await.unwrap();
    let web = HttpClient::new(server.http_addr());
    assert_eq!(web.get("/healthz").await.0, 200);
    by.still_chat().await;
    // The quiet one was not dropped: silence is allowed, it answers when spoken to.
    quiet.send("/rooms").await;
    quiet.expect("* rooms: general (2)").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_half_closed_connection_gets_its_reply_and_is_cleaned_up() {
    let server = start().await;
    let mut by = Bystanders::join(server.tcp_addr()).await;
    let before = server.hub().sessions().len();
    let mut half = TcpStream::connect(server.tcp_addr()).await.unwrap();
    half.write_all(b"/join general\n").await.unwrap();
    half.shutdown().await.unwrap(); // FIN: "I have nothing more to say", still reading
    let got = read_until_closed(&mut half).await;
    let lines: Vec<&str> = got.lines().collect();
    assert!(lines[0].starts_with("* welcome to chatd"), "{got:?}");
    assert!(
        lines[1].starts_with("* you joined general (3 members)"),
        "{got:?}"
    );
    // Bob saw the guest come and go; the session is gone from the server.
    let joined = by.bob.expect_prefix("* guest-").await;
    assert!(joined.ends_with(" joined general"), "{joined}");
    let quit = by.bob.expect_prefix("* guest-").await;
    assert!(quit.ends_with(" quit"), "{quit}");
    by.alice.expect(&joined).await;
    by.alice.expect(&quit).await;
    assert_eq!(server.hub().sessions().len(), before);
    by.still_chat().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_slow_header_client_is_cut_off_by_the_header_read_timeout() {
    let mut config = default_config();
    config.server.header_read_timeout_secs = 1;
    let server = start_with(config).await;
    let mut by = Bystanders::join(server.tcp_addr()).await;
    let mut slow = TcpStream::connect(server.http_addr()).await.unwrap();
    // A request head that never ends, one header line at a time.
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            // Trickle one more header now and then, as slowloris does.
            tokio::select! {
                read = slow.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                },
                _ = tokio::time::sleep(Duration::from_millis(300)) => {
                    if slow.write_all(b"X-Slow: 1\r\n").await.is_err() {
                        return;
                    }
                }
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the slow client was never cut off");
    let got = String::from_utf8_lossy(&got);
    assert!(
        got.is_empty() || got.starts_with("HTTP/1.1 408"),
        "unexpected answer: {got:?}"
    );
    let web = HttpClient::new(server.http_addr());
    assert_eq!(web.get("/healthz").await.0, 200);
    by.still_chat().await;
    server.shutdown().await;
}

/// Sends raw bytes to the HTTP port and returns the status code and the body.
async fn raw_http(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_string();
    (status, body)
}

#[tokio::test]
async fn http_bad_requests_get_their_clear_error() {
    let server = start().await;
    let mut by = Bystanders::join(server.tcp_addr()).await;
    let anon = HttpClient::new(server.http_addr());
    // Malformed JSON, the wrong content type, a wrong field.
    for (content_type, body, status, error) in [
        ("application/json", "{\"nick\": ", 400, "invalid JSON: "),
        ("application/json", "[1, 2", 400, "invalid JSON: "),
        // A blank body is malformed; no body at all is a guest (`POST /connect`'s is optional).
        ("application/json", " ", 400, "invalid JSON: "),
        (
            "text/plain",
            "{}",
            415,
            "send JSON with Content-Type: application/json",
        ),
        (
            "application/x-www-form-urlencoded",
            "nick=x",
            415,
            "send JSON with",
        ),
        (
            "application/json",
            "{\"nick\": 5}",
            400,
            "invalid JSON: invalid type",
        ),
    ] {
        let answer = anon.post_raw("/connect", content_type, body.into()).await;
        assert_eq!(answer.status, status, "{body:?}: {}", answer.json);
        assert!(
            answer.json["error"].as_str().unwrap().starts_with(error),
            "{body:?}: {}",
            answer.json
        );
    }
    // Unknown, forged and missing session tokens.
    let real = HttpClient::connect(server.http_addr(), "real").await;
    let token = real.token.clone().unwrap();
    let mut forged = token.clone();
    forged.replace_range(..1, if token.starts_with('0') { "1" } else { "0" });
    for (token, error) in [
        (Some("0".repeat(64)), "unknown or expired session"),
        (Some(forged), "unknown or expired session"),
        (
            Some("../../etc/passwd".into()),
            "unknown or expired session",
        ),
        (None, "no session: POST /connect first, then send its token"),
    ] {
        let mut client = HttpClient::new(server.http_addr());
        client.token = token;
        let answer = client.command("/join general").await;
        assert_eq!(answer.status, 401, "{}", answer.json);
        assert_eq!(answer.json["error"], error);
        let answer = client.say("general", "hi").await;
        assert_eq!(answer.status, 401, "{}", answer.json);
    }
    // A forged cookie.
    let answer = reqwest::Client::new()
        .post(format!("http://{}/command", server.http_addr()))
        .header("cookie", "chatd_session=forged")
        .json(&json!({ "command": "/rooms" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 401);
    // The real session was not disturbed by any of it.
    assert_eq!(real.command("/rooms").await.status, 200);
    by.still_chat().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_10_mib_body_is_refused_with_413() {
    let server = start().await;
    let mut by = Bystanders::join(server.tcp_addr()).await;
    let anon = HttpClient::new(server.http_addr());
    let body = format!("{{\"nick\":\"{}\"}}", "a".repeat(10 * 1024 * 1024));
    let answer = anon.post_raw("/connect", "application/json", body).await;
    assert_eq!(answer.status, 413, "{}", answer.json);
    assert_eq!(
        answer.json["error"],
        "request body too large (max 65536 bytes)"
    );
    by.still_chat().await;
    server.shutdown().await;
}

#[tokio::test]
async fn static_files_cannot_escape_their_directory() {
    let server = start().await;
    let mut by = Bystanders::join(server.tcp_addr()).await;
    let addr = server.http_addr();
    // Sent raw: an HTTP client library would resolve the dots before sending.
    for path in [
        "/../Cargo.toml",
        "/../../../../etc/passwd",
        "/%2e%2e/Cargo.toml",
        "/%2E%2E/%2e%2e/etc/passwd",
        "/..%2fCargo.toml",
        "/..%5cCargo.toml",
        "/static/../../Cargo.toml",
        "/.%2e/src/main.rs",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let (status, body) = raw_http(addr, &request).await;
        eprintln!("{path}: {status}");
        assert!(
            (400..500).contains(&status),
            "{path}: status {status}, body {body:?}"
        );
        assert!(
            !body.contains("[package]") && !body.contains("root:") && !body.contains("fn main"),
            "{path} leaked a file: {body:?}"
        );
    }
    // The client's own files are still served.
    let (status, body) = raw_http(
        addr,
        "GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body.contains("<html") || body.contains("<!doctype"),
        "{body}"
    );
    by.still_chat().await;
    server.shutdown().await;
}

/// Resident memory of `chatd`, after letting it settle a moment.
async fn settled_rss(chatd: &Chatd) -> u64 {
    tokio::time::sleep(Duration::from_millis(200)).await;
    chatd.rss_kib()
}

/// How much the binary may grow over a case, in KiB: generous (allocators keep freed memory),
/// but well below what keeping the bad input would cost.
const RSS_SLACK_KIB: u64 = 32 * 1024;

#[tokio::test]
async fn one_mebibyte_lines_are_refused_and_memory_stays_bounded() {
    let data = support::data_dir();
    let chatd = Chatd::start(&[], &data);
    let mut by = Bystanders::join(chatd.tcp).await;
    by.still_chat().await;
    let before = settled_rss(&chatd).await;
    // 8 clients each send 16 lines of 1 MiB: 128 MiB in all, none of it a valid line.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let addr = chatd.tcp;
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await;
            let mut line = vec![b'x'; 1024 * 1024];
            line.push(b'\n');
            for _ in 0..16 {
                client.send_raw(&line).await;
                client.expect("! line too long (max 4096 bytes)").await;
            }
            client
        }));
    }
    let mut clients = Vec::new();
    for task in tasks {
        clients.push(task.await.unwrap());
    }
    let after = settled_rss(&chatd).await;
    eprintln!("VmRSS before {before} KiB, after 128 MiB of refused lines {after} KiB");
    assert!(
        after < before + RSS_SLACK_KIB,
        "VmRSS grew from {before} KiB to {after} KiB over 128 MiB of refused lines"
    );
    by.still_chat().await;
    drop(clients);
    chatd.terminate().await;
}

#[tokio::test]
async fn ten_thousand_rapid_joins_meet_the_room_limit_and_memory_stays_bounded() {
    let data = support::data_dir();
    // Without the rate limit: with it, most of the 10,000 joins would be answered `! slow down`
    // before they reach the room limit this test is about.
    let pipeline = support::unthrottled_default_file(&data);
    let chatd = Chatd::start(&["--pipeline", &pipeline.display().to_string()], &data);
    let mut by = Bystanders::join(chatd.tcp).await;
    let before = settled_rss(&chatd).await;
    let mut mallory = Client::named(chatd.tcp, "mallory").await;
    mallory
        .send_many((0..10_000).map(|i| format!("/join x{i}")))
        .await;
    let mut refused = 0;
    for i in 0..10_000 {
        let line = clean_line(&mut mallory).await;
        if i < 50 {
            assert_eq!(
                line,
                format!("* you joined x{i} (1 member); no messages yet")
            );
        } else {
            assert_eq!(
                line,
                "! you are in 50 rooms already (max 50): /leave one first"
            );
            refused += 1;
        }
    }
    assert_eq!(refused, 9_950);
    // The refused joins created no room.
    by.alice.send("/rooms").await;
    let rooms = by.alice.line().await;
    assert_eq!(rooms.matches(" (1)").count(), 50, "{rooms}");
    assert!(rooms.contains("general (2)"), "{rooms}");
    let after = settled_rss(&chatd).await;
    eprintln!("VmRSS before {before} KiB, after 10,000 joins {after} KiB");
    assert!(
        after < before + RSS_SLACK_KIB,
        "VmRSS grew from {before} KiB to {after} KiB over 10,000 joins"
    );
    by.still_chat().await;
    // When the joiner leaves, its 50 rooms (which never carried a message) are freed.
    mallory.send("/quit").await;
    mallory.expect("* goodbye").await;
    let mut freed = false;
    for _ in 0..100 {
        by.alice.send("/rooms").await;
        if by.alice.line().await == "* rooms: general (2)" {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(freed, "the empty rooms were not freed");
    chatd.terminate().await;
}
