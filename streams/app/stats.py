"""In-process pipeline counters: the live summary's numbers, and the source of the matching
Prometheus counters (``streams.observability.exposition.StatsCollector``), so the two
cannot disagree."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PipelineStats:
    started: float = field(default_factory=time.time)
    raw_in: int = 0
    dead_by_reason: dict[str, int] = field(default_factory=dict)
    events_processed: int = 0
    duplicates: int = 0
    late_events: int = 0
    facts_written: int = 0
    batches: int = 0
    last_batch_seconds: float = 0.0
    _recent: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=120))

    @property
    def dead_letters(self) -> int:
        return sum(self.dead_by_reason.values())

    def ingested(self, count: int) -> None:
        """Events read from the raw topic, valid or not."""
        self.raw_in += count

    def dead_lettered(self, reasons: Iterable[str]) -> None:
        """Events sent to the dead-letter topic (by either agent), by reason."""
        for reason in reasons:
            self.dead_by_reason[reason] = self.dead_by_reason.get(reason, 0) + 1

    def processed(
        self, count: int, facts: int, duplicates: int, seconds: float, late: int = 0
    ) -> None:
        self.events_processed += count
        self.late_events += late
        self.facts_written += facts
        self.duplicates += duplicates
        self.batches += 1
        self.last_batch_seconds = seconds
        self._recent.append((time.time(), self.events_processed))

    def events_per_second(self, window: float = 10.0) -> float:
        now = time.time()
        points = [(t, n) for t, n in self._recent if now - t <= window]
        if len(points) < 2:
            return 0.0
        (t0, n0), (t1, n1) = points[0], points[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def snapshot(self) -> dict[str, Any]:
        return {
            "uptime_seconds": round(time.time() - self.started, 1),
            "raw_in": self.raw_in,
            "dead_letters": self.dead_letters,
            "events_processed": self.events_processed,
            "duplicates": self.duplicates,
            "late_events": self.late_events,
            "facts_written": self.facts_written,
            "batches": self.batches,
            "last_batch_seconds": round(self.last_batch_seconds, 4),
            "events_per_second": round(self.events_per_second(), 1),
        }
