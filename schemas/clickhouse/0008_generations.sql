-- Generations of the derived tables (case_facts, case_sla, case_sla_moved, case_cycles,
-- case_cycles_moved, late_events, sla_alerts), built by `civicpulse replay`
-- (docs/replay.md). One row per generation and state change: the row with the highest
-- `revision` wins (read with FINAL). `database` is where the generation's tables live now:
-- the live database while it is active, its replay database once retired (after a switch
-- the previous tables move there) or while it is running / failed.
CREATE TABLE IF NOT EXISTS generations
(
    generation    String,
    revision      UInt64,
    database      String,
    source        String,
    policies_hash String,
    status        LowCardinality(String),
    started_at    DateTime64(3, 'UTC'),
    finished_at   Nullable(DateTime64(3, 'UTC')),
    events        UInt64,
    cases         UInt64,
    dead_letters  UInt64,
    detail        String
)
ENGINE = ReplacingMergeTree(revision)
ORDER BY generation;

-- A replay's resumable progress, kept in its own replay database: the source it reads
-- (and a fingerprint of it), and how many case buckets are written. A rerun with the same
-- id skips those buckets. Highest revision wins.
CREATE TABLE IF NOT EXISTS replay_checkpoints
(
    generation   String,
    revision     UInt64,
    source       String,
    fingerprint  String,
    buckets      UInt32,
    buckets_done UInt32,
    events_done  UInt64,
    cases_done   UInt64,
    updated_at   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(revision)
ORDER BY generation;
