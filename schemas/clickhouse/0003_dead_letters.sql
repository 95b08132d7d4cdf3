-- Messages that failed validation, keyed by where they were read from: a redelivered
-- message (same topic, partition, offset, line) replaces its earlier copy. `line` is the
-- position of the event inside a batch message (0 for a one-event message). `raw` holds the
-- original message bytes exactly (a ClickHouse String is a byte string; it may not be
-- valid UTF-8). Count with FINAL.
CREATE TABLE IF NOT EXISTS dead_letters
(
    topic       LowCardinality(String),
    `partition` Int32,
    `offset`    Int64,
    line        UInt32,
    key         String,
    reason      LowCardinality(String),
    detail      String,
    raw         String,
    case_id     String,
    received_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (topic, `partition`, `offset`, line);
