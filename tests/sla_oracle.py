"""A brute-force oracle for the SLA clock of docs/sla.md ("Calendars" and "Clock rules").

Written from docs/sla.md alone. It imports nothing from ``streams.core.sla`` except what
the caller hands it: the matched policy's two targets (``Target`` objects, read for their
``clock``, ``seconds``, ``days``, ``calendar.name``, ``thresholds`` and ``pause_reasons``
only; no calendar method is ever called). Everything else is computed here, slowly:

* **Calendar.** The calendar file ``config/calendars/<id>.yaml`` is read directly (every
  scalar as a string), holidays and adjusted working days come from the ``chinese_calendar``
  or ``holidays`` package directly. For each local date the day plan follows the five
  numbered rules of "Which hours a local date has", then the closures are cut out. A local
  wall time becomes the earliest instant whose local wall time is at or after it, found by
  stepping minute by minute (this is the gap and repeated-hour rule of "Time zones and
  DST" in one line). Whether a minute is working time is then asked minute by minute.
* **Clock.** Time is stepped one minute at a time from the clock's start, asking for each
  minute: is the clock stopped (the pause reason in force is one of the target's pause
  reasons, inside the clock's ``[start, stop)``)? is it working time? The counted time
  ``C`` is kept at every minute boundary; a deadline or warning instant is the earliest
  instant at which ``C`` reaches the amount, interpolated inside the one minute that
  reaches it (within a minute the clock counts at a constant rate, because every event
  time and every working-interval boundary lies on a whole minute: the oracle checks
  this and refuses anything else).

Instants are integer microseconds since the Unix epoch (UTC) inside, aware UTC datetimes
outside. ``evaluate_oracle`` returns plain dicts (see ``FIRST_RESPONSE_KEYS`` and
``CYCLE_KEYS``) so a test can compare them with the engine's result field by field.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import chinese_calendar
import holidays as holidays_package
import yaml

ROOT = Path(__file__).resolve().parent.parent
CALENDARS_DIR = ROOT / "config" / "calendars"

US = 1_000_000
MINUTE = 60 * US
DAY_MINUTES = 24 * 60
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The lifecycle rank: the order of the type table of docs/events.md.
RANK = {
    name: i
    for i, name in enumerate(
        [
            "opened",
            "dispatched",
            "signed_for",
            "first_contact",
            "transferred",
            "returned",
            "paused",
            "resumed",
            "deadline_extended",
            "resolved",
            "closed",
            "callback",
            "rated",
            "reopened",
        ]
    )
}

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
CHINESE_CALENDAR_YEARS = (2004, 2026)  # chinese-calendar 1.11.0, docs/sla.md

# A clock that never reaches its allowance within this many minutes is a bug in the
# generator or the oracle (the property tests keep histories to a few weeks).
MAX_MINUTES = 200 * DAY_MINUTES


class OracleError(AssertionError):
    """An input the oracle does not handle (e.g. a time that is not on a whole minute)."""


# --------------------------------------------------------------------------- instants


def us_of(value: datetime | str) -> int:
    """Microseconds since the epoch of an aware datetime or an RFC 3339 string, truncated
    to the millisecond (event times are kept to the millisecond)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise OracleError(f"naive datetime {value!r}")
    delta = value - EPOCH
    us = (delta.days * 86400 + delta.seconds) * US + delta.microseconds
    return us - us % 1000


def dt_of(us: int | None) -> datetime | None:
    return None if us is None else EPOCH + timedelta(microseconds=us)


def minute_of(us: int) -> int:
    if us % MINUTE:
        raise OracleError(f"instant {dt_of(us)} is not on a whole minute")
    return us // MINUTE


# --------------------------------------------------------------------------- calendar


def _clock_seconds(text: str) -> int:
    parts = [int(p) for p in text.split(":")]
    hours, minutes = parts[0], parts[1]
    seconds = parts[2] if len(parts) == 3 else 0
    return hours * 3600 + minutes * 60 + seconds


def _span(text: str) -> tuple[int, int]:
    start, end = text.split("-")
    return _clock_seconds(start), _clock_seconds(end)


def _weekdays_of_key(key: str) -> list[int]:
    """``mon-fri`` -> [0..4], ``sat,sun`` -> [5, 6], ``mon`` -> [0]."""
    days: list[int] = []
    for part in key.split(","):
        if "-" in part:
            first, last = (WEEKDAYS.index(p) for p in part.split("-"))
            day = first
            while True:
                days.append(day)
                if day == last:
                    break
                day = (day + 1) % 7
        else:
            days.append(WEEKDAYS.index(part))
    return days


class OracleCalendar:
    """A calendar read from its YAML file, answering "is this minute working time?"."""

    def __init__(self, name: str, calendars_dir: Path = CALENDARS_DIR) -> None:
        self.name = name
        path = Path(calendars_dir) / f"{name}.yaml"
        if not path.exists() and name == "24x7":
            doc: dict[str, Any] = {"kind": "wall_clock", "timezone": "UTC"}
        else:
            # BaseLoader: every scalar is a string, so 13:30 stays "13:30".
            doc = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
        self.kind = doc.get("kind", "business")
        self.tz = ZoneInfo(doc["timezone"])
        self.weekly: dict[int, list[tuple[int, int]]] = {d: [] for d in range(7)}
        for key, spans in (doc.get("hours") or {}).items():
            for day in _weekdays_of_key(key):
                self.weekly[day] = [_span(s) for s in spans]
        if "adjusted_working_day_hours" in doc:
            self.adjusted_hours = [_span(s) for s in doc["adjusted_working_day_hours"]]
        else:
            self.adjusted_hours = next((self.weekly[d] for d in range(7) if self.weekly[d]), [])
        holidays_spec = doc.get("public_holidays") or {"source": "none"}
        self.source = holidays_spec.get("source", "none")
        self.beyond_coverage = holidays_spec.get("beyond_coverage", "weekly")
        years = holidays_spec.get("years")
        if years:
            self.years: tuple[int, int] | None = (int(years[0]), int(years[1]))
        elif self.source == "chinese_calendar":
            self.years = CHINESE_CALENDAR_YEARS
        else:
            self.years = None
        self.country = holidays_spec.get("country")
        self.subdiv = holidays_spec.get("subdiv")
        self.closures: dict[date, list[tuple[int, int] | None]] = {}
        for entry in doc.get("closures") or []:
            hours = _span(entry["hours"]) if "hours" in entry else None
            self.closures.setdefault(date.fromisoformat(entry["date"]), []).append(hours)
        self.extra: dict[date, list[tuple[int, int]] | None] = {}
        for entry in doc.get("extra_working_days") or []:
            spans = [_span(s) for s in entry["hours"]] if "hours" in entry else None
            self.extra[date.fromisoformat(entry["date"])] = spans
        self._flags: dict[int, bytes] = {}

    # ---- the holiday source

    def covered(self, day: date) -> bool:
        """Is ``day`` within the years the holiday source is trusted for?"""
        if self.kind == "wall_clock" or self.source == "none" or self.years is None:
            return True
        return self.years[0] <= day.year <= self.years[1]

    @functools.cache  # noqa: B019 - calendars live as long as the test session
    def source_says(self, day: date) -> str:
        """``holiday``, ``adjusted`` (a weekend day worked), ``normal`` or ``uncovered``."""
        if self.source == "none":
            return "normal"
        if not self.covered(day):
            return "uncovered"
        if self.source == "chinese_calendar":
            try:
                is_holiday, name = chinese_calendar.get_holiday_detail(day)
            except NotImplementedError:
                return "uncovered"
            if is_holiday and name is not None:
                return "holiday"  # a statutory holiday (an ordinary weekend has no name)
            if chinese_calendar.is_workday(day) and day.weekday() >= 5:
                return "adjusted"
            return "normal"
        assert self.source == "holidays", self.source
        table = holidays_package.country_holidays(
            self.country, subdiv=self.subdiv, years=range(day.year - 1, day.year + 2)
        )
        if day in table:
            return "holiday"
        if day in getattr(table, "weekend_workdays", set()):
            return "adjusted"
        return "normal"

    # ---- the day plan

    @functools.cache  # noqa: B019
    def local_spans(self, day: date) -> tuple[tuple[int, int], ...]:
        """The working spans of a local date, as (start, end) seconds after local midnight."""
        if self.kind == "wall_clock":
            return ((0, 86400),)
        if day in self.extra:  # rule 1
            spans = self.extra[day] if self.extra[day] is not None else self.adjusted_hours
        else:
            said = self.source_says(day)
            if said == "holiday":  # rule 2
                spans = []
            elif said == "adjusted":  # rule 3
                spans = self.weekly[day.weekday()] or self.adjusted_hours
            elif said == "uncovered":  # rule 4
                if self.beyond_coverage == "error":
                    raise OracleError(f"{self.name}: {day} is beyond the holiday source")
                spans = self.weekly[day.weekday()]
            else:  # rule 5
                spans = self.weekly[day.weekday()]
        # Closures: cut second by second (a day has 86400 of them; simple beats clever).
        open_seconds = bytearray(86400)
        for start, end in spans or []:
            open_seconds[start:end] = b"\x01" * (end - start)
        for closure in self.closures.get(day, []):
            start, end = closure if closure is not None else (0, 86400)
            open_seconds[start:end] = b"\x00" * (end - start)
        result: list[tuple[int, int]] = []
        s = open_seconds.find(1)
        while s != -1:
            e = open_seconds.find(0, s)
            e = 86400 if e == -1 else e
            result.append((s, e))
            s = open_seconds.find(1, e)
        return tuple(result)

    @functools.cache  # noqa: B019
    def local_to_us(self, day: date, seconds: int) -> int:
        """The instant of local wall time ``day`` + ``seconds`` (86400 = the next day's
        00:00): the earliest instant whose local wall time is at or after it. So a wall time
        in the spring-forward gap is the instant the clocks jump, and a repeated one is its
        first occurrence."""
        wall = datetime(day.year, day.month, day.day) + timedelta(seconds=seconds)
        # Start where every earlier instant is certainly still before `wall` locally.
        probe = wall.replace(tzinfo=UTC)
        offsets = [
            (probe + timedelta(days=k)).astimezone(self.tz).utcoffset() or timedelta(0)
            for k in (-2, -1, 0, 1, 2)
        ]
        t = probe - max(offsets) - timedelta(minutes=2)
        step = timedelta(minutes=1) if seconds % 60 == 0 else timedelta(seconds=1)
        assert t.astimezone(self.tz).replace(tzinfo=None) < wall
        while t.astimezone(self.tz).replace(tzinfo=None) < wall:
            t += step
        return us_of(t)

    @functools.cache  # noqa: B019
    def intervals(self, day: date) -> tuple[tuple[int, int], ...]:
        """The working intervals of a local date as instants, [start, end)."""
        result = []
        for start, end in self.local_spans(day):
            a, b = self.local_to_us(day, start), self.local_to_us(day, end)
            if a < b:
                if a % MINUTE or b % MINUTE:
                    raise OracleError(f"{self.name}: {day} has a boundary off the minute")
                result.append((a, b))
        return tuple(result)

    def local_date(self, us: int) -> date:
        return dt_of(us).astimezone(self.tz).date()  # type: ignore[union-attr]

    def is_working_day(self, day: date) -> bool:
        return bool(self.intervals(day))

    def close_of_business(self, day: date) -> int:
        return max(end for _, end in self.intervals(day))

    def provisional_day(self, day: date) -> bool:
        return not self.covered(day)

    # ---- minute by minute

    def is_working_minute(self, minute: int) -> bool:
        """Is the minute [minute, minute + 1) (minutes since the epoch) working time?"""
        utc_day, index = divmod(minute, DAY_MINUTES)
        flags = self._flags.get(utc_day)
        if flags is None:
            flags = bytes(
                self._compute_minute(utc_day * DAY_MINUTES + i) for i in range(DAY_MINUTES)
            )
            self._flags[utc_day] = flags
        return bool(flags[index])

    def _compute_minute(self, minute: int) -> bool:
        t = minute * MINUTE
        local = self.local_date(t)
        for day in (local - timedelta(days=1), local, local + timedelta(days=1)):
            for start, end in self.intervals(day):
                if start <= t < end:
                    return True
        return False

    def working_seconds(self, a: int, b: int) -> int:
        """Working time in [a, b) in seconds, minute by minute (a, b on whole minutes)."""
        return sum(60 for m in range(minute_of(a), minute_of(b)) if self.is_working_minute(m))

    def add_working_days(self, a: int, n: int) -> int:
        """The close of business of the n-th working day after the local date of ``a``."""
        day = self.local_date(a)
        found = 0
        for _ in range(400):
            day += timedelta(days=1)
            if self.is_working_day(day):
                found += 1
                if found == n:
                    return self.close_of_business(day)
        raise OracleError(f"{self.name}: no {n} working days after {day}")


@functools.cache
def calendar(name: str, calendars_dir: str = str(CALENDARS_DIR)) -> OracleCalendar:
    return OracleCalendar(name, Path(calendars_dir))


# --------------------------------------------------------------------------- events


@dataclass(frozen=True)
class Ev:
    us: int
    rank: int
    event_id: str
    type: str
    payload: Mapping[str, Any]

    @property
    def key(self) -> tuple[int, int, str]:
        return (self.us, self.rank, self.event_id)


def _plain(event: Any) -> Ev:
    """An event dict (v1 envelope) or a ``streams.contract.Event``, as an ``Ev``."""
    if isinstance(event, Mapping):
        kind, payload = event["type"], dict(event["payload"])
        return Ev(us_of(event["occurred_at"]), RANK[kind], event["event_id"], kind, payload)
    payload = {f.name: getattr(event.payload, f.name) for f in dataclasses.fields(event.payload)}
    return Ev(us_of(event.occurred_at), RANK[event.type], event.event_id, event.type, payload)


def ordered_events(events: Iterable[Any]) -> list[Ev]:
    """Distinct by event id (the first copy wins), sorted by (time, rank, id)."""
    seen: dict[str, Ev] = {}
    for event in events:
        ev = _plain(event)
        seen.setdefault(ev.event_id, ev)
    return sorted(seen.values(), key=lambda e: e.key)


# --------------------------------------------------------------------------- one clock


@dataclass
class ClockInput:
    """What the rules give one clock before any time is counted."""

    start: int
    end: int | None  # the instant the clock stopped (None: running)
    base_allowance: int  # µs of the target's own time
    extensions: list[tuple[int, int]] = field(default_factory=list)  # (at, µs), event order


class Clock:
    """One clock stepped minute by minute: its counted time C at every minute boundary."""

    def __init__(
        self,
        cal: OracleCalendar,
        counts_business: bool,
        inp: ClockInput,
        stopped_reason: Sequence[tuple[int, str | None]],
        pause_reasons: frozenset[str],
        last_change: int,
    ) -> None:
        self.cal = cal
        self.counts_business = counts_business
        self.inp = inp
        self.changes = list(stopped_reason)  # (instant, reason in force from then on)
        self.change_times = [at for at, _ in self.changes]
        self.pause_reasons = pause_reasons
        self.last_change = last_change
        self.start_minute = minute_of(inp.start)
        self.counted: list[int] = [0]  # counted[i] = C(start + i minutes), µs

    def reason_at(self, minute: int) -> str | None:
        """The pause reason in force during the minute: the last change at or before it."""
        i = bisect.bisect_right(self.change_times, minute * MINUTE)
        return self.changes[i - 1][1] if i else None

    def stopped(self, minute: int) -> bool:
        """Is the clock stopped by a pause during this minute? Stops are clipped to the
        clock's [start, stop)."""
        t = minute * MINUTE
        if t < self.inp.start or (self.inp.end is not None and t >= self.inp.end):
            return False
        return self.reason_at(minute) in self.pause_reasons

    def stopped_forever_from(self, minute: int) -> bool:
        """After the last event nothing changes: a running clock stopped then stays so."""
        return self.inp.end is None and minute * MINUTE >= self.last_change and self.stopped(minute)

    def counts(self, minute: int) -> bool:
        if self.stopped(minute):
            return False
        return self.cal.is_working_minute(minute) if self.counts_business else True

    def step_until(self, amount: int) -> None:
        """Step on until C reaches ``amount`` or the clock is stopped for good."""
        while self.counted[-1] < amount:
            minute = self.start_minute + len(self.counted) - 1
            if self.stopped_forever_from(minute):
                return
            if len(self.counted) > MAX_MINUTES:
                raise OracleError("a clock ran for more than 200 days")
            self.counted.append(self.counted[-1] + (MINUTE if self.counts(minute) else 0))

    def reach(self, amount: int) -> int | None:
        """The earliest instant t with C(t) >= amount (None: never, an open pause)."""
        self.step_until(amount)
        i = bisect.bisect_left(self.counted, amount)
        if i == len(self.counted):
            return None
        if i == 0:
            return self.inp.start
        # C rises at a constant rate inside minute i - 1, from counted[i-1] < amount.
        return self.inp.start + (i - 1) * MINUTE + (amount - self.counted[i - 1])


def _fraction(value: float) -> Fraction:
    return Fraction(str(value))


def run_clock(
    target: Any,
    inp: ClockInput,
    changes: Sequence[tuple[int, str | None]],
    last_change: int,
    now: int | None,
    business_cal: OracleCalendar,
    *,
    is_cycle: bool,
) -> dict[str, Any]:
    """Every figure of one clock (rules 5 to 12)."""
    counts_business = target.clock != "wall"
    clock = Clock(
        business_cal,
        counts_business,
        inp,
        changes,
        frozenset(target.pause_reasons),
        last_change,
    )
    # Rule 7: extensions in event order, each against the deadline before it.
    allowance = inp.base_allowance
    applied, late = 0, 0
    for at, amount in inp.extensions:
        due_before = clock.reach(allowance)
        if (inp.end is not None and at > inp.end) or (due_before is not None and at > due_before):
            late += 1
        else:
            allowance += amount
            applied += amount
    due = clock.reach(allowance)  # rule 8
    marks = []
    for fraction in target.thresholds:  # rule 9
        amount = round(_fraction(fraction) * allowance)
        marks.append([fraction, clock.reach(amount)])

    # Rule 11: elapsed and paused time up to the stop (or now).
    horizon = inp.end if inp.end is not None else now
    elapsed = elapsed_business = paused = paused_business = None
    if horizon is not None:
        elapsed = elapsed_business = paused = paused_business = 0
        for minute in range(minute_of(inp.start), minute_of(max(horizon, inp.start))):
            working = business_cal.is_working_minute(minute)
            if clock.stopped(minute):
                paused += 60
                paused_business += 60 if working else 0
            else:
                elapsed += 60
                elapsed_business += 60 if working else 0

    # Pauses: the stretches of stopped minutes within the clock (its last event bounds a
    # stretch that never ends); paused_since: where the one still in force began.
    last = inp.end if inp.end is not None else max(last_change, inp.start) + MINUTE
    pauses, run_start, previous = 0, None, False
    for minute in range(minute_of(inp.start), minute_of(max(last, inp.start))):
        now_stopped = clock.stopped(minute)
        if now_stopped and not previous:
            pauses += 1
            run_start = minute * MINUTE
        previous = now_stopped
    paused_since = run_start if inp.end is None and previous else None

    # Rule 10: the verdicts.
    if inp.end is not None:
        on_time = due is not None and inp.end <= due
        breached_at = due if due is not None and inp.end > due else None
        for mark in marks:
            mark.append(mark[1] is not None and mark[1] <= inp.end)
    else:
        on_time = None
        breached_at = due if now is not None and due is not None and now >= due else None
        for mark in marks:
            mark.append(None if now is None else (mark[1] is not None and mark[1] <= now))

    result: dict[str, Any] = {
        "started_at": dt_of(inp.start),
        "allowed_seconds": allowance / US,
        "extension_seconds": applied // US,
        "late_extensions": late,
        "due_at": dt_of(due),
        "ended_at": dt_of(inp.end),
        "elapsed_seconds": None if elapsed is None else float(elapsed),
        "elapsed_business_seconds": None if elapsed_business is None else float(elapsed_business),
        "paused_seconds": None if paused is None else float(paused),
        "paused_since": dt_of(paused_since),
        "on_time": on_time,
        "breached_at": dt_of(breached_at),
        "thresholds": tuple((f, dt_of(at), crossed) for f, at, crossed in marks),
    }
    if is_cycle:
        result["paused_business_seconds"] = (
            None if paused_business is None else float(paused_business)
        )
        result["pauses"] = pauses
    result["_due_us"] = due
    return result


# --------------------------------------------------------------------------- the case


def evaluate_oracle(
    events: Iterable[Any],
    policies: Any,
    now: datetime | None = None,
    calendars_dir: Path = CALENDARS_DIR,
) -> dict[str, Any]:
    """The SLA of one case, as plain dicts (``policies.match`` picks the policy)."""
    evs = ordered_events(events)
    now_us = None if now is None else us_of(now)
    openeds = [e for e in evs if e.type == "opened"]
    anomalies: set[str] = set()
    if not openeds:
        return {
            "policy_id": None,
            "opened_at": None,
            "first_response": None,
            "cycles": [],
            "anomalies": {"no_opened"},
        }
    intake = openeds[0]
    if len(openeds) > 1:
        anomalies.add("duplicate_opened")
    start = intake.us
    policy = policies.match(intake.payload["category"], intake.payload["urgency"])
    result: dict[str, Any] = {
        "policy_id": None if policy is None else policy.id,
        "category": intake.payload["category"],
        "urgency": intake.payload["urgency"],
        "opened_at": dt_of(start),
    }
    if policy is None:
        anomalies.add("no_policy")
        return {**result, "first_response": None, "cycles": [], "anomalies": anomalies}

    # Rules 1-4 and 7: one walk in event order.
    cycles: list[dict[str, Any]] = [
        {"start": start, "started_by": "opened", "end": None, "ended_by": None,
         "resolved_at": None, "closure_reason": None, "ext": []}
    ]  # fmt: skip
    fr: dict[str, Any] = {"end": None, "ended_by": None, "responded_at": None, "ext": []}
    changes: list[tuple[int, str | None]] = []  # the pause reason in force, from each instant
    for e in evs:
        if e is intake:
            continue
        current = cycles[-1]
        if e.type == "first_contact":
            if e.us < start:  # flagged whether or not it is the contact that counts
                anomalies.add("first_contact_before_opened")
            if fr["end"] is None:
                fr.update(end=e.us, ended_by="first_contact", responded_at=e.us)
        elif e.type in ("resolved", "closed"):
            if current["end"] is None:
                if e.us < start:  # only the one that ends cycle 0 before intake
                    anomalies.add(f"{e.type}_before_opened")
                current["end"] = e.us
                current["ended_by"] = e.type
                if e.type == "resolved":
                    current["resolved_at"] = e.us
                    current["closure_reason"] = e.payload["closure_reason"]
                if len(cycles) == 1 and fr["end"] is None:
                    fr.update(end=e.us, ended_by=e.type)
        elif e.type == "reopened":
            if current["end"] is not None and e.us >= start:
                cycles.append(
                    {"start": e.us, "started_by": "reopened", "end": None, "ended_by": None,
                     "resolved_at": None, "closure_reason": None, "ext": []}
                )  # fmt: skip
                changes.append((e.us, None))
            else:
                anomalies.add("reopened_while_open")
        elif e.type == "paused":
            changes.append((e.us, e.payload["reason"]))
        elif e.type == "resumed":
            changes.append((e.us, None))
        elif e.type == "deadline_extended":
            owner = fr if e.payload["target"] == "first_response" else current
            owner["ext"].append((e.us, e.payload["extension_seconds"] * US))
    last_change = max(e.us for e in evs)

    def allowance(target: Any, clock_start: int) -> int:
        if target.clock == "working_days":  # rule 6
            cal = calendar(target.calendar.name, str(calendars_dir))
            due = cal.add_working_days(clock_start, target.days)
            return cal.working_seconds(clock_start, due) * US
        return int(target.seconds) * US

    def provisional(target: Any, clock: dict[str, Any]) -> bool:
        cal = calendar(target.calendar.name, str(calendars_dir))
        first = clock["started_at"]
        last = max(x for x in (clock["due_at"], clock["ended_at"], first) if x is not None)
        day = cal.local_date(us_of(first))
        while day <= cal.local_date(us_of(last)):
            if cal.provisional_day(day):
                return True
            day += timedelta(days=1)
        return False

    fr_target = policy.first_response
    fr_out = run_clock(
        fr_target,
        ClockInput(start, fr["end"], allowance(fr_target, start), fr["ext"]),
        changes,
        last_change,
        now_us,
        calendar(fr_target.calendar.name, str(calendars_dir)),
        is_cycle=False,
    )
    fr_out["ended_by"] = fr["ended_by"]
    fr_out["responded_at"] = dt_of(fr["responded_at"])
    if fr["ended_by"] in ("resolved", "closed"):
        fr_out["on_time"] = False  # the citizen was never contacted
    fr_out["provisional"] = provisional(fr_target, fr_out)
    fr_out["policy_id"] = policy.id

    res_target = policy.resolution
    cycles_out = []
    for index, cycle in enumerate(cycles):
        # Ended before it started (stamped before intake): elapsed 0, nothing clipped.
        out = run_clock(
            res_target,
            ClockInput(
                cycle["start"],
                cycle["end"],
                allowance(res_target, cycle["start"]),
                cycle["ext"],
            ),
            changes,
            last_change,
            now_us,
            calendar(res_target.calendar.name, str(calendars_dir)),
            is_cycle=True,
        )
        out.update(
            index=index,
            policy_id=policy.id,
            started_by=cycle["started_by"],
            resolved_at=dt_of(cycle["resolved_at"]),
            closure_reason=cycle["closure_reason"],
            ended_by=cycle["ended_by"],
        )
        out["provisional"] = provisional(res_target, out)
        cycles_out.append(out)
    for clock in [fr_out, *cycles_out]:
        if clock["late_extensions"]:
            anomalies.add("late_extension")
        del clock["_due_us"]
    return {**result, "first_response": fr_out, "cycles": cycles_out, "anomalies": anomalies}


FIRST_RESPONSE_KEYS = (
    "policy_id",
    "started_at",
    "allowed_seconds",
    "extension_seconds",
    "late_extensions",
    "due_at",
    "responded_at",
    "ended_at",
    "ended_by",
    "elapsed_seconds",
    "elapsed_business_seconds",
    "paused_seconds",
    "paused_since",
    "on_time",
    "breached_at",
    "thresholds",
    "provisional",
)
CYCLE_KEYS = (
    "index",
    "policy_id",
    "started_at",
    "started_by",
    "allowed_seconds",
    "extension_seconds",
    "late_extensions",
    "due_at",
    "resolved_at",
    "closure_reason",
    "ended_at",
    "ended_by",
    "elapsed_seconds",
    "elapsed_business_seconds",
    "paused_seconds",
    "paused_business_seconds",
    "pauses",
    "paused_since",
    "on_time",
    "breached_at",
    "thresholds",
    "provisional",
)
