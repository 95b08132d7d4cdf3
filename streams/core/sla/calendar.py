"""Business calendars: when the SLA clock counts, exact across holidays, 调休 and DST.

A calendar answers four questions about instants (aware datetimes, any offset):

* ``is_working_time(t)``: is ``t`` inside a working interval (start inclusive, end
  exclusive)?
* ``business_seconds_between(start, end)``: how much working time lies in ``[start, end)``
  (negative when ``end < start``);
* ``add_business_time(start, seconds)``: the *earliest* instant ``t`` at which
  ``business_seconds_between(start, t) == seconds``; when the allowance runs out exactly at
  the close of a working interval the answer is that close (18:00 on Friday, not 09:00 on
  Monday);
* ``add_working_days(start, n)``: the close of business of the n-th working day *after*
  the local day of ``start`` (the day of intake never counts, whatever the hour: the rule
  of the Civil Code of the PRC, art. 201-203, for periods counted in days; a day is a
  working day when it has at least one working interval).

Two implementations share that interface: :class:`BusinessCalendar` (weekly hours in a
time zone, public holidays and adjusted working days from a maintained package, extra
closures and extra working days from configuration) and :class:`WallClockCalendar` (24x7:
every instant counts, every local day is a working day that closes at local midnight).

How it stays exact and fast:

* Internally every instant is an integer number of microseconds since the Unix epoch
  (``to_us``/``from_us``), so sums are exact and additive.
* A day's working intervals are local wall times converted once to UTC microseconds and
  cached per local date. A local boundary that does not exist (the spring-forward gap)
  maps to the instant the clocks jump; an ambiguous one (the repeated hour in autumn) maps
  to its first occurrence. ``24:00`` of a day is ``00:00`` of the next one, converted by
  the same rule, so consecutive days never overlap nor leave a hole.
* The plans of consecutive days are flattened into a *timeline*: sorted arrays of interval
  starts and ends with prefix sums of working time, grown on demand (and started afresh
  far away). Working time between two instants is a difference of two prefix sums found by
  bisection; adding business time bisects the prefix sums for the target; the n-th working
  day is an index into the list of working days. A wall-clock calendar is plain
  arithmetic. Each operation reads the same days a day-by-day walk would read, so a day
  it cannot plan (beyond the holiday source's years, ``beyond_coverage: error``) raises in
  the same cases (tests/test_sla_calendar_fast.py compares both).
"""

from __future__ import annotations

import importlib
import itertools
import re
from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
US_PER_SECOND: Final = 1_000_000
SECONDS_PER_DAY: Final = 86_400
MAX_IDLE_DAYS: Final = 3660
"""A calendar with no working time for this many consecutive days is an error (a
misconfiguration, e.g. every day closed), not a reason to loop for ever."""

_US_PER_DAY: Final = SECONDS_PER_DAY * US_PER_SECOND
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_MARGIN: Final = 2

WEEKDAYS: Final[tuple[str, ...]] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

Span = tuple[int, int]
"""A local working interval of one day: seconds since local midnight, ``0 <= start <
end <= 86400`` (``86400`` is ``24:00``)."""

DayKind = Literal["regular", "holiday", "adjusted_workday", "uncovered"]
BeyondCoverage = Literal["weekly", "error"]


class CalendarError(ValueError):
    """A calendar cannot answer: bad configuration, or a date outside the years its
    holiday source covers when it is configured with ``beyond_coverage: error``."""


# --------------------------------------------------------------------------- instants


_ONE_US: Final = timedelta(microseconds=1)


def to_us(moment: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime (exact). Naive -> ValueError."""
    zone = moment.tzinfo
    if zone is not UTC and (zone is None or moment.utcoffset() is None):
        raise ValueError("naive datetime: SLA computations need aware datetimes")
    return (moment - EPOCH) // _ONE_US


def from_us(us: int) -> datetime:
    """The aware UTC datetime of ``us`` microseconds since the Unix epoch."""
    return EPOCH + _ONE_US * us


def seconds_to_us(seconds: float | timedelta) -> int:
    """A duration in seconds (float, rounded to the microsecond) or a timedelta, in µs."""
    if isinstance(seconds, timedelta):
        return (
            seconds.days * SECONDS_PER_DAY + seconds.seconds
        ) * US_PER_SECOND + seconds.microseconds
    return round(seconds * US_PER_SECOND)


def local_to_us(tz: ZoneInfo, day: date, second_of_day: int) -> int:
    """The instant of local wall time ``day`` + ``second_of_day`` in ``tz``.

    ``second_of_day`` may be 86400 (24:00, i.e. 00:00 of the next day). A wall time that
    does not exist (DST gap) maps to the instant the clocks jump (the end of the gap); an
    ambiguous one (DST overlap) to its first occurrence.
    """
    if second_of_day >= SECONDS_PER_DAY:
        day = day + timedelta(days=second_of_day // SECONDS_PER_DAY)
        second_of_day %= SECONDS_PER_DAY
    hour, rest = divmod(second_of_day, 3600)
    minute, second = divmod(rest, 60)
    naive = datetime(day.year, day.month, day.day, hour, minute, second)
    first = to_us(naive.replace(tzinfo=tz))
    second_fold = to_us(naive.replace(tzinfo=tz, fold=1))
    if first <= second_fold:  # unique (equal) or ambiguous (first occurrence)
        return first
    # A gap: fold=1 read the wall time with the offset after the jump (an earlier UTC
    # instant), fold=0 with the offset before it. The jump lies in (second_fold, first].
    after = naive.replace(tzinfo=tz, fold=1).utcoffset()
    lo, hi = second_fold // US_PER_SECOND, first // US_PER_SECOND
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if from_us(mid * US_PER_SECOND).astimezone(tz).utcoffset() == after:
            hi = mid
        else:
            lo = mid
    return hi * US_PER_SECOND


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; CalendarError when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CalendarError(f"unknown IANA time zone {name!r}") from exc


# --------------------------------------------------------------------------- parsing helpers

_TIME_RE: Final = re.compile(r"^([01][0-9]|2[0-4]):([0-5][0-9])(?::([0-5][0-9]))?$")


def parse_time_of_day(text: str) -> int:
    """``"HH:MM"`` or ``"HH:MM:SS"`` (``"24:00"`` allowed) -> seconds since midnight."""
    match = _TIME_RE.match(text)
    if not match:
        raise CalendarError(f"{text!r} is not a time of day HH:MM[:SS]")
    seconds = int(match[1]) * 3600 + int(match[2]) * 60 + int(match[3] or 0)
    if seconds > SECONDS_PER_DAY:
        raise CalendarError(f"{text!r} is after 24:00")
    return seconds


def parse_span(text: str) -> Span:
    """``"09:00-12:00"`` -> ``(32400, 43200)``; the start must be before the end."""
    parts = text.split("-")
    if len(parts) != 2:
        raise CalendarError(f"{text!r} is not an interval HH:MM-HH:MM")
    start, end = parse_time_of_day(parts[0].strip()), parse_time_of_day(parts[1].strip())
    if start >= end:
        raise CalendarError(f"{text!r}: the start must be before the end")
    return (start, end)


def check_spans(spans: Sequence[Span]) -> tuple[Span, ...]:
    """Sorted, non-overlapping spans within a day; CalendarError otherwise."""
    ordered = sorted(spans)
    for start, end in ordered:
        if not 0 <= start < end <= SECONDS_PER_DAY:
            raise CalendarError(f"bad working interval {format_span((start, end))}")
    for (_, end), (start, _) in itertools.pairwise(ordered):
        if start < end:
            raise CalendarError("working intervals of a day overlap")
    return tuple(ordered)


def parse_weekdays(text: str) -> list[int]:
    """``"mon"``, ``"mon-fri"``, ``"sat,sun"`` -> weekday numbers (Monday 0)."""
    days: list[int] = []
    for part in text.lower().split(","):
        part = part.strip()
        if "-" in part:
            first, last = (p.strip() for p in part.split("-", 1))
            if first not in WEEKDAYS or last not in WEEKDAYS:
                raise CalendarError(f"{text!r}: unknown weekday")
            a, b = WEEKDAYS.index(first), WEEKDAYS.index(last)
            if a > b:
                raise CalendarError(f"{text!r}: a weekday range runs forwards (mon-fri)")
            days.extend(range(a, b + 1))
        elif part in WEEKDAYS:
            days.append(WEEKDAYS.index(part))
        else:
            raise CalendarError(f"{text!r}: unknown weekday")
    return days


def format_time_of_day(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}" + (f":{secs:02d}" if secs else "")


def format_span(span: Span) -> str:
    return f"{format_time_of_day(span[0])}-{format_time_of_day(span[1])}"


def subtract_span(spans: Sequence[Span], cut: Span) -> tuple[Span, ...]:
    """``spans`` minus the local interval ``cut``."""
    out: list[Span] = []
    for start, end in spans:
        if end <= cut[0] or start >= cut[1]:
            out.append((start, end))
            continue
        if start < cut[0]:
            out.append((start, cut[0]))
        if end > cut[1]:
            out.append((cut[1], end))
    return tuple(out)


# --------------------------------------------------------------------------- holiday sources


class HolidaySource(ABC):
    """Public holidays and adjusted working days (调休) of a jurisdiction."""

    @abstractmethod
    def classify(self, day: date) -> DayKind:
        """``holiday``, ``adjusted_workday`` (a weekend day that is worked), ``regular``
        (the weekly hours decide) or ``uncovered`` (outside the years the source knows)."""

    @property
    @abstractmethod
    def coverage(self) -> tuple[int, int] | None:
        """First and last year the source is trusted for (None: every year)."""

    @abstractmethod
    def describe(self) -> str:
        """One line for the published catalogue."""

    def holiday_name(self, day: date) -> str | None:
        """The name of the holiday or adjusted working day on ``day``, when known."""
        return None


class NoHolidays(HolidaySource):
    """Only the weekly hours (and the configured closures) matter."""

    def classify(self, day: date) -> DayKind:
        return "regular"

    @property
    def coverage(self) -> tuple[int, int] | None:
        return None

    def describe(self) -> str:
        return "no public holidays"


class ChineseCalendarSource(HolidaySource):
    """China's statutory holidays and adjusted working days from the ``chinese-calendar``
    package (the State Council's yearly schedule; a new package release adds each year
    when it is announced, usually in November).

    ``years`` (first, last) bounds the years the source is trusted for; it must lie within
    the package's own range (``package_coverage``), which is the default.
    """

    def __init__(self, years: tuple[int, int] | None = None) -> None:
        try:
            constants: Any = importlib.import_module("chinese_calendar.constants")
            package: Any = importlib.import_module("chinese_calendar")
        except ImportError as exc:  # pragma: no cover - the package is a dependency
            raise CalendarError("the chinese-calendar package is not installed") from exc
        self._holidays: dict[date, str] = dict(constants.holidays)
        self._workdays: dict[date, str] = dict(constants.workdays)
        self.version: str = str(getattr(package, "__version__", "unknown"))
        known = [d.year for d in self._holidays]
        self.package_coverage: tuple[int, int] = (min(known), max(known))
        if years is not None:
            first, last = years
            if first > last:
                raise CalendarError(f"years {first}-{last}: the first year is after the last")
            if first < self.package_coverage[0] or last > self.package_coverage[1]:
                raise CalendarError(
                    f"chinese-calendar {self.version} only covers "
                    f"{self.package_coverage[0]}-{self.package_coverage[1]}"
                )
        self._coverage: tuple[int, int] = years if years is not None else self.package_coverage

    def classify(self, day: date) -> DayKind:
        if not self._coverage[0] <= day.year <= self._coverage[1]:
            return "uncovered"
        if day in self._workdays:
            return "adjusted_workday"
        if day in self._holidays:
            return "holiday"
        return "regular"

    @property
    def coverage(self) -> tuple[int, int] | None:
        return self._coverage

    def holiday_name(self, day: date) -> str | None:
        return self._workdays.get(day) or self._holidays.get(day)

    def describe(self) -> str:
        first, last = self._coverage
        return (
            "China's statutory public holidays and adjusted working days (调休), "
            f"chinese-calendar {self.version}, years {first}-{last}"
        )


class HolidaysPackageSource(HolidaySource):
    """Public holidays of a country (and subdivision) from the ``holidays`` package.

    Dates the package lists are holidays (observed days included); its
    ``weekend_workdays`` (where it has them, e.g. CN) are adjusted working days.
    ``years`` bounds the years the source is trusted for (None: all).
    """

    def __init__(
        self,
        country: str,
        subdiv: str | None = None,
        years: tuple[int, int] | None = None,
    ) -> None:
        try:
            self._module: Any = importlib.import_module("holidays")
        except ImportError as exc:  # pragma: no cover - the package is a dependency
            raise CalendarError("the holidays package is not installed") from exc
        self.country = country
        self.subdiv = subdiv
        self._years = years
        self._by_year: dict[int, tuple[dict[date, str], frozenset[date]]] = {}
        try:
            self._year(2000)
        except (NotImplementedError, KeyError, ValueError) as exc:
            where = f"{country}/{subdiv}" if subdiv else country
            raise CalendarError(f"the holidays package does not know {where!r}") from exc

    def _year(self, year: int) -> tuple[dict[date, str], frozenset[date]]:
        known = self._by_year.get(year)
        if known is None:
            table = self._module.country_holidays(self.country, subdiv=self.subdiv, years=year)
            names = {d: str(n) for d, n in table.items() if d.year == year}
            extra: Iterable[date] = getattr(table, "weekend_workdays", set())
            workdays = frozenset(d for d in extra if d.year == year)
            known = (names, workdays)
            self._by_year[year] = known
        return known

    def classify(self, day: date) -> DayKind:
        if self._years is not None and not self._years[0] <= day.year <= self._years[1]:
            return "uncovered"
        names, workdays = self._year(day.year)
        if day in workdays:
            return "adjusted_workday"
        if day in names:
            return "holiday"
        return "regular"

    @property
    def coverage(self) -> tuple[int, int] | None:
        return self._years

    def holiday_name(self, day: date) -> str | None:
        return self._year(day.year)[0].get(day)

    def describe(self) -> str:
        where = f"{self.country}-{self.subdiv}" if self.subdiv else self.country
        version = getattr(self._module, "__version__", "unknown")
        years = f", years {self._years[0]}-{self._years[1]}" if self._years else ""
        return f"public holidays of {where}, holidays {version}{years}"


# --------------------------------------------------------------------------- calendars


@dataclass(frozen=True, slots=True)
class Closure:
    """An extra closure (typhoon, ...): the whole day, or the local span ``hours``."""

    day: date
    hours: Span | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ExtraWorkingDay:
    """A day that is worked although the weekly hours and holidays say it is not.
    ``hours`` None: the calendar's adjusted-working-day hours."""

    day: date
    hours: tuple[Span, ...] | None = None
    reason: str = ""


class Calendar(ABC):
    """The interface shared by business and wall-clock calendars.

    Low-level methods (``*_us``) work in integer microseconds since the epoch (the hot
    path); the others take and return aware datetimes (results in UTC).
    """

    name: str
    tz: ZoneInfo
    description: str

    # -- low level -------------------------------------------------------------------

    @abstractmethod
    def between_us(self, start: int, end: int) -> int:
        """Working microseconds in ``[start, end)``; negative when ``end < start``."""

    @abstractmethod
    def add_us(self, start: int, amount: int) -> int:
        """Earliest instant ``t`` with ``between_us(start, t) == amount`` (amount >= 0)."""

    @abstractmethod
    def add_working_days_us(self, start: int, days: int) -> int:
        """Close of business of the ``days``-th working day after the local day of start."""

    @abstractmethod
    def next_working_us(self, moment: int) -> int:
        """``moment`` if it is working time, else the start of the next working interval."""

    @abstractmethod
    def day_intervals_us(self, day: date) -> tuple[tuple[int, int], ...]:
        """The working intervals of local date ``day`` (UTC µs, sorted, disjoint)."""

    def is_provisional_us(self, start: int, end: int) -> bool:
        """True when a local day in ``[start, end]`` lies outside the holiday source's
        coverage (its holidays were not known: the weekly hours were used)."""
        return False

    # -- public ----------------------------------------------------------------------

    def local_date(self, moment: datetime) -> date:
        """The local calendar date of ``moment`` in this calendar's zone."""
        return moment.astimezone(self.tz).date()

    def is_working_time(self, moment: datetime) -> bool:
        us = to_us(moment)
        return self.next_working_us(us) == us

    def is_working_day(self, day: date) -> bool:
        return bool(self.day_intervals_us(day))

    def working_intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The working intervals of local date ``day``, as UTC datetimes."""
        return [(from_us(s), from_us(e)) for s, e in self.day_intervals_us(day)]

    def next_working_instant(self, moment: datetime) -> datetime:
        return from_us(self.next_working_us(to_us(moment)))

    def business_delta(self, start: datetime, end: datetime) -> timedelta:
        """Working time in ``[start, end)``, exact (negative when end < start)."""
        return timedelta(microseconds=self.between_us(to_us(start), to_us(end)))

    def business_seconds_between(self, start: datetime, end: datetime) -> float:
        """Working seconds in ``[start, end)`` (negative when end < start)."""
        return self.between_us(to_us(start), to_us(end)) / US_PER_SECOND

    def add_business_time(self, start: datetime, seconds: float | timedelta) -> datetime:
        """The earliest instant at which ``seconds`` of working time have elapsed since
        ``start`` (``start`` itself for 0; the close of an interval when the allowance
        ends exactly there). ``seconds`` < 0 -> ValueError."""
        amount = seconds_to_us(seconds)
        if amount < 0:
            raise ValueError("business time to add must be >= 0")
        return from_us(self.add_us(to_us(start), amount))

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """The close of business of the ``days``-th working day after the local day of
        ``start`` (that day itself never counts). ``days`` < 1 -> ValueError."""
        return from_us(self.add_working_days_us(to_us(start), days))

    def is_provisional(self, start: datetime, end: datetime) -> bool:
        return self.is_provisional_us(to_us(start), to_us(end))

    def _ordinal(self, us: int) -> int:
        """The exact local date (proleptic ordinal) of instant ``us``."""
        return from_us(us).astimezone(self.tz).toordinal()


class WallClockCalendar(Calendar):
    """24x7: every instant is working time; every local day is a working day closing at
    local midnight (so ``add_working_days(t, n)`` is 24:00 of the n-th day after t's day,
    the Civil Code's rule for periods in calendar days)."""

    def __init__(self, name: str = "24x7", timezone: str = "UTC", description: str = "") -> None:
        self.name = name
        self.tz = zone(timezone)
        self.description = description or f"24x7 wall clock ({timezone})"
        self._closes: dict[int, int] = {}  # local ordinal -> its 24:00 in µs

    def between_us(self, start: int, end: int) -> int:
        return end - start

    def add_us(self, start: int, amount: int) -> int:
        if amount < 0:
            raise ValueError("business time to add must be >= 0")
        return start + amount

    def add_working_days_us(self, start: int, days: int) -> int:
        if days < 1:
            raise ValueError("working days to add must be >= 1")
        ordinal = self._ordinal(start) + days
        close = self._closes.get(ordinal)
        if close is None:
            close = local_to_us(self.tz, date.fromordinal(ordinal), SECONDS_PER_DAY)
            if len(self._closes) > 100_000:  # bounded memory for pathological inputs
                self._closes.clear()
            self._closes[ordinal] = close
        return close

    def next_working_us(self, moment: int) -> int:
        return moment

    def day_intervals_us(self, day: date) -> tuple[tuple[int, int], ...]:
        start = local_to_us(self.tz, day, 0)
        end = local_to_us(self.tz, day, SECONDS_PER_DAY)
        return ((start, end),) if end > start else ()

    def __repr__(self) -> str:
        return f"WallClockCalendar({self.name!r}, {self.tz.key!r})"


_Day = tuple[tuple[tuple[int, int], ...], int]  # (intervals in UTC µs, total µs)

_PAD_DAYS: Final = 64
"""Days planned beyond those an operation needs, so that the timeline grows rarely."""
_FAR_DAYS: Final = 1500
"""A request further than this from the timeline starts a new one instead of growing it."""
_FIRST_ORDINAL: Final = 1
_LAST_ORDINAL: Final = date.max.toordinal()


class _Timeline:
    """The working intervals of the consecutive local days ``lo`` .. ``hi - 1``, flattened
    into sorted UTC µs arrays with prefix sums, so that questions about instants are
    bisections instead of walks over days.

    ``starts[i]``, ``ends[i]``: the i-th interval; ``cum[i]``: the working µs of the
    intervals before it (``cum[-1]``: all of them); ``first_interval[d - lo]``: the index of
    the first interval of day ``d``; ``working_days`` / ``closes``: the days that have
    working time and the end of their last interval. Consecutive days never overlap, so the
    arrays are sorted across days too.

    Days come from ``plan`` (the calendar's cached day plans). A day that cannot be planned
    (CalendarError) is raised only when an operation needs it; when it is only padding, the
    timeline stops short of it.
    """

    __slots__ = (
        "bad",
        "closes",
        "cum",
        "ends",
        "first_interval",
        "hi",
        "lo",
        "long_idle",
        "plan",
        "starts",
        "trailing_idle",
        "working_days",
    )

    def __init__(self, plan: Callable[[int], _Day]) -> None:
        self.plan = plan
        self.bad: set[int] = set()
        self.lo = self.hi = 0
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.cum: list[int] = [0]
        self.first_interval: list[int] = [0]
        self.working_days: list[int] = []
        self.closes: list[int] = []
        self.trailing_idle = 0
        self.long_idle = False

    def worked_before(self, moment: int) -> int:
        """Working µs of the timeline before ``moment``."""
        index = bisect_right(self.starts, moment) - 1
        if index < 0:
            return 0
        end = self.ends[index]
        return self.cum[index] + (moment if moment < end else end) - self.starts[index]

    def day_of(self, index: int) -> int:
        """The local day (ordinal) of interval ``index``."""
        return self.lo + bisect_right(self.first_interval, index) - 1

    def cover(self, first: int, last: int) -> None:
        """Make the timeline hold the days ``first`` .. ``last`` (a day among them that
        cannot be planned raises)."""
        lo, hi = self.lo, self.hi
        if lo <= first and last < hi:
            return
        if hi <= lo or first < lo - _FAR_DAYS or last >= hi + _FAR_DAYS:
            self.build(first - _PAD_DAYS, last + 1 + _PAD_DAYS, first, last)
        else:
            grow = max(_PAD_DAYS, (hi - lo) // 2)
            new_lo = min(lo, first - grow) if first < lo else lo
            new_hi = max(hi, last + 1 + grow) if last >= hi else hi
            self.build(new_lo, new_hi, first, last)

    def extend(self, window: int, message: str) -> None:
        """Add days after the last one (the first of them is needed) for an operation
        that reads the days from ``window`` on; CalendarError(message) when those already
        end with more than MAX_IDLE_DAYS days without working time."""
        if min(self.trailing_idle, self.hi - window) > MAX_IDLE_DAYS:
            raise CalendarError(message)
        hi = self.hi
        self.build(self.lo, hi + max(_PAD_DAYS, (hi - self.lo) // 2), hi, hi)

    def check_idle(self, first: int, last: int, message: str) -> None:
        """CalendarError(message) when the days ``first`` .. ``last - 1`` hold more than
        MAX_IDLE_DAYS consecutive days without working time."""
        marks = self.first_interval
        idle = 0
        for offset in range(first - self.lo, last - self.lo):
            if marks[offset + 1] == marks[offset]:
                idle += 1
                if idle > MAX_IDLE_DAYS:
                    raise CalendarError(message)
            else:
                idle = 0

    def build(self, lo: int, hi: int, first: int, last: int) -> None:
        """Rebuild the timeline over the days ``lo`` .. ``hi - 1``, which must include the
        needed days ``first`` .. ``last``; padding days that cannot be planned shorten it."""
        lo, hi = max(lo, _FIRST_ORDINAL), min(hi, _LAST_ORDINAL + 1)
        plan, bad = self.plan, self.bad
        plans: list[_Day] = []
        begin = lo
        for ordinal in range(lo, hi):
            needed = first <= ordinal <= last
            if needed or ordinal not in bad:
                try:
                    plans.append(plan(ordinal))
                    continue
                except CalendarError:
                    if needed:
                        raise
                    if len(bad) > 10_000:
                        bad.clear()
                    bad.add(ordinal)
            if ordinal > last:
                break
            plans.clear()  # a day before the needed ones: start after it
            begin = ordinal + 1

        starts: list[int] = []
        ends: list[int] = []
        cum = [0]
        marks: list[int] = []
        working: list[int] = []
        closes: list[int] = []
        total = idle = 0
        long_idle = False
        for ordinal, (intervals, _) in enumerate(plans, begin):
            marks.append(len(starts))
            if intervals:
                for s, e in intervals:
                    starts.append(s)
                    ends.append(e)
                    total += e - s
                    cum.append(total)
                working.append(ordinal)
                closes.append(intervals[-1][1])
                idle = 0
            else:
                idle += 1
                long_idle = long_idle or idle > MAX_IDLE_DAYS
        marks.append(len(starts))
        self.lo, self.hi = begin, begin + len(plans)
        self.starts, self.ends, self.cum = starts, ends, cum
        self.first_interval, self.working_days, self.closes = marks, working, closes
        self.trailing_idle, self.long_idle = idle, long_idle


class BusinessCalendar(Calendar):
    """Weekly working hours in an IANA zone, minus public holidays and closures, plus
    adjusted working days (调休) and extra working days.

    How a local date's hours are chosen, in this order:

    1. an :class:`ExtraWorkingDay` for that date: its hours (default: ``adjusted_hours``);
    2. the holiday source says ``holiday``: no hours;
    3. the holiday source says ``adjusted_workday``: the weekly hours of that weekday if it
       has any, else ``adjusted_hours`` (default: the first weekday, Monday to Sunday, that
       has hours);
    4. ``uncovered`` (outside the source's years): the weekly hours when
       ``beyond_coverage`` is ``"weekly"`` (the result is *provisional*), CalendarError
       when it is ``"error"``;
    5. otherwise the weekly hours of that weekday.

    Then every :class:`Closure` of that date is cut out (a closure without hours empties
    the day).
    """

    def __init__(
        self,
        name: str,
        timezone: str,
        weekly_hours: Mapping[int, Sequence[Span]],
        *,
        holidays: HolidaySource | None = None,
        adjusted_hours: Sequence[Span] | None = None,
        closures: Iterable[Closure] = (),
        extra_working_days: Iterable[ExtraWorkingDay] = (),
        beyond_coverage: BeyondCoverage = "weekly",
        description: str = "",
    ) -> None:
        self.name = name
        self.tz = zone(timezone)
        self.description = description
        weekly: list[tuple[Span, ...]] = [()] * 7
        for weekday, spans in weekly_hours.items():
            if not 0 <= weekday <= 6:
                raise CalendarError(f"weekday {weekday} is not 0 (Monday) .. 6 (Sunday)")
            weekly[weekday] = check_spans(spans)
        if not any(weekly):
            raise CalendarError(f"calendar {name!r} has no weekly working hours")
        self.weekly: tuple[tuple[Span, ...], ...] = tuple(weekly)
        if adjusted_hours is None:
            adjusted_hours = next(spans for spans in self.weekly if spans)
        self.adjusted_hours: tuple[Span, ...] = check_spans(adjusted_hours)
        self.holidays: HolidaySource = holidays or NoHolidays()
        self.beyond_coverage: BeyondCoverage = beyond_coverage
        self.closures: tuple[Closure, ...] = tuple(sorted(closures, key=lambda c: c.day))
        self._closures_by_day: dict[date, list[Closure]] = {}
        for closure in self.closures:
            if closure.hours is not None:
                check_spans([closure.hours])
            self._closures_by_day.setdefault(closure.day, []).append(closure)
        self.extra_working_days: tuple[ExtraWorkingDay, ...] = tuple(
            sorted(extra_working_days, key=lambda e: e.day)
        )
        self._extra_by_day: dict[date, ExtraWorkingDay] = {}
        for extra in self.extra_working_days:
            if extra.day in self._extra_by_day:
                raise CalendarError(f"extra working day {extra.day} listed twice")
            if extra.hours is not None:
                check_spans(extra.hours)
            self._extra_by_day[extra.day] = extra
        self._days: dict[int, _Day] = {}
        self._line = _Timeline(self._day)
        # A fixed guess of the zone's offset: local dates computed with it are within a
        # day of the true ones (offsets vary by far less than a day, except for a zone
        # jumping across the date line, which a margin of two days still covers).
        reference = datetime(2000, 1, 1, tzinfo=UTC).astimezone(self.tz).utcoffset()
        self._offset_guess = seconds_to_us(reference) if reference is not None else 0
        self._coverage_us: tuple[int, int] | None = None
        coverage = self.holidays.coverage
        if coverage is not None:
            self._coverage_us = (
                local_to_us(self.tz, date(coverage[0], 1, 1), 0),
                local_to_us(self.tz, date(coverage[1] + 1, 1, 1), 0),
            )

    def _near(self, us: int) -> int:
        """The local date of ``us`` (ordinal), give or take a day or two: a cheap starting
        point for scans that begin two days earlier / end two days later."""
        return (us + self._offset_guess) // _US_PER_DAY + _EPOCH_ORDINAL

    # -- day plans ---------------------------------------------------------------------

    def local_spans(self, day: date) -> tuple[Span, ...]:
        """The local working spans of ``day`` after holidays and closures."""
        extra = self._extra_by_day.get(day)
        if extra is not None:
            spans = extra.hours if extra.hours is not None else self.adjusted_hours
        else:
            kind = self.holidays.classify(day)
            weekly = self.weekly[day.weekday()]
            if kind == "holiday":
                spans = ()
            elif kind == "adjusted_workday":
                spans = weekly or self.adjusted_hours
            elif kind == "uncovered" and self.beyond_coverage == "error":
                raise CalendarError(
                    f"calendar {self.name!r}: {day} is outside the years its holiday "
                    f"source covers ({self.holidays.describe()})"
                )
            else:
                spans = weekly
        for closure in self._closures_by_day.get(day, ()):
            spans = () if closure.hours is None else subtract_span(spans, closure.hours)
        return spans

    def _day(self, ordinal: int) -> _Day:
        plan = self._days.get(ordinal)
        if plan is None:
            day = date.fromordinal(ordinal)
            intervals: list[tuple[int, int]] = []
            for start, end in self.local_spans(day):
                s = local_to_us(self.tz, day, start)
                e = local_to_us(self.tz, day, end)
                if e > s:
                    intervals.append((s, e))
            plan = (tuple(intervals), sum(e - s for s, e in intervals))
            if len(self._days) > 200_000:  # bounded memory for pathological inputs
                self._days.clear()
            self._days[ordinal] = plan
        return plan

    def day_intervals_us(self, day: date) -> tuple[tuple[int, int], ...]:
        return self._day(day.toordinal())[0]

    # -- operations ----------------------------------------------------------------------
    #
    # Each operation first names the local days the day-by-day definition reads (the
    # same days as a walk over the day plans: a day that cannot be planned, outside the
    # holiday source's years with ``beyond_coverage: error``, raises exactly when such a
    # walk would reach it), makes the timeline cover them, then answers by bisection.

    def _idle_message(self, what: str) -> str:
        return f"calendar {self.name!r} has no working {what} for {MAX_IDLE_DAYS} days"

    def between_us(self, start: int, end: int) -> int:
        if end <= start:
            return 0 if end == start else -self.between_us(end, start)
        line = self._line
        guess = self._offset_guess
        # A day's intervals lie within that local day: days before the local date of
        # ``start`` end before it, days after that of ``end`` begin after it.
        first = (start + guess) // _US_PER_DAY + _EPOCH_ORDINAL - _MARGIN
        last = (end + guess) // _US_PER_DAY + _EPOCH_ORDINAL + _MARGIN
        if first < line.lo or last >= line.hi:
            if last - first > 12:
                # Long span: exact local dates, and a margin of one day (which covers a
                # repeated hour across midnight).
                first, last = self._ordinal(start) - 1, self._ordinal(end) + 1
            line.cover(first, last)
        return line.worked_before(end) - line.worked_before(start)

    def add_us(self, start: int, amount: int) -> int:
        if amount < 0:
            raise ValueError("business time to add must be >= 0")
        if amount == 0:
            return start
        line = self._line
        first = self._near(start) - _MARGIN
        if first < line.lo or first >= line.hi:
            line.cover(first, first)
        while True:
            target = line.worked_before(start) + amount
            cum = line.cum
            if cum[-1] >= target:
                break
            line.extend(first, self._idle_message("time"))
        # The first interval whose end reaches the target: the answer lies inside it (at
        # its end when the target is reached exactly there).
        index = bisect_left(cum, target) - 1
        if line.long_idle:
            line.check_idle(first, line.day_of(index), self._idle_message("time"))
        return line.starts[index] + (target - cum[index])

    def add_working_days_us(self, start: int, days: int) -> int:
        if days < 1:
            raise ValueError("working days to add must be >= 1")
        line = self._line
        after = self._ordinal(start) + 1
        if after < line.lo or after >= line.hi:
            line.cover(after, after)
        while True:
            index = bisect_left(line.working_days, after) + days - 1
            if index < len(line.working_days):
                break
            line.extend(after, self._idle_message("day"))
        if line.long_idle:
            line.check_idle(after, line.working_days[index], self._idle_message("day"))
        return line.closes[index]

    def next_working_us(self, moment: int) -> int:
        line = self._line
        first = self._near(moment) - _MARGIN
        if first < line.lo or first >= line.hi:
            line.cover(first, first)
        while True:
            index = bisect_right(line.ends, moment)
            if index < len(line.ends):
                break
            line.extend(first, self._idle_message("time"))
        if line.long_idle:
            line.check_idle(first, line.day_of(index), self._idle_message("time"))
        begin = line.starts[index]
        return begin if begin > moment else moment

    def is_provisional_us(self, start: int, end: int) -> bool:
        bounds = self._coverage_us
        if bounds is None or self.beyond_coverage == "error":
            return False
        return min(start, end) < bounds[0] or max(start, end) >= bounds[1]

    def __repr__(self) -> str:
        return f"BusinessCalendar({self.name!r}, {self.tz.key!r})"
