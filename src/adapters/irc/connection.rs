//! One IRC client: framing, registration, the main loop, pings, fakelag and writes.
//!
//! The loop is the TCP adapter's (`adapters/tcp.rs`) with IRC's additions. Each turn it writes
//! what is pending with a cancel-safe `write` (a kick or shutdown interrupts a write to a client
//! that stopped reading), then waits for the first of: shutdown, a kick, an event from the
//! session's outbound queue (the slow-reader rule of `core::session` applies unchanged), the
//! ping timer, or a line from the client. Queued events go before the next line is read, so
//! what the rooms said before a command is written before its answer.
//!
//! **Pings.** Any line from the client resets the timer. A client silent for `ping` gets a
//! `PING`; silent as long again, it is told `ERROR :Closing link: ... (Ping timeout)` and cut
//! off: IRC's idle timeout, which also ends connections that never finish registering.
//!
//! Calls to the stack (and IRC's "fakelag" when the rate limit refuses one) are in `fakelag.rs`;
//! what the session's queue holds becomes lines in `events.rs`.

use bytes::Bytes;
use futures_util::StreamExt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::caps::{Cap, Caps};
use super::message::{Line, MAX_LINE, Message};
use super::render::Presences;
use super::response::{self, Batches};
use super::{FAREWELL_GRACE, IrcOptions};
use crate::adapters::lines::{ChatLines, Input};
use crate::adapters::outgoing::MAX_BATCH_BYTES;
use crate::adapters::pace::Pace;
use crate::core::{
    Action, ChatService, Closer, Command, Event, Inbox, Request, RoomName, SessionId, Stats,
    UserCommand,
};

/// Initial capacity of the read buffer; it grows for a longer line, up to the line limit.
const READ_BUFFER: usize = 512;

/// Why a client's loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The client closed the connection, or the socket failed.
    Closed,
    /// `QUIT`, with the client's reason.
    Quit(String),
    /// The server kicked the session (a slow reader); `mid_line` when a line was cut in half.
    Kicked {
        /// A line was cut in half by the kick.
        mid_line: bool,
    },
    /// The server is shutting down.
    Shutdown {
        /// As for `Kicked`.
        mid_line: bool,
    },
    /// No answer to a `PING`.
    PingTimeout,
}

/// A client connection before its task starts.
pub struct Connection {
    stack: ChatService,
    options: Arc<IrcOptions>,
    stats: Arc<Stats>,
    shutdown: CancellationToken,
}

impl Connection {
    /// A connection served with `stack`.
    pub fn new(
        stack: ChatService,
        options: Arc<IrcOptions>,
        stats: Arc<Stats>,
        shutdown: CancellationToken,
    ) -> Connection {
        Connection {
            stack,
            options,
            stats,
            shutdown,
        }
    }

    /// Serves the client on `stream` until it leaves, is cut off, or the server stops;
    /// `admitted` (what counts the connection in) is dropped last.
    ///
    /// As the line protocol's (`tcp::Connection::run`), a plain function returning an `async
    /// move` block, so that the task holds one copy of the connection, and the rarely awaited
    /// futures (a command's handling, the farewell) are boxed: a future awaited inline is part
    /// of the connection's state for its whole life.
    #[allow(clippy::manual_async_fn)] // on purpose: see above
    pub(super) fn run(
        self,
        stream: TcpStream,
        peer: SocketAddr,
        admitted: crate::adapters::Admitted,
    ) -> impl Future<Output = ()> + Send {
        async move {
            let (read, write) = stream.into_split();
            // Closed by a kick, or (without a reason) by the server shutting down.
            let closer = Closer::child_of(&self.shutdown);
            let mut client = Client {
                lines: FramedRead::with_capacity(read, ChatLines::new(MAX_LINE), READ_BUFFER),
                write,
                queue: None,
                closed: Box::pin(closer.closed_owned()),
                closer,
                silence: Box::pin(tokio::time::sleep(self.options.ping)),
                pace: Pace::default(),
                pinged: false,
                stack: self.stack,
                options: self.options,
                stats: self.stats,
                peer,
                session: None,
                nick: "*".to_string(),
                user: None,
                caps: Caps::default(),
                negotiating: false,
                rooms: Vec::new(),
                presences: Presences::default(),
                batches: Batches::default(),
                echo_label: None,
                label_deferred: false,
            };
            let end = client.serve().await;
            Box::pin(client.farewell(&end)).await;
            // The socket stays open until the core has let the session go: a client that reads
            // to the end after `QUIT` may ask another connection at once who is online or who
            // was (`MONITOR`, `WHOWAS`), and must find the session gone and remembered.
            if let (Some(id), End::Quit(reason)) = (client.session, &end)
                && !reason.is_empty()
            {
                // The rooms are told why (as `/quit REASON` does on the line protocol).
                let quit = Command::User(UserCommand::QuitWith(reason.clone()));
                let _ = Box::pin(client.call_raw(Request::from(id, Action::Command(quit)))).await;
            }
            if let Some(id) = client.session {
                // The rooms see the quit, and the nick is free again.
                let _ = Box::pin(client.call_raw(Request::from(id, Action::Disconnect))).await;
            }
            let _ = client.write.shutdown().await;
            drop(admitted);
        }
    }
}

/// One client's state; the commands are in `commands.rs`.
pub struct Client {
    lines: FramedRead<OwnedReadHalf, ChatLines>,
    write: OwnedWriteHalf,
    /// The session's outbound queue, once registered.
    pub(super) queue: Option<Inbox>,
    /// Resolves when the core kicks the session (a slow reader) or the server shuts down:
    /// the closer is a child of the shutdown token (see `Closer::child_of`), so that one future,
    /// not two, is polled on every turn.
    pub(super) closed: Pin<Box<WaitForCancellationFutureOwned>>,
    pub(super) closer: Closer,
    /// Fires when the client has been silent for `ping`: it is pinged, or, once pinged, cut
    /// off. One timer, moved on by each line, rather than a new one per turn of the loop.
    silence: Pin<Box<tokio::time::Sleep>>,
    /// Whether its events wait for it, and so whether it pauses after a write (see
    /// `adapters::pace`).
    pub(super) pace: Pace,
    pinged: bool,
    pub(super) stack: ChatService,
    pub(super) options: Arc<IrcOptions>,
    pub(super) stats: Arc<Stats>,
    pub(super) peer: SocketAddr,
    /// The core's session, once registered.
    pub(super) session: Option<SessionId>,
    /// The nick (`*` until one is chosen).
    pub(super) nick: String,
    /// `USER`'s username and realname.
    pub(super) user: Option<(String, String)>,
    pub(super) caps: Caps,
    /// Between `CAP LS`/`REQ` and `CAP END`: registration waits.
    pub(super) negotiating: bool,
    /// The rooms the session is in, in join order, as the replies said (for `JOIN 0`, `WHOIS`).
    pub(super) rooms: Vec<RoomName>,
    pub(super) presences: Presences,
    pub(super) batches: Batches,
    /// A labeled `PRIVMSG` whose echo is still to come: its room, seq and label.
    pub(super) echo_label: Option<(RoomName, u64, String)>,
    /// The command being handled answers with that echo rather than now.
    pub(super) label_deferred: bool,
}

impl Client {
    /// The server's name, the source of its own lines.
    pub(super) fn server(&self) -> &str {
        &self.options.server_name
    }

    /// A numeric reply to this client: `:server CODE nick`.
    pub(super) fn numeric(&self, code: &str) -> Line {
        Line::new(self.server(), code).param(&self.nick)
    }

    async fn serve(&mut self) -> End {
        let mut out = Bytes::new();
        // While its events wait for it, the client pauses after a write so that the next ones
        // go out together (see `adapters::pace`).
        let mut took = false;
        // Made at the first pause: most clients never pace.
        let mut pause = crate::adapters::Timer::default();
        let mut pausing = false;
        loop {
            if let Err(end) = self.flush(&out).await {
                return end;
            }
            if std::mem::take(&mut took)
                && let Some(until) = self.pace.after_write()
            {
                pause.set(until);
                pausing = true;
            }
            out = tokio::select! {
                biased;
                _ = &mut self.closed => return self.closed_end(false),
                () = pause.fired(), if pausing => {
                    pausing = false;
                    Bytes::new()
                }
                Some((events, charged)) = next_events(&mut self.queue), if !pausing => {
                    took = true;
                    self.events(events, charged)
                }
                _ = &mut self.silence => {
                    if self.pinged {
                        return End::PingTimeout;
                    }
                    self.pinged = true;
                    let next = Instant::now() + self.options.ping;
                    self.silence.as_mut().reset(next);
                    let server = self.server();
                    Line::new(server, "PING").trailing(server).bytes()
                }
                input = self.lines.next() => {
                    self.pinged = false;
                    let next = Instant::now() + self.options.ping;
                    self.silence.as_mut().reset(next);
                    match input {
                        None | Some(Err(_)) => return End::Closed,
                        Some(Ok(Input::Line(line))) => match Box::pin(self.line(&line)).await {
                            Ok(out) => out,
                            Err(end) => return end,
                        },
                        Some(Ok(Input::TooLong)) => self.numeric("417").trailing("Input line was too long").bytes(),
                        Some(Ok(Input::NotUtf8)) => Line::new(self.server(), "FAIL")
                            .param("*")
                            .param("INVALID_UTF8")
                            .trailing("Message rejected: lines must be UTF-8 text")
                            .bytes(),
                    }
                }
            };
        }
    }

    /// Handles one line: the bytes to write in answer.
    async fn line(&mut self, raw: &str) -> Result<Bytes, End> {
        let msg = match Message::parse(raw) {
            Ok(msg) => msg,
            Err(_) => {
                return Ok(self
                    .numeric("417")
                    .trailing("Input line was too long")
                    .bytes());
            }
        };
        if msg.command.is_empty() {
            return Ok(Bytes::new());
        }
        let label = msg.tag("label").filter(|_| self.caps.has(Cap::LABELED));
        let command = msg.command.to_ascii_uppercase();
        self.label_deferred = false;
        let lines = match self.session {
            None => self.unregistered(&command, &msg).await?,
            Some(_) => self.registered(&command, &msg, label.as_deref()).await?,
        };
        if self.label_deferred {
            // The echo, still to come from the room, is the answer and carries the label.
            return Ok(response::concat(&lines));
        }
        let caps = self.caps;
        let server = self.options.server_name.clone();
        // Fairness: a client pasting thousands of lines must not starve its room's readers.
        tokio::task::yield_now().await;
        Ok(response::finish(
            &server,
            caps,
            &mut self.batches,
            label.as_deref(),
            lines,
        ))
    }

    /// Registration succeeded: the session and its queue.
    pub(super) fn registered_as(&mut self, session: SessionId, queue: Inbox) {
        self.session = Some(session);
        self.queue = Some(queue);
    }

    /// Writes `out`, stopping early for a kick or shutdown. `write`, not `write_all`: it is
    /// cancel-safe, so an interrupted write tells how much of the line went out.
    pub(super) async fn flush(&mut self, out: &[u8]) -> Result<(), End> {
        let mut sent = 0;
        while sent < out.len() {
            let mid_line = out[..sent].last().is_some_and(|b| *b != b'\n');
            // The write first: the closer is looked at only when the socket cannot take more,
            // which is when a kick or shutdown must not wait (it costs a lock per look).
            let written = tokio::select! {
                biased;
                result = self.write.write(&out[sent..]) => result,
                _ = &mut self.closed => return Err(self.closed_end(mid_line)),
            };
            match written {
                Ok(0) | Err(_) => return Err(End::Closed),
                Ok(n) => sent += n,
            }
        }
        Ok(())
    }

    /// Why the closer closed: a kick says why; a shutdown does not.
    pub(super) fn closed_end(&self, mid_line: bool) -> End {
        match self.closer.reason() {
            Some(_) => End::Kicked { mid_line },
            None => End::Shutdown { mid_line },
        }
    }

    /// The last words before the connection closes, by why it ends (the socket is closed by
    /// `run`, once the session is let go).
    async fn farewell(&mut self, end: &End) {
        let server = self.options.server_name.clone();
        let nick = self.nick.clone();
        let cut = |mid: bool| if mid { "\r\n" } else { "" };
        let line = match end {
            End::Closed => return,
            End::Quit(reason) => format!("ERROR :Closing link: {nick} (Quit: {reason})\r\n"),
            End::Kicked { mid_line } => format!(
                "{}ERROR :Closing link: {nick} ({})\r\n",
                cut(*mid_line),
                self.closer.reason().unwrap_or("disconnected by the server")
            ),
            End::Shutdown { mid_line } => format!(
                "{}:{server} NOTICE {nick} :server shutting down, goodbye\r\nERROR :Closing link: {nick} (server shutting down)\r\n",
                cut(*mid_line)
            ),
            End::PingTimeout => format!("ERROR :Closing link: {nick} (Ping timeout)\r\n"),
        };
        let _ = tokio::time::timeout(FAREWELL_GRACE, self.write.write_all(line.as_bytes())).await;
    }
}

/// The events queued in `queue` (at least one), and what they were charged (see
/// `Inbox::recv_batch`); never, while there is no queue yet.
pub(super) async fn next_events(queue: &mut Option<Inbox>) -> Option<(Vec<Event>, usize)> {
    match queue {
        Some(queue) => queue.recv_batch(MAX_BATCH_BYTES).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::tcp::tests::{MAX_CONNECTION_FUTURE, accepted, slow_to_let_go};
    use crate::core::{Protocol, end_of_pipeline};

    fn options() -> Arc<IrcOptions> {
        Arc::new(IrcOptions {
            server_name: Arc::from("t"),
            ping: std::time::Duration::from_secs(120),
            queue: crate::core::outbound::QueueLimits::events(16),
            max_rooms_per_session: 10,
            join_replay: 10,
        })
    }

    /// As the line protocol's (`tcp::tests::a_connections_future_stays_small`): an IRC
    /// command's handling is about 2 KB of state, boxed in `Client::serve`.
    #[tokio::test]
    async fn a_connections_future_stays_small() {
        let (stream, peer, admitted, _client) = accepted(Protocol::Irc).await;
        let connection = Connection::new(
            ChatService::new(tower::service_fn(end_of_pipeline)),
            options(),
            Arc::new(Stats::default()),
            CancellationToken::new(),
        );
        let future = connection.run(stream, peer, admitted);
        let size = std::mem::size_of_val(&future);
        assert!(size <= MAX_CONNECTION_FUTURE, "{size} bytes");
    }

    /// A client that quits and reads to the end of its connection finds the core already told:
    /// the session is let go before the socket closes, or `WHOWAS` and `MONITOR` asked at once
    /// from another connection miss the quit. The stack here takes its time to let go, so
    /// that a socket closed first shows as an end read before the core is told.
    #[tokio::test]
    async fn the_socket_closes_after_the_core_lets_the_session_go() {
        use std::sync::atomic::Ordering;
        use tokio::io::AsyncReadExt;

        let (stream, peer, admitted, mut client) = accepted(Protocol::Irc).await;
        let (stack, let_go) = slow_to_let_go();
        let connection = Connection::new(
            stack,
            options(),
            Arc::new(Stats::default()),
            CancellationToken::new(),
        );
        tokio::spawn(connection.run(stream, peer, admitted));
        client
            .write_all(b"NICK ann\r\nUSER ann 0 * :Ann\r\nQUIT :bye\r\n")
            .await
            .unwrap();
        let mut seen = Vec::new();
        client.read_to_end(&mut seen).await.unwrap();
        let seen = String::from_utf8_lossy(&seen);
        assert!(
            seen.contains("ERROR :Closing link: ann (Quit: bye)"),
            "{seen}"
        );
        assert!(
            let_go.load(Ordering::SeqCst),
            "the connection closed before the core let the session go"
        );
    }
}
