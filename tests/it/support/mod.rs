//! The shared test harness: start an in-process chatd on ephemeral ports, and talk to it as a
//! netcat user would, over a real socket.
//!
//! Every read has a generous timeout so a broken server fails a test instead of hanging it;
//! no test asserts how fast anything happens.
//!
//! Real services and processes: `postgres` and `valkey` (throwaway servers, which can also be
//! stopped, paused and, for Valkey, restored from a snapshot), `binary` (the real `chatd`),
//! `proxy` (a fault-injecting TCP proxy in front of a service) and `cluster` (all of them wired
//! together for one pipeline). The consistency checker's parts, shared by the `chaos` and
//! `consistency` suites: `senders` and `readers` (clients that record what they sent and saw,
//! through `line_conn` for the line protocol), `record` (what they recorded) and `check` (the
//! checks of what was recorded against what the store holds). The browser suite's: `browser` (a
//! headless Chromium over WebDriver) and `scripted` (a server that plays fixed event streams).
//! And `logs`, the process's one `tracing` subscriber.

// The benches include this harness too (`#[path]`) and use a small part of it.
#![allow(dead_code)]

pub mod binary;
pub mod browser;
pub mod check;
pub mod cluster;
pub mod http;
pub mod irc;
pub mod line_conn;
pub mod logs;
pub mod postgres;
pub mod proxy;
pub mod readers;
pub mod record;
pub mod scenarios;
pub mod scripted;
pub mod senders;
pub mod valkey;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::codec::{FramedRead, LinesCodec};

use chatd::pipeline::config::{Durability, LayerConfig, PersistConfig};
use chatd::pipeline::{PipelineConfig, load};
use chatd::server::Server;

/// How long any single expected line may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The embedded default pipeline, on ephemeral loopback ports, with its SQLite file in a fresh
/// directory of its own (never the repository's `data/`), and without its `rate_limit` layer:
/// most tests send bursts no person types, to test something else (`ratelimit.rs` tests
/// the limit, starting from [`shipped_config`]).
pub fn default_config() -> PipelineConfig {
    without_rate_limit(shipped_config())
}

/// [`default_config`] with the embedded default's `rate_limit` layer kept.
pub fn shipped_config() -> PipelineConfig {
    let mut config = load::embedded_default().expect("the embedded default pipeline is valid");
    config.server.tcp = "127.0.0.1:0".parse().unwrap();
    config.server.http = "127.0.0.1:0".parse().unwrap();
    config.server.irc = Some("127.0.0.1:0".parse().unwrap());
    config.server.instance = Some("test".into());
    let db = data_dir().join("chatd.db");
    with_store(config, sqlite(&db, Durability::Async))
}

/// `config` without its `rate_limit` layer, for tests and benches that send faster than people.
pub fn without_rate_limit(mut config: PipelineConfig) -> PipelineConfig {
    config
        .layers
        .retain(|layer| !matches!(layer, LayerConfig::RateLimit(_)));
    config
}

/// A fresh directory for a test's files, under cargo's `target/tmp` (kept after the test, so a
/// failure can be inspected; `cargo clean` removes it).
pub fn data_dir() -> PathBuf {
    tempfile::Builder::new()
        .prefix("chatd-test-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a temp dir under target/tmp")
        .keep()
}

/// `config` with its persist layer's store replaced by `store`.
pub fn with_store(mut config: PipelineConfig, store: PersistConfig) -> PipelineConfig {
    for layer in &mut config.layers {
        if let LayerConfig::Persist(persist) = layer {
            *persist = store.clone();
        }
    }
    config
}

/// The SQLite store at `path`, with default queue and batch sizes.
pub fn sqlite(path: &Path, durability: Durability) -> PersistConfig {
    PersistConfig::Sqlite {
        path: path.display().to_string(),
        durability,
        queue: 10_000,
        batch: 500,
        sync_timeout_ms: 5000,
    }
}

/// The PostgreSQL store at `url`, with default pool, queue and batch sizes.
pub fn postgres(url: &str, durability: Durability) -> PersistConfig {
    PersistConfig::Postgres {
        url: url.to_string(),
        pool_size: 4,
        durability,
        queue: 10_000,
        batch: 500,
        sync_timeout_ms: 5000,
    }
}

/// Writes the embedded default pipeline without its `rate_limit` layer to a file in `dir`, for
/// the binary (`--pipeline`) in tests that send bursts; returns the file's path.
pub fn unthrottled_default_file(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("create the pipeline's directory");
    let path = dir.join("unthrottled.toml");
    std::fs::write(&path, drop_layer(load::EMBEDDED_DEFAULT, "rate_limit"))
        .expect("write the pipeline file");
    path
}

/// `text` (a pipeline file) without its `[[layer]]` block of kind `kind`, comments and all: the
/// same cut `scripts/bench-vs-irc.sh` makes.
pub fn drop_layer(text: &str, kind: &str) -> String {
    let mut blocks = text.split("[[layer]]\n");
    let mut out = blocks.next().unwrap_or_default().to_string();
    for block in blocks {
        if !block.starts_with(&format!("kind = \"{kind}\"")) {
            out.push_str("[[layer]]\n");
            out.push_str(block);
        }
    }
    out
}

/// Starts chatd with the embedded default pipeline.
pub async fn start() -> Server {
    start_with(default_config()).await
}

/// Starts chatd with `config`.
pub async fn start_with(config: PipelineConfig) -> Server {
    Server::start(&config).await.expect("server starts")
}

/// A raw TCP connection to `addr` from the loopback address `source`, such as `127.0.0.2`.
pub async fn connect_from(addr: SocketAddr, source: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    let source: std::net::IpAddr = source.parse().expect("a source address");
    socket
        .bind(SocketAddr::new(source, 0))
        .expect("bind the source address");
    socket.connect(addr).await.expect("connect")
}

/// Everything the server sends on `stream` until it closes it (bounded by [`PATIENCE`]).
pub async fn read_until_closed(stream: &mut TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    match tokio::time::timeout(PATIENCE, stream.read_to_end(&mut out)).await {
        Ok(_) => String::from_utf8_lossy(&out).into_owned(),
        Err(_) => panic!(
            "the server did not close the connection; got {:?}",
            String::from_utf8_lossy(&out)
        ),
    }
}

/// A netcat-like client.
pub struct Client {
    lines: FramedRead<OwnedReadHalf, LinesCodec>,
    write: OwnedWriteHalf,
    /// The welcome line the server sent.
    pub welcome: String,
}

impl Client {
    /// Connects and reads the welcome notice.
    pub async fn connect(addr: SocketAddr) -> Client {
        Client::over(TcpStream::connect(addr).await.expect("connect")).await
    }

    /// Connects with a tiny receive buffer, so that a client that does not read backs up into
    /// the server quickly instead of into megabytes of kernel buffer.
    pub async fn connect_small_buffer(addr: SocketAddr) -> Client {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        Client::over(socket.connect(addr).await.expect("connect")).await
    }

    /// Connects from the loopback address `source` (any of 127.0.0.0/8 works on Linux), so that
    /// one machine can look like several clients to per-address limits.
    pub async fn connect_from(addr: SocketAddr, source: &str) -> Client {
        Client::over(connect_from(addr, source).await).await
    }

    async fn over(stream: TcpStream) -> Client {
        let (read, write) = stream.into_split();
        let lines = FramedRead::new(read, LinesCodec::new_with_max_length(1 << 20));
        let mut client = Client {
            lines,
            write,
            welcome: String::new(),
        };
        client.welcome = client.line().await;
        assert!(
            client.welcome.starts_with("* welcome to chatd"),
            "welcome: {}",
            client.welcome
        );
        client
    }

    /// Connects and takes the nick `nick`.
    pub async fn named(addr: SocketAddr, nick: &str) -> Client {
        let mut client = Client::connect(addr).await;
        client.send(&format!("/nick {nick}")).await;
        client.expect(&format!("* you are now {nick}")).await;
        client
    }

    /// Sends one line (a newline is added).
    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes()).await;
    }

    /// Sends raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.write.write_all(bytes).await.expect("write to server");
    }

    /// The next line from the server.
    pub async fn line(&mut self) -> String {
        match tokio::time::timeout(PATIENCE, self.lines.next()).await {
            Ok(Some(Ok(line))) => line,
            Ok(Some(Err(e))) => panic!("read failed: {e}"),
            Ok(None) => panic!("server closed the connection"),
            Err(_) => panic!("no line from the server within {PATIENCE:?}"),
        }
    }

    /// The next `n` lines.
    pub async fn lines(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.line().await);
        }
        out
    }

    /// Asserts the next line is `expected`.
    pub async fn expect(&mut self, expected: &str) {
        let got = self.line().await;
        assert_eq!(got, expected);
    }

    /// Asserts the next line starts with `prefix`, and returns it.
    pub async fn expect_prefix(&mut self, prefix: &str) -> String {
        let got = self.line().await;
        assert!(
            got.starts_with(prefix),
            "expected a line starting with {prefix:?}, got {got:?}"
        );
        got
    }

    /// Joins `room` and returns the history lines that follow the join notice: the chat lines
    /// the notice counts, and a `* missed messages` notice in place of each hole among them.
    pub async fn join(&mut self, room: &str) -> Vec<String> {
        self.send(&format!("/join {room}")).await;
        let notice = self.expect_prefix(&format!("* you joined {room} (")).await;
        let count = match notice.split("its last ").nth(1) {
            None => 0,
            Some("message follows") => 1,
            Some(rest) => rest
                .split(' ')
                .next()
                .and_then(|n| n.parse().ok())
                .expect("history count"),
        };
        let mut history = Vec::with_capacity(count);
        let mut chat = 0;
        while chat < count {
            let line = self.line().await;
            chat += usize::from(line.starts_with('['));
            history.push(line);
        }
        history
    }

    /// Proves nothing else is waiting: asks `/rooms` and asserts its reply is the next line.
    pub async fn sync(&mut self) {
        self.send("/rooms").await;
        let got = self.line().await;
        assert!(
            got.starts_with("* rooms:") || got.starts_with("* no rooms"),
            "unexpected line before the /rooms reply: {got:?}"
        );
    }

    /// Asserts the server closes the connection (after any remaining lines, which are returned).
    pub async fn expect_closed(&mut self) -> Vec<String> {
        let mut rest = Vec::new();
        loop {
            match tokio::time::timeout(PATIENCE, self.lines.next()).await {
                Ok(None) | Ok(Some(Err(_))) => return rest,
                Ok(Some(Ok(line))) => rest.push(line),
                Err(_) => panic!("the server did not close the connection; got {rest:?}"),
            }
        }
    }

    /// Sends many lines in one write.
    pub async fn send_many(&mut self, lines: impl IntoIterator<Item = String>) {
        let mut buf = String::new();
        for line in lines {
            buf.push_str(&line);
            buf.push('\n');
        }
        self.send_raw(buf.as_bytes()).await;
    }
}
