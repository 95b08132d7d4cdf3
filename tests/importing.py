"""Helpers shared by the importer tests: where the shared real data lives, reading
imported events back from Kafka."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from streams.contract import Event, decode_event
from streams.contract.framing import split_items

REPO = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """``$CIVICPULSE_SHARED_DIR``, else ``<repo>/../shared``."""
    return Path(os.environ.get("CIVICPULSE_SHARED_DIR") or REPO.parent / "shared")


def shared_file(relative: str) -> Path:
    """A file of the shared real data; the test FAILS (never skips) when it is absent."""
    path = shared_dir() / relative
    if not path.is_file():
        pytest.fail(
            f"real data file {path} is missing: these tests need it. Put the shared data "
            "next to the repository (../shared) or point CIVICPULSE_SHARED_DIR at it.",
            pytrace=False,
        )
    return path


async def read_events(
    bootstrap: str, topic: str, expected: int, timeout: float = 90
) -> list[Event]:
    """Every event on ``topic`` (NDJSON batch messages split), read from the start until
    ``expected`` events came, plus a short wait for any extra."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    events: list[Event] = []

    def take(batch: dict[Any, list[Any]]) -> None:
        for messages in batch.values():
            for message in messages:
                headers = [(k, bytes(v)) for k, v in message.headers]
                events.extend(decode_event(item) for _, item in split_items(message.value, headers))

    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(events) < expected and loop.time() < deadline:
            take(await consumer.getmany(timeout_ms=1000))
        take(await consumer.getmany(timeout_ms=1500))
    finally:
        await consumer.stop()
    return events
