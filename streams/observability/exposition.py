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
from streams.observability.registry import (
    AT_RISK_CASES,
    BREACHED_CASES,
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


class WriterCollector(Collector):
    """From ``BatchWriter.stats()``."""

    def __init__(self, stats: Callable[[], Mapping[str, Any]]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self.stats()
        yield _per_table(ROWS_WRITTEN, stats.get("rows_written", {}))
        yield _per_table(WRITE_ERRORS, stats.get("write_errors_by_table", {}))


def _per_table(spec: MetricSpec, values: Mapping[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
    for table, value in sorted(values.items()):
        family.add_metric([table], value)
    return family


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
