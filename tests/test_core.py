"""The pure domain core: case state, ordering, facts; and its independence from adapters."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.contract import Event, decode_event
from streams.core.case_state import CaseState, derive_facts
from streams.core.state_codec import decode_state, encode_state
from streams.sources.simulator import SimulationConfig, simulate
from tests.oracle import expected_case_facts

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OPENED = {
    "channel": "hotline",
    "category": "street_lighting",
    "urgency": "normal",
    "district": "north",
    "sub_district": "north-1",
    "citizen_ref": "ab" * 16,
}


def event(n: int, type_: str, minutes: float, payload: dict[str, Any], case: str = "c1") -> Event:
    return decode_event(
        orjson.dumps(
            {
                "schema_version": 1,
                "event_id": f"evt-{case}-{n:04d}",
                "case_id": case,
                "type": type_,
                "occurred_at": (T0 + timedelta(minutes=minutes)).isoformat(),
                "source": "test",
                "payload": payload,
            }
        )
    )


def ping_pong_case() -> list[Event]:
    return [
        event(1, "opened", 0, OPENED),
        event(2, "dispatched", 5, {"agency": "roads", "sub_unit": "north"}),
        event(3, "signed_for", 30, {"agency": "roads"}),
        event(4, "transferred", 60, {"from_agency": "roads", "to_agency": "power"}),
        event(5, "transferred", 90, {"from_agency": "power", "to_agency": "roads"}),
        event(6, "first_contact", 100, {"agency": "roads", "method": "call"}),
        event(7, "paused", 110, {"reason": "awaiting_citizen"}),
        event(8, "resumed", 200, {}),
        event(9, "resolved", 300, {"agency": "roads", "closure_reason": "fixed"}),
        event(10, "callback", 400, {"reached": True, "citizen_confirms_solved": False}),
        event(11, "reopened", 410, {"reason": "not_solved"}),
        event(12, "resolved", 500, {"agency": "roads", "closure_reason": "no_problem_found"}),
        event(13, "rated", 600, {"satisfaction": "dissatisfied"}),
    ]


def test_facts_of_a_ping_pong_case() -> None:
    facts = CaseState("c1", ping_pong_case()).facts()
    assert facts.version == 13
    assert facts.status == "resolved"
    assert facts.opened_at == T0
    assert facts.agency == "roads" and facts.sub_unit == ""
    assert facts.first_dispatched_at == T0 + timedelta(minutes=5)
    assert facts.first_contact_at == T0 + timedelta(minutes=100)
    assert facts.first_resolved_at == T0 + timedelta(minutes=300)
    assert facts.resolved_at == T0 + timedelta(minutes=500)
    assert facts.closure_reason == "no_problem_found"
    assert (facts.transfers, facts.ping_pongs, facts.pauses, facts.reopens) == (2, 1, 1, 1)
    assert facts.callback_reached is True and facts.citizen_confirms_solved is False
    assert facts.satisfaction == "dissatisfied"
    assert facts.last_event_at == T0 + timedelta(minutes=600)


def test_events_before_opened_leave_status_unknown() -> None:
    state = CaseState("c1", [event(2, "dispatched", 5, {"agency": "roads"})])
    assert state.facts().status == "unknown" and state.facts().opened_at is None
    assert state.apply(event(1, "opened", 0, OPENED))
    assert state.facts().status == "open"


def test_returned_clears_the_owner() -> None:
    facts = CaseState(
        "c1",
        [
            event(1, "opened", 0, OPENED),
            event(2, "dispatched", 1, {"agency": "roads", "sub_unit": "n"}),
            event(3, "returned", 2, {"agency": "roads", "reason": "wrong_agency"}),
        ],
    ).facts()
    assert (facts.agency, facts.sub_unit, facts.returns) == ("", "", 1)


def test_same_instant_orders_by_lifecycle_not_arrival() -> None:
    resolved = event(2, "resolved", 0, {"agency": "roads", "closure_reason": "fixed"})
    reopened = event(1, "reopened", 0, {"reason": "citizen_disputes"})
    opened = event(0, "opened", -1, OPENED)
    assert CaseState("c1", [reopened, resolved, opened]).facts().status == "reopened"


def test_duplicate_event_is_ignored() -> None:
    state = CaseState("c1", ping_pong_case())
    assert not state.apply(ping_pong_case()[3])
    assert state.facts().transfers == 2


def test_event_of_another_case_is_refused() -> None:
    with pytest.raises(ValueError, match="belongs to"):
        CaseState("other", ping_pong_case())


@settings(max_examples=60, deadline=None)
@given(st.permutations(ping_pong_case()), st.lists(st.integers(0, 12), max_size=8))
def test_arrival_order_and_duplicates_do_not_change_facts(
    order: list[Event], repeats: list[int]
) -> None:
    reference = derive_facts("c1", ping_pong_case())
    state = CaseState("c1")
    for item in [*order, *(order[i] for i in repeats)]:
        state.apply(item)
    assert state.facts() == reference


def test_state_codec_round_trips() -> None:
    state = CaseState("c1", ping_pong_case())
    restored = decode_state("c1", encode_state(state))
    assert restored.events == state.events
    assert restored.facts() == state.facts()


def test_core_agrees_with_the_oracle_on_a_simulated_city() -> None:
    history = simulate(SimulationConfig(seed=11, cases=400, out_of_order_share=0.1))
    states: dict[str, CaseState] = {}
    for raw in history.emitted:
        if raw.kind == "malformed":
            continue
        parsed = decode_event(raw.value)
        states.setdefault(parsed.case_id, CaseState(parsed.case_id)).apply(parsed)
    expected = expected_case_facts(history.events)
    assert set(states) == set(expected)
    for case_id, state in states.items():
        facts = state.facts()
        for name, value in expected[case_id].items():
            assert getattr(facts, name) == value, (case_id, name)


def test_core_imports_no_adapter() -> None:
    code = (
        "import sys, streams.core.case_state, streams.core.state_codec, streams.contract;"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('faust', 'mode', 'aiokafka', 'clickhouse_connect', 'chdb')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
