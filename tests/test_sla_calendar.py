"""Business calendars: golden deadlines across China's holidays and 调休, DST, typhoon
closures; hypothesis properties of the calendar arithmetic."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.sla.calendar import (
    BusinessCalendar,
    Calendar,
    CalendarError,
    ChineseCalendarSource,
    Closure,
    ExtraWorkingDay,
    HolidaysPackageSource,
    WallClockCalendar,
    from_us,
    local_to_us,
    parse_span,
    parse_time_of_day,
    parse_weekdays,
    to_us,
)

CN = timezone(timedelta(hours=8))
SHANGHAI = ZoneInfo("Asia/Shanghai")
LA = ZoneInfo("America/Los_Angeles")
BERLIN = ZoneInfo("Europe/Berlin")
HOUR = 3600.0

BJ_HOURS = [parse_span("09:00-12:00"), parse_span("13:30-18:00")]  # 7.5 h a day


def beijing(**kwargs: object) -> BusinessCalendar:
    return BusinessCalendar(
        "cn-beijing",
        "Asia/Shanghai",
        {d: BJ_HOURS for d in range(5)},
        holidays=ChineseCalendarSource(),
        **kwargs,  # type: ignore[arg-type]
    )


BJ = beijing()
LA_OFFICE = BusinessCalendar(
    "la", "America/Los_Angeles", {d: [(9 * 3600, 17 * 3600)] for d in range(5)}
)


def local(tz: tzinfo, y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=tz)


def cn(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return local(CN, y, mo, d, h, mi, s)


# --------------------------------------------------------------------------- China golden


FRIDAY_BEFORE_NATIONAL_DAY = cn(2024, 9, 27, 15, 0)  # Fri; Sun 29 Sep is worked (调休)


def test_chinese_calendar_knows_2024_national_day_and_adjusted_days() -> None:
    assert BJ.is_working_day(date(2024, 9, 27))  # Friday
    assert not BJ.is_working_day(date(2024, 9, 28))  # Saturday
    assert BJ.is_working_day(date(2024, 9, 29))  # Sunday, adjusted working day
    assert BJ.is_working_day(date(2024, 9, 30))
    for day in range(1, 8):
        assert not BJ.is_working_day(date(2024, 10, day)), day
    assert BJ.is_working_day(date(2024, 10, 8))
    assert BJ.is_working_day(date(2024, 10, 12))  # Saturday, adjusted working day
    assert not BJ.is_working_day(date(2024, 10, 13))


def test_five_working_days_from_the_friday_before_national_day() -> None:
    # The day of intake never counts: Sun 29 Sep (1), Mon 30 Sep (2), 1-7 Oct holiday,
    # Tue 8 (3), Wed 9 (4), Thu 10 Oct (5): the close of business of that day.
    assert BJ.add_working_days(FRIDAY_BEFORE_NATIONAL_DAY, 5) == cn(2024, 10, 10, 18, 0)
    assert BJ.add_working_days(FRIDAY_BEFORE_NATIONAL_DAY, 1) == cn(2024, 9, 29, 18, 0)
    assert BJ.add_working_days(FRIDAY_BEFORE_NATIONAL_DAY, 2) == cn(2024, 9, 30, 18, 0)
    assert BJ.add_working_days(FRIDAY_BEFORE_NATIONAL_DAY, 3) == cn(2024, 10, 8, 18, 0)
    # Tue 8 (3), Wed 9 (4), Thu 10 (5), Fri 11 (6), Sat 12 Oct adjusted working day (7),
    # Mon 14 - Fri 18 (8-12), Mon 21 - Wed 23 (13-15).
    assert BJ.add_working_days(FRIDAY_BEFORE_NATIONAL_DAY, 7) == cn(2024, 10, 12, 18, 0)
    assert BJ.add_working_days(FRIDAY_BEFORE_NATIONAL_DAY, 15) == cn(2024, 10, 23, 18, 0)


def test_the_day_of_intake_never_counts_whatever_the_hour() -> None:
    assert BJ.add_working_days(cn(2024, 9, 27, 0, 5), 1) == cn(2024, 9, 29, 18, 0)
    assert BJ.add_working_days(cn(2024, 9, 27, 23, 59), 1) == cn(2024, 9, 29, 18, 0)
    # Intake on the adjusted-working Sunday itself: that Sunday does not count.
    assert BJ.add_working_days(cn(2024, 9, 29, 10, 0), 1) == cn(2024, 9, 30, 18, 0)
    # Intake on a holiday or a Saturday: the next working day is the first.
    assert BJ.add_working_days(cn(2024, 9, 28, 10, 0), 1) == cn(2024, 9, 29, 18, 0)
    assert BJ.add_working_days(cn(2024, 10, 3, 10, 0), 1) == cn(2024, 10, 8, 18, 0)


def test_national_day_2025_saturday_working_day() -> None:
    friday = cn(2025, 9, 26, 16, 0)  # 2025: Sun 28 Sep and Sat 11 Oct are worked
    assert BJ.add_working_days(friday, 1) == cn(2025, 9, 28, 18, 0)
    assert BJ.add_working_days(friday, 5) == cn(2025, 10, 10, 18, 0)
    assert BJ.add_working_days(friday, 6) == cn(2025, 10, 11, 18, 0)
    assert BJ.is_working_time(cn(2025, 10, 11, 10, 0))


def test_business_hours_across_national_day() -> None:
    start = FRIDAY_BEFORE_NATIONAL_DAY
    # 8 business hours: Fri 15:00-18:00 (3 h), Sun 29 Sep 09:00-12:00 (6 h), 13:30-15:30.
    assert BJ.add_business_time(start, 8 * HOUR) == cn(2024, 9, 29, 15, 30)
    # 24 business hours: Fri 3 h, Sun 7.5 h, Mon 7.5 h (18 h), holiday, Tue 8 Oct 6 h.
    assert BJ.add_business_time(start, 24 * HOUR) == cn(2024, 10, 8, 16, 30)
    assert BJ.business_seconds_between(start, cn(2024, 10, 8, 9, 0)) == 18 * HOUR
    assert BJ.business_seconds_between(start, cn(2024, 10, 10, 18, 0)) == 40.5 * HOUR
    # The allowance running out exactly at a close of business gives that close.
    assert BJ.add_business_time(start, 3 * HOUR) == cn(2024, 9, 27, 18, 0)
    assert BJ.add_business_time(cn(2024, 9, 29, 9, 0), 3 * HOUR) == cn(2024, 9, 29, 12, 0)
    assert BJ.add_business_time(start, timedelta(hours=3, minutes=1)) == cn(2024, 9, 29, 9, 1)
    # Zero: the start itself, even outside working time.
    saturday = cn(2024, 9, 28, 11, 0)
    assert BJ.add_business_time(saturday, 0) == saturday
    assert BJ.add_business_time(saturday, 1) == cn(2024, 9, 29, 9, 0, 1)


def test_working_time_and_next_working_instant() -> None:
    assert BJ.is_working_time(cn(2024, 9, 29, 10, 0))  # adjusted Sunday
    assert not BJ.is_working_time(cn(2024, 9, 28, 10, 0))  # Saturday
    assert not BJ.is_working_time(cn(2024, 10, 3, 10, 0))  # holiday
    assert not BJ.is_working_time(cn(2024, 9, 30, 12, 30))  # lunch
    assert BJ.is_working_time(cn(2024, 9, 30, 13, 30))  # start inclusive
    assert not BJ.is_working_time(cn(2024, 9, 30, 18, 0))  # end exclusive
    assert BJ.next_working_instant(cn(2024, 9, 30, 18, 0)) == cn(2024, 10, 8, 9, 0)
    assert BJ.next_working_instant(cn(2024, 9, 30, 10, 0)) == cn(2024, 9, 30, 10, 0)
    assert BJ.working_intervals(date(2024, 9, 29)) == [
        (cn(2024, 9, 29, 9, 0), cn(2024, 9, 29, 12, 0)),
        (cn(2024, 9, 29, 13, 30), cn(2024, 9, 29, 18, 0)),
    ]


def test_chinese_calendar_coverage_and_provisional_results() -> None:
    source = ChineseCalendarSource()
    assert source.coverage is not None
    first, last = source.coverage
    assert first <= 2004 and last >= 2026
    beyond = date(last + 1, 3, 2)
    assert source.classify(beyond) == "uncovered"
    opened = datetime(last, 12, 28, 10, 0, tzinfo=CN)
    due = BJ.add_working_days(opened, 5)  # weekly hours after the covered years
    assert BJ.is_provisional(opened, due)
    assert not BJ.is_provisional(FRIDAY_BEFORE_NATIONAL_DAY, cn(2024, 10, 10, 18, 0))
    strict = beijing(beyond_coverage="error")
    with pytest.raises(CalendarError, match="outside the years"):
        strict.add_working_days(opened, 5)


# --------------------------------------------------------------------------- closures


def typhoon_calendar() -> BusinessCalendar:
    return beijing(
        closures=[
            Closure(date(2024, 9, 5), parse_span("13:30-18:00"), "typhoon, afternoon"),
            Closure(date(2024, 9, 6), None, "typhoon red alert"),
        ],
        extra_working_days=[ExtraWorkingDay(date(2024, 9, 14), None, "make-up day")],
    )


def test_typhoon_closures() -> None:
    cal = typhoon_calendar()
    assert cal.business_seconds_between(cn(2024, 9, 5, 0, 0), cn(2024, 9, 7, 0, 0)) == 3 * HOUR
    assert not cal.is_working_day(date(2024, 9, 6))
    assert cal.is_working_day(date(2024, 9, 5))  # a partial closure keeps the working day
    # 8 business hours from Thu 09:00: Thu morning only (3 h), Fri closed, Mon 5 h.
    assert cal.add_business_time(cn(2024, 9, 5, 9, 0), 8 * HOUR) == cn(2024, 9, 9, 15, 30)
    # Working days from Wed: Thu (closing at noon) is the first, Fri does not count.
    assert cal.add_working_days(cn(2024, 9, 4, 10, 0), 1) == cn(2024, 9, 5, 12, 0)
    assert cal.add_working_days(cn(2024, 9, 4, 10, 0), 2) == cn(2024, 9, 9, 18, 0)
    # Without the closures, Fri 6 Sep is the second working day.
    assert BJ.add_working_days(cn(2024, 9, 4, 10, 0), 2) == cn(2024, 9, 6, 18, 0)


def test_extra_working_day_and_closure_of_an_adjusted_working_day() -> None:
    cal = typhoon_calendar()
    assert cal.is_working_day(date(2024, 9, 14))  # also an adjusted working day in 2024
    assert cal.is_working_day(date(2024, 9, 21)) is False
    extra = beijing(
        extra_working_days=[ExtraWorkingDay(date(2024, 9, 21), (parse_span("09:00-11:00"),))]
    )
    assert extra.business_seconds_between(cn(2024, 9, 21, 0, 0), cn(2024, 9, 22, 0, 0)) == 2 * HOUR
    closed = beijing(closures=[Closure(date(2024, 9, 29), None, "typhoon")])
    assert not closed.is_working_day(date(2024, 9, 29))
    assert closed.add_working_days(FRIDAY_BEFORE_NATIONAL_DAY, 1) == cn(2024, 9, 30, 18, 0)


# --------------------------------------------------------------------------- DST


def test_business_hours_across_spring_forward_in_los_angeles() -> None:
    friday = local(LA, 2024, 3, 8, 15, 0)  # PST, UTC-8; clocks jump on Sun 10 Mar
    due = LA_OFFICE.add_business_time(friday, 4 * HOUR)
    assert due == local(LA, 2024, 3, 11, 11, 0)  # PDT, UTC-7
    assert due == datetime(2024, 3, 11, 18, 0, tzinfo=UTC)
    assert LA_OFFICE.business_seconds_between(friday, due) == 4 * HOUR
    assert (due - friday).total_seconds() == 67 * HOUR  # not 68: the night lost an hour
    assert LA_OFFICE.add_working_days(friday, 1) == local(LA, 2024, 3, 11, 17, 0)


def test_business_hours_across_fall_back_in_los_angeles() -> None:
    friday = local(LA, 2024, 11, 1, 15, 0)  # PDT; clocks go back on Sun 3 Nov
    due = LA_OFFICE.add_business_time(friday, 4 * HOUR)
    assert due == local(LA, 2024, 11, 4, 11, 0)
    assert due == datetime(2024, 11, 4, 19, 0, tzinfo=UTC)
    assert (due - friday).total_seconds() == 69 * HOUR


def test_wall_clock_24_hours_across_dst() -> None:
    la = WallClockCalendar("la-24x7", "America/Los_Angeles")
    saturday = local(LA, 2024, 3, 9, 12, 0)
    due = la.add_business_time(saturday, 24 * HOUR)
    assert due == local(LA, 2024, 3, 10, 13, 0)  # 24 real hours: 13:00 on the local clock
    assert la.business_seconds_between(saturday, due) == 24 * HOUR
    # "1 calendar day": until local midnight ending Sunday, a 23-hour day.
    assert la.add_working_days(saturday, 1) == local(LA, 2024, 3, 11, 0, 0)
    assert (
        la.business_seconds_between(local(LA, 2024, 3, 10, 0, 0), local(LA, 2024, 3, 11, 0, 0))
        == 23 * HOUR
    )
    berlin = WallClockCalendar("berlin", "Europe/Berlin")
    before = local(BERLIN, 2024, 10, 26, 12, 0)  # CEST; clocks go back on Sun 27 Oct
    assert berlin.add_business_time(before, 24 * HOUR) == local(BERLIN, 2024, 10, 27, 11, 0)


def test_non_existent_and_ambiguous_local_boundaries() -> None:
    sunday_night = BusinessCalendar(
        "night", "America/Los_Angeles", {6: [parse_span("01:30-02:00"), parse_span("02:30-05:00")]}
    )
    # 10 Mar 2024: 02:00-03:00 does not exist; 02:30 maps to the jump (03:00 PDT).
    assert sunday_night.working_intervals(date(2024, 3, 10)) == [
        (local(LA, 2024, 3, 10, 1, 30), datetime(2024, 3, 10, 10, 0, tzinfo=UTC)),
        (datetime(2024, 3, 10, 10, 0, tzinfo=UTC), local(LA, 2024, 3, 10, 5, 0)),
    ]
    spring = sunday_night.business_seconds_between(
        local(LA, 2024, 3, 10, 0, 0), local(LA, 2024, 3, 11, 0, 0)
    )
    assert spring == 2.5 * HOUR  # 01:30 -> 03:00 PDT is one real hour, 03:00 -> 05:00 two
    # 3 Nov 2024: 01:00-02:00 happens twice; 01:30 is its first occurrence (PDT).
    fall = BusinessCalendar("night", "America/Los_Angeles", {6: [parse_span("01:30-03:00")]})
    assert fall.working_intervals(date(2024, 11, 3)) == [
        (datetime(2024, 11, 3, 8, 30, tzinfo=UTC), datetime(2024, 11, 3, 11, 0, tzinfo=UTC))
    ]
    # A 24x7 business calendar has 23- and 25-hour days there.
    allday = BusinessCalendar("all", "America/Los_Angeles", {d: [(0, 86400)] for d in range(7)})
    assert (
        allday.business_seconds_between(local(LA, 2024, 3, 10, 0, 0), local(LA, 2024, 3, 11, 0, 0))
        == 23 * HOUR
    )
    assert (
        allday.business_seconds_between(local(LA, 2024, 11, 3, 0, 0), local(LA, 2024, 11, 4, 0, 0))
        == 25 * HOUR
    )
    assert local_to_us(LA, date(2024, 3, 10), 2 * 3600 + 1800) == to_us(
        datetime(2024, 3, 10, 10, 0, tzinfo=UTC)
    )


def test_holidays_package_source() -> None:
    source = HolidaysPackageSource("US", "CA")
    assert source.classify(date(2024, 7, 4)) == "holiday"
    assert source.classify(date(2024, 7, 5)) == "regular"
    cal = BusinessCalendar(
        "la", "America/Los_Angeles", {d: [(8 * 3600, 17 * 3600)] for d in range(5)}, holidays=source
    )
    assert not cal.is_working_day(date(2024, 11, 28))  # Thanksgiving
    assert cal.add_working_days(local(LA, 2024, 11, 27, 10, 0), 1) == local(LA, 2024, 12, 2, 17, 0)
    with pytest.raises(CalendarError):
        HolidaysPackageSource("XX")
    # The holidays package also knows China's adjusted working days.
    china = HolidaysPackageSource("CN")
    assert china.classify(date(2024, 9, 29)) == "adjusted_workday"
    assert china.classify(date(2024, 10, 1)) == "holiday"


# --------------------------------------------------------------------------- validation


def test_input_validation() -> None:
    with pytest.raises(ValueError, match="naive"):
        BJ.business_seconds_between(datetime(2024, 1, 1), datetime(2024, 1, 2))
    with pytest.raises(ValueError):
        BJ.add_business_time(FRIDAY_BEFORE_NATIONAL_DAY, -1)
    with pytest.raises(ValueError):
        BJ.add_working_days(FRIDAY_BEFORE_NATIONAL_DAY, 0)
    with pytest.raises(CalendarError, match="overlap"):
        BusinessCalendar("x", "UTC", {0: [parse_span("09:00-12:00"), parse_span("11:00-13:00")]})
    with pytest.raises(CalendarError, match="no weekly working hours"):
        BusinessCalendar("x", "UTC", {})
    with pytest.raises(CalendarError, match="time zone"):
        BusinessCalendar("x", "Mars/Olympus", {0: BJ_HOURS})
    with pytest.raises(CalendarError):
        parse_span("18:00-09:00")
    with pytest.raises(CalendarError):
        parse_time_of_day("24:01")
    assert parse_time_of_day("24:00") == 86400
    assert parse_weekdays("mon-fri") == [0, 1, 2, 3, 4]
    assert parse_weekdays("sat,sun") == [5, 6]
    with pytest.raises(CalendarError):
        parse_weekdays("fri-mon")
    closed = BusinessCalendar(
        "closed",
        "UTC",
        {0: BJ_HOURS},
        closures=[Closure(date(2024, 1, 1) + timedelta(weeks=w)) for w in range(600)],
    )
    with pytest.raises(CalendarError, match="no working"):
        closed.add_business_time(datetime(2024, 1, 1, tzinfo=UTC), 60)


def test_business_delta_is_exact_and_signed() -> None:
    a, b = cn(2024, 9, 27, 15, 0, 0), cn(2024, 9, 29, 9, 0, 0) + timedelta(microseconds=7)
    assert BJ.business_delta(a, b) == timedelta(hours=3, microseconds=7)
    assert BJ.business_delta(b, a) == -timedelta(hours=3, microseconds=7)


# --------------------------------------------------------------------------- properties

LA_ODD = BusinessCalendar(
    "la-odd",
    "America/Los_Angeles",
    {
        0: [parse_span("00:00-02:30"), parse_span("09:00-17:00")],
        2: [parse_span("09:00-24:00")],
        3: [parse_span("00:00-01:00"), parse_span("23:00-24:00")],
        6: [parse_span("01:30-02:15"), parse_span("02:45-04:00")],
    },
    closures=[Closure(date(2024, 3, 13), parse_span("12:00-13:00"), "partial")],
    extra_working_days=[ExtraWorkingDay(date(2024, 11, 2), (parse_span("10:00-11:00"),))],
)
CALENDARS: list[Calendar] = [
    BJ,
    typhoon_calendar(),
    LA_OFFICE,
    LA_ODD,
    WallClockCalendar("la-24x7", "America/Los_Angeles"),
    BusinessCalendar("berlin-all", "Europe/Berlin", {d: [(0, 86400)] for d in range(7)}),
]
LO = to_us(datetime(2024, 2, 20, tzinfo=UTC))
HI = to_us(datetime(2024, 11, 20, tzinfo=UTC))

calendars = st.sampled_from(CALENDARS)
instants = st.one_of(
    st.integers(LO, HI),  # any microsecond
    st.integers(LO // 60_000_000, HI // 60_000_000).map(lambda m: m * 60_000_000),  # minutes
)


@settings(max_examples=300, deadline=None)
@given(calendars, instants, instants)
def test_add_inverts_between(cal: Calendar, a: int, b: int) -> None:
    start, end = min(a, b), max(a, b)
    worked = cal.between_us(start, end)
    landed = cal.add_us(start, worked)
    assert start <= landed <= end
    assert cal.between_us(start, landed) == worked
    assert cal.between_us(landed, end) == 0
    # The earliest such instant: ``end`` itself when the instant before it is working time;
    # otherwise the start of the non-working stretch that ends at or after ``end`` (both
    # have the same next working instant). E.g. end 13:30 after lunch -> 12:00.
    assert cal.next_working_us(landed) == cal.next_working_us(end)
    if end > start and cal.between_us(end - 1, end) == 1:
        assert landed == end
    if landed > start:
        assert cal.between_us(start, landed - 1) < worked or worked == 0
    # Via the public datetime API too.
    s, e = from_us(start), from_us(end)
    assert cal.add_business_time(s, cal.business_seconds_between(s, e)) == from_us(landed)


@settings(max_examples=300, deadline=None)
@given(calendars, instants, instants, instants)
def test_between_is_additive_and_bounded(cal: Calendar, a: int, b: int, c: int) -> None:
    assert cal.between_us(a, c) == cal.between_us(a, b) + cal.between_us(b, c)
    lo, hi = min(a, c), max(a, c)
    assert 0 <= cal.between_us(lo, hi) <= hi - lo
    assert cal.between_us(a, c) == -cal.between_us(c, a)


@settings(max_examples=300, deadline=None)
@given(calendars, instants, st.integers(0, 40 * 3600 * 10**6), st.integers(0, 40 * 3600 * 10**6))
def test_add_is_monotonic_and_exact(cal: Calendar, start: int, x: int, y: int) -> None:
    small, large = min(x, y), max(x, y)
    first, second = cal.add_us(start, small), cal.add_us(start, large)
    assert start <= first <= second
    assert cal.between_us(start, first) == small
    assert cal.between_us(start, second) == large
    assert cal.between_us(first, second) == large - small


@settings(max_examples=200, deadline=None)
@given(calendars, instants, st.integers(1, 25))
def test_working_days(cal: Calendar, start: int, days: int) -> None:
    due = cal.add_working_days_us(start, days)
    tz = cal.tz
    first_day = from_us(start).astimezone(tz).date()
    intervals = None
    counted = 0
    day = first_day
    while counted < days:
        day += timedelta(days=1)
        intervals = cal.day_intervals_us(day)
        counted += bool(intervals)
    assert intervals
    assert due == intervals[-1][1]  # the close of business of the n-th working day
    assert cal.is_working_day(day)
    assert from_us(due - 1).astimezone(tz).date() == day


@settings(max_examples=200, deadline=None)
@given(calendars, instants)
def test_is_working_time_matches_between(cal: Calendar, moment: int) -> None:
    working = cal.is_working_time(from_us(moment))
    assert working == (cal.between_us(moment, moment + 1) == 1)
    assert cal.next_working_us(moment) >= moment
    assert cal.is_working_time(from_us(cal.next_working_us(moment)))


@settings(max_examples=200, deadline=None)
@given(instants, instants, st.integers(1, 10))
def test_all_day_business_calendar_equals_wall_clock(a: int, b: int, days: int) -> None:
    wall = WallClockCalendar("wall", "America/Los_Angeles")
    allday = BusinessCalendar("all", "America/Los_Angeles", {d: [(0, 86400)] for d in range(7)})
    assert wall.between_us(a, b) == allday.between_us(a, b) == b - a
    assert wall.add_working_days_us(a, days) == allday.add_working_days_us(a, days)
    assert wall.add_us(a, abs(b - a)) == allday.add_us(a, abs(b - a))


def test_long_spans_use_prefix_sums_and_agree_with_day_by_day_sums() -> None:
    cal = beijing()
    year = [date(2024, 1, 1) + timedelta(days=n) for n in range(366)]
    working_days = sum(cal.is_working_day(d) for d in year)
    assert working_days == 251  # China's 2024 calendar: 251 working days
    start, end = cn(2024, 1, 1), cn(2025, 1, 1)
    assert cal.business_seconds_between(start, end) == working_days * 7.5 * HOUR
    # Asking for an earlier range afterwards rebuilds the prefix sums from further back.
    assert cal.business_seconds_between(cn(2022, 6, 1), cn(2022, 9, 1)) == sum(
        7.5 * HOUR for n in range(92) if cal.is_working_day(date(2022, 6, 1) + timedelta(days=n))
    )
    assert cal.business_seconds_between(start, end) == working_days * 7.5 * HOUR
