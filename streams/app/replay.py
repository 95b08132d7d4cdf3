"""Replay: recompute every derived table from a history of events, into a new generation.

A batch job outside Faust that drives the same steps as the live case agent
(``steps.ingest`` to decode and validate, ``CaseState``, ``steps.case_sla_of``, the SLA
alert rules with event time as ``now``), so a replay and a live run over the same events
store the same rows. Documentation: docs/replay.md.

Flow:

1. read the whole source (file, topic, archive) into memory as raw event bytes with
   their positions; note each event's case (a cheap JSON parse) and put it in one of
   ``buckets`` case-hash buckets; compute ``late_events`` in source order;
2. per bucket (in parallel over ``workers`` processes): validate every event, fold whole
   cases, evaluate their SLA clocks once, raise their alerts by the event-time watermark,
   and return the rows as columns;
3. write each bucket's rows into the replay database and checkpoint; an interrupted
   replay rerun with the same id skips the buckets already written;
4. when every bucket is written, switch (``streams.store.generations.switch``).
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from streams.app.steps import RawMessage, case_sla_of, ingest, partition_for
from streams.contract import Event, InvalidEvent, decode_event
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


@dataclass(slots=True)
class SourceData:
    """Every raw event of a source, in source order."""

    name: str  # what the generation record shows: file:..., topic:..., archive
    raws: list[bytes]
    #: human position of each raw event (file:line, topic/partition/offset/line, ...)
    where: Callable[[int], str]
    fingerprint: str  # equal for an unchanged source (resume check)
    #: topic sources: offsets to commit in the replay's consumer group when done
    commit: Callable[[], None] | None = None


def read_file(path: Path, progress: Progress | None = None) -> SourceData:
    """A JSON Lines (``.jsonl``, ``.ndjson``: one event per line) or Parquet (``.parquet``:
    one string column ``event`` holding each event's JSON) file."""
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
        return _read_parquet(path, fingerprint)
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    numbers: list[int] = []
    raws: list[bytes] = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            numbers.append(number)
            raws.append(line.rstrip(b"\r"))
    if progress is not None:
        progress("read", len(raws), len(raws))
    return SourceData(
        name=f"file:{path}",
        raws=raws,
        where=lambda i: f"{path}:{numbers[i]}",
        fingerprint=fingerprint,
    )


def _read_parquet(path: Path, fingerprint: str) -> SourceData:
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
    raws: list[bytes] = []
    for group in range(parquet.num_row_groups):
        try:
            column = parquet.read_row_group(group, columns=[PARQUET_COLUMN]).column(0)
        except (pa.ArrowException, OSError) as err:
            raise ReplayInputError(
                f"{path}: row group {group} (from row {len(raws) + 1}) is unreadable "
                f"(truncated or corrupt Parquet): {err}"
            ) from err
        for value in column.to_pylist():
            if value is None:
                raws.append(b"")
            else:
                raws.append(value.encode() if isinstance(value, str) else bytes(value))
    return SourceData(
        name=f"file:{path}",
        raws=raws,
        where=lambda i: f"{path}: row {i + 1}",
        fingerprint=fingerprint,
    )


def export_parquet(source: Path, target: Path, rows_per_group: int = 100_000) -> int:
    """Copy a JSON Lines file of events into a replay Parquet file; returns the rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = read_file(source)
    table = pa.table({PARQUET_COLUMN: pa.array([r.decode() for r in data.raws], pa.string())})
    pq.write_table(table, target, row_group_size=rows_per_group, compression="zstd")
    return len(data.raws)


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
    partition, through the consumer group ``group``."""
    return asyncio.run(_read_topic(bootstrap, topic, group, from_offset, to_offset, progress))


async def _read_topic(
    bootstrap: str,
    topic: str,
    group: str,
    from_offset: int | None,
    to_offset: int | None,
    progress: Progress | None,
) -> SourceData:
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
        total = sum(max(0, stop[tp] - start[tp]) for tp in tps)
        positions: list[tuple[int, int, int]] = []
        raws: list[bytes] = []
        pending = {tp for tp in tps if stop[tp] > start[tp]}
        done = 0
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=1000, max_records=50_000)
            for tp, messages in batch.items():
                for message in messages:
                    if message.offset >= stop[tp]:
                        pending.discard(tp)
                        break
                    headers = [(k, bytes(v)) for k, v in message.headers or ()]
                    for line, item in split_items(message.value or b"", headers):
                        positions.append((tp.partition, message.offset, line))
                        raws.append(item)
                    done += 1
                    if message.offset + 1 >= stop[tp]:
                        pending.discard(tp)
            if progress is not None:
                progress("read", done, total)
    finally:
        await consumer.stop()

    def commit() -> None:
        asyncio.run(_commit(bootstrap, group, topic, stop))

    fingerprint = f"{topic}|" + ",".join(f"{tp.partition}:{start[tp]}-{stop[tp]}" for tp in tps)
    return SourceData(
        name=f"topic:{topic}",
        raws=raws,
        where=lambda i: "topic {}/partition {}/offset {}/line {}".format(topic, *positions[i]),
        fingerprint=fingerprint,
        commit=commit,
    )


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
    store: Store, since: datetime | None = None, until: datetime | None = None
) -> SourceData:
    """The raw archive (``events`` of the live database), in ingestion order."""
    conditions = ["1"]
    params: dict[str, Any] = {}
    if since is not None:
        conditions.append("occurred_at >= {since:DateTime64(3, 'UTC')}")
        params["since"] = since
    if until is not None:
        conditions.append("occurred_at < {until:DateTime64(3, 'UTC')}")
        params["until"] = until
    result = store.client.query(
        f"SELECT event_json FROM events FINAL WHERE {' AND '.join(conditions)} "
        "ORDER BY ingested_at, kafka_partition, kafka_offset, case_id, event_id",
        parameters=params,
    )
    raws = [str(row[0]).encode() for row in result.result_rows]
    digest = hashlib.sha256()
    for raw in raws:
        digest.update(raw)
    return SourceData(
        name=f"archive:{store.client.database or 'default'}.events",
        raws=raws,
        where=lambda i: f"archive row {i + 1}",
        fingerprint=f"{since}|{until}|{len(raws)}|{digest.hexdigest()}",
    )


# --- the per-bucket fold (runs in worker processes) --------------------------------------


@dataclass(slots=True)
class BucketResult:
    bucket: int
    events: int = 0  # valid events (duplicates included)
    cases: int = 0
    #: table -> columns (lists in the table's column order)
    columns: dict[str, list[list[Any]]] = field(default_factory=dict)
    #: (index in the source, reason, detail, case_id) of each invalid event
    invalid: list[tuple[int, str, str, str]] = field(default_factory=list)
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
    items: list[tuple[int, bytes]]  # (index in the source, raw event)
    policies_path: str | None
    watermark: datetime | None  # event-time "now" for the alerts
    since: datetime | None
    until: datetime | None
    updated_at: datetime
    generation: str
    source_name: str


def fold_bucket(task: BucketTask) -> BucketResult:
    """Validate, fold and evaluate every case of one bucket; rows as columns."""
    started = time.perf_counter()
    policies = _policies(task.policies_path)
    result = BucketResult(task.bucket)
    messages = [
        RawMessage(topic=task.source_name, partition=-1, offset=index, key=None, value=raw)
        for index, raw in task.items
    ]
    ingested = ingest(messages, now=task.updated_at)
    for row in ingested.dead:
        result.invalid.append((row.offset, row.reason, row.detail, row.case_id))
    by_case: dict[str, list[Event]] = {}
    for valid in ingested.valid:
        event = valid.event
        if task.since is not None and event.occurred_at < task.since:
            continue
        if task.until is not None and event.occurred_at >= task.until:
            continue
        by_case.setdefault(event.case_id, []).append(event)
        result.events += 1
    facts_rows: list[Any] = []
    sla_rows_: list[Any] = []
    cycle_rows: list[Any] = []
    alert_rows: list[list[Any]] = []
    for case_id in sorted(by_case):
        # Source order = arrival order: the first copy of an event id wins, as live.
        state = CaseState(case_id, by_case[case_id])
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
                        f"replay:{task.generation}",
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
    result.seconds = time.perf_counter() - started
    return result


#: SlaAlertRow's dimension columns, in its order (between policy_id and worker)
_ALERT_ROW_DIMENSIONS = SLA_ALERT_COLUMNS[SLA_ALERT_COLUMNS.index("policy_id") + 1 : -1]


def _columns(rows: Sequence[Any], names: Sequence[str]) -> list[list[Any]]:
    return [[getattr(row, name) for row in rows] for name in names]


# --- the replay --------------------------------------------------------------------------

#: progress callback: (phase, done, total); phases "read", "fold" (events)
Progress = Callable[[str, int, int | None], None]


@dataclass(slots=True)
class ReplayOptions:
    generation: str
    policies_path: str | None = None
    #: "stop": the first invalid event stops the replay naming its position;
    #: "dead-letter": invalid events go to the replay database's dead_letters, counted
    invalid: str = "stop"
    since: datetime | None = None
    until: datetime | None = None
    buckets: int = 16
    workers: int = 1
    #: the partitions the live worker's case topic has (late_events are per partition)
    partitions: int = 4
    late_grace: timedelta = timedelta(days=1)
    switch: bool = True


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


def _bucket_of(case_id: str, buckets: int) -> int:
    return zlib.crc32(case_id.encode()) % buckets


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
    items: list[list[tuple[int, bytes]]]
    #: (index, case_id, event_id, type, occurred_at, watermark) of late events
    late: list[tuple[int, str, str, str, datetime, datetime]]
    watermark: datetime | None
    events: int


def plan(source: SourceData, options: ReplayOptions) -> _Plan:
    """Put each raw event into its case's bucket; find late events in source order.

    An event that is not even a JSON object with a case id stops the replay here (mode
    "stop"), before anything is written; in "dead-letter" mode it goes to bucket 0, where
    validation turns it into a dead letter with its reason.
    """
    buckets: list[list[tuple[int, bytes]]] = [[] for _ in range(options.buckets)]
    watermarks: dict[int, datetime] = {}
    late: list[tuple[int, str, str, str, datetime, datetime]] = []
    newest: datetime | None = None
    grace = options.late_grace
    loads = orjson.loads
    for index, raw in enumerate(source.raws):
        try:
            doc = loads(raw)
            case_id = doc["case_id"]
            if not isinstance(case_id, str):
                raise TypeError
        except Exception:
            if options.invalid == "stop":
                _stop_at(source, index, raw)
            buckets[0].append((index, raw))
            continue
        buckets[_bucket_of(case_id, options.buckets)].append((index, raw))
        at = _event_time(doc.get("occurred_at"))
        if at is None:
            continue
        if options.since is not None and at < options.since:
            continue
        if options.until is not None and at >= options.until:
            continue
        if newest is None or at > newest:
            newest = at
        partition = partition_for(case_id, options.partitions)
        mark = watermarks.get(partition)
        if mark is None or at > mark:
            watermarks[partition] = at
        elif mark - at > grace:
            late.append((index, case_id, str(doc.get("event_id")), str(doc.get("type")), at, mark))
    return _Plan(buckets, late, newest, len(source.raws))


def _stop_at(source: SourceData, index: int, raw: bytes) -> None:
    try:
        decode_event(raw)
    except InvalidEvent as err:
        raise ReplayInputError(
            f"{source.where(index)}: invalid event ({err.reason}): {err.detail}"
        ) from None
    raise ReplayInputError(f"{source.where(index)}: invalid event")


def run_replay(
    dsn: str,
    read_source: Callable[[Store], SourceData],
    options: ReplayOptions,
    progress: Progress | None = None,
) -> ReplayResult:
    """Build a generation from a source and (unless ``options.switch`` is False) switch
    the boards to it. A replay that fails or is interrupted is recorded as failed and
    leaves the live tables untouched; rerun with the same id to resume."""
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
    try:
        source = read_source(live)
        generation = generation.but(source=source.name)
        gens.record(live.client, generation)
        replay = Store.open(dsn, database=generation.database)
        result = _build(live, replay, source, generation, options, progress, started)
        if source.commit is not None:
            source.commit()
        return result
    except BaseException as err:
        detail = "interrupted" if isinstance(err, KeyboardInterrupt) else str(err)
        gens.record(
            live.client,
            generation.but(status=gens.FAILED, finished_at=datetime.now(UTC), detail=detail),
        )
        raise


def _build(
    live: Store,
    replay: Store,
    source: SourceData,
    generation: gens.Generation,
    options: ReplayOptions,
    progress: Progress | None,
    started: float,
) -> ReplayResult:
    writer = replay.writer
    saved = gens.load_checkpoint(replay.client, generation.generation)
    if saved is not None and (
        saved.fingerprint != source.fingerprint or saved.buckets != options.buckets
    ):
        raise ReplayError(
            f"generation {generation.generation!r} was started on another input "
            f"({saved.source}, {saved.buckets} buckets): use a new --id or drop it"
        )
    done_buckets = saved.buckets_done if saved is not None else 0
    events_done = saved.events_done if saved is not None else 0
    cases_done = saved.cases_done if saved is not None else 0
    the_plan = plan(source, options)
    total_events = the_plan.events
    fold_done = sum(len(b) for b in the_plan.items[:done_buckets])
    if progress is not None:
        progress("fold", fold_done, total_events)
    updated_at = datetime.now(UTC)
    tasks = [
        BucketTask(
            bucket=b,
            items=the_plan.items[b],
            policies_path=options.policies_path,
            watermark=the_plan.watermark,
            since=options.since,
            until=options.until,
            updated_at=updated_at,
            generation=generation.generation,
            source_name=source.name,
        )
        for b in range(done_buckets, options.buckets)
    ]
    invalid: list[tuple[int, str, str, str]] = []
    alerts = 0
    for result in _fold_all(tasks, options.workers):
        if result.invalid and options.invalid == "stop":
            index, reason, detail, _ = min(result.invalid)
            raise ReplayInputError(f"{source.where(index)}: invalid event ({reason}): {detail}")
        invalid.extend(result.invalid)
        for table, columns in result.columns.items():
            names = _TABLE_COLUMNS[table]
            writer.write_columns(table, names, columns)
        alerts += len(result.columns[SLA_ALERTS_TABLE][0])
        _write_dead_letters(writer, source, result.invalid, updated_at)
        events_done += result.events
        cases_done += result.cases
        done_buckets = result.bucket + 1
        fold_done += len(the_plan.items[result.bucket])
        gens.save_checkpoint(
            replay.client,
            gens.checkpoint(
                generation.generation,
                source.name,
                source.fingerprint,
                options.buckets,
                done_buckets,
                events_done,
                cases_done,
            ),
        )
        if progress is not None:
            progress("fold", fold_done, total_events)
    bad = {index for index, *_ in invalid}
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
    )


_TABLE_COLUMNS: dict[str, Sequence[str]] = {
    CASE_FACTS_TABLE: CASE_FACTS_TABLE_COLUMNS,
    CASE_SLA_TABLE: CASE_SLA_COLUMNS,
    CASE_CYCLES_TABLE: CYCLE_COLUMNS,
    SLA_ALERTS_TABLE: SLA_ALERT_COLUMNS,
}


def _write_dead_letters(
    writer: Any,
    source: SourceData,
    invalid: Sequence[tuple[int, str, str, str]],
    received: datetime,
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
            f"{source.where(index)}: {detail}",
            source.raws[index],
            case_id,
            received,
        ]
        for index, reason, detail, case_id in invalid
    ]
    writer.write_columns(
        DEAD_LETTERS_TABLE, DEAD_LETTER_COLUMNS, [list(c) for c in zip(*rows, strict=True)]
    )


def _fold_all(tasks: list[BucketTask], workers: int) -> Iterator[BucketResult]:
    """Bucket results in bucket order, folded in ``workers`` processes (1: in this one)."""
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield fold_bucket(task)
        return
    # spawn: the parent may host an embedded ClickHouse engine, which must not be forked
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        yield from pool.imap(fold_bucket, tasks)
