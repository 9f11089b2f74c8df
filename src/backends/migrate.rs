//! Schema migrations: numbered SQL files from `migrations/`, compiled in, applied at start.
//!
//! **Why hand-rolled.** A runner such as `refinery` would do this job, but the whole idea fits in
//! this file and is worth seeing: a table (`chatd_schema`) records which numbered files a
//! database has applied; at start-up chatd reads the highest number, applies the newer files in
//! order, each in a transaction together with its row in `chatd_schema`, and refuses a database
//! whose number it does not know. The two stores share this plan ([`pending`]); each runs it with
//! its own driver (`sqlite.rs` in a transaction that takes SQLite's write lock, `postgres.rs`
//! under an advisory lock, so two chatd starting at once do not both migrate).

use super::StoreError;

/// One numbered schema change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Its number: 1, 2, 3, ... in the order they apply.
    pub version: i64,
    /// A short name, recorded with the number.
    pub name: &'static str,
    /// The SQL, run as one batch.
    pub sql: &'static str,
}

/// The migrations of the SQLite store.
pub const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../../migrations/sqlite/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "room_seq",
        sql: include_str!("../../migrations/sqlite/0002_room_seq.sql"),
    },
];

/// The migrations of the PostgreSQL store.
pub const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "room_seq",
        sql: include_str!("../../migrations/postgres/0002_room_seq.sql"),
    },
];

/// The table that records applied migrations; the same SQL works in both dialects.
pub const CREATE_SCHEMA_TABLE: &str = "CREATE TABLE IF NOT EXISTS chatd_schema (
    version       BIGINT PRIMARY KEY,
    name          TEXT NOT NULL,
    applied_at_ms BIGINT NOT NULL
)";

/// The highest version applied (0 for an empty database).
pub const CURRENT_VERSION: &str = "SELECT COALESCE(MAX(version), 0) FROM chatd_schema";

/// The migrations a database at `current` still needs, in order.
///
/// # Errors
/// [`StoreError::SchemaTooNew`] when `current` is beyond every migration in `known`.
pub fn pending(
    known: &'static [Migration],
    current: i64,
) -> Result<&'static [Migration], StoreError> {
    let newest = known.last().map_or(0, |m| m.version);
    if current > newest {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known: newest,
        });
    }
    let first = known.partition_point(|m| m.version <= current);
    Ok(&known[first..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_are_numbered_one_by_one_and_in_step() {
        for list in [SQLITE, POSTGRES] {
            for (i, m) in list.iter().enumerate() {
                assert_eq!(m.version, i as i64 + 1, "{}", m.name);
            }
        }
        let names = |list: &[Migration]| list.iter().map(|m| m.name).collect::<Vec<_>>();
        assert_eq!(
            names(SQLITE),
            names(POSTGRES),
            "both stores have the same schema steps"
        );
    }

    #[test]
    fn pending_is_what_is_newer_and_a_newer_database_is_refused() {
        assert_eq!(pending(SQLITE, 0).unwrap().len(), SQLITE.len());
        assert!(pending(SQLITE, SQLITE.len() as i64).unwrap().is_empty());
        let err = pending(SQLITE, 99).unwrap_err();
        assert_eq!(
            err,
            StoreError::SchemaTooNew {
                found: 99,
                known: SQLITE.len() as i64
            }
        );
        assert!(err.to_string().contains("version 99"), "{err}");
    }
}
