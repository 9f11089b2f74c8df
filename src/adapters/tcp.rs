//! The TCP adapter: the line protocol that netcat speaks.
//!
//! One task per connection. It frames input with [`ChatLines`] (tokio-util's `LinesCodec`),
//! turns each line into an `Action::Line` request for the shared stack, and writes back the
//! reply's lines and whatever the core pushes into the session's outbound queue. It knows nothing
//! about rooms or commands: every word it prints comes from the core's [`Event::line`].
//!
//! Four things end a connection besides the client leaving: `/quit` (the reply says close),
//! the server kicking a slow reader (the [`Closer`]; its reason is the last line), server
//! shutdown (a notice, then close), and the join timeout: a connection that has neither chosen
//! a nick nor joined a room `[server] join_timeout_secs` after connecting is closed with a
//! notice, so that silent sockets cannot hold connection slots for ever (a person who has
//! joined may stay quiet as long as they like). Writes race against the kick and the shutdown,
//! so a client that stops reading cannot keep its task stuck in a write forever. A peer that
//! vanished without a word (a laptop closed, a network gone) is found by TCP keepalive, which
//! the accept loop turns on for every connection (`adapters::accept`).
//!
//! Outbound events are written in batches: when the connection wakes, it takes every event
//! already queued (one lock, see `Inbox::recv_batch`) and writes them with one call (a lone
//! message is its shared rendered line; several are copied into one buffer, see
//! [`super::outgoing`]), so a busy room costs one syscall per batch rather than per message.
//! Nothing is kept between writes: an idle connection holds no write buffer, an empty outbound
//! queue (see `core::outbound`), a small read buffer (`READ_BUFFER`), and a timer only while it
//! has one to wait for.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::{BoxError, Service, ServiceExt};

use super::limits::ConnectionLimits;
use super::lines::{ChatLines, Input};
use super::outgoing::{MAX_BATCH_BYTES, Outgoing};
use super::pace::Pace;
use crate::core::ChatService;
use crate::core::outbound::QueueLimits;
use crate::core::{
    Action, ChatError, Closer, Connect, Event, Inbox, Outcome, Protocol, Reply, Request, SessionId,
    Stats, ask, outbound,
};

/// How long a kicked or departing client gets to take its last line before the socket closes.
const FAREWELL_GRACE: Duration = Duration::from_secs(5);
/// Initial capacity of a connection's read buffer. tokio-util's default is 8 KiB, allocated up
/// front for every connection: once more than everything else an idle connection costs. Most
/// connections send a nick and a join and then only read; a sender's buffer grows (doubling) to
/// the size of its lines on the first long one and keeps it, up to the line limit.
const READ_BUFFER: usize = 64;

/// The TCP adapter's settings, from the `[server]` table.
#[derive(Debug, Clone)]
pub struct TcpOptions {
    /// Longest accepted line, in bytes.
    pub max_line_bytes: usize,
    /// The bounds of each session's outbound queue.
    pub queue: QueueLimits,
    /// A connection that has neither chosen a nick nor joined a room this long after it
    /// connected is closed (see the module docs).
    pub join_timeout: Duration,
}

/// Accepts connections until `shutdown`, each served by its own task on `tracker`. Connections
/// and deliveries are counted in `stats`. A connection over the `limits` gets one `! ` line
/// saying which, and is closed.
pub async fn serve(
    listener: TcpListener,
    stack: ChatService,
    options: TcpOptions,
    stats: Arc<Stats>,
    limits: Arc<ConnectionLimits>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let refusals = Arc::new(Semaphore::new(super::REFUSALS_IN_FLIGHT));
    // One copy for every connection: each holds a pointer (8 bytes of its state, not 48).
    let options = Arc::new(options);
    while let Some(accepted) = super::accept(&listener, &limits, &refusals, &shutdown).await {
        let (stream, peer) = (accepted.stream, accepted.peer);
        let permit = match accepted.admission {
            Ok(permit) => permit,
            Err(refusal) => {
                tracker.spawn(refuse(stream, refusal));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            stack: stack.clone(),
            options: options.clone(),
            shutdown: shutdown.clone(),
            stats: stats.clone(),
            _admitted: super::Admitted::new(stats.clone(), Protocol::Tcp, permit),
        };
        // The connection's own future, with nothing around it: the task holds one copy of
        // its state (see `Connection::run`).
        tracker.spawn(connection.run(stream, peer));
    }
}

/// Says why a connection is refused (a `! ` line), then closes it.
async fn refuse(stream: TcpStream, refusal: super::Refusal) {
    super::refuse_with(stream, format!("! {}\n", refusal.refused)).await;
}

/// Why a connection's loop ended.
#[derive(Clone, Copy)]
enum End {
    /// The client closed, `/quit`, or the socket failed.
    Done,
    /// The server kicked the session; the reason is the farewell.
    Kicked {
        /// A line was cut in half by the kick: end it before the farewell.
        mid_line: bool,
    },
    /// The server is shutting down.
    Shutdown {
        /// As for `Kicked`.
        mid_line: bool,
    },
    /// No `/nick` and no `/join` within the join timeout.
    Idle,
}

struct Connection {
    stack: ChatService,
    options: Arc<TcpOptions>,
    shutdown: CancellationToken,
    stats: Arc<Stats>,
    /// Counted in `stats`, with its slot under the connection limits, until `run`'s last step.
    _admitted: super::Admitted,
}

impl Connection {
    /// Serves the connection to its end.
    ///
    /// A task's memory is its future's size, for as long as the connection lasts: with 10,000
    /// connections every byte of it counts ten thousand times (docs/BENCHMARKS.md, "The race,
    /// fifth round"). So this is a plain function returning an `async move` block rather than
    /// an `async fn`: an `async fn` keeps its arguments where they came in and copies them
    /// again into its body, two copies of the connection for its whole life; the block uses
    /// what it captured in place.
    #[allow(clippy::manual_async_fn)] // on purpose: see above
    fn run(mut self, stream: TcpStream, peer: SocketAddr) -> impl Future<Output = ()> + Send {
        // Split here, not in the block: what the block captures stays in its state for the
        // connection's whole life, and the halves are smaller than the stream they replace.
        let (read, mut write) = stream.into_split();
        async move {
            let mut lines = FramedRead::with_capacity(
                read,
                ChatLines::new(self.options.max_line_bytes),
                READ_BUFFER,
            );
            let (outbound, mut queue) = outbound::bounded(&self.options.queue);
            // Closed by a kick, or (without a reason) by the server shutting down.
            let closer = Closer::child_of(&self.shutdown);
            let connect = Connect {
                protocol: Protocol::Tcp,
                nick: None,
                peer: Some(peer),
                outbound,
                closer: closer.clone(),
            };
            // In a block of its own: a buffer that was borrowed keeps its place in the state
            // until its scope ends, and this one's would otherwise last as long as the loop.
            let (session, greeting) = {
                let mut buf = BytesMut::new();
                let session = match ask(&mut self.stack, None, connect).await {
                    Ok(answered) => {
                        render_events(&answered.events, &mut buf);
                        Some(answered.answer.session)
                    }
                    Err(err) => {
                        render_error(&err, &mut buf);
                        None
                    }
                };
                (session, buf.freeze())
            };
            let end = match session {
                Some(id) => {
                    self.serve(id, &mut lines, &mut write, &mut queue, &closer, greeting)
                        .await
                }
                None => {
                    // Refused (a full server, a connect over its address's rate): as in `refuse`,
                    // what the client already sent is read away, so closing does not reset the
                    // refusal's line away before the client reads it.
                    let _ = tokio::time::timeout(FAREWELL_GRACE, write.write_all(&greeting)).await;
                    let _ = write.shutdown().await;
                    let _ = tokio::time::timeout(super::REFUSAL_DRAIN, async {
                        while let Some(Ok(_)) = lines.next().await {}
                    })
                    .await;
                    End::Done
                }
            };
            let farewell = match end {
                End::Done => None,
                End::Kicked { mid_line } => Some(format!(
                    "{}! {}\n",
                    if mid_line { "\n" } else { "" },
                    closer.reason().unwrap_or("disconnected by the server")
                )),
                End::Shutdown { mid_line } => Some(format!(
                    "{}* server shutting down, goodbye\n",
                    if mid_line { "\n" } else { "" }
                )),
                End::Idle => {
                    tracing::debug!(%peer, "closing a connection that chose no nick and joined no room");
                    let secs = self.options.join_timeout.as_secs();
                    let unit = if secs == 1 { "second" } else { "seconds" };
                    Some(format!(
                        "* closing the connection: no /nick or /join within {secs} {unit} of connecting\n"
                    ))
                }
            };
            if let Some(line) = farewell {
                let _ =
                    tokio::time::timeout(FAREWELL_GRACE, write.write_all(line.as_bytes())).await;
            }
            if let Some(id) = session {
                let _ = self.call(Request::from(id, Action::Disconnect)).await;
            }
        }
    }

    /// The connection's main loop: client lines in, replies and events out.
    async fn serve(
        &mut self,
        session: SessionId,
        lines: &mut FramedRead<tokio::net::tcp::OwnedReadHalf, ChatLines>,
        write: &mut OwnedWriteHalf,
        queue: &mut Inbox,
        closer: &Closer,
        greeting: Bytes,
    ) -> End {
        // Made once and polled again on every turn: a fresh cancellation future per turn would
        // register a waiter once per delivery. The closer is a child of the shutdown token (see
        // `Closer::child_of`): one future, and a lock of this connection's own, for both.
        let closed = closer.closed();
        let ended = |mid_line| match closer.reason() {
            Some(_) => End::Kicked { mid_line },
            None => End::Shutdown { mid_line },
        };
        // The join timeout, dropped by the first `/nick` or `/join` that succeeds. The timers
        // are boxed, and made only while they are needed: a timer is a hundred-odd bytes, and
        // most connections settle within seconds and never pace.
        let mut unsettled = super::Timer::after(self.options.join_timeout);
        let mut out = Outgoing::default();
        out.push(greeting);
        // While its events wait for it, the connection pauses after a write so that the next
        // ones go out together (see `adapters::pace`).
        let mut pace = Pace::default();
        let mut took = false;
        let mut pause = super::Timer::default();
        let mut pausing = false;
        tokio::pin!(closed);
        loop {
            // `write_to` is cancel-safe, so when a kick or shutdown interrupts a stuck write we
            // know whether a line was cut in half. The write comes first: the closer is looked at
            // only when the socket cannot take more, which is when a kick or shutdown must not
            // wait (each look costs a lock; the next turn looks anyway).
            while !out.is_empty() {
                let written = tokio::select! {
                    biased;
                    result = out.write_to(write) => result,
                    _ = &mut closed => return ended(out.mid_line()),
                };
                if let Ok(0) | Err(_) = written {
                    return End::Done;
                }
            }
            if std::mem::take(&mut took)
                && let Some(until) = pace.after_write()
            {
                pause.set(until);
                pausing = true;
            }
            tokio::select! {
                biased;
                _ = &mut closed => return ended(false),
                () = unsettled.fired() => return End::Idle,
                () = pause.fired(), if pausing => pausing = false,
                Some((events, charged)) = queue.recv_batch(MAX_BATCH_BYTES), if !pausing => {
                    out.push(take_lines(events, charged, &self.stats, &mut pace));
                    took = true;
                }
                input = lines.next() => {
                    let line = match input {
                        None | Some(Err(_)) => return End::Done,
                        Some(Ok(Input::Line(line))) => line,
                        Some(Ok(Input::TooLong)) => {
                            let max = self.options.max_line_bytes;
                            out.push(Bytes::from(format!("! line too long (max {max} bytes)\n")));
                            continue;
                        }
                        Some(Ok(Input::NotUtf8)) => {
                            out.push(Bytes::from_static(b"! invalid UTF-8: lines must be UTF-8 text\n"));
                            continue;
                        }
                    };
                    let mut buf = BytesMut::new();
                    // Boxed, as the farewell below: a future awaited here is part of the
                    // connection's state for its whole life, though a reader seldom sends.
                    let request = Request::from(session, Action::Line(line));
                    let close = match Box::pin(self.call(request)).await {
                        Ok(reply) => {
                            if matches!(reply.outcome, Outcome::Nick(_) | Outcome::Joined { .. }) {
                                unsettled.clear();
                            }
                            render(&reply, &mut buf);
                            reply.close
                        }
                        Err(err) => {
                            render_error(&err, &mut buf);
                            false
                        }
                    };
                    if close {
                        let farewell = tokio::time::timeout(FAREWELL_GRACE, write.write_all(&buf));
                        let _ = Box::pin(farewell).await;
                        return End::Done;
                    }
                    out.push(buf.freeze());
                    // Fairness: a client that pastes thousands of lines at once would otherwise
                    // run all of them before its room's readers get a turn to drain their queues.
                    tokio::task::yield_now().await;
                }
            }
        }
    }

    async fn call(&mut self, req: Request) -> Result<Reply, BoxError> {
        self.stack.ready().await?.call(req).await
    }
}

/// The lines of `events` for one write, each chat message's delivery counted in `stats`: they
/// are handed to the socket next, so their delivery latency ends now (one clock reading for the
/// lot, see `Stats::handover`). A lone event is its shared rendered line (no copy); several are
/// copied into one buffer of `charged` bytes, more than they need (see `Inbox::recv_batch`), so
/// that it is allocated once and never grown.
fn take_lines(mut events: Vec<Event>, charged: usize, stats: &Stats, pace: &mut Pace) -> Bytes {
    let mut handover = stats.handover();
    for event in events.iter() {
        if let Event::Message(msg) = event {
            handover.message(msg);
        }
    }
    pace.took(handover.now(), handover.oldest_handed());
    if events.len() == 1 {
        return events.pop().map(|event| event.line()).unwrap_or_default();
    }
    let mut buf = BytesMut::with_capacity(charged);
    for event in events {
        event.put_line(&mut buf);
    }
    buf.freeze()
}

fn render(reply: &Reply, buf: &mut BytesMut) {
    render_events(&reply.events, buf);
}

fn render_events(events: &[Event], buf: &mut BytesMut) {
    for event in events {
        buf.extend_from_slice(&event.line());
    }
}

fn render_error(err: &BoxError, buf: &mut BytesMut) {
    buf.extend_from_slice(&Event::from(&ChatError::from_box(err)).line());
}

#[cfg(test)]
pub(in crate::adapters) mod tests {
    use super::*;
    use crate::adapters::Admitted;
    use crate::adapters::limits::ConnectionLimits;
    use crate::core::{Connected, Nick, Outcome, Reply, end_of_pipeline};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Most bytes a connection's future may take: a budget, every connection carries it for its
    /// whole life. tokio allocates a task in steps of 128 bytes (its cell is aligned to them) and
    /// adds 112 to the future (header, scheduler, tracker token, trailer), so a future of at
    /// most 912 bytes makes a task of 1,024, and 913 one of 1,152. In release builds the TCP
    /// future was 1,720 bytes and the IRC one 3,376 before `run` was written to keep them small
    /// (see its docs), 968 and 912 after, and TCP 904 since its options are shared and its
    /// stream split before the block; test builds measure them at 904 and 920, which is what
    /// this budget holds. Awaiting a stack call without `Box::pin` adds about 100 bytes. When a
    /// compiler upgrade moves them, look with `cargo +nightly rustc --release --lib --
    /// -Zprint-type-sizes` (the `Cell<TrackedFuture<{async block@src/adapters/...}>>` lines give
    /// the task's size) and change the budget on purpose.
    pub(in crate::adapters) const MAX_CONNECTION_FUTURE: usize = 920;

    /// An accepted socket, its peer's address, what an accepted connection holds (counted as
    /// `protocol` in a `Stats` of its own, with a slot under connection limits of its own), and
    /// the client's end of the socket.
    pub(in crate::adapters) async fn accepted(
        protocol: Protocol,
    ) -> (TcpStream, SocketAddr, Admitted, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let limits = ConnectionLimits::new("connections", 1, 1, 64);
        let permit = limits.admit(peer.ip()).unwrap();
        let admitted = Admitted::new(Arc::new(Stats::default()), protocol, permit);
        (stream, peer, admitted, client)
    }

    /// A stack that opens session 1 (`ann`), closes it on the line `/quit`, answers anything
    /// else with nothing, and takes 200 ms to let a session go; the flag is set once it has.
    /// For the adapters' tests that a connection closes only after the core let it go.
    pub(in crate::adapters) fn slow_to_let_go() -> (ChatService, Arc<AtomicBool>) {
        let let_go = Arc::new(AtomicBool::new(false));
        // The session's outbound sender, kept so that its queue stays open.
        let senders = Arc::new(Mutex::new(Vec::new()));
        let flag = let_go.clone();
        let stack = tower::service_fn(move |req: Request| {
            let (let_go, senders) = (flag.clone(), senders.clone());
            async move {
                Ok::<_, tower::BoxError>(match req.action {
                    Action::Connect(connect) => {
                        senders.lock().unwrap().push(connect.outbound);
                        let connected = Connected {
                            session: SessionId(1),
                            nick: Nick::parse("ann").unwrap(),
                        };
                        Reply::default().with(Outcome::Connected(connected))
                    }
                    Action::Disconnect => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        let_go.store(true, Ordering::SeqCst);
                        Reply::default()
                    }
                    Action::Line(line) if line == "/quit" => Reply {
                        close: true,
                        ..Reply::default()
                    },
                    _ => Reply::default(),
                })
            }
        });
        (ChatService::new(stack), let_go)
    }

    /// A connection to serve with `stack`, with small options of its own.
    fn connection(stack: ChatService, admitted: Admitted) -> Connection {
        Connection {
            stack,
            options: Arc::new(TcpOptions {
                max_line_bytes: 4096,
                queue: QueueLimits::events(16),
                join_timeout: Duration::from_secs(60),
            }),
            shutdown: CancellationToken::new(),
            stats: Arc::new(Stats::default()),
            _admitted: admitted,
        }
    }

    /// As IRC's (`irc::connection::tests::the_socket_closes_after_the_core_lets_the_session_go`):
    /// a user who quits and reads to the end finds the core already told, so that a question
    /// from another connection at once (`/who`, `/nick` taking the freed nick) sees the quit.
    #[tokio::test]
    async fn the_socket_closes_after_the_core_lets_the_session_go() {
        use tokio::io::AsyncReadExt;

        let (stream, peer, admitted, mut client) = accepted(Protocol::Tcp).await;
        let (stack, let_go) = slow_to_let_go();
        let connection = connection(stack, admitted);
        tokio::spawn(connection.run(stream, peer));
        client.write_all(b"/quit\n").await.unwrap();
        let mut seen = Vec::new();
        client.read_to_end(&mut seen).await.unwrap();
        assert!(
            let_go.load(Ordering::SeqCst),
            "the connection closed before the core let the session go"
        );
    }

    /// A change that inlines a large future into the connection's state (an `.await` of a
    /// stack call without `Box::pin`, a timer kept for the connection's life) shows here.
    #[tokio::test]
    async fn a_connections_future_stays_small() {
        let (stream, peer, admitted, _client) = accepted(Protocol::Tcp).await;
        let connection = connection(
            ChatService::new(tower::service_fn(end_of_pipeline)),
            admitted,
        );
        let future = connection.run(stream, peer);
        let size = std::mem::size_of_val(&future);
        assert!(size <= MAX_CONNECTION_FUTURE, "{size} bytes");
    }
}
