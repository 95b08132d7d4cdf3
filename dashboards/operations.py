"""City operations board: the live at-risk queue, breaches today, the backlog, transfers
and ping-pong, and the SLA alert feed. Internal: no small-cell suppression (the staff who
work the queue see the cases themselves)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import barchart, stat, table, timeseries
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm

from dashboards import sql
from dashboards.grafana import CLICKHOUSE, ClickHouse, dimension_variable, sized, with_units
from dashboards.public import aggregate
from streams.store import metrics

UID = "civicpulse-operations"
#: the alert table written by the SLA alert agent (migration 0007)
ALERTS_TABLE = "sla_alerts"
#: breaches today are looked for among the cases opened in this many days before now
BREACH_LOOKBACK_DAYS = 90


def open_cases() -> str:
    """Every open case, whatever its intake (``metrics.backlog``)."""
    return sql.latest(window=None, where=[f"status IN {sql.OPEN_STATUSES}"])


def _age_us() -> str:
    return f"toUnixTimestamp64Micro({sql.NOW}) - toUnixTimestamp64Micro(assumeNotNull(opened_at))"


def backlog_sql() -> str:
    now = sql.NOW
    running = "res_ended_at IS NULL"
    aggregates = [
        "count() AS open",
        f"countIf({running} AND res_due_at IS NOT NULL AND res_due_at <= {now}) AS past_due",
        *(
            f"countIf({running} AND res_warn_{level}_at IS NOT NULL "
            f"AND res_warn_{level}_at <= {now}) AS past_{level}"
            for level in metrics.AT_RISK_LEVELS
        ),
        "countIf(fr_ended_at IS NULL AND fr_due_at IS NOT NULL "
        f"AND fr_due_at <= {now}) AS first_response_overdue",
        "countIf(res_paused_since IS NOT NULL) AS paused",
        "countIf(policy_id = '') AS without_sla",
    ]
    return aggregate([], aggregates, open_cases())


def _level(prefix: str) -> str:
    now = sql.NOW
    return (
        f"multiIf({prefix}warn_90_at <= {now}, 90, {prefix}warn_75_at <= {now}, 75, "
        f"{prefix}warn_50_at <= {now}, 50, 0)"
    )


def at_risk_queue_sql() -> str:
    """Running clocks of open cases past a warning and not yet due, soonest breach first."""
    now = sql.NOW
    clocks = (
        "[\n"
        "    tuple('first_response', if(fr_ended_at IS NULL, fr_due_at, NULL), "
        f"{_level('fr_')}),\n"
        "    tuple('resolution', if(res_ended_at IS NULL AND res_paused_since IS NULL, "
        f"res_due_at, NULL), {_level('res_')})\n"
        "]"
    )
    return (
        "SELECT\n"
        "    clock.2 AS due_at,\n"
        f"    dateDiff('second', {now}, assumeNotNull(clock.2)) AS seconds_to_breach,\n"
        "    clock.1 AS target,\n"
        "    clock.3 AS warning,\n"
        "    case_id, agency, sub_unit, district, sub_district, category, urgency, status,\n"
        "    opened_at\n"
        f"FROM (\n{sql.indent(open_cases())}\n)\n"
        f"ARRAY JOIN {clocks} AS clock\n"
        f"WHERE clock.2 IS NOT NULL AND clock.2 > {now} AND clock.3 >= 50\n"
        "ORDER BY due_at, case_id, target\n"
        "LIMIT 500"
    )


def breaches_today_sql() -> str:
    """Clocks whose deadline passed today (city time zone) without being met: first
    responses (case_sla) and resolution cycles (case_cycles), by current agency."""
    now = sql.NOW
    window = (f"{now} - INTERVAL {BREACH_LOOKBACK_DAYS} DAY", now)
    first = (
        "SELECT agency, 'first_response' AS target, fr_due_at AS due_at, fr_on_time AS on_time\n"
        f"FROM (\n{sql.indent(sql.latest(window=window))}\n)"
    )
    cycles = (
        "SELECT agency, 'resolution' AS target, due_at, on_time\n"
        f"FROM (\n{sql.indent(sql.latest('case_cycles', window=window))}\n)"
    )
    return (
        "SELECT agency, countIf(target = 'first_response') AS first_response, "
        "countIf(target = 'resolution') AS resolution\n"
        f"FROM (\n{sql.indent(first)}\n    UNION ALL\n{sql.indent(cycles)}\n)\n"
        f"WHERE due_at >= toStartOfDay({now}, '{sql.CITY_TZ}') AND due_at <= {now}\n"
        "  AND NOT ifNull(on_time, false)\n"
        "GROUP BY agency\n"
        "ORDER BY agency"
    )


def aging_sql() -> str:
    day = 86_400 * 1_000_000
    aggregates = ["count() AS open"]
    for name, low, high in metrics.AGING_BUCKETS:
        condition = f"age_us >= {int(low * day)}"
        if high != float("inf"):
            condition += f" AND age_us < {int(high * day)}"
        aggregates.append(f"countIf({condition}) AS {name}")
    source = f"SELECT *, {_age_us()} AS age_us FROM (\n{sql.indent(open_cases())}\n)"
    return aggregate(["agency"], aggregates, source) + "\nORDER BY agency"


def transfers_sql() -> str:
    aggregates = [
        "count() AS cases",
        "sum(transfers) AS transfers_total",
        "sum(transfers) / count() AS transfers_per_case",
        "countIf(transfers > 0) AS cases_transferred",
        "sum(ping_pongs) AS ping_pongs_total",
        "countIf(ping_pongs > 0) AS cases_ping_ponged",
        "sum(returns) AS returns_total",
    ]
    return aggregate(["agency"], aggregates, sql.latest()) + "\nORDER BY agency"


def _alerts_where() -> str:
    return "\n  AND ".join(["$__timeFilter(fired_at)", *sql.variable_filters()])


def alert_feed_sql() -> str:
    return (
        "SELECT fired_at, type, target, threshold, cycle, case_id, agency, sub_unit, district,"
        " sub_district, category, urgency, channel, due_at, policy_id\n"
        f"FROM {ALERTS_TABLE}\n"
        f"WHERE {_alerts_where()}\n"
        "ORDER BY fired_at DESC, alert_id\n"
        "LIMIT 1 BY alert_id\n"
        "LIMIT 500"
    )


def alerts_over_time_sql() -> str:
    deduplicated = (
        f"SELECT alert_id, type, fired_at FROM {ALERTS_TABLE}\n"
        f"WHERE {_alerts_where()}\n"
        "LIMIT 1 BY alert_id"
    )
    return (
        "SELECT $__timeInterval(fired_at) AS time, countIf(type = 'sla.warning') AS warnings,"
        " countIf(type = 'sla.breached') AS breaches\n"
        f"FROM (\n{sql.indent(deduplicated)}\n)\n"
        "GROUP BY time\n"
        "ORDER BY time"
    )


def build() -> db.Dashboard:
    board = (
        db.Dashboard("civicpulse: city operations")
        .uid(UID)
        .tags(["civicpulse", "operations"])
        .description("Live SLA work queue: cases about to breach, breaches, backlog, alerts.")
        .timezone(sql.CITY_TZ)
        .time("now-24h", "now")
        .refresh("30s")
        .readonly()
    )
    for name, label in (
        ("agency", "Agency"),
        ("district", "District"),
        ("category", "Category"),
        ("channel", "Channel"),
    ):
        board = board.with_variable(
            dimension_variable(
                name, label, f"SELECT DISTINCT {name} FROM case_sla WHERE {name} != ''"
            )
        )
    board = board.with_panel(
        sized(
            stat.Panel()
            .title("Open cases now")
            .description(
                "Every open case whatever its intake; past due / at risk: the current"
                " resolution cycle (docs/metrics.md#backlog-as-of-now)."
            )
            .datasource(CLICKHOUSE)
            .with_target(ClickHouse(backlog_sql()))
            .reduce_options(cb.ReduceDataOptions().values(False).calcs(["lastNotNull"]))
            .unit("none"),
            24,
            4,
        )
    )
    board = board.with_panel(
        sized(
            with_units(
                table.Panel()
                .title("At-risk queue: soonest breach first")
                .description(
                    "Running clocks (first response, or the current resolution cycle) of open"
                    " cases past a warning (50/75/90 % of the allowed time) and not yet due."
                    " Paused clocks have no deadline and are not listed."
                )
                .datasource(CLICKHOUSE)
                .with_target(ClickHouse(at_risk_queue_sql())),
                {"seconds_to_breach": "s"},
            ),
            24,
            10,
        )
    )
    board = board.with_panel(
        sized(
            barchart.Panel()
            .title("Breaches today, by agency")
            .description(
                f"Deadlines that passed since midnight ({sql.CITY_TZ}) without being met, among"
                f" the cases opened in the last {BREACH_LOOKBACK_DAYS} days."
            )
            .datasource(CLICKHOUSE)
            .with_target(ClickHouse(breaches_today_sql()))
            .x_field("agency")
            .stacking(cm.StackingMode.NORMAL),
            12,
            8,
        )
    )
    board = board.with_panel(
        sized(
            barchart.Panel()
            .title("Backlog aging, by agency")
            .description("Open cases by age since intake (docs/metrics.md#backlog-as-of-now).")
            .datasource(CLICKHOUSE)
            .with_target(ClickHouse(aging_sql()))
            .x_field("agency")
            .stacking(cm.StackingMode.NORMAL)
            .override_by_name("open", [db_hide()]),
            12,
            8,
        )
    )
    board = board.with_panel(
        sized(
            table.Panel()
            .title("Transfers and ping-pong, by agency")
            .description(
                "Cases opened in the time range, by current owner: transfers, cases bounced back"
                " to an agency that had them before, returns to the dispatcher."
            )
            .datasource(CLICKHOUSE)
            .with_target(ClickHouse(transfers_sql())),
            24,
            8,
        )
    )
    board = board.with_panel(
        sized(
            table.Panel()
            .title("SLA alert feed")
            .description(f"Warnings and breaches fired in the time range ({ALERTS_TABLE}).")
            .datasource(CLICKHOUSE)
            .with_target(ClickHouse(alert_feed_sql())),
            16,
            10,
        )
    )
    board = board.with_panel(
        sized(
            timeseries.Panel()
            .title("Alerts fired")
            .datasource(CLICKHOUSE)
            .with_target(ClickHouse(alerts_over_time_sql(), "time_series"))
            .draw_style(cm.GraphDrawStyle.BARS),
            8,
            10,
        )
    )
    return board


def db_hide() -> object:
    from grafana_foundation_sdk.models import dashboard as dm

    return dm.DynamicConfigValue(
        id_val="custom.hideFrom", value={"viz": True, "legend": True, "tooltip": False}
    )


__all__ = ["ALERTS_TABLE", "UID", "build"]
