//! The persist layer: where messages go to survive a restart.
//!
//! **Where it sits.** After `route` (every message it sees is numbered) and before `fanout`, so
//! that in write-ahead mode a message can be stored before anybody sees it.
//!
//! **What it teaches.** The seed's third lesson, speed against durability. With
//! `store = "none"` (phase 1) this layer keeps nothing and passes every request through: history
//! lives only in the rings and a restart forgets it. The stores (`sqlite`, `postgres`) plug in
//! behind a `Store` seam (the persistence work): `Publish` hands the message to the
//! store (queued for a batched write, or written before going on), `History` reads that the ring
//! could not answer are served from it, and messages from other instances are not stored twice.

use std::task::{Context, Poll};

use tower::{BoxError, Layer, Service};

use super::{Inner, LayerFuture, call_inner, take};
use crate::core::{Reply, Request};
use crate::pipeline::config::PersistConfig;

/// Builds [`Persist`] services.
#[derive(Debug, Clone)]
pub struct PersistLayer {}

impl PersistLayer {
    /// A persist layer for the configured store.
    pub fn new(config: &PersistConfig) -> PersistLayer {
        match config {
            PersistConfig::None {} => PersistLayer {},
        }
    }
}

impl<S> Layer<S> for PersistLayer {
    type Service = Persist<S>;

    fn layer(&self, inner: S) -> Persist<S> {
        Persist { inner }
    }
}

/// Stores messages; see the module docs.
#[derive(Debug, Clone)]
pub struct Persist<S> {
    inner: S,
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
        Box::pin(async move { call_inner(&mut inner, req).await })
    }
}
