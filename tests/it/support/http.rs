//! An HTTP client for tests: JSON requests with a session token, and a Server-Sent Events reader.

use std::net::SocketAddr;

use futures_util::StreamExt;
use serde_json::{Value, json};

use super::PATIENCE;

/// One browser-like session over HTTP.
pub struct HttpClient {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The session token from `/connect`, once connected.
    pub token: Option<String>,
    client: reqwest::Client,
}

/// A response: status and JSON body.
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body as JSON (`Null` if it was not JSON).
    pub json: Value,
    /// The `Set-Cookie` header, if any.
    pub cookie: Option<String>,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
}

impl HttpClient {
    /// A client of the server at `addr`, without a session.
    pub fn new(addr: SocketAddr) -> HttpClient {
        HttpClient {
            base: format!("http://{addr}"),
            token: None,
            client: reqwest::Client::new(),
        }
    }

    /// Connects with `nick` and keeps the token.
    pub async fn connect(addr: SocketAddr, nick: &str) -> HttpClient {
        let mut client = HttpClient::new(addr);
        let answer = client.post("/connect", json!({ "nick": nick })).await;
        assert_eq!(answer.status, 200, "{}", answer.json);
        client.token = Some(
            answer.json["session"]
                .as_str()
                .expect("a token")
                .to_string(),
        );
        client
    }

    /// POSTs `body` as JSON (with the bearer token if there is one).
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.post_raw(path, "application/json", body.to_string())
            .await
    }

    /// POSTs raw bytes with a given content type.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: String) -> Answer {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        answer(req.send().await.expect("request")).await
    }

    /// GETs `path`.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    /// Runs a slash command; returns the answer.
    pub async fn command(&self, command: &str) -> Answer {
        self.post("/command", json!({ "command": command })).await
    }

    /// Posts a message; returns the answer.
    pub async fn say(&self, room: &str, text: &str) -> Answer {
        self.post("/message", json!({ "room": room, "text": text }))
            .await
    }

    /// Posts a message like [`HttpClient::say`], but returns `None` instead of panicking when the
    /// server cannot be reached (for tests that kill it mid-request).
    pub async fn try_say(&self, room: &str, text: &str) -> Option<Answer> {
        let body = json!({ "room": room, "text": text }).to_string();
        let mut req = self
            .client
            .post(format!("{}/message", self.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        Some(answer(req.send().await.ok()?).await)
    }

    /// Opens `room`'s event stream, resuming after `last_event_id` if given.
    pub async fn stream(&self, room: &str, last_event_id: Option<u64>) -> SseReader {
        let mut req = self.client.get(format!("{}/messages/{room}", self.base));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let resp = req.send().await.expect("open stream");
        assert_eq!(resp.status().as_u16(), 200, "stream status");
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        SseReader {
            stream: Box::pin(resp.bytes_stream()),
            buf: String::new(),
        }
    }
}

async fn answer(resp: reqwest::Response) -> Answer {
    let status = resp.status().as_u16();
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = resp.text().await.unwrap_or_default();
    Answer {
        status,
        json: serde_json::from_str(&text).unwrap_or(Value::Null),
        cookie,
        retry_after,
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// The `event:` field (`message` by default).
    pub event: String,
    /// The `id:` field, if any.
    pub id: Option<String>,
    /// The `data:` field, parsed as JSON.
    pub data: Value,
}

/// Reads events from a `text/event-stream` body.
pub struct SseReader {
    stream:
        std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl SseReader {
    /// The next event (comments and `retry:` hints are skipped).
    pub async fn next(&mut self) -> SseEvent {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if let Some(event) = parse(&block) {
                    return event;
                }
                continue;
            }
            match tokio::time::timeout(PATIENCE, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(other) => panic!("event stream ended: {other:?}"),
                Err(_) => panic!("no event within {PATIENCE:?}"),
            }
        }
    }

    /// The next event that is a chat message.
    pub async fn next_message(&mut self) -> SseEvent {
        loop {
            let event = self.next().await;
            if event.event == "message" {
                return event;
            }
        }
    }
}

fn parse(block: &str) -> Option<SseEvent> {
    let (mut event, mut id, mut data) = ("message".to_string(), None, None);
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event: ") {
            event = v.to_string();
        } else if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("data: ") {
            data = Some(serde_json::from_str(v).expect("data is JSON"));
        }
    }
    Some(SseEvent {
        event,
        id,
        data: data?,
    })
}

/// A counter of `GET /metrics` on `addr` (an instance's HTTP address), by its full name.
pub async fn metric(addr: SocketAddr, name: &str) -> u64 {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// `GET /readyz`: status code and JSON body.
pub async fn readyz(http: SocketAddr) -> (u16, Value) {
    let (status, body) = HttpClient::new(http).get("/readyz").await;
    let json = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    (status, json)
}

/// Polls `/readyz` until `done` says yes about it, and returns that answer. The bound is a hang
/// guard, not a speed requirement.
pub async fn readyz_until(
    http: SocketAddr,
    what: &str,
    done: impl Fn(u16, &Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + PATIENCE * 3;
    loop {
        let (status, body) = readyz(http).await;
        if done(status, &body) {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz never became {what}; last answer {status} {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Waits until `/readyz` is `503` with every check in `failing` saying what is wrong; returns
/// the answer (and prints it, for whoever reads the test's output).
pub async fn until_red(http: SocketAddr, failing: &[&str]) -> Value {
    let red = readyz_until(http, &format!("red in {failing:?}"), |status, body| {
        status == 503
            && body["status"] == "unavailable"
            && failing.iter().all(|check| {
                body["checks"][check]
                    .as_str()
                    .is_some_and(|why| why != "ok")
            })
    })
    .await;
    eprintln!("/readyz: {red}");
    red
}

/// Waits until `/readyz` is `200`, every check `ok`.
pub async fn until_green(http: SocketAddr) -> Value {
    let green = readyz_until(http, "green", |status, body| {
        status == 200 && body["status"] == "ok"
    })
    .await;
    let checks = green["checks"].as_object().expect("checks");
    assert!(checks.values().all(|v| v == "ok"), "{green}");
    green
}
