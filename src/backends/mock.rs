//! A store in memory for unit tests of the code above the `Store` seam (the writer, the persist
//! layer, the sequencer): it records every batch, can be "down", refuses messages whose text is
//! `bad`, and can hold every write at a gate.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use super::{Appended, Row, Store, StoreError};
use crate::core::stats::Counter;
use crate::core::{ChatMessage, HistoryQuery, Page, RoomName, StoredRoom};

/// See the module docs.
#[derive(Debug, Default)]
pub struct Mock {
    /// The seqs of each batch written.
    pub batches: Mutex<Vec<Vec<u64>>>,
    /// Every message written.
    pub rows: Mutex<Vec<Arc<ChatMessage>>>,
    /// Every tombstone written.
    pub skipped: Mutex<Vec<(RoomName, u64)>>,
    /// Each room's reservation.
    pub reserved: Mutex<HashMap<RoomName, u64>>,
    /// Who made each room's last reservation.
    pub owners: Mutex<HashMap<RoomName, String>>,
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

    fn check(&self) -> Result<(), StoreError> {
        match self.down.load(Ordering::SeqCst) {
            true => Err(StoreError::Unavailable("mock is down".into())),
            false => Ok(()),
        }
    }

    /// What the slot `room`/`seq` holds: `Some(Some(msg))`, `Some(None)` for a tombstone.
    fn slot(&self, room: &RoomName, seq: u64) -> Option<Option<Arc<ChatMessage>>> {
        if let Some(msg) = self
            .rows
            .lock()
            .unwrap()
            .iter()
            .find(|m| &m.room == room && m.seq == seq)
        {
            return Some(Some(msg.clone()));
        }
        let skipped = self.skipped.lock().unwrap();
        skipped
            .iter()
            .any(|(r, s)| r == room && *s == seq)
            .then_some(None)
    }

    fn page(&self, room: &RoomName, after: u64, upto: u64, limit: usize) -> Page {
        let mut slots: Vec<(u64, Option<Arc<ChatMessage>>)> = self
            .rows
            .lock()
            .unwrap()
            .iter()
            .filter(|m| &m.room == room)
            .map(|m| (m.seq, Some(m.clone())))
            .chain(
                self.skipped
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(r, _)| r == room)
                    .map(|(_, s)| (*s, None)),
            )
            .filter(|(seq, _)| *seq > after && *seq <= upto)
            .collect();
        slots.sort_by_key(|(seq, _)| *seq);
        let skip = slots.len().saturating_sub(limit);
        let mut page = Page {
            more: slots.len() >= limit,
            ..Page::default()
        };
        for (seq, slot) in slots.split_off(skip) {
            match slot {
                Some(msg) => page.messages.push(msg),
                None => page.skipped.push(seq),
            }
        }
        page
    }
}

impl Store for Mock {
    fn append<'a>(&'a self, batch: &'a [Row]) -> BoxFuture<'a, Result<Appended, StoreError>> {
        Box::pin(async move {
            if let Some(gate) = &self.gate {
                let _permit = gate.acquire().await.unwrap();
            }
            self.attempts.inc();
            self.check()?;
            let mut appended = Appended::default();
            let mut seqs = Vec::new();
            for (i, row) in batch.iter().enumerate() {
                let existing = self.slot(row.room(), row.seq());
                match (row, existing) {
                    (Row::Message(m), _) if m.text == "bad" => {
                        appended.rejected.push((i, "bad row".into()));
                    }
                    (Row::Message(m), Some(Some(found))) if found.text == m.text => {}
                    (Row::Skipped { .. }, Some(None)) => {}
                    (_, Some(_)) => appended.conflicts.push(i),
                    (Row::Message(m), None) => {
                        seqs.push(m.seq);
                        self.rows.lock().unwrap().push(m.clone());
                        appended.written += 1;
                    }
                    (Row::Skipped { room, seq }, None) => {
                        self.skipped.lock().unwrap().push((room.clone(), *seq));
                        appended.written += 1;
                    }
                }
            }
            self.batches.lock().unwrap().push(seqs);
            Ok(appended)
        })
    }

    fn history<'a>(&'a self, query: &'a HistoryQuery) -> BoxFuture<'a, Result<Page, StoreError>> {
        let result = self
            .check()
            .map(|()| self.page(&query.room, query.after, query.upto, query.limit));
        Box::pin(std::future::ready(result))
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(std::future::ready(self.check()))
    }

    fn open_room<'a>(
        &'a self,
        room: &'a RoomName,
        window: usize,
    ) -> BoxFuture<'a, Result<StoredRoom, StoreError>> {
        let result = self.check().map(|()| StoredRoom {
            newest: self.page(room, 0, u64::MAX, window),
            numbered: self
                .reserved
                .lock()
                .unwrap()
                .get(room)
                .copied()
                .unwrap_or(0),
            written_ahead: false,
            reserved_by: self.owners.lock().unwrap().get(room).cloned(),
        });
        Box::pin(std::future::ready(result))
    }

    fn reserve<'a>(
        &'a self,
        room: &'a RoomName,
        after: u64,
        block: u64,
        owner: &'a str,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        let result = self.check().map(|()| {
            let _ = self
                .owners
                .lock()
                .unwrap()
                .insert(room.clone(), owner.to_string());
            let mut reserved = self.reserved.lock().unwrap();
            let ceiling = reserved.entry(room.clone()).or_default();
            *ceiling = (*ceiling).max(after) + block;
            *ceiling
        });
        Box::pin(std::future::ready(result))
    }

    fn release<'a>(
        &'a self,
        room: &'a RoomName,
        ceiling: u64,
        last: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let result = self.check().map(|()| {
            let mut reserved = self.reserved.lock().unwrap();
            if let Some(current) = reserved.get_mut(room)
                && *current == ceiling
                && last > 0
            {
                *current = last;
            }
        });
        Box::pin(std::future::ready(result))
    }

    fn settle<'a>(
        &'a self,
        room: &'a RoomName,
        from: u64,
        to: u64,
    ) -> BoxFuture<'a, Result<Page, StoreError>> {
        let result = self.check().map(|()| {
            for seq in from..=to {
                if self.slot(room, seq).is_none() {
                    self.skipped.lock().unwrap().push((room.clone(), seq));
                }
            }
            Page {
                more: false,
                ..self.page(room, from - 1, to, usize::MAX)
            }
        });
        Box::pin(std::future::ready(result))
    }
}
