"""Where imported events go: the raw Kafka topic (NDJSON batch messages, through the
simulator's producer) or a JSON Lines file (one canonical event per line, what a replay
reads). Rejected records go to a JSON Lines file of their own."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

from streams.sources.importers.common import ImportReport
from streams.sources.importers.event_time import Keyed

__all__ = ["produce_events", "write_jsonl", "write_rejects"]


def write_jsonl(events: Iterable[Keyed], path: str | Path) -> int:
    """Write the events, one per line, to ``path``; return how many.

    The file appears only when every event was written (a ``.part`` file is renamed),
    so an import that stops half-way leaves no half file behind.
    """
    path = Path(path)
    part = path.with_name(path.name + ".part")
    count = 0
    try:
        with part.open("wb") as out:
            for imported in events:
                out.write(imported.value)
                out.write(b"\n")
                count += 1
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    return count


def write_rejects(report: ImportReport, path: str | Path) -> int:
    """One JSON object per rejected record (number, line, reason, detail, source id)."""
    with Path(path).open("wb") as out:
        for reject in report.rejects:
            out.write(orjson.dumps(reject.to_dict()))
            out.write(b"\n")
    return report.rejected


async def produce_events(
    bootstrap: str,
    topic: str,
    events: Iterable[Keyed],
    *,
    events_per_message: int = 200,
) -> int:
    """Send the events to ``topic`` (key = case id; NDJSON batches of up to
    ``events_per_message`` events per message); return how many events were sent."""
    from streams.sources.simulator import Emitted, produce

    def emitted() -> Iterator[Emitted]:
        for imported in events:
            yield Emitted(imported.key, imported.value, "valid")

    return await produce(
        bootstrap,
        topic,
        emitted(),
        events_per_message=events_per_message,
        client_id="civicpulse-import",
    )
