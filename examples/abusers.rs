//! abusers: the hostile clients of issue 13 (findings 3 to 8), run against a chatd for as long as
//! one likes, from several loopback addresses, counting how each attempt was answered. Meant for
//! a soak next to normal users (load them with `examples/loadgen`), and for trying the limits by
//! hand.
//!
//! ```sh
//! cargo run --release --example abusers -- --tcp 127.0.0.1:9001 --http 127.0.0.1:3001 \
//!     --from 127.0.0.50 --from 127.0.0.51 --kind reconnect --kind silent --kind spoof \
//!     --kind cross-site --kind refusals --clients 4 --seconds 600
//! ```
//!
//! Each `--kind` runs `--clients` tasks per `--from` address, until `--seconds` have passed:
//!
//! * `reconnect`: connect, `/join soak-flood`, 20 lines at once, `/quit`, again (finding 3);
//! * `silent`: a connection that says nothing, opened again when the server closes it (4);
//! * `spoof`: lines with a right-to-left override, a zero-width space, tag characters, and
//!   `/nick` with look-alikes of `alice` (7);
//! * `cross-site`: `POST /connect` with a foreign `Origin`, `GET /messages/ROOM` with
//!   `Sec-Fetch-Site: same-site` (6);
//! * `refusals`: bad JSON and `/join` of ever new rooms over HTTP, for the 4xx and 503s that must
//!   not reach the log at `ERROR` (8).
//!
//! At the end it prints one JSON object: for each kind, how many answers of each sort it got
//! (`"slow down"`, `"too many connections"`, `"closed idle"`, `"429"`, ...), for a soak report's
//! "refusals by kind".

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

#[derive(Parser, Debug)]
#[command(about = "Hostile clients for a chatd soak: counts how each attempt was answered")]
struct Args {
    /// chatd's line-protocol address.
    #[arg(long, default_value = "127.0.0.1:9001")]
    tcp: SocketAddr,
    /// chatd's HTTP address.
    #[arg(long, default_value = "127.0.0.1:3001")]
    http: SocketAddr,
    /// A source address to connect from (repeatable; any of 127.0.0.0/8 works on Linux).
    #[arg(long = "from", default_value = "127.0.0.50")]
    from: Vec<IpAddr>,
    /// A kind of abuse: reconnect, silent, spoof, cross-site, refusals (repeatable).
    #[arg(long = "kind", required = true)]
    kinds: Vec<String>,
    /// Tasks per kind and source address.
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// How long to keep at it.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
}

/// Answers counted by kind, then by sort.
type Tally = Arc<Mutex<BTreeMap<String, BTreeMap<String, u64>>>>;

fn count(tally: &Tally, kind: &str, sort: &str) {
    let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
    *tally
        .entry(kind.to_string())
        .or_default()
        .entry(sort.to_string())
        .or_default() += 1;
}

/// The sort of a line the server sent, for the tally.
fn sort_of(line: &str) -> &'static str {
    match line {
        l if l.starts_with("! slow down") => "slow down",
        l if l.starts_with("! too many connections") => "too many connections",
        l if l.starts_with("! the server is full") => "server full",
        l if l.starts_with("* closing the connection: no /nick") => "closed idle",
        l if l.contains("characters are not allowed") => "refused characters",
        l if l.contains(" is taken") => "nick taken",
        l if l.starts_with("! join a room first") => "not in a room",
        l if l.starts_with("! ") => "other refusal",
        l if l.starts_with("* welcome") => "welcomed",
        _ => "other line",
    }
}

async fn connect_from(addr: SocketAddr, from: IpAddr) -> std::io::Result<TcpStream> {
    let socket = match from {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
}

/// Sends `lines`, closes the sending side, and tallies every line the server answers.
async fn say_and_tally(
    args: &Args,
    from: IpAddr,
    lines: &[String],
    kind: &str,
    tally: &Tally,
) -> std::io::Result<()> {
    let mut stream = connect_from(args.tcp, from).await?;
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let _ = stream.write_all(text.as_bytes()).await;
    let _ = stream.shutdown().await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    for line in String::from_utf8_lossy(&answer).lines() {
        count(tally, kind, sort_of(line));
    }
    Ok(())
}

async fn reconnect(args: &Args, from: IpAddr, tally: &Tally) -> std::io::Result<()> {
    let mut lines = vec!["/join soak-flood".to_string()];
    lines.extend((0..20).map(|i| format!("spam {i}")));
    lines.push("/quit".to_string());
    say_and_tally(args, from, &lines, "reconnect", tally).await
}

async fn silent(
    args: &Args,
    from: IpAddr,
    deadline: Instant,
    tally: &Tally,
) -> std::io::Result<()> {
    let mut stream = connect_from(args.tcp, from).await?;
    let mut answer = Vec::new();
    // Holds the slot until the server closes it (after its join timeout, or a refusal), or
    // until the run ends.
    let read = tokio::time::timeout_at(deadline.into(), stream.read_to_end(&mut answer)).await;
    if read.is_err() {
        count(tally, "silent", "still open at the end");
    }
    for line in String::from_utf8_lossy(&answer).lines() {
        count(tally, "silent", sort_of(line));
    }
    Ok(())
}

async fn spoof(args: &Args, from: IpAddr, tally: &Tally) -> std::io::Result<()> {
    let lines = [
        "/join soak-spoof",
        "x\u{202E}gnp.exe",
        "pay\u{200B}pal",
        "hi\u{E0041}\u{E0042}",
        "/nick aIice",
        "/nick a1ice",
        "/quit",
    ]
    .map(str::to_string);
    say_and_tally(args, from, &lines, "spoof", tally).await
}

async fn cross_site(args: &Args, http: &reqwest::Client, tally: &Tally) -> reqwest::Result<()> {
    let base = format!("http://{}", args.http);
    let forged = http
        .post(format!("{base}/connect"))
        .header("origin", "http://evil.example")
        .json(&json!({}))
        .send()
        .await?;
    count(tally, "cross-site", forged.status().as_str());
    let joining = http
        .get(format!("{base}/messages/soak-trap?session=0"))
        .header("sec-fetch-site", "same-site")
        .send()
        .await?;
    count(tally, "cross-site", joining.status().as_str());
    Ok(())
}

async fn refusals(args: &Args, http: &reqwest::Client, tally: &Tally) -> reqwest::Result<()> {
    let base = format!("http://{}", args.http);
    let bad = http
        .post(format!("{base}/connect"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await?;
    count(tally, "refusals", bad.status().as_str());
    let session = http.post(format!("{base}/connect")).send().await?;
    count(tally, "refusals", session.status().as_str());
    let body: serde_json::Value = session.json().await.unwrap_or_default();
    let Some(token) = body["session"].as_str() else {
        return Ok(());
    };
    for i in 0..5 {
        let room = format!("soak-{}-{i}", rand::random::<u32>());
        let joined = http
            .post(format!("{base}/command"))
            .bearer_auth(token)
            .json(&json!({ "command": format!("/join {room}") }))
            .send()
            .await?;
        count(tally, "refusals", joined.status().as_str());
    }
    let quit = json!({ "command": "/quit" });
    let _ = http
        .post(format!("{base}/command"))
        .bearer_auth(token)
        .json(&quit)
        .send()
        .await;
    Ok(())
}

/// One task: `kind` from `from`, again and again until `deadline`.
async fn run(args: Arc<Args>, kind: String, from: IpAddr, deadline: Instant, tally: Tally) {
    let http = reqwest::Client::builder()
        .local_address(from)
        .timeout(Duration::from_secs(10))
        .build();
    let Ok(http) = http else {
        return;
    };
    while Instant::now() < deadline {
        let failed = match kind.as_str() {
            "reconnect" => reconnect(&args, from, &tally).await.is_err(),
            "silent" => silent(&args, from, deadline, &tally).await.is_err(),
            "spoof" => spoof(&args, from, &tally).await.is_err(),
            "cross-site" => cross_site(&args, &http, &tally).await.is_err(),
            "refusals" => refusals(&args, &http, &tally).await.is_err(),
            _ => return,
        };
        if failed {
            count(&tally, &kind, "connection failed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    let known = ["reconnect", "silent", "spoof", "cross-site", "refusals"];
    if let Some(unknown) = args.kinds.iter().find(|k| !known.contains(&k.as_str())) {
        anyhow::bail!(
            "unknown --kind {unknown}; the kinds are {}",
            known.join(", ")
        );
    }
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let tally = Tally::default();
    let mut tasks = tokio::task::JoinSet::new();
    for kind in &args.kinds {
        for from in &args.from {
            for _ in 0..args.clients {
                tasks.spawn(run(
                    args.clone(),
                    kind.clone(),
                    *from,
                    deadline,
                    tally.clone(),
                ));
            }
        }
    }
    // A task's last round may outlive the deadline (by its 10 s timeouts at most).
    let _ = tokio::time::timeout_at((deadline + Duration::from_secs(15)).into(), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    let tally = tally.lock().unwrap_or_else(|p| p.into_inner()).clone();
    println!("{}", json!(tally));
    Ok(())
}
