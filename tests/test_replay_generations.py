"""What a replay does with its generation beyond the happy path: a generation built
without a switch is `built` and can be dropped, a resume refuses other options, the
first invalid event in file order stops the replay, the summary's rate counts what the
run itself folded, and dead letters are stored at their position in the source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.replay import ReplayError, ReplayInputError, ReplayOptions, run_replay
from streams.store import Store, close_clients
from streams.store.generations import get_generation, load_checkpoint
from tests.test_replay import (
    chdb_dir,
    dsn_of,
    file_source,
    interrupt_after_buckets,
    rows,
    small_history,
    snapshot,
    write_lines,
)

__all__ = ["chdb_dir", "small_history"]


def invalid_copy(line: bytes, event_type: str = "teleported") -> bytes:
    doc = orjson.loads(line)
    doc["type"] = event_type
    return orjson.dumps(doc)


def test_a_generation_built_without_a_switch_is_built_and_can_be_dropped(
    chdb_dir: Path, tmp_path: Path, small_history: list[bytes]
) -> None:
    dsn = dsn_of(chdb_dir)
    path = write_lines(tmp_path / "all.jsonl", small_history)
    result = run_replay(dsn, file_source(path), ReplayOptions(generation="trial", switch=False))
    assert not result.switched and result.generation.status == "built"
    close_clients()
    env = {"CLICKHOUSE_URL": dsn, "CIVICPULSE_CONFIG": str(tmp_path / "none.toml")}
    runner = CliRunner()
    listed = runner.invoke(app, ["replay", "list"], env=env)
    assert listed.exit_code == 0 and "built" in listed.output and "running" not in listed.output
    with pytest.raises(ReplayError, match=r"'trial' is built: use a new --id, or drop it"):
        run_replay(dsn, file_source(path), ReplayOptions(generation="trial", switch=False))
    close_clients()
    dropped = runner.invoke(app, ["replay", "drop", "trial"], env=env)
    assert dropped.exit_code == 0, dropped.output
    live = Store.open(dsn).client
    databases = {row[0] for row in live.query("SHOW DATABASES").result_rows}
    assert "civicpulse_replay_trial" not in databases
    record = get_generation(live, "trial")
    assert record is not None and record.status == "dropped"


def test_a_resume_refuses_other_options_and_takes_the_same(
    chdb_dir: Path, tmp_path: Path, small_history: list[bytes]
) -> None:
    from datetime import UTC, datetime, timedelta

    from streams.contract.codec import parse_timestamp

    dsn = dsn_of(chdb_dir)
    path = write_lines(tmp_path / "all.jsonl", small_history)
    times = sorted(parse_timestamp(orjson.loads(line)["occurred_at"]) for line in small_history)
    since = times[len(times) // 3].replace(microsecond=0, tzinfo=UTC) + timedelta(seconds=1)
    assert since > datetime(2000, 1, 1, tzinfo=UTC)

    def options(**extra: object) -> ReplayOptions:
        return ReplayOptions(generation="half", buckets=8, switch=False, **extra)  # type: ignore[arg-type]

    with pytest.raises(KeyboardInterrupt):
        run_replay(dsn, file_source(path), options(since=since), interrupt_after_buckets(3))
    replay_db = Store.open(dsn, database="civicpulse_replay_half").client
    saved = load_checkpoint(replay_db, "half")
    assert saved is not None and saved.buckets_done == 3 and "since=" in saved.options
    for other in (options(), options(since=since, invalid="dead-letter")):
        with pytest.raises(ReplayError, match=r"started with other options \(--since .*now"):
            run_replay(dsn, file_source(path), other)
    resumed = run_replay(dsn, file_source(path), options(since=since))
    whole = run_replay(
        dsn,
        file_source(path),
        ReplayOptions(generation="whole", buckets=8, switch=False, since=since),
    )
    assert resumed.events == whole.events < len(small_history)
    live = Store.open(dsn).client
    assert snapshot(live, "civicpulse_replay_half") == snapshot(live, "civicpulse_replay_whole")
    # the rate counts what this run folded, not the buckets the first run wrote
    assert 0 < resumed.resumed_events < resumed.events
    assert resumed.events_per_second == pytest.approx(
        (resumed.events - resumed.resumed_events) / resumed.seconds
    )
    assert whole.resumed_events == 0


def test_stop_mode_names_the_first_invalid_event_in_file_order(
    chdb_dir: Path, tmp_path: Path, small_history: list[bytes]
) -> None:
    dsn = dsn_of(chdb_dir)
    lines = list(small_history)
    # two invalid events of cases in different buckets, the later one in the lower bucket
    import zlib

    def bucket(line: bytes) -> int:
        return zlib.crc32(orjson.loads(line)["case_id"].encode()) % 16

    first = next(i for i in range(10, len(lines)) if bucket(lines[i]) == 15)
    second = next(i for i in range(first + 100, len(lines)) if bucket(lines[i]) == 0)
    lines[first] = invalid_copy(lines[first])
    lines[second] = invalid_copy(lines[second], "vanished")
    path = write_lines(tmp_path / "two.jsonl", lines)
    with pytest.raises(ReplayInputError, match=rf"two\.jsonl:{first + 1}: invalid event \(schema"):
        run_replay(dsn, file_source(path), ReplayOptions(generation="two", buckets=16))
    # stopped by the plan: no bucket was written
    replay_db = Store.open(dsn, database="civicpulse_replay_two").client
    assert load_checkpoint(replay_db, "two") is None


def dead_letter_positions(dsn: str, generation: str) -> list[tuple[int, int, int, str]]:
    client = Store.open(dsn, database=f"civicpulse_replay_{generation}").client
    sql = "SELECT partition, offset, line, reason FROM dead_letters FINAL ORDER BY line, offset"
    return [tuple(row) for row in client.query(sql).result_rows]  # type: ignore[misc]


def test_a_file_dead_letter_is_stored_at_its_line(
    chdb_dir: Path, tmp_path: Path, small_history: list[bytes]
) -> None:
    dsn = dsn_of(chdb_dir)
    lines = [b"", *small_history[:30], b"", b"not json", *small_history[30:60]]
    lines.insert(50, invalid_copy(small_history[5]))
    path = write_lines(tmp_path / "gaps.jsonl", lines)
    options = ReplayOptions(generation="gaps", invalid="dead-letter", switch=False)
    result = run_replay(dsn, file_source(path), options)
    assert result.dead_letters == 2
    # file lines count from 1, blank ones included: partition -1, offset 0, line = line
    assert dead_letter_positions(dsn, "gaps") == [(-1, 0, 33, "not_json"), (-1, 0, 51, "schema")]


@pytest.mark.integration
def test_a_topic_dead_letter_is_stored_at_its_partition_offset_and_line(
    kafka_broker: Any, chdb_dir: Path, small_history: list[bytes]
) -> None:
    import asyncio
    import uuid

    from aiokafka import AIOKafkaProducer

    from streams.contract.framing import BATCH_HEADERS
    from streams.kafka_runtime.topics import ensure_topics_sync
    from streams.replay import read_topic

    bootstrap = kafka_broker.bootstrap
    topic = f"dead-at-{uuid.uuid4().hex[:8]}"
    ensure_topics_sync(bootstrap, {topic: 1})
    batch = [small_history[0], invalid_copy(small_history[1]), small_history[2]]

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for raw in small_history[3:10]:  # offsets 0-6
                await producer.send(topic, raw)
            await producer.send(topic, b"not json")  # offset 7
            headers = list(BATCH_HEADERS)
            await producer.send(topic, b"\n".join(batch), headers=headers)  # offset 8
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(send())
    result = run_replay(
        dsn_of(chdb_dir),
        lambda _store: read_topic(bootstrap, topic, f"g-{uuid.uuid4().hex[:6]}"),
        ReplayOptions(generation="topicdead", invalid="dead-letter", switch=False),
    )
    assert result.dead_letters == 2
    positions = dead_letter_positions(dsn_of(chdb_dir), "topicdead")
    assert sorted(positions) == [(0, 7, 0, "not_json"), (0, 8, 1, "schema")]


def test_fold_processes_ignore_ctrl_c_and_collect_garbage_seldom() -> None:
    import gc
    import signal

    from streams.gc_tuning import THRESHOLDS
    from streams.replay.engine import _close_pool, _fold_pool

    pool = _fold_pool(ReplayOptions(generation="pool", workers=2))
    assert pool is not None
    try:
        assert pool.apply(gc.get_threshold) == THRESHOLDS
        assert pool.apply(signal.getsignal, (signal.SIGINT,)) == signal.SIG_IGN
    finally:
        _close_pool(pool)
    # this process's Ctrl-C handler is back once the pool started
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_live_tables_retired_by_a_long_ids_first_switch_can_be_dropped(
    chdb_dir: Path, tmp_path: Path, small_history: list[bytes]
) -> None:
    from streams.store.generations import drop

    dsn = dsn_of(chdb_dir)
    long_id = "g" * 40  # the longest id: before_<id> is longer than an id may be
    path = write_lines(tmp_path / "all.jsonl", small_history[:200])
    run_replay(dsn, file_source(path), ReplayOptions(generation=long_id))
    live = Store.open(dsn).client
    dropped = drop(live, f"before_{long_id}")
    assert dropped.status == "dropped"
    query = "SELECT name FROM system.tables WHERE database = {d:String}"
    left = {
        r[0]
        for r in live.query(query, parameters={"d": f"civicpulse_replay_{long_id}"}).result_rows
    }
    # the active generation's own tables stay; the retired live tables are gone
    assert "replay_checkpoints" in left and "case_facts" not in left


def test_the_collector_is_tuned_for_a_replay_and_restored_after_it() -> None:
    import gc

    from streams.gc_tuning import THRESHOLDS, tuned_for_long_lived_objects

    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    with tuned_for_long_lived_objects():
        assert gc.get_threshold() == THRESHOLDS
        assert gc.get_freeze_count() > frozen
    assert gc.get_threshold() == before and gc.get_freeze_count() == frozen


def test_a_file_replay_that_would_take_cases_off_the_boards_needs_replace(
    chdb_dir: Path, tmp_path: Path, small_history: list[bytes]
) -> None:
    """The live tables hold a city's cases; a file of some of them (an import, say)
    switched to would leave the boards with the file's cases only."""
    dsn = dsn_of(chdb_dir)
    everything = write_lines(tmp_path / "all.jsonl", small_history)
    run_replay(dsn, file_source(everything), ReplayOptions(generation="city"))
    live = Store.open(dsn).client
    before = snapshot(live)
    cases = {orjson.loads(line)["case_id"] for line in small_history}
    some = sorted(cases)[:20]
    part = write_lines(
        tmp_path / "part.jsonl",
        [line for line in small_history if orjson.loads(line)["case_id"] in some],
    )
    with pytest.raises(ReplayInputError, match=rf"{len(cases) - 20:,} cases .*--replace"):
        run_replay(dsn, file_source(part), ReplayOptions(generation="part"))
    assert snapshot(live) == before
    built = run_replay(dsn, file_source(part), ReplayOptions(generation="aside", switch=False))
    assert built.cases == 20 and snapshot(live) == before
    replaced = run_replay(dsn, file_source(part), ReplayOptions(generation="only", replace=True))
    assert replaced.switched
    assert rows(live, "SELECT count() FROM {db}.case_facts FINAL") == [(20,)]
