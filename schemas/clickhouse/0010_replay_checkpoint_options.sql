-- The options of a replay that decide its rows (event-time range, invalid-event mode,
-- archiving), as `since=...|until=...|invalid=...|archive=...`: a rerun with the same id
-- resumes only with the same options, so a generation never mixes buckets built two ways.
-- Empty for checkpoints written before this column existed (not checked).
ALTER TABLE replay_checkpoints ADD COLUMN IF NOT EXISTS options String DEFAULT '';
