"""The SLA outcome of a case as table rows: one :class:`CaseSlaRow` per case (``case_sla``)
and one :class:`CycleRow` per resolution cycle (``case_cycles``).

``sla_rows(facts, case_sla)`` is a pure function (no ClickHouse import). The dataclass
fields, in order, are the columns of the tables (``schemas/clickhouse/0004_case_sla.sql``,
``0005_case_cycles.sql``); ``CASE_SLA_COLUMNS`` / ``CYCLE_COLUMNS`` are derived from them,
and a test compares them with the tables. Definitions: docs/metrics.md.

**Rows do not depend on ``now``.** ``evaluate(..., now)`` only changes the verdicts and
elapsed times of clocks that are still running; those fields are left null here (a
running clock has ``on_time``, ``breached_at``, elapsed and paused seconds null), and the
board computes "past due" / "past a warning" / "age" at query time from the stored
instants and its own ``now``. So a row is a function of the case's distinct events and
the policies only: equal ``version`` (= ``CaseFacts.version``, the number of distinct
events) means an equal row, and ``ReplacingMergeTree(version)`` makes every write
idempotent under redelivery and replay, whatever order the rows arrive in.

Warning instants are kept for the standard fractions 50 %, 75 % and 90 % (the default
thresholds of every shipped policy), so at-risk counts are comparable across policies;
a policy without one of them leaves that column null.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streams.core.facts import CaseFacts
from streams.core.sla.clock import (
    DUPLICATE_OPENED,
    CaseSla,
    FirstResponse,
    ResolutionCycle,
    ThresholdMark,
)

CASE_SLA_TABLE = "case_sla"
CASE_CYCLES_TABLE = "case_cycles"

#: the warning fractions that get a column (``*_warn_50_at``, ``*_warn_75_at``, ``*_warn_90_at``)
WARNING_COLUMNS: tuple[tuple[float, str], ...] = ((0.5, "50"), (0.75, "75"), (0.9, "90"))

#: the grouping dimensions every row carries, copied from the case's facts
DIMENSIONS: tuple[str, ...] = (
    "channel",
    "category",
    "urgency",
    "district",
    "sub_district",
    "agency",
    "sub_unit",
)


@dataclass(frozen=True, slots=True)
class CaseSlaRow:
    """One row of ``case_sla``: a case, its dimensions and the outcome of its clocks.

    Prefixes: ``fr_`` the first-response clock; ``res0_`` resolution cycle 0 (its outcome
    stays recorded after reopens); ``res_`` the current (last) cycle. Every clock field is
    null when the case has no SLA (``policy_id`` "": no ``opened`` event or no policy), and
    verdicts / elapsed times are null while that clock runs. Seconds are counted by the SLA
    clock (stopped time excluded); ``*_business_seconds`` are working time on the policy's
    calendar. Strings use "" for "none", like ``case_facts``.
    """

    case_id: str
    version: int  # CaseFacts.version: the number of distinct events of the case
    status: str  # CaseFacts.status
    opened_at: datetime | None  # intake: puts the case in a time window
    channel: str
    category: str
    urgency: str
    district: str
    sub_district: str
    agency: str  # the current owner (CaseFacts.agency)
    sub_unit: str
    policy_id: str  # "" when the case has no SLA
    first_dispatched_at: datetime | None
    signed_for_at: datetime | None
    first_contact_at: datetime | None
    first_resolved_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    # first response
    fr_allowed_seconds: float | None  # in the target's own time, extensions included
    fr_extension_seconds: int | None
    fr_due_at: datetime | None  # null also while an open pause makes it unknown
    fr_responded_at: datetime | None  # the first contact, when it stopped the clock
    fr_ended_at: datetime | None
    fr_ended_by: str  # first_contact | resolved | closed | ""
    fr_seconds: float | None
    fr_business_seconds: float | None
    fr_on_time: bool | None  # False when the case ended without any contact
    fr_breached_at: datetime | None  # = fr_due_at when it stopped after it
    fr_warn_50_at: datetime | None
    fr_warn_75_at: datetime | None
    fr_warn_90_at: datetime | None
    # resolution cycle 0
    res0_due_at: datetime | None
    res0_ended_at: datetime | None
    res0_ended_by: str  # resolved | closed | ""
    res0_closure_reason: str
    res0_seconds: float | None
    res0_business_seconds: float | None
    res0_paused_seconds: float | None
    res0_on_time: bool | None
    res0_breached_at: datetime | None
    # the current (last) resolution cycle
    cycles: int  # number of resolution cycles (1 + accepted reopens; 0 without SLA)
    res_cycle: int | None  # index of the current cycle
    res_started_at: datetime | None
    res_due_at: datetime | None
    res_resolved_at: datetime | None
    res_ended_at: datetime | None
    res_ended_by: str
    res_on_time: bool | None
    res_breached_at: datetime | None
    res_paused_since: datetime | None  # an open pause that stops the clock
    res_warn_50_at: datetime | None
    res_warn_75_at: datetime | None
    res_warn_90_at: datetime | None
    provisional: bool  # some clock used weekly hours beyond the holiday source's years
    anomalies: tuple[str, ...]  # CaseSla.anomalies (no_opened, no_policy, ...)
    #: the case has more than one ``opened`` event, so its intake (the first of them) may
    #: have moved earlier as they arrived: rows are also kept in ``case_sla_moved``
    multiple_opened: bool
    # copied from the facts
    closure_reason: str  # of the last resolved
    callback_reached: bool
    citizen_confirms_solved: bool | None
    satisfaction: str
    transfers: int
    returns: int
    ping_pongs: int
    pauses: int
    reopens: int
    last_event_at: datetime


@dataclass(frozen=True, slots=True)
class CycleRow:
    """One row of ``case_cycles``: one resolution cycle of a case (0: from intake, k >= 1:
    from the k-th accepted reopen). Fields as in :class:`CaseSlaRow` (``opened_at`` and the
    dimensions are the case's, so cycles are windowed and grouped like cases)."""

    case_id: str
    cycle: int
    version: int
    opened_at: datetime
    channel: str
    category: str
    urgency: str
    district: str
    sub_district: str
    agency: str
    sub_unit: str
    policy_id: str
    started_at: datetime
    started_by: str  # opened | reopened
    allowed_seconds: float
    extension_seconds: int
    late_extensions: int
    due_at: datetime | None
    resolved_at: datetime | None
    ended_at: datetime | None
    ended_by: str  # resolved | closed | ""
    closure_reason: str
    seconds: float | None
    business_seconds: float | None
    paused_seconds: float | None
    paused_business_seconds: float | None
    pauses: int
    paused_since: datetime | None
    on_time: bool | None
    breached_at: datetime | None
    warn_50_at: datetime | None
    warn_75_at: datetime | None
    warn_90_at: datetime | None
    provisional: bool
    multiple_opened: bool  # as in CaseSlaRow


def column_names(row_type: type[Any]) -> tuple[str, ...]:
    """The column names of a row dataclass, in field order."""
    return tuple(f.name for f in dataclasses.fields(row_type))


CASE_SLA_COLUMNS: tuple[str, ...] = column_names(CaseSlaRow)
CYCLE_COLUMNS: tuple[str, ...] = column_names(CycleRow)


def _warnings(marks: tuple[ThresholdMark, ...]) -> tuple[datetime | None, ...]:
    by_fraction = {mark.fraction: mark.at for mark in marks}
    return tuple(by_fraction.get(fraction) for fraction, _ in WARNING_COLUMNS)


def _stopped(clock: FirstResponse | ResolutionCycle, value: Any) -> Any:
    """``value`` when the clock has stopped, else None (it would depend on ``now``)."""
    return value if clock.ended_at is not None else None


def _cycle_row(
    facts: CaseFacts, opened_at: datetime, cycle: ResolutionCycle, multiple_opened: bool
) -> CycleRow:
    w50, w75, w90 = _warnings(cycle.thresholds)
    return CycleRow(
        case_id=facts.case_id,
        cycle=cycle.index,
        version=facts.version,
        opened_at=opened_at,
        channel=facts.channel,
        category=facts.category,
        urgency=facts.urgency,
        district=facts.district,
        sub_district=facts.sub_district,
        agency=facts.agency,
        sub_unit=facts.sub_unit,
        policy_id=cycle.policy_id,
        started_at=cycle.started_at,
        started_by=cycle.started_by,
        allowed_seconds=cycle.allowed_seconds,
        extension_seconds=cycle.extension_seconds,
        late_extensions=cycle.late_extensions,
        due_at=cycle.due_at,
        resolved_at=cycle.resolved_at,
        ended_at=cycle.ended_at,
        ended_by=cycle.ended_by or "",
        closure_reason=cycle.closure_reason or "",
        seconds=_stopped(cycle, cycle.elapsed_seconds),
        business_seconds=_stopped(cycle, cycle.elapsed_business_seconds),
        paused_seconds=_stopped(cycle, cycle.paused_seconds),
        paused_business_seconds=_stopped(cycle, cycle.paused_business_seconds),
        pauses=cycle.pauses,
        paused_since=cycle.paused_since,
        on_time=cycle.on_time,
        breached_at=_stopped(cycle, cycle.breached_at),
        warn_50_at=w50,
        warn_75_at=w75,
        warn_90_at=w90,
        provisional=cycle.provisional,
        multiple_opened=multiple_opened,
    )


def sla_rows(facts: CaseFacts, case_sla: CaseSla | None) -> tuple[CaseSlaRow, list[CycleRow]]:
    """The ``case_sla`` row and the ``case_cycles`` rows of one case.

    ``case_sla`` None (the SLA engine was not run) or without a policy (no ``opened``
    event, no matching policy) still gives a case row, with every clock field null and
    ``policy_id`` "", so case counts and denominators stay complete; it gives no cycle
    rows. Fields that depend on ``now`` are left null (module docstring), so the result
    does not depend on the ``now`` the SLA was evaluated with.
    """
    if case_sla is not None and case_sla.case_id != facts.case_id:
        raise ValueError(f"SLA of {case_sla.case_id} given with the facts of {facts.case_id}")
    fr = case_sla.first_response if case_sla is not None else None
    cycles = case_sla.cycles if case_sla is not None else ()
    first = cycles[0] if cycles else None
    current = cycles[-1] if cycles else None
    fr_warn = _warnings(fr.thresholds) if fr is not None else (None, None, None)
    res_warn = _warnings(current.thresholds) if current is not None else (None, None, None)
    provisional = (fr is not None and fr.provisional) or any(c.provisional for c in cycles)
    anomalies = case_sla.anomalies if case_sla is not None else ()
    multiple_opened = DUPLICATE_OPENED in anomalies

    row = CaseSlaRow(
        case_id=facts.case_id,
        version=facts.version,
        status=facts.status,
        opened_at=facts.opened_at,
        channel=facts.channel,
        category=facts.category,
        urgency=facts.urgency,
        district=facts.district,
        sub_district=facts.sub_district,
        agency=facts.agency,
        sub_unit=facts.sub_unit,
        policy_id=(case_sla.policy_id or "") if case_sla is not None else "",
        first_dispatched_at=facts.first_dispatched_at,
        signed_for_at=facts.signed_for_at,
        first_contact_at=facts.first_contact_at,
        first_resolved_at=facts.first_resolved_at,
        resolved_at=facts.resolved_at,
        closed_at=facts.closed_at,
        fr_allowed_seconds=fr.allowed_seconds if fr else None,
        fr_extension_seconds=fr.extension_seconds if fr else None,
        fr_due_at=fr.due_at if fr else None,
        fr_responded_at=fr.responded_at if fr else None,
        fr_ended_at=fr.ended_at if fr else None,
        fr_ended_by=(fr.ended_by or "") if fr else "",
        fr_seconds=_stopped(fr, fr.elapsed_seconds) if fr else None,
        fr_business_seconds=_stopped(fr, fr.elapsed_business_seconds) if fr else None,
        fr_on_time=fr.on_time if fr else None,
        fr_breached_at=_stopped(fr, fr.breached_at) if fr else None,
        fr_warn_50_at=fr_warn[0],
        fr_warn_75_at=fr_warn[1],
        fr_warn_90_at=fr_warn[2],
        res0_due_at=first.due_at if first else None,
        res0_ended_at=first.ended_at if first else None,
        res0_ended_by=(first.ended_by or "") if first else "",
        res0_closure_reason=(first.closure_reason or "") if first else "",
        res0_seconds=_stopped(first, first.elapsed_seconds) if first else None,
        res0_business_seconds=_stopped(first, first.elapsed_business_seconds) if first else None,
        res0_paused_seconds=_stopped(first, first.paused_seconds) if first else None,
        res0_on_time=first.on_time if first else None,
        res0_breached_at=_stopped(first, first.breached_at) if first else None,
        cycles=len(cycles),
        res_cycle=current.index if current else None,
        res_started_at=current.started_at if current else None,
        res_due_at=current.due_at if current else None,
        res_resolved_at=current.resolved_at if current else None,
        res_ended_at=current.ended_at if current else None,
        res_ended_by=(current.ended_by or "") if current else "",
        res_on_time=current.on_time if current else None,
        res_breached_at=_stopped(current, current.breached_at) if current else None,
        res_paused_since=current.paused_since if current else None,
        res_warn_50_at=res_warn[0],
        res_warn_75_at=res_warn[1],
        res_warn_90_at=res_warn[2],
        provisional=provisional,
        anomalies=anomalies,
        multiple_opened=multiple_opened,
        closure_reason=facts.closure_reason,
        callback_reached=facts.callback_reached,
        citizen_confirms_solved=facts.citizen_confirms_solved,
        satisfaction=facts.satisfaction,
        transfers=facts.transfers,
        returns=facts.returns,
        ping_pongs=facts.ping_pongs,
        pauses=facts.pauses,
        reopens=facts.reopens,
        last_event_at=facts.last_event_at,
    )
    opened_at = facts.opened_at
    cycle_rows = (
        [_cycle_row(facts, opened_at, cycle, multiple_opened) for cycle in cycles]
        if opened_at is not None
        else []
    )
    return row, cycle_rows


__all__ = [
    "CASE_CYCLES_TABLE",
    "CASE_SLA_COLUMNS",
    "CASE_SLA_TABLE",
    "CYCLE_COLUMNS",
    "DIMENSIONS",
    "WARNING_COLUMNS",
    "CaseSlaRow",
    "CycleRow",
    "sla_rows",
]
