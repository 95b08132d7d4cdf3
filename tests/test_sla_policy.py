"""SLA policy files: the shipped examples, first-match semantics, errors that name the
file, the path in the document, the reason and the line; the published catalogue."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from streams.core.sla.calendar import BusinessCalendar, WallClockCalendar
from streams.core.sla.catalogue import catalogue_dict, main, render_json, render_markdown
from streams.core.sla.policy import (
    DEFAULT_POLICIES_PATH,
    PolicyError,
    format_duration,
    load_calendar,
    load_policies,
    parse_duration,
    policies_from_text,
)

ROOT = Path(__file__).resolve().parents[1]
SHANGHAI = ROOT / "config" / "sla" / "policies-shanghai.yaml"
CALENDARS = ROOT / "config" / "calendars"

WALL = "{clock: wall, within: 2h}"


def write(tmp_path: Path, text: str, name: str = "policies.yaml") -> Path:
    path = tmp_path / "sla" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def calendar_file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "calendars" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> PolicyError:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as info:
        load_policies(path)
    assert info.value.file == str(path)
    return info.value


# --------------------------------------------------------------------------- shipped files


def test_default_policies_are_the_beijing_tiers() -> None:
    policies = load_policies()
    assert policies.source == str(DEFAULT_POLICIES_PATH)
    by_id = {p.id: p for p in policies.policies}
    hours = {pid: p.resolution.seconds for pid, p in by_id.items()}
    assert hours == {
        "bj-emergency": 2 * 3600,
        "bj-utilities": 24 * 3600,
        "bj-urgent": 24 * 3600,
        "bj-complex": 15 * 86400,
        "bj-general": 7 * 86400,
    }
    assert all(p.resolution.clock == "wall" for p in policies.policies)
    assert by_id["bj-general"].first_response.clock == "business"
    assert by_id["bj-general"].first_response.calendar.name == "cn-beijing"
    assert isinstance(policies.calendars["cn-beijing"], BusinessCalendar)
    assert by_id["bj-general"].resolution.thresholds == (0.5, 0.75, 0.9)
    assert by_id["bj-general"].resolution.pause_reasons == {"awaiting_citizen"}
    assert by_id["bj-general"].first_response.pause_reasons == frozenset()


def test_first_matching_policy_applies() -> None:
    policies = load_policies()
    assert policies.match("gas_leak", "emergency").id == "bj-emergency"  # type: ignore[union-attr]
    # Utilities come before urgency tiers: a normal water outage still gets 24 h.
    assert policies.match("water_outage", "normal").id == "bj-utilities"  # type: ignore[union-attr]
    assert policies.match("heating_failure", "urgent").id == "bj-utilities"  # type: ignore[union-attr]
    assert policies.match("traffic_signal", "urgent").id == "bj-urgent"  # type: ignore[union-attr]
    assert policies.match("housing_repair", "complex").id == "bj-complex"  # type: ignore[union-attr]
    assert policies.match("noise", "normal").id == "bj-general"  # type: ignore[union-attr]
    assert policies.match("anything-new", "normal").id == "bj-general"  # type: ignore[union-attr]
    # Cached answers are the same objects.
    assert policies.match("noise", "normal") is policies.match("noise", "normal")


def test_shanghai_working_day_variant() -> None:
    policies = load_policies(SHANGHAI)
    days = {p.id: p.resolution.days for p in policies.policies}
    assert days == {"sh-emergency": None, "sh-urgent": 1, "sh-complex": 15, "sh-general": 5}
    general = policies.get("sh-general")
    assert general.resolution.clock == "working_days"
    assert general.resolution.describe() == "5 working days (cn-shanghai)"
    assert policies.match("noise", "normal") is general


def test_shipped_calendars_load() -> None:
    for file in sorted(CALENDARS.glob("*.yaml")):
        calendar = load_calendar(file)
        assert calendar.name == file.stem
    assert isinstance(load_calendar(CALENDARS / "cn-24x7.yaml"), WallClockCalendar)


def test_match_lists_globs_and_first_match(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
        version: 1
        policies:
          - id: power
            match: {{category: ["power_*", "gas_lea?"], urgency: [urgent, emergency]}}
            first_response: {WALL}
            resolution: {WALL}
          - id: noise-any
            match: {{category: noise}}
            first_response: {WALL}
            resolution: {{clock: wall, within: 1d2h}}
        """,
    )
    policies = load_policies(path)
    assert policies.match("power_outage", "urgent").id == "power"  # type: ignore[union-attr]
    assert policies.match("gas_leak", "emergency").id == "power"  # type: ignore[union-attr]
    assert policies.match("power_outage", "normal") is None
    assert policies.match("Power_outage", "urgent") is None  # case-sensitive
    assert policies.match("noise", "complex").id == "noise-any"  # type: ignore[union-attr]
    assert policies.get("noise-any").resolution.seconds == 26 * 3600
    # Wall targets without any calendar use the built-in UTC 24x7 one.
    assert policies.get("power").resolution.calendar.name == "24x7"


def test_durations() -> None:
    assert parse_duration("2h") == 7200
    assert parse_duration("1h30m") == 5400
    assert parse_duration("7d") == 604800
    assert parse_duration(90) == 90
    for bad in ("", "0h", "2x", "h", 0, -5):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert format_duration(86400) == "24 h"
    assert format_duration(7 * 86400) == "7 d"
    assert format_duration(5400) == "1 h 30 min"


def test_yaml_scalars_are_not_reinterpreted(tmp_path: Path) -> None:
    # Unquoted dates stay dates (strings), 13:30 is not 810, NO is not False.
    calendar_file(
        tmp_path,
        "norway",
        """
        version: 1
        timezone: Europe/Oslo
        hours: {mon-fri: [08:00-11:30, 12:00-16:00]}
        public_holidays: {source: holidays, country: NO}
        closures:
          - {date: 2024-05-02, hours: 13:30-16:00, reason: storm}
        """,
    )
    calendar = load_calendar(tmp_path / "calendars" / "norway.yaml")
    assert isinstance(calendar, BusinessCalendar)
    assert calendar.closures[0].hours == (13 * 3600 + 1800, 16 * 3600)
    assert calendar.holidays.describe().startswith("public holidays of NO")


# --------------------------------------------------------------------------- errors


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        load_policies(tmp_path / "nope.yaml")
    assert info.value.reason == "file not found"
    assert info.value.path == ""


def test_invalid_yaml_reports_the_line(tmp_path: Path) -> None:
    err = error_of(
        tmp_path,
        """
        version: 1
        policies:
          - id: a
            first_response: {clock: wall, within: 2h
        """,
    )
    assert err.reason.startswith("invalid YAML")
    assert err.line is not None and err.line >= 4


def test_unknown_key_reports_path_reason_and_line(tmp_path: Path) -> None:
    err = error_of(
        tmp_path,
        f"""
        version: 1
        policies:
          - id: a
            first_response: {WALL}
            resolution: {WALL}
          - id: b
            first_response: {WALL}
            resolution: {WALL}
            colour: blue
        """,
    )
    assert err.path == "policies[1]"
    assert "colour" in err.reason
    assert err.line == 6
    assert str(err) == f"{err.file}:6: policies[1]: {err.reason}"


def test_missing_target_amount(tmp_path: Path) -> None:
    err = error_of(
        tmp_path,
        f"""
        version: 1
        policies:
          - id: a
            first_response: {WALL}
            resolution:
              clock: wall
        """,
    )
    assert err.path == "policies[0].resolution"
    assert "within" in err.reason
    assert err.line == 5  # the line of the key


@pytest.mark.parametrize(
    ("target", "path", "reason"),
    [
        ("{clock: working_days, days: 5, within: 2h}", "resolution.within", "takes 'days'"),
        ("{clock: wall, within: 2h, days: 3}", "resolution.days", "takes 'within'"),
        ("{clock: wall, within: 2x}", "resolution.within", "duration like 2h"),
        ("{clock: wall, within: 0h}", "resolution.within", "positive"),
        ("{clock: wall, within: 0}", "resolution.within", "seconds >= 1"),
        (
            "{clock: working_days, days: 0, calendar: 24x7}",
            "resolution.days",
            "bigger than or equal to 1",
        ),
        ("{clock: business, within: 2h}", "resolution", "needs a calendar"),
        ("{clock: sundial, within: 2h}", "resolution.clock", "must be one of"),
        (
            "{clock: wall, within: 2h, thresholds: [0.5, 0.5]}",
            "resolution.thresholds",
            "increasing",
        ),
        ("{clock: wall, within: 2h, thresholds: [0.5, 1.5]}", "resolution.thresholds[1]", "1"),
        (
            "{clock: wall, within: 2h, pause_reasons: [lunch]}",
            "resolution.pause_reasons[0]",
            "one of",
        ),
        ("{clock: business, within: 2h, calendar: atlantis}", "resolution.calendar", "not found"),
    ],
)
def test_target_errors(tmp_path: Path, target: str, path: str, reason: str) -> None:
    err = error_of(
        tmp_path,
        f"""
        version: 1
        policies:
          - id: a
            first_response: {WALL}
            resolution: {target}
        """,
    )
    assert err.path == f"policies[0].{path}"
    assert reason in err.reason
    assert err.line == 5


def test_bad_urgency_gets_a_readable_reason(tmp_path: Path) -> None:
    err = error_of(
        tmp_path,
        f"""
        version: 1
        policies:
          - id: a
            match: {{urgency: [critical]}}
            first_response: {WALL}
            resolution: {WALL}
        """,
    )
    assert err.path == "policies[0].match.urgency"
    assert "emergency, urgent, normal, complex" in err.reason
    assert err.line == 4


def test_duplicate_ids_and_duplicate_keys(tmp_path: Path) -> None:
    err = error_of(
        tmp_path,
        f"""
        version: 1
        policies:
          - id: a
            match: {{urgency: urgent}}
            first_response: {WALL}
            resolution: {WALL}
          - id: a
            first_response: {WALL}
            resolution: {WALL}
        """,
    )
    assert (err.path, err.line) == ("policies[1].id", 7)
    assert "duplicate policy id" in err.reason
    err = error_of(
        tmp_path,
        f"""
        version: 1
        policies:
          - id: a
            first_response: {WALL}
            first_response: {WALL}
            resolution: {WALL}
        """,
    )
    assert err.path == "policies[0]"
    assert "duplicate key 'first_response'" in err.reason
    assert err.line == 5


def test_unreachable_policy(tmp_path: Path) -> None:
    err = error_of(
        tmp_path,
        f"""
        version: 1
        policies:
          - id: water
            match: {{category: "water_*"}}
            first_response: {WALL}
            resolution: {WALL}
          - id: water-outage-urgent
            match: {{category: water_outage, urgency: urgent}}
            first_response: {WALL}
            resolution: {WALL}
        """,
    )
    assert err.path == "policies[1].match"
    assert "unreachable" in err.reason and "'water'" in err.reason


def test_root_errors(tmp_path: Path) -> None:
    err = error_of(tmp_path, "version: 2\npolicies: []\n")
    assert err.path == "version"
    err = error_of(tmp_path, "- just a list\n")
    assert err.path == "" and "object" in err.reason
    err = error_of(tmp_path, "version: 1\npolicies: []\n")
    assert err.path == "policies" and err.line == 2
    one = f"version: 1\npolicies: [{{id: a, first_response: {WALL}, resolution: {WALL}}}]\n"
    err = error_of(tmp_path, one + "extra: 1\n")
    assert err.path == "" and "extra" in err.reason


@pytest.mark.parametrize(
    ("body", "path", "reason"),
    [
        ("timezone: Mars/Olympus\nhours: {mon: [09:00-17:00]}\n", "timezone", "unknown IANA"),
        ("timezone: UTC\nhours: {mon: [09:00-12:00, 11:00-13:00]}\n", "", "overlap"),
        ("timezone: UTC\nhours: {mon: [18:00-09:00]}\n", "hours.mon[0]", "before the end"),
        (
            "timezone: UTC\nhours: {mon-fri: [09:00-17:00], fri: [09:00-12:00]}\n",
            "hours.fri",
            "twice",
        ),
        ("timezone: UTC\nhours: {funday: [09:00-17:00]}\n", "hours", "'funday'"),
        ("timezone: UTC\n", "", "needs weekly 'hours'"),
        (
            "timezone: UTC\nhours: {mon: [09:00-17:00]}\nclosures: [{date: 2024-02-30}]\n",
            "closures[0].date",
            "not a valid date",
        ),
        (
            "timezone: UTC\nhours: {mon: [09:00-17:00]}\npublic_holidays: {source: holidays}\n",
            "public_holidays",
            "needs a country",
        ),
        (
            "timezone: UTC\nhours: {mon: [09:00-17:00]}\n"
            "public_holidays: {source: holidays, country: XX}\n",
            "public_holidays",
            "does not know",
        ),
        ("kind: wall_clock\ntimezone: UTC\nhours: {mon: [09:00-17:00]}\n", "hours", "wall_clock"),
    ],
)
def test_calendar_file_errors_name_the_calendar_file(
    tmp_path: Path, body: str, path: str, reason: str
) -> None:
    cal = calendar_file(tmp_path, "city", "version: 1\n" + body)
    policy = write(
        tmp_path,
        """
        version: 1
        defaults: {calendar: city}
        policies:
          - id: a
            first_response: {clock: business, within: 2h}
            resolution: {clock: working_days, days: 5}
        """,
    )
    with pytest.raises(PolicyError) as info:
        load_policies(policy)
    assert info.value.file == str(cal)
    assert info.value.path == path
    assert reason in info.value.reason
    assert info.value.line is not None


def test_calendars_resolve_relative_to_the_policy_file(tmp_path: Path) -> None:
    calendar_file(
        tmp_path,
        "city",
        """
        version: 1
        timezone: Asia/Shanghai
        hours: {mon-fri: ["09:00-17:00"]}
        public_holidays: {source: chinese_calendar}
        """,
    )
    policy = write(
        tmp_path,
        """
        version: 1
        defaults: {calendar: city, thresholds: [0.8]}
        policies:
          - id: a
            thresholds: [0.25, 0.5]
            first_response: {clock: business, within: 2h, thresholds: []}
            resolution: {clock: working_days, days: 5}
        """,
    )
    policies = load_policies(policy)
    a = policies.get("a")
    assert a.first_response.thresholds == ()
    assert a.resolution.thresholds == (0.25, 0.5)
    assert a.resolution.calendar is a.first_response.calendar  # loaded once
    assert policies.calendar_sources["city"] == str(tmp_path / "calendars" / "city.yaml")


def test_policies_from_text_with_given_calendars() -> None:
    calendar = WallClockCalendar("days", "Asia/Shanghai")
    policies = policies_from_text(
        """
version: 1
policies:
  - id: a
    first_response: {clock: working_days, days: 1, calendar: days}
    resolution: {clock: working_days, days: 7, calendar: days}
""",
        calendars={"days": calendar},
    )
    assert policies.get("a").resolution.calendar is calendar
    with pytest.raises(PolicyError) as info:
        policies_from_text("version: 1\npolicies: [{id: a}]\n", file="inline.yaml")
    assert info.value.file == "inline.yaml"
    assert info.value.path == "policies[0]"
    assert info.value.line == 2


# --------------------------------------------------------------------------- catalogue


def test_catalogue_markdown_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    policies = load_policies(SHANGHAI)
    markdown = render_markdown(policies, years=[2024])
    assert "| 4 | General requests (5 working days) (`sh-general`)" in markdown
    assert "5 working days (cn-shanghai)" in markdown
    assert "| 2024-09-29 | Sun | working 09:00-12:00, 13:00-17:00 | National Day |" in markdown
    assert "| 2024-10-01 | Tue | closed | National Day |" in markdown
    assert "intake" in markdown
    data = json.loads(render_json(policies, years=[2024]))
    assert data == catalogue_dict(policies, years=[2024])
    assert [p["id"] for p in data["policies"]] == [
        "sh-emergency",
        "sh-urgent",
        "sh-complex",
        "sh-general",
    ]
    general = data["policies"][3]["resolution"]
    assert general["clock"] == "working_days" and general["working_days"] == 5
    (calendar,) = data["calendars"]
    assert calendar["timezone"] == "Asia/Shanghai"
    assert calendar["hours"]["sat"] == []
    exceptions = {e["date"]: e for e in calendar["exceptions"]["2024"]}
    assert exceptions["2024-10-12"]["working"] is True
    assert exceptions["2024-10-07"]["working"] is False
    assert not calendar["file"].startswith("/")
    assert main([str(SHANGHAI), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["title"].startswith("Shanghai")
    assert main([]) == 0
    assert "bj-emergency" in capsys.readouterr().out
