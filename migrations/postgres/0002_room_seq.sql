-- chatd schema version 2 (PostgreSQL): one sequence counter per room, shared by every instance.
--
-- Cross-instance fan-out (backend = "poll", phase 2) numbers each message with
--   INSERT INTO room_seq ... ON CONFLICT (room) DO UPDATE SET last_seq = GREATEST(last_seq, $floor) + 1
--   RETURNING last_seq
-- one atomic statement: the row lock makes two instances numbering at once get 7 and 8, never
-- 7 twice. `$floor` (what the instance has already delivered) keeps a room whose messages were
-- written before this table existed from numbering from 1 again. A room gets its row with its
-- first cross-instance message; a single instance (backend = "local") does not use the table.
CREATE TABLE room_seq (
    room     TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL CHECK (last_seq > 0)
);
