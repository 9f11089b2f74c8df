-- chatd schema step 3 (PostgreSQL only): the presence directory shared by several instances.
-- See src/backends/directory.rs for the heartbeat + TTL rules. Nothing else depends on these
-- tables, and they depend on no other step, so this file may be applied before or after step 2.
-- The rows are short-lived: each instance refreshes its own every ttl/3 and deletes them when it
-- stops; rows not refreshed within the TTL belong to a dead instance, are ignored by readers and
-- deleted by the next heartbeat of any instance.

-- Who holds which nick, across all instances. nick_key is the lowercased nick, so uniqueness is
-- case-insensitive exactly as inside one instance.
CREATE TABLE IF NOT EXISTS presence_nicks (
    nick_key TEXT PRIMARY KEY,
    nick     TEXT NOT NULL,                      -- as its owner spells it
    instance TEXT NOT NULL,                      -- the instance's name, for people reading this
    owner    TEXT NOT NULL,                      -- one run of one instance: name and a random tag
    session  BIGINT NOT NULL,                    -- the session id inside that run
    seen_at  TIMESTAMPTZ NOT NULL DEFAULT now()  -- the last heartbeat (the database's clock)
);
CREATE INDEX IF NOT EXISTS presence_nicks_owner ON presence_nicks (owner, session);
CREATE INDEX IF NOT EXISTS presence_nicks_seen_at ON presence_nicks (seen_at);

-- Who is in which room. A membership lives exactly as long as its nick's row: deleting the nick
-- (a quit, an expired instance) deletes its memberships, and a rename carries them along.
CREATE TABLE IF NOT EXISTS presence_members (
    room     TEXT NOT NULL,
    nick_key TEXT NOT NULL REFERENCES presence_nicks (nick_key)
                 ON DELETE CASCADE ON UPDATE CASCADE,
    PRIMARY KEY (room, nick_key)
);
CREATE INDEX IF NOT EXISTS presence_members_nick ON presence_members (nick_key);
