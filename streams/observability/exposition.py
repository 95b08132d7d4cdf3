"""Series computed when Prometheus scrapes: case gauges from the worker's watch list and
ClickHouse write counters from the batch writer, so neither has to be kept in step."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.app.alert_index import AlertIndex
from streams.app.stats import PipelineStats
from streams.observability.registry import (
    AT_RISK_CASES,
    BREACHED_CASES,
    DEAD_LETTERS,
    EVENTS_PROCESSED,
    EVENTS_RECEIVED,
    LATE_EVENTS,
    OPEN_CASES,
    ROWS_WRITTEN,
    SLA_LABELS,
    WRITE_ERRORS,
    MetricSpec,
)

# aiohttp refuses a charset inside content_type; the exposition is ASCII anyway.
CONTENT_TYPE = "text/plain; version=0.0.4"


class SlaCaseCollector(Collector):
    def __init__(self, index: AlertIndex, clock: Callable[[], float] = time.time) -> None:
        self.index = index
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        now_us = int(self.clock() * 1_000_000)
        counts = self.index.counts(now_us)
        for spec, counter in zip((OPEN_CASES, AT_RISK_CASES, BREACHED_CASES), counts, strict=True):
            family = GaugeMetricFamily(spec.name, spec.help, labels=SLA_LABELS)
            for labels, value in sorted(counter.items()):
                family.add_metric(list(labels), value)
            yield family


class StatsCollector(Collector):
    """Event counters from ``PipelineStats``, which the live summary shows too."""

    def __init__(self, stats: PipelineStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        for spec, value in (
            (EVENTS_RECEIVED, stats.raw_in),
            (EVENTS_PROCESSED, stats.events_processed),
            (LATE_EVENTS, stats.late_events),
        ):
            yield CounterMetricFamily(spec.name, spec.help, value=value)
        yield _per_label(DEAD_LETTERS, dict(stats.dead_by_reason))


class WriterCollector(Collector):
    """From ``BatchWriter.stats()``."""

    def __init__(self, stats: Callable[[], Mapping[str, Any]]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self.stats()
        yield _per_label(ROWS_WRITTEN, stats.get("rows_written", {}))
        yield _per_label(WRITE_ERRORS, stats.get("write_errors_by_table", {}))


def _per_label(spec: MetricSpec, values: Mapping[str, int]) -> CounterMetricFamily:
    """A counter with one label (table, reason): one sample per value."""
    family = CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
    for label, value in sorted(values.items()):
        family.add_metric([label], value)
    return family


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
