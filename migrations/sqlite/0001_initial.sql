-- chatd schema version 1 (SQLite). Applied once, in a transaction, by src/backends/migrate.rs.

CREATE TABLE rooms (
    name       TEXT PRIMARY KEY,           -- as chatd spells it: lower case, 1 to 32 of a-z 0-9 _ -
    created_ms INTEGER NOT NULL            -- when its first message was stored
);

-- One row per stored chat message. (room, seq) is the message's identity: the writer inserts
-- with ON CONFLICT DO NOTHING, so a batch retried after an error is stored exactly once.
-- The unique index on (room, seq) also serves both reads chatd makes:
--   "the last N of a room"       WHERE room = ? ORDER BY seq DESC LIMIT N  (index, backwards)
--   "after seq S in a room"      WHERE room = ? AND seq > S                (index range scan)
-- so no second index is needed.
CREATE TABLE messages (
    id    INTEGER PRIMARY KEY,             -- insertion order, for tools; chatd reads by (room, seq)
    room  TEXT NOT NULL REFERENCES rooms (name),
    seq   INTEGER NOT NULL CHECK (seq > 0),
    nick  TEXT NOT NULL,
    body  TEXT NOT NULL,
    ts_ms INTEGER NOT NULL,
    UNIQUE (room, seq)
);

-- Reserved for accounts and persistent memberships (later phases); chatd does not write them yet.
CREATE TABLE users (
    nick       TEXT PRIMARY KEY,
    created_ms INTEGER NOT NULL
);

CREATE TABLE room_members (
    room      TEXT NOT NULL REFERENCES rooms (name),
    nick      TEXT NOT NULL REFERENCES users (nick),
    joined_ms INTEGER NOT NULL,
    PRIMARY KEY (room, nick)
);
