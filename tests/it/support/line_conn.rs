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

    /// Reads up to the `/rooms` reply; returns the first `! ` line before it, if any. A session
    /// answers its lines in order, so a first `! ` line answers what was said, and a second one
    /// answers the `/rooms`.
    async fn until_rooms_reply(&mut self) -> Option<Option<String>> {
        let mut refusal = None;
        loop {
            let line = self.line().await?;
            if line.starts_with("* rooms:") || line.starts_with("* no rooms") {
                return Some(refusal);
            }
            if !line.starts_with("! ") {
                continue; // chat and notices of the room, which may never stop
            }
            // The server gave up waiting for its own answer (`ErrorKind::TimedOut`): not a
            // refusal. For what was said, its outcome is open; for the `/rooms`, no other reply
            // follows, and what was said has its answer already.
            let given_up = line.starts_with("! the server took too long to answer");
            match refusal {
                None if given_up => return None,
                None => refusal = Some(line),
                Some(_) if given_up => return Some(refusal),
                Some(_) => {}
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

#[cfg(test)]
mod tests {
    // Imports inside the test: the benches that include this file drop `#[tokio::test]`
    // functions, and module-level imports only the test uses would be unused there.

    /// What a `timeout` layer does to a `say` while the store is away: the message is refused,
    /// then the `/rooms` after it is given up on, so no `* rooms:` line ever comes; meanwhile
    /// the room's notices go on (resumers joining and leaving). Waiting for `* rooms:` hung the
    /// checker's TCP sender, and with it the run (`--timeout 50`, phase 2, seed 22).
    #[tokio::test]
    async fn a_refusal_then_a_rooms_given_up_on_ends_the_say_while_notices_keep_coming() {
        use super::{BufReader, Duration, LineConn, Outcome, TcpStream};
        use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let refused = "! message not sent: cannot reach the database to number it; try again";
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut said = [0u8; 64];
            let _ = stream.read(&mut said).await; // "hi\n/rooms\n"
            let answers = format!(
                "{refused}\n! the server took too long to answer: what you sent may still \
                 arrive (look before sending it again)\n"
            );
            stream.write_all(answers.as_bytes()).await.unwrap();
            while stream.write_all(b"* resumer0 joined room1\n").await.is_ok() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let (read, write) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut conn = LineConn {
            lines: BufReader::new(read).lines(),
            write,
        };
        let outcome = tokio::time::timeout(Duration::from_secs(5), conn.say("hi"))
            .await
            .expect("the say ends");
        assert_eq!(outcome, Outcome::Refused(refused.to_string()));
        server.abort();
    }
}
