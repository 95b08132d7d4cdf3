"""SLA alerts in the worker: the watch list, the timers and the emitter, tied together.

The case agent calls :meth:`SlaWatch.cases_changed` after each batch (alerts due at the
batch's arrival time are raised at once, and the case's next instants are scheduled); the
worker's timer calls :meth:`SlaWatch.tick` every ``alert_tick_seconds`` to raise what the
wall clock reached meanwhile, for cases that receive no events at all. Both go through
the same pure functions (``streams.core.sla.alerts``) a replay uses with event time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

from streams.app.alert_emitter import AlertEmitter
from streams.app.alert_index import AlertIndex, Labels, Watch, split_record
from streams.core.case_state import CaseState
from streams.core.facts import CaseFacts
from streams.core.sla.alerts import ALERT_DIMENSIONS, SlaAlert, due_alerts
from streams.core.sla.calendar import to_us
from streams.core.sla.clock import CaseSla, evaluate
from streams.core.sla.policy import PolicySet
from streams.observability.registry import SLA_LABELS

#: a case's current state by id (the worker's cache, then its table)
StateSource = Callable[[str], CaseState | None]


def labels_of(facts: CaseFacts) -> Labels:
    """The case's gauge labels, in the registry's order."""
    agency, district, category, urgency = (str(getattr(facts, name)) for name in SLA_LABELS)
    return (agency, district, category, urgency)


def dimensions_of(facts: CaseFacts) -> dict[str, str]:
    return {name: str(getattr(facts, name)) for name in ALERT_DIMENSIONS}


class SlaWatch:
    def __init__(self, index: AlertIndex, emitter: AlertEmitter, policies: PolicySet) -> None:
        self.index = index
        self.emitter = emitter
        self.policies = policies

    async def cases_changed(
        self,
        evaluations: Mapping[str, CaseSla],
        facts: Mapping[str, CaseFacts],
        partitions: Mapping[str, int],
        received: datetime,
    ) -> None:
        """Raise what is due by ``received`` and watch (or stop watching) the cases."""
        now_us = to_us(received)
        due: list[tuple[int, SlaAlert]] = []
        for case_id, case_sla in evaluations.items():
            case_facts = facts[case_id]
            partition = partitions[case_id]
            watch = Watch.of(case_sla, partition, labels_of(case_facts))
            self.index.put(case_id, watch, not_before_us=now_us)
            known = self.emitter.emitted.get(partition, ())
            due.extend(
                (partition, alert)
                for alert in due_alerts(case_sla, received, dimensions_of(case_facts), known)
            )
        await self.emitter.emit(due, received)

    async def tick(self, state_of: StateSource, now: datetime | None = None) -> int:
        """Raise the alerts of every watched case whose next instant has come; returns the
        number sent."""
        if not self.emitter.ready:
            return 0
        moment = now or datetime.now(UTC)
        now_us = to_us(moment)
        due: list[tuple[int, SlaAlert]] = []
        for case_id in self.index.due(now_us):
            watch = self.index.watches[case_id]
            state = state_of(case_id)
            if state is None or not state.events:
                continue
            case_sla = evaluate(state.events, self.policies)
            known = self.emitter.emitted.get(watch.partition, ())
            due.extend(
                (watch.partition, alert)
                for alert in due_alerts(case_sla, moment, dimensions_of(state.facts()), known)
            )
            self.index.reschedule(case_id, now_us)
        return await self.emitter.emit(due, moment)

    async def assigned(
        self, partitions: Iterable[int], records: Iterable[tuple[str, bytes]]
    ) -> None:
        """After a rebalance: watch the owned cases again (from their ``cases`` table
        records) and read the owned partitions' alerts; instants already past are looked
        at on the next tick (catch-up)."""
        self.index.clear()
        for case_id, record in records:
            _, raw = split_record(record)
            if raw is not None:
                self.index.put(case_id, Watch.decode(raw), not_before_us=None)
        await self.emitter.assign(partitions)

    async def revoked(self) -> None:
        await self.emitter.revoke()
        self.index.clear()
