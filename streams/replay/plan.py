"""The plan pass: the one read of the source. It spills each event to its case's bucket
and finds the late events, which depend on source order across cases (per-partition
watermarks) and so cannot be found bucket by bucket. An event without even a case id
stops the replay here, before anything is written.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from streams.app.steps import partition_for
from streams.contract import InvalidEvent, conforms, decode_event
from streams.contract.codec import ceil_ms, ms_instant, timestamp_ms
from streams.replay.buckets import _RECORD, SPILL_BUFFER, bucket_path
from streams.replay.errors import ReplayInputError, ReplayInterrupted
from streams.replay.options import ReplayOptions
from streams.replay.progress import PROGRESS_EVERY
from streams.replay.sources import Position, SourceData


def _event_ms(text: Any) -> int | None:
    """An event time as integer milliseconds since the epoch (the contract keeps
    milliseconds): comparing integers is what makes the plan pass cheap, and the few late
    events are turned back into datetimes at the end."""
    if not isinstance(text, str):
        return None
    try:
        return timestamp_ms(text)
    except ValueError:
        return None


def _ceil_ms(bound: datetime | None) -> int | None:
    """A ``--since`` / ``--until`` bound in milliseconds, rounded up: event times are
    whole milliseconds, so ``at < bound`` holds exactly when ``at_ms < ceil(bound)``."""
    return None if bound is None else ceil_ms(bound)


#: (index in the source, case_id, event_id, type, occurred_at, watermark) of a late event
LateRow = tuple[int, str, str, str, datetime, datetime]


@dataclass(slots=True)
class _Plan:
    directory: Path
    #: events spilled to each bucket's file
    counts: list[int]
    #: the late events
    late: list[LateRow]
    watermark: datetime | None
    events: int
    #: where lateness stands at the end: per-partition watermarks and the newest event
    #: time (ms), from which a catch-up goes on
    watermarks: dict[int, int]
    newest: int | None


def plan(
    source: SourceData,
    options: ReplayOptions,
    directory: Path,
    buckets: int,
    events: Iterable[tuple[bytes, Position]] | None = None,
    skip: int = 0,
    should_stop: Callable[[], bool] | None = None,
    watermarks: dict[int, int] | None = None,
    newest: int | None = None,
) -> _Plan:
    """Spill each raw event to its case's bucket file; find late events in source order.

    Memory: the per-partition watermarks and the late events, whatever the input size.
    Buckets below ``skip`` (already written by an interrupted run) are counted, not
    spilled. An event that is not even a JSON object with a case id stops the replay
    here (mode "stop"), before anything is written; in "dead-letter" mode it goes to
    bucket 0, where validation turns it into a dead letter with its reason.
    ``watermarks`` and ``newest`` (ms) go on from where an earlier plan ended.
    """
    directory.mkdir(parents=True, exist_ok=True)
    files: list[Any] = [
        None if b < skip else bucket_path(directory, b).open("wb", buffering=SPILL_BUFFER)
        for b in range(buckets)
    ]
    counts = [0] * buckets
    watermarks = {} if watermarks is None else dict(watermarks)
    #: (index, case_id, event_id, type, occurred_at ms, watermark ms) of late events
    late_ms: list[tuple[int, str, str, str, int, int]] = []
    grace = options.late_grace // timedelta(milliseconds=1)
    since = _ceil_ms(options.since)
    until = _ceil_ms(options.until)
    partitions = options.partitions
    # The live worker's watermarks move on valid events only, so the plan checks each
    # event (the archive's were checked when ingested): in "dead-letter" mode an invalid
    # one moves nothing, in "stop" mode the first one in source order stops the replay
    # before anything is written. The verdict travels in the spill record, and the fold
    # skips the schema check of the events found valid.
    vet = not source.trusted
    stop = options.invalid == "stop"
    loads = orjson.loads
    pack = _RECORD.pack
    crc32 = zlib.crc32
    index = -1
    try:
        for index, (raw, position) in enumerate(source.events if events is None else events):
            if should_stop is not None and not index % PROGRESS_EVERY and should_stop():
                raise ReplayInterrupted("interrupted")
            try:
                doc = loads(raw)
                case_id = doc["case_id"]
                if not isinstance(case_id, str):
                    raise TypeError
            except Exception:
                if options.invalid == "stop":
                    _stop_at(source, position, raw)
                bucket = 0
                doc = None
            else:
                bucket = crc32(case_id.encode()) % buckets
            counts[bucket] += 1
            valid = vet and doc is not None and conforms(doc)
            if stop and vet and not valid:
                # the pre-check only says "valid"; the full validator decides and explains
                _stop_if_invalid(source, position, raw)
                valid = True
            out = files[bucket]
            if out is not None:
                out.write(pack(index, *position, len(raw), valid))
                out.write(raw)
            if doc is None or (vet and not valid):
                continue
            at = _event_ms(doc.get("occurred_at"))
            if at is None:
                continue
            if since is not None and at < since:
                continue
            if until is not None and at >= until:
                continue
            if newest is None or at > newest:
                newest = at
            partition = partition_for(case_id, partitions)
            mark = watermarks.get(partition)
            if mark is None or at > mark:
                watermarks[partition] = at
            elif mark - at > grace:
                late_ms.append(
                    (index, case_id, str(doc.get("event_id")), str(doc.get("type")), at, mark)
                )
    finally:
        for out in files:
            if out is not None:
                out.close()
    late = [(i, c, e, t, ms_instant(at), ms_instant(mark)) for i, c, e, t, at, mark in late_ms]
    return _Plan(
        directory,
        counts,
        late,
        None if newest is None else ms_instant(newest),
        index + 1,
        watermarks,
        newest,
    )


def _stop_at(source: SourceData, position: Position, raw: bytes) -> None:
    _stop_if_invalid(source, position, raw)
    raise ReplayInputError(f"{source.where(position)}: invalid event")


def _stop_if_invalid(source: SourceData, position: Position, raw: bytes) -> None:
    try:
        decode_event(raw)
    except InvalidEvent as err:
        raise ReplayInputError(
            f"{source.where(position)}: invalid event ({err.reason}): {err.detail}"
        ) from None
