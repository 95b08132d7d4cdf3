"""Catch-up: a replay from the archive runs while the live worker goes on archiving
events. Before the switch, the engine folds again every case the newer events touch,
and every case whose next alert the newer events' watermark reaches, so the switched
generation holds the same rows as a replay started after those events. Rounds go on
until a round finds nothing new; one last round, right after the switch, takes the
events archived between that round and the switch.

What is new is told by Kafka positions: rows beyond the highest offset read per
partition. Rows without one (a file replay's events, added to the archive at its switch)
are not caught up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from streams.replay.buckets import _RECORD
from streams.replay.fold import BucketResult, BucketTask, fold_bucket
from streams.replay.options import ReplayOptions
from streams.replay.plan import _Plan, plan
from streams.replay.sources import (
    ARCHIVE_ORDER,
    MARK_OF_ROW,
    Position,
    SourceData,
    archive_range,
    mark_parameters,
)
from streams.store import Store
from streams.store.generations import DERIVED_TABLES
from streams.store.rows import LATE_EVENTS_TABLE

#: a catch-up that never finds the archive still gives up after this many rounds before
#: the switch (the round after the switch still runs)
MAX_ROUNDS = 10


@dataclass(slots=True)
class CatchUpState:
    """Where the replay stands: what it read of the archive, its lateness watermarks,
    and the next alert instant of each case that has one after the watermark."""

    read_up_to: dict[int, int]
    watermarks: dict[int, int]
    newest: int | None  # ms
    pending: dict[str, datetime] = field(default_factory=dict)


@dataclass(slots=True)
class Round:
    events: int = 0  # newer events read
    case_ids: list[str] = field(default_factory=list)  # cases folded again
    #: the fold of those cases (rows as columns) and the newer events' late rows
    result: BucketResult | None = None
    late: list[tuple[int, str, str, str, datetime, datetime]] = field(default_factory=list)


def catch_up_round(
    live: Store,
    state: CatchUpState,
    options: ReplayOptions,
    template: BucketTask,
    work: Path,
) -> Round:
    """Read what the archive holds beyond ``state.read_up_to``, find its late events, and
    fold again the cases it touches or whose next alert its watermark reaches. ``state``
    moves on; the caller writes the round's rows."""
    delta = _newer_events(live, state.read_up_to, options)
    if not delta:
        return Round()
    directory = work / "catch-up"
    shell = SourceData(
        name="archive (catch-up)",
        events=iter(()),
        where=lambda at: f"archive partition {at[1]} offset {at[2]}",
        fingerprint="",
        trusted=True,
    )
    the_plan: _Plan = plan(
        shell,
        options,
        directory,
        1,
        events=[(raw, (index, p, o)) for index, (raw, _, p, o) in enumerate(delta)],
        watermarks=state.watermarks,
        newest=state.newest,
    )
    read_up_to = dict(state.read_up_to)
    for _, _, partition, offset in delta:
        if offset > read_up_to.get(partition, -1):
            read_up_to[partition] = offset
    watermark = the_plan.watermark
    cases = {case_id for _, case_id, _, _ in delta}
    if watermark is not None:
        cases.update(c for c, at in state.pending.items() if at <= watermark)
    ids = sorted(cases)
    path = directory / "cases.bin"
    with path.open("wb") as out:
        for index, (raw, position) in enumerate(_case_events(live, ids, read_up_to, options)):
            out.write(_RECORD.pack(index, *position, len(raw), False))
            out.write(raw)
    result = fold_bucket(
        dataclasses.replace(template, path=str(path), watermark=watermark, pending=True)
    )
    path.unlink(missing_ok=True)
    state.read_up_to = read_up_to
    state.watermarks = the_plan.watermarks
    state.newest = the_plan.newest
    for case_id in ids:
        state.pending.pop(case_id, None)
    state.pending.update(result.pending)
    return Round(len(delta), ids, result, the_plan.late)


def forget_cases(store: Store, case_ids: Sequence[str]) -> None:
    """Delete the cases' rows from a generation's derived tables (late events excepted:
    they belong to events, which stay), before their new rows are written: a case's
    key may have changed (its intake date, its alerts' agency)."""
    if not case_ids:
        return
    for table in DERIVED_TABLES:
        if table == LATE_EVENTS_TABLE:
            continue
        store.client.command(
            f"DELETE FROM `{table}` WHERE case_id IN {{ids:Array(String)}}",
            parameters={"ids": list(case_ids)},
        )


def running_after(store: Store, watermark: datetime) -> dict[str, datetime]:
    """Cases of a generation with a running clock due after ``watermark``, each with the
    next millisecond as its next alert instant: a superset of the cases whose next alert
    is after the watermark, for when the fold's exact instants are not at hand."""
    rows = store.client.query(
        "SELECT case_id FROM case_sla FINAL WHERE "
        "(fr_ended_at IS NULL AND fr_due_at > {at:DateTime64(6, 'UTC')}) OR "
        "(res_ended_at IS NULL AND res_due_at > {at:DateTime64(6, 'UTC')})",
        parameters={"at": watermark},
    ).result_rows
    soon = watermark + timedelta(milliseconds=1)
    return {case_id: soon for (case_id,) in rows}


def _newer_events(
    live: Store, read_up_to: dict[int, int], options: ReplayOptions
) -> list[tuple[bytes, str, int, int]]:
    """(raw, case, partition, offset) of the archive's rows beyond ``read_up_to``, in the
    archive's order; a redelivered event once, at its last position (as ``FINAL``)."""
    where, params = archive_range(options.since, options.until)
    params.update(mark_parameters(read_up_to))
    rows = live.client.query(
        "SELECT event_json, case_id, event_id, kafka_partition, kafka_offset FROM events "
        f"WHERE {where} AND kafka_partition >= 0 AND kafka_offset > {MARK_OF_ROW} "
        f"ORDER BY {ARCHIVE_ORDER}",
        parameters=params,
    ).result_rows
    last = {(case_id, event_id): n for n, (_, case_id, event_id, _, _) in enumerate(rows)}
    return [
        (_raw(value), case_id, partition, offset)
        for n, (value, case_id, event_id, partition, offset) in enumerate(rows)
        if last[(case_id, event_id)] == n
    ]


def _case_events(
    live: Store, case_ids: Sequence[str], read_up_to: dict[int, int], options: ReplayOptions
) -> Iterator[tuple[bytes, Position]]:
    """Every archived event of the cases, up to ``read_up_to``, in the archive's order."""
    if not case_ids:
        return
    where, params = archive_range(options.since, options.until)
    params.update(mark_parameters(read_up_to))
    params["ids"] = list(case_ids)
    rows = live.client.query(
        "SELECT event_json, kafka_partition, kafka_offset FROM events FINAL "
        f"WHERE {where} AND case_id IN {{ids:Array(String)}} "
        f"AND (kafka_partition < 0 OR kafka_offset <= {MARK_OF_ROW}) ORDER BY {ARCHIVE_ORDER}",
        parameters=params,
    ).result_rows
    for row, (value, partition, offset) in enumerate(rows, 1):
        yield _raw(value), (row, partition, offset)


def _raw(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)
