"""SQL fragments shared by the boards, written in the ClickHouse plugin's dialect: Grafana
template variables (``${agency:singlequote}``), the plugin's macros (``$__fromTime_ms``,
``$__timeFilter(col)``, ``$__timeInterval(col)``, ``$__conditionalAll(cond, $var)``).

Every definition is the one of docs/metrics.md and mirrors ``streams/store/metrics.py``
(the tests compare the panels with those functions on the same data):

* cases are selected by **intake** in the dashboard's time range, half-open like
  ``metrics.Window``: ``$__fromTime_ms <= opened_at < $__toTime_ms``;
* the latest row of each case is read with ``FINAL``, and cases whose intake moved from the
  ``*_moved`` tables (as ``metrics._source``);
* ``now`` (for clocks still running and the age of open cases) is the end of the
  dashboard's time range, ``$__toTime_ms``: "now" on a live board;
* small cells are suppressed as ``metrics`` does with ``min_cases``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from streams.store import metrics

MIN_CASES: Final = metrics.DEFAULT_MIN_CASES
RANKING = metrics.load_ranking_config()
#: the city's time zone: calendar months of the ranking, "today" on the operations board
CITY_TZ: Final = RANKING.timezone

FROM: Final = "$__fromTime_ms"
TO: Final = "$__toTime_ms"
NOW: Final = TO
#: the variables every case panel is filtered by
FILTERS: Final[tuple[str, ...]] = ("agency", "district", "category", "channel")
OPEN_STATUSES: Final = "('open', 'paused', 'reopened')"
FINISHED: Final = "(first_resolved_at IS NOT NULL OR closed_at IS NOT NULL)"
DISPATCHED: Final = "(first_dispatched_at IS NOT NULL AND policy_id != '')"
SATISFIED: Final = "(" + ", ".join(f"'{s}'" for s in metrics.SATISFIED) + ")"


def variable_filters(dimensions: Sequence[str] = FILTERS) -> list[str]:
    """One condition per dashboard variable; "All" becomes ``1=1`` (plugin macro)."""
    return [f"$__conditionalAll({d} IN (${{{d}:singlequote}}), ${d})" for d in dimensions]


def latest(
    table: str = "case_sla",
    *,
    window: tuple[str, str] | None = (FROM, TO),
    where: Sequence[str] = (),
    filters: Sequence[str] = FILTERS,
) -> str:
    """The latest row of every case (``case_sla``) or cycle (``case_cycles``) whose intake
    is in ``window`` (``None``: any intake), as a subquery body (as ``metrics._source``)."""
    conditions = [*variable_filters(filters), *where]
    main, moved = list(conditions), list(conditions)
    if window is not None:
        start, end = window
        in_window = [f"opened_at >= {start}", f"opened_at < {end}"]
        # the sorting key's prefix first: only the window's granules are read under FINAL
        keys = [f"intake_date >= toDate({start}, 'UTC')", f"intake_date <= toDate({end}, 'UTC')"]
        main = [*keys, *in_window, *conditions]
        moved = [*in_window, *conditions]
    main.append(f"case_id NOT IN (SELECT case_id FROM {table}_moved)")
    out = f"SELECT * FROM {table} FINAL\nWHERE " + "\n  AND ".join(main)
    out += f"\nUNION ALL\nSELECT * FROM {table}_moved FINAL"
    if moved:
        out += "\nWHERE " + "\n  AND ".join(moved)
    return out


def indent(text: str, spaces: int = 4) -> str:
    return "\n".join(" " * spaces + line if line else line for line in text.splitlines())


def decided(ended: str, due: str) -> str:
    """A clock's verdict is known at ``now``: it stopped, or it runs past its deadline."""
    return f"({ended} IS NOT NULL OR ({due} IS NOT NULL AND {due} <= {NOW}))"


_RESPONSE_DECIDED = f"({DISPATCHED} AND {decided('fr_ended_at', 'fr_due_at')})"
#: metric -> (numerator, denominator) counts over case_sla rows (docs/metrics.md)
RATES: Final[dict[str, tuple[str, str]]] = {
    "response": (
        f"countIf({_RESPONSE_DECIDED} AND ifNull(fr_on_time, false) AND signed_for_at IS NOT NULL"
        " AND fr_due_at IS NOT NULL AND signed_for_at <= fr_due_at)",
        f"countIf({_RESPONSE_DECIDED})",
    ),
    "resolution": (
        "countIf(ifNull(citizen_confirms_solved, false))",
        "countIf(citizen_confirms_solved IS NOT NULL)",
    ),
    "satisfaction": (
        f"countIf(satisfaction IN {SATISFIED})",
        "countIf(satisfaction != '')",
    ),
    "participation": (
        f"countIf({FINISHED} AND satisfaction != '')",
        f"countIf({FINISHED})",
    ),
    "first_response_on_time": (
        "countIf(ifNull(fr_on_time, false))",
        f"countIf(policy_id != '' AND {decided('fr_ended_at', 'fr_due_at')})",
    ),
    "resolution_on_time": (
        "countIf(ifNull(res0_on_time, false))",
        f"countIf(policy_id != '' AND {decided('res0_ended_at', 'res0_due_at')})",
    ),
}
#: ranking input names (metrics.RANKING_METRICS) -> RATES keys
RANKING_INPUTS: Final[dict[str, str]] = {
    "response_rate": "response",
    "resolution_rate": "resolution",
    "satisfaction_rate": "satisfaction",
    "participation_rate": "participation",
    "first_response_on_time": "first_response_on_time",
    "resolution_on_time": "resolution_on_time",
}


def rate_counts(names: Sequence[str]) -> list[str]:
    """``<name>_num`` and ``<name>_den`` aggregates for the inner query."""
    out: list[str] = []
    for name in names:
        numerator, denominator = RATES[name]
        out += [f"{numerator} AS {name}_num", f"{denominator} AS {name}_den"]
    return out


def group_small(size: str = "n", min_cases: int = MIN_CASES) -> str:
    return f"({size} > 0 AND {size} < {min_cases})"


def published_rate(
    name: str, size: str = "n", min_cases: int = MIN_CASES, *, counts: bool = True
) -> list[str]:
    """A published rate from ``<name>_num`` / ``<name>_den`` (``metrics.rate``): nulled in
    a suppressed group; rate and numerator nulled when 0 < denominator < min_cases."""
    small = group_small(size, min_cases)
    num, den = f"{name}_num", f"{name}_den"
    rate_small = f"({den} > 0 AND {den} < {min_cases})"
    out = [f"if({small} OR {rate_small} OR {den} = 0, NULL, {num} / {den}) AS {name}_rate"]
    if counts:
        out += [
            f"if({small} OR {rate_small}, NULL, {num}) AS {name}_numerator",
            f"if({small}, NULL, {den}) AS {name}_denominator",
        ]
    return out


def published_count(expression: str, alias: str, size: str = "n") -> str:
    return f"if({group_small(size)}, NULL, {expression}) AS {alias}"


def published_percentile(
    quantiles: str, index: int, count: str, alias: str, size: str = "n"
) -> str:
    """One percentile of ``quantiles`` (an array), nulled below min_cases values."""
    hide = f"{group_small(size)} OR {count} = 0 OR {count} < {MIN_CASES}"
    return f"if({hide}, NULL, {quantiles}[{index}]) AS {alias}"


def month_bounds() -> tuple[str, str]:
    """The calendar month of the ``month`` variable (``YYYY-MM``) in the city's zone."""
    start = f"toDateTime64(concat(${{month:singlequote}}, '-01 00:00:00'), 6, '{CITY_TZ}')"
    return start, f"addMonths({start}, 1)"
