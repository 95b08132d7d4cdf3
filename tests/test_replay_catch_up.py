"""A replay from the archive while the live worker goes on archiving: what arrives during
the replay (and in the moment before the switch) is caught up, so the switched
generation equals a replay started after it; an interrupted archive replay resumes
although the archive grew meanwhile.

The live worker's ingest step is played by ``Archiver``, which writes archive rows as
that step does (Kafka partition by case, offsets per partition, ingestion in arrival
order) into the real embedded ClickHouse the replay reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.app.steps import partition_for
from streams.contract import InvalidEvent, decode_event
from streams.replay import (
    CatchUpIncomplete,
    ReplayOptions,
    SourceData,
    catch_up,
    read_archive,
    run_replay,
)
from streams.store import Store
from streams.store import generations as gens
from streams.store.generations import get_generation
from streams.store.rows import EventRow
from tests.test_replay import (
    LATE_SQL,
    chdb_dir,
    dsn_of,
    interrupt_after_buckets,
    rows,
    small_history,
    snapshot,
)

__all__ = ["chdb_dir", "small_history"]  # fixtures, used by name

ALERTS_SQL = "SELECT * EXCEPT (worker) FROM {db}.sla_alerts FINAL ORDER BY alert_id"
PARTITIONS = 3


class Archiver:
    """Archive rows as the live ingest step writes them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.offsets = [0] * PARTITIONS
        self.clock = datetime(2026, 3, 1, tzinfo=UTC)

    def add(self, raws: Sequence[bytes], malformed: Sequence[bytes] = ()) -> None:
        """``raws`` archived; each of ``malformed`` archived with bytes cut short (what
        a faulty store or an edit by hand leaves: the replay's decoder rejects them)."""
        rows = []
        for raw in [*raws, *malformed]:
            event = decode_event(raw)
            if raw in malformed:
                raw = raw[:20]
            partition = partition_for(event.case_id, PARTITIONS)
            self.clock += timedelta(milliseconds=1)
            rows.append(
                EventRow.archived(event, raw, self.clock, partition, self.offsets[partition])
            )
            self.offsets[partition] += 1
        self.store.writer.write_events(rows)


def archive_store(directory: Path, history: Sequence[bytes]) -> tuple[str, Store, list[bytes]]:
    """(DSN, store, the history's valid events): an empty embedded store to archive into."""
    dsn = dsn_of(directory)
    return dsn, Store.open(dsn), valid(history)


def valid(history: Sequence[bytes]) -> list[bytes]:
    kept = []
    for raw in history:
        try:
            decode_event(raw)
        except InvalidEvent:
            continue
        kept.append(raw)
    return kept


def cases_of(raws: Sequence[bytes]) -> set[str]:
    return {orjson.loads(raw)["case_id"] for raw in raws}


def ids(raws: Sequence[bytes]) -> int:
    return len({(d["case_id"], d["event_id"]) for d in map(orjson.loads, raws)})


def state_of(client: Any, db: str = "default") -> dict[str, list[tuple[Any, ...]]]:
    tables = snapshot(client, db)
    tables["sla_alerts"] = rows(client, ALERTS_SQL, db)
    tables["late_events"] = rows(client, LATE_SQL, db)
    return tables


def archiving_afterwards(archiver: Archiver, more: Sequence[bytes]) -> Any:
    """The archive as a replay reads it, with ``more`` archived the moment the replay has
    read it (the live worker went on meanwhile)."""
    return archiving_afterwards_with(archiver, more)


def archiving_afterwards_with(
    archiver: Archiver, more: Sequence[bytes], malformed: Sequence[bytes] = ()
) -> Any:
    def read(store: Store) -> SourceData:
        data = read_archive(store)
        inner = data.events

        def events() -> Any:
            yield from inner
            archiver.add(more, malformed)

        data.events = events()
        return data

    return read


@pytest.mark.parametrize(("cases_per_fold", "workers"), [(catch_up.CASES_PER_FOLD, 1), (7, 2)])
def test_an_archive_replay_catches_up_with_what_is_archived_while_it_runs(
    chdb_dir: Path,
    small_history: list[bytes],
    monkeypatch: pytest.MonkeyPatch,
    cases_per_fold: int,
    workers: int,
) -> None:
    """In this process with the default fold size, and in 2 fold processes with a
    round's cases folded 7 at a time."""
    monkeypatch.setattr(catch_up, "CASES_PER_FOLD", cases_per_fold)
    dsn, store, events = archive_store(chdb_dir, small_history)
    live = store.client
    first, rest = events[: len(events) * 6 // 10], events[len(events) * 6 // 10 :]
    # the moment before the switch: ratings and call-backs of cases already read, which
    # change no row's key (rows written after the switch are only added)
    known = cases_of(first)
    at_switch = [
        raw
        for raw in rest
        if orjson.loads(raw)["type"] in ("rated", "callback")
        and orjson.loads(raw)["case_id"] in known
    ][-5:]
    # the ingest step's producer retried: five events read already are archived again
    during = [raw for raw in rest if raw not in at_switch] + first[100:105]
    assert len(at_switch) == 5
    assert cases_of(during) & cases_of(first), "newer events continue cases already read"
    assert cases_of(during) - cases_of(first), "and open new ones"
    archiver = Archiver(store)
    archiver.add(first)

    real_switch = gens.switch

    def switch_after_more(*args: Any) -> Any:
        """Fault injection at the store boundary: events are archived between the last
        catch-up round and the switch."""
        archiver.add(at_switch)
        return real_switch(*args)

    monkeypatch.setattr(gens, "switch", switch_after_more)
    caught = run_replay(
        dsn,
        archiving_afterwards(archiver, during),
        ReplayOptions(generation="caught", workers=workers),
    )
    monkeypatch.setattr(gens, "switch", real_switch)
    distinct = rows(live, "SELECT count() FROM events FINAL")[0][0]
    # caught up: the archive rows read by the rounds (a redelivery is read again); the
    # generation counts each event once, as a replay started after them does
    assert caught.switched and caught.caught_up == ids(during) + ids(at_switch)
    assert caught.events == ids([*first, *during]), "the events of the generation's build"
    assert get_generation(live, "caught").status == "active"  # type: ignore[union-attr]
    switched = state_of(live)

    # a replay started after those events gives the same rows
    after = run_replay(dsn, read_archive, ReplayOptions(generation="after", switch=False))
    assert after.caught_up == 0 and after.events == distinct
    expected = state_of(live, "civicpulse_replay_after")
    assert switched == expected
    assert caught.late_events == len(expected["late_events"])

    # what the catch-up had to do beyond the cases the newer events touch: alerts that
    # the newer events' watermark made due in cases they did not touch
    touched = cases_of(during) | cases_of(at_switch)
    first_watermark = max(decode_event(raw).occurred_at for raw in first)
    raised_later = [
        row
        for row in expected["sla_alerts"]
        if row[2] not in touched and row[6].replace(tzinfo=UTC) > first_watermark
    ]
    assert raised_later, "the newer events' watermark raises alerts of untouched cases"


def test_an_interrupted_archive_replay_resumes_although_the_archive_grew(
    chdb_dir: Path, small_history: list[bytes]
) -> None:
    dsn, store, events = archive_store(chdb_dir, small_history)
    live = store.client
    first, later = events[: len(events) * 7 // 10], events[len(events) * 7 // 10 :]
    archiver = Archiver(store)
    archiver.add(first)
    before = state_of(live)
    with pytest.raises(KeyboardInterrupt):
        run_replay(dsn, read_archive, ReplayOptions(generation="grew"), interrupt_after_buckets(3))
    # the live worker went on, and archived again the last event read of each partition
    last_read = {}
    for raw in first:
        last_read[partition_for(orjson.loads(raw)["case_id"], PARTITIONS)] = raw
    archiver.add([*later, *last_read.values()])
    assert state_of(live) == before
    resumed = run_replay(dsn, read_archive, ReplayOptions(generation="grew"))
    assert resumed.resumed_buckets == 3 and resumed.switched
    assert resumed.caught_up == ids([*later, *last_read.values()])
    switched = state_of(live)
    whole = run_replay(dsn, read_archive, ReplayOptions(generation="whole", switch=False))
    assert switched == state_of(live, "civicpulse_replay_whole")
    assert (resumed.events, resumed.cases, resumed.alerts) == (
        whole.events,
        whole.cases,
        whole.alerts,
    )
    assert resumed.alerts == len(switched["sla_alerts"])


def test_a_failed_catch_up_leaves_live_alone_before_the_switch_and_live_after_it(
    chdb_dir: Path, small_history: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn, store, events = archive_store(chdb_dir, small_history)
    live = store.client
    first, during, at_switch = events[:1200], events[1200:1800], events[1800:]
    archiver = Archiver(store)
    archiver.add(first)
    run_replay(dsn, read_archive, ReplayOptions(generation="base"))
    before = state_of(live)

    # fault injection at the store boundary: a catch-up round's read of the cases'
    # archived events fails (a ClickHouse server timing out, say)
    real_read = catch_up._case_events
    failing = True

    def read_cases(*args: Any) -> Any:
        if failing:
            raise RuntimeError("read timed out")
        return real_read(*args)

    monkeypatch.setattr(catch_up, "_case_events", read_cases)
    with pytest.raises(RuntimeError, match="read timed out"):
        run_replay(dsn, archiving_afterwards(archiver, during), ReplayOptions(generation="early"))
    early = get_generation(live, "early")
    assert early is not None and early.status == "failed" and "read timed out" in early.detail
    assert state_of(live) == before, "nothing of a replay that failed before its switch"

    # this time it fails in the round after the switch: the generation stays live
    failing = False
    real_switch = gens.switch

    def switch_then_fail(*args: Any) -> Any:
        nonlocal failing
        archiver.add(at_switch)
        switched = real_switch(*args)
        failing = True
        return switched

    monkeypatch.setattr(gens, "switch", switch_then_fail)
    with pytest.raises(CatchUpIncomplete, match=r"late is live.*read timed out"):
        run_replay(dsn, read_archive, ReplayOptions(generation="late"))
    late = get_generation(live, "late")
    assert late is not None and late.status == "active"
    assert len(state_of(live)["case_facts"]) > len(before["case_facts"])


def test_a_catch_up_dead_letters_each_malformed_row_once(
    chdb_dir: Path, small_history: list[bytes]
) -> None:
    dsn, store, events = archive_store(chdb_dir, small_history)
    live = store.client
    first, during = events[:1500], events[1500:]
    # a malformed row read by the build, in a case the newer events go on with
    go_on = cases_of(during)
    old_bad = next(raw for raw in first if orjson.loads(raw)["case_id"] in go_on)
    archiver = Archiver(store)
    archiver.add([raw for raw in first if raw != old_bad], malformed=[old_bad])
    new_bad = during[-1]
    caught = run_replay(
        dsn,
        archiving_afterwards_with(archiver, during[:-1], malformed=[new_bad]),
        ReplayOptions(generation="bad", invalid="dead-letter"),
    )
    assert caught.dead_letters == 2
    # a replay's dead letters stay in its own database; each names where its row is
    letters = rows(
        live,
        "SELECT reason, detail FROM {db}.dead_letters FINAL ORDER BY detail",
        "civicpulse_replay_bad",
    )
    assert [reason for reason, _ in letters] == ["not_json", "not_json"]
    assert letters[0][1].startswith("archive partition ")  # found by the catch-up
    assert letters[1][1].startswith("archive row ")  # found by the build
    assert caught.events == ids(events) - 2, "the valid events, each once"


def test_a_catch_up_fold_failing_in_a_fold_process_fails_the_replay_and_cleans_up(
    chdb_dir: Path, small_history: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streams.replay import engine

    dsn, store, events = archive_store(chdb_dir, small_history)
    live = store.client
    first, during = events[:1500], events[1500:]
    archiver = Archiver(store)
    archiver.add(first)
    before = state_of(live)
    real_fold_all = engine._fold_all

    def losing_catch_up_spills(tasks: Any, *args: Any) -> Any:
        """Fault injection at the fold processes' boundary: each catch-up task's spill
        file is gone by the time it is sent, so the fold fails in its process."""

        def lost() -> Any:
            for task in tasks:
                if "catch-up" in task.path:
                    Path(task.path).unlink()
                yield task

        return real_fold_all(lost(), *args)

    monkeypatch.setattr(engine, "_fold_all", losing_catch_up_spills)
    work = tmp_path / "work"
    options = ReplayOptions(generation="lost", workers=2, work_dir=work)
    with pytest.raises(FileNotFoundError, match=r"cases-0000\.bin"):
        run_replay(dsn, archiving_afterwards(archiver, during), options)
    lost = get_generation(live, "lost")
    assert lost is not None and lost.status == "failed"
    assert state_of(live) == before
    assert sorted(path.name for path in work.iterdir()) == [], "no spill file left behind"


def test_catch_up_rounds_stop_once_a_steady_stream_keeps_pace_with_them(
    chdb_dir: Path,
    small_history: list[bytes],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A live worker archiving at a steady rate: each round finds about what arrived
    while the one before ran. Once a round finds no fewer events than the one before,
    more rounds would not shrink the rest: the switch goes on, and the round after it
    takes what is left (without the ten rounds and their warning)."""
    from streams.replay import engine

    dsn, store, events = archive_store(chdb_dir, small_history)
    # each event once, so that every chunk holds as many new events
    events = list(
        {
            (d["case_id"], d["event_id"]): raw
            for raw, d in zip(events, map(orjson.loads, events), strict=True)
        }.values()
    )
    first, during = events[: len(events) // 2], events[len(events) // 2 : len(events) * 3 // 4]
    steady = events[len(events) * 3 // 4 :]
    chunk = len(steady) // 5
    archiver = Archiver(store)
    archiver.add(first)
    rounds: list[int] = []
    real_round = engine.catch_up_round

    def a_chunk_arrives_during_each_round(*args: Any) -> Any:
        """Fault injection at the archive boundary: a chunk is archived before each
        round reads (what the live worker archived while the last one ran)."""
        start = len(rounds) * chunk
        archiver.add(steady[start : start + chunk])
        result = real_round(*args)
        rounds.append(result.events)
        return result

    monkeypatch.setattr(engine, "catch_up_round", a_chunk_arrives_during_each_round)
    with caplog.at_level("WARNING"):
        result = run_replay(
            dsn, archiving_afterwards(archiver, during), ReplayOptions(generation="steady")
        )
    # round 1: what arrived during the read and one chunk; rounds 2 and 3: a chunk each,
    # so round 3 stops the rounds; then the round after the switch: a chunk
    assert rounds == [len(during) + chunk, chunk, chunk, chunk]
    assert result.switched and result.caught_up == len(during) + 4 * chunk
    assert "catch-up rounds" not in caplog.text
