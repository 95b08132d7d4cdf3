-- One row per resolution cycle of a case (columns = streams.core.sla.rows.CycleRow, in
-- order; then intake_date, computed): cycle 0 from intake, cycle k >= 1 from the k-th
-- accepted reopen. Rewritten with the case's row; ReplacingMergeTree(version), version =
-- the case's number of distinct events. Same layout and same rule for cases whose intake
-- moved as case_sla (see 0004_case_sla.sql): those rows are also kept in
-- case_cycles_moved, keyed by (case_id, cycle). Read with FINAL.
CREATE TABLE IF NOT EXISTS case_cycles
(
    case_id                 String,
    cycle                   UInt32,
    version                 UInt32,
    opened_at               DateTime64(6, 'UTC'),
    channel                 LowCardinality(String),
    category                LowCardinality(String),
    urgency                 LowCardinality(String),
    district                LowCardinality(String),
    sub_district            LowCardinality(String),
    agency                  LowCardinality(String),
    sub_unit                LowCardinality(String),
    policy_id               LowCardinality(String),
    started_at              DateTime64(6, 'UTC'),
    started_by              LowCardinality(String),
    allowed_seconds         Float64,
    extension_seconds       UInt32,
    late_extensions         UInt32,
    due_at                  Nullable(DateTime64(6, 'UTC')),
    resolved_at             Nullable(DateTime64(6, 'UTC')),
    ended_at                Nullable(DateTime64(6, 'UTC')),
    ended_by                LowCardinality(String),
    closure_reason          LowCardinality(String),
    seconds                 Nullable(Float64),
    business_seconds        Nullable(Float64),
    paused_seconds          Nullable(Float64),
    paused_business_seconds Nullable(Float64),
    pauses                  UInt32,
    paused_since            Nullable(DateTime64(6, 'UTC')),
    on_time                 Nullable(Bool),
    breached_at             Nullable(DateTime64(6, 'UTC')),
    warn_50_at              Nullable(DateTime64(6, 'UTC')),
    warn_75_at              Nullable(DateTime64(6, 'UTC')),
    warn_90_at              Nullable(DateTime64(6, 'UTC')),
    provisional             Bool,
    multiple_opened         Bool,
    intake_date             Date MATERIALIZED toDate(opened_at)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(intake_date)
ORDER BY (intake_date, case_id, cycle);

CREATE TABLE IF NOT EXISTS case_cycles_moved
(
    case_id                 String,
    cycle                   UInt32,
    version                 UInt32,
    opened_at               DateTime64(6, 'UTC'),
    channel                 LowCardinality(String),
    category                LowCardinality(String),
    urgency                 LowCardinality(String),
    district                LowCardinality(String),
    sub_district            LowCardinality(String),
    agency                  LowCardinality(String),
    sub_unit                LowCardinality(String),
    policy_id               LowCardinality(String),
    started_at              DateTime64(6, 'UTC'),
    started_by              LowCardinality(String),
    allowed_seconds         Float64,
    extension_seconds       UInt32,
    late_extensions         UInt32,
    due_at                  Nullable(DateTime64(6, 'UTC')),
    resolved_at             Nullable(DateTime64(6, 'UTC')),
    ended_at                Nullable(DateTime64(6, 'UTC')),
    ended_by                LowCardinality(String),
    closure_reason          LowCardinality(String),
    seconds                 Nullable(Float64),
    business_seconds        Nullable(Float64),
    paused_seconds          Nullable(Float64),
    paused_business_seconds Nullable(Float64),
    pauses                  UInt32,
    paused_since            Nullable(DateTime64(6, 'UTC')),
    on_time                 Nullable(Bool),
    breached_at             Nullable(DateTime64(6, 'UTC')),
    warn_50_at              Nullable(DateTime64(6, 'UTC')),
    warn_75_at              Nullable(DateTime64(6, 'UTC')),
    warn_90_at              Nullable(DateTime64(6, 'UTC')),
    provisional             Bool,
    multiple_opened         Bool
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (case_id, cycle);

CREATE MATERIALIZED VIEW IF NOT EXISTS case_cycles_moved_mv TO case_cycles_moved AS
SELECT
    case_id,
    cycle,
    version,
    opened_at,
    channel,
    category,
    urgency,
    district,
    sub_district,
    agency,
    sub_unit,
    policy_id,
    started_at,
    started_by,
    allowed_seconds,
    extension_seconds,
    late_extensions,
    due_at,
    resolved_at,
    ended_at,
    ended_by,
    closure_reason,
    seconds,
    business_seconds,
    paused_seconds,
    paused_business_seconds,
    pauses,
    paused_since,
    on_time,
    breached_at,
    warn_50_at,
    warn_75_at,
    warn_90_at,
    provisional,
    multiple_opened
FROM case_cycles
WHERE multiple_opened;
