-- chatd schema step 7 (PostgreSQL only): presence events carry a detail.
--
-- Step 4's presence events said who joined, left, quit or was renamed. Rooms now have rules
-- (src/core/channel.rs), and the changes to them travel between instances as presence events
-- too: a kick (`new_nick` is the operator), a topic, a mode change. Their text, and the reason
-- of a leave or a quit, go in `detail` (src/backends/presence_codec.rs says which is which).
-- It depends on step 4 only, and nothing depends on it.
ALTER TABLE presence_events ADD COLUMN IF NOT EXISTS detail TEXT NULL;
