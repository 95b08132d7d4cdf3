"""Replay: recompute every derived table from a history of events, into a new generation.

A batch job outside Faust that drives the same steps as the live worker (the ingest
step's decoders, ``CaseState``, ``steps.case_sla_of``, the SLA alert rules with event time
as ``now``), so a replay and a live run over the same events store the same rows. It runs
in the command's process, or inside the worker that owns an embedded store
(``streams.app.replay_service``). Documentation: docs/replay.md.

Flow:

1. plan: read the source once, streaming (file, topic, archive); note each event's case
   (a cheap JSON parse) and append its raw bytes and position to its case-hash bucket's
   spill file (``<work_dir>/buckets/NNNN.bin``); compute ``late_events`` in source order;
2. per bucket (in parallel over ``workers`` processes): read the bucket's file, validate
   every event, fold whole cases, evaluate their SLA clocks once, raise their alerts by
   the event-time watermark, and return the rows as columns; memory is one bucket per
   process;
3. write each bucket's rows into the replay database and checkpoint; an interrupted
   replay rerun with the same id plans again and skips the buckets already written;
4. when every bucket is written, switch (``streams.store.generations.switch``).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import itertools
import multiprocessing
import operator
import os
import re
import shutil
import struct
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from streams.app.steps import case_sla_of, partition_for
from streams.contract import Event, InvalidEvent, decode_event, decode_validated
from streams.contract.framing import split_items
from streams.core.case_state import CaseState
from streams.core.facts import CASE_FACT_COLUMNS
from streams.core.sla.alerts import ALERT_DIMENSIONS, due_alerts
from streams.core.sla.policy import PolicySet, load_policies
from streams.core.sla.rows import (
    CASE_CYCLES_TABLE,
    CASE_SLA_COLUMNS,
    CASE_SLA_TABLE,
    CYCLE_COLUMNS,
)
from streams.store import Store
from streams.store import generations as gens
from streams.store.client import open_private_client
from streams.store.rows import (
    CASE_FACTS_TABLE,
    CASE_FACTS_TABLE_COLUMNS,
    DEAD_LETTER_COLUMNS,
    DEAD_LETTERS_TABLE,
    LATE_EVENT_COLUMNS,
    LATE_EVENTS_TABLE,
    SLA_ALERT_COLUMNS,
    SLA_ALERTS_TABLE,
)

FILE_SUFFIXES = (".jsonl", ".ndjson", ".parquet")
#: the column of a replay Parquet file: one event's JSON per row
PARQUET_COLUMN = "event"


class ReplayError(Exception):
    """A replay cannot run as asked."""


class ReplayInputError(ReplayError):
    """The input is unreadable or holds an invalid event; the message names the file (or
    topic) and the position."""


# --- sources -----------------------------------------------------------------------------

#: where an event is in its source, as up to three numbers (file line; Parquet row;
#: topic partition, offset, line; archive row): rendered by ``SourceData.where``
Position = tuple[int, int, int]


@dataclass(slots=True)
class SourceData:
    """A source's raw events, read once, in source order (never all in memory)."""

    name: str  # what the generation record shows: file:..., topic:..., archive
    #: (raw event, position) in source order; iterated once
    events: Iterable[tuple[bytes, Position]]
    #: human position of an event (file:line, topic/partition/offset/line, ...)
    where: Callable[[Position], str]
    #: equal for an unchanged source (resume check); a source that only knows it once
    #: read (the archive) sets it when ``events`` is exhausted
    fingerprint: str
    #: how many events the source probably holds (chooses the bucket count), or None;
    #: a topic sets it once its first messages are read
    estimate: int | None = None
    #: events already validated by the live ingest step (the archive): decoded with the
    #: trusted fast path ``decode_validated``, which still dead-letters malformed bytes
    trusted: bool = False
    #: topic sources: offsets to commit in the replay's consumer group when done
    commit: Callable[[], None] | None = None


def read_file(path: Path, progress: Progress | None = None) -> SourceData:
    """A JSON Lines (``.jsonl``, ``.ndjson``: one event per line) or Parquet (``.parquet``:
    one string column ``event`` holding each event's JSON) file, read as it is replayed."""
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise ReplayInputError(
            f"{path}: unknown format {suffix or '(no suffix)'!r}: replay reads "
            f"{', '.join(FILE_SUFFIXES)} files"
        )
    if not path.is_file():
        raise ReplayInputError(f"{path}: no such file")
    stat = path.stat()
    fingerprint = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    if suffix == ".parquet":
        return _read_parquet(path, fingerprint, progress)
    lines = _count_lines(path)
    return SourceData(
        name=f"file:{path}",
        events=_jsonl_events(path, lines, progress),
        where=lambda at: f"{path}:{at[0]}",
        fingerprint=fingerprint,
        estimate=lines,
    )


def _count_lines(path: Path) -> int:
    count = 0
    last = b"\n"
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 22):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def _jsonl_events(
    path: Path, lines: int, progress: Progress | None
) -> Iterator[tuple[bytes, Position]]:
    done = 0
    with path.open("rb", buffering=1 << 20) as stream:
        for number, line in enumerate(stream, start=1):
            line = line.rstrip(b"\r\n")
            if line.strip():
                done += 1
                yield line, (number, 0, 0)
                if progress is not None and not done % PROGRESS_EVERY:
                    progress("read", done, lines)
    if progress is not None:
        progress("read", done, done)


def _read_parquet(path: Path, fingerprint: str, progress: Progress | None) -> SourceData:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise ReplayInputError(f"{path}: not a readable Parquet file: {err}") from err
    names = parquet.schema_arrow.names
    if PARQUET_COLUMN not in names:
        raise ReplayInputError(
            f"{path}: a replay Parquet file has a string column {PARQUET_COLUMN!r} holding "
            f"each event's JSON; found columns {names}"
        )
    total = parquet.metadata.num_rows

    def events() -> Iterator[tuple[bytes, Position]]:
        row = 0
        for group in range(parquet.num_row_groups):  # one row group in memory at a time
            try:
                column = parquet.read_row_group(group, columns=[PARQUET_COLUMN]).column(0)
            except (pa.ArrowException, OSError) as err:
                raise ReplayInputError(
                    f"{path}: row group {group} (from row {row + 1}) is unreadable "
                    f"(truncated or corrupt Parquet): {err}"
                ) from err
            for value in column.to_pylist():
                row += 1
                if value is None:
                    yield b"", (row, 0, 0)
                else:
                    yield (value.encode() if isinstance(value, str) else bytes(value)), (row, 0, 0)
            if progress is not None:
                progress("read", row, total)

    return SourceData(
        name=f"file:{path}",
        events=events(),
        where=lambda at: f"{path}: row {at[0]}",
        fingerprint=fingerprint,
        estimate=total,
    )


def export_parquet(source: Path, target: Path, rows_per_group: int = 100_000) -> int:
    """Copy a JSON Lines file of events into a replay Parquet file; returns the rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(PARQUET_COLUMN, pa.string())])
    rows = 0
    with pq.ParquetWriter(target, schema, compression="zstd") as writer:
        group: list[str] = []
        for raw, _ in read_file(source).events:
            group.append(raw.decode())
            if len(group) >= rows_per_group:
                writer.write_table(pa.table({PARQUET_COLUMN: pa.array(group, pa.string())}))
                rows += len(group)
                group = []
        if group or not rows:
            writer.write_table(pa.table({PARQUET_COLUMN: pa.array(group, pa.string())}))
            rows += len(group)
    return rows


def read_topic(
    bootstrap: str,
    topic: str,
    group: str,
    from_offset: int | None = None,
    to_offset: int | None = None,
    progress: Progress | None = None,
) -> SourceData:
    """Every event of ``topic`` from ``from_offset`` (default: the beginning) up to
    ``to_offset`` included (default: the end when the replay started), in every
    partition, through the consumer group ``group``, read batch by batch as it is
    replayed."""
    loop = asyncio.new_event_loop()
    try:
        consumer, tps, start, stop = loop.run_until_complete(
            _open_topic(bootstrap, topic, group, from_offset, to_offset)
        )
    except BaseException:
        loop.close()
        raise
    total = sum(max(0, stop[tp] - start[tp]) for tp in tps)
    fingerprint = f"{topic}|" + ",".join(f"{tp.partition}:{start[tp]}-{stop[tp]}" for tp in tps)
    data = SourceData(
        name=f"topic:{topic}",
        events=iter(()),
        where=lambda at: "topic {}/partition {}/offset {}/line {}".format(topic, *at),
        fingerprint=fingerprint,
        estimate=total,
        commit=lambda: asyncio.run(_commit(bootstrap, group, topic, stop)),
    )

    def events() -> Iterator[tuple[bytes, Position]]:
        pending = {tp for tp in tps if stop[tp] > start[tp]}
        done = 0
        items = 0
        try:
            while pending:
                batch = loop.run_until_complete(
                    consumer.getmany(*pending, timeout_ms=1000, max_records=20_000)
                )
                out: list[tuple[bytes, Position]] = []
                for tp, messages in batch.items():
                    for message in messages:
                        if message.offset >= stop[tp]:
                            pending.discard(tp)
                            break
                        headers = [(k, bytes(v)) for k, v in message.headers or ()]
                        for line, item in split_items(message.value or b"", headers):
                            out.append((item, (tp.partition, message.offset, line)))
                        done += 1
                        if message.offset + 1 >= stop[tp]:
                            pending.discard(tp)
                items += len(out)
                if done and data.estimate == total:
                    data.estimate = total * items // done  # messages may carry batches
                if progress is not None:
                    progress("read", done, total)
                yield from out
        finally:
            loop.run_until_complete(consumer.stop())
            loop.close()

    data.events = events()
    return data


async def _open_topic(
    bootstrap: str, topic: str, group: str, from_offset: int | None, to_offset: int | None
) -> tuple[Any, list[Any], dict[Any, int], dict[Any, int]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = await _partitions(bootstrap, topic)
        if not partitions:
            raise ReplayInputError(f"topic {topic}: no such topic (or no partitions)")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        beginnings = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        start: dict[Any, int] = {}
        stop: dict[Any, int] = {}
        for tp in tps:
            start[tp] = max(beginnings[tp], from_offset or 0)
            stop[tp] = ends[tp] if to_offset is None else min(ends[tp], to_offset + 1)
            consumer.seek(tp, start[tp])
    except BaseException:
        await consumer.stop()
        raise
    return consumer, tps, start, stop


async def _partitions(bootstrap: str, topic: str) -> set[int]:
    """The topic's partitions (empty when it does not exist)."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        found: set[int] = set(await producer.partitions_for(topic))
        return found
    except KafkaError:
        return set()
    finally:
        await producer.stop()


async def _commit(bootstrap: str, group: str, topic: str, stop: dict[Any, int]) -> None:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(stop))
        await consumer.commit(dict(stop.items()))
    finally:
        await consumer.stop()


def read_archive(
    store: Store,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: Progress | None = None,
) -> SourceData:
    """The raw archive (``events`` of the live database), in ingestion order, streamed
    block by block through a client of its own (the store's client stays free for the
    live worker's writes)."""
    conditions = ["1"]
    params: dict[str, Any] = {}
    if since is not None:
        conditions.append("occurred_at >= {since:DateTime64(3, 'UTC')}")
        params["since"] = since
    if until is not None:
        conditions.append("occurred_at < {until:DateTime64(3, 'UTC')}")
        params["until"] = until
    where = " AND ".join(conditions)
    total = int(
        store.client.query(
            f"SELECT count() FROM events FINAL WHERE {where}", parameters=params
        ).result_rows[0][0]
    )
    database = store.client.database or "default"
    data = SourceData(
        name=f"archive:{database}.events",
        events=iter(()),
        where=lambda at: f"archive row {at[0]}",
        fingerprint="",
        estimate=total,
        trusted=True,
    )

    def events() -> Iterator[tuple[bytes, Position]]:
        client = open_private_client(store.dsn, database=database)
        digest = hashlib.sha256()
        row = 0
        try:
            with client.query_column_block_stream(
                f"SELECT event_json FROM events FINAL WHERE {where} "
                "ORDER BY ingested_at, kafka_partition, kafka_offset, case_id, event_id",
                parameters=params,
            ) as blocks:
                for block in blocks:
                    for value in block[0]:
                        raw = value.encode() if isinstance(value, str) else bytes(value)
                        digest.update(raw)
                        row += 1
                        yield raw, (row, 0, 0)
                    if progress is not None:
                        progress("read", row, total)
        finally:
            client.close()
        data.fingerprint = f"{since}|{until}|{row}|{digest.hexdigest()}"

    data.events = events()
    return data


# --- spill files: one per case-hash bucket ----------------------------------------------

#: a spilled event: index in the source, position (3 numbers), length of the raw bytes
_RECORD = struct.Struct("<qqqqI")
#: write buffer per open bucket file (hundreds may be open at once)
SPILL_BUFFER = 64 * 1024
#: progress and cancellation are checked every so many events of the plan pass
PROGRESS_EVERY = 20_000


def bucket_path(directory: Path, bucket: int) -> Path:
    return directory / f"{bucket:04d}.bin"


def read_bucket(path: Path) -> Iterator[tuple[int, Position, bytes]]:
    """The events of one spill file: (index in the source, position, raw), in source order."""
    data = path.read_bytes()
    unpack = _RECORD.unpack_from
    size = _RECORD.size
    offset = 0
    end = len(data)
    while offset < end:
        index, p0, p1, p2, length = unpack(data, offset)
        offset += size
        yield index, (p0, p1, p2), data[offset : offset + length]
        offset += length


# --- the per-bucket fold (runs in worker processes) --------------------------------------

#: (index in the source, reason, detail, case_id, position, raw) of an invalid event
Invalid = tuple[int, str, str, str, Position, bytes]


@dataclass(slots=True)
class BucketResult:
    bucket: int
    events: int = 0  # valid events (duplicates included)
    cases: int = 0
    #: table -> columns (lists in the table's column order)
    columns: dict[str, list[list[Any]]] = field(default_factory=dict)
    invalid: list[Invalid] = field(default_factory=list)
    seconds: float = 0.0


_policy_cache: dict[str, PolicySet] = {}


def _policies(path: str | None) -> PolicySet:
    key = path or ""
    loaded = _policy_cache.get(key)
    if loaded is None:
        loaded = load_policies(path) if path else load_policies()
        _policy_cache[key] = loaded
    return loaded


@dataclass(frozen=True, slots=True)
class BucketTask:
    bucket: int
    path: str  # the bucket's spill file: the fold holds one bucket in memory, no more
    trusted: bool  # events validated by the live ingest step: decode_validated
    policies_path: str | None
    watermark: datetime | None  # event-time "now" for the alerts
    since: datetime | None
    until: datetime | None
    updated_at: datetime
    generation: str
    #: table -> ClickHouse types of its columns (DateTime64 ones are sent as ticks)
    column_types: dict[str, Sequence[str]] = field(default_factory=dict)


def fold_bucket(task: BucketTask) -> BucketResult:
    """Validate, fold and evaluate every case of one bucket; rows as columns."""
    started = time.perf_counter()
    policies = _policies(task.policies_path)
    result = BucketResult(task.bucket)
    # The same decoders as the live worker: full validation (the ingest step's) for
    # outside input, the trusted fast path for events the ingest step already validated.
    decode = decode_validated if task.trusted else decode_event
    since, until = task.since, task.until
    by_case: dict[str, list[Event]] = {}
    events = 0
    for index, position, raw in read_bucket(Path(task.path)):
        try:
            event = decode(raw)
        except InvalidEvent as err:
            result.invalid.append((index, err.reason, err.detail, err.case_id or "", position, raw))
            continue
        if since is not None and event.occurred_at < since:
            continue
        if until is not None and event.occurred_at >= until:
            continue
        found = by_case.get(event.case_id)
        if found is None:
            by_case[event.case_id] = [event]
        else:
            found.append(event)
        events += 1
    result.events = events
    facts_rows: list[Any] = []
    sla_rows_: list[Any] = []
    cycle_rows: list[Any] = []
    alert_rows: list[list[Any]] = []
    worker = f"replay:{task.generation}"
    for case_id in sorted(by_case):
        # Source order = arrival order: the first copy of an event id wins, as live.
        state = CaseState(case_id, by_case.pop(case_id))
        facts = state.facts()
        facts_rows.append(facts)
        evaluation, sla_row, cycles = case_sla_of(state, facts, policies)
        sla_rows_.append(sla_row)
        cycle_rows.extend(cycles)
        if task.watermark is not None:
            dims = {name: str(getattr(facts, name)) for name in ALERT_DIMENSIONS}
            for alert in due_alerts(evaluation, task.watermark, dims):
                alert_rows.append(
                    [
                        alert.alert_id,
                        alert.type,
                        alert.case_id,
                        alert.target,
                        alert.cycle,
                        alert.threshold,
                        alert.fired_at,
                        alert.due_at,
                        # in event time, a timer fires when the watermark reaches its instant
                        alert.fired_at,
                        alert.policy_id,
                        *(dims.get(name, "") for name in _ALERT_ROW_DIMENSIONS),
                        worker,
                    ]
                )
    result.cases = len(facts_rows)
    facts_columns = _columns(facts_rows, CASE_FACT_COLUMNS)
    facts_columns.append([task.updated_at] * len(facts_rows))
    result.columns[CASE_FACTS_TABLE] = facts_columns
    result.columns[CASE_SLA_TABLE] = _columns(sla_rows_, CASE_SLA_COLUMNS)
    result.columns[CASE_CYCLES_TABLE] = _columns(cycle_rows, CYCLE_COLUMNS)
    result.columns[SLA_ALERTS_TABLE] = [list(c) for c in zip(*alert_rows, strict=True)] or [
        [] for _ in SLA_ALERT_COLUMNS
    ]
    _as_ticks(result.columns, task.column_types)
    result.seconds = time.perf_counter() - started
    return result


#: SlaAlertRow's dimension columns, in its order (between policy_id and worker)
_ALERT_ROW_DIMENSIONS = SLA_ALERT_COLUMNS[SLA_ALERT_COLUMNS.index("policy_id") + 1 : -1]


def _columns(rows: Sequence[Any], names: Sequence[str]) -> list[list[Any]]:
    if not rows:
        return [[] for _ in names]
    if len(names) == 1:
        return [[getattr(row, names[0]) for row in rows]]
    return [list(column) for column in zip(*map(operator.attrgetter(*names), rows), strict=True)]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DATETIME64 = re.compile(r"^(?:Nullable\()?DateTime64\((\d)")


def _as_ticks(columns: dict[str, list[list[Any]]], types: dict[str, Sequence[str]]) -> None:
    """DateTime64 columns as integer ticks, in place: the conversion clickhouse-connect
    would do value by value in the writing process, done here in the fold's process with
    one timedelta division per value (the same integer: time truncated to the tick)."""
    for table, table_columns in columns.items():
        for column, type_ in zip(table_columns, types.get(table, ()), strict=False):
            match = _DATETIME64.match(type_)
            if match is None or not column:
                continue
            tick = timedelta(microseconds=10 ** (6 - int(match.group(1))))
            epoch = _EPOCH
            column[:] = [None if at is None else (at - epoch) // tick for at in column]


# --- the replay --------------------------------------------------------------------------

#: progress callback: (phase, done, total); phases "read" (events or, for topics,
#: messages) and "fold" (events)
Progress = Callable[[str, int, int | None], None]


class ReplayInterrupted(ReplayError):
    """The replay was asked to stop (Ctrl-C, or a cancel through the worker)."""


@dataclass(slots=True)
class ReplayOptions:
    generation: str
    policies_path: str | None = None
    #: "stop": the first invalid event stops the replay naming its position;
    #: "dead-letter": invalid events go to the replay database's dead_letters, counted
    invalid: str = "stop"
    since: datetime | None = None
    until: datetime | None = None
    #: case-hash buckets, at least; more when the source holds more than
    #: ``buckets * bucket_events`` events (a resumed replay keeps its first count)
    buckets: int = 16
    #: target events per bucket: a fold process holds one bucket in memory
    bucket_events: int = 200_000
    workers: int = 1
    #: the partitions the live worker's case topic has (late_events are per partition)
    partitions: int = 4
    late_grace: timedelta = timedelta(days=1)
    switch: bool = True
    #: where the bucket spill files go (``<work_dir>/buckets``); default: a temporary
    #: directory. Removed when the replay ends, rebuilt by a resume.
    work_dir: Path | None = None


@dataclass(slots=True)
class ReplayResult:
    generation: gens.Generation
    events: int
    cases: int
    dead_letters: int
    late_events: int
    alerts: int
    seconds: float
    resumed_buckets: int
    switched: bool
    buckets: int = 0

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def policies_hash(path: str | None) -> str:
    """SHA-256 over the policy file and the calendar files it uses."""
    loaded = _policies(path)
    digest = hashlib.sha256()
    files = [loaded.source, *sorted(set(loaded.calendar_sources.values()))]
    for name in files:
        if name and os.path.isfile(name):
            digest.update(name.encode())
            digest.update(Path(name).read_bytes())
    return digest.hexdigest()


def bucket_count(options: ReplayOptions, estimate: int | None) -> int:
    """``options.buckets``, or more so that a bucket holds about ``bucket_events``."""
    wanted = -(-(estimate or 0) // max(1, options.bucket_events))
    return max(1, options.buckets, wanted)


def _event_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    if at.tzinfo is None:
        return None
    at = at.astimezone(UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


@dataclass(slots=True)
class _Plan:
    directory: Path
    #: events spilled to each bucket's file
    counts: list[int]
    #: (index, case_id, event_id, type, occurred_at, watermark) of late events
    late: list[tuple[int, str, str, str, datetime, datetime]]
    watermark: datetime | None
    events: int


def plan(
    source: SourceData,
    options: ReplayOptions,
    directory: Path,
    buckets: int,
    events: Iterable[tuple[bytes, Position]] | None = None,
    skip: int = 0,
    should_stop: Callable[[], bool] | None = None,
) -> _Plan:
    """Spill each raw event to its case's bucket file; find late events in source order.

    Memory: the per-partition watermarks and the late events, whatever the input size.
    Buckets below ``skip`` (already written by an interrupted run) are counted, not
    spilled. An event that is not even a JSON object with a case id stops the replay
    here (mode "stop"), before anything is written; in "dead-letter" mode it goes to
    bucket 0, where validation turns it into a dead letter with its reason.
    """
    directory.mkdir(parents=True, exist_ok=True)
    files: list[Any] = [
        None if b < skip else bucket_path(directory, b).open("wb", buffering=SPILL_BUFFER)
        for b in range(buckets)
    ]
    counts = [0] * buckets
    watermarks: dict[int, datetime] = {}
    late: list[tuple[int, str, str, str, datetime, datetime]] = []
    newest: datetime | None = None
    grace = options.late_grace
    since, until = options.since, options.until
    partitions = options.partitions
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
            out = files[bucket]
            if out is not None:
                out.write(pack(index, *position, len(raw)))
                out.write(raw)
            if doc is None:
                continue
            at = _event_time(doc.get("occurred_at"))
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
                late.append(
                    (index, case_id, str(doc.get("event_id")), str(doc.get("type")), at, mark)
                )
    finally:
        for out in files:
            if out is not None:
                out.close()
    return _Plan(directory, counts, late, newest, index + 1)


def _stop_at(source: SourceData, position: Position, raw: bytes) -> None:
    try:
        decode_event(raw)
    except InvalidEvent as err:
        raise ReplayInputError(
            f"{source.where(position)}: invalid event ({err.reason}): {err.detail}"
        ) from None
    raise ReplayInputError(f"{source.where(position)}: invalid event")


def run_replay(
    dsn: str,
    read_source: Callable[[Store], SourceData],
    options: ReplayOptions,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ReplayResult:
    """Build a generation from a source and (unless ``options.switch`` is False) switch
    the boards to it. A replay that fails or is interrupted (Ctrl-C, or ``should_stop``
    returning True) is recorded as failed and leaves the live tables untouched; rerun
    with the same id to resume."""
    started = time.perf_counter()
    live = Store.open(dsn)
    generation_id = gens.check_id(options.generation)
    existing = gens.get_generation(live.client, generation_id)
    if existing is not None and existing.status not in (gens.RUNNING, gens.FAILED):
        raise ReplayError(
            f"generation {generation_id!r} is {existing.status}: use a new --id (or drop it first)"
        )
    hash_ = policies_hash(options.policies_path)
    if existing is not None and existing.policies_hash != hash_:
        raise ReplayError(
            f"generation {generation_id!r} was started with other SLA policies: use a new --id"
        )
    generation = (
        existing.but(status=gens.RUNNING, detail="resumed")
        if existing is not None
        else gens.new_generation(generation_id, "(reading the source)", hash_)
    )
    gens.record(live.client, generation)
    work = (
        Path(tempfile.mkdtemp(prefix=f"civicpulse-replay-{generation_id}-"))
        if options.work_dir is None
        else options.work_dir
    )
    try:
        source = read_source(live)
        generation = generation.but(source=source.name)
        gens.record(live.client, generation)
        replay = Store.open(dsn, database=generation.database)
        result = _build(
            live, replay, source, generation, options, progress, started, work, should_stop
        )
        if source.commit is not None:
            source.commit()
        return result
    except BaseException as err:
        interrupted = isinstance(err, KeyboardInterrupt | ReplayInterrupted)
        gens.record(
            live.client,
            generation.but(
                status=gens.FAILED,
                finished_at=datetime.now(UTC),
                detail="interrupted" if interrupted else str(err),
            ),
        )
        raise
    finally:
        shutil.rmtree(work / "buckets" if options.work_dir is not None else work, True)


def _build(
    live: Store,
    replay: Store,
    source: SourceData,
    generation: gens.Generation,
    options: ReplayOptions,
    progress: Progress | None,
    started: float,
    work: Path,
    should_stop: Callable[[], bool] | None,
) -> ReplayResult:
    writer = replay.writer
    saved = gens.load_checkpoint(replay.client, generation.generation)

    def check_source() -> None:
        if saved is not None and saved.fingerprint != source.fingerprint:
            raise ReplayError(
                f"generation {generation.generation!r} was started on another input "
                f"({saved.source}): use a new --id or drop it"
            )

    if source.fingerprint:
        check_source()
    done_buckets = saved.buckets_done if saved is not None else 0
    events_done = saved.events_done if saved is not None else 0
    cases_done = saved.cases_done if saved is not None else 0
    # The bucket count may depend on the source's estimate, which a topic knows once
    # its first messages are read; a resumed replay keeps the count it started with.
    events = iter(source.events)
    first = next(events, None)
    buckets = saved.buckets if saved is not None else bucket_count(options, source.estimate)
    the_plan = plan(
        source,
        options,
        work / "buckets",
        buckets,
        events=events if first is None else itertools.chain([first], events),
        skip=done_buckets,
        should_stop=should_stop,
    )
    check_source()  # the archive's fingerprint is known once it is read
    total_events = the_plan.events
    fold_done = sum(the_plan.counts[:done_buckets])
    if progress is not None:
        progress("fold", fold_done, total_events)
    updated_at = datetime.now(UTC)
    column_types: dict[str, Sequence[str]] = {
        table: writer.column_types(table, names) for table, names in _TABLE_COLUMNS.items()
    }
    tasks = [
        BucketTask(
            bucket=b,
            path=str(bucket_path(the_plan.directory, b)),
            trusted=source.trusted,
            policies_path=options.policies_path,
            watermark=the_plan.watermark,
            since=options.since,
            until=options.until,
            updated_at=updated_at,
            generation=generation.generation,
            column_types=column_types,
        )
        for b in range(done_buckets, buckets)
    ]
    bad: set[int] = set()
    alerts = 0
    for result in _fold_all(tasks, options.workers, should_stop):
        if result.invalid and options.invalid == "stop":
            _, reason, detail, _, position, _ = min(result.invalid)
            raise ReplayInputError(f"{source.where(position)}: invalid event ({reason}): {detail}")
        bad.update(index for index, *_ in result.invalid)
        for table, columns in result.columns.items():
            writer.write_columns(table, _TABLE_COLUMNS[table], columns)
        alerts += len(result.columns[SLA_ALERTS_TABLE][0])
        _write_dead_letters(writer, source, result.invalid, updated_at)
        events_done += result.events
        cases_done += result.cases
        done_buckets = result.bucket + 1
        fold_done += the_plan.counts[result.bucket]
        gens.save_checkpoint(
            replay.client,
            gens.checkpoint(
                generation.generation,
                source.name,
                source.fingerprint,
                buckets,
                done_buckets,
                events_done,
                cases_done,
            ),
        )
        bucket_path(the_plan.directory, result.bucket).unlink(missing_ok=True)
        if progress is not None:
            progress("fold", fold_done, total_events)
        if should_stop is not None and should_stop():
            raise ReplayInterrupted("interrupted")
    late_rows = [row for row in the_plan.late if row[0] not in bad]
    if late_rows:
        writer.write_columns(
            LATE_EVENTS_TABLE,
            LATE_EVENT_COLUMNS,
            [
                [r[1] for r in late_rows],
                [r[2] for r in late_rows],
                [r[3] for r in late_rows],
                [r[4] for r in late_rows],
                [r[5] for r in late_rows],
                [(r[5] - r[4]).total_seconds() for r in late_rows],
                [updated_at] * len(late_rows),
            ],
        )
    dead_total = int(
        replay.client.query("SELECT count() FROM dead_letters FINAL").result_rows[0][0]
    )
    finished = generation.but(
        events=events_done,
        cases=cases_done,
        dead_letters=dead_total,
        finished_at=datetime.now(UTC),
        detail="built",
    )
    switched = False
    if options.switch:
        finished = gens.switch(live.client, live.client.database or "default", finished)
        switched = True
    else:
        gens.record(live.client, finished)
    return ReplayResult(
        generation=finished,
        events=events_done,
        cases=cases_done,
        dead_letters=dead_total,
        late_events=len(late_rows),
        alerts=alerts,
        seconds=time.perf_counter() - started,
        resumed_buckets=saved.buckets_done if saved is not None else 0,
        switched=switched,
        buckets=buckets,
    )


_TABLE_COLUMNS: dict[str, Sequence[str]] = {
    CASE_FACTS_TABLE: CASE_FACTS_TABLE_COLUMNS,
    CASE_SLA_TABLE: CASE_SLA_COLUMNS,
    CASE_CYCLES_TABLE: CYCLE_COLUMNS,
    SLA_ALERTS_TABLE: SLA_ALERT_COLUMNS,
}


def _write_dead_letters(
    writer: Any, source: SourceData, invalid: Sequence[Invalid], received: datetime
) -> None:
    if not invalid:
        return
    rows = [
        [
            source.name,
            -1,
            index,
            0,
            "",
            reason,
            f"{source.where(position)}: {detail}",
            raw,
            case_id,
            received,
        ]
        for index, reason, detail, case_id, position, raw in invalid
    ]
    writer.write_columns(
        DEAD_LETTERS_TABLE, DEAD_LETTER_COLUMNS, [list(c) for c in zip(*rows, strict=True)]
    )


def _fold_all(
    tasks: list[BucketTask], workers: int, should_stop: Callable[[], bool] | None = None
) -> Iterator[BucketResult]:
    """Bucket results in bucket order, folded in ``workers`` processes (1: in this one).

    At most ``workers + 1`` buckets are in flight, so the results waiting to be written
    stay bounded too."""
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield fold_bucket(task)
        return
    # spawn: the parent may host an embedded ClickHouse engine, which must not be forked
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        queue = iter(tasks)
        pending: collections.deque[Any] = collections.deque(
            pool.apply_async(fold_bucket, (task,)) for task in itertools.islice(queue, workers + 1)
        )
        while pending:
            head = pending[0]
            while not head.ready():
                head.wait(0.5)
                if should_stop is not None and should_stop():
                    raise ReplayInterrupted("interrupted")
            pending.popleft()
            following = next(queue, None)
            if following is not None:
                pending.append(pool.apply_async(fold_bucket, (following,)))
            yield head.get()
