"""The worker's watch list of open cases: when to look at each case again for SLA alerts,
and how many cases are at risk or breached right now.

One :class:`Watch` per open case with a running clock on this worker's partitions. It is
kept next to the case's state in the worker's ``cases`` table (:func:`join_record`), so a
restarted or rebalanced worker rebuilds the list without re-evaluating every case and
without a second changelog message per case; it drives both the alert timers and the
``civicpulse_sla_*_cases`` gauges.

Instants are Unix microseconds (ints) to keep the heap and the encoding small.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from streams.contract.json_bytes import dumps
from streams.core.sla.alerts import pending_instants, risk_instants, risk_status
from streams.core.sla.calendar import to_us
from streams.core.sla.clock import CaseSla

#: labels of the case gauges, in this order (streams.observability.registry.SLA_LABELS)
Labels = tuple[str, str, str, str]


def join_record(state: bytes, watch: Watch | None) -> bytes:
    """A ``cases`` table value: the encoded state (JSON, which never holds a raw newline),
    then, for a watched case, a newline and the encoded watch."""
    return state if watch is None else state + b"\n" + watch.encode()


def split_record(record: bytes) -> tuple[bytes, bytes | None]:
    """(encoded state, encoded watch or None) of a ``cases`` table value."""
    state, _, watch = record.partition(b"\n")
    return state, watch or None


@dataclass(slots=True)
class Watch:
    partition: int
    labels: Labels
    instants: tuple[int, ...]  # every pending alert instant of the running clocks, sorted
    at_risk_from: int | None
    breached_from: int | None

    def status(self, now_us: int) -> str:
        return risk_status(self.at_risk_from, self.breached_from, now_us)

    def next_after(self, now_us: int) -> int | None:
        return next((i for i in self.instants if i > now_us), None)

    def encode(self) -> bytes:
        return dumps(
            [self.partition, self.labels, self.instants, self.at_risk_from, self.breached_from]
        )

    @classmethod
    def decode(cls, raw: bytes) -> Watch:
        partition, labels, instants, at_risk, breached = orjson.loads(raw)
        return cls(partition, tuple(labels), tuple(instants), at_risk, breached)

    @classmethod
    def of(cls, case_sla: CaseSla, partition: int, labels: Labels) -> Watch | None:
        """None when the case has no running clock: nothing to watch."""
        risk = risk_instants(case_sla)
        if risk is None:
            return None
        return cls(
            partition=partition,
            labels=labels,
            instants=tuple(to_us(i) for i in pending_instants(case_sla)),
            at_risk_from=to_us(risk.at_risk_from) if risk.at_risk_from is not None else None,
            breached_from=to_us(risk.breached_from) if risk.breached_from is not None else None,
        )


class AlertIndex:
    """Watches by case id, plus a heap of (next instant, case id) for the timer.

    Heap entries are not removed when a watch changes; a popped entry is used only when it
    still matches the watch's scheduled instant.
    """

    def __init__(self) -> None:
        self.watches: dict[str, Watch] = {}
        self._scheduled: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self.watches)

    def put(self, case_id: str, watch: Watch | None, not_before_us: int | None) -> None:
        """Watch (or stop watching, for None) a case; its next look is the first instant
        after ``not_before_us`` (None: the first instant at all, past ones included)."""
        if watch is None:
            self.watches.pop(case_id, None)
            self._scheduled.pop(case_id, None)
            return
        self.watches[case_id] = watch
        if not_before_us is None:
            nxt = watch.instants[0] if watch.instants else None
        else:
            nxt = watch.next_after(not_before_us)
        self._schedule(case_id, nxt)

    def reschedule(self, case_id: str, after_us: int) -> None:
        watch = self.watches.get(case_id)
        if watch is not None:
            self._schedule(case_id, watch.next_after(after_us))

    def due(self, now_us: int) -> list[str]:
        """Pop the cases whose next instant is at or before ``now_us``."""
        cases: list[str] = []
        while self._heap and self._heap[0][0] <= now_us:
            at, case_id = heapq.heappop(self._heap)
            if self._scheduled.get(case_id) == at:
                del self._scheduled[case_id]
                cases.append(case_id)
        return cases

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        gone = set(partitions)
        for case_id in [c for c, w in self.watches.items() if w.partition in gone]:
            self.put(case_id, None, None)
        self._heap = [(at, c) for at, c in self._heap if c in self._scheduled]
        heapq.heapify(self._heap)

    def clear(self) -> None:
        self.watches.clear()
        self._scheduled.clear()
        self._heap.clear()

    def counts(self, now_us: int) -> tuple[Counter[Labels], Counter[Labels], Counter[Labels]]:
        """(open, at risk, breached) case counts by labels as of ``now_us``."""
        open_: Counter[Labels] = Counter()
        at_risk: Counter[Labels] = Counter()
        breached: Counter[Labels] = Counter()
        for watch in self.watches.values():
            open_[watch.labels] += 1
            status = watch.status(now_us)
            if status == "breached":
                breached[watch.labels] += 1
            elif status == "at_risk":
                at_risk[watch.labels] += 1
        return open_, at_risk, breached

    def _schedule(self, case_id: str, at: int | None) -> None:
        if at is None:
            self._scheduled.pop(case_id, None)
            return
        self._scheduled[case_id] = at
        heapq.heappush(self._heap, (at, case_id))
