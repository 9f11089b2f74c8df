//! A scripted HTTP server for the browser client alone: it serves the real `static/` files, and
//! answers the page's requests with fixed JSON and each room's event stream with a fixed script.
//!
//! It exists for one kind of test: what the page does with stream events that the real server
//! sends only in rare situations, or not yet (`event: gap`, `event: reset`). The page under test
//! is the real one, in a real Chromium; only the server side is a script, so that the test says
//! exactly which frames arrive in which order. Everything else is tested against the real chatd.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The scripted server; it stops when dropped.
pub struct ScriptedServer {
    /// Where it listens (loopback, an ephemeral port).
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One SSE frame: `event`, an optional `id`, and its JSON `data`.
pub fn frame(event: &str, id: Option<u64>, data: Value) -> String {
    let id = id.map(|id| format!("id: {id}\n")).unwrap_or_default();
    format!("event: {event}\n{id}data: {data}\n\n")
}

/// A chat message frame as chatd sends it.
pub fn message(room: &str, seq: u64, nick: &str, text: &str, ts: &str) -> String {
    let data = json!({ "room": room, "seq": seq, "nick": nick, "text": text, "ts": ts });
    frame("message", Some(seq), data)
}

impl ScriptedServer {
    /// Starts a server whose `GET /messages/ROOM` sends `streams[ROOM]` (after `retry: 2000`) and
    /// then holds the stream open; the page's nick is `nick`.
    pub async fn start(nick: &str, streams: HashMap<String, String>) -> ScriptedServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let script = Arc::new(Script {
            nick: nick.to_string(),
            streams,
            files: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("static"),
        });
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(script.clone().serve(socket));
            }
        });
        ScriptedServer { addr, task }
    }
}

struct Script {
    nick: String,
    streams: HashMap<String, String>,
    files: PathBuf,
}

impl Script {
    /// One request per connection (`Connection: close`), which is all a page needs.
    async fn serve(self: Arc<Self>, mut socket: TcpStream) {
        let Some((method, path, body)) = read_request(&mut socket).await else {
            return;
        };
        let path = path.split('?').next().unwrap_or_default().to_string();
        if method == "GET" && path.starts_with("/messages/") {
            let room = path.trim_start_matches("/messages/");
            let script = self.streams.get(room).cloned().unwrap_or_default();
            let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                        cache-control: no-cache\r\nconnection: close\r\n\r\n";
            let opening = format!("{head}retry: 2000\n\n{script}");
            if socket.write_all(opening.as_bytes()).await.is_ok() {
                // Held open, so that the browser does not reconnect and get the script again.
                tokio::time::sleep(Duration::from_secs(600)).await;
            }
            return;
        }
        let (status, content_type, payload, cookie) = match (method.as_str(), path.as_str()) {
            ("POST", "/connect") => {
                let answer = json!({ "session": "scripted", "nick": self.nick });
                (
                    200,
                    "application/json",
                    answer.to_string().into_bytes(),
                    true,
                )
            }
            ("POST", "/command") => {
                let answer = command(&body).to_string().into_bytes();
                (200, "application/json", answer, false)
            }
            ("GET", "/healthz") => (
                200,
                "application/json",
                b"{\"status\":\"ok\"}".to_vec(),
                false,
            ),
            ("GET", _) => match self.file(&path) {
                Some((content_type, bytes)) => (200, content_type, bytes, false),
                None => (404, "text/plain", b"not found".to_vec(), false),
            },
            _ => (405, "text/plain", b"method not allowed".to_vec(), false),
        };
        let cookie = if cookie {
            "set-cookie: chatd_session=scripted; HttpOnly; SameSite=Strict; Path=/\r\n"
        } else {
            ""
        };
        let head = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
             {cookie}connection: close\r\n\r\n",
            payload.len()
        );
        let _ = socket.write_all(head.as_bytes()).await;
        let _ = socket.write_all(&payload).await;
    }

    /// A file of `static/`, with the content type a module script needs.
    fn file(&self, path: &str) -> Option<(&'static str, Vec<u8>)> {
        let relative = Path::new(path.trim_start_matches('/'));
        if relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return None;
        }
        let mut full = self.files.join(relative);
        if path == "/" {
            full = self.files.join("index.html");
        }
        let content_type = match full.extension().and_then(|e| e.to_str()) {
            Some("html") => "text/html; charset=utf-8",
            Some("js") => "text/javascript",
            Some("css") => "text/css",
            Some("svg") => "image/svg+xml",
            _ => "application/octet-stream",
        };
        std::fs::read(full).ok().map(|bytes| (content_type, bytes))
    }
}

/// The answer to a `POST /command`: a join joins, `/rooms` and `/users` list what the streams
/// name, anything else has an empty answer.
fn command(body: &[u8]) -> Value {
    let line = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["command"].as_str().map(str::to_string))
        .unwrap_or_default();
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["/join", room] => json!({ "lines": [], "room": room, "members": 1 }),
        ["/users", room] => json!({ "lines": [], "room": room, "users": [] }),
        ["/rooms"] => json!({ "lines": [], "rooms": [] }),
        _ => json!({ "lines": [] }),
    }
}

/// The request line's method and path, and the body (by `content-length`).
async fn read_request(socket: &mut TcpStream) -> Option<(String, String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut words = head.split_whitespace();
    let (method, path) = (words.next()?.to_string(), words.next()?.to_string());
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((method, path, body))
}
