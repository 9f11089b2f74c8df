//! The bus: how a message published on one instance reaches the members on the others.
//!
//! Phase 1 has no bus (`backend = "local"`): the fan-out layer delivers to this process's members
//! and that is all. A cross-instance backend (`poll`, `valkey`) implements [`Bus`]:
//!
//! * **out:** the fan-out layer hands it every *local* message and presence change after
//!   delivering them here ([`Bus::publish`], [`Bus::announce`]);
//! * **in:** once the stack is built, [`Bus::start`] gets a clone of it from the route layer
//!   down and feeds what other instances said back in as `Action::Publish` / `Action::Presence`
//!   requests whose message or presence is marked remote (`Origin::Remote`,
//!   `Presence::session == None`). They skip what only users' input needs (parse, the rate
//!   limit, tower's guards); from route on they meet the same layers as local ones: route shows
//!   their presence changes, the ring remembers their messages, the store does not store them
//!   again, and the room's ordered gate (`Room::commit`) delivers them in seq order;
//! * **open:** when a room is first used on this instance, the `OpenRoom` request passes through
//!   the fan-out layer, which hands it to [`Bus::open_room`]: the backend starts listening to the
//!   room and raises the room's floor to the seq other instances have already reached;
//! * **close:** when an idle room is evicted from this instance's memory (`core::rooms`), the
//!   `CloseRoom` request hands it to [`Bus::close_room`]: the backend stops listening to it. A
//!   later `open_room` starts over;
//! * **health:** [`Bus::health`] says whether messages flow right now, in words an operator can
//!   act on: fine, degraded (they flow, slower: Valkey is down and the store carries them), or
//!   not at all; `GET /readyz` asks it (see `crate::ops::health`).
//!
//! A gap in a room's sequence (a message numbered but not received) is the backend's to fill:
//! from the store, or settled with the other instances after a bounded wait (`backends::gaps`).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tower::BoxError;

use super::Background;
use crate::core::ChatService;
use crate::core::{ChatMessage, Hub, OpenRoom, Presence, RoomName};

/// How well messages flow between instances; see [`Bus::health`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusHealth {
    /// As designed.
    Ok,
    /// They flow, by a slower path; why, in words for an operator (e.g. `degraded: valkey
    /// subscription down since 3 s (connection refused): messages travel through PostgreSQL`).
    Degraded(String),
    /// They do not flow; why, e.g. `poll: no successful poll for 5.0 s: connection refused`.
    Down(String),
}

/// A way to exchange messages with other instances; see the module docs.
pub trait Bus: Send + Sync + std::fmt::Debug + 'static {
    /// Sends a local message to the other instances. A failure is logged by the caller, not
    /// returned to the sender: the message is delivered here and stored, and the other instances
    /// fill the gap from the store.
    fn publish<'a>(&'a self, msg: &'a Arc<ChatMessage>) -> BoxFuture<'a, Result<(), BoxError>>;

    /// Sends a local presence change to the other instances.
    fn announce<'a>(&'a self, presence: &'a Arc<Presence>) -> BoxFuture<'a, Result<(), BoxError>>;

    /// Starts listening to `open.room` and raises its floor (`OpenRoom::raise_floor`) to the seq
    /// the other instances have reached.
    ///
    /// # Errors
    /// When the backend cannot be reached: the room is not opened and the user is told to retry.
    fn open_room<'a>(&'a self, open: &'a OpenRoom) -> BoxFuture<'a, Result<(), BoxError>>;

    /// Stops listening to `room`: it was evicted from this instance's memory, idle. What is
    /// published for it from now on is not needed here; should it be used again, `open_room`
    /// starts listening again before the store is read.
    fn close_room<'a>(&'a self, room: &'a RoomName) -> BoxFuture<'a, ()> {
        let _ = room;
        Box::pin(async {})
    }

    /// Whether messages flow between this instance and the others right now, for the readiness
    /// check (`GET /readyz`), which bounds the wait itself.
    fn health(&self) -> BoxFuture<'_, BusHealth>;

    /// Whether messages take a slower path than designed right now (cheap: read by `/metrics`
    /// at every scrape).
    fn degraded(&self) -> bool {
        false
    }

    /// How many rooms it listens to right now (cheap: read by `/metrics` at every scrape). It
    /// follows the rooms in memory: a room is listened to from its open until its eviction
    /// closes it, so once every room has gone it is 0.
    fn listening(&self) -> usize {
        0
    }

    /// Starts the receiving side: what other instances publish is fed into `stack` (the pipeline
    /// from its route layer down). Its tasks run on `background` and stop with it.
    ///
    /// # Errors
    /// When the backend cannot be set up.
    fn start(&self, stack: ChatService, hub: Hub, background: &Background) -> anyhow::Result<()>;
}
