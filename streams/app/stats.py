"""In-process pipeline counters, served by the worker's web view for the live summary."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PipelineStats:
    started: float = field(default_factory=time.time)
    raw_in: int = 0
    dead_letters: int = 0
    events_processed: int = 0
    duplicates: int = 0
    late_events: int = 0
    facts_written: int = 0
    batches: int = 0
    last_batch_seconds: float = 0.0
    _recent: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=120))

    def ingested(self, count: int, dead: int, seconds: float) -> None:
        self.raw_in += count
        self.dead_letters += dead

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
