//! The persist layer's options (`kind = "persist"`): the `store` key picks the store, and each
//! store its own options, read in one call each (see `crate::config`).

use serde::Serialize;
use strum::{EnumDiscriminants, EnumString, VariantNames};

use crate::backends::{Durability, WriterOptions, masked};
use crate::config::Reader;

/// How long a write-ahead sender waits for the store unless told otherwise, in milliseconds.
const SYNC_TIMEOUT_MS: u64 = 5000;

/// Options of `kind = "persist"`: the `store` key selects the store.
#[derive(Debug, Clone, PartialEq, Serialize, EnumDiscriminants)]
#[serde(tag = "store", rename_all = "snake_case")]
#[strum_discriminants(name(StoreKind), derive(EnumString, VariantNames))]
#[strum_discriminants(strum(serialize_all = "snake_case"))]
pub enum PersistConfig {
    /// Keep nothing: history lives only in the ring and is gone after a restart.
    None {},
    /// An embedded SQLite file: durable history with nothing to install.
    Sqlite {
        /// The database file; it and its directory are created on first start.
        path: String,
        /// When a message counts as stored; see [`Durability`].
        durability: Durability,
        /// Messages that may wait for the writer before new ones are dropped (async) or wait
        /// (sync).
        queue: usize,
        /// Most messages written in one transaction.
        batch: usize,
        /// Write-ahead only: how long a sender waits for its message to be stored before it
        /// is refused ("could not store your message ..., try again") and not delivered.
        sync_timeout_ms: u64,
    },
    /// A PostgreSQL server, through a pool of connections.
    Postgres {
        /// A connection string, `postgres://user:password@host:port/database` or
        /// `host=... dbname=...`. Shown by `--check` with its password masked.
        #[serde(serialize_with = "masked")]
        url: String,
        /// Most connections the pool opens.
        pool_size: u32,
        /// When a message counts as stored; see [`Durability`].
        durability: Durability,
        /// Messages that may wait for the writer; see `Sqlite::queue`.
        queue: usize,
        /// Most messages written in one statement.
        batch: usize,
        /// Write-ahead only: see `Sqlite::sync_timeout_ms`.
        sync_timeout_ms: u64,
    },
}

impl PersistConfig {
    /// Reads the options of a `kind = "persist"` table; `None` when its `store` is missing or
    /// unknown.
    pub fn read(r: &mut Reader<'_, '_>) -> Option<PersistConfig> {
        Some(match r.tag::<StoreKind>("store", "store")? {
            StoreKind::None => PersistConfig::None {},
            StoreKind::Sqlite => {
                let path = r.string("path", None);
                r.check(&["path"], !path.trim().is_empty(), || {
                    "option `path` is empty; name the database file, e.g. \"data/chatd.db\"".into()
                });
                let (durability, queue, batch, sync_timeout_ms) = writer_options(r);
                PersistConfig::Sqlite {
                    path,
                    durability,
                    queue,
                    batch,
                    sync_timeout_ms,
                }
            }
            StoreKind::Postgres => {
                let url = r.string("url", None);
                let parsed = url.parse::<tokio_postgres::Config>().map(|_| ());
                r.check(&["url"], parsed.is_ok(), || {
                    let err = parsed.err().map(|e| e.to_string()).unwrap_or_default();
                    format!("option `url` is not a PostgreSQL connection string: {err}")
                });
                // At least one connection; more than 64 from one chatd is a mistake.
                let pool_size = r.int("pool_size", 1..=64, 4);
                let (durability, queue, batch, sync_timeout_ms) = writer_options(r);
                PersistConfig::Postgres {
                    url,
                    pool_size,
                    durability,
                    queue,
                    batch,
                    sync_timeout_ms,
                }
            }
        })
    }

    /// When a message counts as stored, and the writer's queue, batch and write-ahead wait;
    /// `None` for `store = "none"`, which has no writer.
    pub fn writer(&self) -> Option<(Durability, WriterOptions)> {
        match self {
            PersistConfig::None {} => None,
            PersistConfig::Sqlite {
                durability,
                queue,
                batch,
                sync_timeout_ms,
                ..
            }
            | PersistConfig::Postgres {
                durability,
                queue,
                batch,
                sync_timeout_ms,
                ..
            } => Some((
                *durability,
                WriterOptions {
                    sync_timeout: std::time::Duration::from_millis(*sync_timeout_ms),
                    ..WriterOptions::new(*queue, *batch)
                },
            )),
        }
    }
}

/// The options both stores' writers take: durability, queue, batch and sync timeout.
fn writer_options(r: &mut Reader<'_, '_>) -> (Durability, usize, usize, u64) {
    (
        r.choice("durability", Durability::Async),
        // 0 would drop (or hold up) every message; beyond a million queued messages the memory
        // a stuck store pins is no longer small.
        r.int("queue", 1..=1_000_000, 10_000),
        // PostgreSQL binds one array per column, so a batch is cheap to grow, but a huge
        // transaction holds its locks (and SQLite's single writer) for long.
        r.int("batch", 1..=10_000, 500),
        // Below 100 ms an ordinary commit under load would be refused; beyond 15 s, plus the
        // writer's 10 s grace for an attempt under way and the time a request spends before and
        // after the store, an HTTP sender could hit the adapter's 30 s request timeout first.
        r.int("sync_timeout_ms", 100..=15_000, SYNC_TIMEOUT_MS),
    )
}
