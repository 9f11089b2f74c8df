//! The receiving side: the subscriber connection's loop, and the task that fills holes.
//!
//! **Receive loop.** Reads the dedicated pub/sub connection and feeds every publish from another
//! instance into the stack, one at a time and in the order Valkey sent them. When the connection
//! drops (Valkey restarted, a network cut) it marks the backend disconnected, reconnects with
//! capped exponential backoff, re-subscribes every room opened here, and then reads from the store
//! whatever each room missed meanwhile: pub/sub does not keep messages for an absent subscriber.
//! A PING every few seconds catches a connection that died without closing.
//!
//! **Gap task.** A hole in a room's sequence (8 arrived, 7 did not) is normal for a moment: two
//! instances' publishes race. Every `gap_wait / 4` the task looks at each room: a hole older than
//! `gap_wait` is read from the store; one still there after a second `gap_wait` is given up on
//! (`Room::give_up_until`: logged as an error and counted in `gaps_skipped`), so that one lost
//! message cannot hold up a room forever.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::wire::{Received, Wire};
use super::{Shared, channel, subscribe_connection, timeout};
use crate::core::{Action, HistoryQuery, Hub, Request, Room, RoomName};
use crate::pipeline::ChatService;
use deadpool_redis::redis::aio::PubSubStream;

/// The first wait before reconnecting, doubled after each failure up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the subscriber connection is PINGed. A connection can die without a word (a cable
/// pulled, a firewall dropping idle flows): without a reply to a PING the backend would look
/// connected while nothing arrives, which is the failure a health check must not hide.
pub(super) const PING_EVERY: Duration = Duration::from_secs(2);
/// Messages read from the store per query when filling a room.
const FILL_PAGE: u64 = 500;

/// What the receiving tasks share: the backend, and the stack they feed.
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

    /// Feeds `room` the stored messages with a seq in `after+1..=upto` (`None`: up to the
    /// store's newest), oldest first. Returns how many were read.
    async fn fill(&self, room: &Room, after: u64, upto: Option<u64>) -> usize {
        let Some(store) = &self.shared.store else {
            return 0;
        };
        let upto = match upto {
            Some(upto) => upto,
            None => match store.max_seq(&room.name).await {
                Ok(max) => max,
                Err(err) => {
                    tracing::warn!(room = %room.name, "cannot read the store to fill a gap: {err}");
                    return 0;
                }
            },
        };
        let (mut from, mut read) = (after, 0);
        while from < upto {
            let query = HistoryQuery {
                room: room.name.clone(),
                after: from,
                upto: upto.min(from + FILL_PAGE),
                limit: FILL_PAGE as usize,
            };
            let messages = match store.history(&query).await {
                Ok(messages) => messages,
                Err(err) => {
                    tracing::warn!(room = %room.name, "cannot read the store to fill a gap: {err}");
                    return read;
                }
            };
            read += messages.len();
            self.hub
                .stats()
                .gap_fills
                .fetch_add(messages.len() as u64, Ordering::Relaxed);
            for msg in messages {
                self.feed(Action::Publish(msg)).await;
            }
            from = query.upto;
        }
        read
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

    /// Every room opened here that exists in the hub.
    fn opened(&self) -> Vec<Arc<Room>> {
        let names: Vec<RoomName> = self.shared.rooms().iter().cloned().collect();
        names
            .iter()
            .filter_map(|name| self.hub.rooms().get(name))
            .collect()
    }
}

/// The receive loop; see the module docs. Ends when `stop` is cancelled.
pub(super) async fn receive(feeder: Feeder, mut stream: PubSubStream, stop: CancellationToken) {
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
            "lost the Valkey subscription: messages from other instances are not arriving; \
             reconnecting"
        );
        stream = match reconnect(&feeder, &stop).await {
            Some(stream) => stream,
            None => return,
        };
        // Whatever other instances said while we were away is in the store, and only there.
        let mut filled = 0;
        for room in feeder.opened() {
            filled += feeder.fill(&room, room.delivered(), None).await;
        }
        tracing::info!(
            filled,
            "Valkey subscription restored; missed messages read from the store"
        );
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

/// The gap task; see the module docs. Ends when `stop` is cancelled.
pub(super) async fn gaps(feeder: Feeder, stop: CancellationToken) {
    let wait = feeder.shared.gap_wait;
    let mut tick = tokio::time::interval((wait / 4).max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        for room in feeder.opened() {
            let Some(gap) = room.gap() else { continue };
            let age = gap.since.elapsed();
            if age < wait {
                continue;
            }
            // `to < from` means the next seq is held already (it arrived while the room was
            // opening); reading it again from the store releases it.
            let upto = gap.to.max(gap.from);
            feeder.fill(&room, gap.from - 1, Some(upto)).await;
            if age >= wait * 2
                && let Some(still) = room.gap()
                && still.from == gap.from
            {
                room.give_up_until(still.to);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tower::{Layer, service_fn};

    use super::*;
    use crate::backends::mock::Mock;
    use crate::core::message::sample;
    use crate::layers::fanout::FanoutLayer;
    use crate::pipeline::build::end_of_pipeline;

    #[tokio::test]
    async fn a_gap_is_filled_from_the_store_or_else_given_up_on() {
        let store = Arc::new(Mock::default());
        store
            .rows
            .lock()
            .unwrap()
            .push(sample("general", 2, "x", "stored"));
        let shared = Arc::new(Shared::unconnected(
            store.clone(),
            Duration::from_millis(20),
        ));
        let name = RoomName::parse("general").unwrap();
        shared.rooms().insert(name.clone());
        let hub = Hub::new("test");
        let stack = ChatService::new(
            FanoutLayer::new(hub.clone(), None).layer(service_fn(end_of_pipeline)),
        );
        let room = hub.rooms().get_or_create(&name);
        room.commit(sample("general", 1, "x", "one"));
        room.commit(sample("general", 3, "x", "three")); // 2 is in the store
        room.commit(sample("general", 5, "x", "five")); // 4 is nowhere
        assert_eq!(room.delivered(), 1);

        let stop = CancellationToken::new();
        let task = tokio::spawn(gaps(
            Feeder {
                shared,
                stack,
                hub: hub.clone(),
            },
            stop.clone(),
        ));
        let deadline = Instant::now() + Duration::from_secs(10);
        while room.delivered() < 5 {
            assert!(Instant::now() < deadline, "stuck at {:?}", room.gap());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(hub.stats().gaps_skipped.get(), 1, "only 4 was given up on");
        stop.cancel();
        task.await.unwrap();
    }
}

#[cfg(test)]
mod health_tests {
    use std::time::Instant;

    use super::super::Valkey;
    use super::*;
    use crate::backends::Bus;
    use crate::backends::mock::Mock;

    #[tokio::test]
    async fn a_silent_receive_loop_turns_the_bus_red() {
        let shared = Arc::new(Shared::unconnected(
            Arc::new(Mock::default()),
            Duration::from_millis(20),
        ));
        shared.mark_up(); // connected, and just heard from
        let bus = Valkey {
            shared: shared.clone(),
        };
        // Heard from a moment ago: the silence check passes (the PING that follows cannot reach
        // this unconnected backend, so the answer is red for that reason instead).
        let fresh = bus.health().await.unwrap_err();
        assert!(fresh.contains("PING"), "{fresh}");
        // A receive loop that stopped showing signs of life three PING intervals ago.
        *shared.alive.lock().unwrap() = Instant::now() - 4 * PING_EVERY;
        let silent = bus.health().await.unwrap_err();
        assert!(
            silent.starts_with("valkey subscriber silent for 8 s"),
            "{silent}"
        );
    }
}
