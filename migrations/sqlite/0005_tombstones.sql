-- chatd schema step 5 (SQLite): tombstones, and the reservation of seqs.
--
-- Tombstones: as in PostgreSQL's step 5, a seq that will never carry a message is a row with
-- `skipped = 1`, so the store can tell a settled hole from a message it has not been given yet.
--
-- `room_seq`: one instance numbers in memory, but it reserves its seqs here in blocks before
-- handing them out (src/core/sequencer.rs), so that a crash never makes it hand out a seq again:
-- after a restart numbering continues above the last reservation. (PostgreSQL got the same table
-- in step 2, where the instances of a cluster share it.)
ALTER TABLE messages ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0;

CREATE TABLE room_seq (
    room     TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL CHECK (last_seq > 0),
    owner    TEXT NULL                 -- the instance that made the last reservation
);
