//! What the store benches share: the stores to compare, each set up fresh, and the throwaway
//! PostgreSQL of the test harness (`tests/it/support/postgres.rs`, included, not copied).

#![allow(dead_code)] // each bench uses its own subset

#[path = "../../tests/it/support/postgres.rs"]
pub mod postgres;

use std::sync::Arc;

use chatd::backends::Store;
use chatd::backends::postgres::PostgresStore;
use chatd::backends::sqlite::SqliteStore;
use chatd::core::ChatMessage;
use chatd::core::message::sample;

use postgres::TestPostgres;

/// A store under test and what keeps it alive (its temp dir or its server).
pub struct Bench {
    /// What the figures are labelled with: `sqlite` or `postgres`.
    pub name: &'static str,
    /// The store.
    pub store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<TestPostgres>,
}

/// A fresh SQLite file (full sync for write-ahead) in a temp dir.
pub async fn sqlite(full_sync: bool) -> Bench {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("bench.db"), full_sync)
        .await
        .expect("open SQLite");
    Bench {
        name: "sqlite",
        store: Arc::new(store),
        _dir: Some(dir),
        _pg: None,
    }
}

/// A fresh throwaway PostgreSQL, or `None` (with a printed note) when none can be started here.
pub async fn postgres() -> Option<Bench> {
    if postgres::server_bin_dir().is_none() {
        eprintln!(
            "note: no PostgreSQL server binaries (initdb) on PATH or in /usr/lib/postgresql/*/bin: \
             skipping the PostgreSQL figures"
        );
        return None;
    }
    // Blocking for a second or two here is harmless: nothing else runs yet.
    let pg = TestPostgres::start()?;
    let store = PostgresStore::connect(&pg.url(), 4)
        .await
        .expect("connect to the throwaway PostgreSQL");
    Some(Bench {
        name: "postgres",
        store: Arc::new(store),
        _dir: None,
        _pg: Some(pg),
    })
}

/// Both stores (PostgreSQL when available).
pub async fn stores(full_sync: bool) -> Vec<Bench> {
    let mut all = vec![sqlite(full_sync).await];
    all.extend(postgres().await);
    all
}

/// A typical chat line, numbered `seq` in `room`.
pub fn message(room: &str, seq: u64) -> Arc<ChatMessage> {
    sample(
        room,
        seq,
        "alice",
        "a typical chat line, about sixty characters long, give or take",
    )
}

/// The runtime the benches drive the stores on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}
