"""SLA alerts of a case: which warnings and breaches have happened by a given instant.

An alert is identified by (case, clock, cycle, threshold): ``sla.warning`` for each
warning fraction a clock reached while it still ran, ``sla.breached`` when a clock ran
past its deadline. Whether an alert exists by ``now`` is a function of the case's events,
the policies and ``now`` only, so a live worker (``now`` = the wall clock) and a replay
(``now`` = event time) raise the same alerts. A clock stopped in time (first contact,
resolution, closure) raises nothing further: its pending warnings are cancelled. A clock
that was answered late still raised its breach, dated at its deadline.

The scheduler side lives in the worker; this module only answers "what is due" and
"when to look again" (:func:`pending_instants`).
"""

from __future__ import annotations

from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypeVar

from streams.core.sla.clock import CaseSla, FirstResponse, ResolutionCycle

AlertType = Literal["sla.warning", "sla.breached"]
WARNING: AlertType = "sla.warning"
BREACHED: AlertType = "sla.breached"

#: the dimensions an alert carries, for routing by agency and filtering
ALERT_DIMENSIONS: tuple[str, ...] = (
    "agency",
    "sub_unit",
    "district",
    "sub_district",
    "category",
    "urgency",
    "channel",
)


@dataclass(frozen=True, slots=True)
class SlaAlert:
    """One alert. ``fired_at`` is the instant the threshold or deadline was reached (not
    when it was noticed); ``threshold`` is the fraction of the allowance (1.0 for a
    breach). ``cycle`` is 0 for the first-response clock and for resolution cycle 0."""

    alert_id: str
    type: AlertType
    case_id: str
    target: str  # first_response | resolution
    cycle: int
    threshold: float
    fired_at: datetime
    due_at: datetime | None
    policy_id: str
    dimensions: tuple[tuple[str, str], ...]

    def dimension(self, name: str) -> str:
        return dict(self.dimensions).get(name, "")


def alert_id(case_id: str, target: str, cycle: int, alert_type: AlertType, threshold: float) -> str:
    """Stable across runs: the key of exactly-once emission."""
    kind = "breach" if alert_type == BREACHED else f"warn{round(threshold * 100)}"
    return f"{case_id}/{target}/{cycle}/{kind}"


Clock = FirstResponse | ResolutionCycle


def _clocks(case_sla: CaseSla) -> Iterator[tuple[str, int, Clock]]:
    if case_sla.first_response is not None:
        yield "first_response", 0, case_sla.first_response
    for cycle in case_sla.cycles:
        yield "resolution", cycle.index, cycle


def due_alerts(
    case_sla: CaseSla,
    now: datetime,
    dimensions: Mapping[str, str] | None = None,
    known: Container[str] = (),
) -> list[SlaAlert]:
    """Every alert the case has raised by ``now``, in firing order, except those whose id
    is in ``known`` (a worker's already-emitted ids: skipping them early keeps the cost of
    re-evaluating a case low).

    A warning counts when its instant is at or before ``now`` and the clock had not
    stopped by then; a breach when the deadline is at or before ``now`` and the clock
    stopped after it or still runs. Instants unknown because of an open pause raise
    nothing (the clock is stopped).
    """
    alerts: list[SlaAlert] = []
    dims: tuple[tuple[str, str], ...] | None = None  # built for the first alert only
    for target, cycle, clock in _clocks(case_sla):
        ended = clock.ended_at
        fired: list[tuple[AlertType, float, datetime]] = [
            (WARNING, mark.fraction, mark.at)
            for mark in clock.thresholds
            if mark.at is not None and mark.at <= now and (ended is None or mark.at < ended)
        ]
        due = clock.due_at
        if due is not None and due <= now and (ended is None or ended > due):
            fired.append((BREACHED, 1.0, due))
        for alert_type, threshold, at in fired:
            key = alert_id(case_sla.case_id, target, cycle, alert_type, threshold)
            if key in known:
                continue
            if dims is None:
                dims = tuple((n, (dimensions or {}).get(n, "")) for n in ALERT_DIMENSIONS)
            alerts.append(
                SlaAlert(
                    alert_id=key,
                    type=alert_type,
                    case_id=case_sla.case_id,
                    target=target,
                    cycle=cycle,
                    threshold=threshold,
                    fired_at=at,
                    due_at=due,
                    policy_id=clock.policy_id,
                    dimensions=dims,
                )
            )
    alerts.sort(key=lambda a: (a.fired_at, a.alert_id))
    return alerts


def pending_instants(case_sla: CaseSla) -> list[datetime]:
    """The instants at which running clocks will raise an alert, sorted (past ones
    included: the scheduler decides what has already been emitted). Empty when no clock
    runs, or when every running clock is paused."""
    instants: list[datetime] = []
    for _, _, clock in _clocks(case_sla):
        if clock.ended_at is not None:
            continue
        instants.extend(m.at for m in clock.thresholds if m.at is not None)
        if clock.due_at is not None:
            instants.append(clock.due_at)
    instants.sort()
    return instants


@dataclass(frozen=True, slots=True)
class RiskInstants:
    """When an open case becomes at risk (its earliest warning) and breached (its earliest
    deadline), over its running clocks; None when no running clock has one."""

    at_risk_from: datetime | None
    breached_from: datetime | None

    def status(self, now: datetime) -> str:
        """``breached``, ``at_risk`` or ``ok`` as of ``now``."""
        return risk_status(self.at_risk_from, self.breached_from, now)


Instant = TypeVar("Instant", int, datetime)


def risk_status(at_risk_from: Instant | None, breached_from: Instant | None, now: Instant) -> str:
    """``breached`` from the earliest deadline on, ``at_risk`` from the earliest warning
    on, ``ok`` before (instants as datetimes or as Unix microseconds)."""
    if breached_from is not None and breached_from <= now:
        return "breached"
    if at_risk_from is not None and at_risk_from <= now:
        return "at_risk"
    return "ok"


def risk_instants(case_sla: CaseSla) -> RiskInstants | None:
    """None when the case has no running clock (nothing to watch)."""
    running = [clock for _, _, clock in _clocks(case_sla) if clock.ended_at is None]
    if not running:
        return None
    warnings = [m.at for c in running for m in c.thresholds if m.at is not None]
    dues = [c.due_at for c in running if c.due_at is not None]
    return RiskInstants(min(warnings, default=None), min(dues, default=None))
