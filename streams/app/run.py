"""Start a worker process: topics, store (migrations), Faust app, until SIGINT/SIGTERM."""

from __future__ import annotations

from pathlib import Path

from faust.worker import Worker

from streams.app.topology import topic_layout
from streams.app.worker import build_app
from streams.core.sla.policy import PolicySet, load_policies
from streams.gc_tuning import tune_for_long_lived_objects
from streams.kafka_runtime.topics import ensure_topics_sync
from streams.logs import get_logger
from streams.settings import Settings
from streams.store import Store

log = get_logger(__name__)


def load_sla_policies(settings: Settings) -> PolicySet:
    """The SLA policies the worker applies; a bad file stops the start with its reason."""
    if settings.sla_policies:
        return load_policies(Path(settings.sla_policies))
    return load_policies()


def run_worker(settings: Settings, bootstrap: str) -> None:
    policies = load_sla_policies(settings)
    ensure_topics_sync(bootstrap, topic_layout(settings))
    store = Store.open(settings.clickhouse_dsn)
    log.info(
        "worker starting",
        bootstrap=bootstrap,
        clickhouse=store.describe(),
        migrations_applied=store.applied,
        sla_policies=str(policies.source),
        web=f"http://{settings.web_host}:{settings.web_port}",
    )
    app = build_app(settings, bootstrap, store, policies)
    # The worker keeps many long-lived small objects (cached case states).
    tune_for_long_lived_objects()
    worker = Worker(
        app,
        loglevel=settings.log_level,
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
    )
    try:
        worker.execute_from_commandline()
    finally:
        store.close()
