"""Every Prometheus metric a worker exposes, defined once.

Rules in ``ops/prometheus/rules/`` and the engineering board refer to these names; a test
checks that each name they use is defined here. Labels are low-cardinality on purpose:
agencies, districts, categories and urgencies are bounded lists in a city's
configuration, while case ids, event ids and free text never become labels.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)

SLA_LABELS = ("agency", "district", "category", "urgency")


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str  # counter | gauge | histogram (the exposed family type)
    help: str
    labels: tuple[str, ...] = ()


# Counters are named without their ``_total`` suffix, as prometheus-client expects; the
# exposed series carry it (``civicpulse_events_received_total``).
EVENTS_RECEIVED = MetricSpec(
    "civicpulse_events_received",
    "counter",
    "Events read from the raw topic (valid and invalid), by the ingest agent.",
)
EVENTS_PROCESSED = MetricSpec(
    "civicpulse_events_processed",
    "counter",
    "Events folded into case state by the case agent (duplicates included).",
)
DEAD_LETTERS = MetricSpec(
    "civicpulse_dead_letters",
    "counter",
    "Invalid events sent to the dead-letter topic, by reason.",
    ("reason",),
)
LATE_EVENTS = MetricSpec(
    "civicpulse_late_events",
    "counter",
    "Events later than the grace period (still applied, and recorded in late_events).",
)
BATCH_SECONDS = MetricSpec(
    "civicpulse_batch_seconds",
    "histogram",
    "Time to process one batch, by agent (ingest, cases).",
    ("agent",),
)
CONSUMER_LAG = MetricSpec(
    "civicpulse_consumer_lag_messages",
    "gauge",
    "Messages not yet processed on the worker's assigned partitions, by topic.",
    ("topic",),
)
LAST_PROCESSED = MetricSpec(
    "civicpulse_last_batch_timestamp_seconds",
    "gauge",
    "Unix time at which the agent last finished a batch, by agent.",
    ("agent",),
)
ROWS_WRITTEN = MetricSpec(
    "civicpulse_clickhouse_rows_written",
    "counter",
    "Rows written to ClickHouse, by table.",
    ("table",),
)
WRITE_ERRORS = MetricSpec(
    "civicpulse_clickhouse_write_errors",
    "counter",
    "Failed ClickHouse inserts, by table (the batch is retried, not dropped).",
    ("table",),
)
OPEN_CASES = MetricSpec(
    "civicpulse_sla_open_cases",
    "gauge",
    "Open cases with a running SLA clock, owned by this worker.",
    SLA_LABELS,
)
AT_RISK_CASES = MetricSpec(
    "civicpulse_sla_at_risk_cases",
    "gauge",
    "Open cases past a warning threshold of a running clock, not yet past its deadline.",
    SLA_LABELS,
)
BREACHED_CASES = MetricSpec(
    "civicpulse_sla_breached_cases",
    "gauge",
    "Open cases past the deadline of a running clock (first response or resolution).",
    SLA_LABELS,
)
ALERTS_EMITTED = MetricSpec(
    "civicpulse_sla_alerts_emitted",
    "counter",
    "Alert events written to the alert topic, by type (sla.warning, sla.breached) and agency.",
    ("type", "agency"),
)
ALERTS_STALE = MetricSpec(
    "civicpulse_sla_alerts_stale",
    "counter",
    "Alerts first noticed after alert_max_age_seconds (e.g. history imported into a live "
    "worker): counted, not sent.",
)

ALL: tuple[MetricSpec, ...] = (
    EVENTS_RECEIVED,
    EVENTS_PROCESSED,
    DEAD_LETTERS,
    LATE_EVENTS,
    BATCH_SECONDS,
    CONSUMER_LAG,
    LAST_PROCESSED,
    ROWS_WRITTEN,
    WRITE_ERRORS,
    OPEN_CASES,
    AT_RISK_CASES,
    BREACHED_CASES,
    ALERTS_EMITTED,
    ALERTS_STALE,
)


def exposed_names() -> frozenset[str]:
    """Every series name a scrape can show (counters with ``_total``, histogram parts)."""
    names: set[str] = set()
    for spec in ALL:
        if spec.kind == "counter":
            names.add(f"{spec.name}_total")
        elif spec.kind == "histogram":
            names.update(f"{spec.name}_{part}" for part in ("bucket", "sum", "count"))
        else:
            names.add(spec.name)
    return frozenset(names)


BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class WorkerMetrics:
    """The instruments a worker updates. The event counters (from the pipeline stats), the
    SLA case gauges and the ClickHouse write counters are computed at scrape time
    (streams.observability.exposition)."""

    registry: CollectorRegistry
    batch_seconds: Histogram
    last_batch: Gauge
    consumer_lag: Gauge
    alerts_emitted: Counter
    alerts_stale: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> WorkerMetrics:
        # ``*_created`` series only double the scrape: no rule or board reads them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        reg = registry if registry is not None else CollectorRegistry()

        def counter(spec: MetricSpec) -> Counter:
            return Counter(spec.name, spec.help, spec.labels, registry=reg)

        return cls(
            registry=reg,
            batch_seconds=Histogram(
                BATCH_SECONDS.name,
                BATCH_SECONDS.help,
                BATCH_SECONDS.labels,
                buckets=BATCH_BUCKETS,
                registry=reg,
            ),
            last_batch=Gauge(
                LAST_PROCESSED.name, LAST_PROCESSED.help, LAST_PROCESSED.labels, registry=reg
            ),
            consumer_lag=Gauge(
                CONSUMER_LAG.name, CONSUMER_LAG.help, CONSUMER_LAG.labels, registry=reg
            ),
            alerts_emitted=counter(ALERTS_EMITTED),
            alerts_stale=counter(ALERTS_STALE),
        )
