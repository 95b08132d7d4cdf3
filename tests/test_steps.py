"""The pipeline's processing steps, without Kafka: framing, dead letters, routing, folding."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from streams.app.steps import (
    RawMessage,
    apply_events,
    chunks,
    ingest,
    partition_for,
    route,
)
from streams.contract import decode_validated
from streams.contract.framing import BATCH_HEADERS
from streams.core.case_state import CaseState
from streams.core.state_codec import decode_state
from streams.sources.simulator import SimulationConfig, simulate

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def history() -> list[bytes]:
    return [m.value for m in simulate(SimulationConfig(seed=5, cases=40)).emitted]


def message(value: bytes, offset: int = 0, batch: bool = False) -> RawMessage:
    return RawMessage(
        topic="raw",
        partition=0,
        offset=offset,
        key=None,
        value=value,
        headers=BATCH_HEADERS if batch else (),
    )


def test_a_batch_message_is_decoded_line_by_line_and_bad_lines_become_dead_letters() -> None:
    good = history()[:3]
    lines = [good[0], b"{not json", good[1], b"", b'{"schema_version": 2}', good[2]]
    result = ingest([message(b"\n".join(lines), offset=7, batch=True)], now=NOW)
    assert [v.raw for v in result.valid] == good
    assert [(d.offset, d.line, d.reason, d.raw) for d in result.dead] == [
        (7, 1, "not_json", b"{not json"),
        (7, 4, "unsupported_version", b'{"schema_version": 2}'),
    ]


def test_without_the_batch_header_a_message_is_one_event() -> None:
    good = history()[:2]
    result = ingest([message(b"\n".join(good))], now=NOW)
    assert not result.valid
    assert [d.reason for d in result.dead] == ["not_json"]
    assert result.dead[0].raw == b"\n".join(good)


def test_route_keeps_each_case_on_its_partition_and_respects_the_size_limit() -> None:
    result = ingest([message(v, offset=i) for i, v in enumerate(history())], now=NOW)
    messages = route(result.valid, partitions=4, max_bytes=2000)
    assert all(len(value) <= 2000 for _, value in messages)
    seen = []
    for partition, value in messages:
        for line in value.split(b"\n"):
            case_id = orjson.loads(line)["case_id"]
            assert partition == partition_for(case_id, 4)
            seen.append(line)
    assert sorted(seen) == sorted(v.raw for v in result.valid)


def test_route_reencodes_multi_line_json_to_one_line() -> None:
    event = orjson.loads(history()[0])
    pretty = orjson.dumps(event, option=orjson.OPT_INDENT_2)
    [(_, value)] = route(ingest([message(pretty)], now=NOW).valid, partitions=4)
    assert b"\n" not in value and orjson.loads(value)["event_id"] == event["event_id"]


def test_chunks_bound_the_events_per_chunk() -> None:
    values = history()
    batch = [
        message(b"\n".join(values[i : i + 10]), offset=i, batch=True) for i in range(0, 100, 10)
    ]
    parts = list(chunks(batch, max_events=25))
    assert [len(p) for p in parts] == [2, 2, 2, 2, 2]
    assert [m for p in parts for m in p] == batch


def test_apply_events_rewrites_every_touched_case_even_when_nothing_is_new() -> None:
    internal = route(ingest([message(v) for v in history()], now=NOW).valid, partitions=1)
    batch = [message(value, offset=i, batch=True) for i, (_, value) in enumerate(internal)]
    valid = ingest(batch, now=NOW, decode=decode_validated).valid
    first = apply_events(valid, load_state=lambda _: None, cache={}, now=NOW)
    stored = dict(first.states)
    # A restarted worker (empty cache) redelivered the same batch: no new state, but every
    # row and every case is written again, so a lost store write cannot stay lost.
    again = apply_events(valid, load_state=stored.get, cache={}, now=NOW)
    assert again.states == {}
    assert again.duplicates == len(valid)
    assert len(again.event_rows) == len(valid)
    assert {f.case_id for f in again.facts} == set(stored)
    assert sorted(again.facts, key=lambda f: f.case_id) == sorted(
        first.facts, key=lambda f: f.case_id
    )
    for case_id, encoded in stored.items():
        assert isinstance(decode_state(case_id, encoded), CaseState)


def test_archive_rows_keep_each_events_line_in_its_batch_message() -> None:
    good = history()[:6]
    batch = [
        # blank and invalid lines keep their numbers, as the dead letters' do
        message(b"\n".join([good[0], b"{not json", good[1], b"", good[2]]), offset=7, batch=True),
        message(b"\n".join(good[3:5]), offset=8, batch=True),
        message(good[5], offset=9),  # a one-event message: line 0
    ]
    result = ingest(batch, now=NOW)
    assert [v.line for v in result.valid] == [0, 2, 4, 0, 1, 0]
    assert [(d.offset, d.line) for d in result.dead] == [(7, 1)]
    rows = apply_events(result.valid, load_state=lambda _: None, cache={}, now=NOW).event_rows
    assert [(r.kafka_partition, r.kafka_offset, r.line, r.event_json.encode()) for r in rows] == [
        (0, 7, 0, good[0]),
        (0, 7, 2, good[1]),
        (0, 7, 4, good[2]),
        (0, 8, 0, good[3]),
        (0, 8, 1, good[4]),
        (0, 9, 0, good[5]),
    ]


def test_decode_validated_falls_back_to_validation_for_stray_bytes() -> None:
    result = ingest(
        [message(b'{"type": "opened", "case_id": "x"}')], now=NOW, decode=decode_validated
    )
    assert not result.valid and result.dead[0].reason == "schema"
