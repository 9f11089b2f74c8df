//! A store in memory for unit tests of the code above the `Store` seam (the writer, the persist
//! layer): it records every batch, can be "down", refuses messages whose text is `bad`, and can
//! hold every write at a gate.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use super::{Appended, Store, StoreError};
use crate::core::stats::Counter;
use crate::core::{ChatMessage, HistoryQuery, RoomName};

/// See the module docs.
#[derive(Debug, Default)]
pub struct Mock {
    /// The seqs of each batch written.
    pub batches: Mutex<Vec<Vec<u64>>>,
    /// Every message written.
    pub rows: Mutex<Vec<Arc<ChatMessage>>>,
    /// While set, every call fails as unavailable.
    pub down: AtomicBool,
    /// `append` calls, failed ones included.
    pub attempts: Counter,
    /// When set, each `append` first waits for a permit.
    pub gate: Option<Arc<tokio::sync::Semaphore>>,
}

impl Mock {
    /// The seqs written, in order.
    pub fn stored(&self) -> Vec<u64> {
        let batches = self.batches.lock().unwrap();
        batches.iter().flatten().copied().collect()
    }

    /// Makes the store fail (true) or work (false).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

impl Store for Mock {
    fn append<'a>(
        &'a self,
        batch: &'a [Arc<ChatMessage>],
    ) -> BoxFuture<'a, Result<Appended, StoreError>> {
        Box::pin(async move {
            if let Some(gate) = &self.gate {
                let _permit = gate.acquire().await.unwrap();
            }
            self.attempts.inc();
            if self.down.load(Ordering::SeqCst) {
                return Err(down());
            }
            let mut appended = Appended::default();
            let mut seqs = Vec::new();
            for (i, m) in batch.iter().enumerate() {
                if m.text == "bad" {
                    appended.rejected.push((i, "bad row".into()));
                } else {
                    seqs.push(m.seq);
                    self.rows.lock().unwrap().push(m.clone());
                    appended.written += 1;
                }
            }
            self.batches.lock().unwrap().push(seqs);
            Ok(appended)
        })
    }

    fn history<'a>(
        &'a self,
        query: &'a HistoryQuery,
    ) -> BoxFuture<'a, Result<Vec<Arc<ChatMessage>>, StoreError>> {
        if self.down.load(Ordering::SeqCst) {
            return Box::pin(std::future::ready(Err(down())));
        }
        let rows = self.rows.lock().unwrap();
        let mut found: Vec<Arc<ChatMessage>> = rows
            .iter()
            .filter(|m| m.room == query.room && m.seq > query.after && m.seq <= query.upto)
            .cloned()
            .collect();
        found.sort_by_key(|m| m.seq);
        let skip = found.len().saturating_sub(query.limit);
        Box::pin(std::future::ready(Ok(found.split_off(skip))))
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        let result = match self.down.load(Ordering::SeqCst) {
            true => Err(down()),
            false => Ok(()),
        };
        Box::pin(std::future::ready(result))
    }

    fn max_seq<'a>(&'a self, room: &'a RoomName) -> BoxFuture<'a, Result<u64, StoreError>> {
        if self.down.load(Ordering::SeqCst) {
            return Box::pin(std::future::ready(Err(down())));
        }
        let rows = self.rows.lock().unwrap();
        let max = rows.iter().filter(|m| &m.room == room).map(|m| m.seq).max();
        Box::pin(std::future::ready(Ok(max.unwrap_or(0))))
    }
}

fn down() -> StoreError {
    StoreError::Unavailable("mock is down".into())
}
