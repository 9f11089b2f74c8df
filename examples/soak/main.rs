//! soak: a long mixed run against one chatd, abusive clients from several addresses beside
//! normal users, reporting the server's resident memory, the normal users' round trips and the
//! refusals by kind. `scripts/soak.sh` builds and starts everything and runs it; by hand:
//!
//! ```sh
//! cargo run --release --example soak -- --tcp 127.0.0.1:9001 --http 127.0.0.1:3001 \
//!     --pid "$(pgrep -n chatd)" --minutes 10
//! ```
//!
//! **The mix** is the table [`MIX`]: each row a kind of client (`kinds.rs`), how many of them
//! run at once, and the loopback address they come from (each kind its own, so that the
//! per-address limits apply to it as to an outsider; Linux routes all of 127.0.0.0/8 to the
//! loopback). Adding a kind of client is one variant in `kinds.rs` and one row here.
//!
//! Layout: `kinds` (what each kind of client does), `tally` (counters, latencies, memory); this
//! file sets the stage and prints the summary.

mod kinds;
mod tally;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

use kinds::{Kind, Stage};
use tally::Tally;

/// One row of the mix: a kind of client, how many at once, from which address.
struct Mix {
    kind: Kind,
    count: usize,
    from: &'static str,
}

/// Who runs during the soak (see the module docs).
const MIX: &[Mix] = &[
    // People: pairs chatting in rooms of their own, over TCP, at a person's pace.
    Mix {
        kind: Kind::Normal,
        count: 8,
        from: "127.0.0.2",
    },
    // Finding 1: replays of a room of 1,000 of the longest messages, held without reading.
    Mix {
        kind: Kind::ReplayHolder,
        count: 40,
        from: "127.0.0.4",
    },
    // Finding 1: event streams opened and closed as fast as they are answered.
    Mix {
        kind: Kind::StreamChurn,
        count: 4,
        from: "127.0.0.5",
    },
    // Finding 2: sessions that create nine rooms each, say one thing in each, and quit.
    Mix {
        kind: Kind::RoomFiller,
        count: 8,
        from: "127.0.0.6",
    },
    // Readers that never read, in a room where long lines flow...
    Mix {
        kind: Kind::SlowReader,
        count: 8,
        from: "127.0.0.7",
    },
    // ...sent by these, at the rate limit.
    Mix {
        kind: Kind::Flooder,
        count: 4,
        from: "127.0.0.8",
    },
];

#[derive(Parser, Debug)]
#[command(about = "A long mixed run of abusive and normal clients against one chatd")]
struct Args {
    /// The line-protocol address of the server.
    #[arg(long, default_value = "127.0.0.1:9001")]
    tcp: SocketAddr,
    /// The HTTP address of the server.
    #[arg(long, default_value = "127.0.0.1:3001")]
    http: SocketAddr,
    /// The server's process id, for its resident memory (VmRSS).
    #[arg(long)]
    pid: Option<u32>,
    /// How long the mix runs, in minutes (fractions allowed).
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let tally = Arc::new(Tally::new(args.pid));
    let stage = Arc::new(Stage {
        tcp: args.tcp,
        http: args.http,
        tally: tally.clone(),
        until: Instant::now(), // set below, once the room to replay is filled
    });
    eprintln!("soak: filling the room the replays read (1,000 of the longest messages)");
    kinds::fill_big_room(&stage).await;
    let rss_before = tally.settled_rss().await;
    let run = Duration::from_secs_f64(args.minutes * 60.0);
    let stage = Arc::new(Stage {
        until: Instant::now() + run,
        ..Stage::clone(&stage)
    });
    eprintln!(
        "soak: {} clients for {:.1} min; VmRSS before: {}",
        MIX.iter().map(|m| m.count).sum::<usize>(),
        args.minutes,
        tally::kib(rss_before)
    );
    let mut tasks = tokio::task::JoinSet::new();
    for mix in MIX {
        for n in 0..mix.count {
            tasks.spawn(mix.kind.run(stage.clone(), mix.from, n));
        }
    }
    tasks.spawn(tally.clone().sample_rss(stage.until));
    while tasks.join_next().await.is_some() {}
    let rss_end = tally.rss();
    // Every abusive client is gone now: what the server keeps after them.
    let rss_after = tally.settled_rss().await;
    println!("{}", tally.summary(run, rss_before, rss_end, rss_after));
    let held = left_behind(args.http).await;
    if !held.is_empty() {
        eprintln!("soak: after the clients left, the server still holds: {held}");
        std::process::exit(1);
    }
    println!("after the clients left: no connection open, no byte queued");
}

/// What the server still holds once every client has gone, waiting up to 30 s for it to let go:
/// open connections (but the one asking) and bytes queued for readers, from `/metrics`; empty
/// when there are none. (Sessions and rooms stay for `session_idle_secs` and `room_idle_secs`,
/// minutes in the default pipeline: the consistency checker's leftovers check waits for those.)
async fn left_behind(http: SocketAddr) -> String {
    let mut held = String::new();
    for _ in 0..30 {
        held = match metrics(http).await {
            Ok(text) => text
                .lines()
                .filter_map(|line| line.rsplit_once(' '))
                .filter(|(series, value)| {
                    let allowed = match *series {
                        "chatd_connections_open{protocol=\"http\"}" => 1.0, // this request
                        _ => 0.0,
                    };
                    let watched = series.starts_with("chatd_connections_open{")
                        || *series == "chatd_queued_bytes";
                    watched && value.parse::<f64>().is_ok_and(|v| v > allowed)
                })
                .map(|(series, value)| format!("{series} = {value}"))
                .collect::<Vec<_>>()
                .join(", "),
            Err(e) => format!("no /metrics ({e})"),
        };
        if held.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    held
}

/// `GET /metrics` on a connection of its own, closed after.
async fn metrics(http: SocketAddr) -> Result<String, reqwest::Error> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()?;
    client
        .get(format!("http://{http}/metrics"))
        .send()
        .await?
        .text()
        .await
}
