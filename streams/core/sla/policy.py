"""SLA policies as configuration: loading, validating and matching.

A policy file (``config/sla/*.yaml``, JSON Schema ``schemas/sla/policies.v1.schema.json``)
lists policies; the first whose ``match`` covers a case's category and urgency applies.
Each policy has a first-response and a resolution :class:`Target`, counted in wall-clock
time, business time or working days on a named calendar. Calendars live one per file in
``config/calendars/<id>.yaml`` (schema ``schemas/sla/calendar.v1.schema.json``).

Every error in a file is a :class:`PolicyError` naming the file, the path in the document
(``policies[2].resolution.days``), the reason and, when the YAML loader knows it, the line.
The format is documented in docs/sla.md.
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal, cast

import fastjsonschema
import yaml

from streams.contract import URGENCIES
from streams.core.sla.calendar import (
    BeyondCoverage,
    BusinessCalendar,
    Calendar,
    CalendarError,
    ChineseCalendarSource,
    Closure,
    ExtraWorkingDay,
    HolidaySource,
    HolidaysPackageSource,
    NoHolidays,
    Span,
    WallClockCalendar,
    parse_span,
    parse_weekdays,
)

ClockKind = Literal["wall", "business", "working_days"]
TargetName = Literal["first_response", "resolution"]
TARGET_NAMES: Final[tuple[TargetName, ...]] = ("first_response", "resolution")

DEFAULT_THRESHOLDS: Final[tuple[float, ...]] = (0.5, 0.75, 0.9)
DEFAULT_PAUSE_REASONS: Final[Mapping[TargetName, frozenset[str]]] = {
    "first_response": frozenset(),
    "resolution": frozenset({"awaiting_citizen"}),
}
BUILTIN_CALENDAR: Final = "24x7"
"""Calendar id always available: the UTC wall clock (every instant counts)."""

SCHEMA_DIR_ENV: Final = "CIVICPULSE_SLA_SCHEMAS"
_REPO_ROOT: Final = Path(__file__).resolve().parents[3]
DEFAULT_POLICIES_PATH: Final = _REPO_ROOT / "config" / "sla" / "policies.yaml"
DEFAULT_CALENDARS_DIR: Final = _REPO_ROOT / "config" / "calendars"
_MAX_MATCH_CACHE: Final = 10_000


# --------------------------------------------------------------------------- errors


class PolicyError(ValueError):
    """An invalid policy or calendar file: ``file``, ``path`` (dotted, with [i] for list
    items; "" for the whole document), ``reason``, ``line`` (1-based) when known."""

    def __init__(self, file: str, path: str, reason: str, line: int | None = None) -> None:
        self.file = file
        self.path = path
        self.reason = reason
        self.line = line
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {path or '<document>'}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.file, self.path, self.reason, self.line))


PathItem = str | int


def format_path(path: Sequence[PathItem]) -> str:
    out = ""
    for item in path:
        if isinstance(item, int):
            out += f"[{item}]"
        else:
            out += f".{item}" if out else item
    return out


# --------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """Safe YAML with JSON-like scalars: no dates (``2024-10-01`` stays a string), no
    sexagesimal numbers (``13:30`` stays a string), no yes/no/on/off booleans (``NO`` is
    Norway), no octal (``09`` stays a string)."""


_DROPPED_TAGS: Final = {
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:(?:0|[1-9][0-9]*)\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


@dataclass(slots=True)
class _Document:
    file: str
    data: Any
    root: yaml.Node | None

    def line(self, path: Sequence[PathItem]) -> int | None:
        """1-based line of ``path``: the key's line for a mapping entry, the item's line
        for a list item, the deepest existing node's line for a path that does not exist."""
        node = self.root
        best = node.start_mark.line + 1 if node is not None else None
        for item in path:
            line = None
            if isinstance(node, yaml.MappingNode):
                found = None
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode) and key.value == str(item):
                        found, line = value, key.start_mark.line + 1
                        break
                node = found
            elif isinstance(node, yaml.SequenceNode) and isinstance(item, int):
                node = node.value[item] if 0 <= item < len(node.value) else None
                line = node.start_mark.line + 1 if node is not None else None
            else:
                node = None
            if node is None:
                break
            best = line
        return best

    def error(self, path: Sequence[PathItem], reason: str) -> PolicyError:
        return PolicyError(self.file, format_path(path), reason, self.line(path))


def _check_duplicate_keys(file: str, node: yaml.Node, path: list[PathItem]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                raise PolicyError(
                    file, format_path(path), f"duplicate key {name!r}", key.start_mark.line + 1
                )
            seen.add(name)
            _check_duplicate_keys(file, value, [*path, name])
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_duplicate_keys(file, item, [*path, index])


def _parse_yaml(text: str, file: str) -> _Document:
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            _check_duplicate_keys(file, root, [])
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        reason = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise PolicyError(file, "", f"invalid YAML: {reason}", line) from exc
    except yaml.YAMLError as exc:
        raise PolicyError(file, "", f"invalid YAML: {exc}") from exc
    finally:
        loader.dispose()
    return _Document(file, data, root)


def _read(path: Path) -> _Document:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PolicyError(str(path), "", "file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(str(path), "", f"cannot read: {exc}") from exc
    return _parse_yaml(text, str(path))


# --------------------------------------------------------------------------- schemas


def schema_dir() -> Path:
    override = os.environ.get(SCHEMA_DIR_ENV)
    return Path(override) if override else _REPO_ROOT / "schemas" / "sla"


@cache
def _validator(name: str) -> Callable[[Any], Any]:
    path = schema_dir() / name
    with path.open("rb") as fh:
        schema = json.loads(fh.read().decode("utf-8"))
    validator: Callable[[Any], Any] = fastjsonschema.compile(copy.deepcopy(schema))
    return validator


_FRIENDLY: Final[dict[tuple[str, str], str]] = {
    ("urgency", "oneOf"): "must be '*', an urgency or a list of urgencies ("
    + ", ".join(URGENCIES)
    + ")",
    ("category", "oneOf"): "must be a category pattern or a non-empty list of them",
    ("within", "oneOf"): "must be a number of seconds >= 1 or a duration like 2h, 30m, 7d",
}


_WEEKDAY: Final = "(mon|tue|wed|thu|fri|sat|sun)"
_WEEKDAYS_KEY: Final = re.compile(rf"^{_WEEKDAY}(-{_WEEKDAY})?(,{_WEEKDAY}(-{_WEEKDAY})?)*$")


def _validate(doc: _Document, schema_name: str) -> None:
    try:
        _validator(schema_name)(doc.data)
    except fastjsonschema.JsonSchemaValueException as exc:
        path: list[PathItem] = []
        for item in (exc.path or ["data"])[1:]:
            path.append(int(item) if isinstance(item, str) and item.isdigit() else item)
        message = exc.message
        if exc.name and message.startswith(exc.name):
            message = message[len(exc.name) :].strip()
        last = str(path[-1]) if path else ""
        message = _FRIENDLY.get((last, str(exc.rule)), message)
        if last == "hours" and exc.rule == "propertyNames" and isinstance(exc.value, dict):
            bad = [k for k in exc.value if not _WEEKDAYS_KEY.match(str(k))]
            message = (
                f"unknown weekday key {bad[0]!r}: use mon..sun, ranges like mon-fri "
                "or lists like sat,sun"
                if bad
                else message
            )
        raise doc.error(path, message) from exc


# --------------------------------------------------------------------------- model


@dataclass(frozen=True, slots=True)
class Target:
    """One SLA target of a policy.

    ``clock``: ``wall`` (``seconds`` of real time), ``business`` (``seconds`` of working
    time on ``calendar``) or ``working_days`` (until the close of business of the
    ``days``-th working day after the day the clock starts, on ``calendar``). ``calendar``
    is always set: for wall targets it only serves the business-time figures.
    """

    name: TargetName
    clock: ClockKind
    seconds: int | None
    days: int | None
    calendar: Calendar
    thresholds: tuple[float, ...]
    pause_reasons: frozenset[str]

    @property
    def counts_business(self) -> bool:
        """True when the allowance is counted in the calendar's working time."""
        return self.clock != "wall"

    def allowance_us(self, start_us: int) -> int:
        """The allowed time for a clock starting at ``start_us``, in µs of the target's
        own time (wall or business)."""
        if self.clock == "working_days":
            assert self.days is not None
            due = self.calendar.add_working_days_us(start_us, self.days)
            return self.calendar.between_us(start_us, due)
        assert self.seconds is not None
        return self.seconds * 1_000_000

    def describe(self) -> str:
        """``2 h (wall clock)``, ``8 business hours (cn-beijing)``, ``5 working days
        (cn-shanghai)``."""
        if self.clock == "working_days":
            unit = "working day" if self.days == 1 else "working days"
            return f"{self.days} {unit} ({self.calendar.name})"
        assert self.seconds is not None
        text = format_duration(self.seconds)
        if self.clock == "wall":
            return f"{text} (wall clock)"
        return f"{text} of business time ({self.calendar.name})"


@dataclass(frozen=True, slots=True)
class Policy:
    """One policy: which cases it covers and their two targets."""

    id: str
    index: int
    name: str
    description: str
    categories: tuple[str, ...]
    urgencies: tuple[str, ...]
    first_response: Target
    resolution: Target

    def matches(self, category: str, urgency: str) -> bool:
        if "*" not in self.urgencies and urgency not in self.urgencies:
            return False
        return any(fnmatch.fnmatchcase(category, pattern) for pattern in self.categories)

    def target(self, name: TargetName) -> Target:
        return self.first_response if name == "first_response" else self.resolution


@dataclass(slots=True)
class PolicySet:
    """The policies of one file, in order, and the calendars they use."""

    source: str
    title: str
    authority: str
    description: str
    policies: tuple[Policy, ...]
    calendars: dict[str, Calendar]
    calendar_sources: dict[str, str] = field(default_factory=dict)
    _cache: dict[tuple[str, str], Policy | None] = field(default_factory=dict, repr=False)

    def match(self, category: str, urgency: str) -> Policy | None:
        """The first policy covering ``category`` x ``urgency`` (None: no policy)."""
        key = (category, urgency)
        try:
            return self._cache[key]
        except KeyError:
            pass
        found = next((p for p in self.policies if p.matches(category, urgency)), None)
        if len(self._cache) >= _MAX_MATCH_CACHE:
            self._cache.clear()
        self._cache[key] = found
        return found

    def get(self, policy_id: str) -> Policy:
        for policy in self.policies:
            if policy.id == policy_id:
                return policy
        raise KeyError(policy_id)


# --------------------------------------------------------------------------- durations

_DURATION_RE: Final = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(value: int | str) -> int:
    """Seconds from an integer or a ``1d2h30m15s``-style string; ValueError if not > 0."""
    if isinstance(value, bool):
        raise ValueError("a duration is not a boolean")
    if isinstance(value, int):
        seconds = value
    else:
        match = _DURATION_RE.match(value)
        if not match or not value:
            raise ValueError(f"{value!r} is not a duration like 2h, 30m, 1h30m, 7d")
        d, h, m, s = (int(g or 0) for g in match.groups())
        seconds = ((d * 24 + h) * 60 + m) * 60 + s
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


def format_duration(seconds: int) -> str:
    """``7200`` -> ``2 h``; ``86400`` -> ``24 h``; ``604800`` -> ``7 d``; ``5400`` ->
    ``1 h 30 min``. Days are used only for whole numbers of days from 2 on."""
    if seconds >= 2 * 86_400 and seconds % 86_400 == 0:
        return f"{seconds // 86_400} d"
    parts: list[str] = []
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    for amount, unit in ((hours, "h"), (minutes, "min"), (secs, "s")):
        if amount:
            parts.append(f"{amount} {unit}")
    return " ".join(parts) or "0 s"


# --------------------------------------------------------------------------- calendars


def _parse_date(doc: _Document, path: list[PathItem], text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise doc.error(path, f"{text!r} is not a valid date YYYY-MM-DD") from None


def _parse_spans(doc: _Document, path: list[PathItem], items: Sequence[str]) -> list[Span]:
    spans: list[Span] = []
    for index, text in enumerate(items):
        try:
            spans.append(parse_span(text))
        except CalendarError as exc:
            raise doc.error([*path, index], str(exc)) from None
    return spans


def calendar_from_document(doc: _Document, name: str) -> Calendar:
    """Build a calendar from a parsed, schema-valid calendar document."""
    data: dict[str, Any] = doc.data
    description = str(data.get("title") or data.get("description") or "")
    try:
        if data.get("kind", "business") == "wall_clock":
            for key in ("hours", "public_holidays", "closures", "extra_working_days"):
                if key in data:
                    raise doc.error([key], "a wall_clock calendar takes no " + key)
            return WallClockCalendar(name, data["timezone"], description)
        if "hours" not in data:
            raise doc.error([], "a business calendar needs weekly 'hours'")
        weekly: dict[int, list[Span]] = {}
        for key, items in data["hours"].items():
            try:
                weekdays = parse_weekdays(key)
            except CalendarError as exc:
                raise doc.error(["hours", key], str(exc)) from None
            spans = _parse_spans(doc, ["hours", key], items)
            for weekday in weekdays:
                if weekday in weekly:
                    raise doc.error(["hours", key], "a weekday is given hours twice")
                weekly[weekday] = spans
        source = _holiday_source(doc, data.get("public_holidays") or {"source": "none"})
        beyond = cast(
            BeyondCoverage,
            (data.get("public_holidays") or {}).get("beyond_coverage", "weekly"),
        )
        adjusted = None
        if "adjusted_working_day_hours" in data:
            adjusted = _parse_spans(
                doc, ["adjusted_working_day_hours"], data["adjusted_working_day_hours"]
            )
        closures = []
        for index, item in enumerate(data.get("closures", [])):
            path: list[PathItem] = ["closures", index]
            hours = None
            if "hours" in item:
                hours = _parse_spans(doc, [*path, "hours"], [item["hours"]])[0]
            day = _parse_date(doc, [*path, "date"], item["date"])
            closures.append(Closure(day, hours, item.get("reason", "")))
        extras = []
        seen: set[date] = set()
        for index, item in enumerate(data.get("extra_working_days", [])):
            path = ["extra_working_days", index]
            day = _parse_date(doc, [*path, "date"], item["date"])
            if day in seen:
                raise doc.error([*path, "date"], f"{day} is listed twice")
            seen.add(day)
            extra_hours = None
            if "hours" in item:
                extra_hours = tuple(_parse_spans(doc, [*path, "hours"], item["hours"]))
            extras.append(ExtraWorkingDay(day, extra_hours, item.get("reason", "")))
        return BusinessCalendar(
            name,
            data["timezone"],
            weekly,
            holidays=source,
            adjusted_hours=adjusted,
            closures=closures,
            extra_working_days=extras,
            beyond_coverage=beyond,
            description=description,
        )
    except CalendarError as exc:
        path_hint: list[PathItem] = ["timezone"] if "time zone" in str(exc) else []
        raise doc.error(path_hint, str(exc)) from None


def _holiday_source(doc: _Document, spec: Mapping[str, Any]) -> HolidaySource:
    kind = spec["source"]
    years: tuple[int, int] | None = None
    if "years" in spec:
        first, last = spec["years"]
        if first > last:
            raise doc.error(["public_holidays", "years"], "the first year is after the last")
        years = (first, last)
    if kind == "none":
        for key in ("country", "subdiv", "years"):
            if key in spec:
                raise doc.error(["public_holidays", key], "not used with source none")
        return NoHolidays()
    if kind == "chinese_calendar":
        for key in ("country", "subdiv"):
            if key in spec:
                raise doc.error(["public_holidays", key], "not used with chinese_calendar")
        source = ChineseCalendarSource()
        if years is not None:
            covered = source.coverage
            assert covered is not None
            if years[0] < covered[0] or years[1] > covered[1]:
                raise doc.error(
                    ["public_holidays", "years"],
                    f"chinese-calendar {source.version} only covers {covered[0]}-{covered[1]}",
                )
            return ChineseCalendarSource(years)
        return source
    if "country" not in spec:
        raise doc.error(["public_holidays"], "source holidays needs a country (ISO code)")
    try:
        return HolidaysPackageSource(spec["country"], spec.get("subdiv"), years)
    except CalendarError as exc:
        raise doc.error(["public_holidays"], str(exc)) from None


def load_calendar(path: str | Path, name: str | None = None) -> Calendar:
    """Load and validate one calendar file; its id is the file name without ``.yaml``."""
    path = Path(path)
    doc = _read(path)
    _validate(doc, "calendar.v1.schema.json")
    return calendar_from_document(doc, name or path.stem)


# --------------------------------------------------------------------------- policies


def _thresholds(doc: _Document, path: list[PathItem], values: Sequence[float]) -> tuple[float, ...]:
    out = tuple(float(v) for v in values)
    if any(b <= a for a, b in itertools.pairwise(out)):
        raise doc.error(path, "thresholds must be strictly increasing")
    return out


def _as_tuple(value: str | Sequence[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _find_calendar_file(calendars_dir: Path, name: str) -> Path:
    for suffix in (".yaml", ".yml"):
        candidate = calendars_dir / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    return calendars_dir / f"{name}.yaml"


def policies_from_document(
    doc: _Document,
    *,
    calendars_dir: Path | None = None,
    calendars: Mapping[str, Calendar] | None = None,
) -> PolicySet:
    """Build a :class:`PolicySet` from a parsed policy document (validates it)."""
    _validate(doc, "policies.v1.schema.json")
    data: dict[str, Any] = doc.data
    if calendars_dir is None:
        base = Path(doc.file).resolve().parent
        calendars_dir = (base / data.get("calendars_dir", "../calendars")).resolve()
    given = dict(calendars or {})
    loaded: dict[str, Calendar] = {}
    sources: dict[str, str] = {}

    def calendar(name: str, path: list[PathItem]) -> Calendar:
        if name in loaded:
            return loaded[name]
        if name in given:
            found = given[name]
            sources[name] = "<given>"
        elif name == BUILTIN_CALENDAR:
            found = WallClockCalendar(BUILTIN_CALENDAR, "UTC")
            sources[name] = "<built-in>"
        else:
            assert calendars_dir is not None
            file = _find_calendar_file(calendars_dir, name)
            if not file.is_file():
                raise doc.error(path, f"calendar {name!r} not found: no file {file}")
            found = load_calendar(file, name)
            sources[name] = str(file)
        loaded[name] = found
        return found

    defaults: dict[str, Any] = data.get("defaults", {})
    default_calendar: str | None = defaults.get("calendar")
    if default_calendar is not None:
        calendar(default_calendar, ["defaults", "calendar"])
    default_thresholds = DEFAULT_THRESHOLDS
    if "thresholds" in defaults:
        default_thresholds = _thresholds(doc, ["defaults", "thresholds"], defaults["thresholds"])
    default_pauses = dict(DEFAULT_PAUSE_REASONS)
    for name, reasons in defaults.get("pause_reasons", {}).items():
        default_pauses[name] = frozenset(reasons)

    policies: list[Policy] = []
    ids: dict[str, int] = {}
    for index, item in enumerate(data["policies"]):
        ppath: list[PathItem] = ["policies", index]
        policy_id: str = item["id"]
        if policy_id in ids:
            raise doc.error(
                [*ppath, "id"],
                f"duplicate policy id {policy_id!r} (also policies[{ids[policy_id]}])",
            )
        ids[policy_id] = index
        match = item.get("match", {})
        categories = _as_tuple(match.get("category", "*"))
        urgencies = _as_tuple(match.get("urgency", "*"))
        policy_thresholds = default_thresholds
        if "thresholds" in item:
            policy_thresholds = _thresholds(doc, [*ppath, "thresholds"], item["thresholds"])
        policy_calendar = item.get("calendar", default_calendar)
        targets: dict[TargetName, Target] = {}
        for name in TARGET_NAMES:
            tpath: list[PathItem] = [*ppath, name]
            spec = item[name]
            clock: ClockKind = spec["clock"]
            if clock == "working_days" and "within" in spec:
                raise doc.error([*tpath, "within"], "clock working_days takes 'days', not 'within'")
            if clock != "working_days" and "days" in spec:
                raise doc.error([*tpath, "days"], f"clock {clock} takes 'within', not 'days'")
            calendar_name = spec.get("calendar", policy_calendar)
            if calendar_name is None:
                if clock != "wall":
                    raise doc.error(
                        tpath,
                        f"clock {clock} needs a calendar (here, in the policy or in defaults)",
                    )
                calendar_name = BUILTIN_CALENDAR
            where = [*tpath, "calendar"] if "calendar" in spec else tpath
            cal = calendar(calendar_name, where)
            seconds = None
            if "within" in spec:
                try:
                    seconds = parse_duration(spec["within"])
                except ValueError as exc:
                    raise doc.error([*tpath, "within"], str(exc)) from None
            thresholds = policy_thresholds
            if "thresholds" in spec:
                thresholds = _thresholds(doc, [*tpath, "thresholds"], spec["thresholds"])
            pauses = default_pauses[name]
            if "pause_reasons" in spec:
                pauses = frozenset(spec["pause_reasons"])
            targets[name] = Target(
                name=name,
                clock=clock,
                seconds=seconds,
                days=spec.get("days"),
                calendar=cal,
                thresholds=thresholds,
                pause_reasons=pauses,
            )
        policy = Policy(
            id=policy_id,
            index=index,
            name=item.get("name", policy_id),
            description=item.get("description", ""),
            categories=categories,
            urgencies=urgencies,
            first_response=targets["first_response"],
            resolution=targets["resolution"],
        )
        for earlier in policies:
            if _shadows(earlier, policy):
                raise doc.error(
                    [*ppath, "match"],
                    f"unreachable: every case it matches is matched first by "
                    f"policies[{earlier.index}] ({earlier.id!r})",
                )
        policies.append(policy)
    return PolicySet(
        source=doc.file,
        title=data.get("title", ""),
        authority=data.get("authority", ""),
        description=data.get("description", ""),
        policies=tuple(policies),
        calendars=loaded,
        calendar_sources=sources,
    )


def _shadows(earlier: Policy, later: Policy) -> bool:
    """True when ``earlier`` matches every case ``later`` matches (``later`` is dead)."""
    if "*" not in earlier.urgencies and (
        "*" in later.urgencies or not set(later.urgencies) <= set(earlier.urgencies)
    ):
        return False
    if "*" in earlier.categories:
        return True
    # Literal categories (no glob characters) covered by an earlier pattern.
    literal = all(not any(ch in c for ch in "*?[") for c in later.categories)
    return literal and all(
        any(fnmatch.fnmatchcase(c, p) for p in earlier.categories) for c in later.categories
    )


def load_policies(
    path: str | Path = DEFAULT_POLICIES_PATH,
    *,
    calendars_dir: str | Path | None = None,
    calendars: Mapping[str, Calendar] | None = None,
) -> PolicySet:
    """Load, validate and build a policy file. Calendars named in it are read from
    ``calendars_dir`` (default: the file's ``calendars_dir``, else ``../calendars``
    relative to it), unless given in ``calendars``. Raises :class:`PolicyError`."""
    path = Path(path)
    doc = _read(path)
    return policies_from_document(
        doc,
        calendars_dir=Path(calendars_dir) if calendars_dir is not None else None,
        calendars=calendars,
    )


def policies_from_text(
    text: str,
    *,
    file: str = "<string>",
    calendars_dir: str | Path | None = None,
    calendars: Mapping[str, Calendar] | None = None,
) -> PolicySet:
    """Like :func:`load_policies` for YAML text (``file`` names it in errors); calendars
    default to the shipped ``config/calendars``."""
    doc = _parse_yaml(text, file)
    return policies_from_document(
        doc,
        calendars_dir=Path(calendars_dir) if calendars_dir is not None else DEFAULT_CALENDARS_DIR,
        calendars=calendars,
    )


def calendar_from_text(text: str, name: str, *, file: str = "<string>") -> Calendar:
    """Like :func:`load_calendar` for YAML text."""
    doc = _parse_yaml(text, file)
    _validate(doc, "calendar.v1.schema.json")
    return calendar_from_document(doc, name)
