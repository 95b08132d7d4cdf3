"""Reading the alert topic for an operator: ``civicpulse alerts tail``.

A plain consumer without a group (it never moves anyone's offsets), from the end of the
topic by default or from its beginning, filtered by agency and type.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer

from streams.contract.alerts import InvalidAlert, decode_alert


@dataclass(frozen=True, slots=True)
class TailItem:
    """A decoded alert, or the reason a message of the topic is not one."""

    alert: dict[str, Any] | None
    error: str | None
    partition: int
    offset: int


async def tail_alerts(
    bootstrap: str,
    topic: str,
    *,
    from_beginning: bool = False,
    agencies: Collection[str] = (),
    types: Collection[str] = (),
    idle_timeout: float | None = None,
) -> AsyncIterator[TailItem]:
    """Alerts as they arrive; stops after ``idle_timeout`` seconds without a message
    (None: never)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    try:
        idle = 0.0
        while True:
            batches = await consumer.getmany(timeout_ms=500)
            if not batches:
                idle += 0.5
                if idle_timeout is not None and idle >= idle_timeout:
                    return
                continue
            idle = 0.0
            for records in batches.values():
                for record in records:
                    try:
                        alert = decode_alert(record.value or b"")
                    except InvalidAlert as err:
                        yield TailItem(None, str(err), record.partition, record.offset)
                        continue
                    if agencies and alert["agency"] not in agencies:
                        continue
                    if types and alert["type"] not in types:
                        continue
                    yield TailItem(alert, None, record.partition, record.offset)
    finally:
        await consumer.stop()
