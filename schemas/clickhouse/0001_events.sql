-- Raw archive of every valid event, as the worker received it.
-- ReplacingMergeTree on (case_id, event_id): a redelivered event (same event_id, so the
-- same case_id and occurred_at, hence the same partition) replaces its earlier copy when
-- parts merge. Until then both copies may be visible: count with FINAL (or uniqExact).
CREATE TABLE IF NOT EXISTS events
(
    event_id        String,
    case_id         String,
    type            LowCardinality(String),
    occurred_at     DateTime64(3, 'UTC'),
    source          LowCardinality(String),
    schema_version  UInt8,
    event_json      String CODEC(ZSTD(3)),
    ingested_at     DateTime64(3, 'UTC'),
    kafka_partition Int32,
    kafka_offset    Int64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (case_id, event_id);
