"""The replay as one job: record the generation, plan, fold the buckets (in parallel),
write and checkpoint each bucket's rows, then switch. A replay that fails or is
interrupted is recorded as failed and leaves the live tables untouched; rerun with the
same id, it plans again and skips the buckets already written.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import itertools
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any

from streams.core.sla.rows import (
    CASE_CYCLES_TABLE,
    CASE_SLA_COLUMNS,
    CASE_SLA_TABLE,
    CYCLE_COLUMNS,
)
from streams.gc_tuning import tune_for_long_lived_objects
from streams.replay.buckets import bucket_count, bucket_path
from streams.replay.catch_up import (
    MAX_ROUNDS,
    CatchUpState,
    FoldAll,
    Round,
    archive_position,
    archived_events,
    catch_up_round,
    forget_cases,
    running_after,
)
from streams.replay.errors import (
    AfterSwitchError,
    ArchivePending,
    CatchUpIncomplete,
    ReplayError,
    ReplayInputError,
    ReplayInterrupted,
)
from streams.replay.fold import BucketResult, BucketTask, Invalid, _policies, fold_bucket
from streams.replay.options import ReplayOptions, described
from streams.replay.plan import LateRow, plan
from streams.replay.progress import Progress
from streams.replay.sources import SourceData, close_events, parse_marks
from streams.store import Store
from streams.store import generations as gens
from streams.store.rows import (
    CASE_FACTS_TABLE,
    CASE_FACTS_TABLE_COLUMNS,
    DEAD_LETTER_COLUMNS,
    DEAD_LETTERS_TABLE,
    EVENT_COLUMNS,
    EVENTS_TABLE,
    LATE_EVENT_COLUMNS,
    LATE_EVENTS_TABLE,
    SLA_ALERT_COLUMNS,
    SLA_ALERTS_TABLE,
)

_log = logging.getLogger(__name__)


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
    #: events added to the live raw archive at the switch (``ReplayOptions.archive``)
    archived: int = 0
    #: from the archive: events the live worker archived while the replay ran, caught up
    caught_up: int = 0
    #: events of the buckets an earlier, interrupted run had written (not folded again)
    resumed_events: int = 0

    @property
    def events_per_second(self) -> float:
        """Events this run folded, per second."""
        done = self.events - self.resumed_events
        return done / self.seconds if self.seconds > 0 else 0.0


def policies_hash(path: str | None) -> str:
    """SHA-256 over the contents of the policy file and the calendar files it uses:
    the same rules hash alike however their paths are written."""
    loaded = _policies(path)
    digest = hashlib.sha256()
    calendars = {os.path.realpath(name) for name in loaded.calendar_sources.values() if name}
    for name in [loaded.source, *sorted(calendars)]:
        if name and os.path.isfile(name):
            content = Path(name).read_bytes()
            digest.update(len(content).to_bytes(8, "big"))
            digest.update(content)
    return digest.hexdigest()


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
    if (
        existing is not None
        and existing.status == gens.ACTIVE
        and existing.detail == gens.ARCHIVE_PENDING
    ):
        return _finish_archive(live, existing, gens.replay_database(generation_id), started)
    if existing is not None and existing.status not in (gens.RUNNING, gens.FAILED):
        raise ReplayError(_taken(generation_id, existing.status))
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
    pool: Pool | None = None
    source: SourceData | None = None
    try:
        # Started before the source is read and planned: the fold processes import and
        # load the policies on the core the single-process plan pass leaves idle.
        pool = _fold_pool(options)
        source = read_source(live)
        generation = generation.but(source=source.name)
        gens.record(live.client, generation)
        replay = Store.open(dsn, database=generation.database)
        result = _build(
            live, replay, source, generation, options, progress, started, work, should_stop, pool
        )
        if source.commit is not None:
            source.commit()
        return result
    except AfterSwitchError:
        raise  # the generation is live: it must not be recorded as failed
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
        _close_pool(pool)
        if source is not None:
            close_events(source.events)
        if options.work_dir is not None:
            shutil.rmtree(work / "buckets", True)
            shutil.rmtree(work / "catch-up", True)
        else:
            shutil.rmtree(work, True)


def _taken(generation_id: str, status: str) -> str:
    """Why an id cannot be replayed again, and what to do."""
    if status == gens.DROPPED:
        return f"generation {generation_id!r} was dropped, and ids are not reused: use a new --id"
    if status == gens.ACTIVE:
        return f"generation {generation_id!r} is active (the boards read it): use a new --id"
    return f"generation {generation_id!r} is {status}: use a new --id, or drop it first"


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
    pool: Pool | None,
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
    if saved is not None and saved.options and saved.options != options.signature():
        raise ReplayError(
            f"generation {generation.generation!r} was started with other options "
            f"({described(saved.options)}; now {described(options.signature())}): resume "
            "it with the same ones, or use a new --id"
        )
    if saved is not None and source.read_up_to is not None:
        # the archive grows while the live worker runs: read what the first run read
        source.up_to = parse_marks(saved.fingerprint)
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
    # The archive goes on growing while a replay reads it: what the live worker archives
    # meanwhile is caught up before the switch (and in the moment right after it).
    catching = options.switch and source.read_up_to is not None
    template = BucketTask(
        bucket=0,
        path="",
        trusted=source.trusted,
        policies_path=options.policies_path,
        watermark=the_plan.watermark,
        since=options.since,
        until=options.until,
        updated_at=updated_at,
        generation=generation.generation,
        column_types=column_types,
        archive=options.archive,
        kafka_positions=source.kafka,
        archived_at=generation.started_at,
        pending=catching,
    )
    tasks = [
        dataclasses.replace(template, bucket=b, path=str(bucket_path(the_plan.directory, b)))
        for b in range(done_buckets, buckets)
    ]
    pending: dict[str, datetime] = {}
    bad: set[int] = set()
    for result in _fold_all(tasks, pool, options.workers, should_stop):
        if result.invalid and options.invalid == "stop":
            _, reason, detail, _, position, _ = min(result.invalid)
            raise ReplayInputError(f"{source.where(position)}: invalid event ({reason}): {detail}")
        bad.update(index for index, *_ in result.invalid)
        _write_fold(writer, result)
        pending.update(result.pending)
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
                options.signature(),
            ),
        )
        bucket_path(the_plan.directory, result.bucket).unlink(missing_ok=True)
        if progress is not None:
            progress("fold", fold_done, total_events)
        if should_stop is not None and should_stop():
            raise ReplayInterrupted("interrupted")
    late_rows = [row for row in the_plan.late if row[0] not in bad]
    _write_late(writer, late_rows, updated_at)
    late_count = len(late_rows)
    caught_up = 0
    state: CatchUpState | None = None

    def fold_all(tasks: Iterable[BucketTask]) -> Iterator[BucketResult]:
        return _fold_all(tasks, pool, options.workers, should_stop)

    if catching:
        assert source.read_up_to is not None
        state = CatchUpState(dict(source.read_up_to), the_plan.watermarks, the_plan.newest)
        if saved is not None and saved.buckets_done and the_plan.watermark is not None:
            # the skipped buckets' next alerts are not known: their running cases are
            # folded again at the first round that moves the watermark
            state.pending.update(running_after(replay, the_plan.watermark))
        state.pending.update(pending)

        def replace(case_ids: list[str], result: BucketResult) -> None:
            forget_cases(replay, case_ids)
            _write_dead_letters(writer, source, result.invalid, updated_at, by_position=True)
            _write_fold(writer, result)

        previous = 0
        for round_number in range(1, MAX_ROUNDS + 1):
            round_ = catch_up_round(live, state, options, template, work, replace, fold_all)
            if not round_.events:
                break
            _write_late(writer, round_.late, updated_at)
            caught_up += round_.events
            late_count += len(round_.late)
            if progress is not None:
                progress("catch-up", caught_up, None)
            if round_number > 1 and round_.events >= previous:
                # the archive grows as fast as rounds catch up (a steady live stream):
                # more rounds would not shrink it; the round after the switch takes it
                break
            previous = round_.events
            if round_number == MAX_ROUNDS:
                _log.warning(
                    "replay %s: the archive still grew after %d catch-up rounds; the "
                    "switch goes on, and the round after it takes what is left",
                    generation.generation,
                    MAX_ROUNDS,
                )
    dead_total = int(
        replay.client.query("SELECT count() FROM dead_letters FINAL").result_rows[0][0]
    )
    # From the generation's tables: a resumed replay folded only some buckets itself, and
    # a catch-up folds its cases (and their alerts) again.
    alerts = int(replay.client.query("SELECT count() FROM sla_alerts FINAL").result_rows[0][0])
    if caught_up and state is not None:
        # as a replay started now would count them: a redelivered event once, and the
        # valid ones only
        events_done = archived_events(live, state, options) - dead_total
        cases_done = int(
            replay.client.query("SELECT count() FROM case_facts FINAL").result_rows[0][0]
        )
    if options.switch and not events_done:
        # an empty range (of offsets, times or event times), or one of invalid events
        # only, would empty the boards
        invalid = f" ({dead_total:,} invalid, in {generation.database}.dead_letters)"
        raise ReplayInputError(
            f"{source.name}: no valid events to replay (in the range given)"
            f"{invalid if dead_total else ''}: nothing to switch to, the live tables are "
            "untouched"
        )
    if options.switch and not options.replace and source.read_up_to is None:
        _refuse_losing_cases(live, replay, source, cases_done)
    finished = generation.but(
        events=events_done,
        cases=cases_done,
        dead_letters=dead_total,
        finished_at=datetime.now(UTC),
        detail="built",
    )
    switched = False
    archived = 0
    if options.switch:
        live_database = live.client.database or "default"
        if options.archive:
            finished = finished.but(detail=gens.ARCHIVE_PENDING)
        finished = gens.switch(live.client, live_database, finished)
        switched = True
        if state is not None:
            caught = _catch_up_after_switch(
                live, state, options, template, work, updated_at, fold_all
            )
            caught_up += caught.events
            late_count += len(caught.late)
        if options.archive:
            # After the switch: a replay that failed before it archived nothing.
            archived = _copy_archive(live, finished, generation.database)
            finished = finished.but(detail="built")
            gens.record(live.client, finished)
    else:
        finished = finished.but(status=gens.BUILT)
        gens.record(live.client, finished)
    return ReplayResult(
        generation=finished,
        events=events_done,
        cases=cases_done,
        dead_letters=dead_total,
        late_events=late_count,
        alerts=alerts,
        seconds=time.perf_counter() - started,
        resumed_buckets=saved.buckets_done if saved is not None else 0,
        resumed_events=saved.events_done if saved is not None else 0,
        switched=switched,
        buckets=buckets,
        archived=archived,
        caught_up=caught_up,
    )


def _refuse_losing_cases(live: Store, replay: Store, source: SourceData, cases: int) -> None:
    """A file or topic replay holds the cases of its source only: switched to, it would
    take every other case off the boards (the live city's, say). Refused unless asked
    for (``replace``); a replay from the archive holds every archived case."""
    live_database = live.client.database or "default"
    missing = int(
        replay.client.query(
            f"SELECT count() FROM `{live_database}`.case_facts FINAL "
            "WHERE case_id NOT IN (SELECT case_id FROM case_facts)"
        ).result_rows[0][0]
    )
    if missing:
        raise ReplayInputError(
            f"{source.name}: switching to this generation ({cases:,} cases) would take "
            f"{missing:,} cases the boards show off them (a {source.name.split(':')[0]} "
            "replay holds its own cases only): nothing switched, the live tables are "
            "untouched. Give --replace to switch to it anyway, --no-switch to build it "
            "aside; to add history beside the live data, import it --to-topic (or "
            "replay this source once with --replace before the live feed starts)"
        )


def _catch_up_after_switch(
    live: Store,
    state: CatchUpState,
    options: ReplayOptions,
    template: BucketTask,
    work: Path,
    updated_at: datetime,
    fold_all: FoldAll,
) -> Round:
    """The events archived between the last round and the switch, written to the now
    live tables. Rows are only added (the live worker writes there too): each case row
    is its case's whole state, and the one with more events wins."""
    try:

        def add(_: list[str], result: BucketResult) -> None:
            _write_fold(live.writer, result)

        round_ = catch_up_round(live, state, options, template, work, add, fold_all)
        _write_late(live.writer, round_.late, updated_at)
    except BaseException as err:
        raise CatchUpIncomplete(
            f"generation {options.generation} is live, but the events archived in the "
            f"moment before the switch were not caught up ({type(err).__name__}: {err}); "
            "the live worker rewrites those cases at their next event, or replay the "
            "archive again"
        ) from err
    return round_


def _write_fold(writer: Any, result: BucketResult) -> None:
    for table, columns in result.columns.items():
        writer.write_columns(table, _TABLE_COLUMNS[table], columns)


def _write_late(writer: Any, late_rows: Sequence[LateRow], at: datetime) -> None:
    if not late_rows:
        return
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
            [at] * len(late_rows),
        ],
    )


def _copy_archive(live: Store, active: gens.Generation, replay_database: str) -> int:
    try:
        return gens.copy_archive(live.client, active.database, replay_database)
    except BaseException as err:
        raise ArchivePending(
            f"generation {active.generation} is live, but adding its events to the raw "
            f"archive did not finish ({type(err).__name__}: {err}); run the same replay "
            f"again with --id {active.generation} to add them"
        ) from err


def _finish_archive(
    live: Store, active: gens.Generation, replay_database: str, started: float
) -> ReplayResult:
    """A rerun of a replay whose switch was done and whose archive copy was not."""
    archived = _copy_archive(live, active, replay_database)
    finished = active.but(detail="built")
    gens.record(live.client, finished)
    return ReplayResult(
        generation=finished,
        events=active.events,
        cases=active.cases,
        dead_letters=active.dead_letters,
        late_events=0,
        alerts=0,
        seconds=time.perf_counter() - started,
        resumed_buckets=0,
        switched=True,
        archived=archived,
        resumed_events=active.events,  # built by the earlier run: nothing folded now
    )


_TABLE_COLUMNS: dict[str, Sequence[str]] = {
    CASE_FACTS_TABLE: CASE_FACTS_TABLE_COLUMNS,
    CASE_SLA_TABLE: CASE_SLA_COLUMNS,
    CASE_CYCLES_TABLE: CYCLE_COLUMNS,
    SLA_ALERTS_TABLE: SLA_ALERT_COLUMNS,
    EVENTS_TABLE: EVENT_COLUMNS,
}


def _write_dead_letters(
    writer: Any,
    source: SourceData,
    invalid: Sequence[Invalid],
    received: datetime,
    by_position: bool = False,
) -> None:
    """Dead letters at the event's position in the source (``SourceData.dead_letter_at``:
    a file's line, a topic's partition, offset and line, the archive's row index), or
    (``by_position``, for a catch-up, whose reads are numbered afresh) at its archive
    partition and offset with a checksum of its bytes."""
    if not invalid:
        return
    rows = [
        [
            source.name,
            *(
                (position[1], position[2], zlib.crc32(raw))
                if by_position
                else source.dead_letter_at(index, position)
            ),
            "",
            reason,
            f"{archive_position(position) if by_position else source.where(position)}: {detail}",
            raw,
            case_id,
            received,
        ]
        for index, reason, detail, case_id, position, raw in invalid
    ]
    writer.write_columns(
        DEAD_LETTERS_TABLE, DEAD_LETTER_COLUMNS, [list(c) for c in zip(*rows, strict=True)]
    )


def _fold_pool(options: ReplayOptions) -> Pool | None:
    if options.workers <= 1:
        return None
    # spawn: the parent may host an embedded ClickHouse engine, which must not be forked
    context = multiprocessing.get_context("spawn")
    # A terminal's Ctrl-C reaches the whole process group, the fold processes too, also
    # while they are still starting (importing): SIGINT is ignored while they are started
    # (an ignored signal stays ignored in a started program) and _warm ignores it too
    # (pools started from another thread, which cannot change it here; a Ctrl-C in the
    # milliseconds the pool starts is lost). Ctrl-C is this process's: it stops the
    # replay and terminates the pool (run_replay).
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main else None
    if previous is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return context.Pool(options.workers, initializer=_warm, initargs=(options.policies_path,))
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _warm(policies_path: str | None) -> None:
    """Ignore Ctrl-C (the replay's own process handles it and terminates the pool: no
    traceback from here), load the policies ahead of the first bucket and tune the
    collector for the bucket's objects (streams.gc_tuning). A failure to load is left
    for the bucket's own load to raise: a failing pool initializer would make the pool
    restart its processes forever instead of failing the replay."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(Exception):
        _policies(policies_path)
    tune_for_long_lived_objects()


def _close_pool(pool: Pool | None) -> None:
    if pool is not None:
        pool.terminate()
        pool.join()


def _fold_all(
    tasks: Iterable[BucketTask],
    pool: Pool | None,
    workers: int,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[BucketResult]:
    """Bucket results in bucket order, folded in ``pool``'s processes (None: in this one).

    At most ``workers + 1`` buckets are in flight, so the results waiting to be written
    stay bounded too; ``tasks`` is consumed as they go out, so a lazy one prepares the
    next buckets while the first fold."""
    if pool is None:
        for task in tasks:
            yield fold_bucket(task)
        return
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
