"""Spill files, one per case-hash bucket: the plan pass writes each raw event to its
case's bucket on disk so that a fold process later holds one bucket in memory, never the
whole source, and an interrupted replay can skip the buckets already written.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

from streams.replay.options import ReplayOptions
from streams.replay.sources import Position

#: a spilled event: index in the source, position (3 numbers), length of the raw bytes,
#: and whether the plan pass found it valid (the fold then skips the schema check)
_RECORD = struct.Struct("<qqqqI?")
#: write buffer per open bucket file (hundreds may be open at once)
SPILL_BUFFER = 64 * 1024


def bucket_path(directory: Path, bucket: int) -> Path:
    return directory / f"{bucket:04d}.bin"


def write_bucket(path: Path, events: Iterable[tuple[bytes, Position]]) -> None:
    """A spill file of ``events`` (numbered from 0, none marked valid), as the plan pass
    writes them (which inlines this, one record per event of the source)."""
    with path.open("wb") as out:
        for index, (raw, position) in enumerate(events):
            out.write(_RECORD.pack(index, *position, len(raw), False))
            out.write(raw)


def read_bucket(path: Path) -> Iterator[tuple[int, Position, bytes, bool]]:
    """The events of one spill file, in source order: (index in the source, position,
    raw, found valid by the plan pass)."""
    data = path.read_bytes()
    unpack = _RECORD.unpack_from
    size = _RECORD.size
    offset = 0
    end = len(data)
    while offset < end:
        index, p0, p1, p2, length, valid = unpack(data, offset)
        offset += size
        yield index, (p0, p1, p2), data[offset : offset + length], valid
        offset += length


def bucket_count(options: ReplayOptions, estimate: int | None) -> int:
    """``options.buckets``, or more so that a bucket holds about ``bucket_events``."""
    wanted = -(-(estimate or 0) // max(1, options.bucket_events))
    return max(1, options.buckets, wanted)
