"""The Faust worker: ingest agent, case agent, the case table and the local web views.

Delivery is at-least-once: Faust acks a ``take_events`` batch only after the loop body
returns, and flushes the producer before committing offsets, so everything a batch
emits (dead letters, forwarded events, changelog, store rows) is durable before its
offsets are committed. Redelivered batches are harmless: the case state ignores event
ids it knows and the store tables replace rows by key.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import Any

import faust
from faust.streams import _current_event
from faust.types import EventT

from streams.app.stats import PipelineStats
from streams.app.topology import DEAD_LETTERS, EVENTS, RAW
from streams.app.steps import RawMessage, apply_events, ingest
from streams.app.web import register_views
from streams.core.case_state import CaseState
from streams.settings import Settings
from streams.store import Store
from streams.store.rows import DeadLetterRow

class CaseCache(OrderedDict[str, CaseState]):
    """Decoded case states in front of the table, least recently used evicted first."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def __setitem__(self, key: str, value: CaseState) -> None:
        super().__setitem__(key, value)
        if len(self) > self.capacity:
            self.popitem(last=False)


def _raw(event: EventT) -> RawMessage:
    message = event.message
    return RawMessage(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
    )


def build_app(settings: Settings, bootstrap: str, store: Store) -> faust.App:
    app = faust.App(
        settings.worker_id,
        broker=f"kafka://{bootstrap}",
        store="rocksdb://",
        datadir=str(settings.data_dir / "worker"),
        web_enabled=True,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=1,
        key_serializer="raw",
        value_serializer="raw",
        autodiscover=False,
        stream_buffer_maxsize=max(4096, settings.batch_max_events * 2),
        broker_commit_every=settings.batch_max_events,
        producer_linger_ms=5,
        producer_max_batch_size=1024 * 1024,
        consumer_max_fetch_size=4 * 1024 * 1024,
        table_standby_replicas=0,
    )
    stats = PipelineStats()
    raw_topic = app.topic(settings.topic(RAW), key_type=bytes, value_type=bytes)
    events_topic = app.topic(settings.topic(EVENTS), key_type=bytes, value_type=bytes)
    dead_topic = app.topic(settings.topic(DEAD_LETTERS), key_type=bytes, value_type=bytes)
    cases = app.Table(
        "cases",
        partitions=settings.topic_partitions,
        key_type=bytes,
        value_type=bytes,
        help="Every case's distinct events, the source of its facts.",
    )
    cache = CaseCache(capacity=200_000)

    @app.on_partitions_revoked.connect
    async def _forget_cached_cases(app: faust.App, revoked: Any, **_: Any) -> None:
        # Another worker may own these cases now: its changelog is the truth, not our cache.
        cache.clear()

    async def run_blocking(fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def send_dead_letters(dead: Sequence[DeadLetterRow]) -> None:
        for row in dead:
            await dead_topic.send(
                key=row.key.encode() or None,
                value=row.raw,
                headers=[
                    ("civicpulse-reason", row.reason.encode()),
                    ("civicpulse-detail", row.detail.encode()),
                    ("civicpulse-origin", f"{row.topic}/{row.partition}/{row.offset}".encode()),
                ],
            )
        await run_blocking(store.writer.write_dead_letters, dead)

    @app.agent(raw_topic, name="ingest")
    async def ingest_agent(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for batch in stream.take_events(settings.batch_max_events, settings.batch_max_seconds):
            started = time.perf_counter()
            result = ingest([_raw(e) for e in batch])
            for message, event in result.valid:
                await events_topic.send(key=event.case_id.encode(), value=message.value)
            if result.dead:
                await send_dead_letters(result.dead)
            stats.ingested(len(batch), len(result.dead), time.perf_counter() - started)
            yield None

    @app.agent(events_topic, name="cases")
    async def case_agent(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for batch in stream.take_events(settings.batch_max_events, settings.batch_max_seconds):
            started = time.perf_counter()
            # The events topic is validated input, but anyone may write to it: check again
            # rather than trust, and dead-letter what fails.
            validated = ingest([_raw(e) for e in batch])
            if validated.dead:
                await send_dead_letters(validated.dead)
            by_offset = {(e.message.partition, e.message.offset): e for e in batch}
            result = apply_events(
                validated.valid,
                load_state=lambda case_id: cases.get(case_id.encode()),
                cache=cache,
            )
            await run_blocking(_write_case_batch, store, result.event_rows, result.facts)
            last_event_of_case = {
                event.case_id: by_offset[(message.partition, message.offset)]
                for message, event in validated.valid
            }
            for case_id, encoded in result.states.items():
                # The table picks its changelog partition from the "current event";
                # in a batch that must be an event of this very case.
                token = _current_event.set(weakref.ref(last_event_of_case[case_id]))
                try:
                    cases[case_id.encode()] = encoded
                finally:
                    _current_event.reset(token)
            stats.processed(
                len(batch), len(result.facts), result.duplicates, time.perf_counter() - started
            )
            yield None

    register_views(app, settings, store, stats)
    app.civicpulse_stats = stats  # type: ignore[attr-defined]
    return app


def _write_case_batch(store: Store, event_rows: Sequence[Any], facts: Sequence[Any]) -> None:
    store.writer.write_events(event_rows)
    store.writer.write_case_facts(facts)
