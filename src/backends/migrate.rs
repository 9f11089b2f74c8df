//! Schema migrations: numbered SQL files from `migrations/`, compiled in, applied at start.
//!
//! **Why hand-rolled.** A runner such as `refinery` would do this job, but the whole idea fits in
//! this file and is worth seeing: a table (`chatd_schema`) records which numbered files a
//! database has applied; at start-up chatd reads those numbers, applies the files it has that are
//! not recorded yet, in order, each in a transaction together with its row in `chatd_schema`, and
//! refuses a database whose highest number is beyond its own newest file.
//!
//! **Why by set, not by "everything above the highest".** Features are developed on branches in
//! parallel, each adding a numbered file (say 0002 on one branch and 0003 on another). Comparing
//! against the set of applied numbers means a database that applied 0003 first still gets 0002
//! once both branches are merged, instead of silently skipping it. The numbers still give the
//! order for a fresh database; files that may apply in either order must not depend on each other. The two stores share this plan ([`pending`]); each runs it with
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
    Migration {
        version: 5,
        name: "tombstones",
        sql: include_str!("../../migrations/sqlite/0005_tombstones.sql"),
    },
];

/// The migrations of the PostgreSQL store: SQLite's steps, and steps of its own for what only a
/// shared server can do (the presence directory of several instances, and the presence events the
/// `poll` backend carries between them).
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
    Migration {
        version: 3,
        name: "presence",
        sql: include_str!("../../migrations/postgres/0003_presence.sql"),
    },
    Migration {
        version: 4,
        name: "presence_events",
        sql: include_str!("../../migrations/postgres/0004_presence_events.sql"),
    },
    Migration {
        version: 5,
        name: "tombstones",
        sql: include_str!("../../migrations/postgres/0005_tombstones.sql"),
    },
    Migration {
        version: 6,
        name: "nick_skeleton",
        sql: include_str!("../../migrations/postgres/0006_nick_skeleton.sql"),
    },
    Migration {
        version: 7,
        name: "presence_detail",
        sql: include_str!("../../migrations/postgres/0007_presence_detail.sql"),
    },
];

/// The table that records applied migrations; the same SQL works in both dialects.
pub const CREATE_SCHEMA_TABLE: &str = "CREATE TABLE IF NOT EXISTS chatd_schema (
    version       BIGINT PRIMARY KEY,
    name          TEXT NOT NULL,
    applied_at_ms BIGINT NOT NULL
)";

/// The versions applied so far (none for an empty database).
pub const APPLIED_VERSIONS: &str = "SELECT version FROM chatd_schema ORDER BY version";

/// The migrations of `known` that a database which has applied `applied` still needs, in order.
///
/// # Errors
/// [`StoreError::SchemaTooNew`] when a version in `applied` is beyond every migration in `known`.
pub fn pending(
    known: &'static [Migration],
    applied: &[i64],
) -> Result<Vec<&'static Migration>, StoreError> {
    let newest = known.last().map_or(0, |m| m.version);
    if let Some(&found) = applied.iter().max()
        && found > newest
    {
        return Err(StoreError::SchemaTooNew {
            found,
            known: newest,
        });
    }
    Ok(known
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_are_in_order_and_sqlite_steps_are_postgres_steps() {
        for list in [SQLITE, POSTGRES] {
            assert!(list.first().is_some_and(|m| m.version == 1));
            for pair in list.windows(2) {
                assert!(pair[0].version < pair[1].version, "{}", pair[1].name);
            }
        }
        for m in SQLITE {
            assert!(
                POSTGRES
                    .iter()
                    .any(|p| p.version == m.version && p.name == m.name),
                "SQLite's step {} ({}) is a PostgreSQL step too",
                m.version,
                m.name
            );
        }
    }

    #[test]
    fn a_step_numbered_below_an_applied_one_is_still_applied() {
        // A database migrated by a build that had step 3 but not step 2 gets step 2 later.
        let versions = |list: Vec<&Migration>| list.iter().map(|m| m.version).collect::<Vec<_>>();
        assert_eq!(
            versions(pending(POSTGRES, &[]).unwrap()),
            [1, 2, 3, 4, 5, 6, 7]
        );
        assert_eq!(
            versions(pending(POSTGRES, &[1]).unwrap()),
            [2, 3, 4, 5, 6, 7]
        );
        assert_eq!(
            versions(pending(POSTGRES, &[1, 3]).unwrap()),
            [2, 4, 5, 6, 7]
        );
        assert_eq!(
            versions(pending(POSTGRES, &[1, 2, 3, 5, 6, 7]).unwrap()),
            [4]
        );
        assert!(
            pending(POSTGRES, &[1, 2, 3, 4, 5, 6, 7])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn pending_is_what_is_newer_and_a_newer_database_is_refused() {
        assert_eq!(pending(SQLITE, &[]).unwrap().len(), SQLITE.len());
        assert_eq!(pending(SQLITE, &[1]).unwrap().len(), SQLITE.len() - 1);
        assert!(pending(SQLITE, &[1, 2, 5]).unwrap().is_empty());
        let err = pending(SQLITE, &[1, 2, 99]).unwrap_err();
        assert_eq!(
            err,
            StoreError::SchemaTooNew {
                found: 99,
                known: 5
            }
        );
        assert!(err.to_string().contains("version 99"), "{err}");
    }
}
