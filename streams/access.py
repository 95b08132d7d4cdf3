"""How commands other than the worker reach the store.

A ClickHouse server is queried directly. An embedded store belongs to one process: while
a worker runs, it is reached through the worker's web views; otherwise it is opened here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from streams.settings import Settings

WORKER_TIMEOUT = 30.0
QUERY_PATH = "/civicpulse/query"
SUMMARY_PATH = "/civicpulse/summary"
HEALTH_PATH = "/civicpulse/health"
#: the monthly report's data (``?month=YYYY-MM``)
REPORT_PATH = "/civicpulse/report"
#: replays run by the worker: POST starts one, GET lists the generations;
#: ``/<id>``: GET progress, DELETE drops; ``/<id>/cancel``: POST stops one
REPLAY_PATH = "/civicpulse/replay"
#: Prometheus exposition, at the conventional path
METRICS_PATH = "/metrics"


class StoreAccessError(Exception):
    """The store could not be reached or refused the request."""


def worker_url(settings: Settings, path: str) -> str:
    return f"http://{settings.web_host}:{settings.web_port}{path}"


def ask_worker(settings: Settings, method: str, path: str, body: Any = None) -> Any | None:
    """The worker's answer, or None when no worker listens; StoreAccessError with the
    worker's error when it refuses."""
    try:
        response = httpx.request(
            method, worker_url(settings, path), json=body, timeout=WORKER_TIMEOUT
        )
    except httpx.ConnectError:
        return None
    except httpx.HTTPError as err:
        raise StoreAccessError(f"worker at {worker_url(settings, path)} failed: {err}") from err
    payload = response.json()
    if response.status_code != 200:
        raise StoreAccessError(str(payload.get("error", payload)))
    return payload


def _open_directly(settings: Settings) -> Any:
    from streams.store import Store

    try:
        return Store.open(settings.clickhouse_dsn)
    except Exception as err:
        if "Cannot lock file" in str(err):
            raise StoreAccessError(
                f"the embedded store {settings.clickhouse_dsn} is held by another process "
                f"that is not answering on {worker_url(settings, '')}; stop it or query "
                "through it, or use a ClickHouse server (CLICKHOUSE_URL)"
            ) from err
        raise StoreAccessError(f"cannot open {settings.clickhouse_dsn}: {err}") from err


def run_query(settings: Settings, sql: str) -> tuple[Sequence[str], Sequence[Sequence[Any]]]:
    from streams.store.queries import ReadOnlyViolation, check_read_only, query_rows

    try:
        check_read_only(sql)  # before anything is opened or sent
    except ReadOnlyViolation as err:
        raise StoreAccessError(str(err)) from err
    if settings.embedded_clickhouse:
        answer = ask_worker(settings, "POST", QUERY_PATH, {"sql": sql})
        if answer is not None:
            return answer["columns"], answer["rows"]
    store = _open_directly(settings)
    try:
        return query_rows(store.client, sql)
    except Exception as err:
        raise StoreAccessError(f"{type(err).__name__}: {err}") from err
    finally:
        store.close()


def fetch_summary(settings: Settings) -> dict[str, Any]:
    """The live summary: pipeline counters (when a worker runs) and store numbers."""
    from streams.store.queries import summary

    answer = ask_worker(settings, "GET", SUMMARY_PATH)
    if answer is not None:
        return dict(answer)
    store = _open_directly(settings)
    try:
        return {"pipeline": None, "store": summary(store.client)}
    finally:
        store.close()


def report_data(settings: Settings, month: str) -> dict[str, Any]:
    """The monthly report's data (``streams.reporting.monthly``), from the worker that
    owns an embedded store, or from the store itself."""
    from streams.reporting.monthly import monthly_report_data
    from streams.store.metrics import MetricsError

    if settings.embedded_clickhouse:
        answer = ask_worker(settings, "GET", f"{REPORT_PATH}?month={month}")
        if answer is not None:
            data: dict[str, Any] = answer
            return data
    store = _open_directly(settings)
    try:
        return monthly_report_data(store.client, month)
    except MetricsError as err:
        raise StoreAccessError(str(err)) from err
    finally:
        store.close()
