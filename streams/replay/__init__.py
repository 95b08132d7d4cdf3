"""Replay: recompute every derived table from a history of events, into a new generation.

A batch job outside Faust that drives the same steps as the live worker (the ingest
step's decoders, ``CaseState``, ``steps.case_sla_of``, the SLA alert rules with event time
as ``now``), so a replay and a live run over the same events store the same rows. It runs
in the command's process, or inside the worker that owns an embedded store
(``streams.replay.service``). Documentation: docs/replay.md.

Flow (``streams.replay.engine``):

1. plan (``plan``): read the source once, streaming (file, topic, archive: ``sources``);
   note each event's case (a cheap JSON parse) and append its raw bytes and position to
   its case-hash bucket's spill file (``<work_dir>/buckets/NNNN.bin``: ``buckets``);
   compute ``late_events`` in source order;
2. per bucket (in parallel over ``workers`` processes: ``fold``): read the bucket's file,
   validate every event, fold whole cases, evaluate their SLA clocks once, raise their
   alerts by the event-time watermark, and return the rows as columns; memory is one
   bucket per process;
3. write each bucket's rows into the replay database and checkpoint; an interrupted
   replay rerun with the same id plans again and skips the buckets already written;
4. from the archive, catch up with what the live worker archived meanwhile
   (``streams.replay.catch_up``);
5. when every bucket is written, switch (``streams.store.generations.switch``).
"""

from streams.replay.buckets import bucket_count, bucket_path, read_bucket
from streams.replay.engine import ReplayResult, policies_hash, run_replay
from streams.replay.errors import (
    AfterSwitchError,
    ArchivePending,
    CatchUpIncomplete,
    ReplayError,
    ReplayInputError,
    ReplayInterrupted,
)
from streams.replay.fold import BucketResult, BucketTask, fold_bucket
from streams.replay.options import ReplayOptions
from streams.replay.plan import plan
from streams.replay.progress import Progress
from streams.replay.sources import (
    FILE_SUFFIXES,
    PARQUET_COLUMN,
    Position,
    SourceData,
    export_parquet,
    read_archive,
    read_file,
    read_topic,
)

__all__ = [
    "FILE_SUFFIXES",
    "PARQUET_COLUMN",
    "AfterSwitchError",
    "ArchivePending",
    "BucketResult",
    "BucketTask",
    "CatchUpIncomplete",
    "Position",
    "Progress",
    "ReplayError",
    "ReplayInputError",
    "ReplayInterrupted",
    "ReplayOptions",
    "ReplayResult",
    "SourceData",
    "bucket_count",
    "bucket_path",
    "export_parquet",
    "fold_bucket",
    "plan",
    "policies_hash",
    "read_archive",
    "read_bucket",
    "read_file",
    "read_topic",
    "run_replay",
]
