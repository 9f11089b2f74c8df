//! The simulated users of the TCP side: a client (chatd's line protocol or plain IRC) that joins
//! one room, reads everything and, if it is a sender, writes timestamped messages at its rate.
//! (The SSE client is in `sse.rs`.)
//!
//! Each client is one tokio task that reads and writes its own socket, so a receiver costs
//! loadgen one task and one buffer. A sender paces itself with a coarse `Interval` (at least
//! 1 ms, tokio's timer resolution) and on each tick writes every message that is due by then in
//! one `write_all`: the rate stays exact at any tick length and a tick never sends a burst
//! larger than one tick's worth.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::stats::{Batch, Stats};
use crate::wire;

/// How long a connect (or the HTTP handshake) may take before it counts as failed.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which protocol the TCP clients speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// chatd's line protocol: `/join ROOM`, then plain lines.
    Chatd,
    /// Plain IRC: NICK/USER, JOIN #ROOM, PRIVMSG #ROOM :text.
    Irc,
}

/// What every client task shares with the run: the counters, and the two signals.
pub struct Shared {
    pub stats: Stats,
    /// Cancelled when every client has joined (or the ramp timed out): senders start.
    pub go: CancellationToken,
    /// Cancelled when the run ends: every client stops and flushes its latencies.
    pub stop: CancellationToken,
    /// Clients that joined or failed; `settled_notify` wakes the ramp's waiter on each.
    pub settled: AtomicU64,
    pub settled_notify: Notify,
}

impl Shared {
    fn settle(&self) {
        self.settled.fetch_add(1, Relaxed);
        self.settled_notify.notify_one();
    }

    pub(crate) fn joined(&self, room: usize) {
        self.stats.ready.fetch_add(1, Relaxed);
        self.stats.ready_per_room[room].fetch_add(1, Relaxed);
        self.settle();
    }

    pub(crate) fn connect_failed(&self, why: &str) {
        self.stats.connect_failures.fetch_add(1, Relaxed);
        self.stats.sample(why);
        self.settle();
    }
}

/// One simulated user.
pub struct Client {
    pub index: usize,
    pub room: usize,
    /// `host:port` of the instance it connects to.
    pub addr: String,
    /// What it sends, if it is a sender; for `duration` after `go`.
    pub send: Option<SendPlan>,
    pub duration: Duration,
}

/// A TCP client of either protocol; returns when `stop` is cancelled or the connection ends.
pub async fn tcp_client(client: Client, protocol: Protocol, shared: Arc<Shared>) {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&client.addr)).await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return shared.connect_failed(&format!("connect {}: {e}", client.addr)),
        Err(_) => return shared.connect_failed(&format!("connect {}: timed out", client.addr)),
    };
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let stats = &shared.stats;
    let nick = format!("lg{}", client.index);
    let hello = match protocol {
        Protocol::Chatd => format!("/join lg{}\n", client.room),
        Protocol::Irc => format!("NICK {nick}\r\nUSER {nick} 0 * :loadgen\r\n"),
    };
    if let Err(e) = writer.write_all(hello.as_bytes()).await {
        return shared.connect_failed(&format!("write to {}: {e}", client.addr));
    }

    let mut joined = false;
    // The server said why it closes (`! disconnected: ...`, IRC `ERROR`).
    let mut told_closed = false;
    let mut batch = Batch::new(client.index);
    let mut input: Vec<u8> = Vec::with_capacity(4096);
    let mut output = String::new();
    // A sender's schedule, from `go` until its last message.
    let mut sending = false;
    let mut pacer: Option<Pacer> = None;
    let mut sent: u64 = 0;

    loop {
        tokio::select! {
            biased;
            _ = shared.stop.cancelled() => break,
            _ = shared.go.cancelled(), if client.send.is_some() && !sending => {
                sending = true;
                pacer = client.send.map(|plan| Pacer::new(plan, client.duration));
            }
            _ = tick(&mut pacer) => {
                let Some(schedule) = pacer.as_mut() else { continue };
                let due = schedule.due();
                output.clear();
                while sent < due {
                    if protocol == Protocol::Irc {
                        output.push_str("PRIVMSG #lg");
                        output.push_str(&client.room.to_string());
                        output.push_str(" :");
                    }
                    wire::encode_payload(&mut output, stats.run, client.index, stats.now_micros());
                    output.push_str(if protocol == Protocol::Irc { "\r\n" } else { "\n" });
                    sent += 1;
                }
                if sent >= schedule.total {
                    pacer = None;
                }
                if !output.is_empty()
                    && let Err(e) = writer.write_all(output.as_bytes()).await
                {
                    stats.disconnects.fetch_add(1, Relaxed);
                    stats.sample(&format!("write: {e}"));
                    break;
                }
            }
            read = reader.read_buf(&mut input) => {
                match read {
                    Ok(0) | Err(_) => {
                        if !shared.stop.is_cancelled() && !told_closed {
                            stats.disconnects.fetch_add(1, Relaxed);
                            stats.sample(&format!("{nick}: connection closed by the server"));
                        }
                        if !joined {
                            shared.settle();
                        }
                        break;
                    }
                    Ok(_) => {}
                }
                let now = stats.now_micros();
                let mut replies = String::new();
                let mut consumed = 0;
                while let Some(end) = input[consumed..].iter().position(|&b| b == b'\n') {
                    let raw = &input[consumed..consumed + end];
                    consumed += end + 1;
                    let Ok(line) = std::str::from_utf8(raw) else { continue };
                    let line = line.strip_suffix('\r').unwrap_or(line);
                    let event = match protocol {
                        Protocol::Chatd => chatd_line(line),
                        Protocol::Irc => irc_line(line, &nick, client.room, &mut replies),
                    };
                    match event {
                        Event::Message(text) => {
                            if let Some(stamp) = wire::decode_payload(text, stats.run) {
                                batch.record(stats, now.saturating_sub(stamp.micros));
                            }
                        }
                        Event::Joined if !joined => {
                            joined = true;
                            shared.joined(client.room);
                        }
                        Event::Error => stats.error(line),
                        Event::Closed => {
                            // Counted here; the close that follows is not counted again.
                            if !told_closed {
                                stats.disconnects.fetch_add(1, Relaxed);
                                stats.sample(line);
                            }
                            told_closed = true;
                        }
                        Event::Joined | Event::Other => {}
                    }
                }
                input.drain(..consumed);
                if !replies.is_empty() && writer.write_all(replies.as_bytes()).await.is_err() {
                    break;
                }
            }
        }
    }
    stats.sent.fetch_add(sent, Relaxed);
    stats.sent_per_room[client.room].fetch_add(sent, Relaxed);
    batch.flush(stats);
}

/// A sender's part of the run.
#[derive(Clone, Copy)]
pub struct SendPlan {
    /// Messages per second from this client.
    pub rate: f64,
    /// Delay of its first message after `go`: senders are spread evenly over one period, as
    /// independent users would be, instead of all writing at the same instant.
    pub phase: Duration,
}

/// A sender's schedule: `total` messages, the k-th (from 0) due at `first + k / rate`.
struct Pacer {
    first: Instant,
    rate: f64,
    total: u64,
    ticker: Interval,
}

impl Pacer {
    fn new(plan: SendPlan, duration: Duration) -> Self {
        let first = Instant::now() + plan.phase;
        // Ticks of 1 ms (tokio's timer resolution) to 50 ms; a tick sends whatever is due.
        let period = Duration::from_secs_f64(1.0 / plan.rate)
            .clamp(Duration::from_millis(1), Duration::from_millis(50));
        let mut ticker = tokio::time::interval_at(first.into(), period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        Pacer {
            first,
            rate: plan.rate,
            total: (duration.as_secs_f64() * plan.rate).round() as u64,
            ticker,
        }
    }

    /// How many messages should have been sent by now.
    fn due(&self) -> u64 {
        let Some(elapsed) = Instant::now().checked_duration_since(self.first) else {
            return 0;
        };
        ((elapsed.as_secs_f64() * self.rate) as u64 + 1).min(self.total)
    }
}

/// Waits for a sender's next tick; forever for a receiver or a sender that is done.
async fn tick(pacer: &mut Option<Pacer>) {
    match pacer {
        Some(pacer) => {
            pacer.ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// What a received line means to the run.
enum Event<'a> {
    /// A chat message with this text (maybe another run's, or not loadgen's at all).
    Message(&'a str),
    /// Our join is complete.
    Joined,
    /// The server refused something.
    Error,
    /// The server is closing the connection on us.
    Closed,
    Other,
}

fn chatd_line(line: &str) -> Event<'_> {
    if let Some((_room, _nick, text)) = wire::chatd_message(line) {
        Event::Message(text)
    } else if line.starts_with("* you joined ") {
        Event::Joined
    } else if line.starts_with("! disconnected") {
        Event::Closed
    } else if line.starts_with("! ") {
        Event::Error
    } else {
        Event::Other
    }
}

/// Reads one IRC line; answers PING and the welcome (with the JOIN) into `replies`.
fn irc_line<'a>(line: &'a str, nick: &str, room: usize, replies: &mut String) -> Event<'a> {
    if let Some(text) = wire::irc_privmsg_text(line) {
        return Event::Message(text);
    }
    let Some(parsed) = wire::IrcLine::parse(line) else {
        return Event::Other;
    };
    match parsed.command {
        "PING" => {
            replies.push_str("PONG :");
            replies.push_str(parsed.params.last().copied().unwrap_or(""));
            replies.push_str("\r\n");
            Event::Other
        }
        // RPL_WELCOME: registered; now join.
        "001" => {
            replies.push_str(&format!("JOIN #lg{room}\r\n"));
            Event::Other
        }
        // Our own JOIN echoed back, or RPL_ENDOFNAMES.
        "JOIN" if parsed.nick() == Some(nick) => Event::Joined,
        "366" => Event::Joined,
        "ERROR" => Event::Closed,
        numeric if numeric.starts_with(['4', '5']) && numeric.len() == 3 => Event::Error,
        _ => Event::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pacer_releases_messages_at_its_rate_up_to_its_total() {
        let plan = SendPlan {
            rate: 100.0,
            phase: Duration::ZERO,
        };
        let mut pacer = Pacer::new(plan, Duration::from_secs(5));
        assert_eq!(pacer.total, 500);
        assert_eq!(pacer.due(), 1, "the first message is due at once");
        pacer.first -= Duration::from_secs(1);
        let due = pacer.due();
        assert!((101..=102).contains(&due), "one second in: {due}");
        pacer.first -= Duration::from_secs(10);
        assert_eq!(pacer.due(), 500, "never more than the total");

        let later = SendPlan {
            rate: 100.0,
            phase: Duration::from_secs(60),
        };
        assert_eq!(
            Pacer::new(later, Duration::from_secs(5)).due(),
            0,
            "not before its phase"
        );
    }
}
