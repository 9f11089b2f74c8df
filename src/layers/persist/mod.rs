//! The persist layer: where messages go to survive a restart.
//!
//! **Where it sits.** After `route` (every message it sees is numbered) and before `fanout`, so
//! that in write-ahead mode a message can be stored before anybody sees it.
//!
//! **What it does.** With `store = "none"` it keeps nothing and passes every request through.
//! With a store (`sqlite`, `postgres`, behind the [`Store`] seam of `src/backends/`):
//! * `Publish` hands the message to the store's [`Writer`]. Messages from other instances
//!   (`Origin::Remote`) are theirs to store and pass straight through.
//! * `History` reads the room's memory cannot answer are answered with what the write queue holds
//!   that the store does not have yet (the writer's index, read first), and what the store holds
//!   (`Outcome::Stored`); the history layer merges that with the memory's answer. If the store
//!   cannot be read, the queue's rows are the answer, and the reader is told what is missing.
//! * `OpenRoom` (a room's first use since start, or since it was evicted from memory) is
//!   answered from the store and the write queue, after the layers inside (the fan-out's bus)
//!   have started listening to the room: its newest rows and how far its numbering went, from
//!   which the route layer decides where the room starts.
//!
//! **What it teaches.** The seed's third lesson, speed against durability, as one line of config:
//! * `durability = "async"`, write-behind (approach B): the message is queued and delivered at
//!   once; the writer catches up in batches. Chat never waits for the database, not even while
//!   it is down; the price is that a crash loses what was still queued, and a full queue drops
//!   writes (counted and logged).
//! * `durability = "sync"`, write-ahead (approach C): the message is delivered, and the sender's
//!   request answered, only once its batch is committed. Whatever anybody has seen is stored;
//!   the price is a commit in every message's path, and a sender who waits while the store is
//!   down: at most `sync_timeout_ms` (5 s by default), after which the message is refused
//!   (`! could not store your message (the database is not answering), try again`), not stored
//!   and delivered to nobody. `docs/BENCHMARKS.md` measures both modes; `docs/RELIABILITY.md`
//!   says what each loses, and when.

use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{BoxError, Layer, Service};

use super::{Inner, LayerFuture, call_inner, take};
use crate::backends::Durability;
use crate::backends::{Background, Store, StoreError, Writer, WriterOptions};
use crate::core::{
    Action, ChatError, ChatMessage, HistoryQuery, Hub, Origin, Outcome, Page, Reply, Request,
    StoredRoom,
};

mod config;
pub use config::{PersistConfig, StoreKind};

/// A store opened from the pipeline's `persist` options (by the pipeline's wiring, which also
/// hands it to the cross-instance fan-out backends), with its writer's settings.
#[derive(Debug, Clone)]
pub struct OpenedStore {
    /// The store.
    pub store: Arc<dyn Store>,
    /// When a message counts as safe.
    pub durability: Durability,
    /// Its writer's queue, batch and write-ahead wait.
    pub writer: WriterOptions,
}

/// Builds [`Persist`] services.
#[derive(Debug, Clone)]
pub struct PersistLayer {
    backend: Option<Backend>,
}

/// A store, its writer and the durability mode, and the rooms whose seqs it abandons.
#[derive(Debug, Clone)]
struct Backend {
    store: Arc<dyn Store>,
    writer: Writer,
    durability: Durability,
    hub: Hub,
}

impl PersistLayer {
    /// A persist layer for the configured store (`None`: no store),
    /// over the rooms of `hub`, with its writer started on `background`.
    pub fn new(store: Option<&OpenedStore>, hub: &Hub, background: &Background) -> PersistLayer {
        let Some(opened) = store else {
            return PersistLayer { backend: None };
        };
        let writer = Writer::spawn(
            opened.store.clone(),
            opened.writer.clone(),
            hub.stats_handle(),
            background,
        );
        PersistLayer::with_store(opened.store.clone(), writer, opened.durability, hub)
    }

    /// The writer this layer queues to, if it has a store (for the queue-depth metric and the
    /// readiness check).
    pub fn writer(&self) -> Option<&Writer> {
        self.backend.as_ref().map(|backend| &backend.writer)
    }

    /// A persist layer over a store and writer made elsewhere (tests, benches).
    pub fn with_store(
        store: Arc<dyn Store>,
        writer: Writer,
        durability: Durability,
        hub: &Hub,
    ) -> PersistLayer {
        PersistLayer {
            backend: Some(Backend {
                store,
                writer,
                durability,
                hub: hub.clone(),
            }),
        }
    }
}

impl<S> Layer<S> for PersistLayer {
    type Service = Persist<S>;

    fn layer(&self, inner: S) -> Persist<S> {
        Persist {
            inner,
            backend: self.backend.clone(),
        }
    }
}

/// Stores messages; see the module docs.
#[derive(Debug, Clone)]
pub struct Persist<S> {
    inner: S,
    backend: Option<Backend>,
}

impl<S: Inner> Service<Request> for Persist<S> {
    type Response = Reply;
    type Error = BoxError;
    type Future = LayerFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> LayerFuture {
        let mut inner = take(&mut self.inner);
        let Some(backend) = self.backend.clone() else {
            return Box::pin(async move { call_inner(&mut inner, req).await });
        };
        Box::pin(async move {
            match &req.action {
                Action::Publish(msg) if !matches!(msg.origin, Origin::Remote(_)) => {
                    match backend.durability {
                        Durability::Async => {
                            // Queued, then delivered by the layers inside without a pause in
                            // between (no await point): the message is stored and delivered, or
                            // dropped from a full queue (counted) and still delivered.
                            backend.writer.enqueue(msg.clone());
                            call_inner(&mut inner, req).await
                        }
                        Durability::Sync => write_ahead(backend, msg.clone(), inner, req).await,
                    }
                }
                Action::History(query) => {
                    // The queue first: a row leaves it only once it is in the store.
                    let mut page = backend.writer.pending(&query.room, query.after, query.upto);
                    match read_messages(&*backend.store, query).await {
                        Ok(stored) => page.merge(stored),
                        Err(err) => {
                            tracing::warn!(room = %query.room, "history read from the store failed, answering from the write queue: {err}");
                        }
                    }
                    Ok(Reply::default().with(Outcome::Stored(page)))
                }
                Action::OpenRoom(open) => {
                    let open = open.clone();
                    let reply = call_inner(&mut inner, req).await?;
                    // The queue first, as for a history read: a row leaves it only once stored.
                    // A room evicted while its last messages were still queued reopens with them.
                    let queued = backend.writer.pending(&open.room, 0, u64::MAX);
                    let mut stored = backend
                        .store
                        .open_room(&open.room, open.window)
                        .await
                        .map_err(|e| {
                            ChatError::unavailable(format!(
                                "cannot load the history of {}, try again: {e}",
                                open.room
                            ))
                        })?;
                    stored.newest.merge(queued);
                    stored.newest.keep_newest(open.window);
                    open.answer(StoredRoom {
                        written_ahead: backend.durability == Durability::Sync,
                        ..stored
                    });
                    Ok(reply)
                }
                _ => call_inner(&mut inner, req).await,
            }
        })
    }
}

/// How many reads [`read_messages`] makes at most for one history read.
const MAX_READS: u32 = 4;

/// The store's rows of `query`'s span, reaching back until they hold `query.limit` messages.
///
/// A store's page is its newest `limit` rows, and a row may be a tombstone: a span whose newest
/// rows include tombstones holds fewer messages than were asked for, and a joiner would be shown
/// 9 of its last 10 messages. So while the page has fewer messages than the limit and the store
/// says it has older rows, the rows just below the page are read too (twice as many each time, at
/// most [`MAX_READS`] reads). If that is still not enough, the answer covers only what was read
/// (`HistoryQuery::answer` starts it at the oldest row), which is true, just shorter; a failed
/// later read is treated the same way.
async fn read_messages(store: &dyn Store, query: &HistoryQuery) -> Result<Page, StoreError> {
    let mut page = store.history(query).await?;
    let mut rows = query.limit;
    for _ in 1..MAX_READS {
        let lowest = match page.lowest() {
            Some(lowest) if page.more && page.messages.len() < query.limit => lowest,
            _ => break,
        };
        if lowest <= query.after + 1 {
            break;
        }
        rows = rows.saturating_mul(2);
        let older = HistoryQuery {
            upto: lowest - 1,
            limit: rows,
            ..query.clone()
        };
        match store.history(&older).await {
            Ok(older) => {
                page.more = false; // the older read says whether rows below it remain
                page.merge(older);
            }
            Err(err) => {
                tracing::warn!(room = %query.room, "history read from the store failed part way; answering with fewer messages: {err}");
                break;
            }
        }
    }
    Ok(page)
}

/// Stores `msg` and then passes `req` inward (to be delivered), or abandons its seq if it cannot
/// be stored.
///
/// Once the write starts, the message's fate is this layer's alone ([`ChatMessage::claim`]): the
/// write and what follows run in a task of their own, so that a request dropped meanwhile (its
/// client gone, a `timeout` layer firing) can leave neither a stored message undelivered here nor
/// an unstored one waited for. Its sender is answered if it is still there.
async fn write_ahead<S: Inner>(
    backend: Backend,
    msg: Arc<ChatMessage>,
    mut inner: S,
    req: Request,
) -> Result<Reply, BoxError> {
    msg.claim();
    let task = tokio::spawn(async move {
        match backend.writer.write(msg.clone()).await {
            Ok(()) => call_inner(&mut inner, req).await,
            Err(err) => {
                // Not stored, so delivered to nobody: the room stops waiting for its seq.
                if let Some(room) = backend.hub.rooms().get(&msg.room) {
                    crate::layers::abandon(&room, msg.seq, Some(&backend.writer));
                }
                Err(not_stored(err).into())
            }
        }
    });
    task.await?
}

/// What a write-ahead sender is told when its message could not be stored.
fn not_stored(err: StoreError) -> ChatError {
    match err {
        StoreError::Timeout(_) => ChatError::unavailable(
            "could not store your message (the database is not answering), try again",
        ),
        other => ChatError::unavailable(format!("message not sent: {other}")),
    }
}

#[cfg(test)]
mod tests;
