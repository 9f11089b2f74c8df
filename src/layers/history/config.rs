//! The history layer's options (`kind = "history"`), read in one call each (see
//! `crate::config`).

use serde::Serialize;

use crate::config::Reader;

/// Options of `kind = "history"`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryConfig {
    /// Messages kept per room in memory, and replayed to a joiner.
    pub capacity: usize,
}

impl HistoryConfig {
    /// Reads the options of a `kind = "history"` table.
    pub fn read(r: &mut Reader<'_, '_>) -> HistoryConfig {
        // A ring of 0 keeps nothing (remove the layer instead), and the ring is per room, so its
        // size multiplies.
        let capacity = r.int("capacity", 1..=10_000, 10);
        HistoryConfig { capacity }
    }
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Reader::defaults(HistoryConfig::read)
    }
}
