-- chatd schema step 4 (PostgreSQL only): presence events (joins, leaves, quits, renames) carried
-- between instances by the polling fan-out backend (backend = "poll", src/backends/poll/).
-- Nothing else depends on this table, and it depends on no other step, so this file may be
-- applied before or after steps 2 and 3.
--
-- Each instance inserts a row for every presence change of its own users; the others read, for the
-- rooms they have open, the rows with `id > the last one they read` that another instance wrote,
-- and show them as notices. Presence is best effort (a notice, not a message; `/users` is
-- answered by the presence directory of step 3), so a row committed out of id order may be
-- missed: see the module docs of src/backends/poll/ for why that is acceptable here and not for
-- messages. The rows are short-lived: the instances delete those older than a few minutes.
CREATE TABLE IF NOT EXISTS presence_events (
    id         BIGSERIAL PRIMARY KEY,
    room       TEXT NOT NULL,
    nick       TEXT NOT NULL,                      -- the member's nick (the old one for a rename)
    kind       TEXT NOT NULL,                      -- joined, left, quit or renamed
    new_nick   TEXT NULL,                          -- the new nick of a rename
    instance   TEXT NOT NULL,                      -- the instance whose user it was
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()  -- the database's clock, for the clean-up
);
-- "the events of these rooms after id N": a range scan per room.
CREATE INDEX IF NOT EXISTS presence_events_room_id ON presence_events (room, id);
