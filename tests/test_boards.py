"""The Grafana boards: generated JSON is current, and every panel is proven on data.

Each ClickHouse panel's SQL is expanded as Grafana and the ClickHouse plugin would
(``dashboards.expand``) and run on embedded chDB against the real migrations, over a small
city fed through the pipeline's own steps (tests/boards_data.py). Every panel must answer
with the columns its visualisation needs, non-empty, time-sorted for time series; several
are compared with ``streams.store.metrics`` (the oracle-tested queries) on the same data.
Prometheus panels are checked against the worker's metric registry.
"""

from __future__ import annotations

import http.server
import json
import math
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from dashboards import build, expand
from dashboards.grafana import CLICKHOUSE_TYPE, CLICKHOUSE_UID, PROMETHEUS_TYPE, PROMETHEUS_UID
from streams import cli_dashboards
from streams.cli import app
from streams.observability.registry import exposed_names
from streams.store import metrics
from streams.store.client import Client, close_client, close_clients, open_client
from streams.store.migrations import apply_migrations
from tests.boards_data import City, build_city

ALL = expand.ALL
MONTH = "2026-03"
BOARDS = build.boards()


# --- generated JSON ------------------------------------------------------------------------------


def test_committed_json_is_what_the_code_generates() -> None:
    assert build.stale() == [], "run: python -m dashboards.build"


def test_stale_detects_a_changed_file(tmp_path: Any) -> None:
    build.write(tmp_path)
    assert build.stale(tmp_path) == []
    (tmp_path / "public.json").write_text("{}\n")
    (tmp_path / "extra.json").write_text("{}\n")
    assert build.stale(tmp_path) == ["extra.json", "public.json"]
    assert build.main(["--check", "--dir", str(tmp_path)]) == 1


def panels() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, board in BOARDS.items():
        for panel in board["panels"]:
            yield name, panel


def test_boards_have_unique_uids_ids_and_known_datasources() -> None:
    assert len({b["uid"] for b in BOARDS.values()}) == len(BOARDS)
    known = {(CLICKHOUSE_TYPE, CLICKHOUSE_UID), (PROMETHEUS_TYPE, PROMETHEUS_UID)}
    for board in BOARDS.values():
        ids = [p["id"] for p in board["panels"]]
        assert len(set(ids)) == len(ids)
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                ds = target["datasource"]
                assert (ds["type"], ds["uid"]) in known, panel["title"]
            if panel["type"] != "text":
                assert panel.get("targets"), panel["title"]


def test_clickhouse_targets_use_the_plugin_query_model() -> None:
    for _, panel in panels():
        for target in panel.get("targets", []):
            if target["datasource"]["type"] != CLICKHOUSE_TYPE:
                continue
            assert target["editorType"] == "sql" and target["rawSql"].strip()
            if panel["type"] == "timeseries":
                assert (target["format"], target["queryType"]) == (0, "timeSeries")
            else:
                assert (target["format"], target["queryType"]) == (1, "table")


def test_prometheus_panels_use_only_exposed_metric_names() -> None:
    exposed = exposed_names()
    used = set()
    for _, panel in panels():
        for target in panel.get("targets", []):
            if target["datasource"]["type"] != PROMETHEUS_TYPE:
                continue
            names = set(re.findall(r"\bcivicpulse_[a-z_]+\b", target["expr"]))
            assert names, target["expr"]
            assert names <= exposed, names - exposed
            used |= names
    # the engineering board covers throughput, lag, latency and write errors
    for needed in (
        "civicpulse_events_received_total",
        "civicpulse_consumer_lag_messages",
        "civicpulse_batch_seconds_bucket",
        "civicpulse_clickhouse_write_errors_total",
    ):
        assert needed in used


def test_dimension_variables_are_multi_value_with_all() -> None:
    for name in ("public.json", "operations.json"):
        variables = {v["name"]: v for v in BOARDS[name]["templating"]["list"]}
        for dimension in ("agency", "district", "category", "channel"):
            v = variables[dimension]
            assert v["multi"] and v["includeAll"] and v["datasource"]["uid"] == CLICKHOUSE_UID


# --- expansion -----------------------------------------------------------------------------------


def ctx(start: datetime, end: datetime, **variables: Any) -> expand.Context:
    values: dict[str, Any] = {d: ALL for d in ("agency", "district", "category", "channel")}
    values["month"] = MONTH
    values.update(variables)
    return expand.Context(start, end, interval_s=86_400, variables=values)


def test_expansion_follows_the_plugin() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    end = datetime(2026, 3, 2, 0, 0, 1, 500_000, tzinfo=UTC)
    c = ctx(start, end, agency=["Water Authority", "O'Brien"], district=ALL)
    sql = (
        "SELECT $__timeInterval(t) AS time FROM x WHERE $__timeFilter(t) AND a >= $__fromTime_ms"
        " AND $__conditionalAll(agency IN (${agency:singlequote}), $agency)"
        " AND $__conditionalAll(district IN (${district:singlequote}), $district)"
        " AND b < $__toTime AND n = $__interval_s"
    )
    assert expand.expand(sql, c) == (
        "SELECT toStartOfInterval(toDateTime(t), INTERVAL 86400 second) AS time FROM x"
        " WHERE t >= toDateTime(1772323200) AND t <= toDateTime(1772409601)"
        " AND a >= fromUnixTimestamp64Milli(1772323200000)"
        " AND agency IN ('Water Authority','O\\'Brien') AND 1=1"
        " AND b < toDateTime(1772409601) AND n = 86400"
    )
    with pytest.raises(expand.ExpansionError):
        expand.expand("SELECT $__nope", c)
    with pytest.raises(expand.ExpansionError):
        expand.expand("SELECT ${district:singlequote}", c)


# --- running every panel -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def city_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, City]]:
    close_clients()
    dsn = f"chdb://{tmp_path_factory.mktemp('boards') / 'clickhouse'}"
    client = open_client(dsn, database=f"boards_{uuid.uuid4().hex[:8]}")
    apply_migrations(client)
    city = build_city(client)
    yield client, city
    close_client(client)
    close_clients()


def run(client: Client, sql: str, c: expand.Context) -> tuple[list[str], list[str], list[tuple]]:  # type: ignore[type-arg]
    result = client.query(expand.expand(sql, c))
    return list(result.column_names), [t.name for t in result.column_types], result.result_rows


def records(client: Client, sql: str, c: expand.Context) -> list[dict[str, Any]]:
    names, _, rows = run(client, sql, c)
    return [dict(zip(names, row, strict=True)) for row in rows]


def window_ctx(city: City, **variables: Any) -> expand.Context:
    return ctx(city.start - timedelta(days=1), city.now, **variables)


def numeric(type_name: str) -> bool:
    return bool(re.search(r"Int|Float|Decimal", type_name))


def clickhouse_targets() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for name, panel in panels():
        for target in panel.get("targets", []):
            if target["datasource"]["type"] == CLICKHOUSE_TYPE:
                yield name, panel, target


def test_every_clickhouse_panel_answers_with_what_it_shows(
    city_client: tuple[Client, City],
) -> None:
    client, city = city_client
    c = window_ctx(city)
    checked = 0
    for board, panel, target in clickhouse_targets():
        label = f"{board}: {panel['title']}"
        names, types, rows = run(client, target["rawSql"], c)
        assert rows, f"{label}: no rows"
        kind = panel["type"]
        if kind == "timeseries":
            assert names[0] == "time" and "DateTime" in types[0], label
            assert any(numeric(t) for t in types[1:]), label
            times = [row[0] for row in rows]
            assert times == sorted(times), f"{label}: not time-sorted"
        elif kind in ("stat", "piechart"):
            assert any(numeric(t) for t in types), label
            if kind == "piechart":
                assert "String" in types[0], label
        elif kind == "barchart":
            x = panel["options"]["xField"]
            assert x in names and "String" in types[names.index(x)], label
            assert any(numeric(t) for n, t in zip(names, types, strict=True) if n != x), label
        elif kind == "geomap":
            for column in ("lat", "lon"):
                assert column in names and numeric(types[names.index(column)]), label
            assert all(-90 <= row[names.index("lat")] <= 90 for row in rows), label
        else:
            assert kind == "table", label
        checked += 1
    assert checked == len(list(clickhouse_targets())) >= 20


def by_title(board: str, title: str) -> str:
    for panel in BOARDS[board]["panels"]:
        if panel["title"] == title:
            sqls = [t["rawSql"] for t in panel["targets"]]
            assert len(sqls) == 1
            return sqls[0]
    raise KeyError(title)


def same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def test_rates_equal_metrics_rates(city_client: tuple[Client, City]) -> None:
    client, city = city_client
    for variables, filters in (
        ({}, None),
        ({"agency": ["Water Authority"]}, {"agency": ["Water Authority"]}),
        (
            {"district": ["Eastfield", "Harbour"], "channel": ["app"]},
            {"district": ["Eastfield", "Harbour"], "channel": ["app"]},
        ),
    ):
        c = window_ctx(city, **variables)
        [got] = records(client, by_title("public.json", "The three rates, and participation"), c)
        [want] = metrics.rates(
            client, metrics.Window(c.start, c.end), filters=filters, now=city.now
        )
        assert got["cases"] == want["cases"] > 0
        for name in ("response", "resolution", "satisfaction", "participation"):
            w = want[f"{name}_rate"]
            assert same(got[f"{name}_rate"], w["rate"]), name
            assert got[f"{name}_numerator"] == w["numerator"], name
            assert got[f"{name}_denominator"] == w["denominator"], name
    table = records(
        client, by_title("public.json", "Rates with numerators and denominators"), window_ctx(city)
    )
    assert table[0]["metric"] == "Response rate" and len(table) == 4


def test_ranking_equals_metrics_ranking(city_client: tuple[Client, City]) -> None:
    client, city = city_client
    c = window_ctx(city)
    for level, title in (
        ("sub_district", "Monthly ranking: sub-districts"),
        ("agency", "Monthly ranking: agencies"),
    ):
        got = records(client, by_title("public.json", title), c)
        want = metrics.ranking(client, level, month=MONTH, now=city.now)  # type: ignore[arg-type]
        expected = want["ranked"] + want["unranked"]
        assert want["ranked"], level
        assert len(got) == len(expected)
        keys = metrics.RANKING_LEVELS[level]
        for g, w in zip(got, expected, strict=True):
            assert tuple(g[k] for k in keys) == tuple(w[k] for k in keys)
            assert g["rank"] == w["rank"] and same(g["index"], w["index"])
            assert g["cases"] == w["cases"]
            for metric, column in (
                ("response_rate", "response"),
                ("resolution_on_time", "resolution_on_time"),
            ):
                assert same(g[f"{column}_rate"], w["inputs"][metric]["rate"])
                assert g[f"{column}_denominator"] == w["inputs"][metric]["denominator"] or (
                    g[f"{column}_denominator"] is None and w["inputs"][metric]["suppressed"]
                )


def test_durations_equal_metrics_durations(city_client: tuple[Client, City]) -> None:
    client, city = city_client
    c = window_ctx(city)
    title = "Time to first response and to resolution, by agency"
    got = {r["agency"]: r for r in records(client, by_title("public.json", title), c)}
    want = metrics.durations(client, metrics.Window(c.start, c.end), group_by="agency")
    assert len(got) == len(want)
    for w in want:
        g = got[w["group"]["agency"]]
        for name in ("first_response", "resolution"):
            for p in ("p50", "p90", "p99"):
                assert same(g[f"{name}_{p}"], w[name]["wall"][p]), (name, p)


def test_on_time_and_quality_equal_metrics(city_client: tuple[Client, City]) -> None:
    client, city = city_client
    c = window_ctx(city)
    win = metrics.Window(c.start, c.end)
    got = {
        r["agency"]: r
        for r in records(client, by_title("public.json", "On time against the SLA, by agency"), c)
    }
    for w in metrics.on_time(client, win, group_by="agency", now=city.now):
        g = got[w["group"]["agency"]]
        assert same(g["first_response_on_time_rate"], w["first_response"]["rate"])
        assert same(g["resolution_on_time_rate"], w["resolution"]["rate"])
    title = "Agency-claimed vs citizen-confirmed, by agency"
    got = {r["agency"]: r for r in records(client, by_title("public.json", title), c)}
    for w in metrics.quality(client, win, group_by="agency"):
        g = got[w["group"]["agency"]]
        cc = w["claimed_vs_confirmed"]
        assert same(g["claimed_fixed"], cc["claimed"]["rate"])
        assert same(g["citizen_confirmed"], cc["confirmed"]["rate"])
        assert same(g["gap"], cc["gap"])
    [total] = metrics.quality(client, win)
    reasons = {
        r["reason"]: r["cases"]
        for r in records(client, by_title("public.json", "Closure reasons"), c)
    }
    expected = {k: v["numerator"] for k, v in total["closure_reasons"].items() if v["numerator"]}
    assert reasons == expected
    got = {
        r["agency"]: r
        for r in records(
            client, by_title("operations.json", "Transfers and ping-pong, by agency"), c
        )
    }
    for w in metrics.quality(client, win, group_by="agency", min_cases=0):
        g = got[w["group"]["agency"]]
        assert g["transfers_total"] == w["transfers"]["total"]
        assert g["cases_transferred"] == w["transfers"]["cases_transferred"]["numerator"]
        assert g["ping_pongs_total"] == w["ping_pong"]["total"]
        assert g["cases_ping_ponged"] == w["ping_pong"]["cases"]["numerator"]


def test_backlog_panels_equal_metrics_backlog(city_client: tuple[Client, City]) -> None:
    client, city = city_client
    c = window_ctx(city)
    [got] = records(client, by_title("operations.json", "Open cases now"), c)
    [want] = metrics.backlog(client, now=city.now, min_cases=0)
    assert got["open"] == want["open"] > 0
    assert got["past_due"] == want["past_due"]["numerator"]
    assert got["past_50"] == want["at_risk"]["past_50"]["numerator"]
    assert got["first_response_overdue"] == want["first_response_overdue"]
    aging = {
        r["agency"]: r
        for r in records(client, by_title("operations.json", "Backlog aging, by agency"), c)
    }
    for w in metrics.backlog(client, group_by="agency", now=city.now, min_cases=0):
        g = aging[w["group"]["agency"]]
        assert g["open"] == w["open"]
        assert {k: g[k] for k in w["aging"]} == w["aging"]


def test_at_risk_queue_and_breaches_today_by_brute_force(city_client: tuple[Client, City]) -> None:
    client, city = city_client
    now = city.now
    queue = records(
        client, by_title("operations.json", "At-risk queue: soonest breach first"), window_ctx(city)
    )
    expected = []
    for row in city.rows.values():
        if row.status not in ("open", "paused", "reopened"):
            continue
        for target, due, warns in (
            (
                "first_response",
                row.fr_due_at if row.fr_ended_at is None else None,
                (row.fr_warn_50_at, row.fr_warn_75_at, row.fr_warn_90_at),
            ),
            (
                "resolution",
                row.res_due_at
                if row.res_ended_at is None and row.res_paused_since is None
                else None,
                (row.res_warn_50_at, row.res_warn_75_at, row.res_warn_90_at),
            ),
        ):
            level = max(
                (
                    lv
                    for lv, at in zip((50, 75, 90), warns, strict=True)
                    if at is not None and at <= now
                ),
                default=0,
            )
            if due is not None and due > now and level >= 50:
                expected.append((due, row.case_id, target, level))
    expected.sort()
    assert expected, "the city has no case at risk"
    assert [(r["due_at"], r["case_id"], r["target"], r["warning"]) for r in queue] == expected[:500]
    assert all(r["seconds_to_breach"] >= 0 for r in queue)

    breaches = records(
        client, by_title("operations.json", "Breaches today, by agency"), window_ctx(city)
    )
    got = {r["agency"]: (r["first_response"], r["resolution"]) for r in breaches}
    midnight = (now + timedelta(hours=8)).replace(
        hour=0, minute=0, second=0, microsecond=0
    ) - timedelta(hours=8)
    counts: dict[str, list[int]] = {}
    cycles = client.query(
        "SELECT agency, due_at, on_time FROM case_cycles FINAL WHERE due_at IS NOT NULL"
    ).result_rows
    for row in city.rows.values():
        if row.fr_due_at is not None and midnight <= row.fr_due_at <= now and not row.fr_on_time:
            counts.setdefault(row.agency, [0, 0])[0] += 1
    for agency, due, on_time in cycles:
        if midnight <= due <= now and not on_time:
            counts.setdefault(agency, [0, 0])[1] += 1
    assert got == {k: tuple(v) for k, v in counts.items()}
    assert got, "no breach today in the city"


def test_alert_feed_shows_each_alert_once(city_client: tuple[Client, City]) -> None:
    client, city = city_client
    c = window_ctx(city)
    feed = records(client, by_title("operations.json", "SLA alert feed"), c)
    distinct = client.query("SELECT uniqExact(alert_id) FROM sla_alerts").result_rows[0][0]
    assert len(feed) == min(500, distinct)
    assert [r["fired_at"] for r in feed] == sorted((r["fired_at"] for r in feed), reverse=True)
    [[water]] = client.query(
        "SELECT uniqExact(alert_id) FROM sla_alerts WHERE agency = 'Water Authority'"
    ).result_rows
    assert len(
        records(
            client,
            by_title("operations.json", "SLA alert feed"),
            window_ctx(city, agency=["Water Authority"]),
        )
    ) == min(500, water)


def test_engineering_counts_match_the_pipeline(city_client: tuple[Client, City]) -> None:
    client, city = city_client
    c = window_ctx(city)
    dead = records(client, by_title("engineering.json", "Dead letters by reason"), c)
    assert sum(r["dead_letters"] for r in dead) == city.dead_letters > 0
    late = records(client, by_title("engineering.json", "Late events by type"), c)
    assert sum(r["events"] for r in late) == city.late_events > 0
    fresh = records(client, by_title("engineering.json", "Freshness: event time to stored"), c)
    assert all(0 <= r["p50"] <= r["p95"] <= r["p99"] <= r["max"] for r in fresh)


def test_equity_and_map(city_client: tuple[Client, City]) -> None:
    client, city = city_client
    c = window_ctx(city)
    equity = records(client, by_title("public.json", "Equity: districts against the city"), c)
    rates = sorted(r["resolution_rate"] for r in equity if r["resolution_rate"] is not None)
    n = len(rates)
    median = rates[n // 2] if n % 2 else (rates[n // 2 - 1] + rates[n // 2]) / 2
    for r in equity:
        if r["resolution_rate"] is not None:
            assert same(r["resolution_vs_median"], r["resolution_rate"] - median)
    by_district = {
        w["group"]["district"]: w
        for w in metrics.rates(
            client, metrics.Window(c.start, c.end), group_by="district", now=city.now
        )
    }
    for r in records(client, by_title("public.json", "Districts"), c):
        w = by_district[r["district"]]
        assert r["cases"] == w["cases"] and same(r["response_rate"], w["response_rate"]["rate"])
        assert 30 < r["lat"] < 32 and 121 < r["lon"] < 122  # the simulated city


# --- publishing ----------------------------------------------------------------------------------
# No Grafana binary here: the happy path runs against a loopback *recorder* that answers the
# few API calls the way Grafana documents them and records what grafana-client sent. It
# proves the requests, not that a real Grafana accepts the boards.


class Recorder(http.server.BaseHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, str, str, Any]]] = []
    folders: ClassVar[set[str]] = set()
    status: ClassVar[int | None] = None  # answer every request with this status

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        auth = self.headers.get("Authorization", "")
        type(self).requests.append((self.command, self.path, auth, body))
        return body

    def do_GET(self) -> None:
        self._record()
        if self.status is not None:
            self._answer(self.status, {"message": "invalid API key"})
        elif self.path.startswith("/api/folders/"):
            uid = self.path.rsplit("/", 1)[1]
            if uid in self.folders:
                self._answer(200, {"uid": uid, "title": "civicpulse"})
            else:
                self._answer(404, {"message": "folder not found", "status": "not-found"})
        else:
            self._answer(404, {"message": "not found"})

    def do_POST(self) -> None:
        body = self._record()
        if self.status is not None:
            self._answer(self.status, {"message": "invalid API key"})
        elif self.path == "/api/folders":
            type(self).folders.add(body["uid"])
            self._answer(200, {"uid": body["uid"], "title": body["title"]})
        elif self.path == "/api/dashboards/db":
            board = body["dashboard"]
            self._answer(200, {"status": "success", "uid": board["uid"], "version": 1})
        else:
            self._answer(404, {"message": "not found"})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, type[Recorder]]]:
    handler = type("Handler", (Recorder,), {"requests": [], "folders": set(), "status": None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_publish_creates_the_folder_once_and_overwrites_boards_by_uid(
    recorder: tuple[str, type[Recorder]],
) -> None:
    url, handler = recorder
    boards = cli_dashboards.load_boards(build.JSON_DIR)
    uids = cli_dashboards.publish(url, "tok3n", boards)
    assert sorted(uids) == sorted(b["uid"] for b in BOARDS.values())
    first = list(handler.requests)
    assert [(m, p) for m, p, _, _ in first[:2]] == [
        ("GET", "/api/folders/civicpulse"),
        ("POST", "/api/folders"),
    ]
    posted = [body for m, p, _, body in first if p == "/api/dashboards/db"]
    assert len(posted) == len(BOARDS)
    for body in posted:
        assert body["overwrite"] is True and body["folderUid"] == "civicpulse"
        assert body["dashboard"]["id"] is None and body["dashboard"]["uid"] in uids
    assert all(auth == "Bearer tok3n" for _, _, auth, _ in first)
    # again: the folder exists now, the boards are overwritten, nothing else is created
    handler.requests.clear()
    cli_dashboards.publish(url, "tok3n", boards)
    paths = [(m, p) for m, p, _, _ in handler.requests]
    assert ("POST", "/api/folders") not in paths
    assert paths.count(("POST", "/api/dashboards/db")) == len(BOARDS)


def test_publish_command_reports_a_refused_token(recorder: tuple[str, type[Recorder]]) -> None:
    url, handler = recorder
    handler.status = 401
    result = CliRunner().invoke(app, ["dashboards", "publish", "--url", url, "--token", "bad"])
    assert result.exit_code == 1
    assert "refused the token (401" in result.output
    assert len(handler.requests) == 1  # stopped at the first answer


def test_publish_command_reports_an_unreachable_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    result = CliRunner().invoke(
        app, ["dashboards", "publish", "--url", url, "--token", "t", "--timeout", "3"]
    )
    assert result.exit_code == 1
    assert f"cannot reach Grafana at {url}" in result.output


def test_publish_command_succeeds_against_the_recorder(
    recorder: tuple[str, type[Recorder]],
) -> None:
    url, _ = recorder
    result = CliRunner().invoke(
        app, ["dashboards", "publish", "--url", url], env={"GRAFANA_TOKEN": "t"}
    )
    assert result.exit_code == 0, result.output
    assert f"published {len(BOARDS)} boards" in result.output
