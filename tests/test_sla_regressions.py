"""Regressions found by the brute-force oracle (tests/sla_oracle.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest

from streams.contract import Event, decode_event
from streams.core.sla.calendar import BusinessCalendar, CalendarError, ChineseCalendarSource
from streams.core.sla.clock import evaluate
from streams.core.sla.policy import calendar_from_text, load_policies

T = datetime(2025, 9, 23, 1, 0, tzinfo=UTC)


def test_a_chinese_calendar_source_with_years_is_uncovered_outside_them() -> None:
    """The engine side of the fix: ``ChineseCalendarSource(years)`` bounds its coverage."""
    source = ChineseCalendarSource((2004, 2025))
    assert source.coverage == (2004, 2025)
    assert source.classify(date(2026, 2, 17)) == "uncovered"
    assert source.classify(date(2025, 10, 1)) == "holiday"
    assert ChineseCalendarSource().coverage == source.package_coverage
    with pytest.raises(CalendarError):
        ChineseCalendarSource((2004, source.package_coverage[1] + 1))
    cal = BusinessCalendar(
        "cn-to-2025", "Asia/Shanghai", {d: [(32400, 61200)] for d in range(5)}, holidays=source
    )
    assert cal.is_working_day(date(2026, 2, 17))
    assert cal.is_provisional(datetime(2026, 2, 16, tzinfo=UTC), datetime(2026, 2, 18, tzinfo=UTC))


def test_the_years_of_a_chinese_calendar_source_bound_its_coverage() -> None:
    cal = calendar_from_text(
        """
version: 1
timezone: Asia/Shanghai
hours: {mon-fri: ["09:00-17:00"]}
public_holidays: {source: chinese_calendar, years: [2004, 2025], beyond_coverage: weekly}
""",
        "cn-to-2025",
    )
    # Tue 17 Feb 2026: a Spring Festival holiday in the package, but 2026 is not trusted
    assert cal.is_working_day(date(2026, 2, 17))
    assert cal.is_provisional(datetime(2026, 2, 16, tzinfo=UTC), datetime(2026, 2, 18, tzinfo=UTC))


def test_a_stop_is_not_split_by_a_reason_change_within_one_instant() -> None:
    def ev(n: int, kind: str, hours: int, payload: dict[str, Any]) -> Event:
        raw = {
            "schema_version": 1,
            "event_id": f"evt-S-{n:04d}",
            "case_id": "S-1",
            "type": kind,
            "occurred_at": (T + timedelta(hours=hours)).isoformat(),
            "source": "t",
            "payload": payload,
        }
        return decode_event(orjson.dumps(raw))

    events = [
        ev(
            0,
            "opened",
            0,
            {
                "channel": "hotline",
                "category": "noise",
                "urgency": "normal",
                "district": "d",
                "sub_district": "s",
                "citizen_ref": "0123456789abcdef",
            },
        ),
        ev(1, "paused", 1, {"reason": "awaiting_citizen"}),
        ev(2, "paused", 2, {"reason": "other"}),  # same instant, ordered by event id
        ev(3, "paused", 2, {"reason": "awaiting_citizen"}),
    ]
    cycle = evaluate(events, load_policies()).cycles[0]  # bj-general, wall 7 d
    assert cycle.due_at is None
    assert cycle.paused_since == T + timedelta(hours=1)
    assert cycle.pauses == 1
