//! The layers of the chat pipeline, one file each, in the order a request meets them.
//!
//! | layer | handles | passes inward |
//! |---|---|---|
//! | [`parse`] | `Line` → `Command` | everything else |
//! | [`rate_limit`] | refuses a session's `Line`s and `Command`s beyond its token bucket | everything it does not refuse |
//! | [`guard`]: `timeout`, `concurrency_limit`, `load_shed` | tower's middleware, over users' `Line`s and `Command`s | everything (what it does not refuse) |
//! | [`route`] | `Connect`, `Disconnect`, `Command`s | `Publish`, `Presence`, `History` it creates |
//! | [`history`] | `History` reads it can answer; remembers every `Publish`; warms on `OpenRoom` | the rest |
//! | [`persist`] | stores `Publish`; answers `History` and `OpenRoom` from the store | the rest |
//! | [`fanout`] | delivers `Publish` and `Presence` to room members | nothing (innermost) |
//!
//! The rate limit and the tower middleware are optional guards: anywhere above route.
//!
//! Every layer follows tower's idiom: an `XLayer` (built from its config) wraps an inner service
//! into an `X<S>`; `poll_ready` asks the inner service; `call` handles the request or passes it
//! on. Which layers exist and in what order is decided by the pipeline file, not here
//! (see `src/pipeline/build.rs`).

pub mod fanout;
pub mod guard;
pub mod history;
pub mod parse;
pub mod persist;
pub mod rate_limit;
pub mod route;

use futures_util::future::BoxFuture;
use tower::{BoxError, Service, ServiceExt};

use crate::backends::Writer;
use crate::core::{Action, Command, Reply, Request, Room, UserCommand};

/// The future every layer returns.
pub type LayerFuture = BoxFuture<'static, Result<Reply, BoxError>>;

/// What a layer needs of the service inside it: the chat request/reply contract, cloneable (a
/// layer may call inward more than once per request) and sendable across tasks.
pub trait Inner:
    Service<Request, Response = Reply, Error = BoxError, Future: Send + 'static>
    + Clone
    + Send
    + 'static
{
}

impl<S> Inner for S where
    S: Service<Request, Response = Reply, Error = BoxError, Future: Send + 'static>
        + Clone
        + Send
        + 'static
{
}

/// Whether `req` is something a client sent, which the guard layers (`rate_limit` and tower's
/// middleware) limit: a line or a command, including the opening of an HTTP event stream
/// (`Replay`) and each further page of its replay (`ReplayPage`): reading history is work the
/// client causes, and an open-and-close loop must not be free. (The HTTP adapter waits for a
/// token rather than failing a stream, see `adapters::http::sse`.) Connects, disconnects and
/// other instances' messages are not limited, nor is a parsed quit (`/quit`, IRC's `QUIT`): a
/// client that is leaving is never told to slow down or wait. (A guard placed above `parse`
/// sees `/quit` as a line like any other.)
pub(crate) fn sent_by_a_user(req: &Request) -> bool {
    req.session.is_some()
        && match &req.action {
            Action::Command(Command::Quit | Command::User(UserCommand::QuitWith(_))) => false,
            Action::Line(_) | Action::Command(_) => true,
            _ => false,
        }
}

/// Takes the inner service that `poll_ready` just readied, leaving a fresh clone in its place:
/// tower's rule is that the readied instance must be the one called.
pub(crate) fn take<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}

/// Settles `seq` of `room` as carrying nothing, here and (with a store) for everybody: the room
/// stops waiting for it and a tombstone is written. Nothing happens if the room delivered it or
/// holds it for delivery already.
pub(crate) fn abandon(room: &Room, seq: u64, tombstones: Option<&Writer>) {
    if room.abandon(seq) {
        tracing::warn!(room = %room.name, seq, "message failed after numbering; its seq is abandoned");
        if let Some(writer) = tombstones {
            writer.enqueue_skip(room.name.clone(), seq);
        }
    }
}

/// Calls the next layer with `req`, waiting for it to be ready first.
pub(crate) async fn call_inner<S: Inner>(inner: &mut S, req: Request) -> Result<Reply, BoxError> {
    inner.ready().await?.call(req).await
}
