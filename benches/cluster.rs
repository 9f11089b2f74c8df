//! Cross-instance delivery latency: how long a chat line takes from a sender's TCP connection on
//! instance A to a reader's TCP connection on instance C, through Valkey pub/sub; and, for
//! comparison, from sender to reader on one single instance (`local`).
//!
//! One message is in flight at a time: the sender writes a line, the clock runs until the reader
//! has it, then the next line goes. The figures (p50, p99 and the slowest of `N` messages) are
//! printed as a table for docs/BENCHMARKS.md. Everything runs on loopback in one process, with a
//! throwaway PostgreSQL and Valkey (the test harness's); the bench is skipped, with a note, when
//! their binaries are not found.
//!
//! Run: `cargo bench --bench cluster`. Under `cargo test --all-targets` it runs a few messages
//! only, to prove it still works.

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use chatd::pipeline::PipelineConfig;
use chatd::pipeline::config::{Durability, FanoutConfig, LayerConfig};
use chatd::server::Server;
use support::postgres::TestPostgres;
use support::valkey::TestValkey;
use support::{Client, default_config, postgres, start_with, with_store};

/// Messages timed per setup in a real run (`cargo bench`), and in test mode.
const MESSAGES: usize = 2_000;
const MESSAGES_IN_TEST: usize = 20;
/// Messages sent before the clock starts.
const WARM_UP: usize = 20;

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let n = if full { MESSAGES } else { MESSAGES_IN_TEST };
    if support::valkey::server_binary().is_none() || support::postgres::server_bin_dir().is_none() {
        eprintln!(
            "cluster bench skipped: it needs valkey-server (or redis-server) and PostgreSQL's \
             initdb; scripts/test.sh installs them"
        );
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    rt.block_on(async {
        let pg = TestPostgres::start().expect("PostgreSQL");
        let valkey = TestValkey::start().expect("Valkey");
        println!("| setup | messages | p50 | p99 | max |");
        println!("|---|---|---|---|---|");
        let local = with_store(default_config(), postgres(&pg.url(), Durability::Async));
        report("local (one instance)", &measure(&[local], "local", n).await);
        for (durability, label) in [
            (Durability::Async, "valkey A→C, write-behind"),
            (Durability::Sync, "valkey A→C, write-ahead"),
        ] {
            let configs: Vec<PipelineConfig> = ["a", "c"]
                .iter()
                .map(|name| valkey_config(name, &pg.url(), &valkey.url(), durability))
                .collect();
            let room = format!("v{}", durability == Durability::Sync);
            report(label, &measure(&configs, &room, n).await);
        }
    });
}

/// The valkey pipeline for `instance`.
fn valkey_config(instance: &str, pg: &str, valkey: &str, durability: Durability) -> PipelineConfig {
    let mut config = with_store(default_config(), postgres(pg, durability));
    config.server.instance = Some(instance.into());
    for layer in &mut config.layers {
        if let LayerConfig::Fanout(fanout) = layer {
            *fanout = FanoutConfig::Valkey {
                url: valkey.to_string(),
                pool_size: 8,
                gap_wait_ms: 500,
            };
        }
    }
    config
}

/// Starts one server per config; the sender is on the first, the reader on the last (the same
/// one for a single config). Returns each message's latency.
async fn measure(configs: &[PipelineConfig], room: &str, n: usize) -> Vec<Duration> {
    let mut servers: Vec<Server> = Vec::new();
    for config in configs {
        servers.push(start_with(config.clone()).await);
    }
    let (first, last) = (&servers[0], &servers[servers.len() - 1]);
    let mut reader = Client::named(last.tcp_addr(), "reader").await;
    reader.join(room).await;
    let mut sender = Client::named(first.tcp_addr(), "sender").await;
    sender.join(room).await;
    // The first messages open the room's counter and warm the pools: not timed.
    let mut latencies = Vec::with_capacity(n + WARM_UP);
    for i in 0..n + WARM_UP {
        let text = format!("ping {i}");
        let start = Instant::now();
        sender.send(&text).await;
        let expected = format!("[{room}] sender: {text}");
        loop {
            let line = reader.line().await;
            if line == expected {
                break;
            }
            assert!(line.starts_with("* "), "unexpected line {line:?}");
        }
        latencies.push(start.elapsed());
    }
    latencies.drain(..WARM_UP);
    for server in servers {
        server.shutdown().await;
    }
    latencies
}

fn report(label: &str, latencies: &[Duration]) {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
    println!(
        "| {label} | {} | {:.3} ms | {:.3} ms | {:.3} ms |",
        sorted.len(),
        ms(at(0.50)),
        ms(at(0.99)),
        ms(at(1.0))
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
