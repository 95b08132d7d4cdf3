"""The worker's local web views: the only way into an embedded store while the worker runs.

chDB lets one process open a store, so ``civicpulse query``, ``civicpulse summary`` and
``civicpulse replay`` ask the worker that owns it, over loopback. A replay runs in a
background thread of the worker (``streams.replay.service``) while the agents go on.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import orjson
from faust.web import Request, Response, View
from prometheus_client import CollectorRegistry

from streams.access import (
    HEALTH_PATH,
    METRICS_PATH,
    QUERY_PATH,
    REPLAY_PATH,
    REPORT_PATH,
    SUMMARY_PATH,
)
from streams.app.stats import PipelineStats
from streams.observability.exposition import CONTENT_TYPE, render
from streams.replay.service import ReplayBusy, ReplayRequest, ReplayRequestError, ReplayRuns
from streams.reporting.monthly import monthly_report_data
from streams.settings import Settings
from streams.store import Store
from streams.store import generations as gens
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

    replays = ReplayRuns(settings, _bootstrap_of(app))

    @app.page(REPLAY_PATH)
    class Replays(View):
        """``GET``: the generations; ``POST`` (a ReplayRequest): start a replay in this
        worker, answers its generation id."""

        async def get(self, request: Request) -> Response:
            found = await in_thread(gens.list_generations, store.client)
            return self.bytes(
                orjson.dumps({"generations": [_generation_json(g) for g in found]}),
                content_type="application/json",
            )

        async def post(self, request: Request) -> Response:
            try:
                replay = ReplayRequest.from_json(await request.json())
                run = replays.start(replay)
            except ReplayRequestError as err:
                return self.json({"error": str(err)}, status=400)
            except ReplayBusy as err:
                return self.json({"error": str(err)}, status=409)
            return self.json({"generation": run.request.generation})

    @app.page(REPLAY_PATH + "/{generation}")
    class ReplayOne(View):
        """``GET``: progress of a replay this worker runs or ran; ``DELETE``: drop a
        retired, built or failed generation's tables."""

        async def get(self, request: Request, generation: str) -> Response:
            run = replays.get(generation)
            if run is None:
                return self.json({"error": f"no replay {generation} in this worker"}, status=404)
            return self.json(run.snapshot())

        async def delete(self, request: Request, generation: str) -> Response:
            try:
                dropped = await in_thread(gens.drop, store.client, generation)
            except gens.GenerationError as err:
                return self.json({"error": str(err)}, status=400)
            return self.bytes(
                orjson.dumps(_generation_json(dropped)), content_type="application/json"
            )

    @app.page(REPLAY_PATH + "/{generation}/cancel")
    class ReplayCancel(View):
        """``POST``: ask a running replay to stop; it is left failed (interrupted) and
        resumable with the same id."""

        async def post(self, request: Request, generation: str) -> Response:
            run = replays.get(generation)
            if run is None:
                return self.json({"error": f"no replay {generation} in this worker"}, status=404)
            run.cancel()
            return self.json(run.snapshot())


def _bootstrap_of(app: faust.App) -> str:
    """The worker's Kafka bootstrap servers, as given to ``build_app``."""
    return ",".join(f"{url.host}:{url.port}" for url in app.conf.broker)


def _generation_json(generation: gens.Generation) -> dict[str, Any]:
    return {name: getattr(generation, name) for name in gens.GENERATION_COLUMNS}
