"""End to end: simulated city -> real Kafka broker -> real worker -> embedded ClickHouse.

The store must hold exactly what an independent oracle computes from the generated
history, every malformed message must sit in the dead-letter topic with its reason, and
redelivering everything through a restarted worker must not change a single number.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.partitioner import murmur2

from streams.contract import decode_event
from streams.core.case_state import CaseState
from streams.core.facts import CaseFacts
from streams.core.sla.clock import evaluate
from streams.core.sla.policy import load_policies
from streams.core.sla.rows import CaseSlaRow, CycleRow, sla_rows
from streams.sources.simulator import SimulationConfig, produce, simulate
from tests.oracle import expected_case_facts, parse_time
from tests.workers import WorkerProcess, rows_as_dicts

pytestmark = pytest.mark.integration
LATE_GRACE = timedelta(hours=1)


def rows_sql(row_type: type[Any], table: str) -> str:
    """All of a row type's columns, times as epoch milliseconds (exact over JSON)."""
    columns = [
        f"toUnixTimestamp64Milli({f.name}) AS {f.name}" if "datetime" in str(f.type) else f.name
        for f in dataclasses.fields(row_type)
    ]
    return f"SELECT {', '.join(columns)} FROM {table} FINAL"


def facts_sql() -> str:
    return rows_sql(CaseFacts, "case_facts")


def as_millis(value: Any) -> Any:
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else value


async def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(records) < expected and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for messages in batch.values():
                records.extend(messages)
        # Nothing beyond what was expected may be there either.
        for messages in (await consumer.getmany(timeout_ms=1500)).values():
            records.extend(messages)
    finally:
        await consumer.stop()
    return records


@pytest.fixture
def history() -> Any:
    return simulate(
        SimulationConfig(
            seed=20260301,
            cases=1500,
            malformed_share=0.03,
            duplicate_share=0.05,
            out_of_order_share=0.05,
        )
    )


@pytest.mark.parametrize(
    "events_per_message", [1, 250], ids=["one-event-messages", "ndjson-batches"]
)
def test_store_matches_oracle_and_survives_redelivery(
    kafka_broker: Any, tmp_path: Path, history: Any, events_per_message: int
) -> None:
    worker = WorkerProcess(
        bootstrap=kafka_broker.bootstrap,
        data_dir=tmp_path / "data",
        extra_env={"CIVICPULSE_LATE_GRACE_SECONDS": str(LATE_GRACE.total_seconds())},
    )
    raw_topic = worker.topic("events.raw")
    worker.ensure_topics()
    malformed = [m for m in history.emitted if m.kind == "malformed"]
    duplicates = [m for m in history.emitted if m.kind == "duplicate"]
    assert len(history.events) > 10_000 and malformed and duplicates

    produced = asyncio.run(
        produce(worker.bootstrap, raw_topic, history.emitted, events_per_message=events_per_message)
    )
    assert produced == len(history.emitted)

    expected = expected_case_facts(history.events)
    worker.start()
    try:
        worker.wait_until(
            "SELECT count() FROM events FINAL", len(history.events), what="distinct events stored"
        )
        worker.wait_until(
            "SELECT count() FROM dead_letters FINAL", len(malformed), what="dead letters stored"
        )
        worker.wait_until(
            "SELECT sum(version) FROM case_facts FINAL", len(history.events), what="facts caught up"
        )
        assert_facts_match(worker, expected)
        assert_dead_letters(worker, malformed)
        # Prometheus and the live summary count from the same stats.
        scrape = httpx.get(worker.url("/metrics"), timeout=30).text
        dead = sum(
            float(line.rsplit(" ", 1)[1])
            for line in scrape.splitlines()
            if line.startswith("civicpulse_dead_letters_total{")
        )
        summary = httpx.get(worker.url("/civicpulse/summary"), timeout=30).json()["pipeline"]
        assert dead == summary["dead_letters"] == len(malformed)
        late = expected_late_events(history.emitted, worker.partitions)
        assert late, "the history should hold events later than the grace period"
        stored_late = worker.query("SELECT event_id FROM late_events FINAL")[1]
        assert {row[0] for row in stored_late} == late
        assert_sla_rows_match_one_batch_evaluation(worker, history.events)
    finally:
        assert worker.stop() == 0, worker.log_tail()

    # Everything again, through a restarted worker: nothing may be counted twice.
    asyncio.run(
        produce(worker.bootstrap, raw_topic, history.emitted, events_per_message=events_per_message)
    )
    worker.start()
    try:
        worker.wait_until(
            "SELECT count() FROM dead_letters FINAL", 2 * len(malformed), what="second dead letters"
        )
        wait_for_processed(worker, len(history.emitted) - len(malformed))
        assert worker.scalar("SELECT count() FROM events FINAL") == len(history.events)
        assert_facts_match(worker, expected)
    finally:
        assert worker.stop() == 0, worker.log_tail()


def expected_late_events(emitted: list[Any], partitions: int) -> set[str]:
    """Event ids that reach their partition more than LATE_GRACE behind the newest event
    time seen there before them (wire order is arrival order within a partition)."""
    watermarks: dict[int, datetime] = {}
    late = set()
    for message in emitted:
        if message.kind == "malformed":
            continue
        event = orjson.loads(message.value)
        partition = (murmur2(event["case_id"].encode()) & 0x7FFFFFFF) % partitions
        at = parse_time(event["occurred_at"])
        newest = watermarks.get(partition)
        if newest is None or at > newest:
            watermarks[partition] = at
        elif newest - at > LATE_GRACE:
            late.add(event["event_id"])
    return late


def wait_for_processed(worker: WorkerProcess, count: int, timeout: float = 180) -> None:
    """Wait until this worker's case agent has consumed ``count`` messages."""
    deadline = time.monotonic() + timeout
    processed = None
    while time.monotonic() < deadline:
        processed = httpx.get(worker.url("/civicpulse/summary"), timeout=30).json()["pipeline"][
            "events_processed"
        ]
        if processed >= count:
            assert processed == count
            return
        time.sleep(0.5)
    raise AssertionError(f"case agent processed {processed} of {count}\n{worker.log_tail()}")


def assert_sla_rows_match_one_batch_evaluation(
    worker: WorkerProcess, events: list[dict[str, Any]]
) -> None:
    """What the worker stored chunk by chunk, across partitions, equals one evaluation of
    each case's whole true history: the live pipeline and a batch run cannot disagree."""
    # The worker writes a batch's facts before its SLA rows: wait for the last of them.
    # (Per case, the newest row: a case whose intake moved keeps an older row in another
    # partition, which FINAL does not merge away.)
    worker.wait_until(
        "SELECT sum(v) FROM (SELECT max(version) AS v FROM case_sla GROUP BY case_id)",
        len(events),
        what="SLA rows caught up",
    )
    policies = load_policies()
    states: dict[str, CaseState] = {}
    for event in events:
        parsed = decode_event(orjson.dumps(event))
        states.setdefault(parsed.case_id, CaseState(parsed.case_id)).apply(parsed)
    expected_sla: dict[str, dict[str, Any]] = {}
    expected_cycles: dict[tuple[str, int], dict[str, Any]] = {}
    for case_id, state in states.items():
        sla_row, cycles = sla_rows(state.facts(), evaluate(state.events, policies))
        expected_sla[case_id] = normalised(sla_row)
        for cycle in cycles:
            expected_cycles[(case_id, cycle.cycle)] = normalised(cycle)
    stored_sla = newest_by(
        rows_as_dicts(*worker.query(rows_sql(CaseSlaRow, "case_sla"))),
        lambda row: row["case_id"],
    )
    assert stored_sla == expected_sla
    stored_cycles = newest_by(
        rows_as_dicts(*worker.query(rows_sql(CycleRow, "case_cycles"))),
        lambda row: (row["case_id"], row["cycle"]),
    )
    assert stored_cycles == expected_cycles


def newest_by(rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any]) -> dict[Any, Any]:
    """The highest version of each key's rows. A row written before a case's `opened`
    arrived stays beside the newer ones under its old intake date (FINAL merges equal
    sort keys only), in no particular order: the newest one is the case's row."""
    newest: dict[Any, dict[str, Any]] = {}
    for row in rows:
        found = newest.get(key(row))
        if found is None or row["version"] > found["version"]:
            newest[key(row)] = row
    return newest


def normalised(row: Any) -> dict[str, Any]:
    """A row as it reads back over the worker's JSON: times in ms, tuples as lists."""
    out = {}
    for name, value in dataclasses.asdict(row).items():
        if isinstance(value, datetime):
            value = as_millis(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out


def assert_facts_match(worker: WorkerProcess, expected: dict[str, dict[str, Any]]) -> None:
    actual = {row["case_id"]: row for row in rows_as_dicts(*worker.query(facts_sql()))}
    assert set(actual) == set(expected)
    mismatches = []
    for case_id, want in expected.items():
        got = actual[case_id]
        for name, value in want.items():
            if got[name] != as_millis(value):
                mismatches.append((case_id, name, as_millis(value), got[name]))
    assert not mismatches, f"{len(mismatches)} facts differ, first: {mismatches[:10]}"


def assert_dead_letters(worker: WorkerProcess, malformed: list[Any]) -> None:
    records = asyncio.run(
        consume_all(worker.bootstrap, worker.topic("deadletter"), expected=len(malformed))
    )
    assert Counter(r.value for r in records) == Counter(m.value for m in malformed)
    for record in records:
        headers = dict(record.headers)
        assert headers["civicpulse-reason"], record
        assert headers["civicpulse-detail"], record
        assert headers["civicpulse-origin"].startswith(worker.topic("events.raw").encode())
    by_reason = dict(
        worker.query("SELECT reason, count() FROM dead_letters FINAL GROUP BY reason")[1]
    )
    assert sum(by_reason.values()) == len(malformed)
    assert set(by_reason) <= {
        "not_utf8",
        "not_json",
        "not_object",
        "unsupported_version",
        "schema",
    }, by_reason
