"""The SLA clock of one case: a pure function of its ordered events and the policies.

``evaluate(events, policies, now)`` folds a case's distinct events (the list
``CaseState.events`` holds, in :func:`streams.core.ordering.order_key` order) into a
:class:`CaseSla`: the first-response clock and one resolution clock per cycle. Every
instant it reports (due dates, warning instants) follows from the events alone; ``now``
only decides, for clocks still running, whether the deadline or a warning has passed and
how much time has elapsed so far. The rules are in docs/sla.md ("Clock rules"); in short:

* Both clocks start at intake (the first ``opened``), never at sign-for. A case without
  ``opened`` has no clock (its category and urgency are unknown).
* The first-response clock stops at the first ``first_contact``, or, when the first
  resolution cycle ends (``resolved`` or ``closed``) before any contact, at that end: the
  citizen was never contacted and the response is not on time.
* Resolution cycle 0 starts at intake; a ``reopened`` after the current cycle ended starts
  the next cycle, with the full allowance again; earlier cycles keep their outcome. A cycle
  ends at its first ``resolved`` or ``closed``.
* The clock is stopped while the pause reason in force (the last ``paused`` not yet
  followed by ``resumed`` or an accepted ``reopened``) is one of the target's
  ``pause_reasons`` (by default only ``awaiting_citizen``, and only for resolution).
* ``deadline_extended`` adds ``extension_seconds`` to the allowance of its target
  (resolution: the cycle current at that event), in the target's own time: wall seconds
  for wall targets, business seconds for business and working-day targets. An extension
  approved after the clock stopped or after the deadline it would move has passed is not
  applied (it would erase a breach) and is counted in ``late_extensions``.
* ``due_at`` is the earliest instant at which the counted time reaches the allowance;
  a warning at fraction f is the earliest instant it reaches round(f x allowance) µs.
  On time means: stopped at or before ``due_at``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Final, Literal, NamedTuple

from streams.contract import (
    DeadlineExtendedPayload,
    Event,
    OpenedPayload,
    PausedPayload,
    ResolvedPayload,
    format_timestamp,
)
from streams.core.ordering import order_key
from streams.core.sla.calendar import US_PER_SECOND, from_us, to_us
from streams.core.sla.policy import PolicySet, Target, TargetName

TimerKind = Literal["warning", "breach"]
FirstResponseEnd = Literal["first_contact", "resolved", "closed"]
CycleEnd = Literal["resolved", "closed"]
CycleStart = Literal["opened", "reopened"]

# Anomaly codes reported in CaseSla.anomalies (data-quality signals, not errors).
NO_OPENED = "no_opened"
NO_POLICY = "no_policy"
DUPLICATE_OPENED = "duplicate_opened"
FIRST_CONTACT_BEFORE_OPENED = "first_contact_before_opened"
RESOLVED_BEFORE_OPENED = "resolved_before_opened"
CLOSED_BEFORE_OPENED = "closed_before_opened"
REOPENED_WHILE_OPEN = "reopened_while_open"
LATE_EXTENSION = "late_extension"


@dataclass(frozen=True, slots=True)
class ThresholdMark:
    """A warning threshold of a clock.

    ``at``: the instant the counted time reaches ``fraction`` of the allowance; None when
    the clock is stopped (an open pause) before reaching it. ``crossed``: ``at`` is at or
    before the clock's stop (stopped clocks) or ``now`` (running clocks); None for a
    running clock evaluated without ``now``.
    """

    fraction: float
    at: datetime | None
    crossed: bool | None


@dataclass(frozen=True, slots=True)
class FirstResponse:
    """The first-response clock of a case.

    ``allowed_seconds`` is the allowance including applied extensions, in the target's own
    time (wall seconds, or business seconds for business and working-day targets).
    ``elapsed_seconds`` / ``elapsed_business_seconds``: counted wall / business time from
    intake to the stop (or ``now``), pauses that stop the clock excluded; None for a
    running clock without ``now``. ``on_time``: None while running; False when the case
    ended without any contact.
    """

    policy_id: str
    target: Target
    started_at: datetime
    allowed_seconds: float
    extension_seconds: int
    late_extensions: int
    due_at: datetime | None
    responded_at: datetime | None
    ended_at: datetime | None
    ended_by: FirstResponseEnd | None
    elapsed_seconds: float | None
    elapsed_business_seconds: float | None
    paused_seconds: float | None
    paused_since: datetime | None
    on_time: bool | None
    breached_at: datetime | None
    thresholds: tuple[ThresholdMark, ...]
    provisional: bool

    @property
    def is_open(self) -> bool:
        return self.ended_at is None


@dataclass(frozen=True, slots=True)
class ResolutionCycle:
    """One resolution cycle: cycle 0 from intake, cycle k >= 1 from the k-th accepted
    ``reopened``. Fields as in :class:`FirstResponse`; ``pauses`` counts the clock stops
    within the cycle, ``paused_seconds`` / ``paused_business_seconds`` their length up to
    the cycle's end (or ``now``)."""

    index: int
    policy_id: str
    target: Target
    started_at: datetime
    started_by: CycleStart
    allowed_seconds: float
    extension_seconds: int
    late_extensions: int
    due_at: datetime | None
    resolved_at: datetime | None
    closure_reason: str | None
    ended_at: datetime | None
    ended_by: CycleEnd | None
    elapsed_seconds: float | None
    elapsed_business_seconds: float | None
    paused_seconds: float | None
    paused_business_seconds: float | None
    pauses: int
    paused_since: datetime | None
    on_time: bool | None
    breached_at: datetime | None
    thresholds: tuple[ThresholdMark, ...]
    provisional: bool

    @property
    def is_open(self) -> bool:
        return self.ended_at is None


@dataclass(frozen=True, slots=True)
class CaseSla:
    """The SLA outcome of one case. ``policy_id`` None (and no clocks) when the case has
    no ``opened`` event or no policy matches it (see ``anomalies``)."""

    case_id: str
    policy_id: str | None
    category: str
    urgency: str
    opened_at: datetime | None
    now: datetime | None
    first_response: FirstResponse | None
    cycles: tuple[ResolutionCycle, ...]
    anomalies: tuple[str, ...]

    @property
    def current_cycle(self) -> ResolutionCycle | None:
        return self.cycles[-1] if self.cycles else None

    @property
    def is_open(self) -> bool:
        """True while a clock runs (or is paused)."""
        fr_open = self.first_response is not None and self.first_response.is_open
        cycle = self.current_cycle
        return fr_open or (cycle is not None and cycle.is_open)


class Timer(NamedTuple):
    """The next instant at which something happens to a case's SLA if no event arrives:
    a warning threshold (``threshold`` = its fraction) or the breach (``threshold`` None)
    of the first-response clock (``cycle`` None) or of resolution cycle ``cycle``."""

    at: datetime
    kind: TimerKind
    threshold: float | None
    target: TargetName
    cycle: int | None


# --------------------------------------------------------------------------- the fold


@dataclass(slots=True)
class _CycleAcc:
    index: int
    start: int
    started_by: CycleStart
    end: int | None = None
    ended_by: CycleEnd | None = None
    closure_reason: str | None = None
    extensions: list[tuple[int, int]] = field(default_factory=list)


@dataclass(slots=True)
class _Run:
    allowance: int
    extension_seconds: int
    late_extensions: int
    due: int | None
    marks: list[tuple[float, int | None]]
    elapsed_wall: int | None
    elapsed_business: int | None
    paused_wall: int | None
    paused_business: int | None
    stops: int
    paused_since: int | None


_Stop = tuple[int, int | None]


def _stops(pause_log: Sequence[tuple[int, str | None]], reasons: frozenset[str]) -> list[_Stop]:
    """Intervals during which the pause reason in force is in ``reasons``.

    Only the reason in force at the end of each instant matters: changes within one
    instant (stopping, not stopping, stopping again) neither end nor start a stop, since
    the clock never runs in between. ``pause_log`` is in event order.
    """
    if not reasons:
        return []
    out: list[_Stop] = []
    since: int | None = None
    for index, (moment, reason) in enumerate(pause_log):
        if index + 1 < len(pause_log) and pause_log[index + 1][0] == moment:
            continue  # a later change at the same instant decides
        stopped = reason is not None and reason in reasons
        if stopped and since is None:
            since = moment
        elif not stopped and since is not None:
            out.append((since, moment))
            since = None
    if since is not None:
        out.append((since, None))
    return out


def _run_clock(
    target: Target,
    start: int,
    end: int | None,
    extensions: Sequence[tuple[int, int]],
    stops: Sequence[_Stop],
    now: int | None,
) -> _Run:
    calendar = target.calendar
    business = target.counts_business

    # Running segments from start: [start, inf) minus the stops clipped to [start, end).
    segments: list[tuple[int, int | None]] = []
    cursor: int | None = start
    count_stops = 0
    paused_since: int | None = None
    for a, b in stops:
        if end is not None and a >= end:
            break
        if b is not None and b <= start:
            continue
        if end is not None and (b is None or b > end):
            b = end
        a = max(a, start)
        if b is not None and b <= a:
            continue
        count_stops += 1
        assert cursor is not None
        if a > cursor:
            segments.append((cursor, a))
        if b is None:
            cursor = None
            paused_since = a
            break
        cursor = b
    if cursor is not None:
        segments.append((cursor, None))

    def reach(amount: int) -> int | None:
        remaining = amount
        for a, b in segments:
            if b is not None:
                available = calendar.between_us(a, b) if business else b - a
                if available < remaining:
                    remaining -= available
                    continue
            return calendar.add_us(a, remaining) if business else a + remaining
        return None

    allowance = target.allowance_us(start)
    due = reach(allowance)
    applied = late = 0
    for moment, seconds in extensions:
        if (end is not None and moment > end) or (due is not None and moment > due):
            late += 1
            continue
        allowance += seconds * US_PER_SECOND
        applied += seconds
        due = reach(allowance)

    marks = [(f, reach(round(f * allowance))) for f in target.thresholds]

    reference = end if end is not None else now
    elapsed_wall = elapsed_business = paused_wall = paused_business = None
    if reference is not None:
        elapsed_wall = elapsed_business = 0
        for a, b in segments:
            if a >= reference:
                break
            stop = reference if b is None or b > reference else b
            elapsed_wall += stop - a
            elapsed_business += calendar.between_us(a, stop)
        if reference > start and count_stops:
            paused_wall = (reference - start) - elapsed_wall
            paused_business = calendar.between_us(start, reference) - elapsed_business
        else:  # nothing stopped the clock before the reference: nothing was paused
            paused_wall = paused_business = 0

    return _Run(
        allowance=allowance,
        extension_seconds=applied,
        late_extensions=late,
        due=due,
        marks=marks,
        elapsed_wall=elapsed_wall,
        elapsed_business=elapsed_business,
        paused_wall=paused_wall,
        paused_business=paused_business,
        stops=count_stops,
        paused_since=paused_since if end is None else None,
    )


def _seconds(us: int | None) -> float | None:
    return None if us is None else us / US_PER_SECOND


def _instant(us: int | None) -> datetime | None:
    return None if us is None else from_us(us)


def _marks(run: _Run, end: int | None, now: int | None) -> tuple[ThresholdMark, ...]:
    reference = end if end is not None else now
    out = []
    for fraction, at in run.marks:
        crossed = None if reference is None else (at is not None and at <= reference)
        out.append(ThresholdMark(fraction, _instant(at), crossed))
    return tuple(out)


def _verdict(due: int | None, end: int | None, now: int | None) -> tuple[bool | None, int | None]:
    """(on_time, breached_at) of a clock."""
    if end is not None:
        late = due is not None and end > due
        return (not late, due if late else None)
    if due is not None and now is not None and now >= due:
        return (None, due)
    return (None, None)


def _provisional(target: Target, start: int, *instants: int | None) -> bool:
    last = max((i for i in instants if i is not None), default=start)
    return target.calendar.is_provisional_us(start, max(start, last))


#: the event types (and payload classes) the fold reads; other events are skipped.
_CLOCK_TYPES: Final = frozenset(
    {
        "opened",
        "first_contact",
        "paused",
        "resumed",
        "deadline_extended",
        "resolved",
        "closed",
        "reopened",
    }
)
_CLOCK_PAYLOADS: Final = (PausedPayload, DeadlineExtendedPayload, ResolvedPayload)


def _ordered(events: Iterable[Event]) -> list[Event]:
    seen: set[str] = set()
    distinct: list[Event] = []
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            distinct.append(event)
    distinct.sort(key=order_key)
    return distinct


def evaluate(events: Iterable[Event], policies: PolicySet, now: datetime | None = None) -> CaseSla:
    """The SLA outcome of one case (rules: module docstring and docs/sla.md).

    ``events`` are the case's events; duplicates (same ``event_id``, first copy wins) are
    dropped and the rest sorted by ``order_key``, so any arrival order gives the same
    result. ``now`` (aware) only affects running clocks. Raises ValueError without events.
    """
    ordered = _ordered(events)
    if not ordered:
        raise ValueError("evaluate() needs at least one event")
    case_id = ordered[0].case_id
    now_us = to_us(now) if now is not None else None

    intake_index = next((i for i, e in enumerate(ordered) if e.type == "opened"), None)
    if intake_index is None:
        return CaseSla(case_id, None, "", "", None, now, None, (), (NO_OPENED,))
    intake_event = ordered[intake_index]
    opened = intake_event.payload
    assert isinstance(opened, OpenedPayload)
    policy = policies.match(opened.category, opened.urgency)
    base = (case_id, opened.category, opened.urgency, intake_event.occurred_at)
    if policy is None:
        return CaseSla(base[0], None, base[1], base[2], base[3], now, None, (), (NO_POLICY,))
    intake = to_us(intake_event.occurred_at)

    anomalies: list[str] = []

    def note(code: str) -> None:
        if code not in anomalies:
            anomalies.append(code)

    cycles = [_CycleAcc(0, intake, "opened")]
    pause_log: list[tuple[int, str | None]] = []
    first_contact: int | None = None
    response_extensions: list[tuple[int, int]] = []
    for index, event in enumerate(ordered):
        payload = event.payload
        kind = event.type
        if kind not in _CLOCK_TYPES and not isinstance(payload, _CLOCK_PAYLOADS):
            continue  # dispatch, transfers, callbacks, ratings: no effect on the clocks
        moment = to_us(event.occurred_at)
        current = cycles[-1]
        if kind == "opened":
            if index != intake_index:
                note(DUPLICATE_OPENED)
        elif kind == "first_contact":
            if first_contact is None:
                first_contact = moment
                if index < intake_index:
                    note(FIRST_CONTACT_BEFORE_OPENED)
        elif isinstance(payload, PausedPayload):
            pause_log.append((moment, payload.reason))
        elif kind == "resumed":
            pause_log.append((moment, None))
        elif isinstance(payload, DeadlineExtendedPayload):
            extension = (moment, payload.extension_seconds)
            if payload.target == "first_response":
                response_extensions.append(extension)
            else:
                current.extensions.append(extension)
        elif isinstance(payload, ResolvedPayload):
            if current.end is None:
                current.end, current.ended_by = moment, "resolved"
                current.closure_reason = payload.closure_reason
                if index < intake_index:
                    note(RESOLVED_BEFORE_OPENED)
        elif kind == "closed":
            if current.end is None:
                current.end, current.ended_by = moment, "closed"
                if index < intake_index:
                    note(CLOSED_BEFORE_OPENED)
        elif kind == "reopened":
            if current.end is not None and index > intake_index:
                cycles.append(_CycleAcc(len(cycles), moment, "reopened"))
                pause_log.append((moment, None))  # a reopened case runs again
            else:
                note(REOPENED_WHILE_OPEN)

    # First response.
    target = policy.first_response
    first_end = cycles[0].end
    fr_end: int | None
    fr_by: FirstResponseEnd | None
    if first_contact is not None and (first_end is None or first_contact <= first_end):
        fr_end, fr_by = first_contact, "first_contact"
    elif first_end is not None:
        fr_end, fr_by = first_end, cycles[0].ended_by
    else:
        fr_end, fr_by = None, None
    run = _run_clock(
        target,
        intake,
        fr_end,
        response_extensions,
        _stops(pause_log, target.pause_reasons),
        now_us,
    )
    on_time, breached = _verdict(run.due, fr_end, now_us)
    if fr_by in ("resolved", "closed"):
        on_time = False
    if run.late_extensions:
        note(LATE_EXTENSION)
    first_response = FirstResponse(
        policy_id=policy.id,
        target=target,
        started_at=intake_event.occurred_at,
        allowed_seconds=run.allowance / US_PER_SECOND,
        extension_seconds=run.extension_seconds,
        late_extensions=run.late_extensions,
        due_at=_instant(run.due),
        responded_at=_instant(fr_end) if fr_by == "first_contact" else None,
        ended_at=_instant(fr_end),
        ended_by=fr_by,
        elapsed_seconds=_seconds(run.elapsed_wall),
        elapsed_business_seconds=_seconds(run.elapsed_business),
        paused_seconds=_seconds(run.paused_wall),
        paused_since=_instant(run.paused_since),
        on_time=on_time,
        breached_at=_instant(breached),
        thresholds=_marks(run, fr_end, now_us),
        provisional=_provisional(target, intake, run.due, fr_end),
    )

    # Resolution cycles.
    target = policy.resolution
    stops = _stops(pause_log, target.pause_reasons)
    out: list[ResolutionCycle] = []
    for cycle in cycles:
        run = _run_clock(target, cycle.start, cycle.end, cycle.extensions, stops, now_us)
        on_time, breached = _verdict(run.due, cycle.end, now_us)
        if run.late_extensions:
            note(LATE_EXTENSION)
        out.append(
            ResolutionCycle(
                index=cycle.index,
                policy_id=policy.id,
                target=target,
                started_at=from_us(cycle.start),
                started_by=cycle.started_by,
                allowed_seconds=run.allowance / US_PER_SECOND,
                extension_seconds=run.extension_seconds,
                late_extensions=run.late_extensions,
                due_at=_instant(run.due),
                resolved_at=_instant(cycle.end) if cycle.ended_by == "resolved" else None,
                closure_reason=cycle.closure_reason,
                ended_at=_instant(cycle.end),
                ended_by=cycle.ended_by,
                elapsed_seconds=_seconds(run.elapsed_wall),
                elapsed_business_seconds=_seconds(run.elapsed_business),
                paused_seconds=_seconds(run.paused_wall),
                paused_business_seconds=_seconds(run.paused_business),
                pauses=run.stops,
                paused_since=_instant(run.paused_since),
                on_time=on_time,
                breached_at=_instant(breached),
                thresholds=_marks(run, cycle.end, now_us),
                provisional=_provisional(target, cycle.start, run.due, cycle.end),
            )
        )

    return CaseSla(
        case_id=case_id,
        policy_id=policy.id,
        category=opened.category,
        urgency=opened.urgency,
        opened_at=intake_event.occurred_at,
        now=now,
        first_response=first_response,
        cycles=tuple(out),
        anomalies=tuple(anomalies),
    )


def next_timer(case_sla: CaseSla, after: datetime | None = None) -> Timer | None:
    """The earliest pending warning or breach of the case's running clocks, strictly after
    ``after`` (default: the evaluation's ``now``; with neither, the earliest of all of
    them). None when no clock runs or every instant is past or unknown (open pause).

    A scheduler re-evaluates the case at ``Timer.at`` (with ``now=Timer.at``) and then
    asks again; events that arrive meanwhile (a contact, a pause, an extension) change
    the instants, so timers are always taken from the latest evaluation.
    """
    limit = after if after is not None else case_sla.now
    candidates: list[tuple[datetime, int, float, Timer]] = []

    def add(
        target: TargetName,
        cycle: int | None,
        due: datetime | None,
        marks: tuple[ThresholdMark, ...],
    ) -> None:
        order = 0 if cycle is None else 1
        for mark in marks:
            if mark.at is not None and (limit is None or mark.at > limit):
                timer = Timer(mark.at, "warning", mark.fraction, target, cycle)
                candidates.append((mark.at, order, mark.fraction, timer))
        if due is not None and (limit is None or due > limit):
            candidates.append((due, order, 1.0, Timer(due, "breach", None, target, cycle)))

    fr = case_sla.first_response
    if fr is not None and fr.is_open:
        add("first_response", None, fr.due_at, fr.thresholds)
    cycle = case_sla.current_cycle
    if cycle is not None and cycle.is_open:
        add("resolution", cycle.index, cycle.due_at, cycle.thresholds)
    if not candidates:
        return None
    return min(candidates, key=lambda c: (c[0], c[1], c[2]))[3]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, Target):
        return {
            "clock": value.clock,
            "within_seconds": value.seconds,
            "working_days": value.days,
            "calendar": value.calendar.name,
        }
    if isinstance(value, ThresholdMark):
        return {"fraction": value.fraction, "at": _plain(value.at), "crossed": value.crossed}
    if isinstance(value, FirstResponse | ResolutionCycle):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def case_sla_to_dict(case_sla: CaseSla) -> dict[str, Any]:
    """JSON-ready view of a :class:`CaseSla` (timestamps in the contract's canonical UTC
    form, the target as clock / within_seconds / working_days / calendar)."""
    return {f.name: _plain(getattr(case_sla, f.name)) for f in fields(case_sla)}
