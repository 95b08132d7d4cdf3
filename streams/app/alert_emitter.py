"""Writes SLA alerts to the alert topic, each alert id exactly once.

The topic itself is the record of what was emitted: messages are keyed by alert id and
sent to the partition of their case, so the worker that owns a case partition reads the
same partition of the alert topic (keys only) when it gets the partition, and skips every
id already there. Together with an idempotent producer, awaiting every send before the
id counts as emitted, and a revocation that waits for sends in flight, that gives one
message per alert id across restarts, crashes and rebalances:

- a send that completed is in the topic, and the next owner reads it;
- a send that never completed is not, and the next owner sends it;
- the old owner finishes or abandons its sends before it gives the partition up.

Alerts whose instant is older than ``max_age`` when first noticed are counted as stale
and not sent; so the topic's retention only has to outlast ``max_age``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.contract.alerts import encode_alert
from streams.core.sla.alerts import SlaAlert
from streams.logs import get_logger
from streams.observability.registry import WorkerMetrics

log = get_logger(__name__)


class AlertEmitter:
    def __init__(
        self,
        bootstrap: str,
        topic: str,
        worker_id: str,
        metrics: WorkerMetrics,
        max_age: timedelta,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.worker_id = worker_id
        self.metrics = metrics
        self.max_age = max_age
        self.lock = asyncio.Lock()
        #: partition -> alert ids already in the topic; only owned partitions are present
        self.emitted: dict[int, set[str]] = {}
        self.ready = False
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        if self._producer is None:
            self._producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                enable_idempotence=True,
                acks="all",
                linger_ms=5,
            )
            await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def revoke(self) -> None:
        """Stop emitting: waits for sends in flight (they hold the lock)."""
        async with self.lock:
            self.ready = False
            self.emitted.clear()

    async def assign(self, partitions: Iterable[int]) -> int:
        """Read which alerts the owned partitions already hold; then emitting resumes.
        Returns the number of alert ids read."""
        owned = sorted(set(partitions))
        async with self.lock:
            self.ready = False
            emitted = await self._read_ids(owned)
            self.emitted = emitted
            self.ready = True
        count = sum(len(ids) for ids in emitted.values())
        log.info("alert topic read", partitions=owned, alerts=count)
        return count

    async def emit(self, items: Sequence[tuple[int, SlaAlert]], now: datetime) -> int:
        """Send the alerts not yet in the topic (partition = their case's); returns how
        many were sent. Alerts of partitions this worker does not own are left to their
        owner."""
        if not items:
            return 0
        async with self.lock:
            if not self.ready:
                return 0
            oldest = now - self.max_age
            batch: list[tuple[int, SlaAlert]] = []
            queued: set[str] = set()
            for partition, alert in items:
                ids = self.emitted.get(partition)
                if ids is None or alert.alert_id in ids or alert.alert_id in queued:
                    continue
                if alert.fired_at < oldest:
                    self.metrics.alerts_stale.inc()
                    ids.add(alert.alert_id)  # never raised later either
                    continue
                queued.add(alert.alert_id)
                batch.append((partition, alert))
            if not batch:
                return 0
            if self._producer is None:
                await self.start()
            producer = self._producer
            assert producer is not None
            futures = [
                await producer.send(
                    self.topic,
                    value=encode_alert(alert, now, self.worker_id),
                    key=alert.alert_id.encode(),
                    partition=partition,
                )
                for partition, alert in batch
            ]
            await asyncio.gather(*futures)
            for partition, alert in batch:
                self.emitted[partition].add(alert.alert_id)
                self.metrics.alerts_emitted.labels(alert.type, alert.dimension("agency")).inc()
            return len(batch)

    async def _read_ids(self, partitions: Sequence[int]) -> dict[int, set[str]]:
        emitted: dict[int, set[str]] = {p: set() for p in partitions}
        if not partitions:
            return emitted
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            group_id=None,
            isolation_level="read_committed",
        )
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in partitions]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            pending = {tp for tp in tps if ends[tp] > 0}
            while pending:
                batches = await consumer.getmany(*pending, timeout_ms=1000, max_records=10_000)
                for tp, records in batches.items():
                    emitted[tp.partition].update(r.key.decode() for r in records if r.key)
                for tp in list(pending):
                    if await consumer.position(tp) >= ends[tp]:
                        pending.discard(tp)
        finally:
            await consumer.stop()
        return emitted
