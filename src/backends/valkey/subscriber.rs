//! The receiving side: the subscriber connection's loop.
//!
//! It reads the dedicated pub/sub connection and feeds every publish from another instance into
//! the stack, one at a time and in the order Valkey sent them. When the connection drops (Valkey
//! restarted, a network cut) it marks the backend degraded, reconnects with capped exponential
//! backoff and re-subscribes every room opened here. What other instances said meanwhile is not
//! replayed by Valkey (pub/sub keeps nothing for an absent subscriber): the poll underneath, which
//! runs fast while the bus is degraded, reads it from PostgreSQL. A PING every few seconds
//! catches a connection that died without closing.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::wire::{Received, Wire};
use super::{Shared, channel, subscribe_connection, timeout};
use crate::core::ChatService;
use crate::core::{Action, Hub, Request, RoomName};
use deadpool_redis::redis::aio::PubSubStream;

/// The first wait before reconnecting, doubled after each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the subscriber connection is PINGed. A connection can die without a word (a cable
/// pulled, a firewall dropping idle flows): without a reply to a PING the backend would look
/// connected while nothing arrives, which is the failure a health check must not hide.
pub(super) const PING_EVERY: Duration = Duration::from_secs(2);

/// What the receive loop needs: the backend, and the stack it feeds.
#[derive(Clone)]
pub(super) struct Feeder {
    pub(super) shared: Arc<Shared>,
    pub(super) stack: ChatService,
    pub(super) hub: Hub,
}

impl Feeder {
    /// Sends one request from another instance into the stack.
    async fn feed(&self, action: Action) {
        if let Err(err) = self.stack.clone().oneshot(Request::anonymous(action)).await {
            tracing::warn!("a message from another instance was refused: {err}");
        }
    }

    /// Decodes and feeds one publish.
    async fn received(&self, payload: &[u8]) {
        match Wire::decode(payload, &self.shared.instance) {
            Ok(None) => {} // our own: delivered here already
            Ok(Some(Received::Message(msg))) => {
                self.hub.stats().bus_received.inc();
                self.feed(Action::Publish(msg)).await;
            }
            Ok(Some(Received::Presence(presence))) => {
                self.hub.stats().bus_received.inc();
                self.feed(Action::Presence(presence)).await;
            }
            Err(err) => tracing::warn!("ignoring an unreadable publish: {err}"),
        }
    }

    /// Whether the subscriber connection answers a PING in time; if not, why.
    async fn alive(&self) -> Result<(), String> {
        let mut sink = self.shared.sink.lock().await;
        let Some(sink) = sink.as_mut() else {
            return Err("the connection is gone".into());
        };
        let pong = timeout(sink.ping::<deadpool_redis::redis::Value>()).await;
        let why = match pong {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(err)) => err.to_string(),
            Err(err) => err.to_string(),
        };
        tracing::warn!("the Valkey subscriber connection failed a PING: {why}");
        Err(format!("no answer to a PING: {why}"))
    }
}

/// The receive loop; see the module docs. Starts by connecting when Valkey could not be reached
/// at start (`stream` is `None`). Ends when `stop` is cancelled.
pub(super) async fn receive(feeder: Feeder, stream: Option<PubSubStream>, stop: CancellationToken) {
    let mut stream = match stream {
        Some(stream) => stream,
        None => match reconnect(&feeder, &stop).await {
            Some(stream) => stream,
            None => return,
        },
    };
    loop {
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let why = loop {
            tokio::select! {
                () = stop.cancelled() => return,
                next = stream.next() => match next {
                    Some(msg) => {
                        feeder.shared.mark_alive();
                        feeder.received(msg.get_payload_bytes()).await;
                    }
                    None => break "the connection closed".to_string(),
                },
                _ = ping.tick() => match feeder.alive().await {
                    Ok(()) => feeder.shared.mark_alive(),
                    Err(why) => break why,
                },
            }
        };
        feeder.shared.mark_down(why);
        *feeder.shared.sink.lock().await = None;
        feeder.hub.stats().bus_failures.inc();
        tracing::error!(
            "lost the Valkey subscription: messages between instances travel through PostgreSQL \
             until it is back; reconnecting"
        );
        stream = match reconnect(&feeder, &stop).await {
            Some(stream) => stream,
            None => return,
        };
        tracing::info!("Valkey subscription restored");
    }
}

/// Reconnects with capped exponential backoff and re-subscribes every opened room. `None` when
/// `stop` is cancelled first.
async fn reconnect(feeder: &Feeder, stop: &CancellationToken) -> Option<PubSubStream> {
    let mut backoff = FIRST_BACKOFF;
    loop {
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        let (mut sink, stream) = match subscribe_connection(&feeder.shared.client).await {
            Ok(pubsub) => pubsub.split(),
            Err(err) => {
                tracing::warn!(retry_in = ?backoff, "cannot reconnect to Valkey: {err}");
                feeder.shared.mark_down(format!("cannot reconnect: {err}"));
                continue;
            }
        };
        // Held while re-subscribing, so `open_room` waits and no room is left out.
        let mut slot = feeder.shared.sink.lock().await;
        let rooms: Vec<RoomName> = feeder.shared.rooms().iter().cloned().collect();
        let mut ok = true;
        for room in &rooms {
            if let Err(err) = timeout(sink.subscribe(channel(room)))
                .await
                .and_then(|r| r.map_err(Into::into))
            {
                tracing::warn!(%room, retry_in = ?backoff, "cannot re-subscribe: {err}");
                feeder
                    .shared
                    .mark_down(format!("cannot re-subscribe to {room}: {err}"));
                ok = false;
                break;
            }
        }
        if ok {
            *slot = Some(sink);
            feeder.shared.mark_up();
            feeder.hub.stats().bus_reconnects.inc();
            return Some(stream);
        }
    }
}
