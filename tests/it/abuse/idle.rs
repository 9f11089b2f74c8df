//! Finding 4: silent sockets held connection slots for ever, 157 addresses exhausted the default
//! `max_connections`, and then `/healthz` answered 503 too.

use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::http_from;
use crate::support::{
    Client, PATIENCE, connect_from, default_config, read_until_closed, start_with,
};

/// What a silent connection reads: the welcome, then the join timeout's notice.
const CLOSED_IDLE: &str = "* closing the connection: no /nick or /join within 1 second of \
                           connecting";

#[tokio::test]
async fn silent_sockets_are_closed_and_filling_the_server_takes_many_addresses() {
    let mut config = default_config();
    config.server.join_timeout_secs = 1;
    config.server.max_connections = 6;
    config.server.max_connections_per_ip = 2;
    let server = start_with(config).await;
    let (tcp, http) = (server.tcp_addr(), server.http_addr());
    // A normal user, who joins a room and then stays quiet much longer than the timeout.
    let mut carol = Client::connect_from(tcp, "127.0.1.9").await;
    carol.send("/join lobby").await;
    carol.expect_prefix("* you joined lobby").await;

    // Silent sockets from 127.0.1.1, .2, ...: each address gets 2 slots, so the 5 left take 3.
    let mut silent = Vec::new();
    let mut holding = 0;
    'fill: for host in 1..=10 {
        let mut held = 0;
        for _ in 0..3 {
            let mut stream = connect_from(tcp, &format!("127.0.1.{host}")).await;
            let mut first = [0u8; 2];
            stream.read_exact(&mut first).await.expect("a first line");
            if &first == b"* " {
                silent.push(stream);
                held += 1;
                continue;
            }
            let refusal = read_until_closed(&mut stream).await;
            holding += usize::from(held > 0);
            if refusal.starts_with("the server is full") {
                break 'fill;
            }
            assert_eq!(refusal, "too many connections from your address (max 2)\n");
            break; // on to the next address
        }
    }
    assert_eq!(silent.len(), 5, "6 slots, carol holds one");
    assert_eq!(
        holding, 3,
        "filling it took 3 addresses: max_connections / max_connections_per_ip, rounded up"
    );

    // Full, yet the health check answers; any other request on a refused connection is a 503.
    let monitor = http_from("127.0.2.1");
    let health = monitor.get(format!("http://{http}/healthz")).send().await;
    assert_eq!(health.expect("healthz").status().as_u16(), 200);
    let other = monitor.get(format!("http://{http}/")).send().await;
    assert_eq!(other.expect("a refusal").status().as_u16(), 503);

    // After the join timeout, each silent socket is told why and closed; carol is not.
    for mut stream in silent {
        let got = read_until_closed(&mut stream).await;
        let last = got.lines().last().unwrap_or_default();
        assert_eq!(last, CLOSED_IDLE, "{got}");
    }
    carol.send("/users").await;
    carol.expect_prefix("* users in lobby (1): guest-").await;
    // Room again for a newcomer (once the server has counted the silent ones out), who chats
    // with carol.
    let closed = || server.hub().stats().connections_closed.tcp.get();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while closed() < 5 {
        assert!(tokio::time::Instant::now() < deadline, "never counted out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut dave = Client::connect_from(tcp, "127.0.1.1").await;
    dave.send("/join lobby").await;
    dave.expect_prefix("* you joined lobby").await;
    carol.expect_prefix("* guest-").await;
    dave.send("hi carol").await;
    carol.expect_prefix("[lobby] guest-").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_nick_or_a_join_disarms_the_timeout() {
    let mut config = default_config();
    config.server.join_timeout_secs = 1;
    let server = start_with(config).await;
    let mut named = Client::named(server.tcp_addr(), "erin").await;
    let mut joined = Client::connect(server.tcp_addr()).await;
    joined.send("/join quiet").await;
    joined.expect_prefix("* you joined quiet").await;
    // A failed /nick is no excuse: this one is closed.
    let mut failed = Client::connect(server.tcp_addr()).await;
    failed.send("/nick erin").await;
    failed.expect("! nick erin is taken").await;
    assert_eq!(failed.expect_closed().await, [CLOSED_IDLE]);
    // Both others outlived the timeout (the closing above took longer than it).
    named.sync().await;
    joined.sync().await;
    server.shutdown().await;
}

#[tokio::test]
async fn tcp_keepalive_is_on_for_every_connection() {
    let server = start_with(default_config()).await;
    let (tcp, http) = (server.tcp_addr(), server.http_addr());
    let mut client = Client::connect(tcp).await;
    client.send("/nick kept").await;
    client.expect("* you are now kept").await;
    let _http = tokio::net::TcpStream::connect(http).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(100)).await;
    // `ss -o` shows a socket's timers: the server's side of each connection has a keepalive one.
    for port in [tcp.port(), http.port()] {
        let out = std::process::Command::new("ss")
            .args([
                "-tno",
                "state",
                "established",
                &format!("( sport = :{port} )"),
            ])
            .output()
            .expect("ss (iproute2) runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("timer:(keepalive,"), "port {port}:\n{text}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_silent_http_connection_is_closed_after_the_header_timeout() {
    let mut config = default_config();
    config.server.header_read_timeout_secs = 1;
    let server = start_with(config).await;
    let mut stream = tokio::net::TcpStream::connect(server.http_addr())
        .await
        .expect("connect");
    // Whatever hyper says first, the server ends the connection by itself.
    let mut got = Vec::new();
    let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "still open after {PATIENCE:?}");
    server.shutdown().await;
}
