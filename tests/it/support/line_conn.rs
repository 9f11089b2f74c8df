//! A line protocol client that never panics: every step answers `None` when the connection
//! ends, the server refuses, or nothing arrives in time, so that senders and readers can carry
//! on through an instance's death (the harness's `Client` asserts instead, for tests that
//! expect a healthy server).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::record::Outcome;
use super::senders::{ANSWER_PATIENCE, Endpoint};

/// A line protocol connection that has joined one room.
pub struct LineConn {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl LineConn {
    /// Connects, takes `nick`, joins `room` and reads up to the end of its history.
    pub async fn joined(target: &Endpoint, nick: &str, room: &str) -> Option<LineConn> {
        let (mut conn, _) = LineConn::join(target, nick, room).await?;
        conn.send("/rooms").await?;
        conn.until_rooms_reply().await?;
        Some(conn)
    }

    /// Connects, takes `nick` and joins `room`; returns the connection and the join's history
    /// lines (chat lines and missed notices), or `None` if any step failed (the instance is down, or refused the join).
    pub async fn join(
        target: &Endpoint,
        nick: &str,
        room: &str,
    ) -> Option<(LineConn, Vec<String>)> {
        let stream = tokio::time::timeout(ANSWER_PATIENCE, TcpStream::connect(target.tcp))
            .await
            .ok()?
            .ok()?;
        let (read, write) = stream.into_split();
        let mut conn = LineConn {
            lines: BufReader::new(read).lines(),
            write,
        };
        conn.line().await?; // the welcome
        conn.send(&format!("/nick {nick}")).await?;
        if !conn.line().await?.starts_with("* you are now") {
            return None;
        }
        conn.send(&format!("/join {room}")).await?;
        let notice = loop {
            let line = conn.line().await?;
            if line.starts_with(&format!("* you joined {room} (")) {
                break line;
            }
            if line.starts_with("! ") {
                return None;
            }
        };
        // The notice counts the chat lines; a `* missed messages` notice stands among them in
        // place of each hole.
        let count = history_count(&notice);
        let mut history = Vec::with_capacity(count);
        let mut chat = 0;
        while chat < count {
            let line = conn.line().await?;
            chat += usize::from(line.starts_with('['));
            history.push(line);
        }
        Some((conn, history))
    }

    /// Sends one line.
    pub async fn send(&mut self, line: &str) -> Option<()> {
        self.write
            .write_all(format!("{line}\n").as_bytes())
            .await
            .ok()
    }

    /// The next line, or `None` when the connection ends or stays silent too long.
    pub async fn line(&mut self) -> Option<String> {
        self.line_within(ANSWER_PATIENCE).await
    }

    /// The next line, or `None` when the connection ends or stays silent for `patience`.
    pub async fn line_within(&mut self, patience: Duration) -> Option<String> {
        tokio::time::timeout(patience, self.lines.next_line())
            .await
            .ok()?
            .ok()?
    }

    /// Says `text` and learns its outcome from the `/rooms` that follows it.
    pub async fn say(&mut self, text: &str) -> Outcome {
        if self.send(&format!("{text}\n/rooms")).await.is_none() {
            return Outcome::Unknown;
        }
        match self.until_rooms_reply().await {
            None => Outcome::Unknown,
            Some(None) => Outcome::Acked(None),
            Some(Some(refusal)) => Outcome::Refused(refusal),
        }
    }

    /// Reads up to the `/rooms` reply; returns the first `! ` line before it, if any.
    async fn until_rooms_reply(&mut self) -> Option<Option<String>> {
        let mut refusal = None;
        loop {
            let line = self.line().await?;
            if line.starts_with("* rooms:") || line.starts_with("* no rooms") {
                return Some(refusal);
            }
            if line.starts_with("! ") && refusal.is_none() {
                refusal = Some(line);
            }
            // Not a refusal: the server gave up waiting for its own answer (`ErrorKind::TimedOut`).
            if refusal
                .as_deref()
                .is_some_and(|r| r.starts_with("! the server took too long to answer"))
            {
                return None;
            }
        }
    }
}

/// K in `* you joined ROOM (N members); its last K messages follow`.
pub fn history_count(notice: &str) -> usize {
    match notice.split("its last ").nth(1) {
        None => 0,
        Some("message follows") => 1,
        Some(rest) => rest
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    }
}

/// The text of a chat line `[ROOM] NICK: TEXT` in `room`.
pub fn chat_text(line: &str, room: &str) -> Option<String> {
    let rest = line.strip_prefix(&format!("[{room}] "))?;
    rest.split_once(": ").map(|(_, text)| text.to_string())
}
