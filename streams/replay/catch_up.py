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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from streams.replay.buckets import write_bucket
from streams.replay.fold import BucketResult, BucketTask, fold_bucket
from streams.replay.options import ReplayOptions
from streams.replay.plan import LateRow, _Plan, plan
from streams.replay.sources import (
    ARCHIVE_ORDER,
    BEYOND_MARKS,
    UP_TO_MARKS,
    Position,
    SourceData,
    archive_range,
    as_bytes,
    close_events,
    mark_parameters,
)
from streams.store import Store
from streams.store.client import open_private_client
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
    #: the newer events' late rows (the caller writes them)
    late: list[LateRow] = field(default_factory=list)


#: (the cases folded together, their rows): writes them where the round goes
Write = Callable[[list[str], BucketResult], None]
#: folds tasks (in the replay's processes), yielding the results in task order
FoldAll = Callable[[Iterable[BucketTask]], Iterator[BucketResult]]

#: cases folded together: bounds the memory of a fold, as a bucket does for the build,
#: and the case ids sent in one query (a ClickHouse server takes them in the URL)
CASES_PER_FOLD = 5_000


def catch_up_round(
    live: Store,
    state: CatchUpState,
    options: ReplayOptions,
    template: BucketTask,
    work: Path,
    write: Write,
    fold_all: FoldAll | None = None,
) -> Round:
    """Read what the archive holds beyond ``state.read_up_to``, find its late events, and
    fold again the cases it touches or whose next alert its watermark reaches (with
    ``fold_all``, in the replay's fold processes), handing their rows to ``write``.
    ``state`` moves on."""
    directory = work / "catch-up"
    touched: set[str] = set()
    read_up_to = dict(state.read_up_to)
    shell = SourceData(
        name="archive (catch-up)",
        events=_newer_events(live, state.read_up_to, options, touched, read_up_to),
        where=archive_position,
        fingerprint="",
        trusted=True,
    )
    try:
        the_plan: _Plan = plan(
            shell, options, directory, 1, watermarks=state.watermarks, newest=state.newest
        )
    finally:
        close_events(shell.events)
    if not the_plan.events:
        return Round()
    watermark = the_plan.watermark
    if watermark is not None:
        touched.update(c for c, at in state.pending.items() if at <= watermark)
    ids = sorted(touched)
    chunks = [ids[start : start + CASES_PER_FOLD] for start in range(0, len(ids), CASES_PER_FOLD)]

    def tasks() -> Iterator[BucketTask]:
        """Each group's events spilled as the fold asks for it: the next groups are read
        while the first fold."""
        for number, chunk in enumerate(chunks):
            path = _spill_path(directory, number)
            write_bucket(path, _case_events(live, chunk, read_up_to, options))
            yield dataclasses.replace(
                template, bucket=number, path=str(path), watermark=watermark, pending=True
            )

    results = map(fold_bucket, tasks()) if fold_all is None else fold_all(tasks())
    for result in results:
        chunk = chunks[result.bucket]
        # an invalid event read by an earlier pass is a dead letter already
        result.invalid = [bad for bad in result.invalid if _beyond(bad[4], state.read_up_to)]
        write(chunk, result)
        for case_id in chunk:
            state.pending.pop(case_id, None)
        state.pending.update(result.pending)
        _spill_path(directory, result.bucket).unlink(missing_ok=True)
    state.read_up_to = read_up_to
    state.watermarks = the_plan.watermarks
    state.newest = the_plan.newest
    return Round(the_plan.events, late=the_plan.late)


def _spill_path(directory: Path, number: int) -> Path:
    return directory / f"cases-{number:04d}.bin"


def archive_position(at: Position) -> str:
    return f"archive partition {at[1]} offset {at[2]}"


def _beyond(at: Position, read_up_to: dict[int, int]) -> bool:
    return at[1] >= 0 and at[2] > read_up_to.get(at[1], -1)


#: the derived tables whose key holds more than the case (its intake date, a cycle, an
#: alert's date and agency): a case folded again may leave a row under its old key.
#: ``case_facts`` and ``case_sla_moved`` are keyed by the case alone, and the row with
#: the highest version (the most events) wins; ``late_events`` belong to events.
REKEYED_TABLES: tuple[str, ...] = tuple(
    t for t in DERIVED_TABLES if t not in ("case_facts", "case_sla_moved", LATE_EVENTS_TABLE)
)


def forget_cases(store: Store, case_ids: Sequence[str]) -> None:
    """Delete the cases' rows from a generation's tables whose key may have changed (its
    intake date, its alerts' agency), before their new rows are written."""
    if not case_ids:
        return
    for table in REKEYED_TABLES:
        store.client.command(
            f"DELETE FROM `{table}` WHERE case_id IN {{ids:Array(String)}}",
            parameters={"ids": list(case_ids)},
        )


def archived_events(live: Store, state: CatchUpState, options: ReplayOptions) -> int:
    """The archive's events up to ``state.read_up_to`` in the replay's time range, as a
    replay started now would read them (a redelivered event once)."""
    where, params = archive_range(options.since, options.until)
    params.update(mark_parameters(state.read_up_to))
    return int(
        live.client.query(
            f"SELECT count() FROM events FINAL WHERE {where} AND {UP_TO_MARKS}",
            parameters=params,
        ).result_rows[0][0]
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
    live: Store,
    read_up_to: dict[int, int],
    options: ReplayOptions,
    touched: set[str],
    reached: dict[int, int],
) -> Iterator[tuple[bytes, Position]]:
    """The archive's rows beyond ``read_up_to``, in the archive's order, streamed through a
    client of its own; a redelivered event once, at its last position (as ``FINAL``).
    Notes their cases in ``touched`` and the offsets they reach in ``reached``."""
    where, params = archive_range(options.since, options.until)
    params.update(mark_parameters(read_up_to))
    client = open_private_client(live.dsn, database=live.client.database or "default")
    row = 0
    try:
        with client.query_column_block_stream(
            "SELECT event_json, case_id, kafka_partition, kafka_offset FROM ("
            "SELECT event_json, case_id, event_id, ingested_at, kafka_partition, kafka_offset, "
            f"line FROM events WHERE {where} AND {BEYOND_MARKS} "
            "ORDER BY ingested_at DESC, kafka_partition DESC, kafka_offset DESC, line DESC "
            f"LIMIT 1 BY case_id, event_id) ORDER BY {ARCHIVE_ORDER}",
            parameters=params,
        ) as blocks:
            for block in blocks:
                for value, case_id, partition, offset in zip(*block, strict=True):
                    touched.add(case_id)
                    if offset > reached.get(partition, -1):
                        reached[partition] = offset
                    row += 1
                    yield as_bytes(value), (row, partition, offset)
    finally:
        client.close()


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
        f"WHERE {where} AND case_id IN {{ids:Array(String)}} AND {UP_TO_MARKS} "
        f"ORDER BY {ARCHIVE_ORDER}",
        parameters=params,
    ).result_rows
    for row, (value, partition, offset) in enumerate(rows, 1):
        yield as_bytes(value), (row, partition, offset)
