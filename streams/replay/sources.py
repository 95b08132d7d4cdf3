"""Where a replay's events come from: a JSON Lines or Parquet file, a Kafka topic, or the
live raw archive, each read once, streaming, in source order (never all in memory), and
each able to name where a bad event is (file line, Parquet row, topic offset, archive
row) so a replay that stops on it points at it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from streams.contract.codec import ceil_ms
from streams.contract.framing import split_items
from streams.logs import quiet_retried_coordinator_lookups
from streams.replay.errors import ReplayError, ReplayInputError
from streams.replay.progress import PROGRESS_EVERY, Progress
from streams.store import Store
from streams.store.client import open_private_client

FILE_SUFFIXES = (".jsonl", ".ndjson", ".parquet")
#: the column of a replay Parquet file: one event's JSON per row
PARQUET_COLUMN = "event"


#: where an event is in its source, as up to three numbers (file line; Parquet row;
#: topic partition, offset, line; archive row): rendered by ``SourceData.where``
Position = tuple[int, int, int]


def _source_index(index: int, _at: Position) -> tuple[int, int, int]:
    """The event's index in the source in ``offset`` (the archive's row number)."""
    return (-1, index, 0)


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
    #: positions are Kafka (partition, offset, line in a batch message)
    kafka: bool = False
    #: the archive: the highest Kafka offset read per partition (filled as it is read),
    #: where a catch-up starts (``streams.replay.catch_up``); None for other sources
    read_up_to: dict[int, int] | None = None
    #: the archive: read no row beyond these offsets (a resumed replay reads what its
    #: first run read, and catches up with the rest)
    up_to: dict[int, int] | None = None
    #: the (partition, offset, line) columns of an invalid event's dead letter, from its
    #: index in the source and its position; a key: unique per event, the same when a
    #: resumed replay meets it again
    dead_letter_at: Callable[[int, Position], tuple[int, int, int]] = _source_index


def _file_line(_index: int, at: Position) -> tuple[int, int, int]:
    """A file's line (a Parquet file's row) in ``line``, as a batch message's line."""
    return (-1, 0, at[0])


def _kafka_position(_index: int, at: Position) -> tuple[int, int, int]:
    return at


def close_events(events: Iterable[tuple[bytes, Position]]) -> None:
    """A source left half read (a replay that failed) releases its reader (a consumer, a
    ClickHouse client) now, not whenever the generator is collected."""
    close = getattr(events, "close", None)
    if close is not None:
        close()


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
        dead_letter_at=_file_line,
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
    kind = parquet.schema_arrow.field(PARQUET_COLUMN).type if PARQUET_COLUMN in names else None
    types = pa.types
    textual = (types.is_string, types.is_large_string, types.is_binary, types.is_large_binary)
    if kind is None or not any(check(kind) for check in textual):
        found = f"found columns {names}" if kind is None else f"its type is {kind}"
        raise ReplayInputError(
            f"{path}: a replay Parquet file has a string column {PARQUET_COLUMN!r} holding "
            f"each event's JSON; {found}"
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
        dead_letter_at=_file_line,
    )


def export_parquet(source: Path, target: Path, rows_per_group: int = 100_000) -> int:
    """Copy a JSON Lines file of events into a replay Parquet file; returns the rows.

    The input is checked before anything is written, and ``target`` appears only once it
    is complete (a ``.part`` file beside it is renamed): an export that fails or is
    interrupted leaves no file (an empty one would replay as 0 events). A target that
    cannot be written raises :class:`ReplayError` naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = read_file(source)  # a missing or unknown input: raises here
    if not target.parent.is_dir():
        raise ReplayError(f"{target}: cannot write it: no such directory")
    schema = pa.schema([(PARQUET_COLUMN, pa.string())])
    part = target.with_name(target.name + ".part")
    rows = 0
    try:
        with pq.ParquetWriter(part, schema, compression="zstd") as writer:
            group: list[str] = []
            for raw, at in data.events:
                try:
                    group.append(raw.decode())
                except UnicodeDecodeError as err:
                    raise ReplayInputError(f"{data.where(at)}: not UTF-8: {err}") from err
                if len(group) >= rows_per_group:
                    writer.write_table(pa.table({PARQUET_COLUMN: pa.array(group, pa.string())}))
                    rows += len(group)
                    group = []
            if group or not rows:
                writer.write_table(pa.table({PARQUET_COLUMN: pa.array(group, pa.string())}))
                rows += len(group)
        part.replace(target)
    except OSError as err:
        reason = os.strerror(err.errno) if err.errno else str(err)
        raise ReplayError(f"{target}: cannot write it: {reason}") from err
    finally:
        part.unlink(missing_ok=True)
        close_events(data.events)
    return rows


def read_topic(
    bootstrap: str,
    topic: str,
    group: str,
    from_offset: int | None = None,
    to_offset: int | None = None,
    progress: Progress | None = None,
    from_time: datetime | None = None,
    to_time: datetime | None = None,
) -> SourceData:
    """Every event of ``topic`` from ``from_offset`` (default: the beginning) up to
    ``to_offset`` included (default: the end when the replay started), in every
    partition, through the consumer group ``group``, read batch by batch as it is
    replayed. ``from_time`` / ``to_time`` narrow that, per partition, to the offsets
    from the first message stamped (Kafka timestamp) at or after ``from_time`` up to the
    first stamped at or after ``to_time``, found with the broker's time index: a time
    range of the topic, whatever the events' own times."""
    quiet_retried_coordinator_lookups()
    loop = asyncio.new_event_loop()
    try:
        consumer, tps, start, stop = loop.run_until_complete(
            _open_topic(bootstrap, topic, group, from_offset, to_offset, from_time, to_time)
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
        kafka=True,
        dead_letter_at=_kafka_position,
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
                    progress("messages", done, total)
                yield from out
        finally:
            loop.run_until_complete(consumer.stop())
            loop.close()

    data.events = events()
    return data


async def _open_topic(
    bootstrap: str,
    topic: str,
    group: str,
    from_offset: int | None,
    to_offset: int | None,
    from_time: datetime | None = None,
    to_time: datetime | None = None,
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
        first_at = await _offsets_at(consumer, tps, from_time, ends)
        first_after = await _offsets_at(consumer, tps, to_time, ends)
        for tp in tps:
            start[tp] = max(beginnings[tp], from_offset or 0, first_at.get(tp, 0))
            stop[tp] = min(
                ends[tp],
                ends[tp] if to_offset is None else to_offset + 1,
                first_after.get(tp, ends[tp]),
            )
            consumer.seek(tp, start[tp])
    except BaseException:
        await consumer.stop()
        raise
    return consumer, tps, start, stop


async def _offsets_at(
    consumer: Any, tps: list[Any], at: datetime | None, ends: dict[Any, int]
) -> dict[Any, int]:
    """Per partition, the first offset whose message was stored at or after ``at`` (the
    end when none was); empty without ``at``."""
    if at is None:
        return {}
    found = await consumer.offsets_for_times(dict.fromkeys(tps, ceil_ms(at)))
    return {tp: ends[tp] if found.get(tp) is None else found[tp].offset for tp in tps}


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


#: the archive's order: ingestion order, then Kafka position (partition, offset, line in a
#: batch message: the order it was received in); case and event id only break the ties of
#: rows archived before ``line`` was (0009_events_line: line 0)
ARCHIVE_ORDER = "ingested_at, kafka_partition, kafka_offset, line, case_id, event_id"
#: an archive row's Kafka offset against per-partition offsets (-1 for a partition
#: not in them); with parameters ``parts`` and ``offsets``
MARK_OF_ROW = (
    "transform(kafka_partition, {parts:Array(Int32)}, {offsets:Array(Int64)}, toInt64(-1))"
)
#: archive rows read by a replay whose highest offsets per partition are the marks (rows
#: without a Kafka position are always read), and the rows beyond them
UP_TO_MARKS = f"(kafka_partition < 0 OR kafka_offset <= {MARK_OF_ROW})"
BEYOND_MARKS = f"kafka_partition >= 0 AND kafka_offset > {MARK_OF_ROW}"


def as_bytes(value: Any) -> bytes:
    """An ``event_json`` value as the bytes a decoder takes."""
    return value.encode() if isinstance(value, str) else bytes(value)


def archive_range(since: datetime | None, until: datetime | None) -> tuple[str, dict[str, Any]]:
    """The condition (and its parameters) of a replay's ``--since`` / ``--until`` on the
    archive's event times."""
    conditions = ["1"]
    params: dict[str, Any] = {}
    if since is not None:
        conditions.append("occurred_at >= {since:DateTime64(3, 'UTC')}")
        params["since"] = since
    if until is not None:
        conditions.append("occurred_at < {until:DateTime64(3, 'UTC')}")
        params["until"] = until
    return " AND ".join(conditions), params


def mark_parameters(marks: dict[int, int]) -> dict[str, Any]:
    """``MARK_OF_ROW``'s parameters."""
    parts = sorted(marks)
    return {"parts": parts, "offsets": [marks[p] for p in parts]}


def format_marks(marks: dict[int, int]) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted(marks.items()))


def parse_marks(fingerprint: str) -> dict[int, int] | None:
    """The per-partition offsets an archive replay read, from its fingerprint."""
    fields = fingerprint.split("|")
    if len(fields) != 4:
        return None
    marks: dict[int, int] = {}
    for item in filter(None, fields[2].split(",")):
        partition, _, offset = item.partition(":")
        try:
            marks[int(partition)] = int(offset)
        except ValueError:
            return None  # not an archive fingerprint of this release
    return marks


def read_archive(
    store: Store,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: Progress | None = None,
) -> SourceData:
    """The raw archive (``events`` of the live database), in ingestion order, streamed
    block by block through a client of its own (the store's client stays free for the
    live worker's writes).

    It notes the highest Kafka offset read per partition (``read_up_to``): what the live
    worker archives while the replay runs is caught up before the switch
    (``streams.replay.catch_up``). Set ``up_to`` before reading to read no further than
    an earlier run did."""
    where, params = archive_range(since, until)
    total = int(
        store.client.query(
            f"SELECT count() FROM events FINAL WHERE {where}", parameters=params
        ).result_rows[0][0]
    )
    database = store.client.database or "default"
    marks: dict[int, int] = {}
    data = SourceData(
        name=f"archive:{database}.events",
        events=iter(()),
        where=lambda at: f"archive row {at[0]}",
        fingerprint="",
        estimate=total,
        trusted=True,
        read_up_to=marks,
    )

    def events() -> Iterator[tuple[bytes, Position]]:
        condition, bound = where, dict(params)
        if data.up_to is not None:
            condition += f" AND {UP_TO_MARKS}"
            bound.update(mark_parameters(data.up_to))
            # what the first run read up to, even if the event at a mark was redelivered
            # beyond it since (``FINAL`` keeps that later copy, which the catch-up reads)
            marks.update(data.up_to)
        client = open_private_client(store.dsn, database=database)
        row = unkeyed = 0
        try:
            with client.query_column_block_stream(
                "SELECT event_json, kafka_partition, kafka_offset FROM events FINAL "
                f"WHERE {condition} ORDER BY {ARCHIVE_ORDER}",
                parameters=bound,
            ) as blocks:
                for block in blocks:
                    for value, partition, offset in zip(*block, strict=True):
                        raw = as_bytes(value)
                        row += 1
                        if partition < 0:
                            unkeyed += 1
                        elif offset > marks.get(partition, -1):
                            marks[partition] = offset
                        yield raw, (row, partition, offset)
                    if progress is not None:
                        progress("read", row, total)
        finally:
            client.close()
        # What a resumed replay checks: the same time range and the same number of rows
        # without a Kafka position (a file replay archiving its events meanwhile changes
        # it). It reads up to the first run's offsets by construction, and not the rows'
        # content: an event redelivered meanwhile is read at its newer position (``FINAL``
        # keeps the later copy) by the catch-up, which folds its case again. Rows removed
        # from the archive meanwhile go unnoticed.
        data.fingerprint = f"{since}|{until}|{format_marks(marks)}|{unkeyed}"

    data.events = events()
    return data
