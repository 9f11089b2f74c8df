//! The abuse suite: issue 13's findings 3 to 8, each reproduced as an outsider would try it,
//! and each now refused or bounded, with the bound asserted, while a normal user on another
//! address keeps chatting.
//!
//! * `abuse/reconnect.rs` (3): eight clients of one address reconnecting in a loop get no more
//!   through than the address's bucket allows; a user elsewhere chats on, its latency printed.
//! * `abuse/idle.rs` (4): silent sockets are closed after the join timeout; filling the server
//!   takes `max_connections / max_connections_per_ip` addresses; `/healthz` answers when full;
//!   TCP keepalive is on; a silent HTTP connection is closed too.
//! * `abuse/secrets.rs` (5 and 8): the real binary at `RUST_LOG=trace` never logs a session
//!   token; and at the default level a flood of refusals writes no `ERROR` line and a bounded
//!   number of warnings.
//! * `abuse/browser_edge.rs` (6): security headers, no inline script or style in the page, and
//!   cross-site requests (state changes, and the joining `GET /messages/ROOM`) refused while curl
//!   is not.
//! * `abuse/spoofing.rs` (7): direction-changing, invisible and tag characters refused with their
//!   code point; look-alike nicks refused as taken.
//!
//! Several client addresses come from 127.0.0.0/8, which Linux routes to loopback: a client bound
//! to 127.0.0.5 is, to the server, another machine. `examples/abusers.rs` runs the same abusive
//! clients for as long as one likes (for a soak).

mod browser_edge;
mod idle;
mod reconnect;
mod secrets;
mod spoofing;

use crate::support;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use chatd::pipeline::PipelineConfig;
use chatd::pipeline::config::{LayerConfig, RateLimitConfig};

use crate::support::PATIENCE;
use crate::support::binary::Reaped;

/// The shipped default pipeline (rate limit included) on ephemeral ports, its rate limit edited.
fn with_rate_limit(edit: impl Fn(&mut RateLimitConfig)) -> PipelineConfig {
    let mut config = support::shipped_config();
    for layer in &mut config.layers {
        if let LayerConfig::RateLimit(limit) = layer {
            edit(limit);
        }
    }
    config
}

/// An HTTP client whose connections come from the loopback address `source`.
fn http_from(source: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(source.parse::<IpAddr>().expect("an address"))
        .build()
        .expect("an HTTP client")
}

/// The 99th percentile of `samples` (the largest when there are fewer than 100).
fn p99(samples: &mut [Duration]) -> Duration {
    samples.sort();
    let rank = (samples.len() * 99).div_ceil(100).max(1);
    samples.get(rank - 1).copied().unwrap_or_default()
}

/// The real `chatd` binary with its log (stderr) in a file, for the tests that read the log
/// (killed if dropped running: see [`Reaped`]).
struct LoggedChatd {
    child: Reaped,
    log: PathBuf,
    tcp: SocketAddr,
    http: SocketAddr,
}

impl LoggedChatd {
    /// Starts `chatd --pipeline FILE` on ephemeral ports with `RUST_LOG=rust_log` (the default,
    /// `info`, when `None`), the pipeline being `pipeline` written into `dir`; waits for the
    /// banner.
    fn start(dir: &Path, pipeline: &str, rust_log: Option<&str>) -> LoggedChatd {
        let file = dir.join("pipeline.toml");
        std::fs::write(&file, pipeline).expect("write the pipeline");
        let log = dir.join("chatd.log");
        let stderr = std::fs::File::create(&log).expect("create the log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_chatd"));
        command
            .args(["--tcp", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .arg("--pipeline")
            .arg(&file)
            .env("CHATD_DATA_DIR", dir.join("data"))
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(stderr);
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        }
        let mut child = command.spawn().expect("start chatd");
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some((tcp, http)) = banner(&text) {
                return LoggedChatd {
                    child: Reaped::new(child),
                    log,
                    tcp,
                    http,
                };
            }
            if std::time::Instant::now() >= deadline || child.try_wait().is_ok_and(|s| s.is_some())
            {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chatd did not start:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it with SIGTERM, waits for it, and returns its whole log.
    async fn stop(mut self) -> String {
        let mut child = self.child.take();
        let pid = child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -TERM chatd");
        let exit = tokio::task::spawn_blocking(move || child.wait())
            .await
            .expect("join")
            .expect("wait for chatd");
        let log = std::fs::read_to_string(&self.log).expect("read the log");
        assert!(exit.success(), "chatd exits cleanly: {exit}\n{log}");
        log
    }
}

/// The listeners of the banner `chatd NAME is up: nc IP PORT  or  http://IP:PORT/  (...)`.
fn banner(log: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = log.lines().find_map(|l| l.split("is up: nc ").nth(1))?;
    let mut words = rest.split_whitespace();
    let tcp = format!("{}:{}", words.next()?, words.next()?)
        .parse()
        .ok()?;
    let http = rest
        .split("http://")
        .nth(1)?
        .split('/')
        .next()?
        .parse()
        .ok()?;
    Some((tcp, http))
}
