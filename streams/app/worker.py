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
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import faust
from faust.streams import _current_event
from faust.types import EventT
from mode.types.signals import BaseSignalT

from streams.app.alert_emitter import AlertEmitter
from streams.app.alert_index import AlertIndex, join_record, split_record
from streams.app.lateness import LatenessTracker
from streams.app.sla_watch import SlaWatch
from streams.app.stats import PipelineStats
from streams.app.steps import CaseBatchResult, RawMessage, apply_events, chunks, ingest, route
from streams.app.topology import ALERTS, DEAD_LETTERS, EVENTS, RAW
from streams.app.web import register_views
from streams.contract import decode_validated
from streams.contract.alerts import InvalidAlert, decode_alert
from streams.contract.framing import BATCH_HEADERS
from streams.core.case_state import CaseState
from streams.core.sla.policy import PolicySet
from streams.core.state_codec import decode_state
from streams.logs import get_logger
from streams.observability.exposition import SlaCaseCollector, StatsCollector, WriterCollector
from streams.observability.registry import WorkerMetrics
from streams.settings import Settings
from streams.store import Store
from streams.store.rows import DeadLetterRow, LateEventRow, SlaAlertRow


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


Tick = Callable[[], Awaitable[None]]


def _every(app: faust.App, seconds: float, name: str) -> Callable[[Tick], Tick]:
    """Faust's ``app.timer``, which its type stubs leave untyped."""
    decorator: Callable[[Tick], Tick] = app.timer(interval=seconds, name=name)
    return decorator


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
        broker_session_timeout=settings.kafka_session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.kafka_session_timeout_seconds / 3),
    )
    stats = PipelineStats()
    metrics = WorkerMetrics.create()
    raw_topic = app.topic(settings.topic(RAW), key_type=bytes, value_type=bytes)
    events_topic = app.topic(settings.topic(EVENTS), key_type=bytes, value_type=bytes)
    dead_topic = app.topic(settings.topic(DEAD_LETTERS), key_type=bytes, value_type=bytes)
    alerts_topic = app.topic(settings.topic(ALERTS), key_type=bytes, value_type=bytes)
    cases = app.Table(
        "cases",
        partitions=settings.topic_partitions,
        key_type=bytes,
        value_type=bytes,
        help="Every case's distinct events, the source of its facts.",
    )
    cache = CaseCache(capacity=200_000)
    lateness = LatenessTracker(grace=timedelta(seconds=settings.late_grace_seconds))
    index = AlertIndex()
    emitter = AlertEmitter(
        bootstrap,
        settings.topic(ALERTS),
        settings.worker_id,
        metrics,
        max_age=timedelta(seconds=settings.alert_max_age_seconds),
    )
    watch = SlaWatch(index, emitter, policies) if policies is not None else None
    metrics.registry.register(SlaCaseCollector(index))
    metrics.registry.register(WriterCollector(store.writer.stats))
    metrics.registry.register(StatsCollector(stats))
    #: (topic, partition) -> offset of the last message an agent finished
    finished: dict[tuple[str, int], int] = {}

    @app.on_partitions_revoked.connect
    async def _forget_owned_cases(
        sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any
    ) -> None:
        # Another worker may own these cases now: its changelog is the truth, not our cache.
        cache.clear()
        if watch is not None:
            await watch.revoked()

    @app.on_rebalance_complete.connect
    async def _watch_owned_cases(
        sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any
    ) -> None:
        # Tables are recovered by now and streams not yet resumed.
        if watch is None:
            return
        owned = {
            tp.partition
            for tp in app.assignor.assigned_actives()
            if tp.topic == events_topic.get_topic_name()
        }
        await watch.assigned(owned, ((key.decode(), value) for key, value in cases.items()))

    @app.on_before_shutdown.connect
    async def _stop_alerts(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        await emitter.stop()

    def stored_state(case_id: str) -> bytes | None:
        record = cases.get(case_id.encode())
        return None if record is None else split_record(record)[0]

    def state_of(case_id: str) -> CaseState | None:
        state = cache.get(case_id)
        if state is None:
            stored = stored_state(case_id)
            if stored is None:
                return None
            state = decode_state(case_id, stored)
        return state

    if watch is not None:

        @_every(app, settings.alert_tick_seconds, "sla_alert_timer")
        async def sla_alert_timer() -> None:
            await watch.tick(state_of)

    @_every(app, 5.0, "consumer_lag")
    async def consumer_lag() -> None:
        lag: dict[str, int] = {}
        for tp in app.consumer.assignment():
            if tp.topic not in (raw_topic.get_topic_name(), events_topic.get_topic_name()):
                continue
            high = app.consumer.highwater(tp)
            done = finished.get((tp.topic, tp.partition))
            if high is None or done is None:
                continue
            lag[tp.topic] = lag.get(tp.topic, 0) + max(0, high - done - 1)
        for topic, value in lag.items():
            metrics.consumer_lag.labels(topic).set(value)

    async def run_blocking(fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def send_dead_letters(dead: Sequence[DeadLetterRow]) -> None:
        stats.dead_lettered(row.reason for row in dead)
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
                seconds = time.perf_counter() - started
                stats.ingested(len(result.valid) + len(result.dead))
                metrics.batch_seconds.labels("ingest").observe(seconds)
            note_finished(batch)
            metrics.last_batch.labels("ingest").set(time.time())
            yield None

    @app.agent(events_topic, name="cases")
    async def case_agent(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for batch in _batches(
            stream, settings.case_batch_messages, settings.batch_max_seconds
        ):
            carriers = {(e.message.partition, e.message.offset): e for e in batch}
            for chunk in chunks([_raw(e) for e in batch], settings.chunk_events):
                await process_cases(chunk, carriers)
            note_finished(batch)
            metrics.last_batch.labels("cases").set(time.time())
            yield None

    def note_finished(batch: Sequence[EventT[bytes]]) -> None:
        for event in batch:
            message = event.message
            finished[(message.topic, message.partition)] = message.offset

    @app.agent(alerts_topic, name="alert_sink")
    async def alert_sink(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        """Copies the alert topic into ``sla_alerts`` for the boards (at least once; the
        table replaces copies)."""
        async for batch in _batches(stream, 1000, settings.batch_max_seconds):
            rows: list[SlaAlertRow] = []
            for event in batch:
                try:
                    rows.append(SlaAlertRow.from_document(decode_alert(event.message.value or b"")))
                except InvalidAlert as err:
                    log.error("invalid message on the alert topic", error=str(err))
            await run_blocking(store.writer.write_alerts, rows)
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
            load_state=stored_state,
            cache=cache,
            now=received,
            policies=policies,
        )
        await run_blocking(_write_case_batch, store, result, late)
        if watch is not None and result.evaluations:
            facts = {f.case_id: f for f in result.facts}
            partitions = {case_id: m.partition for case_id, m in result.carriers.items()}
            await watch.cases_changed(result.evaluations, facts, partitions, received)
        watches = index.watches
        for case_id, encoded in result.states.items():
            # A table picks its changelog partition from the "current event"; in a batch
            # that must be the message that carried this very case. The watch changes only
            # with the case's events, so it is stored with them.
            carrier = result.carriers[case_id]
            token = _current_event.set(weakref.ref(carriers[(carrier.partition, carrier.offset)]))
            try:
                cases[case_id.encode()] = join_record(encoded, watches.get(case_id))
            finally:
                _current_event.reset(token)
        seconds = time.perf_counter() - started
        metrics.batch_seconds.labels("cases").observe(seconds)
        stats.processed(
            len(validated.valid),
            len(result.facts),
            result.duplicates,
            seconds,
            late=len(late),
        )

    register_views(app, settings, store, stats, metrics.registry)
    app.civicpulse_stats = stats  # type: ignore[attr-defined]
    return app


def _write_case_batch(store: Store, result: CaseBatchResult, late: Sequence[LateEventRow]) -> None:
    store.writer.write_events(result.event_rows)
    store.writer.write_late_events(late)
    store.writer.write_case_facts(result.facts)
    if result.sla:
        store.writer.write_case_sla(result.sla)
        store.writer.write_cycles(result.cycles)
