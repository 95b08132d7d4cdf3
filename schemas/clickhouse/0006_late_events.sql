-- Events that arrived more than the worker's grace period behind the newest event time
-- seen on their partition (streams/app/lateness.py). They were applied like any other
-- event (the per-case rows are always exact); this table reports them, because they may
-- change windows that readers already took as final. A redelivered report replaces itself.
CREATE TABLE IF NOT EXISTS late_events
(
    case_id          String,
    event_id         String,
    type             LowCardinality(String),
    occurred_at      DateTime64(3, 'UTC'),
    watermark_at     DateTime64(3, 'UTC'),
    lateness_seconds Float64,
    received_at      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (case_id, event_id);
