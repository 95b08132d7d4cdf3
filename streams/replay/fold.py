"""The per-bucket fold, run in worker processes: validate every event of one bucket with
the live worker's decoders, fold whole cases with ``CaseState``, evaluate their SLA
clocks and raise their alerts by the event-time watermark, so a replay stores the same
rows as a live run. Everything a process needs travels in a picklable ``BucketTask``,
and ``fold_bucket`` stays a top-level function (the pool pickles it by name).
"""

from __future__ import annotations

import operator
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from streams.app.steps import case_sla_of
from streams.contract import Event, InvalidEvent, decode_event, decode_validated
from streams.core.case_state import CaseState
from streams.core.facts import CASE_FACT_COLUMNS
from streams.core.sla.alerts import ALERT_DIMENSIONS, due_alerts, pending_instants
from streams.core.sla.policy import PolicySet, load_policies
from streams.core.sla.rows import (
    CASE_CYCLES_TABLE,
    CASE_SLA_COLUMNS,
    CASE_SLA_TABLE,
    CYCLE_COLUMNS,
)
from streams.replay.buckets import read_bucket
from streams.replay.sources import Position
from streams.store.rows import (
    CASE_FACTS_TABLE,
    EVENT_COLUMNS,
    EVENTS_TABLE,
    SLA_ALERT_COLUMNS,
    SLA_ALERTS_TABLE,
    EventRow,
)

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
    #: (case, its next alert instant after the watermark), with ``BucketTask.pending``
    pending: list[tuple[str, datetime]] = field(default_factory=list)


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
    #: also return the valid events as raw-archive (``events``) rows
    archive: bool = False
    #: positions are Kafka (partition, offset, line): archived with them, as the live
    #: ingest step does; other sources are archived as partition -1, offset = position,
    #: line 0
    kafka_positions: bool = False
    #: the archive rows' ``ingested_at``: the generation's start, the same for a resumed
    #: replay, so the archive keeps the source's order (it is read by ingestion time)
    archived_at: datetime | None = None
    #: also return each case's next alert instant after the watermark (a catch-up
    #: refolds the cases whose instant a later watermark reaches)
    pending: bool = False


def fold_bucket(task: BucketTask) -> BucketResult:
    """Validate, fold and evaluate every case of one bucket; rows as columns."""
    started = time.perf_counter()
    policies = _policies(task.policies_path)
    result = BucketResult(task.bucket)
    # The same decoders as the live worker: full validation (the ingest step's) for
    # outside input, the trusted fast path for events already validated (by the ingest
    # step, for the archive; by the plan pass, for the records it marked valid).
    trusted = task.trusted
    since, until = task.since, task.until
    by_case: dict[str, list[Event]] = {}
    events = 0
    archived: list[tuple[Event, bytes, Position]] | None = [] if task.archive else None
    for index, position, raw, valid in read_bucket(Path(task.path)):
        try:
            event = decode_validated(raw) if trusted or valid else decode_event(raw)
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
        if archived is not None:
            archived.append((event, raw, position))
    result.events = events
    if archived is not None:
        result.columns[EVENTS_TABLE] = _archive_columns(archived, task)
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
        if task.pending and task.watermark is not None:
            upcoming = [at for at in pending_instants(evaluation) if at > task.watermark]
            if upcoming:
                result.pending.append((case_id, upcoming[0]))
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


def _archive_columns(
    archived: Sequence[tuple[Event, bytes, Position]], task: BucketTask
) -> list[list[Any]]:
    """The valid events as ``events`` rows, received at the replay's start: a later
    replay from the archive reads them in this source's order."""
    kafka = task.kafka_positions
    received = task.archived_at or task.updated_at
    rows = [
        EventRow.archived(
            event,
            raw,
            received,
            position[0] if kafka else -1,
            position[1] if kafka else position[0],
            position[2] if kafka else 0,
        )
        for event, raw, position in archived
    ]
    return _columns(rows, EVENT_COLUMNS)


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
