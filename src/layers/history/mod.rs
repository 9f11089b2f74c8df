//! The history layer: recent history from memory, in front of the store.
//!
//! **Where it sits.** After `route`, before `persist` and `fanout`. It answers `History` reads
//! (a joiner's last messages, `/history N`, an event stream resuming with `Last-Event-ID`) from
//! the room's memory of its newest delivered messages when that is enough, and asks the store
//! (through the persist layer) for the rest otherwise.
//!
//! **What it teaches.** The seed's approach B, a cache: a join's "last 10 messages" come from
//! memory in well under a microsecond instead of a database round trip (`docs/BENCHMARKS.md`
//! measures the difference). The price is bounded memory per room (`capacity` messages) and one
//! hard rule: the cache must show exactly what the room delivered, no more and no less. That is
//! why the ring itself lives in the room (`core::recent`) and is written by the room's delivery
//! gate, under the lock that decides what members see, rather than by this layer as messages go
//! by: a message still in flight, or one whose request fails, is never in it, and one delivered is
//! never missing from it.
//!
//! **Reads beyond the ring.** When the memory does not reach back far enough, the persist layer
//! answers with what the store holds, and what its write queue holds that the store does not have
//! yet. The answer is merged with the ring's, and any seq of the span that neither explains is
//! reported as missing (`HistoryQuery::answer`), so the client is told instead of skipping it in
//! silence. Without a store, the ring is all there is: older messages are gone, which the answer
//! says by covering only what the ring holds.

use std::task::{Context, Poll};

use tower::{BoxError, Layer, Service};

use super::{Inner, LayerFuture, call_inner, take};
use crate::core::{Action, HistoryAnswer, HistoryQuery, Hub, Outcome, Reply, Request, Room};

mod config;
pub use config::HistoryConfig;

/// Builds [`History`] services.
#[derive(Debug, Clone)]
pub struct HistoryLayer {
    hub: Hub,
}

impl HistoryLayer {
    /// A history layer over the rooms of `hub`, which keep `config.capacity` messages each.
    pub fn new(config: &HistoryConfig, hub: Hub) -> HistoryLayer {
        hub.rooms().keep_recent(config.capacity);
        HistoryLayer { hub }
    }
}

impl<S> Layer<S> for HistoryLayer {
    type Service = History<S>;

    fn layer(&self, inner: S) -> History<S> {
        History {
            inner,
            hub: self.hub.clone(),
        }
    }
}

/// Serves recent history; see the module docs.
#[derive(Debug, Clone)]
pub struct History<S> {
    inner: S,
    hub: Hub,
}

impl<S: Inner> Service<Request> for History<S> {
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
            let Action::History(query) = &req.action else {
                return call_inner(&mut inner, req).await;
            };
            let Some(room) = hub.rooms().get(&query.room) else {
                return call_inner(&mut inner, req).await;
            };
            let query = query.clone();
            let ring = room.recent(query.after, query.upto, query.limit);
            let answer = if ring.complete {
                from_memory(&room, &query, ring.messages, true)
            } else {
                match call_inner(&mut inner, req).await?.outcome {
                    Outcome::Stored(page) => query.answer(ring.messages, page),
                    _ => from_memory(&room, &query, ring.messages, false), // no store
                }
            };
            Ok(Reply::default().with(Outcome::History {
                room: query.room,
                answer,
            }))
        })
    }
}

/// An answer from the room's memory alone: it covers the span from its oldest message (or all
/// of it, when the memory reaches back far enough), and its holes are the seqs the room gave up
/// on. The seqs it skipped because they carry no message are not holes.
fn from_memory(
    room: &Room,
    query: &HistoryQuery,
    messages: Vec<std::sync::Arc<crate::core::ChatMessage>>,
    complete: bool,
) -> HistoryAnswer {
    let from = match messages.first() {
        Some(first) if !complete || messages.len() >= query.limit => first.seq,
        Some(_) => query.after + 1,
        None if complete => query.after + 1,
        None => query.upto + 1,
    };
    HistoryAnswer {
        missing: room.lost_within(from, query.upto),
        messages,
        from,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tower::{ServiceExt, service_fn};

    use super::*;
    use crate::core::end_of_pipeline;
    use crate::core::message::sample;
    use crate::core::{ChatMessage, Page, RoomName};

    fn general() -> RoomName {
        RoomName::parse("general").unwrap()
    }

    fn query(after: u64, upto: u64, limit: usize) -> Request {
        Request::anonymous(Action::History(HistoryQuery {
            room: general(),
            upto,
            after,
            limit,
        }))
    }

    fn hub_with(capacity: usize, delivered: impl IntoIterator<Item = u64>) -> Hub {
        let hub = Hub::new("test");
        hub.rooms().keep_recent(capacity);
        let room = hub.rooms().get_or_create(&general());
        for seq in delivered {
            room.commit(sample("general", seq, "a", "x"));
        }
        hub
    }

    async fn ask<S: Inner>(service: S, req: Request) -> HistoryAnswer {
        match service.oneshot(req).await.unwrap().outcome {
            Outcome::History { answer, .. } => answer,
            other => panic!("no history: {other:?}"),
        }
    }

    fn seqs(answer: &HistoryAnswer) -> Vec<u64> {
        answer.messages.iter().map(|m| m.seq).collect()
    }

    /// A stand-in for the persist layer holding `rows` (a unit test of the layer above it).
    fn store(rows: Vec<Arc<ChatMessage>>) -> impl Inner {
        service_fn(move |req: Request| {
            let rows = rows.clone();
            async move {
                let Action::History(query) = req.action else {
                    return end_of_pipeline(req).await;
                };
                let messages: Vec<_> = rows
                    .into_iter()
                    .filter(|m| m.seq > query.after && m.seq <= query.upto)
                    .collect();
                Ok(Reply::default().with(Outcome::Stored(Page {
                    messages,
                    ..Page::default()
                })))
            }
        })
    }

    #[tokio::test]
    async fn a_read_the_ring_can_answer_never_reaches_the_store() {
        let hub = hub_with(10, 1..=5);
        let layer = HistoryLayer { hub };
        let unreachable = service_fn(|_: Request| async { panic!("the store was asked") });
        let answer = ask(layer.layer(unreachable), query(0, 4, 10)).await;
        assert_eq!(seqs(&answer), vec![1, 2, 3, 4]);
        assert_eq!((answer.from, answer.missing.clone()), (1, vec![]));
    }

    #[tokio::test]
    async fn an_evicted_span_is_read_from_the_store_and_merged() {
        let hub = hub_with(3, 1..=6);
        let layer = HistoryLayer { hub };
        let stored = (1..=4).map(|s| sample("general", s, "a", "x")).collect();
        let answer = ask(layer.layer(store(stored)), query(0, 6, 10)).await;
        assert_eq!(seqs(&answer), vec![1, 2, 3, 4, 5, 6]);
        assert!(answer.missing.is_empty());
    }

    #[tokio::test]
    async fn what_neither_the_ring_nor_the_store_holds_is_reported_missing() {
        // The store is behind the ring: 3 and 4 are in neither.
        let hub = hub_with(2, 1..=6);
        let layer = HistoryLayer { hub };
        let stored = (1..=2).map(|s| sample("general", s, "a", "x")).collect();
        let answer = ask(layer.layer(store(stored)), query(0, 6, 10)).await;
        assert_eq!(seqs(&answer), vec![1, 2, 5, 6]);
        assert_eq!(answer.missing, vec![(3, 4)]);
    }

    #[tokio::test]
    async fn without_a_store_an_evicted_span_is_simply_not_covered() {
        let hub = hub_with(3, 1..=6);
        let layer = HistoryLayer { hub };
        let answer = ask(layer.layer(service_fn(end_of_pipeline)), query(0, 6, 10)).await;
        assert_eq!(seqs(&answer), vec![4, 5, 6]);
        assert_eq!(answer.from, 4, "1 to 3 are gone: older than the answer");
        assert!(answer.missing.is_empty());
    }

    #[tokio::test]
    async fn seqs_the_room_gave_up_on_are_reported_from_memory_too() {
        let hub = hub_with(10, [1, 2]);
        let room = hub.rooms().get(&general()).unwrap();
        room.commit(sample("general", 5, "a", "x"));
        room.give_up_until(4);
        let layer = HistoryLayer { hub };
        let answer = ask(layer.layer(service_fn(end_of_pipeline)), query(0, 5, 10)).await;
        assert_eq!(seqs(&answer), vec![1, 2, 5]);
        assert_eq!(answer.missing, vec![(3, 4)]);
    }
}
