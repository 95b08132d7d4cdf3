"""Board metrics: responsiveness rates, durations, on-time shares, backlog, quality and the
monthly ranking, read from ``case_sla`` / ``case_cycles``.

Every definition (numerator, denominator, clock, time attribution) is in docs/metrics.md;
the functions here are its SQL. All of them:

* select cases by **intake time** (``opened_at``) in a :class:`Window` (``backlog`` takes
  an optional one), filtered by dimension values and grouped by dimensions
  (:data:`DIMENSIONS`);
* read the replacing tables exactly: ``FINAL``, and the cases whose intake moved (more than
  one ``opened`` event) from the ``*_moved`` tables keyed by case id (see
  ``schemas/clickhouse/0004_case_sla.sql``);
* bind every value (window bounds, ``now``, filter values) as a query parameter; only
  dimension names, checked against :data:`DIMENSIONS`, are written into the SQL;
* return plain JSON-ready dicts: one per group, ``{"group": {dimension: value}, ...}``,
  rates as ``{"numerator", "denominator", "rate", "suppressed"}`` with ``rate`` a fraction
  in [0, 1], durations in seconds;
* suppress small cells: a group with fewer than ``min_cases`` cases has every number
  nulled (``"suppressed": true``); in a published group, a rate whose denominator is below
  ``min_cases`` has its rate and numerator nulled, and a duration percentile computed over
  fewer than ``min_cases`` values is nulled. ``min_cases=0`` publishes everything.

``now`` (default: the current time) only matters for clocks still running: whether they are
past their deadline or a warning, and the age of open cases. Rows never depend on it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from clickhouse_connect.driver.client import Client

from streams.contract.generated import CLOSURE_REASONS
from streams.store.queries import OPEN_STATUSES

# --------------------------------------------------------------------------- constants

#: dimensions a metric can be grouped and filtered by (columns of case_sla and case_cycles)
DIMENSIONS: Final[tuple[str, ...]] = (
    "agency",
    "sub_unit",
    "district",
    "sub_district",
    "category",
    "channel",
    "urgency",
)
#: rolling windows ending at ``now``, and ``month`` (a calendar month in a time zone)
WINDOW_PRESETS: Final[dict[str, timedelta | None]] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "month": None,
}
DEFAULT_MIN_CASES: Final = 5
DEFAULT_TIMEZONE: Final = "Asia/Shanghai"
#: the percentiles reported for every duration (linear interpolation between order
#: statistics: Excel PERCENTILE.INC, numpy's default, ClickHouse quantileExactInclusive)
PERCENTILES: Final[tuple[float, ...]] = (0.5, 0.9, 0.99)
#: satisfaction answers that count as satisfied (满意 and 基本满意, as Beijing counts them)
SATISFIED: Final[tuple[str, ...]] = ("satisfied", "basically_satisfied")
SATISFACTION_LEVELS: Final[tuple[str, ...]] = ("satisfied", "basically_satisfied", "dissatisfied")
#: backlog age bands, [lower, upper) in days since intake
AGING_BUCKETS: Final[tuple[tuple[str, float, float], ...]] = (
    ("lt_1d", 0, 1),
    ("1d_3d", 1, 3),
    ("3d_7d", 3, 7),
    ("7d_15d", 7, 15),
    ("ge_15d", 15, math.inf),
)
#: warning fractions with a column (``res_warn_50_at``, ...): the at-risk levels
AT_RISK_LEVELS: Final[tuple[str, ...]] = ("50", "75", "90")
#: ranking inputs a weight may name, and the ranking levels
RANKING_METRICS: Final[tuple[str, ...]] = (
    "response_rate",
    "resolution_rate",
    "satisfaction_rate",
    "participation_rate",
    "first_response_on_time",
    "resolution_on_time",
)
RankingLevel = Literal["sub_district", "agency"]
RANKING_LEVELS: Final[dict[str, tuple[str, ...]]] = {
    "sub_district": ("district", "sub_district"),
    "agency": ("agency",),
}
DEFAULT_RANKING_CONFIG: Final = Path(__file__).resolve().parents[2] / "config" / "ranking.yaml"

_SECOND_US: Final = 1_000_000
_DAY_S: Final = 86_400

Filters = Mapping[str, str | Sequence[str]]
GroupBy = str | Sequence[str] | None


class MetricsError(ValueError):
    """A metric was asked with an invalid window, dimension or configuration."""


# --------------------------------------------------------------------------- windows


@dataclass(frozen=True, slots=True)
class Window:
    """Cases whose intake (``opened_at``) is in ``[start, end)``; aware datetimes."""

    start: datetime
    end: datetime
    label: str = "custom"

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value.tzinfo is None or value.utcoffset() is None:
                raise MetricsError(f"window {name} must be timezone-aware")
        if self.end <= self.start:
            raise MetricsError("a window must end after it starts")

    def to_dict(self) -> dict[str, str]:
        return {
            "label": self.label,
            "start": _iso(self.start),
            "end": _iso(self.end),
        }


def window(
    preset: str,
    *,
    now: datetime | None = None,
    month: str | None = None,
    timezone: str = DEFAULT_TIMEZONE,
) -> Window:
    """A window preset: ``1h``, ``24h``, ``7d``, ``30d`` end at ``now`` (default: the
    current time); ``month`` is the calendar month ``month`` (``YYYY-MM``, default: the
    month of ``now``) in ``timezone``, from its first day 00:00 to the next month's."""
    if preset not in WINDOW_PRESETS:
        raise MetricsError(f"unknown window {preset!r}: use one of {sorted(WINDOW_PRESETS)}")
    now = _aware(now)
    span = WINDOW_PRESETS[preset]
    if span is not None:
        if month is not None:
            raise MetricsError("month= is only for the 'month' window")
        return Window(now - span, now, preset)
    zone = _zone(timezone)
    if month is None:
        local = now.astimezone(zone)
        year, number = local.year, local.month
    else:
        match = re.fullmatch(r"(\d{4})-(\d{2})", month)
        if match is None or not 1 <= int(match.group(2)) <= 12:
            raise MetricsError(f"month {month!r} is not YYYY-MM")
        year, number = int(match.group(1)), int(match.group(2))
    start = datetime(year, number, 1, tzinfo=zone)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=zone)
    return Window(start.astimezone(UTC), end.astimezone(UTC), f"{year:04d}-{number:02d}")


def _aware(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise MetricsError("now must be timezone-aware")
    return now.astimezone(UTC)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise MetricsError(f"unknown time zone {name!r}") from err


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- SQL building


class _Sql:
    """Collects bound parameters while a query is written."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def bind(self, value: Any, type_: str) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return "{" + f"{name}:{type_}" + "}"

    def instant(self, value: datetime) -> str:
        return self.bind(value.astimezone(UTC), "DateTime64(6, 'UTC')")


def _group_columns(group_by: GroupBy) -> tuple[str, ...]:
    if group_by is None:
        columns: tuple[str, ...] = ()
    elif isinstance(group_by, str):
        columns = (group_by,)
    else:
        columns = tuple(group_by)
    for column in columns:
        if column not in DIMENSIONS:
            raise MetricsError(f"cannot group by {column!r}: use {', '.join(DIMENSIONS)}")
    if len(set(columns)) != len(columns):
        raise MetricsError(f"a dimension is repeated in group_by {columns}")
    return columns


def _filter_sql(sql: _Sql, filters: Filters | None) -> list[str]:
    conditions: list[str] = []
    for column, value in sorted((filters or {}).items()):
        if column not in DIMENSIONS:
            raise MetricsError(f"cannot filter by {column!r}: use {', '.join(DIMENSIONS)}")
        values = [value] if isinstance(value, str) else list(value)
        if not values or not all(isinstance(v, str) for v in values):
            raise MetricsError(f"filter {column!r} needs a string or a non-empty list of them")
        conditions.append(f"{column} IN {sql.bind(values, 'Array(String)')}")
    return conditions


_MOVED = {"case_sla": "case_sla_moved", "case_cycles": "case_cycles_moved"}


def _source(
    sql: _Sql,
    table: Literal["case_sla", "case_cycles"],
    win: Window | None,
    filters: Filters | None,
    where: Sequence[str] = (),
) -> str:
    """The latest row of every case (or cycle) in the window, as a subquery.

    Cases whose intake may have moved are read from the ``*_moved`` table, keyed by case
    id, and left out of the main table, where an older row may still sit under the old
    intake date. ``where`` adds conditions on the latest rows (both tables).
    """
    conditions = [*_filter_sql(sql, filters), *where]
    main = list(conditions)
    moved = list(conditions)
    if win is not None:
        start, end = sql.instant(win.start), sql.instant(win.end)
        in_window = [f"opened_at >= {start}", f"opened_at < {end}"]
        # the key prefix first: it selects the window's granules before FINAL reads them
        main = [f"intake_date >= toDate({start})", f"intake_date <= toDate({end})", *in_window]
        main += conditions
        moved = in_window + conditions
    # last, so it is only evaluated for rows that passed the rest
    main.append(f"case_id NOT IN (SELECT case_id FROM {_MOVED[table]})")
    return (
        f"SELECT * FROM {table} FINAL WHERE {' AND '.join(main)}\n"
        f"UNION ALL\n"
        f"SELECT * FROM {_MOVED[table]} FINAL" + (f" WHERE {' AND '.join(moved)}" if moved else "")
    )


def _grouped(
    client: Client,
    sql: _Sql,
    source: str,
    group: tuple[str, ...],
    aggregates: Sequence[tuple[str, str]],
    *,
    derived: str = "",
) -> list[dict[str, Any]]:
    """Run ``SELECT group..., aggregates FROM (source)`` and return dict rows."""
    # aliases get a prefix: an alias equal to a column name (transfers) would shadow it
    select = [*group, *(f"{expression} AS m_{name}" for name, expression in aggregates)]
    inner = f"SELECT *{', ' + derived if derived else ''} FROM ({source})"
    text = f"SELECT {', '.join(select)}\nFROM ({inner})"
    if group:
        text += f"\nGROUP BY {', '.join(group)}\nORDER BY {', '.join(group)}"
    result = client.query(text, parameters=sql.params)
    names = [name.removeprefix("m_") for name in result.column_names[len(group) :]]
    names = [*group, *names]
    return [dict(zip(names, row, strict=True)) for row in result.result_rows]


# --------------------------------------------------------------------------- publishing


def rate(numerator: int, denominator: int, min_cases: int) -> dict[str, Any]:
    """A published rate: ``rate`` = numerator / denominator, null when the denominator is 0;
    rate and numerator nulled (``suppressed``) when 0 < denominator < ``min_cases``."""
    suppressed = 0 < denominator < min_cases
    return {
        "numerator": None if suppressed else int(numerator),
        "denominator": int(denominator),
        "rate": None if suppressed or denominator == 0 else numerator / denominator,
        "suppressed": suppressed,
    }


def _quantiles(count: int, values: Sequence[float], mean: float | None, min_cases: int) -> Any:
    publish = count > 0 and count >= min_cases
    out: dict[str, Any] = {"count": int(count), "mean": _finite(mean) if publish else None}
    for p, value in zip(PERCENTILES, values, strict=True):
        out[_p_name(p)] = _finite(value) if publish else None
    return out


def _p_name(p: float) -> str:
    return f"p{round(p * 100):d}"


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _blank(value: Any) -> Any:
    """The same structure with every value nulled and every ``suppressed`` flag set (the
    body of a suppressed group)."""
    if isinstance(value, dict):
        return {k: (True if k == "suppressed" else _blank(v)) for k, v in value.items()}
    return None


def _publish(
    rows: Iterable[dict[str, Any]],
    group: tuple[str, ...],
    size: str,
    min_cases: int,
    build: Callable[[dict[str, Any]], dict[str, Any]],
) -> list[dict[str, Any]]:
    """One output dict per result row; groups smaller than ``min_cases`` are blanked."""
    out: list[dict[str, Any]] = []
    for row in rows:
        body = build(row)
        small = 0 < int(row[size]) < min_cases
        if small:
            body = _blank(body)
        out.append({"group": {c: str(row[c]) for c in group}, "suppressed": small, **body})
    return out


def _empty_total(group: tuple[str, ...], rows: list[dict[str, Any]]) -> bool:
    return not group and not rows


def _check_min_cases(min_cases: int) -> int:
    if isinstance(min_cases, bool) or not isinstance(min_cases, int) or min_cases < 0:
        raise MetricsError("min_cases must be an integer >= 0")
    return min_cases


# --------------------------------------------------------------------------- rates

_FINISHED = "(first_resolved_at IS NOT NULL OR closed_at IS NOT NULL)"
_DISPATCHED = "(first_dispatched_at IS NOT NULL AND policy_id != '')"

Aggregates = list[tuple[str, str]]
Builder = Callable[[dict[str, Any]], dict[str, Any]]


def _decided(ended: str, due: str, now: str) -> str:
    """A clock's verdict is known: it stopped, or it runs past its deadline."""
    return f"({ended} IS NOT NULL OR ({due} IS NOT NULL AND {due} <= {now}))"


def _rate_parts(sql: _Sql, now: str, min_cases: int) -> tuple[Aggregates, Builder]:
    """Aggregates over case_sla rows and the builder of the four rates."""
    satisfied = sql.bind(list(SATISFIED), "Array(String)")
    response_decided = f"({_DISPATCHED} AND {_decided('fr_ended_at', 'fr_due_at', now)})"
    aggregates: Aggregates = [
        ("cases", "count()"),
        ("dispatched", "countIf(first_dispatched_at IS NOT NULL)"),
        ("dispatched_no_sla", "countIf(first_dispatched_at IS NOT NULL AND policy_id = '')"),
        ("response_den", f"countIf({response_decided})"),
        (
            "response_num",
            f"countIf({response_decided} AND ifNull(fr_on_time, false) "
            "AND signed_for_at IS NOT NULL AND fr_due_at IS NOT NULL "
            "AND signed_for_at <= fr_due_at)",
        ),
        ("response_pending", f"countIf({_DISPATCHED} AND NOT {response_decided})"),
        ("resolution_den", "countIf(citizen_confirms_solved IS NOT NULL)"),
        ("resolution_num", "countIf(ifNull(citizen_confirms_solved, false))"),
        ("called_back", "countIf(callback_reached)"),
        ("resolved", "countIf(first_resolved_at IS NOT NULL)"),
        ("satisfaction_den", "countIf(satisfaction != '')"),
        ("satisfaction_num", f"countIf(satisfaction IN {satisfied})"),
        *((f"sat_{level}", f"countIf(satisfaction = '{level}')") for level in SATISFACTION_LEVELS),
        ("participation_den", f"countIf({_FINISHED})"),
        ("participation_num", f"countIf({_FINISHED} AND satisfaction != '')"),
    ]

    def build(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "cases": int(row["cases"]),
            "response_rate": {
                **rate(row["response_num"], row["response_den"], min_cases),
                "pending": int(row["response_pending"]),
                "dispatched": int(row["dispatched"]),
                "dispatched_without_sla": int(row["dispatched_no_sla"]),
            },
            "resolution_rate": {
                **rate(row["resolution_num"], row["resolution_den"], min_cases),
                "called_back": int(row["called_back"]),
                "resolved": int(row["resolved"]),
            },
            "satisfaction_rate": {
                **rate(row["satisfaction_num"], row["satisfaction_den"], min_cases),
                **{level: int(row[f"sat_{level}"]) for level in SATISFACTION_LEVELS},
            },
            "participation_rate": rate(
                row["participation_num"], row["participation_den"], min_cases
            ),
        }

    return aggregates, build


def _on_time_parts(now: str, min_cases: int) -> tuple[Aggregates, Builder]:
    """Aggregates over case_sla rows and the builder of the case-level on-time shares."""
    fr_decided = _decided("fr_ended_at", "fr_due_at", now)
    res_decided = _decided("res0_ended_at", "res0_due_at", now)
    aggregates: Aggregates = [
        ("cases", "count()"),
        ("with_sla", "countIf(policy_id != '')"),
        ("fr_den", f"countIf(policy_id != '' AND {fr_decided})"),
        ("fr_num", "countIf(ifNull(fr_on_time, false))"),
        ("fr_running_late", f"countIf(policy_id != '' AND fr_ended_at IS NULL AND {fr_decided})"),
        ("res_den", f"countIf(policy_id != '' AND {res_decided})"),
        ("res_num", "countIf(ifNull(res0_on_time, false))"),
        (
            "res_running_late",
            f"countIf(policy_id != '' AND res0_ended_at IS NULL AND {res_decided})",
        ),
    ]

    def build(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "cases": int(row["cases"]),
            "cases_with_sla": int(row["with_sla"]),
            "first_response": {
                **rate(row["fr_num"], row["fr_den"], min_cases),
                "running_late": int(row["fr_running_late"]),
            },
            "resolution": {
                **rate(row["res_num"], row["res_den"], min_cases),
                "running_late": int(row["res_running_late"]),
            },
        }

    return aggregates, build


def _merge(*parts: Aggregates) -> Aggregates:
    out: dict[str, str] = {}
    for aggregates in parts:
        for name, expression in aggregates:
            if out.setdefault(name, expression) != expression:
                raise AssertionError(f"aggregate {name} defined twice differently")
    return list(out.items())


def _zeros(aggregates: Aggregates, group: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """The total of an empty selection: every count 0 (ungrouped queries only)."""
    if _empty_total(group, rows):
        rows.append({name: 0 for name, _ in aggregates})


def rates(
    client: Client,
    win: Window,
    *,
    group_by: GroupBy = None,
    filters: Filters | None = None,
    now: datetime | None = None,
    min_cases: int = DEFAULT_MIN_CASES,
) -> list[dict[str, Any]]:
    """Response, resolution, satisfaction and participation rates per group
    (docs/metrics.md, "Rates"), with the counts behind them."""
    group = _group_columns(group_by)
    min_cases = _check_min_cases(min_cases)
    sql = _Sql()
    source = _source(sql, "case_sla", win, filters)
    aggregates, build = _rate_parts(sql, sql.instant(_aware(now)), min_cases)
    rows = _grouped(client, sql, source, group, aggregates)
    _zeros(aggregates, group, rows)
    return _publish(rows, group, "cases", min_cases, build)


# --------------------------------------------------------------------------- durations


def durations(
    client: Client,
    win: Window,
    *,
    group_by: GroupBy = None,
    filters: Filters | None = None,
    min_cases: int = DEFAULT_MIN_CASES,
) -> list[dict[str, Any]]:
    """Time to first response and to resolution (cycle 0): count, mean, p50, p90, p99, on
    the SLA clock's wall and business time (docs/metrics.md, "Durations")."""
    group = _group_columns(group_by)
    min_cases = _check_min_cases(min_cases)
    sql = _Sql()
    source = _source(sql, "case_sla", win, filters)
    levels = ", ".join(repr(p) for p in PERCENTILES)
    measures = {
        "first_response": ("fr_ended_by = 'first_contact'", "fr_seconds", "fr_business_seconds"),
        "resolution": ("res0_ended_by = 'resolved'", "res0_seconds", "res0_business_seconds"),
    }
    aggregates: list[tuple[str, str]] = [("cases", "count()")]
    for name, (condition, wall, business) in measures.items():
        aggregates.append((f"{name}_n", f"countIf({condition})"))
        for clock, column in (("wall", wall), ("business", business)):
            aggregates.append(
                (f"{name}_{clock}_q", f"quantilesExactInclusiveIf({levels})({column}, {condition})")
            )
            aggregates.append((f"{name}_{clock}_mean", f"avgIf({column}, {condition})"))
    rows = _grouped(client, sql, source, group, aggregates)
    if _empty_total(group, rows):
        nan = [math.nan] * len(PERCENTILES)
        rows = [{name: (nan if name.endswith("_q") else 0) for name, _ in aggregates}]

    def build(row: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"cases": int(row["cases"])}
        for name in measures:
            count = int(row[f"{name}_n"])
            body[name] = {
                clock: _quantiles(
                    count, row[f"{name}_{clock}_q"], row[f"{name}_{clock}_mean"], min_cases
                )
                for clock in ("wall", "business")
            }
        return body

    return _publish(rows, group, "cases", min_cases, build)


# --------------------------------------------------------------------------- on time


def on_time(
    client: Client,
    win: Window,
    *,
    group_by: GroupBy = None,
    filters: Filters | None = None,
    now: datetime | None = None,
    min_cases: int = DEFAULT_MIN_CASES,
) -> list[dict[str, Any]]:
    """On-time shares against the policy: first response, resolution cycle 0, and every
    resolution cycle (docs/metrics.md, "On time")."""
    group = _group_columns(group_by)
    min_cases = _check_min_cases(min_cases)
    at = _aware(now)

    sql = _Sql()
    source = _source(sql, "case_sla", win, filters)
    aggregates, build_cases = _on_time_parts(sql.instant(at), min_cases)
    case_rows = _grouped(client, sql, source, group, aggregates)
    _zeros(aggregates, group, case_rows)

    csql = _Sql()
    csource = _source(csql, "case_cycles", win, filters)
    c_decided = _decided("ended_at", "due_at", csql.instant(at))
    cycle_aggregates = [
        ("cycles", "count()"),
        ("cyc_den", f"countIf({c_decided})"),
        ("cyc_num", "countIf(ifNull(on_time, false))"),
        ("reopen_den", f"countIf(cycle > 0 AND {c_decided})"),
        ("reopen_num", "countIf(cycle > 0 AND ifNull(on_time, false))"),
    ]
    cycle_rows = {
        tuple(str(r[c]) for c in group): r
        for r in _grouped(client, csql, csource, group, cycle_aggregates)
    }

    def build(row: dict[str, Any]) -> dict[str, Any]:
        cycles = cycle_rows.get(tuple(str(row[c]) for c in group), {})
        return {
            **build_cases(row),
            "resolution_all_cycles": {
                **rate(cycles.get("cyc_num", 0), cycles.get("cyc_den", 0), min_cases),
                "cycles": int(cycles.get("cycles", 0)),
            },
            "resolution_reopened_cycles": rate(
                cycles.get("reopen_num", 0), cycles.get("reopen_den", 0), min_cases
            ),
        }

    return _publish(case_rows, group, "cases", min_cases, build)


# --------------------------------------------------------------------------- backlog


def backlog(
    client: Client,
    *,
    group_by: GroupBy = None,
    filters: Filters | None = None,
    now: datetime | None = None,
    win: Window | None = None,
    min_cases: int = DEFAULT_MIN_CASES,
) -> list[dict[str, Any]]:
    """Open cases as of ``now``: age bands since intake, past the current resolution
    deadline, past each warning, first response overdue, paused (docs/metrics.md,
    "Backlog"). ``win`` restricts them to an intake window (default: every open case)."""
    group = _group_columns(group_by)
    min_cases = _check_min_cases(min_cases)
    sql = _Sql()
    statuses = sql.bind(list(OPEN_STATUSES), "Array(String)")
    source = _source(sql, "case_sla", win, filters, where=[f"status IN {statuses}"])
    at = sql.instant(_aware(now))
    aggregates: list[tuple[str, str]] = [("open", "count()")]
    for name, low, high in AGING_BUCKETS:
        condition = f"age_us >= {int(low * _DAY_S * _SECOND_US)}"
        if math.isfinite(high):
            condition += f" AND age_us < {int(high * _DAY_S * _SECOND_US)}"
        aggregates.append((f"age_{name}", f"countIf({condition})"))
    running = "res_ended_at IS NULL"
    aggregates += [
        ("past_due", f"countIf({running} AND res_due_at IS NOT NULL AND res_due_at <= {at})"),
        *(
            (
                f"past_{level}",
                f"countIf({running} AND res_warn_{level}_at IS NOT NULL "
                f"AND res_warn_{level}_at <= {at})",
            )
            for level in AT_RISK_LEVELS
        ),
        (
            "fr_overdue",
            f"countIf(fr_ended_at IS NULL AND fr_due_at IS NOT NULL AND fr_due_at <= {at})",
        ),
        ("paused", "countIf(res_paused_since IS NOT NULL)"),
        ("no_sla", "countIf(policy_id = '')"),
        ("oldest_opened_at", "min(opened_at)"),
    ]
    derived = (
        f"toUnixTimestamp64Micro({at}) - toUnixTimestamp64Micro(assumeNotNull(opened_at)) AS age_us"
    )
    rows = _grouped(client, sql, source, group, aggregates, derived=derived)
    if _empty_total(group, rows):
        rows = [{name: (None if name == "oldest_opened_at" else 0) for name, _ in aggregates}]

    def build(row: dict[str, Any]) -> dict[str, Any]:
        open_cases = int(row["open"])
        oldest = row["oldest_opened_at"]
        return {
            "open": open_cases,
            "aging": {name: int(row[f"age_{name}"]) for name, _, _ in AGING_BUCKETS},
            "past_due": rate(row["past_due"], open_cases, min_cases),
            "at_risk": {
                f"past_{level}": rate(row[f"past_{level}"], open_cases, min_cases)
                for level in AT_RISK_LEVELS
            },
            "first_response_overdue": int(row["fr_overdue"]),
            "paused": int(row["paused"]),
            "without_sla": int(row["no_sla"]),
            "oldest_opened_at": _iso(oldest) if open_cases and oldest is not None else None,
        }

    return _publish(rows, group, "open", min_cases, build)


# --------------------------------------------------------------------------- quality


def quality(
    client: Client,
    win: Window,
    *,
    group_by: GroupBy = None,
    filters: Filters | None = None,
    min_cases: int = DEFAULT_MIN_CASES,
) -> list[dict[str, Any]]:
    """Reopen rate, transfers and ping-pong, pauses, closure reasons, and the gap between
    agency-claimed and citizen-confirmed resolution (docs/metrics.md, "Quality")."""
    group = _group_columns(group_by)
    min_cases = _check_min_cases(min_cases)
    sql = _Sql()
    source = _source(sql, "case_sla", win, filters)
    aggregates: list[tuple[str, str]] = [
        ("cases", "count()"),
        ("finished", f"countIf({_FINISHED})"),
        ("reopened", f"countIf({_FINISHED} AND reopens > 0)"),
        ("transfers", "sum(transfers)"),
        ("transferred", "countIf(transfers > 0)"),
        ("ping_pongs", "sum(ping_pongs)"),
        ("ping_ponged", "countIf(ping_pongs > 0)"),
        ("returns", "sum(returns)"),
        ("paused_cases", "countIf(pauses > 0)"),
        ("with_reason", "countIf(closure_reason != '')"),
        *(
            (f"closed_{reason}", f"countIf(closure_reason = '{reason}')")
            for reason in CLOSURE_REASONS
        ),
        ("gap_den", "countIf(closure_reason != '' AND citizen_confirms_solved IS NOT NULL)"),
        ("claimed", "countIf(closure_reason = 'fixed' AND citizen_confirms_solved IS NOT NULL)"),
        (
            "confirmed",
            "countIf(closure_reason != '' AND ifNull(citizen_confirms_solved, false))",
        ),
        (
            "fixed_not_confirmed",
            "countIf(closure_reason = 'fixed' AND NOT ifNull(citizen_confirms_solved, true))",
        ),
    ]
    rows = _grouped(client, sql, source, group, aggregates)
    if _empty_total(group, rows):
        rows = [{name: 0 for name, _ in aggregates}]

    def build(row: dict[str, Any]) -> dict[str, Any]:
        cases = int(row["cases"])
        claimed = rate(row["claimed"], row["gap_den"], min_cases)
        confirmed = rate(row["confirmed"], row["gap_den"], min_cases)
        gap = (
            claimed["rate"] - confirmed["rate"]
            if claimed["rate"] is not None and confirmed["rate"] is not None
            else None
        )
        return {
            "cases": cases,
            "reopen_rate": rate(row["reopened"], row["finished"], min_cases),
            "transfers": {
                "total": int(row["transfers"]),
                "per_case": None if cases == 0 or cases < min_cases else row["transfers"] / cases,
                "cases_transferred": rate(row["transferred"], cases, min_cases),
                "returns": int(row["returns"]),
            },
            "ping_pong": {
                "total": int(row["ping_pongs"]),
                "cases": rate(row["ping_ponged"], cases, min_cases),
            },
            "paused_cases": rate(row["paused_cases"], cases, min_cases),
            "closure_reasons": {
                reason: rate(row[f"closed_{reason}"], row["with_reason"], min_cases)
                for reason in CLOSURE_REASONS
            },
            "claimed_vs_confirmed": {
                "claimed": claimed,
                "confirmed": confirmed,
                "gap": gap,
                "fixed_not_confirmed": int(row["fixed_not_confirmed"]),
            },
        }

    return _publish(rows, group, "cases", min_cases, build)


# --------------------------------------------------------------------------- late events


def late_events(client: Client, win: Window) -> dict[str, Any]:
    """Events that arrived later than the worker's grace period (``late_events``, written
    by the worker; docs/metrics.md, "Late events"), by type: those whose event time is in
    ``win`` (``by_event_time``), and those of the cases whose intake is in ``win``
    (``by_intake``: the events that changed the window's cohort late). They were applied
    like every event, so every number is already corrected; they are reported because
    they may change figures that were already read or published."""

    def report(where: str, sql: _Sql) -> dict[str, Any]:
        result = client.query(
            "SELECT type, count(), uniqExact(case_id), max(lateness_seconds) "
            f"FROM late_events FINAL WHERE {where} GROUP BY type ORDER BY type",
            parameters=sql.params,
        )
        by_type = {
            str(kind): {"events": int(n), "cases": int(cases), "max_lateness_seconds": float(m)}
            for kind, n, cases, m in result.result_rows
        }
        return {"events": sum(v["events"] for v in by_type.values()), "by_type": by_type}

    sql = _Sql()
    start, end = sql.instant(win.start), sql.instant(win.end)
    by_time = report(f"occurred_at >= {start} AND occurred_at < {end}", sql)
    sql = _Sql()
    cohort = _source(sql, "case_sla", win, None)
    by_intake = report(f"case_id IN (SELECT case_id FROM ({cohort}))", sql)
    return {"window": win.to_dict(), "by_event_time": by_time, "by_intake": by_intake}


# --------------------------------------------------------------------------- ranking


class RankingConfigError(MetricsError):
    """``config/ranking.yaml`` is invalid: ``path`` (dotted) and ``reason``."""

    def __init__(self, file: str, path: str, reason: str) -> None:
        super().__init__(f"{file}: {path or '(document)'}: {reason}")
        self.file, self.path, self.reason = file, path, reason


@dataclass(frozen=True, slots=True)
class RankingConfig:
    """The composite index: ``index = 100 * sum(w_m * rate_m) / sum(w_m)`` over the
    weighted metrics (docs/metrics.md, "Monthly ranking")."""

    weights: dict[str, float]
    timezone: str = DEFAULT_TIMEZONE
    min_cases: int = DEFAULT_MIN_CASES
    title: str = ""

    def to_dict(self) -> dict[str, Any]:
        total = sum(self.weights.values())
        return {
            "title": self.title,
            "timezone": self.timezone,
            "min_cases": self.min_cases,
            "weights": dict(self.weights),
            "normalized_weights": {k: v / total for k, v in self.weights.items()},
        }


def ranking_config_from_text(text: str, *, file: str = "<string>") -> RankingConfig:
    """Parse and validate a ranking configuration (see ``config/ranking.yaml``)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise RankingConfigError(file, "", f"not valid YAML: {err}") from err

    def fail(path: str, reason: str) -> RankingConfigError:
        return RankingConfigError(file, path, reason)

    if not isinstance(doc, dict):
        raise fail("", "must be a mapping")
    allowed = {"version", "title", "description", "timezone", "min_cases", "weights"}
    unknown = sorted(str(k) for k in doc if k not in allowed)
    if unknown:
        raise fail(unknown[0], f"unknown key (allowed: {', '.join(sorted(allowed))})")
    if doc.get("version") != 1:
        raise fail("version", "must be 1")
    title = doc.get("title", "")
    if not isinstance(title, str):
        raise fail("title", "must be a string")
    if not isinstance(doc.get("description", ""), str):
        raise fail("description", "must be a string")
    timezone = doc.get("timezone", DEFAULT_TIMEZONE)
    if not isinstance(timezone, str):
        raise fail("timezone", "must be an IANA time zone name")
    try:
        _zone(timezone)
    except MetricsError as err:
        raise fail("timezone", str(err)) from err
    min_cases = doc.get("min_cases", DEFAULT_MIN_CASES)
    if isinstance(min_cases, bool) or not isinstance(min_cases, int) or min_cases < 0:
        raise fail("min_cases", "must be an integer >= 0")
    weights = doc.get("weights")
    if not isinstance(weights, dict) or not weights:
        raise fail("weights", f"must map metrics ({', '.join(RANKING_METRICS)}) to weights")
    parsed: dict[str, float] = {}
    for name, value in weights.items():
        if name not in RANKING_METRICS:
            raise fail(f"weights.{name}", f"unknown metric (use {', '.join(RANKING_METRICS)})")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail(f"weights.{name}", "must be a number")
        if not math.isfinite(value) or value < 0:
            raise fail(f"weights.{name}", "must be a finite number >= 0")
        parsed[str(name)] = float(value)
    if sum(parsed.values()) <= 0:
        raise fail("weights", "at least one weight must be positive")
    return RankingConfig(weights=parsed, timezone=timezone, min_cases=min_cases, title=title)


def load_ranking_config(path: str | Path = DEFAULT_RANKING_CONFIG) -> RankingConfig:
    """Read and validate a ranking configuration file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise RankingConfigError(str(path), "", f"cannot read: {err}") from err
    return ranking_config_from_text(text, file=str(path))


def ranking(
    client: Client,
    level: RankingLevel,
    *,
    month: str | None = None,
    config: RankingConfig | None = None,
    now: datetime | None = None,
    filters: Filters | None = None,
    min_cases: int | None = None,
) -> dict[str, Any]:
    """The monthly ranking of sub-districts (grouped by district and sub-district) or
    agencies (the current owner) on the composite index, with its inputs beside it.

    A unit is ranked when it has at least ``min_cases`` cases in the month (default: the
    configuration's) and every weighted input has a published rate; the others are listed
    under ``unranked`` with their inputs. Ranks are competition ranks (1, 2, 2, 4) by index,
    highest first.
    """
    if level not in RANKING_LEVELS:
        raise MetricsError(f"unknown ranking level {level!r}: use {', '.join(RANKING_LEVELS)}")
    config = config or load_ranking_config()
    threshold = _check_min_cases(config.min_cases if min_cases is None else min_cases)
    at = _aware(now)
    win = window("month", now=at, month=month, timezone=config.timezone)
    group = RANKING_LEVELS[level]
    # one query: the rates and the on-time shares share the scan
    sql = _Sql()
    source = _source(sql, "case_sla", win, filters)
    now_sql = sql.instant(at)
    rate_aggregates, build_rates = _rate_parts(sql, now_sql, threshold)
    time_aggregates, build_times = _on_time_parts(now_sql, threshold)
    rows = _grouped(client, sql, source, group, _merge(rate_aggregates, time_aggregates))

    def build(row: dict[str, Any]) -> dict[str, Any]:
        times = build_times(row)
        return {
            **build_rates(row),
            "first_response_on_time": times["first_response"],
            "resolution_on_time": times["resolution"],
        }

    published = _publish(rows, group, "cases", threshold, build)
    total = sum(config.weights.values())
    ranked: list[dict[str, Any]] = []
    unranked: list[dict[str, Any]] = []
    for row in published:
        inputs = {m: row[m] for m in RANKING_METRICS}
        values = {m: inputs[m]["rate"] for m in config.weights}
        complete = not row["suppressed"] and all(v is not None for v in values.values())
        index = (
            100.0 * sum(config.weights[m] * cast(float, values[m]) for m in values) / total
            if complete
            else None
        )
        entry = {
            "rank": None,
            **row["group"],
            "index": index,
            "cases": row["cases"],
            "inputs": inputs,
        }
        (ranked if index is not None else unranked).append(entry)
    ranked.sort(key=lambda e: (-e["index"], *(e[c] for c in group)))
    previous: float | None = None
    rank = 0
    for position, entry in enumerate(ranked, start=1):
        if entry["index"] != previous:
            rank = position
            previous = entry["index"]
        entry["rank"] = rank
    unranked.sort(key=lambda e: tuple(e[c] for c in group))
    return {
        "level": level,
        "month": win.label,
        "window": win.to_dict(),
        "now": _iso(at),
        "config": config.to_dict(),
        "min_cases": threshold,
        "ranked": ranked,
        "unranked": unranked,
    }


__all__ = [
    "AGING_BUCKETS",
    "AT_RISK_LEVELS",
    "DEFAULT_MIN_CASES",
    "DEFAULT_RANKING_CONFIG",
    "DEFAULT_TIMEZONE",
    "DIMENSIONS",
    "PERCENTILES",
    "RANKING_LEVELS",
    "RANKING_METRICS",
    "SATISFIED",
    "WINDOW_PRESETS",
    "MetricsError",
    "RankingConfig",
    "RankingConfigError",
    "Window",
    "backlog",
    "durations",
    "late_events",
    "load_ranking_config",
    "on_time",
    "quality",
    "ranking",
    "ranking_config_from_text",
    "rate",
    "rates",
    "window",
]
