"""Engineering board: pipeline throughput, consumer lag, batch latency and write errors
(Prometheus, names from ``streams.observability.registry``), dead letters and freshness
(ClickHouse)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import table, timeseries

from dashboards import sql
from dashboards.grafana import CLICKHOUSE, PROMETHEUS, ClickHouse, promql, sized
from streams.observability import registry as r

UID = "civicpulse-engineering"
RATE = "$__rate_interval"


def _total(spec: r.MetricSpec) -> str:
    return f"{spec.name}_total"


def dead_letters_over_time_sql() -> str:
    return (
        "SELECT $__timeInterval(received_at) AS time, reason, count() AS dead_letters\n"
        "FROM dead_letters FINAL\n"
        "WHERE $__timeFilter(received_at)\n"
        "GROUP BY time, reason\n"
        "ORDER BY time, reason"
    )


def dead_letters_by_reason_sql() -> str:
    return (
        "SELECT reason, count() AS dead_letters, uniqExact(topic, `partition`, `offset`)"
        " AS messages, max(received_at) AS last_received_at\n"
        "FROM dead_letters FINAL\n"
        "WHERE $__timeFilter(received_at)\n"
        "GROUP BY reason\n"
        "ORDER BY dead_letters DESC, reason"
    )


def freshness_sql() -> str:
    """Event time to stored: ``ingested_at - occurred_at`` of the events stored per interval
    (``ingested_at`` is when the worker folded the event; its insert follows in the same
    batch). Only events that came through Kafka: a replay that archives a file's history
    (``kafka_partition`` -1) would show years of lag that no live event had."""
    return (
        "SELECT $__timeInterval(ingested_at) AS time,\n"
        "    quantiles(0.5, 0.95, 0.99)(lag_s) AS q,\n"
        "    q[1] AS p50, q[2] AS p95, q[3] AS p99, max(lag_s) AS max\n"
        "FROM (\n"
        "    SELECT ingested_at,\n"
        "        (toUnixTimestamp64Milli(ingested_at) - toUnixTimestamp64Milli(occurred_at))"
        " / 1000 AS lag_s\n"
        "    FROM events\n"
        "    WHERE $__timeFilter(ingested_at) AND kafka_partition >= 0\n"
        ")\n"
        "GROUP BY time\n"
        "ORDER BY time"
    ).replace(
        "    quantiles(0.5, 0.95, 0.99)(lag_s) AS q,\n    q[1]",
        "    quantiles(0.5, 0.95, 0.99)(lag_s) AS q, q[1]",
    )


def events_stored_sql() -> str:
    return (
        "SELECT $__timeInterval(ingested_at) AS time,"
        " count() / $__interval_s AS events_per_second\n"
        "FROM events\n"
        "WHERE $__timeFilter(ingested_at)\n"
        "GROUP BY time\n"
        "ORDER BY time"
    )


def late_events_sql() -> str:
    return (
        "SELECT type, count() AS events, uniqExact(case_id) AS cases,"
        " max(lateness_seconds) AS max_lateness_seconds\n"
        "FROM late_events FINAL\n"
        "WHERE $__timeFilter(received_at)\n"
        "GROUP BY type\n"
        "ORDER BY events DESC, type"
    )


def _prom_panel(title: str, description: str, unit: str, *queries: tuple[str, str]) -> object:
    panel = timeseries.Panel().title(title).description(description).datasource(PROMETHEUS)
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(promql(expr, legend, ref_id=chr(ord("A") + i)))
    return sized(panel.unit(unit), 12, 8)


def build() -> db.Dashboard:
    board = (
        db.Dashboard("civicpulse: engineering")
        .uid(UID)
        .tags(["civicpulse", "engineering"])
        .description("The pipeline: throughput, lag, latency, rejected input, freshness.")
        .time("now-6h", "now")
        .refresh("30s")
        .readonly()
    )
    panels = [
        _prom_panel(
            "Events per second: in and out",
            "Read from the raw topic by the ingest agent (valid and invalid) and folded into"
            " cases by the case agent.",
            "ops",
            (f"sum(rate({_total(r.EVENTS_RECEIVED)}[{RATE}]))", "received"),
            (f"sum(rate({_total(r.EVENTS_PROCESSED)}[{RATE}]))", "processed"),
        ),
        _prom_panel(
            "Consumer lag",
            "Messages not yet processed on the workers' assigned partitions.",
            "short",
            (f"sum by (topic) ({r.CONSUMER_LAG.name})", "{{topic}}"),
        ),
        _prom_panel(
            "Batch latency (p50, p95)",
            "Time to process one batch, by agent.",
            "s",
            (
                f"histogram_quantile(0.5, sum by (le, agent) "
                f"(rate({r.BATCH_SECONDS.name}_bucket[{RATE}])))",
                "p50 {{agent}}",
            ),
            (
                f"histogram_quantile(0.95, sum by (le, agent) "
                f"(rate({r.BATCH_SECONDS.name}_bucket[{RATE}])))",
                "p95 {{agent}}",
            ),
        ),
        _prom_panel(
            "Seconds since the last batch",
            "Per agent: grows when an agent stalls.",
            "s",
            (f"time() - max by (agent) ({r.LAST_PROCESSED.name})", "{{agent}}"),
        ),
        _prom_panel(
            "ClickHouse rows written and write errors",
            "Failed inserts are retried, not dropped; persistent errors stop the worker.",
            "ops",
            (f"sum by (table) (rate({_total(r.ROWS_WRITTEN)}[{RATE}]))", "rows {{table}}"),
            (f"sum by (table) (rate({_total(r.WRITE_ERRORS)}[{RATE}]))", "errors {{table}}"),
        ),
        _prom_panel(
            "Dead letters and late events per second",
            "Invalid input by reason, and events later than the grace period.",
            "ops",
            (f"sum by (reason) (rate({_total(r.DEAD_LETTERS)}[{RATE}]))", "{{reason}}"),
            (f"sum(rate({_total(r.LATE_EVENTS)}[{RATE}]))", "late events"),
        ),
        _prom_panel(
            "SLA alerts emitted per second",
            "Alert events written to the alert topic, by type.",
            "ops",
            (f"sum by (type) (rate({_total(r.ALERTS_EMITTED)}[{RATE}]))", "{{type}}"),
        ),
        _prom_panel(
            "Open, at-risk and breached cases (workers' gauges)",
            "Open cases with a running clock, past a warning, past a deadline.",
            "short",
            (f"sum({r.OPEN_CASES.name})", "open"),
            (f"sum({r.AT_RISK_CASES.name})", "at risk"),
            (f"sum({r.BREACHED_CASES.name})", "breached"),
        ),
    ]
    for panel in panels:
        board = board.with_panel(panel)  # type: ignore[arg-type]
    board = board.with_panel(
        sized(
            timeseries.Panel()
            .title("Dead letters by reason (stored)")
            .datasource(CLICKHOUSE)
            .with_target(ClickHouse(dead_letters_over_time_sql(), "time_series")),
            12,
            8,
        )
    )
    board = board.with_panel(
        sized(
            table.Panel()
            .title("Dead letters by reason")
            .datasource(CLICKHOUSE)
            .with_target(ClickHouse(dead_letters_by_reason_sql())),
            12,
            8,
        )
    )
    board = board.with_panel(
        sized(
            timeseries.Panel()
            .title("Freshness: event time to stored")
            .description(
                "ingested_at - occurred_at of the events stored in each interval (p50, p95,"
                " p99, max). Includes the events' own delay before reaching Kafka."
            )
            .datasource(CLICKHOUSE)
            .with_target(ClickHouse(freshness_sql(), "time_series"))
            .unit("s"),
            12,
            8,
        )
    )
    board = board.with_panel(
        sized(
            timeseries.Panel()
            .title("Events stored per second")
            .datasource(CLICKHOUSE)
            .with_target(ClickHouse(events_stored_sql(), "time_series"))
            .unit("ops"),
            12,
            8,
        )
    )
    board = board.with_panel(
        sized(
            table.Panel()
            .title("Late events by type")
            .description("Events that arrived later than the grace period (late_events).")
            .datasource(CLICKHOUSE)
            .with_target(ClickHouse(late_events_sql())),
            24,
            6,
        )
    )
    return board


__all__ = ["UID", "build"]
_ = sql
