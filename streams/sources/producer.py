"""Produce ``Emitted`` messages to Kafka with aiokafka, fast.

The fast path builds record batches per partition itself (``create_batch`` /
``send_batch``) and only waits for delivery futures once per chunk: per-message
``send()`` calls cost several times more (see docs/simulator.md for the numbers).
Partitioning matches the Java client and aiokafka's default partitioner (murmur2 of the
key), so a case's messages stay in one partition, in wire order.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence, Sized
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from streams.contract.framing import BATCH_HEADERS, packable

if TYPE_CHECKING:
    from streams.sources.simulator import Emitted

__all__ = ["produce"]


class _BatchSender:
    def __init__(
        self, producer: Any, topic: str, partitions: list[int], events_per_message: int = 1
    ) -> None:
        self.events_per_message = events_per_message
        #: partition -> events waiting to travel together in one NDJSON batch message
        self.packs: dict[int, list[bytes]] = {}
        self.producer = producer
        self.topic = topic
        self.partitions = partitions
        self.builders: dict[int, Any] = {}
        self.pending: list[asyncio.Future[Any]] = []
        self.cache: dict[bytes, int] = {}
        self.round_robin = itertools.cycle(partitions)

    def partition(self, key: bytes | None) -> int:
        if key is None:
            return next(self.round_robin)
        p = self.cache.get(key)
        if p is None:
            p = self.partitions[(murmur2(key) & 0x7FFFFFFF) % len(self.partitions)]
            if len(self.cache) > 200_000:
                self.cache.clear()
            self.cache[key] = p
        return p

    async def add(
        self,
        key: bytes | None,
        value: bytes,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        p = self.partition(key) if partition is None else partition
        headers = list(headers)  # aiokafka's record builder takes a list only
        builder = self.builders.get(p)
        if builder is None:
            builder = self.builders[p] = self.producer.create_batch()
        if builder.append(key=key, value=value, timestamp=None, headers=headers) is not None:
            return
        await self._send(p)  # full: ship it and start a new one
        builder = self.builders[p] = self.producer.create_batch()
        if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
            raise ValueError(f"message of {len(value)} bytes does not fit in a batch")

    async def add_event(self, key: bytes | None, value: bytes) -> None:
        """Queue one event: alone, or packed with others bound for the same partition."""
        if self.events_per_message <= 1 or not packable(value):
            await self.add(key, value)
            return
        p = self.partition(key)
        pack = self.packs.setdefault(p, [])
        pack.append(value)
        if len(pack) >= self.events_per_message:
            await self._ship_pack(p)

    async def _ship_pack(self, p: int) -> None:
        pack = self.packs.pop(p, None)
        if pack:
            await self.add(None, b"\n".join(pack), partition=p, headers=BATCH_HEADERS)

    async def _send(self, p: int) -> None:
        builder = self.builders.pop(p)
        fut = await self.producer.send_batch(builder, self.topic, partition=p)
        self.pending.append(fut)

    async def flush_open(self) -> None:
        for p in list(self.packs):
            await self._ship_pack(p)
        for p in list(self.builders):
            await self._send(p)

    async def drain(self) -> None:
        await self.flush_open()
        if self.pending:
            pending, self.pending = self.pending, []
            await asyncio.gather(*pending)


async def _aiter_with_idle(
    items: AsyncIterable[Emitted], idle_s: float, on_idle: Any
) -> AsyncIterator[Emitted]:
    """Iterate an async iterable; whenever the next item takes longer than ``idle_s``,
    await ``on_idle()`` (ship what is buffered) while waiting."""
    it = aiter(items)
    while True:
        task: asyncio.Future[Emitted] = asyncio.ensure_future(anext(it))
        done, _ = await asyncio.wait({task}, timeout=idle_s)
        if not done:
            await on_idle()
        try:
            yield await task
        except StopAsyncIteration:
            return


async def produce(
    bootstrap: str,
    topic: str,
    emitted: Iterable[Emitted] | AsyncIterable[Emitted],
    rate: float | None = None,
    progress: bool = False,
    *,
    linger_ms: int = 10,
    max_batch_size: int = 256 * 1024,
    chunk: int = 20_000,
    method: str = "batch",
    events_per_message: int = 1,
    client_id: str = "civicpulse-simulator",
) -> int:
    """Send every message (key, value) to ``topic``; return how many were sent.

    ``rate``: pace to that many messages per second (None: as fast as possible).
    ``progress``: show a rich progress bar. ``emitted`` may be an async iterable (e.g.
    ``live_stream``): buffered messages are shipped whenever it stalls.
    ``method="send"`` uses per-message ``producer.send()`` instead of batch building.
    ``events_per_message`` > 1 packs events bound for the same partition into NDJSON
    batch messages (streams.contract.framing); the count returned is still of events.
    Waits for every message to be acknowledged (acks=all) before returning.
    """
    if method not in ("batch", "send"):
        raise ValueError("method must be 'batch' or 'send'")
    if events_per_message > 1 and method != "batch":
        raise ValueError("events_per_message needs method='batch'")
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=linger_ms,
        max_batch_size=max_batch_size,
        client_id=client_id,
    )
    await producer.start()
    bar: Any = None
    try:
        partitions = sorted(await producer.partitions_for(topic))
        sender = _BatchSender(producer, topic, partitions, events_per_message)
        futures: list[asyncio.Future[Any]] = []

        async def ship() -> None:
            if method == "batch":
                await sender.drain()
            elif futures:
                batch = futures[:]
                futures.clear()
                await asyncio.gather(*batch)

        if progress:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            total = len(emitted) if isinstance(emitted, Sized) else None
            bar = Progress(
                TextColumn(f"producing to {topic}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>9} msg/s"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            bar.start()
            task_id = bar.add_task("produce", total=total, rate="-")

        source: AsyncIterator[Emitted] | Iterator[Emitted]
        if isinstance(emitted, AsyncIterable):
            source = _aiter_with_idle(emitted, linger_ms / 1000, ship)
        else:
            source = iter(emitted)

        count = 0
        started = time.perf_counter()
        pace_every = max(1, int(rate / 100)) if rate else 0

        async def on_message(em: Emitted) -> None:
            nonlocal count
            if method == "batch":
                await sender.add_event(em.key, em.value)
            else:
                futures.append(await producer.send(topic, em.value, key=em.key))
            count += 1
            if count % chunk == 0:
                await ship()
                if bar is not None:
                    elapsed = time.perf_counter() - started
                    bar.update(task_id, completed=count, rate=f"{count / elapsed:,.0f}")
            if rate and count % pace_every == 0:
                ahead = started + count / rate - time.perf_counter()
                if ahead > 0:
                    await ship()  # paced messages go out now, not at the next chunk
                    await asyncio.sleep(ahead)

        if isinstance(source, AsyncIterator):
            async for em in source:
                await on_message(em)
        else:
            for em in source:
                await on_message(em)
        await ship()
        await producer.flush()
        if bar is not None:
            elapsed = time.perf_counter() - started
            bar.update(
                task_id, completed=count, total=count, rate=f"{count / max(elapsed, 1e-9):,.0f}"
            )
        return count
    finally:
        if bar is not None:
            bar.stop()
        await producer.stop()
