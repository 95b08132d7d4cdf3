"""The baseline every throughput benchmark prints beside its own number: a plain aiokafka
consumer reading a topic from the start and counting events (the events inside NDJSON
batch messages too), the ceiling of anything that reads Kafka from Python."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer

from streams.contract.framing import split_items


async def raw_consume_rate(bootstrap: str, topic: str, expected: int) -> float:
    """Events per second until ``expected`` events were read."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        seen = 0
        started = time.perf_counter()
        while seen < expected:
            for messages in (await consumer.getmany(timeout_ms=1000, max_records=50_000)).values():
                for message in messages:
                    headers = [(k, bytes(v)) for k, v in message.headers or ()]
                    seen += sum(1 for _ in split_items(message.value, headers))
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()
