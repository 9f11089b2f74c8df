//! Senders for consistency runs: clients that send unique texts at a steady pace and record
//! every outcome in the run's [`Recorder`], over HTTP and over the line protocol.
//!
//! An HTTP message is acknowledged by `202 {"seq": N}` and refused by any other status. A line
//! protocol message has no acknowledgement of its own: the adapter answers a connection's lines
//! in order, so the sender follows each message with `/rooms` and reads up to its reply; a `! `
//! line before that reply refuses the message, none acknowledges it. A cut connection or a
//! request that times out is neither: its outcome is unknown, and the checks treat it so.
//!
//! Senders survive their instance's death: they reconnect (a new session, the same rooms) until
//! they are told to stop.

use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::line_conn::LineConn;
use super::record::{Outcome, Recorder, Sent};

/// How long a sender waits for one answer before calling the outcome unknown.
pub const ANSWER_PATIENCE: Duration = Duration::from_secs(10);
/// Pause before reconnecting to an instance that is down.
const RECONNECT: Duration = Duration::from_millis(200);

/// One chatd instance as clients see it: a name and two fixed addresses.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `--instance`.
    pub name: String,
    /// The line protocol.
    pub tcp: SocketAddr,
    /// HTTP.
    pub http: SocketAddr,
}

impl Endpoint {
    /// `http://ADDR`.
    pub fn base(&self) -> String {
        format!("http://{}", self.http)
    }
}

/// A paced sender; see the module docs.
#[derive(Debug, Clone)]
pub struct Sender {
    /// The client's name, part of every text (`{prefix}-{name}-{n}`).
    pub name: String,
    /// Prefix of every text (`s{seed}`).
    pub prefix: String,
    /// Where it sends.
    pub target: Endpoint,
    /// The rooms it sends to (HTTP: chosen at random per message; TCP: the first only).
    pub rooms: Vec<String>,
    /// Messages per second.
    pub per_second: f64,
    /// Its own random stream.
    pub seed: u64,
}

impl Sender {
    /// Sends over HTTP until `stop`; returns how many messages it sent.
    pub async fn run_http(self, log: Recorder, stop: CancellationToken) -> usize {
        let client = reqwest::Client::builder()
            .timeout(ANSWER_PATIENCE)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client");
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut pace = pacer(self.per_second);
        let (mut token, mut generation, mut n) = (None::<String>, 0, 0);
        while !stop.is_cancelled() {
            let nick = format!("{}-g{generation}", self.name);
            let Some(session) = token.clone() else {
                generation += 1;
                let nick = format!("{}-g{generation}", self.name);
                token = http_session(&client, &self.target, &nick, &self.rooms).await;
                if token.is_none() {
                    nap(&stop, RECONNECT).await;
                }
                continue;
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = pace.tick() => {}
            }
            let room = self.rooms[rng.random_range(0..self.rooms.len())].clone();
            n += 1;
            let text = format!("{}-{}-{n}", self.prefix, self.name);
            let outcome = post_message(&client, &self.target, &session, &room, &text).await;
            if matches!(&outcome, Outcome::Refused(why) if why.starts_with("401")) {
                token = None; // the instance restarted: this session is gone
            }
            log.sent(Sent {
                room,
                text,
                client: nick,
                instance: self.target.name.clone(),
                outcome,
            });
        }
        n
    }

    /// Sends over the line protocol, to its first room, until `stop`; returns how many.
    pub async fn run_tcp(self, log: Recorder, stop: CancellationToken) -> usize {
        let room = self.rooms[0].clone();
        let mut pace = pacer(self.per_second);
        let (mut generation, mut n) = (0, 0);
        while !stop.is_cancelled() {
            generation += 1;
            let nick = format!("{}-g{generation}", self.name);
            let Some(mut conn) = LineConn::joined(&self.target, &nick, &room).await else {
                nap(&stop, RECONNECT).await;
                continue;
            };
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return n,
                    _ = pace.tick() => {}
                }
                n += 1;
                let text = format!("{}-{}-{n}", self.prefix, self.name);
                let outcome = conn.say(&text).await;
                let broken = outcome == Outcome::Unknown;
                log.sent(Sent {
                    room: room.clone(),
                    text,
                    client: nick.clone(),
                    instance: self.target.name.clone(),
                    outcome,
                });
                if broken {
                    break;
                }
            }
        }
        n
    }
}

/// Sleeps `d`, or less if `stop` comes first.
pub async fn nap(stop: &CancellationToken, d: Duration) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

fn pacer(per_second: f64) -> tokio::time::Interval {
    let period = Duration::from_secs_f64(1.0 / per_second.max(0.1));
    let mut pace = tokio::time::interval(period);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    pace
}

/// `POST /connect` as `nick`, then `/join` each room; the token, or `None` on any failure.
pub async fn http_session(
    client: &reqwest::Client,
    target: &Endpoint,
    nick: &str,
    rooms: &[String],
) -> Option<String> {
    let connect = client
        .post(format!("{}/connect", target.base()))
        .json(&json!({ "nick": nick }))
        .send()
        .await
        .ok()?;
    if connect.status().as_u16() != 200 {
        return None;
    }
    let body: Value = connect.json().await.ok()?;
    let token = body["session"].as_str()?.to_string();
    for room in rooms {
        let joined = client
            .post(format!("{}/command", target.base()))
            .bearer_auth(&token)
            .json(&json!({ "command": format!("/join {room}") }))
            .send()
            .await
            .ok()?;
        if joined.status().as_u16() != 200 {
            return None;
        }
    }
    Some(token)
}

/// `POST /message` and what its answer means; see the module docs.
pub async fn post_message(
    client: &reqwest::Client,
    target: &Endpoint,
    token: &str,
    room: &str,
    text: &str,
) -> Outcome {
    let sent = client
        .post(format!("{}/message", target.base()))
        .bearer_auth(token)
        .json(&json!({ "room": room, "text": text }))
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        // Nothing reached the server: as good as refused.
        Err(e) if e.is_connect() => return Outcome::Refused("cannot connect".into()),
        Err(_) => return Outcome::Unknown,
    };
    let status = response.status().as_u16();
    let Ok(body) = response.text().await else {
        return Outcome::Unknown;
    };
    if status == 504 {
        return Outcome::Unknown; // the server gave up waiting for its own answer: not a refusal
    }
    if status == 202 {
        let seq = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["seq"].as_u64());
        return match seq {
            Some(seq) => Outcome::Acked(Some(seq)),
            None => Outcome::Unknown,
        };
    }
    Outcome::Refused(format!("{status} {body}"))
}
