//! The options of tower's middleware as pipeline layers (`timeout`, `concurrency_limit`,
//! `load_shed`), read in one call each (see `crate::config`).

use serde::Serialize;

use crate::config::Reader;

/// Options of `kind = "timeout"` (tower's `Timeout`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeoutConfig {
    /// How long a user's request may take in the layers below, in milliseconds.
    pub ms: u64,
}

/// Options of `kind = "concurrency_limit"` (tower's `ConcurrencyLimit`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConcurrencyLimitConfig {
    /// Most user requests in the layers below at once, over all sessions; the others wait (or,
    /// under a `load_shed` layer, are refused).
    pub max: usize,
}

/// Options of `kind = "load_shed"` (tower's `LoadShed`; none).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoadShedConfig {}

impl TimeoutConfig {
    /// Reads the options of a `kind = "timeout"` table.
    pub fn read(r: &mut Reader<'_, '_>) -> TimeoutConfig {
        // At least a millisecond; beyond 10 minutes it no longer protects anyone.
        let ms = r.int("ms", 1..=600_000, None);
        TimeoutConfig { ms }
    }
}

impl ConcurrencyLimitConfig {
    /// Reads the options of a `kind = "concurrency_limit"` table.
    pub fn read(r: &mut Reader<'_, '_>) -> ConcurrencyLimitConfig {
        // 0 would let no request through, ever.
        let max = r.int("max", 1..=1_000_000, None);
        ConcurrencyLimitConfig { max }
    }
}
