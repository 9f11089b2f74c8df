//! Readers for consistency runs: clients that record every message and every signal a room's
//! stream shows them, into a [`View`](super::record::View) of the run's [`Recorder`].
//!
//! * [`SseReader`]: `GET /messages/ROOM`. A plain reader opens once; when its stream ends (its
//!   instance died) it opens afresh, as a new view. A *resumer* drops its stream now and then
//!   and reconnects with `Last-Event-ID` (to its own instance or, at random, another), and its
//!   view spans every reconnection: that is what a browser's `EventSource` does.
//! * [`TcpReader`]: `/join ROOM` over the line protocol; its history lines, then live lines and
//!   `* missed messages #A to #B in ROOM` notices. A broken connection starts a new view.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::line_conn::{LineConn, chat_text};
use super::record::{Protocol, Recorder, Seen, SharedView, push};
use super::senders::{Endpoint, http_session, nap};

/// A stream silent this long is dead (the server pings every 15 s).
const SILENCE: Duration = Duration::from_secs(20);
/// Pause before reconnecting.
const RECONNECT: Duration = Duration::from_millis(200);

/// An SSE reader; see the module docs.
#[derive(Debug, Clone)]
pub struct SseReader {
    /// The reader's name.
    pub name: String,
    /// The room it reads.
    pub room: String,
    /// Every instance, for resumers that move.
    pub endpoints: Vec<Endpoint>,
    /// Its own instance: an index into `endpoints`.
    pub home: usize,
    /// For a resumer: how long each connection lasts, in ms (low, high).
    pub resume_every_ms: Option<(u64, u64)>,
    /// Its own random stream.
    pub seed: u64,
}

impl SseReader {
    /// Reads until `stop`.
    pub async fn run(self, log: Recorder, stop: CancellationToken) {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client");
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut sessions: HashMap<usize, String> = HashMap::new();
        let mut view = log.view(&self.name, &self.room, Protocol::Sse);
        let (mut last, mut opened, mut generation) = (None::<u64>, false, 0);
        while !stop.is_cancelled() {
            let at = match self.resume_every_ms {
                Some(_) if rng.random_bool(0.4) => rng.random_range(0..self.endpoints.len()),
                _ => self.home,
            };
            let target = &self.endpoints[at];
            let token = match sessions.get(&at) {
                Some(token) => token.clone(),
                None => {
                    generation += 1;
                    let nick = format!("{}-g{generation}", self.name);
                    let Some(token) = http_session(&client, target, &nick, &[]).await else {
                        nap(&stop, RECONNECT).await;
                        continue;
                    };
                    sessions.insert(at, token.clone());
                    token
                }
            };
            let after = if self.resume_every_ms.is_some() {
                last
            } else {
                None
            };
            let mut request = client
                .get(format!("{}/messages/{}", target.base(), self.room))
                .bearer_auth(&token);
            if let Some(after) = after {
                request = request.header("last-event-id", after.to_string());
            }
            let response = match request.send().await {
                Ok(response) if response.status().as_u16() == 200 => response,
                Ok(response) => {
                    if response.status().as_u16() == 401 {
                        sessions.remove(&at);
                    }
                    nap(&stop, RECONNECT).await;
                    continue;
                }
                Err(_) => {
                    sessions.remove(&at);
                    nap(&stop, RECONNECT).await;
                    continue;
                }
            };
            if opened && self.resume_every_ms.is_none() {
                // A plain reader's stream ended: it opens afresh, as a new view.
                generation += 1;
                view = log.view(
                    &format!("{}.{generation}", self.name),
                    &self.room,
                    Protocol::Sse,
                );
                last = None;
            }
            opened = true;
            push(
                &view,
                Seen::Open {
                    instance: target.name.clone(),
                    after,
                },
            );
            let lasts = self
                .resume_every_ms
                .map(|(low, high)| Duration::from_millis(rng.random_range(low..=high)));
            let ended = read_stream(response, &view, &mut last, lasts, &stop).await;
            if ended == StreamEnd::Broken {
                sessions.remove(&at); // its instance may be gone, and the session with it
                nap(&stop, RECONNECT).await;
            }
        }
    }
}

/// Records an already opened stream (`response`) into `view`, from an `Open` on `instance`
/// (resuming after `after`), until it ends or `stop`.
pub async fn record_stream(
    response: reqwest::Response,
    view: &SharedView,
    after: Option<u64>,
    instance: &str,
    stop: &CancellationToken,
) {
    let instance = instance.to_string();
    push(view, Seen::Open { instance, after });
    let mut last = after;
    read_stream(response, view, &mut last, None, stop).await;
}

#[derive(Debug, PartialEq, Eq)]
enum StreamEnd {
    Stopped,
    Dropped,
    Broken,
}

/// Records the events of one open stream until it ends, `lasts` runs out or `stop`.
async fn read_stream(
    response: reqwest::Response,
    view: &SharedView,
    last: &mut Option<u64>,
    lasts: Option<Duration>,
    stop: &CancellationToken,
) -> StreamEnd {
    let mut body = response.bytes_stream();
    let mut buf = String::new();
    let until = lasts.map(|d| tokio::time::Instant::now() + d);
    loop {
        let chunk = tokio::select! {
            _ = stop.cancelled() => return StreamEnd::Stopped,
            _ = async {
                match until {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => return StreamEnd::Dropped,
            chunk = tokio::time::timeout(SILENCE, body.next()) => chunk,
        };
        let Ok(Some(Ok(chunk))) = chunk else {
            return StreamEnd::Broken;
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            if let Some(seen) = parse_event(&block) {
                match &seen {
                    Seen::Message { seq, .. } => *last = *seq,
                    Seen::Reset { .. } => *last = None,
                    _ => {}
                }
                push(view, seen);
            }
        }
    }
}

/// One SSE block as a [`Seen`]; `None` for pings, retry hints, presence and unknown kinds.
pub fn parse_event(block: &str) -> Option<Seen> {
    let (mut event, mut id, mut data) = ("message", None, None::<Value>);
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event: ") {
            event = v;
        } else if let Some(v) = line.strip_prefix("id: ") {
            id = v.trim().parse::<u64>().ok();
        } else if let Some(v) = line.strip_prefix("data: ") {
            data = serde_json::from_str(v).ok();
        }
    }
    let data = data?;
    let number = |key: &str| data[key].as_u64();
    match event {
        "message" => Some(Seen::Message {
            seq: id.or_else(|| number("seq")),
            text: data["text"].as_str()?.to_string(),
        }),
        "truncated" => Some(Seen::Truncated {
            first: number("first_seq")?,
        }),
        "gap" => Some(Seen::Gap {
            from: number("from")?,
            to: number("to")?,
        }),
        "reset" => Some(Seen::Reset {
            last: number("last_seq")?,
        }),
        _ => None,
    }
}

/// A line protocol reader; see the module docs.
#[derive(Debug, Clone)]
pub struct TcpReader {
    /// The reader's name.
    pub name: String,
    /// The room it reads.
    pub room: String,
    /// Its instance.
    pub target: Endpoint,
}

impl TcpReader {
    /// Reads until `stop`.
    pub async fn run(self, log: Recorder, stop: CancellationToken) {
        let mut generation = 0;
        while !stop.is_cancelled() {
            generation += 1;
            let nick = format!("{}-g{generation}", self.name);
            let joined = tokio::select! {
                _ = stop.cancelled() => return,
                joined = LineConn::join(&self.target, &nick, &self.room) => joined,
            };
            let Some((mut conn, history)) = joined else {
                nap(&stop, RECONNECT).await;
                continue;
            };
            let name = match generation {
                1 => self.name.clone(),
                n => format!("{}.{n}", self.name),
            };
            let view = log.view(&name, &self.room, Protocol::Tcp);
            push(
                &view,
                Seen::Open {
                    instance: self.target.name.clone(),
                    after: None,
                },
            );
            for line in &history {
                if let Some(text) = chat_text(line, &self.room) {
                    push(&view, Seen::Message { seq: None, text });
                } else if let Some((from, to)) = missed(line, &self.room) {
                    push(&view, Seen::Gap { from, to });
                }
            }
            push(&view, Seen::HistoryEnd);
            loop {
                let line = tokio::select! {
                    _ = stop.cancelled() => return,
                    line = conn.line_within(Duration::from_secs(3600)) => line,
                };
                let Some(line) = line else { break };
                if let Some(text) = chat_text(&line, &self.room) {
                    push(&view, Seen::Message { seq: None, text });
                } else if let Some((from, to)) = missed(&line, &self.room) {
                    push(&view, Seen::Gap { from, to });
                }
            }
            nap(&stop, RECONNECT).await;
        }
    }
}

/// `* missed messages #A to #B in ROOM` as (A, B).
pub fn missed(line: &str, room: &str) -> Option<(u64, u64)> {
    let rest = line.strip_prefix("* missed messages #")?;
    let (from, rest) = rest.split_once(" to #")?;
    let (to, rest) = rest.split_once(" in ")?;
    let named = rest.split_whitespace().next()?;
    (named == room).then_some(())?;
    Some((from.parse().ok()?, to.parse().ok()?))
}
