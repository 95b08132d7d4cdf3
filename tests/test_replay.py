"""civicpulse replay: determinism against a real worker, bad input, resume, switch, LA data.

Rows are compared whole, except the write timestamps (``case_facts.updated_at``,
``late_events.received_at``), which record when a row was written, not what it says.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.kafka_runtime import free_port
from streams.replay import (
    BucketTask,
    ReplayError,
    ReplayInputError,
    ReplayOptions,
    SourceData,
    export_parquet,
    read_archive,
    read_bucket,
    read_file,
    read_topic,
    run_replay,
)
from streams.sources.importers.common import ImportReport
from streams.sources.importers.la311 import read_la311
from streams.sources.importers.sinks import write_jsonl
from streams.sources.simulator import SimulationConfig, produce, simulate
from streams.store import Store, close_clients
from streams.store.client import Client
from streams.store.generations import (
    DERIVED_TABLES,
    get_generation,
    list_generations,
    load_checkpoint,
)
from tests.importing import shared_file
from tests.workers import WorkerProcess

LATE_GRACE = timedelta(hours=1)

#: what a replay recomputes, as compared: every column but write timestamps
COMPARED = {
    "case_facts": "SELECT * EXCEPT (updated_at) FROM {db}.case_facts FINAL ORDER BY case_id",
    # The live table also keeps superseded rows written before a case's `opened` arrived
    # (intake 1970-01-01, status unknown: no metric reads them, docs/metrics.md); a replay
    # sees whole cases and never writes them. Compared: each case's latest row.
    "case_sla": "SELECT * FROM {db}.case_sla FINAL ORDER BY case_id, version DESC "
    "LIMIT 1 BY case_id",
    "case_cycles": "SELECT * FROM {db}.case_cycles FINAL ORDER BY case_id, cycle",
    "case_sla_moved": "SELECT * FROM {db}.case_sla_moved FINAL ORDER BY case_id",
}
LATE_SQL = "SELECT * EXCEPT (received_at) FROM {db}.late_events FINAL ORDER BY case_id, event_id"


def rows(client: Client, sql: str, db: str = "default") -> list[tuple[Any, ...]]:
    return [tuple(row) for row in client.query(sql.format(db=db)).result_rows]


def snapshot(client: Client, db: str = "default") -> dict[str, list[tuple[Any, ...]]]:
    return {table: rows(client, sql, db) for table, sql in COMPARED.items()}


@pytest.fixture
def chdb_dir(tmp_path: Path) -> Iterator[Path]:
    """An embedded store for this test only (chDB hosts one directory per process)."""
    close_clients()
    yield tmp_path / "clickhouse"
    close_clients()


def dsn_of(path: Path) -> str:
    return f"chdb://{path}"


def file_source(path: Path) -> Callable[[Store], SourceData]:
    return lambda _store: read_file(path)


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def shuffled_within(lines: list[bytes], grace: timedelta, seed: int) -> list[bytes]:
    """The valid events reordered: each moves by less than half the grace period of
    event time, so none is later than the grace period behind the newest."""
    rng = random.Random(seed)
    half = grace.total_seconds() / 2

    def key(line: bytes) -> float:
        doc = orjson.loads(line)
        from streams.contract.codec import parse_timestamp

        return parse_timestamp(doc["occurred_at"]).timestamp() + rng.uniform(0, half)

    return sorted(lines, key=key)


def interrupt_after_buckets(written: int) -> Callable[[str, int, int | None], None]:
    """Fault injection, as a progress callback: a Ctrl-C once ``written`` buckets are
    written (the fold phase reports once before the first bucket)."""
    calls = 0

    def progress(phase: str, done: int, total: int | None) -> None:
        nonlocal calls
        if phase == "fold":
            calls += 1
            if calls == written + 1:
                raise KeyboardInterrupt

    return progress


# --------------------------------------------------------------------- determinism


@pytest.mark.integration
def test_replay_equals_the_live_worker_row_for_row(kafka_broker: Any, tmp_path: Path) -> None:
    history = simulate(
        SimulationConfig(
            seed=20260402,
            cases=700,
            malformed_share=0.02,
            duplicate_share=0.05,
            out_of_order_share=0.05,
        )
    )
    malformed = [m for m in history.emitted if m.kind == "malformed"]
    worker = WorkerProcess(
        bootstrap=kafka_broker.bootstrap,
        data_dir=tmp_path / "data",
        extra_env={"CIVICPULSE_LATE_GRACE_SECONDS": str(LATE_GRACE.total_seconds())},
    )
    worker.ensure_topics()
    raw_topic = worker.topic("events.raw")
    asyncio.run(produce(worker.bootstrap, raw_topic, history.emitted))
    worker.start()
    try:
        worker.wait_until(
            "SELECT sum(version) FROM case_facts FINAL", len(history.events), what="facts"
        )
        worker.wait_until(
            "SELECT count() FROM case_cycles FINAL",
            worker.scalar("SELECT sum(cycles) FROM case_sla FINAL"),
            what="cycles",
        )
    finally:
        assert worker.stop() == 0, worker.log_tail()

    close_clients()
    dsn = dsn_of(worker.data_dir / "clickhouse")
    try:
        live = Store.open(dsn)
        expected = snapshot(live.client)
        expected_late = rows(live.client, LATE_SQL)
        assert expected["case_facts"] and expected["case_cycles"] and expected_late

        options = {
            "invalid": "dead-letter",
            "partitions": worker.partitions,
            "late_grace": LATE_GRACE,
        }
        # 1. the wire, from a JSON Lines file (2 processes)
        wire = write_lines(tmp_path / "wire.jsonl", [m.value for m in history.emitted])
        result = run_replay(
            dsn, file_source(wire), ReplayOptions(generation="wire", workers=2, **options)
        )
        assert result.switched and result.cases == len(expected["case_facts"])
        assert snapshot(live.client) == expected
        assert rows(live.client, LATE_SQL) == expected_late
        dead = rows(live.client, "SELECT count() FROM dead_letters FINAL", "civicpulse_replay_wire")
        assert dead == [(len(malformed),)]
        # the live worker's own generation is kept, in the replay's database
        assert snapshot(live.client, "civicpulse_replay_wire") == expected

        # 2. the valid events shuffled within the grace period: same rows, nothing late
        valid = [m.value for m in history.emitted if m.kind != "malformed"]
        shuffled = write_lines(
            tmp_path / "shuffled.jsonl", shuffled_within(valid, LATE_GRACE, seed=3)
        )
        assert shuffled.read_bytes() != wire.read_bytes()
        run_replay(dsn, file_source(shuffled), ReplayOptions(generation="shuffled", **options))
        assert snapshot(live.client) == expected
        assert rows(live.client, LATE_SQL) == []

        # 3. the worker's raw topic, through the replay's own consumer group
        def topic(_store: Store) -> SourceData:
            return read_topic(worker.bootstrap, raw_topic, "civicpulse-replay-topic")

        run_replay(dsn, topic, ReplayOptions(generation="topic", **options))
        assert snapshot(live.client) == expected
        assert rows(live.client, LATE_SQL) == expected_late

        # 4. the raw archive the worker wrote
        run_replay(
            dsn, lambda store: read_archive(store), ReplayOptions(generation="archive", **options)
        )
        assert snapshot(live.client) == expected

        states = {g.generation: g.status for g in list_generations(live.client)}
        assert states == {
            "before_wire": "retired",
            "wire": "retired",
            "shuffled": "retired",
            "topic": "retired",
            "archive": "active",
        }
    finally:
        close_clients()


# --------------------------------------------------------------------- small histories


@pytest.fixture(scope="module")
def small_history() -> list[bytes]:
    history = simulate(SimulationConfig(seed=11, cases=300, duplicate_share=0.05))
    return [m.value for m in history.emitted]


def test_switch_is_atomic_per_table_and_the_old_generation_is_kept(
    chdb_dir: Path, tmp_path: Path, small_history: list[bytes]
) -> None:
    dsn = dsn_of(chdb_dir)
    first = write_lines(tmp_path / "first.jsonl", small_history[: len(small_history) // 2])
    everything = write_lines(tmp_path / "all.jsonl", small_history)
    run_replay(dsn, file_source(first), ReplayOptions(generation="g1"))
    live = Store.open(dsn).client
    half = snapshot(live)

    built = run_replay(dsn, file_source(everything), ReplayOptions(generation="g2", switch=False))
    assert not built.switched and built.generation.status == "built"
    assert snapshot(live) == half, "a generation that was not switched is not visible"
    full = snapshot(live, "civicpulse_replay_g2")
    assert len(full["case_facts"]) > len(half["case_facts"])

    from streams.store.generations import switch

    g2 = get_generation(live, "g2")
    assert g2 is not None
    switch(live, "default", g2)
    assert snapshot(live) == full
    assert snapshot(live, "civicpulse_replay_g2") == half  # g1 kept, in g2's database
    g1 = get_generation(live, "g1")
    assert g1 is not None and g1.status == "retired" and g1.database == "civicpulse_replay_g2"

    runner = CliRunner()
    env = {"CIVICPULSE_CONFIG": str(tmp_path / "none.toml")}
    close_clients()
    env["CLICKHOUSE_URL"] = dsn
    result = runner.invoke(app, ["replay", "drop", "g2"], env=env)
    assert result.exit_code == 1 and "active" in result.output
    result = runner.invoke(app, ["replay", "drop", "g1"], env=env)
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["replay", "list"], env=env)
    assert result.exit_code == 0 and "dropped" in result.output and "g2" in result.output
    live = Store.open(dsn).client
    assert snapshot(live) == full

    def tables(database: str) -> set[str]:
        query = "SELECT name FROM system.tables WHERE database = {d:String}"
        return {row[0] for row in live.query(query, parameters={"d": database}).result_rows}

    # g1's tables left g2's database; what g2 keeps there (its checkpoints and dead
    # letters) stays, since g2 is live
    assert not tables("civicpulse_replay_g2") & set(DERIVED_TABLES)
    assert {"replay_checkpoints", "dead_letters"} <= tables("civicpulse_replay_g2")
    assert load_checkpoint(Store.open(dsn, database="civicpulse_replay_g2").client, "g2")
    # g1's own database still holds the tables g1's switch retired (the live worker's)
    assert set(DERIVED_TABLES) <= tables("civicpulse_replay_g1")
    assert "replay_checkpoints" not in tables("civicpulse_replay_g1")
    result = runner.invoke(app, ["replay", "drop", "before_g1"], env=env)
    assert result.exit_code == 0, result.output
    assert "civicpulse_replay_g1 dropped" in result.output.replace("\n", "")
    databases = {row[0] for row in live.query("SHOW DATABASES").result_rows}
    assert "civicpulse_replay_g1" not in databases and "civicpulse_replay_g2" in databases

    result = runner.invoke(app, ["replay", "drop", "g1"], env=env)
    assert result.exit_code == 1 and "already dropped" in result.output
    with pytest.raises(ReplayError, match="was dropped, and ids are not reused"):
        run_replay(dsn, file_source(first), ReplayOptions(generation="g1"))
    with pytest.raises(ReplayError, match=r"is active .*use a new --id$"):
        run_replay(dsn, file_source(first), ReplayOptions(generation="g2"))


def test_an_interrupted_replay_resumes_to_the_same_result(
    chdb_dir: Path, tmp_path: Path, small_history: list[bytes]
) -> None:
    dsn = dsn_of(chdb_dir)
    path = write_lines(tmp_path / "all.jsonl", small_history)
    run_replay(dsn, file_source(path), ReplayOptions(generation="once", switch=False))
    live = Store.open(dsn).client
    before = snapshot(live)
    once = snapshot(live, "civicpulse_replay_once")

    with pytest.raises(KeyboardInterrupt):
        run_replay(
            dsn,
            file_source(path),
            ReplayOptions(generation="twice", switch=False, archive=True),
            interrupt_after_buckets(3),
        )
    failed = get_generation(live, "twice")
    assert failed is not None and failed.status == "failed" and failed.detail == "interrupted"
    assert snapshot(live) == before
    resumed = run_replay(
        dsn, file_source(path), ReplayOptions(generation="twice", switch=False, archive=True)
    )
    assert resumed.resumed_buckets == 3
    assert snapshot(live, "civicpulse_replay_twice") == once
    assert resumed.cases == len(once["case_facts"])
    # archive rows of both runs carry the generation's start: one ingestion time, so a
    # replay from the archive reads them in the file's order
    stamps = rows(live, "SELECT DISTINCT ingested_at FROM {db}.events", "civicpulse_replay_twice")
    assert stamps == [(resumed.generation.started_at,)]
    archived = rows(live, "SELECT count() FROM {db}.events FINAL", "civicpulse_replay_twice")
    assert archived == [(len({orjson.loads(line)["event_id"] for line in small_history}),)]


# --------------------------------------------------------------------- bad input


def test_bad_input_stops_naming_file_and_position_and_leaves_live_untouched(
    chdb_dir: Path, tmp_path: Path, small_history: list[bytes]
) -> None:
    dsn = dsn_of(chdb_dir)
    good = write_lines(tmp_path / "good.jsonl", small_history)
    run_replay(dsn, file_source(good), ReplayOptions(generation="good", archive=True))
    live = Store.open(dsn).client
    before = snapshot(live)
    archive_sql = "SELECT count(), sum(cityHash64(event_json)) FROM events FINAL"
    archived = rows(live, archive_sql)
    assert archived[0][0] == len({orjson.loads(line)["event_id"] for line in small_history})

    middle = len(small_history) // 2
    corrupt = list(small_history)
    corrupt[middle] = b'{"schema_version": 1, "event_id": "broken'
    path = write_lines(tmp_path / "corrupt.jsonl", corrupt)
    with pytest.raises(ReplayInputError, match=rf"corrupt\.jsonl:{middle + 1}: .*not_json"):
        run_replay(dsn, file_source(path), ReplayOptions(generation="corrupt"))

    invalid = list(small_history)
    doc = orjson.loads(invalid[middle])
    doc["type"] = "teleported"
    invalid[middle] = orjson.dumps(doc)
    path = write_lines(tmp_path / "invalid.jsonl", invalid)
    with pytest.raises(ReplayInputError, match=rf"invalid\.jsonl:{middle + 1}: .*schema"):
        run_replay(
            dsn, file_source(path), ReplayOptions(generation="invalid", buckets=1, archive=True)
        )
    # the plan stopped at it, before anything was folded: the live archive is as it was
    assert rows(live, archive_sql) == archived

    parquet = tmp_path / "events.parquet"
    assert export_parquet(good, parquet, rows_per_group=500) == len(small_history)
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(parquet.read_bytes()[: parquet.stat().st_size // 2])
    with pytest.raises(ReplayInputError, match=r"truncated\.parquet: not a readable Parquet"):
        run_replay(dsn, file_source(truncated), ReplayOptions(generation="truncated"))

    unknown = tmp_path / "events.csv"
    unknown.write_text("a,b\n")
    with pytest.raises(ReplayInputError, match=r"events\.csv: unknown format '\.csv'"):
        run_replay(dsn, file_source(unknown), ReplayOptions(generation="unknown"))

    assert snapshot(live) == before
    assert rows(live, archive_sql) == archived
    states = {g.generation: g.status for g in list_generations(live)}
    assert states["good"] == "active"
    assert {states[g] for g in ("corrupt", "invalid", "truncated", "unknown")} == {"failed"}

    # the same through the command line: exit 1, file and line in the message
    close_clients()
    result = CliRunner().invoke(
        app,
        ["replay", "run", "--from-file", str(tmp_path / "corrupt.jsonl"), "--workers", "1"],
        env={"CLICKHOUSE_URL": dsn, "CIVICPULSE_CONFIG": str(tmp_path / "none.toml")},
    )
    assert result.exit_code == 1
    flat = result.output.replace("\n", "")
    assert f"corrupt.jsonl:{middle + 1}" in flat and "live tables untouched" in flat
    live = Store.open(dsn).client
    assert snapshot(live) == before

    # a Parquet file replays like its JSON Lines original
    run_replay(dsn, file_source(parquet), ReplayOptions(generation="parquet"))
    assert snapshot(live) == before


# --------------------------------------------------------------------- real LA data


def test_la311_file_imported_and_replayed(chdb_dir: Path, tmp_path: Path) -> None:
    report = ImportReport(source="la311")
    out = tmp_path / "la311.jsonl"
    written = write_jsonl(read_la311(shared_file("data/la311-2020-01.csv"), report), out)
    assert report.imported == 9_982 and written == 39_866
    result = run_replay(dsn_of(chdb_dir), file_source(out), ReplayOptions(generation="la"))
    assert result.cases == 9_982 and result.events == 39_866
    live = Store.open(dsn_of(chdb_dir)).client
    assert rows(live, "SELECT count(), sum(version) FROM case_facts FINAL") == [(9_982, 39_866)]
    assert rows(live, "SELECT count() FROM case_sla FINAL") == [(9_982,)]
    statuses = dict(rows(live, "SELECT status, count() FROM case_facts FINAL GROUP BY status"))
    assert statuses == {"closed": 9_951, "open": 31}


# --------------------------------------------------------------------- bounded memory


def test_small_buckets_spill_to_files_and_give_the_same_tables(
    chdb_dir: Path, tmp_path: Path, small_history: list[bytes]
) -> None:
    """Every event goes through its bucket's spill file; a fold reads one bucket file
    and nothing else, so memory is one bucket per process, however many buckets."""
    dsn = dsn_of(chdb_dir)
    path = write_lines(tmp_path / "all.jsonl", small_history)
    run_replay(dsn, file_source(path), ReplayOptions(generation="whole", buckets=1, switch=False))
    live = Store.open(dsn).client
    whole = snapshot(live, "civicpulse_replay_whole")

    work = tmp_path / "work"
    seen: dict[int, int] = {}  # bucket file -> events in it, as the fold found them

    def look_at_the_spill(phase: str, done: int, total: int | None) -> None:
        if phase == "fold" and not seen:
            for spilled in sorted((work / "buckets").glob("*.bin")):
                seen[int(spilled.stem)] = sum(1 for _ in read_bucket(spilled))

    result = run_replay(
        dsn,
        file_source(path),
        ReplayOptions(generation="spilled", bucket_events=100, switch=False, work_dir=work),
        look_at_the_spill,
    )
    buckets = -(-len(small_history) // 100)
    assert result.buckets == buckets
    assert sorted(seen) == list(range(buckets))
    assert sum(seen.values()) == len(small_history)
    assert max(seen.values()) < 4 * 100  # case-hash buckets: about bucket_events each
    assert not list((work / "buckets").glob("*.bin")), "spill files are removed"
    assert snapshot(live, "civicpulse_replay_spilled") == whole
    assert rows(live, LATE_SQL, "civicpulse_replay_spilled") == rows(
        live, LATE_SQL, "civicpulse_replay_whole"
    )
    # the fold's task names its bucket file, it carries no events
    assert set(BucketTask.__dataclass_fields__) >= {"path"}
    assert "items" not in BucketTask.__dataclass_fields__


def test_a_file_replay_archives_its_events_and_the_archive_replays_them_alike(
    chdb_dir: Path, tmp_path: Path, small_history: list[bytes]
) -> None:
    """A history that only ever was a file (an import) joins the live archive at the
    switch, so a later replay from the archive (after a policy fix, say) still holds it
    and gives the same tables."""
    dsn = dsn_of(chdb_dir)
    path = write_lines(tmp_path / "history.jsonl", small_history)
    built = run_replay(
        dsn, file_source(path), ReplayOptions(generation="built", switch=False, archive=True)
    )
    live = Store.open(dsn).client
    assert built.archived == 0
    assert rows(live, "SELECT count() FROM events") == [(0,)], "not switched, not archived"
    distinct = {(d["case_id"], d["event_id"]) for d in map(orjson.loads, small_history)}
    assert len(distinct) < len(small_history)  # the history holds duplicates
    in_generation = rows(live, "SELECT count() FROM {db}.events FINAL", "civicpulse_replay_built")
    assert in_generation == [(len(distinct),)]

    result = run_replay(dsn, file_source(path), ReplayOptions(generation="file", archive=True))
    assert result.archived == len(distinct)
    assert rows(
        live,
        "SELECT count(), countIf(kafka_partition = -1), uniqExact(ingested_at) FROM events FINAL",
    ) == [(len(distinct), len(distinct), 1)]
    # the archived copies are the file's lines, numbered by line (the archive's order)
    lines = rows(live, "SELECT kafka_offset, event_json FROM events FINAL")
    assert all(small_history[number - 1] == text.encode() for number, text in lines)
    from_file = snapshot(live)
    late_from_file = rows(live, LATE_SQL)

    again = run_replay(dsn, read_archive, ReplayOptions(generation="from_archive"))
    assert again.events == len(distinct) and again.archived == 0
    assert snapshot(live) == from_file
    assert rows(live, LATE_SQL) == late_from_file


def test_the_archive_copy_keeps_what_the_archive_holds_and_finishes_when_rerun(
    chdb_dir: Path, tmp_path: Path, small_history: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from streams.contract import decode_event
    from streams.replay import ArchivePending
    from streams.store import generations
    from streams.store.rows import EventRow

    dsn = dsn_of(chdb_dir)
    store = Store.open(dsn)
    live = store.client
    # a third of the history came in through Kafka before: the archive holds it
    ingested = datetime(2026, 3, 1, tzinfo=UTC)
    known = small_history[: len(small_history) // 3]
    store.writer.write_events(
        [EventRow.archived(decode_event(raw), raw, ingested, 2, n) for n, raw in enumerate(known)]
    )
    kafka_rows_sql = (
        "SELECT case_id, event_id, ingested_at, kafka_partition, kafka_offset "
        "FROM events FINAL WHERE kafka_partition = 2 ORDER BY case_id, event_id"
    )
    kafka_rows = rows(live, kafka_rows_sql)
    distinct = {orjson.loads(line)["event_id"] for line in small_history}
    known_ids = {orjson.loads(line)["event_id"] for line in known}
    new = len(distinct - known_ids)

    # fault injection at the store boundary: the copy into the live archive fails once
    real_copy = generations.copy_archive
    failures = iter([RuntimeError("disk full")])

    def copy_failing_once(*args: Any) -> int:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real_copy(*args)

    monkeypatch.setattr(generations, "copy_archive", copy_failing_once)
    path = write_lines(tmp_path / "history.jsonl", small_history)
    with pytest.raises(ArchivePending, match=r"is live.*disk full.*--id copy"):
        run_replay(dsn, file_source(path), ReplayOptions(generation="copy", archive=True))
    pending = get_generation(live, "copy")
    assert pending is not None and pending.status == "active"
    switched = snapshot(live)
    assert len(switched["case_facts"]) > 0
    assert rows(live, "SELECT count() FROM events FINAL") == [(len(known_ids),)]

    # the rerun adds the events and nothing else: no second build, no second switch
    finished = run_replay(dsn, file_source(path), ReplayOptions(generation="copy", archive=True))
    assert finished.archived == new and finished.switched and finished.resumed_buckets == 0
    done = get_generation(live, "copy")
    assert done is not None and done.status == "active" and done.detail == "built"
    assert snapshot(live) == switched
    assert rows(live, "SELECT count() FROM events FINAL") == [(len(distinct),)]
    # the events that came through Kafka keep their partition, offset and ingestion time
    assert rows(live, kafka_rows_sql) == kafka_rows
    again = run_replay(dsn, file_source(path), ReplayOptions(generation="copy2", archive=True))
    assert again.archived == 0


def test_archive_rows_keep_kafka_positions_and_number_file_lines(
    small_history: list[bytes],
) -> None:
    import dataclasses
    from datetime import UTC, datetime

    from streams.contract import decode_event
    from streams.replay.fold import _archive_columns
    from streams.store.rows import EVENT_COLUMNS

    received = datetime(2026, 3, 1, tzinfo=UTC)
    raw = small_history[0]
    event = decode_event(raw)
    file_task = BucketTask(0, "unused", False, None, None, None, None, received, "g")
    topic_task = dataclasses.replace(file_task, kafka_positions=True)
    cases = [
        (file_task, (17, 0, 0), (-1, 17, 0)),  # line 17 of a file
        (topic_task, (3, 1041, 2), (3, 1041, 2)),  # partition 3, offset 1041, line 2 of a batch
    ]
    for task, position, (partition, offset, line) in cases:
        columns = _archive_columns([(event, raw, position)], task)
        row = dict(zip(EVENT_COLUMNS, (column[0] for column in columns), strict=True))
        assert (row["kafka_partition"], row["kafka_offset"], row["line"]) == (
            partition,
            offset,
            line,
        )
        assert row["event_json"].encode() == raw and row["ingested_at"] == received
        assert (row["event_id"], row["occurred_at"]) == (event.event_id, event.occurred_at)


def test_an_archive_replay_reads_batch_messages_in_their_order(
    chdb_dir: Path, tmp_path: Path
) -> None:
    """The live worker archives what it reads from batch messages (an importer's 200
    events a message on the raw topic, its own repartitioned ones on the case topic), a
    whole batch with one ingestion time: a replay from the archive reads the events of a
    message in their order in it, as the worker saw them. Here each message holds events
    in event time whose case (and event) ids descend, over more than the grace period:
    read by case id, as the archive was before it kept the line, they are late."""
    from datetime import UTC, datetime

    from streams.app.lateness import LatenessTracker
    from streams.app.steps import RawMessage, apply_events, ingest, route
    from streams.contract import decode_validated
    from streams.contract.framing import BATCH_HEADERS

    partitions, count = 2, 120
    start = datetime(2026, 3, 10, tzinfo=UTC)
    history = [
        orjson.dumps(
            {
                "schema_version": 1,
                "event_id": f"batch-e{count - n:04d}",
                "case_id": f"batch-case-{count - n:04d}",
                "type": "opened",
                "occurred_at": (start + n * timedelta(minutes=10)).isoformat(
                    timespec="milliseconds"
                ),
                "source": "simulator",
                "payload": {
                    "channel": "email",
                    "category": "water_outage",
                    "urgency": "urgent",
                    "district": "Riverside",
                    "sub_district": "Mill Street",
                    "citizen_ref": "862480fd2b3ec194c601baece36ae4e4",
                },
            }
        )
        for n in range(count)
    ]
    # the live worker: the importer's batch on the raw topic, routed by case to the case
    # topic in batches of a few events (each spanning more than the grace period), read
    # there, checked for lateness and archived, all in one batch (one ingestion time)
    received = datetime(2026, 3, 11, tzinfo=UTC)
    imported = RawMessage("raw", 0, 0, None, b"\n".join(history), BATCH_HEADERS)
    offsets = [0] * partitions
    messages = []
    for partition, value in route(ingest([imported], now=received).valid, partitions, 2500):
        messages.append(
            RawMessage("events", partition, offsets[partition], None, value, BATCH_HEADERS)
        )
        offsets[partition] += 1
    assert len(messages) > 2 * partitions
    valid = ingest(messages, now=received, decode=decode_validated)
    assert len(valid.valid) == count and not valid.dead
    assert LatenessTracker(grace=LATE_GRACE).observe(valid.valid, received) == []
    archived = apply_events(valid.valid, load_state=lambda _: None, cache={}, now=received)
    dsn = dsn_of(chdb_dir)
    store = Store.open(dsn)
    store.writer.write_events(archived.event_rows)
    live = store.client
    positions = [(r.kafka_partition, r.kafka_offset, r.line) for r in archived.event_rows]
    assert max(line for *_, line in positions) > 0
    stored = rows(live, "SELECT kafka_partition, kafka_offset, line FROM events FINAL")
    assert sorted(stored) == sorted(positions)

    options: dict[str, Any] = {"partitions": partitions, "late_grace": LATE_GRACE}
    from_archive = run_replay(dsn, read_archive, ReplayOptions(generation="archive", **options))
    assert (from_archive.events, from_archive.late_events) == (count, 0)
    assert rows(live, LATE_SQL) == []
    tables = snapshot(live)

    # a file replay of the same events in message order: the same tables, nothing late
    in_order = [line for m in messages for line in m.value.split(b"\n")]
    path = write_lines(tmp_path / "messages.jsonl", in_order)
    from_file = run_replay(dsn, file_source(path), ReplayOptions(generation="file", **options))
    assert (from_file.events, from_file.late_events) == (count, 0)
    assert snapshot(live) == tables

    # what the archive's old tie-break (case id, event id within a message) read: late
    def case_id(line: bytes) -> str:
        return str(orjson.loads(line)["case_id"])

    by_case = [line for m in messages for line in sorted(m.value.split(b"\n"), key=case_id)]
    path = write_lines(tmp_path / "by_case.jsonl", by_case)
    misread = run_replay(dsn, file_source(path), ReplayOptions(generation="by_case", **options))
    assert misread.late_events > 0


def test_the_archive_copy_takes_a_replay_database_archived_before_the_line_column(
    chdb_dir: Path, small_history: list[bytes]
) -> None:
    """A replay whose archive copy was left pending by a release before ``events.line``
    (0009_events_line) finishes it: the columns both tables have are copied, ``line`` is
    0 (a file's events: not from a batch message)."""
    from datetime import UTC, datetime

    from streams.contract import decode_event
    from streams.store import generations
    from streams.store.rows import EventRow

    store = Store.open(dsn_of(chdb_dir))
    live = store.client
    old = "civicpulse_replay_old"
    live.command(f"CREATE DATABASE IF NOT EXISTS {old}")
    live.command(f"CREATE TABLE {old}.events AS events")
    live.command(f"ALTER TABLE {old}.events DROP COLUMN line")
    at = datetime(2026, 3, 1, tzinfo=UTC)
    archived = [
        EventRow.archived(decode_event(raw), raw, at, -1, n)
        for n, raw in enumerate(small_history[:5], 1)
    ]
    live.insert(
        f"{old}.events",
        [[getattr(row, name) for name in EVENT_ROW_OLD_COLUMNS] for row in archived],
        column_names=list(EVENT_ROW_OLD_COLUMNS),
    )
    assert generations.copy_archive(live, "default", old) == 5
    assert rows(live, "SELECT kafka_offset, line, event_json FROM events FINAL ORDER BY 1") == [
        (n, 0, raw.decode()) for n, raw in enumerate(small_history[:5], 1)
    ]


#: the ``events`` columns before 0009_events_line
EVENT_ROW_OLD_COLUMNS = (
    "event_id",
    "case_id",
    "type",
    "occurred_at",
    "source",
    "schema_version",
    "event_json",
    "ingested_at",
    "kafka_partition",
    "kafka_offset",
)


def test_archive_defaults_per_source() -> None:
    from streams.replay.service import ReplayRequest, ReplayRequestError

    assert ReplayRequest(from_file="/tmp/events.jsonl").archive is True
    assert ReplayRequest(from_file="/tmp/events.jsonl", archive=False).archive is False
    assert ReplayRequest(from_topic="civicpulse.raw").archive is False
    assert ReplayRequest(from_archive=True).archive is False
    with pytest.raises(ReplayRequestError, match="--archive"):
        ReplayRequest(from_archive=True, archive=True)


@pytest.mark.integration
def test_import_straight_into_a_replay(
    chdb_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLICKHOUSE_URL", dsn_of(chdb_dir))
    monkeypatch.setenv("CIVICPULSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CIVICPULSE_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("CIVICPULSE_WEB_PORT", str(free_port()))  # no worker answers there
    source = shared_file("data/la311-2020-01.csv")
    result = CliRunner().invoke(app, ["import", "la311", str(source), "--replay"])
    assert result.exit_code == 0, result.output
    assert "rejected: missing_closed_date" in result.output
    kept = tmp_path / "data" / "imports" / "la311-2020-01.jsonl"
    times = [orjson.loads(line)["occurred_at"] for line in kept.read_bytes().splitlines()]
    assert len(times) == 39_866 and times == sorted(times)  # event time (all UTC, "Z")
    live = Store.open(dsn_of(chdb_dir)).client
    # in event time, nothing arrives behind the watermark: an export's record order
    # (each request's whole life together) made 39,754 of the 39,866 events late
    assert rows(live, "SELECT count() FROM late_events") == [(0,)]
    assert "late events" in result.output
    assert rows(live, "SELECT count(), sum(version) FROM case_facts FINAL") == [(9_982, 39_866)]
    assert rows(live, "SELECT count() FROM generations FINAL WHERE status = 'active'") == [(1,)]
    # the imported history is in the raw archive, for later replays from it
    assert rows(live, "SELECT count(), countIf(kafka_partition = -1) FROM events FINAL") == [
        (39_866, 39_866)
    ]
    assert "added to the archive" in result.output
    both = CliRunner().invoke(app, ["import", "la311", str(source), "--replay", "--to-topic"])
    assert both.exit_code == 1 and "exactly one of" in both.output


def test_sub_millisecond_bounds_select_the_same_events_in_plan_and_fold(
    tmp_path: Path, small_history: list[bytes]
) -> None:
    """Event times are whole milliseconds; ``--since`` / ``--until`` may not be. The plan
    pass (integer milliseconds) must keep exactly the events the fold keeps (datetimes)."""
    from datetime import UTC, datetime

    from streams.contract.codec import parse_timestamp
    from streams.replay.plan import _ceil_ms, plan

    times = [parse_timestamp(orjson.loads(line)["occurred_at"]) for line in small_history]
    newest = max(times)
    half = timedelta(microseconds=500)
    source = SourceData("test", (), str, "")
    for until in (newest + half, newest - half, newest):
        events = [(line, (n, 0, 0)) for n, line in enumerate(small_history, start=1)]
        options = ReplayOptions(generation="bounds", until=until)
        planned = plan(source, options, tmp_path / "buckets", 4, events=events)
        assert planned.watermark == max(at for at in times if at < until), until
    # bounds round up to the next whole millisecond, before 1970 too
    assert _ceil_ms(datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC)) == 0
    assert _ceil_ms(datetime(1970, 1, 1, 0, 0, 0, 1_000, tzinfo=UTC)) == 1
    assert _ceil_ms(datetime(1970, 1, 1, 0, 0, 0, 1_001, tzinfo=UTC)) == 2


def test_invalid_events_move_no_watermark_when_dead_lettered(
    tmp_path: Path, small_history: list[bytes]
) -> None:
    """As live, where only valid events reach the lateness tracker: an invalid event
    from far in the future, dead-lettered, makes no later event late, nor moves the
    alerts' event-time "now"."""
    from streams.contract.codec import format_timestamp, parse_timestamp
    from streams.replay.plan import plan

    doc = orjson.loads(small_history[0])
    newest = max(parse_timestamp(orjson.loads(line)["occurred_at"]) for line in small_history)
    doc["type"] = "teleported"
    doc["occurred_at"] = format_timestamp(newest + timedelta(days=30))
    poisoned = [orjson.dumps(doc), *small_history]
    source = SourceData("test", (), str, "")
    options = ReplayOptions(generation="vet", invalid="dead-letter", late_grace=LATE_GRACE)

    def planned(lines: list[bytes], name: str) -> Any:
        events = [(line, (n, 0, 0)) for n, line in enumerate(lines, start=1)]
        return plan(source, options, tmp_path / name, 4, events=events)

    clean, with_invalid = planned(small_history, "clean"), planned(poisoned, "poisoned")
    assert with_invalid.watermark == clean.watermark == newest
    # the same late events, shifted by the one extra line
    assert [row[1:] for row in with_invalid.late] == [row[1:] for row in clean.late]


def test_the_plan_marks_the_events_it_found_valid_for_the_fold(
    tmp_path: Path, small_history: list[bytes]
) -> None:
    """The plan checks each event (in "stop" mode it stops at the first invalid one);
    the spill record says which were valid, so the fold decodes those without a second
    schema check."""
    from streams.replay.plan import plan

    doc = orjson.loads(small_history[0])
    doc["type"] = "teleported"
    poisoned = [*small_history, orjson.dumps(doc), b"not json"]
    source = SourceData("test", (), str, "")
    for invalid, lines, expected in (
        ("dead-letter", poisoned, len(small_history)),
        ("stop", small_history, len(small_history)),
    ):
        options = ReplayOptions(generation="marks", invalid=invalid)
        directory = tmp_path / invalid
        events = [(line, (n, 0, 0)) for n, line in enumerate(lines, start=1)]
        plan(source, options, directory, 4, events=events)
        marked = [
            (raw, valid)
            for spilled in sorted(directory.glob("*.bin"))
            for _, _, raw, valid in read_bucket(spilled)
        ]
        assert sum(valid for _, valid in marked) == expected
        assert all(raw in small_history for raw, valid in marked if valid)


def test_event_times_with_a_lower_case_t_and_z_count_in_the_plan(
    tmp_path: Path, small_history: list[bytes]
) -> None:
    """RFC 3339 (and the contract) allow them; the plan pass reads them as the decoder
    does, so such an event moves the watermark as it does live."""
    from streams.contract.codec import format_timestamp, parse_timestamp
    from streams.replay.plan import plan

    newest = max(parse_timestamp(orjson.loads(line)["occurred_at"]) for line in small_history)
    doc = orjson.loads(small_history[-1])
    later = newest + timedelta(minutes=5)
    doc["occurred_at"] = format_timestamp(later).replace("T", "t").replace("Z", "z")
    lines = [*small_history, orjson.dumps(doc)]
    events = [(line, (n, 0, 0)) for n, line in enumerate(lines, start=1)]
    for invalid in ("stop", "dead-letter"):
        options = ReplayOptions(generation="lower", invalid=invalid)
        planned = plan(SourceData("test", (), str, ""), options, tmp_path / invalid, 4, events)
        assert planned.watermark == later


# --------------------------------------------------------------------- topic time range


@pytest.mark.integration
def test_a_topic_time_range_reads_the_messages_stored_in_it(
    kafka_broker: Any, small_history: list[bytes]
) -> None:
    """--from-time / --to-time: the broker's time index picks the messages stored in the
    range, in every partition; the request refuses them for other sources."""
    import time
    import uuid
    from datetime import UTC, datetime

    from aiokafka import AIOKafkaProducer

    from streams.kafka_runtime.topics import ensure_topics_sync
    from streams.replay.service import ReplayRequest, ReplayRequestError

    bootstrap = kafka_broker.bootstrap
    topic = f"time-range-{uuid.uuid4().hex[:8]}"
    ensure_topics_sync(bootstrap, {topic: 3})
    before, inside, after = small_history[:700], small_history[700:1500], small_history[1500:]

    async def send(raws: list[bytes]) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for raw in raws:
                await producer.send(topic, raw, key=orjson.loads(raw)["case_id"].encode())
            await producer.flush()
        finally:
            await producer.stop()

    def instant_between() -> datetime:
        time.sleep(0.05)  # Kafka timestamps are milliseconds: keep the batches apart
        at = datetime.now(UTC)
        time.sleep(0.05)
        return at

    asyncio.run(send(before))
    start = instant_between()
    asyncio.run(send(inside))
    end = instant_between()
    asyncio.run(send(after))

    def read(**bounds: Any) -> list[bytes]:
        data = read_topic(bootstrap, topic, f"g-{uuid.uuid4().hex[:6]}", **bounds)
        return sorted(raw for raw, _ in data.events)

    assert read(from_time=start, to_time=end) == sorted(inside)
    assert read(from_time=end) == sorted(after)
    assert read(to_time=start) == sorted(before)
    assert read(from_time=datetime.now(UTC)) == []
    assert len(read()) == len(small_history)
    with pytest.raises(ReplayRequestError, match=r"--from-time.*--from-topic only"):
        ReplayRequest(from_archive=True, from_time=start.isoformat())
    with pytest.raises(ReplayRequestError, match=r"--to-offset.*--from-topic only"):
        ReplayRequest(from_file="/tmp/x.jsonl", to_offset=3)


def test_the_command_notes_a_switch_to_other_policies_than_the_workers(
    chdb_dir: Path, tmp_path: Path, small_history: list[bytes]
) -> None:
    path = write_lines(tmp_path / "history.jsonl", small_history[:300])
    env = {"CIVICPULSE_CONFIG": str(tmp_path / "none.toml"), "CLICKHOUSE_URL": dsn_of(chdb_dir)}
    runner = CliRunner()
    other = ["--policies", "config/sla/policies-shanghai.yaml"]
    shanghai = str(Path("config/sla/policies-shanghai.yaml").resolve())
    runs = {
        "other policies": (["--id", "other", *other], {}),
        "the worker's": (["--id", "same"], {}),
        "other, not switched": (["--id", "tried", *other, "--no-switch"], {}),
        # the worker's file, named otherwise (absolute here, relative in its settings)
        "the worker's, named": (
            ["--id", "named", "--policies", shanghai],
            {"CIVICPULSE_SLA_POLICIES": "config/sla/policies-shanghai.yaml"},
        ),
    }
    notes = {}
    for label, (options, settings) in runs.items():
        result = runner.invoke(
            app, ["replay", "run", "--from-file", str(path), *options], env={**env, **settings}
        )
        assert result.exit_code == 0, result.output
        notes[label] = "rewrites each case it touches with its own" in " ".join(
            result.output.split()
        )
    assert notes == {
        "other policies": True,
        "the worker's": False,
        "other, not switched": False,
        "the worker's, named": False,
    }


def test_an_empty_range_is_refused_before_it_empties_the_boards(
    chdb_dir: Path, tmp_path: Path, small_history: list[bytes]
) -> None:
    from streams.replay.service import ReplayRequest, ReplayRequestError

    dsn = dsn_of(chdb_dir)
    path = write_lines(tmp_path / "history.jsonl", small_history)
    run_replay(dsn, file_source(path), ReplayOptions(generation="full"))
    live = Store.open(dsn).client
    before = snapshot(live)
    from datetime import UTC, datetime

    long_ago = ReplayOptions(generation="none", until=datetime(2001, 1, 1, tzinfo=UTC))
    untouched = r"no valid events to replay.*live tables are untouched"
    with pytest.raises(ReplayInputError, match=untouched):
        run_replay(dsn, file_source(path), long_ago)
    assert snapshot(live) == before
    failed = get_generation(live, "none")
    assert failed is not None and failed.status == "failed"

    # invalid events only: dead letters are no content to switch to, and are kept
    def invalid(line: bytes) -> bytes:
        return orjson.dumps({**orjson.loads(line), "type": "teleported"})

    bad_lines = [invalid(line) for line in small_history[:40]] + [b"{}"]
    bad_file = write_lines(tmp_path / "bad.jsonl", bad_lines)
    with pytest.raises(ReplayInputError, match=r"no valid events .*41 invalid.*untouched"):
        run_replay(
            dsn, file_source(bad_file), ReplayOptions(generation="bad", invalid="dead-letter")
        )
    assert snapshot(live) == before
    failed = get_generation(live, "bad")
    assert failed is not None and failed.status == "failed"
    dead_sql = "SELECT count() FROM {db}.dead_letters FINAL"
    assert rows(live, dead_sql, "civicpulse_replay_bad") == [(41,)]
    for bad, message in (
        ({"since": "2026-03-02", "until": "2026-03-01"}, "--since/--until: an empty range"),
        ({"from_time": "2026-03-01", "to_time": "2026-03-01"}, "--from-time/--to-time: an empty"),
        ({"from_offset": 9, "to_offset": 3}, "the first is after the last"),
        ({"from_time": "1969-12-31T00:00:00Z"}, "Kafka timestamps start in 1970"),
    ):
        with pytest.raises(ReplayRequestError, match=message):
            ReplayRequest(from_topic="civicpulse.raw", **bad)
