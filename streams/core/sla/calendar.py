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
* Operations walk day by day over the cached plans (a whole day is one addition), never
  minute by minute.
"""

from __future__ import annotations

import importlib
import itertools
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
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


def to_us(moment: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime (exact). Naive -> ValueError."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: SLA computations need aware datetimes")
    delta = moment - EPOCH
    return (delta.days * SECONDS_PER_DAY + delta.seconds) * US_PER_SECOND + delta.microseconds


def from_us(us: int) -> datetime:
    """The aware UTC datetime of ``us`` microseconds since the Unix epoch."""
    return EPOCH + timedelta(microseconds=us)


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

    def between_us(self, start: int, end: int) -> int:
        return end - start

    def add_us(self, start: int, amount: int) -> int:
        if amount < 0:
            raise ValueError("business time to add must be >= 0")
        return start + amount

    def add_working_days_us(self, start: int, days: int) -> int:
        if days < 1:
            raise ValueError("working days to add must be >= 1")
        last = date.fromordinal(self._ordinal(start) + days)
        return local_to_us(self.tz, last, SECONDS_PER_DAY)

    def next_working_us(self, moment: int) -> int:
        return moment

    def day_intervals_us(self, day: date) -> tuple[tuple[int, int], ...]:
        start = local_to_us(self.tz, day, 0)
        end = local_to_us(self.tz, day, SECONDS_PER_DAY)
        return ((start, end),) if end > start else ()

    def __repr__(self) -> str:
        return f"WallClockCalendar({self.name!r}, {self.tz.key!r})"


_Day = tuple[tuple[tuple[int, int], ...], int]  # (intervals in UTC µs, total µs)


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
        self._cum_base: int | None = None
        self._cum: list[int] = [0]
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

    def _days_total(self, first: int, last: int) -> int:
        """Working µs of the local days ``first`` .. ``last`` (ordinals, inclusive), from
        prefix sums extended on demand."""
        base = self._cum_base
        if base is None or first < base:
            keep = base + len(self._cum) - 1 if base is not None else first
            base = self._cum_base = first - 366
            self._cum = [0]
            self._extend_cum(max(keep, last + 1))
        self._extend_cum(last + 1)
        return self._cum[last + 1 - base] - self._cum[first - base]

    def _extend_cum(self, upto: int) -> None:
        base = self._cum_base
        assert base is not None
        cum = self._cum
        while base + len(cum) - 1 < upto:
            cum.append(cum[-1] + self._day(base + len(cum) - 1)[1])

    def _clipped(self, ordinal: int, start: int, end: int) -> int:
        total = 0
        for s, e in self._day(ordinal)[0]:
            if e <= start:
                continue
            if s >= end:
                break
            total += (e if e < end else end) - (s if s > start else start)
        return total

    def between_us(self, start: int, end: int) -> int:
        if end <= start:
            return 0 if end == start else -self.between_us(end, start)
        # A day's intervals lie within that local day: days before the local date of
        # ``start`` end before it, days after that of ``end`` begin after it.
        first, last = self._near(start) - _MARGIN, self._near(end) + _MARGIN
        if last - first > 12:
            # Long span: exact local dates, the days next to either end clipped one by one
            # (a margin of one day covers a repeated hour across midnight), the days in
            # between from prefix sums.
            first, last = self._ordinal(start), self._ordinal(end)
            total = self._days_total(first + 2, last - 2)
            for ordinal in (first - 1, first, first + 1, last - 1, last, last + 1):
                total += self._clipped(ordinal, start, end)
            return total
        total = 0
        for ordinal in range(first, last + 1):
            intervals, day_total = self._day(ordinal)
            if not intervals:
                continue
            if start <= intervals[0][0] and intervals[-1][1] <= end:
                total += day_total
            else:
                total += self._clipped(ordinal, start, end)
        return total

    def add_us(self, start: int, amount: int) -> int:
        if amount < 0:
            raise ValueError("business time to add must be >= 0")
        if amount == 0:
            return start
        ordinal = self._near(start) - _MARGIN
        idle = 0
        while True:
            intervals, day_total = self._day(ordinal)
            if not intervals:
                idle += 1
                if idle > MAX_IDLE_DAYS:
                    raise CalendarError(
                        f"calendar {self.name!r} has no working time for {MAX_IDLE_DAYS} days"
                    )
            else:
                idle = 0
                if start <= intervals[0][0] and day_total < amount:
                    amount -= day_total
                else:
                    for s, e in intervals:
                        if e <= start:
                            continue
                        begin = s if s > start else start
                        available = e - begin
                        if amount <= available:
                            return begin + amount
                        amount -= available
            ordinal += 1

    def add_working_days_us(self, start: int, days: int) -> int:
        if days < 1:
            raise ValueError("working days to add must be >= 1")
        ordinal = self._ordinal(start)
        counted = idle = 0
        while True:
            ordinal += 1
            intervals = self._day(ordinal)[0]
            if intervals:
                counted += 1
                idle = 0
                if counted == days:
                    return intervals[-1][1]
            else:
                idle += 1
                if idle > MAX_IDLE_DAYS:
                    raise CalendarError(
                        f"calendar {self.name!r} has no working day for {MAX_IDLE_DAYS} days"
                    )

    def next_working_us(self, moment: int) -> int:
        ordinal = self._near(moment) - _MARGIN
        idle = 0
        while True:
            intervals = self._day(ordinal)[0]
            for s, e in intervals:
                if e > moment:
                    return s if s > moment else moment
            idle = idle + 1 if not intervals else 0
            if idle > MAX_IDLE_DAYS:
                raise CalendarError(
                    f"calendar {self.name!r} has no working time for {MAX_IDLE_DAYS} days"
                )
            ordinal += 1

    def is_provisional_us(self, start: int, end: int) -> bool:
        bounds = self._coverage_us
        if bounds is None or self.beyond_coverage == "error":
            return False
        return min(start, end) < bounds[0] or max(start, end) >= bounds[1]

    def __repr__(self) -> str:
        return f"BusinessCalendar({self.name!r}, {self.tz.key!r})"
