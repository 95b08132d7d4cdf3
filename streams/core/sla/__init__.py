"""The SLA engine of the domain core (pure: no Kafka, Faust or ClickHouse imports).

* :mod:`streams.core.sla.calendar`: business and wall-clock calendars (working hours,
  public holidays and 调休 from a maintained package, closures, DST-exact arithmetic);
* :mod:`streams.core.sla.policy`: SLA policies as validated configuration, first match;
* :mod:`streams.core.sla.clock`: the SLA clock of a case, a pure function of its events;
* :mod:`streams.core.sla.catalogue`: the published catalogue (Markdown, JSON).

Rules and file formats: docs/sla.md.
"""

from __future__ import annotations

from streams.core.sla.calendar import (
    BusinessCalendar,
    Calendar,
    CalendarError,
    ChineseCalendarSource,
    Closure,
    ExtraWorkingDay,
    HolidaySource,
    HolidaysPackageSource,
    NoHolidays,
    WallClockCalendar,
)
from streams.core.sla.clock import (
    CaseSla,
    FirstResponse,
    ResolutionCycle,
    ThresholdMark,
    Timer,
    case_sla_to_dict,
    evaluate,
    next_timer,
)
from streams.core.sla.policy import (
    DEFAULT_POLICIES_PATH,
    Policy,
    PolicyError,
    PolicySet,
    Target,
    load_calendar,
    load_policies,
    policies_from_text,
)

__all__ = [
    "DEFAULT_POLICIES_PATH",
    "BusinessCalendar",
    "Calendar",
    "CalendarError",
    "CaseSla",
    "ChineseCalendarSource",
    "Closure",
    "ExtraWorkingDay",
    "FirstResponse",
    "HolidaySource",
    "HolidaysPackageSource",
    "NoHolidays",
    "Policy",
    "PolicyError",
    "PolicySet",
    "ResolutionCycle",
    "Target",
    "ThresholdMark",
    "Timer",
    "WallClockCalendar",
    "case_sla_to_dict",
    "evaluate",
    "load_calendar",
    "load_policies",
    "next_timer",
    "policies_from_text",
]
