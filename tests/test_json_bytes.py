"""Bytes the project keeps (case states in the worker's table, alert watches, events held
by importers and the simulator) take their own size, not orjson's working buffer (about
4 KB behind a 300-byte document with orjson 3.13)."""

from __future__ import annotations

import functools
import tracemalloc
from collections.abc import Callable, Sequence

from streams.app.alert_index import Watch
from streams.contract import Event, decode_event, encode_event
from streams.contract.json_bytes import dumps
from streams.core.case_state import CaseState
from streams.core.state_codec import decode_state, encode_state
from streams.sources.simulator import SimulationConfig, iter_simulation, simulate


@functools.cache
def history() -> tuple[list[bytes], list[Event]]:
    emitted = simulate(SimulationConfig(seed=3, cases=200)).emitted
    values = [m.value for m in emitted]
    return values, [decode_event(v) for v in values if v.startswith(b"{")]


def held_per_item(make: Callable[[], Sequence[bytes]]) -> tuple[float, float]:
    """(bytes of memory held per item, mean length of the items) while they are kept."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        items = make()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return held / len(items), sum(map(len, items)) / len(items)


def assert_right_sized(make: Callable[[], Sequence[bytes]]) -> None:
    held, length = held_per_item(make)
    # a bytes object is its length plus 33 bytes of header and the list's pointer to it;
    # the simulator's generator also keeps some working memory while it runs. An orjson
    # buffer is 4 KB and more.
    assert held <= 2 * length + 100, f"{held:.0f} bytes held per {length:.0f}-byte item"


def test_encoded_events_take_their_own_size() -> None:
    _, events = history()
    assert_right_sized(lambda: [encode_event(e) for e in events])


def test_case_states_kept_in_the_table_take_their_own_size() -> None:
    _, events = history()
    by_case: dict[str, list[Event]] = {}
    for event in events:
        by_case.setdefault(event.case_id, []).append(event)
    states = [CaseState(case_id, case_events) for case_id, case_events in by_case.items()]
    assert_right_sized(lambda: [encode_state(s) for s in states])
    first = states[0]
    assert decode_state(first.case_id, encode_state(first)).events == first.events


def test_alert_watches_take_their_own_size() -> None:
    watches = [
        Watch(n % 4, ("water", f"d{n}", "phone", "normal"), tuple(range(n, n + 6)), n, None)
        for n in range(500)
    ]
    assert_right_sized(lambda: [w.encode() for w in watches])
    assert Watch.decode(watches[7].encode()) == watches[7]


def test_the_simulator_messages_take_their_own_size() -> None:
    config = SimulationConfig(seed=4, cases=50, malformed_share=0.05, duplicate_share=0.05)
    assert_right_sized(lambda: [m.value for m in iter_simulation(config)])


def test_dumps_is_orjson_dumps() -> None:
    import orjson

    doc = {"b": [1, 2.5, None], "a": "é"}
    assert dumps(doc) == orjson.dumps(doc)
    assert dumps(doc, option=orjson.OPT_SORT_KEYS) == orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
