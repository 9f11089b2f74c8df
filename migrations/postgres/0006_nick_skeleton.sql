-- chatd schema step 6 (PostgreSQL only): nicks are unique by their skeleton, not their lowercase.
-- See `Nick::key` in src/core/names.rs: case and ASCII look-alikes are folded away, so that
-- `aIice` (capital i) or `a1ice` cannot be taken beside `alice`, on any instance. The shared
-- directory of step 3 keys its rows by that key (`presence_nicks.nick_key`); this step rewrites
-- the keys of the rows already there, which before it were the lowercase nick. Nothing else
-- depends on it; it needs the tables of step 3 only.

-- The folding, in SQL: the same as `Nick::key` (tests/it/cluster_presence.rs compares the two).
-- Lowercase first; then 0 -> o and 1, i -> l; then the pairs rn -> m and vv -> w, left to right.
CREATE OR REPLACE FUNCTION chatd_nick_key(nick TEXT) RETURNS TEXT
    LANGUAGE SQL IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT replace(replace(translate(lower(nick), '01i', 'oll'), 'rn', 'm'), 'vv', 'w') $$;

-- Two live nicks that are look-alikes of each other (held before this step) cannot both keep
-- their row under one key: the one seen last keeps it, the other's row goes (with its memberships,
-- by the cascade). The holder of the deleted row keeps chatting; its instance's heartbeat tries to
-- write the row again and logs that the nick is held elsewhere.
DELETE FROM presence_nicks a
    USING presence_nicks b
    WHERE chatd_nick_key(a.nick) = chatd_nick_key(b.nick)
      AND a.nick_key <> b.nick_key
      AND (a.seen_at, a.nick_key) < (b.seen_at, b.nick_key);

-- Memberships follow their nick's new key (ON UPDATE CASCADE).
UPDATE presence_nicks SET nick_key = chatd_nick_key(nick) WHERE nick_key <> chatd_nick_key(nick);
