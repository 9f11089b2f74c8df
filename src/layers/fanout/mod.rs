//! The fan-out layer: hands each message to the members of its room, here and elsewhere.
//!
//! **Where it sits.** Innermost: when a `Publish` gets here it has been numbered, cached and (if
//! so configured) stored. Delivery is the last step, so that nothing is seen before it is safe.
//!
//! **What it teaches.** The seed's fifth lesson. With `backend = "local"` (phase 1) a message
//! reaches the members connected to this process, through their room's ordered gate
//! ([`Room::commit`](crate::core::Room::commit)): in seq order, without waiting for any of them
//! (a full outbound queue disconnects that one member, see `core::session`). A cross-instance
//! backend (database polling in phase 2, Valkey pub/sub in phase 3) is a [`Bus`]: local messages
//! are delivered here first (the fastest path to the people next to you), then handed to the bus;
//! other instances' messages come back in through the same stack, marked remote, and pass this
//! layer's ordered gate like any other. The bus is never asked to carry a remote message again.

use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{BoxError, Layer, Service};

use super::{Inner, LayerFuture, call_inner, take};
use crate::backends::Bus;
use crate::core::{Action, ChatError, Hub, Origin, Reply, Request};

mod config;
pub use config::{Backend, FanoutConfig};

/// Builds [`Fanout`] services.
#[derive(Debug, Clone)]
pub struct FanoutLayer {
    hub: Hub,
    bus: Option<Arc<dyn Bus>>,
}

impl FanoutLayer {
    /// A fan-out layer delivering to the rooms of `hub`, and through `bus` (if any) to the other
    /// instances.
    pub fn new(hub: Hub, bus: Option<Arc<dyn Bus>>) -> FanoutLayer {
        FanoutLayer { hub, bus }
    }
}

impl<S> Layer<S> for FanoutLayer {
    type Service = Fanout<S>;

    fn layer(&self, inner: S) -> Fanout<S> {
        Fanout {
            inner,
            hub: self.hub.clone(),
            bus: self.bus.clone(),
        }
    }
}

/// Delivers messages and presence changes; see the module docs.
#[derive(Debug, Clone)]
pub struct Fanout<S> {
    inner: S,
    hub: Hub,
    bus: Option<Arc<dyn Bus>>,
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
        let (hub, bus) = (self.hub.clone(), self.bus.clone());
        Box::pin(async move {
            match req.action {
                Action::Publish(msg) => {
                    match &msg.origin {
                        Origin::Local(_) => {
                            hub.rooms().get_or_create(&msg.room).commit(msg.clone())
                        }
                        // A room that is not in memory here has nobody to deliver to: it was
                        // evicted (or never opened here), and its next open reads the store.
                        Origin::Remote(_) => match hub.rooms().get(&msg.room) {
                            Some(room) => room.commit(msg.clone()),
                            None => 0,
                        },
                    };
                    if let (Some(bus), Origin::Local(_)) = (&bus, &msg.origin) {
                        match bus.publish(&msg).await {
                            Ok(()) => hub.stats().bus_published.inc(),
                            Err(err) => {
                                // Delivered here and stored: the other instances fill the gap
                                // from the store. Logged, not returned: the sender did nothing
                                // wrong.
                                hub.stats().bus_failures.inc();
                                tracing::warn!(room = %msg.room, seq = msg.seq, "bus publish failed: {err}");
                            }
                        }
                    }
                    Ok(Reply::default())
                }
                Action::Presence(presence) => {
                    if let Some(room) = hub.rooms().get(&presence.room) {
                        room.announce(&presence);
                    }
                    // Local changes name their session; remote ones do not and stop here.
                    if let (Some(bus), Some(_)) = (&bus, presence.session) {
                        match bus.announce(&presence).await {
                            Ok(()) => hub.stats().bus_published.inc(),
                            Err(err) => {
                                hub.stats().bus_failures.inc();
                                tracing::warn!(room = %presence.room, "bus announce failed: {err}");
                            }
                        }
                    }
                    Ok(Reply::default())
                }
                Action::OpenRoom(open) => {
                    if let Some(bus) = &bus {
                        bus.open_room(&open).await.map_err(|err| {
                            ChatError::unavailable(format!(
                                "cannot reach the other instances for {}, try again: {err}",
                                open.room
                            ))
                        })?;
                    }
                    call_inner(
                        &mut inner,
                        Request::from_parts(req.session, Action::OpenRoom(open)),
                    )
                    .await
                }
                Action::CloseRoom(room) => {
                    if let Some(bus) = &bus {
                        bus.close_room(&room).await;
                    }
                    Ok(Reply::default())
                }
                action => call_inner(&mut inner, Request::from_parts(req.session, action)).await,
            }
        })
    }
}
