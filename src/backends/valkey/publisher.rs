//! The publisher task: sends what the instance queued for the other instances, in order, in
//! pipelined batches, so that a sender's request never waits for Valkey.
//!
//! A Valkey that is slow or paused holds this task, not the chat: the queue in front of it fills,
//! and beyond it publishes are dropped and counted (`bus_failures`). That loses nothing: every
//! message is in PostgreSQL, and the other instances' polls read what pub/sub did not bring them.
//! A failed batch marks the bus degraded until a batch succeeds again.

use std::sync::Arc;

use deadpool_redis::redis;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Shared, timeout};
use crate::core::Stats;

/// Most publishes sent in one pipelined round trip.
const BATCH: usize = 256;

/// One publish: a channel and its payload.
#[derive(Debug)]
pub(super) struct Outgoing {
    pub(super) channel: String,
    pub(super) payload: String,
}

/// Runs until `stop` is cancelled; see the module docs.
pub(super) async fn run(
    shared: Arc<Shared>,
    mut outbox: mpsc::Receiver<Outgoing>,
    stats: Arc<Stats>,
    stop: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            () = stop.cancelled() => return,
            next = outbox.recv() => match next {
                Some(first) => first,
                None => return,
            },
        };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match outbox.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let outcome = send(&shared, &batch).await;
        if let Err(why) = &outcome {
            stats
                .bus_failures
                .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                publishes = batch.len(),
                "cannot publish to Valkey: {why}; the other instances will read these from PostgreSQL"
            );
        }
        shared.published(outcome);
    }
}

/// Sends `batch` in one pipeline.
async fn send(shared: &Shared, batch: &[Outgoing]) -> Result<(), String> {
    let mut conn = timeout(shared.pool.get())
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let mut pipe = redis::pipe();
    for outgoing in batch {
        pipe.cmd("PUBLISH")
            .arg(&outgoing.channel)
            .arg(&outgoing.payload)
            .ignore();
    }
    timeout(pipe.query_async::<()>(&mut conn))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}
