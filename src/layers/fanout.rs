//! The fan-out layer: hands each message to the members of its room.
//!
//! **Where it sits.** Innermost: when a `Publish` gets here it has been numbered, cached and (if
//! so configured) stored. Delivery is the last step, so that nothing is seen before it is safe.
//!
//! **What it teaches.** The seed's fifth lesson begins here. With `backend = "local"` (phase 1)
//! a message reaches the members connected to this process, through their rooms' ordered gate
//! ([`Room::commit`](crate::core::Room::commit)): in seq order, without waiting for any of them
//! (a full outbound queue disconnects that one member, see `core::session`). The cross-instance
//! backends (database polling, Valkey pub/sub) add a second path, to the other instances, and
//! their messages come back in through the same stack and the same gate.

use std::task::{Context, Poll};

use tower::{BoxError, Layer, Service};

use super::{Inner, LayerFuture, call_inner, take};
use crate::core::{Action, Hub, Reply, Request};
use crate::pipeline::config::FanoutConfig;

/// Builds [`Fanout`] services.
#[derive(Debug, Clone)]
pub struct FanoutLayer {
    hub: Hub,
}

impl FanoutLayer {
    /// A fan-out layer delivering to the rooms of `hub`.
    pub fn new(config: &FanoutConfig, hub: Hub) -> FanoutLayer {
        match config {
            FanoutConfig::Local {} => FanoutLayer { hub },
        }
    }
}

impl<S> Layer<S> for FanoutLayer {
    type Service = Fanout<S>;

    fn layer(&self, inner: S) -> Fanout<S> {
        Fanout {
            inner,
            hub: self.hub.clone(),
        }
    }
}

/// Delivers messages and presence changes; see the module docs.
#[derive(Debug, Clone)]
pub struct Fanout<S> {
    inner: S,
    hub: Hub,
}

impl<S: Inner> Service<Request> for Fanout<S> {
    type Response = Reply;
    type Error = BoxError;
    type Future = LayerFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> LayerFuture {
        let mut inner = take(&mut self.inner);
        let hub = self.hub.clone();
        Box::pin(async move {
            match req.action {
                Action::Publish(msg) => {
                    hub.rooms().get_or_create(&msg.room).commit(msg);
                    Ok(Reply::default())
                }
                Action::Presence(presence) => {
                    if let Some(room) = hub.rooms().get(&presence.room) {
                        room.announce(&presence);
                    }
                    Ok(Reply::default())
                }
                action => {
                    call_inner(
                        &mut inner,
                        Request {
                            session: req.session,
                            action,
                        },
                    )
                    .await
                }
            }
        })
    }
}
