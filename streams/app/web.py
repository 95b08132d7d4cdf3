"""The worker's local web views: the only way into an embedded store while the worker runs.

chDB lets one process open a store, so ``civicpulse query`` and ``civicpulse summary``
ask the worker that owns it, over loopback.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import orjson
from faust.web import Request, Response, View
from prometheus_client import CollectorRegistry

from streams.access import HEALTH_PATH, METRICS_PATH, QUERY_PATH, REPORT_PATH, SUMMARY_PATH
from streams.app.stats import PipelineStats
from streams.observability.exposition import CONTENT_TYPE, render
from streams.reporting.monthly import monthly_report_data
from streams.settings import Settings
from streams.store import Store
from streams.store.metrics import MetricsError
from streams.store.queries import ReadOnlyViolation, query_rows, summary


def register_views(
    app: faust.App,
    settings: Settings,
    store: Store,
    stats: PipelineStats,
    registry: CollectorRegistry,
) -> None:
    async def in_thread(fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    @app.page(HEALTH_PATH)
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok", "worker": settings.worker_id})

    @app.page(METRICS_PATH)
    class Metrics(View):
        """Prometheus exposition (names: streams/observability/registry.py)."""

        async def get(self, request: Request) -> Response:
            # On the loop, not a thread: the collectors read the watch list the agents change.
            body = render(registry)
            return self.bytes(body, content_type=CONTENT_TYPE)

    @app.page(REPORT_PATH)
    class Report(View):
        """The monthly report's data, for ``civicpulse report`` while the worker owns the
        embedded store."""

        async def get(self, request: Request) -> Response:
            month = request.query.get("month", "")
            try:
                data = await in_thread(monthly_report_data, store.client, month)
            except MetricsError as err:
                return self.json({"error": str(err)}, status=400)
            return self.bytes(orjson.dumps(data, default=str), content_type="application/json")

    @app.page(SUMMARY_PATH)
    class Summary(View):
        async def get(self, request: Request) -> Response:
            stored = await in_thread(summary, store.client)
            return self.json({"pipeline": stats.snapshot(), "store": stored})

    @app.page(QUERY_PATH)
    class Query(View):
        async def post(self, request: Request) -> Response:
            body = await request.json()
            sql = body.get("sql") if isinstance(body, dict) else None
            if not isinstance(sql, str):
                return self.json(
                    {"error": 'expected a JSON body {"sql": "SELECT ..."}'}, status=400
                )
            try:
                columns, rows = await in_thread(query_rows, store.client, sql)
            except ReadOnlyViolation as err:
                return self.json({"error": str(err)}, status=400)
            except Exception as err:  # the caller's SQL may be wrong: report, don't crash
                return self.json({"error": f"{type(err).__name__}: {err}"}, status=400)
            return self.json({"columns": list(columns), "rows": [list(r) for r in rows]})
