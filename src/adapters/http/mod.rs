//! The HTTP adapter: REST for commands, Server-Sent Events for the live stream.
//!
//! The seed's central lesson lives here and in `tcp.rs`: the same core serves netcat and browsers.
//! This adapter translates JSON requests into the very same `Request`s
//! the TCP adapter makes and calls the same [`ChatService`]; it renders replies as JSON and
//! events as SSE frames. It holds no chat logic: the HTTP-only state is the token → session map
//! ([`sessions`]) and the per-stream resume bookkeeping (`sse/`).
//!
//! | endpoint | request | answer |
//! |---|---|---|
//! | `POST /connect` | `{"nick"?}` | `{"session", "nick"}` + cookie |
//! | `POST /command` | `{"command": "/join general"}` | `{"lines": [...], ...}` |
//! | `POST /message` | `{"room", "text"}` | `202 {"room", "seq"}` |
//! | `GET /messages/:room` | (`Last-Event-ID`) | `text/event-stream` |
//! | `GET /healthz` | | `200`: the process answers |
//! | `GET /readyz` | | `200` or `503`: the store and bus work (`crate::ops::health`) |
//! | `GET /metrics` | | Prometheus text (`crate::ops::metrics`) |
//! | `GET /…` | | the browser client from `static/` |
//!
//! Connections beyond `[server] max_connections_per_ip` or `max_connections` (counted with the
//! TCP adapter's, see `adapters::limits`) get `429` or `503` with a JSON error; so does a
//! `POST /connect` beyond as many live sessions per address. `GET /healthz` is the exception: it
//! answers `200` even on a refused connection, so that a full server (or an address at its
//! limit) does not look dead to its monitoring and get restarted for nothing.
//!
//! Every response carries security headers (a Content-Security-Policy, no framing, no sniffing,
//! no referrer), state-changing requests from another origin's page are refused, and request
//! logs never show a session token: see `hardening.rs`.
//!
//! Served with hyper 1 (HTTP/1.1, a header-read timeout against slow-header clients) and
//! tower-http (request tracing, a timeout on ordinary requests, static files). Graceful shutdown
//! is the server's one [`CancellationToken`]: streams end, connections drain.

mod auth;
mod frames;
mod hardening;
mod json;
mod routes;
pub mod sessions;
mod sse;
mod stream;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::{BoxError, ServiceExt};

use super::limits::ConnectionLimits;
use crate::core::ChatService;
use crate::core::outbound::QueueLimits;
use crate::core::{Answered, Ask, Protocol, Reply, Request, SessionId, ask};
use crate::ops::Ops;
use sessions::HttpSessions;

/// The body type of every response.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// Boxes any body into [`Body`].
pub fn full<B>(body: B) -> Body
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(|err| -> BoxError { err.into() })
        .boxed_unsync()
}

/// Ordinary requests must be answered within this (event streams are not affected: their
/// response starts at once and the body streams).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connections get to finish after shutdown before they are dropped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a refused connection gets to send its one request: refusals in flight are bounded
/// (`adapters::REFUSALS_IN_FLIGHT`), and a silent one should not keep its place for long.
const REFUSED_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// hyper's buffer per connection (`max_buf_size`): a request head must fit in it, and hyper stops
/// taking a response's frames once this much waits for a socket that does not drain. Its default
/// (about 400 KiB) would let every event stream of a client that does not read hold that much.
pub const HTTP_BUFFER: usize = 64 * 1024;

/// The HTTP adapter's settings, from the `[server]` table.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// The bounds of each session's outbound queue and of each event stream's tap.
    pub queue: QueueLimits,
    /// Most event streams one session may have open.
    pub max_streams_per_session: usize,
    /// Event streams per address and in total.
    pub stream_limits: Arc<ConnectionLimits>,
    /// Idle sessions expire after this.
    pub session_idle: Duration,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// A slow-header client (slowloris) gets this long to send its request head.
    pub header_read_timeout: Duration,
    /// Live sessions per address and in total (`POST /connect` beyond them gets 429 or 503).
    pub session_limits: Arc<ConnectionLimits>,
    /// Where the browser client's files are.
    pub static_dir: PathBuf,
}

/// What every request handler shares.
#[derive(Debug)]
struct State {
    stack: ChatService,
    options: HttpOptions,
    /// `/metrics`, `/readyz`, and the counters this adapter bumps.
    ops: Ops,
    sessions: HttpSessions,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl State {
    /// Calls the chat stack.
    async fn call(&self, req: Request) -> Result<Reply, BoxError> {
        self.stack.clone().oneshot(req).await
    }

    /// Asks the chat stack for a typed answer (see `core::ask`).
    async fn ask<A: Ask>(
        &self,
        session: Option<SessionId>,
        asked: A,
    ) -> Result<Answered<A::Answer>, BoxError> {
        ask(&mut self.stack.clone(), session, asked).await
    }
}

/// Serves HTTP until `shutdown`, each connection on its own task on `tracker`. `ops` answers
/// the operator's endpoints. A connection over the `limits` has its first request answered with
/// the refusal (`429` or `503`) and is closed.
pub async fn serve(
    listener: TcpListener,
    stack: ChatService,
    options: HttpOptions,
    ops: Ops,
    limits: Arc<ConnectionLimits>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let stats = ops.hub().stats_handle();
    let state = Arc::new(State {
        stack,
        options,
        ops,
        sessions: HttpSessions::default(),
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
    });
    tracker.spawn(routes::expire_idle_sessions(state.clone()));
    let service = routes::service(state.clone());
    let graceful = GracefulShutdown::new();
    let header_timeout = state.options.header_read_timeout;
    let refusals = Arc::new(Semaphore::new(super::REFUSALS_IN_FLIGHT));
    while let Some(accepted) = super::accept(&listener, &limits, &refusals, &shutdown).await {
        let (stream, peer) = (accepted.stream, accepted.peer);
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(HTTP_BUFFER);
        let permit = match accepted.admission {
            Ok(permit) => permit,
            Err(refusal) => {
                // Read the one request properly, answer it with the refusal (or, for a health
                // check, with "alive"), and close. A refused client gets less time to send it.
                let refused = refusal.refused;
                let answer = hyper::service::service_fn(move |req: http::Request<_>| async move {
                    let mut response = match (req.method(), req.uri().path()) {
                        (&http::Method::GET, "/healthz") => routes::healthz(),
                        _ => json::HttpError::from(refused).into_response(),
                    };
                    hardening::harden(response.headers_mut());
                    Ok::<_, Infallible>(response)
                });
                let connection = builder
                    .keep_alive(false)
                    .header_read_timeout(header_timeout.min(REFUSED_HEADER_TIMEOUT))
                    .serve_connection(TokioIo::new(stream), answer);
                // `map`, not `async move { connection.await }`: a block keeps the connection it
                // captured and the copy it awaits, twice the memory (see `tcp::Connection::run`).
                // The refusal holds a place among the refusals in flight until the end.
                let connection = graceful.watch(connection);
                tracker.spawn(connection.map(move |_| drop(refusal)));
                continue;
            }
        };
        let svc = TowerToHyperService::new(service.clone().map_request(
            move |mut req: http::Request<_>| {
                req.extensions_mut().insert(Peer(peer));
                req
            },
        ));
        let connection = builder.serve_connection(TokioIo::new(stream), svc);
        let connection = graceful.watch(connection);
        let admitted = super::Admitted::new(stats.clone(), Protocol::Http, permit);
        // As for a refused connection: the task is the connection's future and what it ends with.
        tracker.spawn(connection.map(move |result| {
            if let Err(err) = result {
                tracing::debug!(error = %err, %peer, "http connection ended with an error");
            }
            drop(admitted);
        }));
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some HTTP connections did not finish in time");
    }
}

/// The client's address, attached to each request.
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

/// Never fails: every error has become a response by now.
type HttpResult = Result<http::Response<Body>, Infallible>;
