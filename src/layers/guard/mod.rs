//! tower's own middleware as pipeline layers: `timeout`, `concurrency_limit` and `load_shed`.
//!
//! **What it does.** These three kinds are not written here: each is tower's layer
//! (`TimeoutLayer`, `ConcurrencyLimitLayer`, `LoadShedLayer`), built from its `[[layer]]` table in
//! `src/pipeline/build.rs`. This file adds only [`UsersOnly`], the wrapper that decides which
//! requests the middleware sees: the lines and commands users send (see
//! `layers::sent_by_a_user`). Everything else (connects, disconnects, the opening of an HTTP
//! event stream, other instances' messages) goes around it, straight to the layers below:
//!
//! * a `Disconnect` that timed out or was shed would leave its session, and its nick, behind;
//! * a connect refused by a busy server would close a connection that sent nothing yet, which is
//!   the adapters' limits' job, not the pipeline's;
//! * another instance's message has already been accepted there: shedding it here would only
//!   leave a gap in its room;
//! * a browser's `EventSource` gives up for good on any answer but `200`: a refused stream would
//!   stay closed.
//!
//! They are never timed out nor shed. At a `concurrency_limit` they still wait their turn, like
//! everyone: tower's readiness (`poll_ready`) belongs to a service, not to a request, so the
//! stack cannot be ready for a disconnect and busy for a line at the same moment.
//!
//! **Where it sits.** Above route, like the rate limit (the pipeline check insists). `load_shed`
//! only makes sense above a `concurrency_limit`, and the check insists on that too.
//!
//! **What it teaches.** tower's middleware composes with ours because every layer speaks the same
//! `Service<Request>` and returns errors as `BoxError`: tower's typed errors (`Elapsed`,
//! `Overloaded`) travel up unchanged and the adapters turn them into words with
//! [`ChatError::from_box`](crate::core::ChatError::from_box): `! the server took too long to
//! answer: what you sent may still arrive ...` (HTTP `504`: not a refusal, the outcome is open),
//! `! server busy, try again` (HTTP `503`). It also shows the two answers to overload:
//! a `concurrency_limit` alone *queues* (a request waits in `poll_ready` for a permit, which is
//! backpressure), while a `load_shed` above it *refuses* at once whatever would have to wait. A
//! chat server usually wants the refusal: a message delivered ten seconds late is worse than an
//! error the user can see. And a `timeout` cancels the request's future, which is safe here
//! because the route layer undoes what a dropped request leaves half done, and a message whose
//! write-ahead is under way is finished by the persist layer whatever happens to the request (see
//! `src/layers/route/guards.rs`); a timed-out message may still have been stored or delivered,
//! exactly as with any timeout: the client cannot know. tower's `Timeout` times the call, not the
//! wait for readiness before it, so a `timeout` does not bound the wait at a `concurrency_limit`;
//! a `load_shed` does.

use std::task::{Context, Poll};

use tower::{BoxError, Layer, Service};

use super::{LayerFuture, call_inner, sent_by_a_user, take};
use crate::core::ChatService;
use crate::core::{Reply, Request};

mod config;
pub use config::{ConcurrencyLimitConfig, LoadShedConfig, TimeoutConfig};

/// Builds [`UsersOnly`] services around the middleware layer `L`.
#[derive(Debug, Clone)]
pub struct UsersOnlyLayer<L> {
    middleware: L,
}

impl<L> UsersOnlyLayer<L> {
    /// Applies `middleware` to what users send; see the module docs.
    pub fn new(middleware: L) -> UsersOnlyLayer<L> {
        UsersOnlyLayer { middleware }
    }
}

impl<L> Layer<ChatService> for UsersOnlyLayer<L>
where
    L: Layer<ChatService>,
    L::Service:
        Service<Request, Response = Reply, Error = BoxError> + Clone + Send + Sync + 'static,
    <L::Service as Service<Request>>::Future: Send + 'static,
{
    type Service = UsersOnly;

    fn layer(&self, inner: ChatService) -> UsersOnly {
        UsersOnly {
            guarded: ChatService::new(self.middleware.layer(inner.clone())),
            inner,
        }
    }
}

/// The layers below, twice: through the middleware for users' lines and commands, directly for
/// everything else.
#[derive(Clone)]
pub struct UsersOnly {
    guarded: ChatService,
    inner: ChatService,
}

impl std::fmt::Debug for UsersOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UsersOnly")
    }
}

impl Service<Request> for UsersOnly {
    type Response = Reply;
    type Error = BoxError;
    type Future = LayerFuture;

    /// Ready when the middleware is: that is how a `concurrency_limit` pushes back on the layers
    /// above it, and how a `load_shed` above it learns that it must shed.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.guarded.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> LayerFuture {
        // The readied instance: called for a user's request, else dropped, which releases what it
        // reserved (a `concurrency_limit` permit) for the users who need it.
        let mut guarded = take(&mut self.guarded);
        if sent_by_a_user(&req) {
            return guarded.call(req);
        }
        drop(guarded);
        let mut inner = self.inner.clone();
        Box::pin(async move { call_inner(&mut inner, req).await })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::{Notify, mpsc};
    use tower::limit::ConcurrencyLimitLayer;
    use tower::load_shed::LoadShedLayer;
    use tower::timeout::TimeoutLayer;
    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::core::{Action, ChatError, ErrorKind, SessionId};

    /// A stack whose bottom says on `entered` that a line arrived, then waits on `gate`; other
    /// requests pass at once.
    fn stuck(gate: Arc<Notify>, entered: mpsc::UnboundedSender<()>) -> ChatService {
        ChatService::new(service_fn(move |req: Request| {
            let (gate, entered) = (gate.clone(), entered.clone());
            async move {
                if matches!(req.action, Action::Line(_)) {
                    let _ = entered.send(());
                    gate.notified().await;
                }
                Ok::<_, BoxError>(Reply::default())
            }
        }))
    }

    fn line(session: u64) -> Request {
        Request::from(SessionId(session), Action::Line("hi".into()))
    }

    fn disconnect(session: u64) -> Request {
        Request::from(SessionId(session), Action::Disconnect)
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_gives_up_on_a_slow_line_but_not_on_a_disconnect() {
        let (entered, _) = mpsc::unbounded_channel();
        let stack = UsersOnlyLayer::new(TimeoutLayer::new(Duration::from_millis(50)))
            .layer(stuck(Arc::new(Notify::new()), entered));
        let err = stack.clone().oneshot(line(1)).await.unwrap_err();
        let err = ChatError::from_box(&err);
        assert_eq!(err.kind, ErrorKind::TimedOut);
        assert_eq!(err.message, crate::core::error::TIMED_OUT);
        stack.oneshot(disconnect(1)).await.unwrap();
    }

    #[tokio::test]
    async fn load_shed_over_a_concurrency_limit_refuses_what_would_wait() {
        let (gate, (entered, mut inside)) = (Arc::new(Notify::new()), mpsc::unbounded_channel());
        let limited =
            UsersOnlyLayer::new(ConcurrencyLimitLayer::new(1)).layer(stuck(gate.clone(), entered));
        let stack = UsersOnlyLayer::new(LoadShedLayer::new()).layer(ChatService::new(limited));
        // The first line holds the only permit until the gate opens.
        let first = tokio::spawn(stack.clone().oneshot(line(1)));
        inside.recv().await.unwrap();
        let err = stack.clone().oneshot(line(2)).await.unwrap_err();
        let err = ChatError::from_box(&err);
        assert_eq!(err.kind, ErrorKind::Unavailable);
        assert_eq!(err.message, "server busy, try again");
        // A disconnect is not shed: it waits for the permit, and gets through.
        let leaving = tokio::spawn(stack.clone().oneshot(disconnect(2)));
        gate.notify_one();
        first.await.unwrap().unwrap();
        leaving.await.unwrap().unwrap();
        // The permit is back: the next line gets through.
        let again = tokio::spawn(stack.oneshot(line(2)));
        inside.recv().await.unwrap();
        gate.notify_one();
        again.await.unwrap().unwrap();
    }
}
