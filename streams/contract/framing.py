"""How events sit in Kafka messages.

A message carries one event (the contract's default), or, when it has the header
``civicpulse-batch: ndjson``, several events, one JSON document per line. Bulk producers
use batch messages because a stream processor's cost is per message, not per event.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

BATCH_HEADER = "civicpulse-batch"
NDJSON = b"ndjson"
BATCH_HEADERS: tuple[tuple[str, bytes], ...] = ((BATCH_HEADER, NDJSON),)


def is_batch(headers: Sequence[tuple[str, bytes]]) -> bool:
    return any(key == BATCH_HEADER and value == NDJSON for key, value in headers)


def split_items(value: bytes, headers: Sequence[tuple[str, bytes]]) -> Iterator[tuple[int, bytes]]:
    """(line, bytes) of each event a message carries; blank lines of a batch are skipped."""
    if not is_batch(headers):
        yield 0, value
        return
    for line, item in enumerate(value.split(b"\n")):
        if item.strip():
            yield line, item


def packable(value: bytes) -> bool:
    """Whether a message value can travel as one line of a batch without changing.

    Multi-line and blank values would be split or skipped: they travel alone.
    """
    return b"\n" not in value and bool(value.strip())
