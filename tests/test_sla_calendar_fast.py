"""The calendars' arithmetic (prefix sums and bisection over cached day plans) against a
plain day-by-day walk kept here.

The reference below reads nothing but ``day_intervals_us`` (a local date's working
intervals, checked against the minute-stepping oracle by tests/test_sla_properties.py) and
walks the local days one by one, clipping each interval: the definition of docs/sla.md
("Calendars"), slowly. Hypothesis draws instants (anywhere in a day, or on an interval's
boundary give or take a microsecond or a minute) in windows that cover China's National
Day and Spring Festival with their adjusted working weekends, a typhoon closure of whole
and partial days, extra working days, the last covered year of the chinese-calendar
package and the provisional year after it, Los Angeles' DST changes (hours inside the gap
and the repeated hour) and Santiago's, which happen at midnight. Every calendar is used
both warm (one instance for the whole test) and cold (a new instance for the example), so
the timeline is grown, restarted and extended in every order.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.sla.calendar import (
    Calendar,
    CalendarError,
    WallClockCalendar,
    from_us,
    local_to_us,
)
from streams.core.sla.policy import calendar_from_text, load_calendar
from tests.sla_oracle import CHINESE_CALENDAR_YEARS

CALENDARS_DIR = Path(__file__).resolve().parent.parent / "config" / "calendars"
US = 1_000_000
DAY_US = 86_400 * US

# --------------------------------------------------------------------------- reference


def local_ordinal(cal: Calendar, us: int) -> int:
    return from_us(us).astimezone(cal.tz).toordinal()


def day_intervals(cal: Calendar, ordinal: int) -> tuple[tuple[int, int], ...]:
    return cal.day_intervals_us(date.fromordinal(ordinal))


def ref_between(cal: Calendar, start: int, end: int) -> int:
    """Working µs in [start, end), negative when end < start."""
    if end < start:
        return -ref_between(cal, end, start)
    total = 0
    for ordinal in range(local_ordinal(cal, start) - 2, local_ordinal(cal, end) + 3):
        for s, e in day_intervals(cal, ordinal):
            lo, hi = max(s, start), min(e, end)
            if hi > lo:
                total += hi - lo
    return total


def ref_add(cal: Calendar, start: int, amount: int) -> int:
    """The earliest instant at which ``amount`` µs of working time have elapsed."""
    if amount == 0:
        return start
    ordinal = local_ordinal(cal, start) - 2
    for _ in range(5000):
        for s, e in day_intervals(cal, ordinal):
            if e <= start:
                continue
            begin = max(s, start)
            if amount <= e - begin:
                return begin + amount
            amount -= e - begin
        ordinal += 1
    raise AssertionError("no answer within 5000 days")


def ref_next_working(cal: Calendar, moment: int) -> int:
    ordinal = local_ordinal(cal, moment) - 2
    for _ in range(5000):
        for s, e in day_intervals(cal, ordinal):
            if e > moment:
                return max(s, moment)
        ordinal += 1
    raise AssertionError("no working time within 5000 days")


def ref_add_working_days(cal: Calendar, start: int, days: int) -> int:
    """Close of business of the ``days``-th working day after the local day of start."""
    ordinal = local_ordinal(cal, start)
    counted = 0
    for _ in range(5000):
        ordinal += 1
        intervals = day_intervals(cal, ordinal)
        if intervals:
            counted += 1
            if counted == days:
                return intervals[-1][1]
    raise AssertionError("no working day within 5000 days")


# --------------------------------------------------------------------------- calendars

TEXTS = {
    # Closures of whole and partial days, extra working days with and without hours,
    # Saturday hours (an adjusted Saturday keeps them, an adjusted Sunday takes the
    # adjusted-working-day hours).
    "cn-test": """
version: 1
timezone: Asia/Shanghai
hours:
  mon-fri: ["09:00-12:00", "13:00-17:30"]
  sat: ["10:00-12:00"]
public_holidays: {source: chinese_calendar, beyond_coverage: weekly}
adjusted_working_day_hours: ["08:30-11:30", "14:00-16:00"]
closures:
  - {date: "2024-10-09", reason: typhoon}
  - {date: "2024-10-10", reason: typhoon}
  - {date: "2024-10-12", hours: "11:00-12:00"}
  - {date: "2025-09-30", reason: typhoon}
  - {date: "2025-10-10", hours: "13:00-15:00"}
  - {date: "2026-02-12", reason: typhoon}
  - {date: "2026-02-13", hours: "12:00-24:00"}
  - {date: "2027-01-04", hours: "09:00-12:00"}
extra_working_days:
  - {date: "2024-10-03", hours: ["10:00-14:00"]}
  - {date: "2025-10-05", hours: ["10:00-14:00"]}
  - {date: "2025-10-19"}
  - {date: "2026-02-22", hours: ["09:00-10:30"]}
""",
    # Holidays known up to 2025 only: 2026 onwards uses the weekly hours (provisional).
    "cn-to-2025": """
version: 1
timezone: Asia/Shanghai
hours: {mon-fri: ["09:00-17:00"]}
public_holidays: {source: chinese_calendar, years: [2004, 2025], beyond_coverage: weekly}
""",
    # Hours inside Los Angeles' spring-forward gap and repeated hour, a day closing at 24:00.
    "la-night": """
version: 1
timezone: America/Los_Angeles
hours:
  mon-fri: ["08:00-12:00", "13:00-17:00"]
  sat: ["00:30-03:00"]
  sun: ["01:30-02:15", "02:45-04:00", "22:00-24:00"]
public_holidays: {source: holidays, country: US, subdiv: CA}
""",
    # Santiago changes its clocks at midnight: 24:00 of Saturday repeats an hour (April)
    # or does not exist (September).
    "cl-midnight": """
version: 1
timezone: America/Santiago
hours:
  mon-fri: ["08:00-18:00"]
  sat: ["20:00-24:00"]
  sun: ["00:00-02:00", "23:00-24:00"]
""",
}


def _shipped(name: str) -> Callable[[], Calendar]:
    return lambda: load_calendar(CALENDARS_DIR / f"{name}.yaml")


def _text(name: str) -> Callable[[], Calendar]:
    return lambda: calendar_from_text(TEXTS[name], name)


FACTORIES: dict[str, Callable[[], Calendar]] = {
    "cn-beijing": _shipped("cn-beijing"),
    "cn-shanghai": _shipped("cn-shanghai"),
    "us-los-angeles": _shipped("us-los-angeles"),
    "cn-24x7": _shipped("cn-24x7"),
    "la-days": lambda: WallClockCalendar("la-days", "America/Los_Angeles"),
    **{name: _text(name) for name in TEXTS},
}
WARM = {name: make() for name, make in FACTORIES.items()}

CN_WINDOWS = [
    (date(2024, 9, 20), 30),  # National Day 2024, closures and extra days of cn-test
    (date(2025, 9, 20), 35),  # National Day + Mid-Autumn 2025
    (date(2026, 1, 25), 40),  # Spring Festival 2026
    (date(2026, 12, 10), 45),  # the package's last covered days, then 2027 (provisional)
    (date(2025, 12, 15), 30),  # cn-to-2025's last covered days
]
WINDOWS: dict[str, list[tuple[date, int]]] = {
    "cn-beijing": CN_WINDOWS,
    "cn-shanghai": CN_WINDOWS,
    "cn-test": CN_WINDOWS,
    "cn-to-2025": CN_WINDOWS,
    "cn-24x7": CN_WINDOWS,
    "us-los-angeles": [(date(2025, 3, 1), 20), (date(2025, 10, 25), 30)],
    "la-night": [(date(2025, 3, 1), 20), (date(2025, 10, 25), 30), (date(2026, 3, 1), 14)],
    "la-days": [(date(2025, 3, 5), 8), (date(2025, 10, 30), 8)],
    "cl-midnight": [(date(2025, 4, 1), 14), (date(2025, 9, 2), 14)],
}
NUDGES = [0, 0, 1, -1, 60 * US, -60 * US]


@st.composite
def instants(draw: st.DrawFn, cal: Calendar, window: tuple[date, int]) -> int:
    """An instant of a local day in ``window``: anywhere, or on (next to) a boundary of
    one of its working intervals or of the day itself."""
    first, days = window
    day = first + timedelta(days=draw(st.integers(0, days)))
    midnight = local_to_us(cal.tz, day, 0)
    if draw(st.booleans()):
        return midnight + draw(st.integers(0, DAY_US))
    bounds = [midnight, *(b for span in cal.day_intervals_us(day) for b in span)]
    return draw(st.sampled_from(bounds)) + draw(st.sampled_from(NUDGES))


@st.composite
def setups(draw: st.DrawFn) -> tuple[str, Calendar, tuple[date, int]]:
    name = draw(st.sampled_from(sorted(FACTORIES)))
    cal = WARM[name] if draw(st.booleans()) else FACTORIES[name]()
    return name, cal, draw(st.sampled_from(WINDOWS[name]))


AMOUNTS = st.one_of(
    st.integers(0, 3 * DAY_US),
    st.integers(0, 240).map(lambda minutes: minutes * 60 * US),
    st.sampled_from([1, 7_200 * US, 27_000 * US, 32_400 * US, 86_400 * US, 20 * DAY_US]),
)


@settings(max_examples=400, deadline=None)
@given(setups(), st.data())
def test_between_agrees_with_the_day_walk(
    setup: tuple[str, Calendar, tuple[date, int]], data: st.DataObject
) -> None:
    name, cal, window = setup
    a = data.draw(instants(cal, window), "a")
    b = data.draw(instants(cal, window), "b")
    assert cal.between_us(a, b) == ref_between(cal, a, b), name
    assert cal.between_us(b, a) == ref_between(cal, b, a), name
    assert cal.is_working_time(from_us(a)) == (ref_next_working(cal, a) == a), name


@settings(max_examples=400, deadline=None)
@given(setups(), AMOUNTS, st.data())
def test_add_agrees_with_the_day_walk(
    setup: tuple[str, Calendar, tuple[date, int]], amount: int, data: st.DataObject
) -> None:
    name, cal, window = setup
    start = data.draw(instants(cal, window), "start")
    due = cal.add_us(start, amount)
    assert due == ref_add(cal, start, amount), name
    assert cal.between_us(start, due) == amount, name
    assert cal.next_working_us(start) == ref_next_working(cal, start), name
    # The allowance that ends exactly at a boundary gives that boundary.
    boundary = data.draw(instants(cal, window), "boundary")
    if boundary > start:
        exact = ref_between(cal, start, boundary)
        assert cal.add_us(start, exact) == ref_add(cal, start, exact), name


@settings(max_examples=300, deadline=None)
@given(setups(), st.integers(1, 25), st.data())
def test_working_days_agree_with_the_day_walk(
    setup: tuple[str, Calendar, tuple[date, int]], days: int, data: st.DataObject
) -> None:
    name, cal, window = setup
    start = data.draw(instants(cal, window), "start")
    assert cal.add_working_days_us(start, days) == ref_add_working_days(cal, start, days), name


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(sorted(FACTORIES)), st.data())
def test_a_sequence_of_questions_in_any_order_agrees(name: str, data: st.DataObject) -> None:
    """One cold calendar asked about far-apart windows in turn (the timeline restarts,
    grows backwards and forwards)."""
    cal = FACTORIES[name]()
    for _ in range(6):
        window = data.draw(st.sampled_from(WINDOWS[name]))
        a = data.draw(instants(cal, window))
        b = data.draw(instants(cal, window))
        amount = data.draw(AMOUNTS)
        assert cal.between_us(a, b) == ref_between(cal, a, b), name
        assert cal.add_us(a, amount) == ref_add(cal, a, amount), name
        assert cal.add_working_days_us(b, 3) == ref_add_working_days(cal, b, 3), name


def test_long_and_distant_spans_agree() -> None:
    cal = FACTORIES["cn-test"]()
    points = [
        datetime(2024, 9, 27, 10, tzinfo=UTC),
        datetime(2026, 2, 20, 3, tzinfo=UTC),
        datetime(2019, 5, 1, 2, tzinfo=UTC),
        datetime(2031, 7, 1, 2, tzinfo=UTC),
        datetime(2024, 10, 11, 7, 30, tzinfo=UTC),
    ]
    us = [int((p - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * US for p in points]
    for a in us:
        for b in us:
            assert cal.between_us(a, b) == ref_between(cal, a, b)
        assert cal.add_us(a, 400 * 3600 * US) == ref_add(cal, a, 400 * 3600 * US)
        assert cal.add_working_days_us(a, 40) == ref_add_working_days(cal, a, 40)


# --------------------------------------------------------------------------- refusals

STRICT = """
version: 1
timezone: Asia/Shanghai
hours: {mon-fri: ["09:00-17:00"]}
public_holidays: {source: chinese_calendar, beyond_coverage: error}
"""


def cn(*args: int) -> int:
    moment = datetime(*args, tzinfo=UTC) - timedelta(hours=8)  # type: ignore[misc]
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * US


@pytest.mark.parametrize("cold", [True, False])
def test_beyond_coverage_error_raises_only_for_the_days_a_walk_reads(cold: bool) -> None:
    """With ``beyond_coverage: error`` an answer that needs a day after the package's last
    year raises, one that does not is given, whatever the calendar was asked before."""
    strict = calendar_from_text(STRICT, "strict")
    if not cold:  # a timeline already grown up to the last covered day
        strict.between_us(cn(2026, 12, 1, 10), cn(2026, 12, 28, 10))
    last = CHINESE_CALENDAR_YEARS[1]
    weekly = calendar_from_text(STRICT.replace("error", "weekly"), "weekly")
    assert strict.add_us(cn(last, 12, 31, 9), 3600 * US) == cn(last, 12, 31, 10)
    assert strict.add_working_days_us(cn(last, 12, 29, 12), 2) == cn(last, 12, 31, 17)
    assert strict.next_working_us(cn(last, 12, 31, 16)) == cn(last, 12, 31, 16)
    # Long spans read the exact local days, one more on each side.
    a, b = cn(last, 12, 1, 10), cn(last, 12, 30, 10)
    assert strict.between_us(a, b) == ref_between(weekly, a, b)
    with pytest.raises(CalendarError, match="outside the years"):
        strict.add_us(cn(last, 12, 31, 16), 2 * 3600 * US)
    with pytest.raises(CalendarError, match="outside the years"):
        strict.add_working_days_us(cn(last, 12, 29, 12), 3)
    with pytest.raises(CalendarError, match="outside the years"):
        strict.next_working_us(cn(last, 12, 31, 17))
    # Short spans read two days more on each side.
    with pytest.raises(CalendarError, match="outside the years"):
        strict.between_us(cn(last, 12, 31, 9), cn(last, 12, 31, 10))
