-- chatd schema step 5 (PostgreSQL): tombstones.
--
-- A seq that will never carry a message (its sender's request failed after it was numbered, or
-- the instances agreed to give it up) is stored as a row with `skipped = true`, an empty nick and
-- body. The row takes the (room, seq) slot, so the unique index decides, once and for all, whether
-- a seq carries a message or nothing: an instance giving up on a missing seq inserts a tombstone
-- with ON CONFLICT DO NOTHING, and a late write of the real message then finds the slot taken and
-- its sender is refused (see src/backends/gaps.rs). History reads leave tombstones out; opening a
-- room reads them to know which holes are settled.
ALTER TABLE messages ADD COLUMN skipped BOOLEAN NOT NULL DEFAULT false;

-- Who made a room's last reservation of seqs (an instance numbering in memory reserves them in
-- blocks, src/backends/sequencer.rs): after a crash, that instance knows the jump in its own
-- numbering may hide messages it showed and lost, and tells its readers; another instance does
-- not mistake it for one of its own. NULL for a counter advanced by the cluster sequencers.
ALTER TABLE room_seq ADD COLUMN owner TEXT NULL;
