"""Imported events in event-time order: the order a live feed would have sent them.

An export lists records, and each record's events span its whole life (opened in
January, closed in March). Sent record by record, every event after the first record's
closure would arrive behind the event-time watermark: the worker and the replay would
record nearly the whole history as late events, and the boards' late-event figures
(a sign of backdating in live data) would say nothing. Sorted by event time, an import
arrives as the city's system would have sent it. Ties keep the record order, so equal
instants stay in lifecycle order and the output is the same on every run.

Memory is bounded: runs of ``run_events`` events (each kept as its event time, key and
bytes, not as objects) are sorted in memory and spilled to temporary files, then merged,
at most ``MAX_OPEN_RUNS`` at a time (``heapq.merge`` takes equal keys from earlier runs
first, so the merge keeps the record order of ties too). An import that fits one run never
touches the disk.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import struct
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Protocol

from streams.sources.importers.common import ImportedEvent

__all__ = ["MAX_OPEN_RUNS", "RUN_EVENTS", "Keyed", "SortedEvent", "in_event_time"]

#: events sorted in memory at a time (about 125 MB of LA 311 events)
RUN_EVENTS = 250_000
#: runs merged at once (open files); more are merged in passes
MAX_OPEN_RUNS = 200

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
#: event time (µs since the epoch), key length, value length
_HEADER = struct.Struct(">qII")


class Keyed(Protocol):
    """What the sinks need of an event: its Kafka key (the case id) and its bytes."""

    @property
    def key(self) -> bytes: ...

    @property
    def value(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class SortedEvent:
    """An event of a sorted run: its key and canonical bytes."""

    key: bytes
    value: bytes


def in_event_time(
    events: Iterable[ImportedEvent],
    spill_dir: Path | None = None,
    run_events: int = RUN_EVENTS,
) -> Iterator[Keyed]:
    """``events`` by event time, ties in input order; spill files (under ``spill_dir``,
    default the system's temporary directory) are removed when the iteration ends,
    however it ends."""
    if run_events < 1:
        raise ValueError("run_events must be >= 1")
    source = iter(events)
    run = _next_run(source, run_events)
    if len(run) < run_events:  # the whole import fits one run: no disk
        yield from (event for _, event in run)
        return
    with tempfile.TemporaryDirectory(prefix="civicpulse-import-sort-", dir=spill_dir) as tmp:
        paths: list[Path] = []
        while run:
            path = Path(tmp) / f"run-{len(paths):05d}"
            _write_run(path, run)
            paths.append(path)
            run = _next_run(source, run_events)
        while len(paths) > MAX_OPEN_RUNS:  # merge in passes: open files are limited
            merged_paths = []
            for start in range(0, len(paths), MAX_OPEN_RUNS):
                group = paths[start : start + MAX_OPEN_RUNS]
                path = Path(tmp) / f"pass-{len(paths)}-{start:07d}"
                with _merged(group) as merged:
                    _write_run(path, merged)
                for done in group:
                    done.unlink()
                merged_paths.append(path)
            paths = merged_paths
        with _merged(paths) as merged:
            yield from (event for _, event in merged)


@contextlib.contextmanager
def _merged(paths: list[Path]) -> Iterator[Iterator[tuple[int, SortedEvent]]]:
    """The runs in ``paths`` merged by event time; equal times in the order of
    ``paths`` (consecutive runs of the input), then of each run."""
    files = [path.open("rb") for path in paths]
    try:
        yield heapq.merge(*(_read_run(f) for f in files), key=lambda item: item[0])
    finally:
        for f in files:
            f.close()


def _next_run(source: Iterator[ImportedEvent], size: int) -> list[tuple[int, SortedEvent]]:
    run = [
        ((imported.event.occurred_at - _EPOCH) // _US, SortedEvent(imported.key, imported.value))
        for imported in itertools.islice(source, size)
    ]
    run.sort(key=lambda item: item[0])  # stable: ties keep the input order
    return run


def _write_run(path: Path, run: Iterable[tuple[int, SortedEvent]]) -> None:
    with path.open("wb") as out:
        for at, event in run:
            out.write(_HEADER.pack(at, len(event.key), len(event.value)))
            out.write(event.key)
            out.write(event.value)


def _read_run(f: BinaryIO) -> Iterator[tuple[int, SortedEvent]]:
    size = _HEADER.size
    while header := f.read(size):
        at, key_len, value_len = _HEADER.unpack(header)
        yield at, SortedEvent(f.read(key_len), f.read(value_len))
