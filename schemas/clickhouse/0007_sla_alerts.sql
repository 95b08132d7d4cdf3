-- Every SLA alert the workers emitted (warnings per threshold, breaches), copied from the
-- alert topic, which stays the durable record. One row per alert id: the sink is
-- at-least-once and a copy written twice replaces itself. The operations board's alert
-- feed and "breaches today" read it; fired_at is when the threshold or deadline was
-- reached, emitted_at when the worker noticed.
CREATE TABLE IF NOT EXISTS sla_alerts
(
    alert_id     String,
    type         LowCardinality(String),
    case_id      String,
    target       LowCardinality(String),
    cycle        UInt16,
    threshold    Float32,
    fired_at     DateTime64(6, 'UTC'),
    due_at       Nullable(DateTime64(6, 'UTC')),
    emitted_at   DateTime64(6, 'UTC'),
    policy_id    LowCardinality(String),
    agency       LowCardinality(String),
    sub_unit     LowCardinality(String),
    district     LowCardinality(String),
    sub_district LowCardinality(String),
    category     LowCardinality(String),
    urgency      LowCardinality(String),
    channel      LowCardinality(String),
    worker       LowCardinality(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(fired_at)
ORDER BY (toDate(fired_at), agency, alert_id);
