"""The published SLA catalogue: a policy set rendered as Markdown or JSON.

What a city publishes so that citizens and watchdogs can check every deadline: which
policy covers which category and urgency, both targets in plain words, the warning
thresholds, which pauses stop the clock, and each calendar (time zone, weekly hours,
holiday source and the years it covers, closures, extra working days, and optionally
every day of given years that differs from the weekly hours).

    python -m streams.core.sla.catalogue config/sla/policies.yaml --format markdown --year 2024
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from streams.core.sla.calendar import (
    WEEKDAYS,
    BusinessCalendar,
    Calendar,
    Span,
    WallClockCalendar,
    format_span,
)
from streams.core.sla.policy import DEFAULT_POLICIES_PATH, PolicySet, Target, load_policies

_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def display_path(path: str) -> str:
    """``path`` relative to the working directory when it lies below it (a published
    catalogue should not show a machine's absolute paths)."""
    if not path or path.startswith("<"):
        return path
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return Path(path).name


def _spans_text(spans: Sequence[Span]) -> str:
    return ", ".join(format_span(s) for s in spans) if spans else "closed"


def _target_dict(target: Target) -> dict[str, Any]:
    return {
        "clock": target.clock,
        "within_seconds": target.seconds,
        "working_days": target.days,
        "calendar": target.calendar.name,
        "thresholds": list(target.thresholds),
        "pause_reasons": sorted(target.pause_reasons),
        "text": target.describe(),
    }


def _weekly_groups(weekly: Sequence[Sequence[Span]]) -> list[tuple[str, tuple[Span, ...]]]:
    """Consecutive weekdays with the same hours: [("Mon-Fri", spans), ("Sat-Sun", ())]."""
    groups: list[tuple[int, int, tuple[Span, ...]]] = []
    for day, spans in enumerate(weekly):
        key = tuple(spans)
        if groups and groups[-1][2] == key:
            groups[-1] = (groups[-1][0], day, key)
        else:
            groups.append((day, day, key))
    out = []
    for first, last, spans in groups:
        label = _DAY_NAMES[first] if first == last else f"{_DAY_NAMES[first]}-{_DAY_NAMES[last]}"
        out.append((label, spans))
    return out


def calendar_exceptions(calendar: Calendar, year: int) -> list[dict[str, Any]]:
    """The days of ``year`` whose hours differ from the weekly hours (holidays, adjusted
    working days, closures, extra working days), for a business calendar."""
    if not isinstance(calendar, BusinessCalendar):
        return []
    out: list[dict[str, Any]] = []
    day = date(year, 1, 1)
    while day.year == year:
        weekly = calendar.weekly[day.weekday()]
        actual = calendar.local_spans(day)
        if actual != weekly:
            extra = next((e for e in calendar.extra_working_days if e.day == day), None)
            closure = next((c for c in calendar.closures if c.day == day), None)
            name = (
                (extra.reason if extra else "")
                or (closure.reason if closure else "")
                or calendar.holidays.holiday_name(day)
                or ""
            )
            out.append(
                {
                    "date": day.isoformat(),
                    "weekday": WEEKDAYS[day.weekday()],
                    "working": bool(actual),
                    "hours": [format_span(s) for s in actual],
                    "name": name,
                }
            )
        day += timedelta(days=1)
    return out


def _calendar_dict(calendar: Calendar, source: str, years: Sequence[int]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": calendar.name,
        "title": calendar.description,
        "timezone": calendar.tz.key,
        "file": display_path(source),
    }
    if isinstance(calendar, WallClockCalendar):
        out["kind"] = "wall_clock"
        return out
    assert isinstance(calendar, BusinessCalendar)
    coverage = calendar.holidays.coverage
    out.update(
        {
            "kind": "business",
            "hours": {
                WEEKDAYS[d]: [format_span(s) for s in spans]
                for d, spans in enumerate(calendar.weekly)
            },
            "adjusted_working_day_hours": [format_span(s) for s in calendar.adjusted_hours],
            "public_holidays": {
                "description": calendar.holidays.describe(),
                "years": list(coverage) if coverage else None,
                "beyond_coverage": calendar.beyond_coverage,
            },
            "closures": [
                {
                    "date": c.day.isoformat(),
                    "hours": format_span(c.hours) if c.hours else None,
                    "reason": c.reason,
                }
                for c in calendar.closures
            ],
            "extra_working_days": [
                {
                    "date": e.day.isoformat(),
                    "hours": [format_span(s) for s in e.hours] if e.hours else None,
                    "reason": e.reason,
                }
                for e in calendar.extra_working_days
            ],
            "exceptions": {str(y): calendar_exceptions(calendar, y) for y in years},
        }
    )
    return out


def catalogue_dict(policies: PolicySet, years: Sequence[int] = ()) -> dict[str, Any]:
    """The catalogue as JSON-ready data."""
    return {
        "title": policies.title,
        "authority": policies.authority,
        "description": policies.description,
        "source": display_path(policies.source),
        "policies": [
            {
                "order": p.index + 1,
                "id": p.id,
                "name": p.name,
                "description": p.description,
                "match": {"categories": list(p.categories), "urgencies": list(p.urgencies)},
                "first_response": _target_dict(p.first_response),
                "resolution": _target_dict(p.resolution),
            }
            for p in policies.policies
        ],
        "calendars": [
            _calendar_dict(cal, policies.calendar_sources.get(name, ""), years)
            for name, cal in sorted(policies.calendars.items())
        ],
    }


def render_json(policies: PolicySet, years: Sequence[int] = ()) -> str:
    return json.dumps(catalogue_dict(policies, years), ensure_ascii=False, indent=2) + "\n"


def _pct(values: Sequence[float]) -> str:
    return ", ".join(f"{v * 100:g}%" for v in values) or "none"


def _pauses(target: Target) -> str:
    return ", ".join(sorted(target.pause_reasons)) or "never"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(policies: PolicySet, years: Sequence[int] = ()) -> str:
    """The catalogue as a Markdown page a city can publish."""
    lines: list[str] = [f"# {policies.title or 'Service level targets'}", ""]
    if policies.authority:
        lines += [f"Published by: {policies.authority}.", ""]
    lines += [f"Generated from `{display_path(policies.source)}`.", ""]
    if policies.description:
        lines += [policies.description.strip(), ""]
    lines += [
        "## Targets",
        "",
        "The first row that matches a request's category and urgency applies.",
        "",
        "| # | policy | categories | urgencies | first response | resolution |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for p in policies.policies:
        categories = ", ".join(f"`{c}`" for c in p.categories)
        urgencies = "any" if "*" in p.urgencies else ", ".join(p.urgencies)
        lines.append(
            f"| {p.index + 1} | {_cell(p.name)} (`{p.id}`) | {categories} | {urgencies} "
            f"| {p.first_response.describe()} | {p.resolution.describe()} |"
        )
    lines += [
        "",
        "Warnings are raised when the counted time reaches these shares of the allowed time;"
        " the clock stops only while the case waits for the reasons listed:",
        "",
        "| policy | first-response warnings | resolution warnings "
        "| pauses stopping the first-response clock | pauses stopping the resolution clock |",
        "| --- | --- | --- | --- | --- |",
    ]
    for p in policies.policies:
        lines.append(
            f"| `{p.id}` | {_pct(p.first_response.thresholds)} | {_pct(p.resolution.thresholds)}"
            f" | {_pauses(p.first_response)} | {_pauses(p.resolution)} |"
        )
    lines += [
        "",
        "## How the clocks count",
        "",
        "- Both clocks start when the citizen's request is received (intake), not when an"
        " agency signs for it.",
        "- The first response is the first contact with the citizen. A case closed without"
        " any contact has no on-time response.",
        "- The resolution clock stops at the first resolution (or closure) of each cycle. A"
        " reopened case starts a new cycle with the full allowed time; earlier cycles keep"
        " their outcome.",
        "- Wall-clock targets count real elapsed time. Business-time targets count only the"
        ' working hours of the calendar. "N working days" ends at the close of business'
        " of the N-th working day after the day of intake (the day of intake never counts).",
        "- An approved extension adds its duration to the allowed time (business time for"
        " business and working-day targets); extensions approved after the deadline passed"
        " do not count.",
        "",
        "## Calendars",
        "",
    ]
    for name, calendar in sorted(policies.calendars.items()):
        lines += [f"### `{name}`" + (f": {calendar.description}" if calendar.description else "")]
        lines += ["", f"- Time zone: {calendar.tz.key}"]
        if isinstance(calendar, WallClockCalendar):
            lines += ["- Every hour of every day counts; days close at local midnight.", ""]
            continue
        assert isinstance(calendar, BusinessCalendar)
        hours = "; ".join(
            f"{label} {_spans_text(spans)}" for label, spans in _weekly_groups(calendar.weekly)
        )
        lines += [
            f"- Weekly hours: {hours}",
            f"- Public holidays: {calendar.holidays.describe()}",
            f"- Hours of an adjusted working day on a weekend: "
            f"{_spans_text(calendar.adjusted_hours)}",
        ]
        coverage = calendar.holidays.coverage
        if coverage and calendar.beyond_coverage == "weekly":
            lines.append(
                f"- Outside {coverage[0]}-{coverage[1]} only the weekly hours are known;"
                " deadlines there are provisional."
            )
        for closure in calendar.closures:
            when = format_span(closure.hours) if closure.hours else "all day"
            lines.append(f"- Closed {closure.day.isoformat()} ({when}): {closure.reason}")
        for extra in calendar.extra_working_days:
            when = _spans_text(extra.hours) if extra.hours else _spans_text(calendar.adjusted_hours)
            lines.append(f"- Working day {extra.day.isoformat()} ({when}): {extra.reason}")
        lines.append("")
        for year in years:
            exceptions = calendar_exceptions(calendar, year)
            lines += [
                f"Days of {year} that differ from the weekly hours:",
                "",
                "| date | day | status | name |",
                "| --- | --- | --- | --- |",
            ]
            for item in exceptions:
                status = ("working " + ", ".join(item["hours"])) if item["working"] else "closed"
                lines.append(
                    f"| {item['date']} | {item['weekday'].capitalize()} | {status} "
                    f"| {_cell(item['name'])} |"
                )
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render the SLA catalogue of a policy file.")
    parser.add_argument("policies", nargs="?", default=str(DEFAULT_POLICIES_PATH))
    parser.add_argument("--format", choices=("markdown", "json"), default="markdown")
    parser.add_argument("--year", type=int, action="append", default=[])
    args = parser.parse_args(argv)
    policy_set = load_policies(args.policies)
    render = render_json if args.format == "json" else render_markdown
    sys.stdout.write(render(policy_set, args.year))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
