//! The kinds of client the soak runs: what each one does until the end of the run, and what it
//! counts. Each loops until `Stage::until`, never panics on the server's answers (it counts
//! them), and comes back after a refusal or a cut-off as an outsider would.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::codec::{Framed, LinesCodec};

use crate::tally::{PATIENCE, Tally};

/// Where the clients go, when they stop, and what they count into.
#[derive(Clone)]
pub struct Stage {
    pub tcp: SocketAddr,
    pub http: SocketAddr,
    pub tally: Arc<Tally>,
    pub until: Instant,
}

impl Stage {
    fn over(&self) -> bool {
        Instant::now() >= self.until
    }
}

/// A kind of client; see [`Kind::run`].
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// Two people in a room of their own, one line every half second, the other timing it.
    Normal,
    /// Opens the replay of the room of 1,000 longest messages with a tiny receive buffer and
    /// never reads it; after 20 s closes and does it again.
    ReplayHolder,
    /// Opens the replay of that room and closes it as soon as it is answered, again and again.
    StreamChurn,
    /// Connects, creates nine rooms with one message each, quits; again and again.
    RoomFiller,
    /// Joins the flooded room with a tiny receive buffer and never reads; after 150 s reads what
    /// it got (to see whether it was cut, and why) and comes back. (The kernel's buffers between
    /// the server and it take a few MB first: those are not the server's memory.)
    SlowReader,
    /// Says the longest lines into the flooded room at nine a second (under the rate limit).
    Flooder,
}

/// The room the replays read, and the room the flooders fill.
const BIG: &str = "big";
const FLOOD: &str = "flood";

impl Kind {
    /// Runs client `n` of this kind from `from` until the stage's end.
    pub async fn run(self, stage: Arc<Stage>, from: &'static str, n: usize) {
        let name = self.name();
        while !stage.over() {
            let result = match self {
                Kind::Normal => normal(&stage, from, n).await,
                Kind::ReplayHolder => replay_holder(&stage, from).await,
                Kind::StreamChurn => stream_churn(&stage, from).await,
                Kind::RoomFiller => room_filler(&stage, from, n).await,
                Kind::SlowReader => slow_reader(&stage, from).await,
                Kind::Flooder => flooder(&stage, from).await,
            };
            if let Err(err) = result {
                stage.tally.count(name, format!("error: {err}"));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Normal => "normal",
            Kind::ReplayHolder => "replay holder",
            Kind::StreamChurn => "stream churn",
            Kind::RoomFiller => "room filler",
            Kind::SlowReader => "slow reader",
            Kind::Flooder => "flooder",
        }
    }
}

type Lines = Framed<TcpStream, LinesCodec>;

/// What [`next_line`] says when the server closed the connection.
const CLOSED: &str = "closed by the server";
type Result<T = ()> = std::result::Result<T, String>;

/// A TCP connection from `from`, optionally with a tiny receive buffer.
async fn connect(addr: SocketAddr, from: &str, tiny: bool) -> Result<TcpStream> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    if tiny {
        socket
            .set_recv_buffer_size(4096)
            .map_err(|e| e.to_string())?;
    }
    let ip: IpAddr = from.parse().map_err(|_| format!("bad address {from}"))?;
    socket
        .bind(SocketAddr::new(ip, 0))
        .map_err(|e| e.to_string())?;
    socket
        .connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))
}

/// A line-protocol session from `from`, past its welcome line.
async fn session(stage: &Stage, from: &str, tiny: bool) -> Result<Lines> {
    let stream = connect(stage.tcp, from, tiny).await?;
    let mut lines = Framed::new(stream, LinesCodec::new_with_max_length(1 << 20));
    let welcome = next_line(&mut lines).await?;
    if !welcome.starts_with("* welcome") {
        return Err(format!("refused at connect: {welcome}"));
    }
    Ok(lines)
}

async fn next_line(lines: &mut Lines) -> Result<String> {
    match tokio::time::timeout(PATIENCE, lines.next()).await {
        Ok(Some(Ok(line))) => Ok(line),
        Ok(Some(Err(e))) => Err(e.to_string()),
        Ok(None) => Err(CLOSED.into()),
        Err(_) => Err("no answer".into()),
    }
}

async fn send(lines: &mut Lines, line: String) -> Result {
    lines.send(line).await.map_err(|e| e.to_string())
}

/// An HTTP client whose connections come from `from`.
fn http_client(from: &str) -> Result<reqwest::Client> {
    let ip: IpAddr = from.parse().map_err(|_| format!("bad address {from}"))?;
    reqwest::Client::builder()
        .local_address(ip)
        .build()
        .map_err(|e| e.to_string())
}

/// A new HTTP session's token.
async fn http_session(stage: &Stage, client: &reqwest::Client) -> Result<String> {
    let resp = client
        .post(format!("http://{}/connect", stage.http))
        .json(&json!({}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    match body["session"].as_str() {
        Some(token) => Ok(token.to_string()),
        None => Err(format!("connect: {status} {}", body["error"])),
    }
}

/// The longest message (2000 characters of four bytes each), numbered.
fn longest(n: usize) -> String {
    format!("{} {n:08}", "😀".repeat(1990))
}

/// Before the run: 1,000 of the longest messages in the room the replays read, said over HTTP
/// from `127.0.0.3` by sessions of 19 messages each (within their rate limit's burst).
pub async fn fill_big_room(stage: &Stage) {
    let mut tasks = tokio::task::JoinSet::new();
    for first in (0..1000).step_by(19) {
        let stage = stage.clone();
        tasks.spawn(async move {
            let client = http_client("127.0.0.3")?;
            let token = http_session(&stage, &client).await?;
            let base = format!("http://{}", stage.http);
            let post = |path: &str, body: Value| {
                client
                    .post(format!("{base}{path}"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
            };
            let join = post("/command", json!({ "command": format!("/join {BIG}") }));
            join.await.map_err(|e| e.to_string())?.text().await.ok();
            for i in first..(first + 19).min(1000) {
                let say = post("/message", json!({ "room": BIG, "text": longest(i) }));
                say.await.map_err(|e| e.to_string())?.text().await.ok();
            }
            Ok::<(), String>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(err)) = done {
            eprintln!("soak: filling the big room: {err}");
        }
    }
}

async fn normal(stage: &Stage, from: &str, n: usize) -> Result {
    let (mut talker, mut listener) = (
        session(stage, from, false).await?,
        session(stage, from, false).await?,
    );
    let room = format!("lobby{n}");
    for lines in [&mut talker, &mut listener] {
        send(lines, format!("/join {room}")).await?;
        next_line(lines).await?;
    }
    let mut i = 0u64;
    while !stage.over() {
        i += 1;
        let text = format!("hello {i}");
        let sent = Instant::now();
        send(&mut talker, text.clone()).await?;
        let suffix = format!(": {text}");
        loop {
            match next_line(&mut listener).await {
                Ok(line) if line.ends_with(&suffix) => {
                    stage.tally.trip(sent.elapsed());
                    break;
                }
                Ok(line) if line.starts_with("! ") => stage.tally.refused("normal", &line),
                Ok(_) => {} // a presence notice
                Err(err) => {
                    stage.tally.lost();
                    return Err(err);
                }
            }
        }
        stage.tally.count("normal", "messages delivered");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(())
}

/// Opens `room`'s replay from seq 0 for `token` from `from` over a raw socket (with a tiny
/// receive buffer when `tiny`); returns the status, the error text of a refusal, and the socket.
async fn open_stream(
    stage: &Stage,
    from: &str,
    token: &str,
    tiny: bool,
) -> Result<(u16, String, TcpStream)> {
    let mut socket = connect(stage.http, from, tiny).await?;
    let request = format!(
        "GET /messages/{BIG}?session={token}&last_event_id=0 HTTP/1.1\r\nHost: chatd\r\n\r\n"
    );
    socket
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(PATIENCE, socket.read(&mut byte)).await;
        match read {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => return Err("the response head did not come".into()),
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    if status == 200 {
        return Ok((status, String::new(), socket));
    }
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    let _ = tokio::time::timeout(PATIENCE, socket.read_exact(&mut body)).await;
    Ok((status, String::from_utf8_lossy(&body).to_string(), socket))
}

async fn replay_holder(stage: &Stage, from: &str) -> Result {
    let token = http_session(stage, &http_client(from)?).await?;
    while !stage.over() {
        let (status, error, socket) = open_stream(stage, from, &token, true).await?;
        match status {
            200 => stage
                .tally
                .count("replay holder", "streams held (20 s each)"),
            _ => stage.tally.refused("replay holder", &error),
        }
        let hold = Duration::from_secs(if status == 200 { 20 } else { 2 });
        tokio::time::sleep(hold.min(stage.until.saturating_duration_since(Instant::now()))).await;
        drop(socket);
    }
    Ok(())
}

async fn stream_churn(stage: &Stage, from: &str) -> Result {
    let token = http_session(stage, &http_client(from)?).await?;
    while !stage.over() {
        let (status, error, socket) = open_stream(stage, from, &token, false).await?;
        match status {
            200 => stage
                .tally
                .count("stream churn", "streams opened and closed"),
            401 => return Err("the session expired".into()),
            _ => stage.tally.refused("stream churn", &error),
        }
        drop(socket);
    }
    Ok(())
}

async fn room_filler(stage: &Stage, from: &str, n: usize) -> Result {
    let mut round = 0;
    while !stage.over() {
        round += 1;
        let mut lines = session(stage, from, false).await?;
        for r in 0..9 {
            let room = format!("f{n}x{round}x{r}");
            send(&mut lines, format!("/join {room}")).await?;
            let line = next_line(&mut lines).await?;
            if line.starts_with("* you joined") {
                stage.tally.count("room filler", "rooms created");
                send(&mut lines, "mine".into()).await?;
            } else {
                stage.tally.refused("room filler", &line);
            }
        }
        send(&mut lines, "/quit".into()).await?;
        while let Ok(line) = next_line(&mut lines).await {
            if line.starts_with("! ") {
                stage.tally.refused("room filler", &line);
            }
        }
    }
    Ok(())
}

async fn slow_reader(stage: &Stage, from: &str) -> Result {
    let mut lines = session(stage, from, true).await?;
    send(&mut lines, format!("/join {FLOOD}")).await?;
    next_line(&mut lines).await?;
    let wait = Duration::from_secs(150).min(stage.until.saturating_duration_since(Instant::now()));
    tokio::time::sleep(wait).await;
    // Now read what came, to see whether (and why) the server cut this reader off.
    let mut last = String::new();
    let closed = loop {
        match next_line(&mut lines).await {
            Ok(line) => last = line,
            Err(why) => break why == CLOSED,
        }
    };
    match (closed, last.starts_with("! ")) {
        (true, true) => stage.tally.refused("slow reader", &last),
        // Its farewell could not be written: the kernel's buffer towards it was full.
        (true, false) => stage
            .tally
            .count("slow reader", "cut off (no room for its farewell)"),
        (false, _) => stage.tally.count("slow reader", "kept (read 150 s late)"),
    }
    Ok(())
}

async fn flooder(stage: &Stage, from: &str) -> Result {
    let lines = session(stage, from, false).await?;
    let (mut sink, mut stream) = lines.split();
    sink.send(format!("/join {FLOOD}"))
        .await
        .map_err(|e| e.to_string())?;
    // Read everything (other flooders' lines too), counting refusals: a flooder that stopped
    // reading would be a slow reader itself.
    let tally = stage.tally.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(line)) = stream.next().await {
            if line.starts_with("! ") {
                tally.refused("flooder", &line);
            }
        }
    });
    let text = "x".repeat(1990);
    let mut i = 0;
    while !stage.over() && !reader.is_finished() {
        i += 1;
        sink.send(format!("{text} {i}"))
            .await
            .map_err(|e| e.to_string())?;
        stage.tally.count("flooder", "lines sent");
        tokio::time::sleep(Duration::from_millis(111)).await;
    }
    reader.abort();
    Ok(())
}
