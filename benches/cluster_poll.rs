//! Cross-instance delivery latency with `backend = "poll"` (phase 2): p50 and p99.
//!
//! Three in-process instances of `pipelines/phase2-poll.toml` (`interval_ms = 100`,
//! `durability = "sync"`) on one throwaway PostgreSQL. A TCP user on `a` sends a line; the time
//! runs until a TCP user on `c` reads it. For contrast, a second user on `a` reads the same line
//! (same instance: no poll in its path). Sends are spaced by a random 0-200 ms, so that they
//! fall at every phase of the poll interval alike, as real chat does: a sender never sees the
//! poll. (The spread must be a whole number of intervals: each send starts just after a poll
//! delivered the previous one, and a spread of 150 ms would favour the first half of the next
//! interval, making the figure ~8 ms too pessimistic.)
//!
//! Not criterion: the figure that matters is a latency distribution, not a mean of repeated
//! runs. Run: `cargo bench --bench cluster_poll` (about a minute). Under `cargo test` it sends a
//! handful of messages, to prove the bench still works. Skipped, with a note, without `initdb`.

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chatd::pipeline::load;
use chatd::server::Server;
use support::Client;
use support::postgres::{TestPostgres, server_bin_dir};

/// Messages measured under `cargo bench`.
const MESSAGES: usize = 400;

fn main() {
    let benching = std::env::args().any(|arg| arg == "--bench");
    if server_bin_dir().is_none() {
        eprintln!(
            "note: no PostgreSQL server binaries (initdb) on PATH or in /usr/lib/postgresql/*/bin: \
             skipping the cross-instance latency bench"
        );
        return;
    }
    let Some(pg) = TestPostgres::start() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let n = if benching { MESSAGES } else { 5 };
    let (cross, local) = rt.block_on(measure(&pg.url(), n));
    println!("cluster_poll: {n} messages, interval_ms = 100, durability = sync");
    report("a -> c (poll)", cross);
    report("a -> a (same instance)", local);
}

/// Sends `n` lines from a user on `a`; returns the delays until a user on `c`, and one on `a`,
/// read each.
async fn measure(url: &str, n: usize) -> (Vec<Duration>, Vec<Duration>) {
    let text = include_str!("../pipelines/phase2-poll.toml");
    let mut servers = Vec::new();
    for name in ["a", "b", "c"] {
        let config = load::parse("phase2-poll.toml", text, &|var| {
            (var == "DATABASE_URL").then(|| url.to_string())
        })
        .expect("the phase 2 pipeline is valid");
        // No rate limit: the bench measures delivery, not the per-session limit.
        let mut config = support::without_rate_limit(config);
        config.server.tcp = "127.0.0.1:0".parse().unwrap();
        config.server.http = "127.0.0.1:0".parse().unwrap();
        config.server.irc = None;
        config.server.instance = Some(name.to_string());
        servers.push(Server::start(&config).await.expect("instance starts"));
    }
    let (a, c) = (servers[0].tcp_addr(), servers[2].tcp_addr());
    let mut alice = Client::named(a, "alice").await;
    alice.join("bench").await;
    let mut neighbour = Client::named(a, "neighbour").await;
    neighbour.join("bench").await;
    alice.expect("* neighbour joined bench").await;
    let mut carol = Client::named(c, "carol").await;
    carol.join("bench").await;
    // Her join reaches a as a polled presence event: read it before measuring.
    alice.expect("* carol joined bench").await;
    neighbour.expect("* carol joined bench").await;

    let mut random = Jitter::seeded();
    let (mut cross, mut local) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        tokio::time::sleep(Duration::from_millis(random.below(200))).await;
        let line = format!("latency probe {i}");
        let start = Instant::now();
        alice.send(&line).await;
        let expected = format!("[bench] alice: {line}");
        let (near, far) = tokio::join!(
            async {
                neighbour.expect(&expected).await;
                start.elapsed()
            },
            async {
                carol.expect(&expected).await;
                start.elapsed()
            },
        );
        local.push(near);
        cross.push(far);
    }
    for server in servers {
        server.shutdown().await;
    }
    (cross, local)
}

fn report(label: &str, mut delays: Vec<Duration>) {
    delays.sort();
    let at = |q: f64| delays[((delays.len() - 1) as f64 * q).round() as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  {label:<24} p50 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
        ms(at(0.5)),
        ms(at(0.99)),
        ms(at(1.0)),
    );
}

/// A tiny xorshift generator: spacing needs to be spread out, not cryptographic.
struct Jitter(u64);

impl Jitter {
    fn seeded() -> Jitter {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Jitter(nanos | 1)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}
