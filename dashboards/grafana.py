"""Small helpers over grafana-foundation-sdk: the two data sources, a ClickHouse query
(the SDK has no builder for the ClickHouse plugin), dashboard variables and field units."""

from __future__ import annotations

from typing import Any, Literal

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard as dm

CLICKHOUSE_TYPE = "grafana-clickhouse-datasource"
CLICKHOUSE_UID = "civicpulse-clickhouse"
PROMETHEUS_TYPE = "prometheus"
PROMETHEUS_UID = "civicpulse-prometheus"
CLICKHOUSE = dm.DataSourceRef(type_val=CLICKHOUSE_TYPE, uid=CLICKHOUSE_UID)
PROMETHEUS = dm.DataSourceRef(type_val=PROMETHEUS_TYPE, uid=PROMETHEUS_UID)
#: the plugin version the query model below follows (v4: editorType + queryType + format)
CLICKHOUSE_PLUGIN_VERSION = "4.11.2"

Format = Literal["table", "time_series"]
#: the plugin's ``format`` (sqlds FormatQueryOption) and ``queryType`` for each format
_FORMATS: dict[str, tuple[int, str]] = {"time_series": (0, "timeSeries"), "table": (1, "table")}


class ClickHouseQuery(cogvariants.Dataquery):
    """A raw-SQL query of the official ClickHouse plugin (``grafana-clickhouse-datasource``)."""

    def __init__(self, ref_id: str, raw_sql: str, fmt: Format) -> None:
        self.ref_id = ref_id
        self.raw_sql = raw_sql
        self.fmt = fmt

    def to_json(self) -> dict[str, object]:
        number, query_type = _FORMATS[self.fmt]
        return {
            "datasource": {"type": CLICKHOUSE_TYPE, "uid": CLICKHOUSE_UID},
            "editorType": "sql",
            "format": number,
            "pluginVersion": CLICKHOUSE_PLUGIN_VERSION,
            "queryType": query_type,
            "rawSql": self.raw_sql,
            "refId": self.ref_id,
        }


class ClickHouse(cogbuilder.Builder[ClickHouseQuery]):
    def __init__(self, raw_sql: str, fmt: Format = "table", ref_id: str = "A") -> None:
        self._internal = ClickHouseQuery(ref_id, raw_sql.strip() + "\n", fmt)

    def build(self) -> ClickHouseQuery:
        return self._internal


def promql(expr: str, legend: str = "", ref_id: str = "A") -> prom.Dataquery:
    query = prom.Dataquery().expr(expr).ref_id(ref_id).range()
    if legend:
        query = query.legend_format(legend)
    return query.datasource(PROMETHEUS)


def dimension_variable(name: str, label: str, sql: str) -> db.QueryVariable:
    """A multi-value ClickHouse query variable with "All" (Grafana's ``$__all``: the panels
    wrap their condition in the plugin's ``$__conditionalAll``)."""
    return (
        db.QueryVariable(name)
        .label(label)
        .datasource(CLICKHOUSE)
        .query(sql)
        .multi(True)
        .include_all(True)
        .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def months_variable(sql: str) -> db.QueryVariable:
    return (
        db.QueryVariable("month")
        .label("Ranking month")
        .datasource(CLICKHOUSE)
        .query(sql)
        .multi(False)
        .include_all(False)
        .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dm.VariableSort.ALPHABETICAL_DESC)
    )


def with_units(panel: Any, units: dict[str, str]) -> Any:
    for name, unit in units.items():
        panel = panel.override_by_name(name, [dm.DynamicConfigValue(id_val="unit", value=unit)])
    return panel


def sized(panel: Any, w: int, h: int) -> Any:
    return panel.span(w).height(h)


__all__ = [
    "CLICKHOUSE",
    "PROMETHEUS",
    "ClickHouse",
    "ClickHouseQuery",
    "dimension_variable",
    "months_variable",
    "promql",
    "sized",
    "with_units",
]
