"""The synthetic city (streams.sources) and the test oracle (tests/oracle.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.contract import CHANNELS, EVENT_TYPES
from streams.sources import (
    Emitted,
    LiveCity,
    SimulatedHistory,
    SimulationConfig,
    iter_simulation,
    live_stream,
    produce,
    simulate,
)
from tests.oracle import (
    FACT_NAMES,
    expected_case_facts,
    expected_dead_letter_count,
    expected_valid_message_count,
    parse_time,
)

NOISY = SimulationConfig(
    seed=7,
    cases=1500,
    malformed_share=0.05,
    duplicate_share=0.08,
    out_of_order_share=0.1,
)

_HISTORIES: dict[SimulationConfig, SimulatedHistory] = {}


def history(config: SimulationConfig) -> SimulatedHistory:
    if config not in _HISTORIES:
        _HISTORIES[config] = simulate(config)
    return _HISTORIES[config]


OCCURRED_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}(Z|[+-]\d{2}:\d{2})$")
ID = re.compile(r"^[A-Za-z0-9._:-]+$")


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes() -> None:
    a = simulate(NOISY)
    b = simulate(NOISY)
    assert a.emitted == b.emitted
    assert orjson.dumps(a.events) == orjson.dumps(b.events)


def test_different_seed_gives_different_output() -> None:
    a = simulate(dataclasses.replace(NOISY, cases=200))
    b = simulate(dataclasses.replace(NOISY, cases=200, seed=8))
    assert [e.value for e in a.emitted] != [e.value for e in b.emitted]
    assert {e["case_id"] for e in a.events}.isdisjoint({e["case_id"] for e in b.events})


def test_noise_never_changes_the_true_history() -> None:
    clean = simulate(
        dataclasses.replace(NOISY, malformed_share=0, duplicate_share=0, out_of_order_share=0)
    )
    noisy = history(NOISY)
    assert clean.events == noisy.events
    assert [e.kind for e in clean.emitted] == ["valid"] * len(clean.events)
    assert [orjson.loads(e.value) for e in clean.emitted] == clean.events


def test_iter_simulation_streams_the_same_wire() -> None:
    assert list(iter_simulation(NOISY)) == history(NOISY).emitted


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        SimulationConfig(start=datetime(2026, 3, 1))  # naive
    with pytest.raises(ValueError):
        SimulationConfig(duplicate_share=1.5)
    with pytest.raises(ValueError):
        SimulationConfig(horizon_days=0)


# --------------------------------------------------------------------------- envelope


def test_every_valid_event_has_the_documented_envelope() -> None:
    h = history(NOISY)
    for event in h.events:
        assert list(event) == [
            "schema_version",
            "event_id",
            "case_id",
            "type",
            "occurred_at",
            "source",
            "payload",
        ]
        assert event["schema_version"] == 1
        assert event["source"] == "simulator"
        assert 8 <= len(event["event_id"]) <= 64 and ID.match(event["event_id"])
        assert 1 <= len(event["case_id"]) <= 64 and ID.match(event["case_id"])
        assert OCCURRED_AT.match(event["occurred_at"]), event["occurred_at"]
        assert event["occurred_at"].endswith("+08:00")  # Asia/Shanghai
        if event["type"] == "opened":
            assert re.fullmatch(r"[0-9a-f]{32}", event["payload"]["citizen_ref"])


def test_ids_are_unique_and_deterministic() -> None:
    h = history(NOISY)
    ids = [e["event_id"] for e in h.events]
    assert len(set(ids)) == len(ids)
    assert ids == [f"sim-7-{n:09d}" for n in range(len(ids))]
    malformed_ids = set()
    for em in h.emitted:
        if em.kind == "malformed":
            try:
                doc = orjson.loads(em.value)
            except orjson.JSONDecodeError:
                continue
            if isinstance(doc, dict) and "event_id" in doc:
                malformed_ids.add(doc["event_id"])
    assert malformed_ids and malformed_ids.isdisjoint(ids)


def test_keys_are_case_ids() -> None:
    h = history(NOISY)
    for em in h.emitted:
        if em.kind != "malformed":
            assert em.key == orjson.loads(em.value)["case_id"].encode()
    keys = [em.key for em in h.emitted if em.kind == "malformed"]
    assert None in keys and any(k is not None for k in keys)


def test_time_zone_is_the_city_local_time() -> None:
    h = simulate(SimulationConfig(cases=300, timezone="UTC"))
    assert all(e["occurred_at"].endswith("+00:00") for e in h.events)
    hours = Counter(
        datetime.fromisoformat(e["occurred_at"]).hour for e in h.events if e["type"] == "opened"
    )
    assert sum(hours[h] for h in range(9, 12)) > 3 * sum(hours[h] for h in range(2, 5))


# --------------------------------------------------------------------------- the wire


def test_wire_contains_every_valid_event_and_exact_duplicates() -> None:
    h = history(NOISY)
    valid_values = [orjson.dumps(e) for e in h.events]
    first_copies = [em.value for em in h.emitted if em.kind == "valid"]
    assert sorted(first_copies) == sorted(valid_values)  # each exactly once
    seen: set[bytes] = set()
    for em in h.emitted:
        if em.kind == "valid":
            seen.add(em.value)
        elif em.kind == "duplicate":
            assert em.value in seen  # a redelivery of an already sent message
    assert expected_valid_message_count(h) == len(h.events) + sum(
        em.kind == "duplicate" for em in h.emitted
    )


def test_noise_shares_are_roughly_as_configured() -> None:
    h = history(NOISY)
    n = len(h.events)
    kinds = Counter(em.kind for em in h.emitted)
    assert kinds["malformed"] == pytest.approx(0.05 * n, rel=0.2)
    assert kinds["duplicate"] == pytest.approx(0.08 * n, rel=0.2)
    assert expected_dead_letter_count(h) == kinds["malformed"]
    # out of order: valid messages whose event time is before one already on the wire
    late = 0
    newest = datetime.min.replace(tzinfo=UTC)
    for em in h.emitted:
        if em.kind != "valid":
            continue
        t = parse_time(orjson.loads(em.value)["occurred_at"])
        if t < newest:
            late += 1
        newest = max(newest, t)
    assert late == pytest.approx(0.1 * n, rel=0.35)
    clean = simulate(
        dataclasses.replace(
            NOISY, cases=300, out_of_order_share=0.0, duplicate_share=0.0, malformed_share=0.0
        )
    )
    times = [parse_time(orjson.loads(em.value)["occurred_at"]) for em in clean.emitted]
    assert times == sorted(times)


def test_malformed_messages_cover_every_kind() -> None:
    h = history(NOISY)
    bad = [em.value for em in h.emitted if em.kind == "malformed"]
    seen = Counter[str]()
    for value in bad:
        try:
            text = value.decode()
        except UnicodeDecodeError:
            seen["invalid_utf8"] += 1
            continue
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError:
            seen["not_json"] += 1
            continue
        if not isinstance(doc, dict):
            seen["not_object"] += 1
        elif (
            "citizen_name" in doc
            or "citizen_name" in doc.get("payload", {})
            or ("phone" in doc.get("payload", {}))
        ):
            seen["forbidden_field"] += 1
        elif doc.get("schema_version", 1) != 1:
            seen["wrong_version"] += 1
        elif doc.get("type") in ("escalated", "merged", "archived", "Opened", "OPENED"):
            seen["unknown_type"] += 1
        elif "occurred_at" in doc and not OCCURRED_AT.match(doc["occurred_at"]):
            seen["timestamp_without_offset"] += 1
        else:
            seen["missing_or_bad_enum"] += 1
    assert set(seen) == {
        "invalid_utf8",
        "not_json",
        "not_object",
        "forbidden_field",
        "wrong_version",
        "unknown_type",
        "timestamp_without_offset",
        "missing_or_bad_enum",
    }


def test_messages_against_the_contract() -> None:
    """Every valid/duplicate message decodes; every malformed one is an InvalidEvent."""
    contract = pytest.importorskip("streams.contract")
    h = history(NOISY)
    reasons = Counter[str]()
    for em in h.emitted:
        if em.kind == "malformed":
            with pytest.raises(contract.InvalidEvent) as info:
                contract.decode_event(em.value)
            reasons[info.value.reason] += 1
        else:
            event = contract.decode_event(em.value)
            assert event.case_id.encode() == em.key
    assert {"not_json", "not_object", "schema", "unsupported_version"} <= set(reasons)


# --------------------------------------------------------------------------- lifecycles


def _check_lifecycle(events: list[dict[str, Any]]) -> None:
    """A plausible lifecycle, in event-time order (times strictly increase)."""
    times = [parse_time(e["occurred_at"]) for e in events]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert events[0]["type"] == "opened"
    assert sum(e["type"] == "opened" for e in events) == 1
    owner: str | None = None
    signed = contacted = paused = resolved = closed = False
    for e in events[1:]:
        t, p = e["type"], e["payload"]
        if t == "dispatched":
            assert owner is None and not contacted
            owner, signed = p["agency"], False
        elif t == "signed_for":
            assert p["agency"] == owner
            signed = True
        elif t == "transferred":
            assert p["from_agency"] == owner and p["to_agency"] != owner
            owner, signed = p["to_agency"], False
        elif t == "returned":
            assert p["agency"] == owner
            owner = None
        elif t == "first_contact":
            assert signed and not contacted and p["agency"] == owner
            contacted = True
        elif t == "deadline_extended":
            assert signed and not resolved
        elif t == "paused":
            assert contacted and not paused and not resolved
            paused = True
        elif t == "resumed":
            assert paused
            paused = False
        elif t == "resolved":
            assert contacted and not paused and not resolved and p["agency"] == owner
            resolved = True
        elif t == "closed":
            assert resolved and not closed
            closed = True
        elif t == "callback":
            assert closed
            if not p["reached"]:
                assert "citizen_confirms_solved" not in p
        elif t == "rated":
            assert resolved
        elif t == "reopened":
            assert closed
            resolved = closed = False
        else:
            raise AssertionError(t)


def test_cases_follow_a_plausible_lifecycle() -> None:
    h = history(NOISY)
    by_case: dict[str, list[dict[str, Any]]] = {}
    for event in h.events:
        by_case.setdefault(event["case_id"], []).append(event)
    assert len(by_case) == NOISY.cases
    for events in by_case.values():
        _check_lifecycle(events)


def test_the_city_is_varied() -> None:
    """Every behaviour the brief asks for shows up in a modest run."""
    h = simulate(SimulationConfig(seed=3, cases=4000))
    types = Counter(e["type"] for e in h.events)
    assert set(types) == set(EVENT_TYPES)
    opened = [e["payload"] for e in h.events if e["type"] == "opened"]
    assert {p["channel"] for p in opened} == set(CHANNELS) - {"other"}
    assert {p["urgency"] for p in opened} == {"emergency", "urgent", "normal", "complex"}
    assert len({p["district"] for p in opened}) == 6
    assert len({p["sub_district"] for p in opened}) >= 18
    closures = Counter(e["payload"]["closure_reason"] for e in h.events if e["type"] == "resolved")
    assert closures.most_common(1)[0][0] == "fixed"
    assert len(closures) >= 6
    assert any(e["payload"].get("duplicate_of") for e in h.events if e["type"] == "resolved")
    callbacks = [e["payload"] for e in h.events if e["type"] == "callback"]
    assert {p["reached"] for p in callbacks} == {True, False}
    assert {p.get("citizen_confirms_solved") for p in callbacks} == {True, False, None}

    facts = expected_case_facts(h.events)
    statuses = Counter(f["status"] for f in facts.values())
    assert {"open", "paused", "resolved", "closed", "reopened"} <= set(statuses)
    assert statuses["closed"] > 0.5 * len(facts)
    assert statuses["open"] > 0.05 * len(facts)  # still open at the end of the horizon
    assert sum(f["ping_pongs"] for f in facts.values()) > 0
    assert sum(f["reopens"] > 0 for f in facts.values()) > 0
    rated = [f for f in facts.values() if f["satisfaction"]]
    assert 0.1 * len(facts) < len(rated) < 0.9 * len(facts)  # not everyone rates

    # diurnal: far more intake by day than at night (local time)
    hours = Counter(
        datetime.fromisoformat(e["occurred_at"]).hour for e in h.events if e["type"] == "opened"
    )
    assert sum(hours[h] for h in range(9, 12)) > 5 * sum(hours[h] for h in range(2, 5))
    # agencies differ: the slowest median time to sign for is several times the fastest
    sign: dict[str, list[float]] = {}
    for f in facts.values():
        if f["signed_for_at"] and f["transfers"] == 0 and f["returns"] == 0:
            delay = (f["signed_for_at"] - f["first_dispatched_at"]).total_seconds()
            sign.setdefault(f["agency"], []).append(delay)
    medians = sorted(sorted(v)[len(v) // 2] for v in sign.values() if len(v) > 20)
    assert medians[-1] > 5 * medians[0]


def test_simulate_10k_cases_is_fast() -> None:
    started = time.perf_counter()
    h = simulate(
        SimulationConfig(
            cases=10_000, malformed_share=0.01, duplicate_share=0.02, out_of_order_share=0.02
        )
    )
    elapsed = time.perf_counter() - started
    assert len({e["case_id"] for e in h.events}) == 10_000
    assert elapsed < 15, f"simulate(10k) took {elapsed:.1f}s"


# --------------------------------------------------------------------------- live


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


def _live(n: int, **kwargs: Any) -> tuple[list[Emitted], list[float]]:
    clock = FakeClock(1_772_400_000.0)
    out: list[Emitted] = []
    at: list[float] = []
    for em in live_stream(
        11, 50.0, speedup=600.0, clock=clock, sleep=clock.sleep, max_messages=n, **kwargs
    ):
        out.append(em)
        at.append(clock())
    return out, at


def test_live_stream_is_deterministic_and_tracks_the_clock() -> None:
    a, at = _live(3000)
    b, _ = _live(3000)
    assert a == b
    times = [parse_time(orjson.loads(em.value)["occurred_at"]).timestamp() for em in a]
    assert times == sorted(times)
    for t, now in zip(times, at, strict=True):
        assert now - 1.0 <= t <= now + 0.001
    events = [orjson.loads(em.value) for em in a]
    types = Counter(e["type"] for e in events)
    assert types["opened"] > 0 and types["signed_for"] > 0 and types["resolved"] > 0
    by_case: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_case.setdefault(e["case_id"], []).append(e)
    for evs in by_case.values():
        _check_lifecycle(evs)


def test_live_stream_rate_is_messages_per_second_once_warm() -> None:
    city = LiveCity(3, 20.0, start_ms=1_772_400_000_000, speedup=1440.0)
    for minute in range(1, 21):  # warm up: 20 simulated days
        city.poll(city.start_ms + minute * 60_000)
    sent = sum(len(city.poll(city.start_ms + minute * 60_000)) for minute in range(21, 41))
    assert sent / (20 * 60) == pytest.approx(20.0, rel=0.2)
    assert 0 < city.open_cases < 5000


def test_live_stream_is_sync_and_async() -> None:
    clock = FakeClock(1_772_400_000.0)
    stream = live_stream(4, 50.0, clock=clock, sleep=clock.sleep, max_messages=50)
    assert isinstance(stream, Iterator) and isinstance(stream, AsyncIterator)

    async def collect() -> list[Emitted]:
        out = []
        async for em in live_stream(4, 5000.0, max_messages=50):  # the real clock
            out.append(em)
        return out

    got = asyncio.run(collect())
    assert len(got) == 50 and len(list(stream)) == 50


def test_live_stream_noise() -> None:
    out, _ = _live(3000, malformed_share=0.05, duplicate_share=0.05, out_of_order_share=0.05)
    kinds = Counter(em.kind for em in out)
    assert kinds["malformed"] > 50 and kinds["duplicate"] > 50


# --------------------------------------------------------------------------- Kafka


async def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def _consume(
    bootstrap: str, topic: str, count: int, timeout: float = 60
) -> list[tuple[int, bytes | None, bytes]]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    out: list[tuple[int, bytes | None, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                out.extend((r.partition, r.key, r.value) for r in records)
    finally:
        await consumer.stop()
    return out


def _per_key(items: Iterable[tuple[bytes | None, bytes]]) -> dict[bytes | None, list[bytes]]:
    out: dict[bytes | None, list[bytes]] = {}
    for key, value in items:
        out.setdefault(key, []).append(value)
    return out


@pytest.mark.integration
def test_produce_round_trip(kafka_broker: Any) -> None:
    h = simulate(dataclasses.replace(NOISY, cases=400))
    topic = f"test-simulator-{uuid.uuid4().hex[:8]}"

    async def run() -> tuple[int, list[tuple[int, bytes | None, bytes]]]:
        await _create_topic(kafka_broker.bootstrap, topic, 4)
        sent = await produce(kafka_broker.bootstrap, topic, h.emitted)
        got = await _consume(kafka_broker.bootstrap, topic, sent)
        return sent, got

    sent, got = asyncio.run(run())
    assert sent == len(h.emitted)
    assert len(got) == sent
    wire = [(em.key, em.value) for em in h.emitted]
    assert Counter(wire) == Counter((k, v) for _, k, v in got)
    # a case's messages all land in one partition, in wire order
    partitions: dict[bytes, set[int]] = {}
    for p, k, _ in got:
        if k is not None:
            partitions.setdefault(k, set()).add(p)
    assert all(len(ps) == 1 for ps in partitions.values())
    keyed_wire = _per_key((k, v) for k, v in wire if k is not None)
    keyed_got = _per_key((k, v) for _, k, v in got if k is not None)
    assert keyed_got == keyed_wire


@pytest.mark.integration
def test_produce_paced_and_from_a_live_stream(kafka_broker: Any) -> None:
    h = simulate(SimulationConfig(seed=5, cases=60))
    topic = f"test-simulator-paced-{uuid.uuid4().hex[:8]}"

    async def run() -> tuple[int, float, int, int]:
        await _create_topic(kafka_broker.bootstrap, topic, 2)
        messages = h.emitted[:300]
        started = time.perf_counter()
        sent = await produce(kafka_broker.bootstrap, topic, messages, rate=1000.0)
        elapsed = time.perf_counter() - started
        live = live_stream(2, 400.0, max_messages=100)
        sent_live = await produce(kafka_broker.bootstrap, topic, live)
        got = await _consume(kafka_broker.bootstrap, topic, sent + sent_live)
        return sent, elapsed, sent_live, len(got)

    sent, elapsed, sent_live, got = asyncio.run(run())
    assert sent == 300 and elapsed >= 0.25
    assert sent_live == 100
    assert got == 400


# --------------------------------------------------------------------------- the oracle

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def ev(
    n: int,
    type_: str,
    payload: dict[str, Any] | None = None,
    *,
    case: str = "c1",
    at: datetime | str | None = None,
    minutes: float | None = None,
) -> dict[str, Any]:
    """A hand-made event; time T0 + ``minutes`` (default: n minutes)."""
    if at is None:
        at = T0 + timedelta(minutes=n if minutes is None else minutes)
    occurred = at if isinstance(at, str) else at.isoformat(timespec="milliseconds")
    return {
        "schema_version": 1,
        "event_id": f"evt-{case}-{n:04d}",
        "case_id": case,
        "type": type_,
        "occurred_at": occurred,
        "source": "test",
        "payload": payload or {},
    }


OPENED = {
    "channel": "app",
    "category": "noise",
    "urgency": "normal",
    "district": "D1",
    "sub_district": "S1",
    "citizen_ref": "ab" * 16,
}


def facts(events: list[dict[str, Any]], case: str = "c1") -> dict[str, Any]:
    result = expected_case_facts(events)[case]
    assert tuple(result) == FACT_NAMES
    return result


def test_oracle_ping_pong() -> None:
    events = [
        ev(0, "opened", OPENED),
        ev(1, "dispatched", {"agency": "A", "sub_unit": "a1"}),
        ev(2, "transferred", {"from_agency": "A", "to_agency": "B"}),  # new owner
        ev(3, "transferred", {"from_agency": "B", "to_agency": "A"}),  # back: ping-pong
        ev(4, "transferred", {"from_agency": "A", "to_agency": "B"}),  # again: ping-pong
        ev(5, "transferred", {"from_agency": "B", "to_agency": "C", "to_sub_unit": "c9"}),
    ]
    f = facts(events)
    assert (f["transfers"], f["ping_pongs"]) == (4, 2)
    assert (f["agency"], f["sub_unit"]) == ("C", "c9")
    # an agency that owned it via an earlier dispatch counts, even after a return
    events = [
        ev(0, "opened", OPENED),
        ev(1, "dispatched", {"agency": "A"}),
        ev(2, "returned", {"agency": "A", "reason": "wrong_agency"}),
        ev(3, "dispatched", {"agency": "B"}),
        ev(4, "transferred", {"from_agency": "B", "to_agency": "A"}),
    ]
    f = facts(events)
    assert (f["returns"], f["transfers"], f["ping_pongs"]) == (1, 1, 1)
    # to the agency it is transferred from: not a ping-pong; a never-owner: not one either
    events = [
        ev(0, "opened", OPENED),
        ev(1, "dispatched", {"agency": "A"}),
        ev(2, "transferred", {"from_agency": "A", "to_agency": "A", "to_sub_unit": "a2"}),
        ev(3, "transferred", {"from_agency": "A", "to_agency": "B"}),
    ]
    assert facts(events)["ping_pongs"] == 0
    # "earlier" is in the ordered events, not in arrival order
    shuffled = [events[3], events[0], events[2], events[1]]
    assert facts(shuffled) == facts(events)


def test_oracle_owner() -> None:
    f = facts([ev(0, "opened", OPENED)])
    assert (f["agency"], f["sub_unit"], f["first_dispatched_at"]) == ("", "", None)
    events = [
        ev(0, "opened", OPENED),
        ev(1, "dispatched", {"agency": "A", "sub_unit": "a1"}),
        ev(2, "signed_for", {"agency": "A"}),
        ev(3, "transferred", {"from_agency": "A", "to_agency": "B"}),
    ]
    f = facts(events)
    assert (f["agency"], f["sub_unit"]) == ("B", "")  # no to_sub_unit: cleared
    assert f["first_dispatched_at"] == T0 + timedelta(minutes=1)
    assert f["signed_for_at"] == T0 + timedelta(minutes=2)
    f = facts([*events, ev(4, "returned", {"agency": "B", "reason": "not_in_scope"})])
    assert (f["agency"], f["sub_unit"], f["returns"]) == ("", "", 1)
    f = facts(
        [
            *events,
            ev(4, "returned", {"agency": "B", "reason": "not_in_scope"}),
            ev(5, "dispatched", {"agency": "C", "sub_unit": "c1"}),
        ]
    )
    assert (f["agency"], f["sub_unit"]) == ("C", "c1")
    assert f["first_dispatched_at"] == T0 + timedelta(minutes=1)


def test_oracle_status() -> None:
    opened = ev(0, "opened", OPENED)
    assert facts([opened])["status"] == "open"
    assert facts([ev(1, "dispatched", {"agency": "A"})])["status"] == "unknown"
    f = facts([ev(1, "resolved", {"agency": "A", "closure_reason": "fixed"})])
    assert f["status"] == "unknown"  # no opened: unknown, whatever else happened
    assert (f["channel"], f["opened_at"], f["version"]) == ("", None, 1)
    seq = [
        (ev(1, "dispatched", {"agency": "A"}), "open"),
        (ev(2, "paused", {"reason": "awaiting_citizen"}), "paused"),
        (
            ev(
                3,
                "deadline_extended",
                {"target": "resolution", "extension_seconds": 60, "approved_by": "x"},
            ),
            "paused",
        ),
        (ev(4, "resumed"), "open"),
        (ev(5, "resolved", {"agency": "A", "closure_reason": "fixed"}), "resolved"),
        (ev(6, "closed"), "closed"),
        (ev(7, "callback", {"reached": True, "citizen_confirms_solved": False}), "closed"),
        (ev(8, "rated", {"satisfaction": "dissatisfied"}), "closed"),
        (ev(9, "reopened", {"reason": "not_solved"}), "reopened"),
        (ev(10, "first_contact", {"agency": "A", "method": "call"}), "reopened"),
        (ev(11, "resolved", {"agency": "A", "closure_reason": "no_problem_found"}), "resolved"),
        (ev(12, "paused", {"reason": "other"}), "paused"),
    ]
    events = [opened]
    for event, status in seq:
        events.append(event)
        assert facts(events)["status"] == status, event["type"]
    f = facts(events)
    assert f["version"] == 13
    assert f["first_resolved_at"] == T0 + timedelta(minutes=5)
    assert f["resolved_at"] == T0 + timedelta(minutes=11)
    assert f["closure_reason"] == "no_problem_found"
    assert f["closed_at"] == T0 + timedelta(minutes=6)
    assert (f["pauses"], f["reopens"]) == (2, 1)
    assert f["first_contact_at"] == T0 + timedelta(minutes=10)
    assert f["last_event_at"] == T0 + timedelta(minutes=12)


def test_oracle_callbacks_and_ratings() -> None:
    base = [ev(0, "opened", OPENED)]
    f = facts(base)
    assert (f["callback_reached"], f["citizen_confirms_solved"], f["satisfaction"]) == (
        False,
        None,
        "",
    )
    f = facts([*base, ev(1, "callback", {"reached": False})])
    assert (f["callback_reached"], f["citizen_confirms_solved"]) == (False, None)
    f = facts(
        [
            *base,
            ev(1, "callback", {"reached": True, "citizen_confirms_solved": True}),
            ev(2, "callback", {"reached": False}),
        ]
    )
    # reached by any callback; confirmation from the last callback that carries it
    assert (f["callback_reached"], f["citizen_confirms_solved"]) == (True, True)
    f = facts(
        [
            *base,
            ev(1, "callback", {"reached": True, "citizen_confirms_solved": True}),
            ev(2, "callback", {"reached": True, "citizen_confirms_solved": False}),
            ev(3, "callback", {"reached": False}),
        ]
    )
    assert (f["callback_reached"], f["citizen_confirms_solved"]) == (True, False)
    f = facts(
        [
            *base,
            ev(1, "rated", {"satisfaction": "dissatisfied", "score": 1}),
            ev(2, "rated", {"satisfaction": "basically_satisfied"}),
        ]
    )
    assert f["satisfaction"] == "basically_satisfied"


def test_oracle_ordering_dedup_and_time() -> None:
    # same millisecond: lifecycle rank decides (resolved 9 before reopened 13)
    same = "2026-03-02T09:00:00.123+08:00"
    a = ev(1, "reopened", {"reason": "not_solved"}, at=same)
    b = ev(2, "resolved", {"agency": "A", "closure_reason": "fixed"}, at=same)
    opened = ev(0, "opened", OPENED, at="2026-03-02T08:00:00Z")
    assert facts([opened, a, b])["status"] == "reopened"
    assert facts([opened, b, a])["status"] == "reopened"
    # sub-millisecond digits are truncated before ordering: still a tie, rank decides
    c = ev(3, "closed", at="2026-03-02T01:00:00.1239Z")
    d = ev(4, "reopened", {"reason": "other"}, at="2026-03-02T01:00:00.1231Z")
    f = facts([opened, d, c])
    assert f["status"] == "reopened"
    assert f["closed_at"] == datetime(2026, 3, 2, 1, 0, 0, 123000, tzinfo=UTC)
    assert f["opened_at"] == datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    assert f["opened_at"].tzinfo is UTC
    # offsets: +08:00 and Z name the same instant
    assert parse_time(same) == datetime(2026, 3, 2, 1, 0, 0, 123000, tzinfo=UTC)
    # same ms, same rank: event_id decides
    r1 = ev(5, "resolved", {"agency": "A", "closure_reason": "fixed"}, at=same)
    r2 = ev(6, "resolved", {"agency": "A", "closure_reason": "duplicate"}, at=same)
    assert facts([opened, r2, r1])["closure_reason"] == "duplicate"
    # duplicates by event_id: the first copy wins, version counts distinct events
    first = ev(7, "rated", {"satisfaction": "satisfied"})
    copy = dict(first, payload={"satisfaction": "dissatisfied"})
    f = facts([opened, first, copy, first])
    assert (f["version"], f["satisfaction"]) == (2, "satisfied")
    # last_event_at is the latest event, whatever the order of arrival
    late = ev(8, "closed", minutes=600)
    assert facts([late, opened])["last_event_at"] == T0 + timedelta(minutes=600)


def test_oracle_opened_fields_come_from_the_first_opened() -> None:
    other = dict(OPENED, channel="hotline", district="D2")
    f = facts([ev(2, "opened", other), ev(1, "opened", OPENED)])
    assert (f["channel"], f["district"], f["opened_at"]) == ("app", "D1", T0 + timedelta(minutes=1))


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=2**32), st.floats(min_value=0, max_value=0.5))
def test_oracle_ignores_arrival_order_and_redelivery(shuffle_seed: int, dup: float) -> None:
    """Facts are a function of the distinct event set: any order, any duplicates."""
    events = history(SimulationConfig(seed=2, cases=60, horizon_days=5)).events
    expected = expected_case_facts(events)
    rng = random.Random(shuffle_seed)
    noisy = list(events) + [e for e in events if rng.random() < dup]
    rng.shuffle(noisy)
    assert expected_case_facts(noisy) == expected


def test_oracle_on_the_simulated_wire() -> None:
    """Decoding the wire (skipping what is malformed) gives the true history's facts."""
    h = history(NOISY)
    decoded = []
    for em in h.emitted:
        if em.kind != "malformed":
            decoded.append(orjson.loads(em.value))
    assert expected_case_facts(decoded) == expected_case_facts(h.events)
    totals = expected_case_facts(h.events)
    assert sum(f["version"] for f in totals.values()) == len(h.events)
    assert sum(f["transfers"] for f in totals.values()) == sum(
        e["type"] == "transferred" for e in h.events
    )
