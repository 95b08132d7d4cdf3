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
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import faust
from faust.streams import _current_event
from faust.types import EventT
from mode.types.signals import BaseSignalT

from streams.app.lateness import LatenessTracker
from streams.app.stats import PipelineStats
from streams.app.steps import CaseBatchResult, RawMessage, apply_events, chunks, ingest, route
from streams.app.topology import DEAD_LETTERS, EVENTS, RAW
from streams.app.web import register_views
from streams.contract import decode_validated
from streams.contract.framing import BATCH_HEADERS
from streams.core.case_state import CaseState
from streams.core.sla.policy import PolicySet
from streams.logs import get_logger
from streams.settings import Settings
from streams.store import Store
from streams.store.rows import DeadLetterRow, LateEventRow


class CaseCache(OrderedDict[str, CaseState]):
    """Decoded case states in front of the table, least recently used evicted first."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def __setitem__(self, key: str, value: CaseState) -> None:
        super().__setitem__(key, value)
        if len(self) > self.capacity:
            self.popitem(last=False)


log = get_logger(__name__)


def _batches(
    stream: faust.StreamT[bytes], max_: int, within: float
) -> AsyncIterator[Sequence[EventT[bytes]]]:
    """Faust's ``take_events`` (size- and time-bounded batches that keep message metadata),
    which its ``StreamT`` interface does not declare."""
    batches: AsyncIterator[Sequence[EventT[bytes]]] = cast(Any, stream).take_events(max_, within)
    return batches


def _raw(event: EventT[bytes]) -> RawMessage:
    message = event.message
    headers = message.headers or ()
    return RawMessage(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value or b"",
        headers=tuple(headers.items() if isinstance(headers, Mapping) else headers),
    )


def build_app(
    settings: Settings, bootstrap: str, store: Store, policies: PolicySet | None = None
) -> faust.App:
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
        stream_buffer_maxsize=max(4096, settings.ingest_batch_messages * 2),
        broker_commit_every=settings.ingest_batch_messages,
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
    lateness = LatenessTracker(grace=timedelta(seconds=settings.late_grace_seconds))

    @app.on_partitions_revoked.connect
    def _forget_cached_cases(
        sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any
    ) -> None:
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
                    (
                        "civicpulse-origin",
                        f"{row.topic}/{row.partition}/{row.offset}/{row.line}".encode(),
                    ),
                ],
            )
        await run_blocking(store.writer.write_dead_letters, dead)

    @app.agent(raw_topic, name="ingest")
    async def ingest_agent(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for batch in _batches(
            stream, settings.ingest_batch_messages, settings.batch_max_seconds
        ):
            for chunk in chunks([_raw(e) for e in batch], settings.chunk_events):
                started = time.perf_counter()
                result = ingest(chunk)
                # Batch messages to the case's partition: the case agent then pays the
                # stream's per-message cost once per batch instead of once per event.
                for partition, value in route(
                    result.valid, settings.topic_partitions, settings.internal_message_bytes
                ):
                    await events_topic.send(
                        value=value, partition=partition, headers=list(BATCH_HEADERS)
                    )
                if result.dead:
                    await send_dead_letters(result.dead)
                stats.ingested(
                    len(result.valid) + len(result.dead),
                    len(result.dead),
                    time.perf_counter() - started,
                )
            yield None

    @app.agent(events_topic, name="cases")
    async def case_agent(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for batch in _batches(
            stream, settings.case_batch_messages, settings.batch_max_seconds
        ):
            carriers = {(e.message.partition, e.message.offset): e for e in batch}
            for chunk in chunks([_raw(e) for e in batch], settings.chunk_events):
                await process_cases(chunk, carriers)
            yield None

    async def process_cases(
        chunk: Sequence[RawMessage], carriers: Mapping[tuple[int, int], EventT[bytes]]
    ) -> None:
        started = time.perf_counter()
        # Only the ingest step writes the events topic: trust its validation, but a stray
        # writer's bytes that do not decode still become dead letters.
        received = datetime.now(UTC)
        validated = ingest(chunk, now=received, decode=decode_validated)
        if validated.dead:
            await send_dead_letters(validated.dead)
        late = lateness.observe(validated.valid, received)
        result = apply_events(
            validated.valid,
            load_state=lambda case_id: cases.get(case_id.encode()),
            cache=cache,
            now=received,
            policies=policies,
        )
        await run_blocking(_write_case_batch, store, result, late)
        for case_id, encoded in result.states.items():
            # The table picks its changelog partition from the "current event"; in a batch
            # that must be the message that carried this very case.
            carrier = result.carriers[case_id]
            token = _current_event.set(weakref.ref(carriers[(carrier.partition, carrier.offset)]))
            try:
                cases[case_id.encode()] = encoded
            finally:
                _current_event.reset(token)
        stats.processed(
            len(validated.valid),
            len(result.facts),
            result.duplicates,
            time.perf_counter() - started,
            late=len(late),
        )

    register_views(app, settings, store, stats)
    app.civicpulse_stats = stats  # type: ignore[attr-defined]
    return app


def _write_case_batch(store: Store, result: CaseBatchResult, late: Sequence[LateEventRow]) -> None:
    store.writer.write_events(result.event_rows)
    store.writer.write_late_events(late)
    store.writer.write_case_facts(result.facts)
    if result.sla:
        store.writer.write_case_sla(result.sla)
        store.writer.write_cycles(result.cycles)
