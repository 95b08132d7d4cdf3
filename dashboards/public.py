"""Public accountability board: for watchdogs and journalists.

The three rates with their denominators, the monthly ranking with its inputs, trends,
durations, on-time shares, closure reasons, agency-claimed vs citizen-confirmed, a
district map and the equity view. Every number follows docs/metrics.md; cells with fewer
than ``min_cases`` cases are suppressed as in ``streams.store.metrics``.
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import (
    barchart,
    geomap,
    piechart,
    stat,
    table,
    text,
    timeseries,
)
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import sql
from dashboards.grafana import (
    CLICKHOUSE,
    ClickHouse,
    dimension_variable,
    months_variable,
    sized,
    with_units,
)
from streams.contract.generated import CLOSURE_REASONS
from streams.store import metrics

UID = "civicpulse-public"
RATE_NAMES = ("response", "resolution", "satisfaction", "participation")


def aggregate(group: Sequence[str], aggregates: Sequence[str], source: str) -> str:
    """``SELECT group, aggregates FROM (source) GROUP BY group`` (ungrouped: one row)."""
    select = [*group, *aggregates]
    out = "SELECT\n" + ",\n".join(f"    {s}" for s in select)
    out += f"\nFROM (\n{sql.indent(source)}\n)"
    if group:
        out += f"\nGROUP BY {', '.join(group)}"
    return out


def outer(columns: Sequence[str], inner: str, tail: str = "") -> str:
    out = "SELECT\n" + ",\n".join(f"    {c}" for c in columns)
    out += f"\nFROM (\n{sql.indent(inner)}\n)"
    return out + (f"\n{tail}" if tail else "")


def published_rates(names: Sequence[str], *, counts: bool = True) -> list[str]:
    return [c for name in names for c in sql.published_rate(name, counts=counts)]


# --------------------------------------------------------------------------- queries


def rates_sql() -> str:
    inner = aggregate((), ["count() AS n", *sql.rate_counts(RATE_NAMES)], sql.latest())
    return outer([sql.published_count("n", "cases"), *published_rates(RATE_NAMES)], inner)


RATE_LABELS = {
    "response": "Response rate",
    "resolution": "Resolution rate (citizen-confirmed)",
    "satisfaction": "Satisfaction rate (among raters)",
    "participation": "Participation rate (finished cases rated)",
}


def rates_table_sql() -> str:
    rows = ",\n    ".join(
        f"('{label}', {name}_numerator, {name}_denominator, {name}_rate)"
        for name, label in RATE_LABELS.items()
    )
    return (
        "SELECT m.1 AS metric, m.2 AS numerator, m.3 AS denominator, m.4 AS rate\n"
        f"FROM (\n{sql.indent(rates_sql())}\n)\n"
        f"ARRAY JOIN [\n    {rows}\n] AS m"
    )


def rate_trend_sql() -> str:
    names = ("response", "resolution", "satisfaction")
    source = f"SELECT *, assumeNotNull(opened_at) AS intake FROM (\n{sql.indent(sql.latest())}\n)"
    inner = aggregate(
        ["$__timeInterval(intake) AS time"],
        ["count() AS n", *sql.rate_counts(names)],
        source,
    )
    inner = inner.replace("GROUP BY $__timeInterval(intake) AS time", "GROUP BY time")
    return outer(["time", *published_rates(names, counts=False)], inner, "ORDER BY time")


def ranking_sql(level: str) -> str:
    """The monthly ranking (``metrics.ranking``) of the ``month`` variable's month."""
    group = list(metrics.RANKING_LEVELS[level])
    config = sql.RANKING
    start, end = sql.month_bounds()
    inputs = list(sql.RANKING_INPUTS.values())
    source = sql.latest(window=(start, end))
    size = "n"
    inner = aggregate(group, ["count() AS n", *sql.rate_counts(inputs)], source)
    published = [
        c
        for name in inputs
        for c in sql.published_rate(name, size, config.min_cases)
        if not c.endswith("_numerator")
    ]
    total = sum(config.weights.values())
    weighted = " + ".join(
        f"{weight!r} * {sql.RANKING_INPUTS[m]}_rate" for m, weight in config.weights.items()
    )
    complete = " AND ".join(f"{sql.RANKING_INPUTS[m]}_rate IS NOT NULL" for m in config.weights)
    small = sql.group_small(size, config.min_cases)
    index = f"if(NOT {small} AND {complete}, 100 * ({weighted}) / {total!r}, NULL) AS index"
    scored = outer([*group, f"if({small}, NULL, n) AS cases", *published, index], inner)
    rates = [f"{name}_rate" for name in inputs]
    dens = [f"{name}_denominator" for name in inputs]
    columns = [
        "if(index IS NULL, NULL, rank() OVER (ORDER BY isNull(index), index DESC)) AS rank",
        *group,
        "index",
        "cases",
        *rates,
        *dens,
    ]
    order = ", ".join(["isNull(index)", "index DESC", *group])
    return outer(columns, scored, f"ORDER BY {order}")


PERCENTILES = ", ".join(repr(p) for p in metrics.PERCENTILES)
MEASURES = {
    "first_response": ("fr_ended_by = 'first_contact'", "fr_seconds"),
    "resolution": ("res0_ended_by = 'resolved'", "res0_seconds"),
}


def durations_sql() -> str:
    aggregates = ["count() AS n"]
    columns = ["agency", sql.published_count("n", "cases")]
    for name, (condition, column) in MEASURES.items():
        aggregates += [
            f"countIf({condition}) AS {name}_n",
            f"quantilesExactInclusiveIf({PERCENTILES})({column}, {condition}) AS {name}_q",
        ]
        columns.append(f"{name}_n")
        for i, p in enumerate(metrics.PERCENTILES, start=1):
            label = f"{name}_p{round(p * 100)}"
            columns.append(sql.published_percentile(f"{name}_q", i, f"{name}_n", label))
    inner = aggregate(["agency"], aggregates, sql.latest())
    return outer(columns, inner, "ORDER BY agency")


def durations_trend_sql() -> str:
    aggregates = ["count() AS n"]
    columns = ["time"]
    for name, (condition, column) in MEASURES.items():
        aggregates += [
            f"countIf({condition}) AS {name}_n",
            f"quantilesExactInclusiveIf(0.5, 0.9)({column}, {condition}) AS {name}_q",
        ]
        for i, p in enumerate((50, 90), start=1):
            columns.append(sql.published_percentile(f"{name}_q", i, f"{name}_n", f"{name}_p{p}"))
    source = f"SELECT *, assumeNotNull(opened_at) AS intake FROM (\n{sql.indent(sql.latest())}\n)"
    inner = aggregate(["$__timeInterval(intake) AS time"], aggregates, source)
    inner = inner.replace("GROUP BY $__timeInterval(intake) AS time", "GROUP BY time")
    return outer(columns, inner, "ORDER BY time")


def on_time_sql() -> str:
    names = ("first_response_on_time", "resolution_on_time")
    inner = aggregate(["agency"], ["count() AS n", *sql.rate_counts(names)], sql.latest())
    columns = ["agency", *published_rates(names, counts=False)]
    return outer(columns, inner, "ORDER BY agency")


def closure_reasons_sql() -> str:
    """Cases by the reason of their last ``resolved`` (over cases resolved at least once)."""
    reasons = ", ".join(f"'{r}'" for r in CLOSURE_REASONS)
    inner = aggregate(
        [],
        [
            "countIf(closure_reason != '') AS with_reason",
            "["
            + ", ".join(f"countIf(closure_reason = '{r}')" for r in CLOSURE_REASONS)
            + "] AS counts",
        ],
        sql.latest(),
    )
    small = f"(with_reason > 0 AND with_reason < {sql.MIN_CASES})"
    return (
        "SELECT r.1 AS reason, "
        f"if({small}, NULL, r.2) AS cases, "
        f"if({small} OR with_reason = 0, NULL, r.2 / with_reason) AS share\n"
        f"FROM (\n{sql.indent(inner)}\n)\n"
        f"ARRAY JOIN arrayZip([{reasons}], counts) AS r\n"
        "WHERE r.2 > 0\n"
        "ORDER BY r.2 DESC, r.1"
    )


def claimed_confirmed_sql() -> str:
    answered = "closure_reason != '' AND citizen_confirms_solved IS NOT NULL"
    aggregates = [
        "count() AS n",
        f"countIf({answered}) AS compared",
        "countIf(closure_reason = 'fixed' AND citizen_confirms_solved IS NOT NULL) AS claimed_num",
        "countIf(closure_reason != '' AND ifNull(citizen_confirms_solved, false)) AS confirmed_num",
        "countIf(closure_reason = 'fixed' AND NOT ifNull(citizen_confirms_solved, true))"
        " AS fixed_not_confirmed_n",
    ]
    inner = aggregate(["agency"], aggregates, sql.latest())
    small = sql.group_small()
    hide = f"({small} OR compared = 0 OR compared < {sql.MIN_CASES})"
    columns = [
        "agency",
        sql.published_count("compared", "cases_compared"),
        f"if({hide}, NULL, claimed_num / compared) AS claimed_fixed",
        f"if({hide}, NULL, confirmed_num / compared) AS citizen_confirmed",
        f"if({hide}, NULL, (claimed_num - confirmed_num) / compared) AS gap",
        sql.published_count("fixed_not_confirmed_n", "fixed_not_confirmed"),
    ]
    return outer(columns, inner, "ORDER BY agency")


def district_locations_sql() -> str:
    """District centroids: the mean location of the window's located ``opened`` events."""
    return (
        "SELECT\n"
        "    JSONExtractString(event_json, 'payload', 'district') AS district,\n"
        "    avg(JSONExtractFloat(event_json, 'payload', 'location', 'lat')) AS lat,\n"
        "    avg(JSONExtractFloat(event_json, 'payload', 'location', 'lon')) AS lon\n"
        "FROM events\n"
        "WHERE type = 'opened' AND $__timeFilter(occurred_at)\n"
        "  AND JSONHas(event_json, 'payload', 'location')\n"
        "GROUP BY district"
    )


def district_map_sql() -> str:
    names = ("response", "resolution")
    inner = aggregate(["district"], ["count() AS n", *sql.rate_counts(names)], sql.latest())
    rates = outer(
        ["district", sql.published_count("n", "cases"), *published_rates(names, counts=False)],
        inner,
    )
    return (
        "SELECT m.district AS district, loc.lat AS lat, loc.lon AS lon, "
        "m.cases AS cases, "
        "m.response_rate AS response_rate, m.resolution_rate AS resolution_rate\n"
        f"FROM (\n{sql.indent(rates)}\n) AS m\n"
        f"INNER JOIN (\n{sql.indent(district_locations_sql())}\n) AS loc\n"
        "ON loc.district = m.district\n"
        "ORDER BY district"
    )


def equity_sql() -> str:
    """Each district against the city: a rate against the median of the districts'
    published rates; time to resolution (p50) against the city-wide p50."""
    names = ("response", "resolution", "satisfaction")
    condition, column = MEASURES["resolution"]
    aggregates = [
        "count() AS n",
        *sql.rate_counts(names),
        f"countIf({condition}) AS resolution_n",
        f"quantilesExactInclusiveIf(0.5)({column}, {condition}) AS resolution_q",
    ]
    inner = aggregate(["district"], aggregates, sql.latest())
    per_district = outer(
        [
            "district",
            sql.published_count("n", "cases"),
            *published_rates(names, counts=False),
            sql.published_percentile("resolution_q", 1, "resolution_n", "resolution_p50"),
        ],
        inner,
    )
    city_p50 = aggregate(
        [],
        [f"quantileExactInclusiveIf(0.5)({column}, {condition}) AS city_resolution_p50"],
        sql.latest(),
    )
    columns = ["district", "cases"]
    for name in names:
        columns += [
            f"{name}_rate",
            f"{name}_rate - quantileExactInclusive(0.5)({name}_rate) OVER () AS {name}_vs_median",
        ]
    columns += [
        "resolution_p50",
        "resolution_p50 - (SELECT city_resolution_p50 FROM city) AS resolution_p50_vs_city",
    ]
    body = outer(columns, per_district, "ORDER BY district")
    return f"WITH city AS (\n{sql.indent(city_p50)}\n)\n{body}"


# --------------------------------------------------------------------------- panels


def _stat_rates() -> stat.Panel:
    return sized(
        stat.Panel()
        .title("The three rates, and participation")
        .description(
            "Response: dispatched cases signed for and contacted within the first-response"
            " deadline, over dispatched cases whose verdict is known. Resolution: cases the"
            " citizen says are solved, over cases whose citizen answered. Satisfaction:"
            " satisfied + basically satisfied over raters. Participation: finished cases"
            " rated. Cases by intake in the time range; docs/metrics.md#rates."
        )
        .datasource(CLICKHOUSE)
        .with_target(ClickHouse(rates_sql()))
        .unit("percentunit")
        .decimals(1)
        .reduce_options(
            cb.ReduceDataOptions().values(False).calcs(["lastNotNull"]).fields("/_rate$/")
        )
        .no_value("suppressed"),
        24,
        5,
    )


def _table(
    title: str, description: str, query: str, units: dict[str, str], w: int, h: int
) -> table.Panel:
    panel = table.Panel().title(title).description(description).datasource(CLICKHOUSE)
    panel = panel.with_target(ClickHouse(query)).no_value("-")
    return sized(with_units(panel, units), w, h)


def build() -> db.Dashboard:
    percent = "percentunit"
    board = (
        db.Dashboard("civicpulse: public accountability")
        .uid(UID)
        .tags(["civicpulse", "public"])
        .description(
            "How fast and how well the city answers its citizens: rates with their"
            " denominators, rankings, durations, equity. Definitions: docs/metrics.md."
        )
        .timezone(sql.CITY_TZ)
        .time("now-30d", "now")
        .refresh("5m")
        .readonly()
        .with_variable(
            dimension_variable(
                "agency", "Agency", "SELECT DISTINCT agency FROM case_sla WHERE agency != ''"
            )
        )
        .with_variable(
            dimension_variable(
                "district",
                "District",
                "SELECT DISTINCT district FROM case_sla WHERE district != ''",
            )
        )
        .with_variable(
            dimension_variable(
                "category",
                "Category",
                "SELECT DISTINCT category FROM case_sla WHERE category != ''",
            )
        )
        .with_variable(
            dimension_variable(
                "channel", "Channel", "SELECT DISTINCT channel FROM case_sla WHERE channel != ''"
            )
        )
        .with_variable(
            months_variable(
                "SELECT DISTINCT formatDateTime(intake_date, '%Y-%m') AS month FROM case_sla"
                " WHERE intake_date > toDate('1970-01-01')"
            )
        )
    )
    board = board.with_panel(
        sized(
            text.Panel()
            .title("How to read this board")
            .content(
                "Every number counts the cases whose **intake** (the citizen's request) is in"
                " the time range, whatever happened to them later, and is recomputed when a"
                " late event arrives. Rates are shown with their numerators and"
                f" denominators. Cells with fewer than {sql.MIN_CASES} cases are suppressed"
                " (shown empty) to protect citizens. Definitions: docs/metrics.md."
            ),
            24,
            3,
        )
    )
    board = board.with_panel(_stat_rates())
    board = board.with_panel(
        _table(
            "Rates with numerators and denominators",
            "The same rates as above with the counts behind them (docs/metrics.md#rates).",
            rates_table_sql(),
            {"rate": percent},
            12,
            7,
        )
    )
    board = board.with_panel(
        sized(
            timeseries.Panel()
            .title("Rates by intake date")
            .description("Rates of the cases opened in each interval (at least one day).")
            .datasource(CLICKHOUSE)
            .with_target(ClickHouse(rate_trend_sql(), "time_series"))
            .interval("1d")
            .unit(percent)
            .min(0)
            .max(1)
            .span_nulls(False),
            12,
            7,
        )
    )
    weights = ", ".join(f"{m} {w:g}" for m, w in sql.RANKING.weights.items())
    ranking_note = (
        f"index = 100 x weighted mean of the rates ({weights}; config/ranking.yaml), for the"
        " cases opened in the calendar month of the `month` variable"
        f" ({sql.CITY_TZ}). Units with fewer than {sql.RANKING.min_cases} cases or an"
        " unpublished weighted rate are listed unranked (docs/metrics.md#monthly-ranking)."
    )
    rate_units = {f"{n}_rate": percent for n in sql.RATES}
    board = board.with_panel(
        _table(
            "Monthly ranking: sub-districts",
            ranking_note,
            ranking_sql("sub_district"),
            rate_units,
            24,
            10,
        )
    )
    board = board.with_panel(
        _table("Monthly ranking: agencies", ranking_note, ranking_sql("agency"), rate_units, 24, 8)
    )
    seconds = {f"{name}_p{p}": "s" for name in MEASURES for p in (50, 90, 99)}
    board = board.with_panel(
        _table(
            "Time to first response and to resolution, by agency",
            "p50 / p90 / p99 of the SLA clock's counted wall time from intake"
            " (docs/metrics.md#durations); exact percentiles (PERCENTILE.INC).",
            durations_sql(),
            seconds,
            14,
            8,
        )
    )
    board = board.with_panel(
        sized(
            timeseries.Panel()
            .title("Time to first response and resolution (p50, p90) by intake date")
            .datasource(CLICKHOUSE)
            .with_target(ClickHouse(durations_trend_sql(), "time_series"))
            .interval("1d")
            .unit("s"),
            10,
            8,
        )
    )
    board = board.with_panel(
        sized(
            barchart.Panel()
            .title("On time against the SLA, by agency")
            .description(
                "First response and resolution (cycle 0) on time, over cases with a policy"
                " whose verdict is known (docs/metrics.md#on-time)."
            )
            .datasource(CLICKHOUSE)
            .with_target(ClickHouse(on_time_sql()))
            .x_field("agency")
            .unit(percent)
            .min(0)
            .max(1),
            12,
            8,
        )
    )
    board = board.with_panel(
        sized(
            piechart.Panel()
            .title("Closure reasons")
            .description(
                "Cases by the reason of their last resolution: 'closed' is not 'fixed'"
                " (docs/metrics.md#quality-and-gaming-signals)."
            )
            .datasource(CLICKHOUSE)
            .with_target(ClickHouse(closure_reasons_sql()))
            .reduce_options(
                cb.ReduceDataOptions().values(True).calcs(["lastNotNull"]).fields("/^cases$/")
            )
            .pie_type("donut"),
            12,
            8,
        )
    )
    board = board.with_panel(
        _table(
            "Agency-claimed vs citizen-confirmed, by agency",
            "Over cases resolved and answered on a callback: closed as fixed (claimed) vs"
            " citizen says solved (confirmed); gap = claimed - confirmed.",
            claimed_confirmed_sql(),
            {"claimed_fixed": percent, "citizen_confirmed": percent, "gap": percent},
            24,
            8,
        )
    )
    board = board.with_panel(
        sized(
            geomap.Panel()
            .title("Districts")
            .description(
                "Response and resolution rates per district, placed at the mean location of"
                " the district's located requests in the time range (districts without any"
                " located request are not drawn)."
            )
            .datasource(CLICKHOUSE)
            .with_target(ClickHouse(district_map_sql()))
            .view(geomap.MapViewConfig().id("fit").zoom(10))
            .layers(
                [
                    cb.MapLayerOptions()
                    .type("markers")
                    .name("districts")
                    .location(
                        cb.FrameGeometrySource()
                        .mode(cm.FrameGeometrySourceMode.COORDS)
                        .latitude("lat")
                        .longitude("lon")
                    )
                    .config(
                        {
                            "showLegend": True,
                            "style": {
                                "color": {"field": "resolution_rate", "fixed": "dark-green"},
                                "size": {"field": "cases", "fixed": 5, "min": 8, "max": 30},
                                "text": {"field": "district", "mode": "field"},
                            },
                        }
                    )
                ]
            )
            .unit(percent),
            12,
            10,
        )
    )
    board = board.with_panel(
        _table(
            "Equity: districts against the city",
            "Each district's rates against the median of the districts' rates (in points)"
            " and its median time to resolution against the city-wide median.",
            equity_sql(),
            {
                **{f"{n}_rate": percent for n in ("response", "resolution", "satisfaction")},
                **{f"{n}_vs_median": percent for n in ("response", "resolution", "satisfaction")},
                "resolution_p50": "s",
                "resolution_p50_vs_city": "s",
            },
            12,
            10,
        )
    )
    return board


__all__ = ["UID", "build"]
_ = dm
