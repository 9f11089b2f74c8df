//! The fan-out layer's options (`kind = "fanout"`): the `backend` key picks how messages reach
//! members, and each backend its own options, read in one call each (see `crate::config`).

use serde::Serialize;
use strum::{EnumDiscriminants, EnumString, VariantNames};

use crate::backends::{mask_password, masked};
use crate::config::Reader;

/// Options of `kind = "fanout"`: the `backend` key selects how messages reach members.
#[derive(Debug, Clone, PartialEq, Serialize, EnumDiscriminants)]
#[serde(tag = "backend", rename_all = "snake_case")]
#[strum_discriminants(name(Backend), derive(EnumString, VariantNames))]
#[strum_discriminants(strum(serialize_all = "snake_case"))]
pub enum FanoutConfig {
    /// Deliver to the members connected to this process only.
    Local {},
    /// Share rooms with other instances through PostgreSQL: each instance reads what the others
    /// stored every `interval_ms` (phase 2). Needs `persist` with `store = "postgres"`.
    Poll {
        /// How often the database is asked for new messages, in milliseconds.
        interval_ms: u64,
        /// How long a missing seq is waited for before it is settled with the other instances
        /// (see `backends::gaps`), in milliseconds.
        gap_wait_ms: u64,
    },
    /// Share rooms with other instances through Valkey (or Redis) pub/sub: one channel per room,
    /// with the PostgreSQL store polled underneath as a safety net (and as the way between
    /// instances while Valkey is down). Seqs come from PostgreSQL's counter rows.
    Valkey {
        /// The server, `redis://host:port` (or `rediss://` for TLS, `redis://:password@host`).
        /// Shown by `--check` with its password masked.
        #[serde(serialize_with = "masked")]
        url: String,
        /// Most pooled connections (for PUBLISH); the subscriber has its own.
        pool_size: usize,
        /// How often the store is read for what pub/sub did not bring, and how long a missing seq
        /// is waited for before it is settled with the other instances.
        gap_wait_ms: u64,
    },
}

impl FanoutConfig {
    /// Reads the options of a `kind = "fanout"` table; `None` when its `backend` is missing or
    /// unknown.
    pub fn read(r: &mut Reader<'_, '_>) -> Option<FanoutConfig> {
        Some(match r.tag::<Backend>("backend", "backend")? {
            Backend::Local => FanoutConfig::Local {},
            Backend::Poll => FanoutConfig::Poll {
                // Below 10 ms the instances hammer the database for nothing; above a minute
                // nobody would call it chat.
                interval_ms: r.int("interval_ms", 10..=60_000, 100),
                // A write-behind store commits within its batch delay, so a missing seq is worth
                // waiting for at least 100 ms; more than 10 minutes holds a room up for nothing.
                gap_wait_ms: r.int("gap_wait_ms", 100..=600_000, 2000),
            },
            Backend::Valkey => {
                let url = r.string("url", None);
                // Checked the way the client will read it.
                let parsed = deadpool_redis::redis::IntoConnectionInfo::into_connection_info(&*url);
                r.check(&["url"], parsed.is_ok(), || {
                    let err = parsed.err().map(|e| e.to_string()).unwrap_or_default();
                    let url = mask_password(&url);
                    format!("option `url` = {url:?} is not a Valkey url ({err}); write `redis://host:port`")
                });
                FanoutConfig::Valkey {
                    url,
                    // At least one connection; more than 64 from one chatd is a mistake.
                    pool_size: r.int("pool_size", 1..=64, 8),
                    // Below 10 ms an ordinary reordering would send every room to the store;
                    // beyond a minute a lost message holds up its room for too long.
                    gap_wait_ms: r.int("gap_wait_ms", 10..=60_000, 500),
                }
            }
        })
    }

    /// Whether this backend shares rooms with other instances (and so needs a shared store).
    pub fn is_cross_instance(&self) -> bool {
        !matches!(self, FanoutConfig::Local {})
    }
}
