-- One row per case: the facts derived by streams.core from the case's events
-- (columns = streams.core.facts.CaseFacts, in order, then updated_at).
-- ReplacingMergeTree(version) on case_id: the row with the highest version (number of
-- distinct events) wins, whatever order the rows were written in. Read with FINAL
-- (or argMax(column, version) GROUP BY case_id).
CREATE TABLE IF NOT EXISTS case_facts
(
    case_id                 String,
    version                 UInt32,
    status                  LowCardinality(String),
    opened_at               Nullable(DateTime64(3, 'UTC')),
    channel                 LowCardinality(String),
    category                LowCardinality(String),
    urgency                 LowCardinality(String),
    district                LowCardinality(String),
    sub_district            LowCardinality(String),
    agency                  LowCardinality(String),
    sub_unit                LowCardinality(String),
    first_dispatched_at     Nullable(DateTime64(3, 'UTC')),
    signed_for_at           Nullable(DateTime64(3, 'UTC')),
    first_contact_at        Nullable(DateTime64(3, 'UTC')),
    first_resolved_at       Nullable(DateTime64(3, 'UTC')),
    resolved_at             Nullable(DateTime64(3, 'UTC')),
    closed_at               Nullable(DateTime64(3, 'UTC')),
    closure_reason          LowCardinality(String),
    transfers               UInt32,
    returns                 UInt32,
    ping_pongs              UInt32,
    pauses                  UInt32,
    reopens                 UInt32,
    callback_reached        Bool,
    citizen_confirms_solved Nullable(Bool),
    satisfaction            LowCardinality(String),
    last_event_at           DateTime64(3, 'UTC'),
    updated_at              DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
ORDER BY case_id;
