"""Imports leave in event-time order (ties in record order), sorted in bounded runs
spilled to disk and merged: the same output whatever the run size, no file left behind."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
from datetime import timedelta
from pathlib import Path

import pytest

from streams.contract import decode_event, encode_event
from streams.sources.importers.common import ImportedEvent
from streams.sources.importers.event_time import in_event_time
from streams.sources.simulator import SimulationConfig, simulate


def record_order() -> list[ImportedEvent]:
    return list(_record_order())


@functools.cache
def _record_order() -> tuple[ImportedEvent, ...]:
    """Events as an export lists them: case after case, each case's whole life together,
    with ties (several events of different cases at one instant) on purpose."""
    history = simulate(SimulationConfig(seed=7, cases=300))
    events = [decode_event(m.value) for m in history.emitted if m.kind == "valid"]
    by_case: dict[str, list[ImportedEvent]] = {}
    for event in events:
        # whole minutes: many events of different cases share an instant
        at = event.occurred_at.replace(second=0, microsecond=0)
        event = dataclasses.replace(event, occurred_at=at)
        by_case.setdefault(event.case_id, []).append(ImportedEvent(event, encode_event(event)))
    return tuple(imported for case in sorted(by_case) for imported in by_case[case])


def pairs(events: object) -> list[tuple[bytes, bytes]]:
    return [(e.key, e.value) for e in events]  # type: ignore[attr-defined]


def test_event_time_order_with_ties_in_record_order() -> None:
    records = record_order()
    assert len(records) > 1_500
    times = [e.event.occurred_at for e in records]
    assert times != sorted(times)  # an export's order is not event time
    assert len(set(times)) < len(times)  # and it has ties

    out = list(in_event_time(records))  # one run: sorted in memory
    expected = sorted(records, key=lambda e: e.event.occurred_at)  # stable
    assert pairs(out) == pairs(expected)
    # each tie keeps the record order, e.g. a case's opened before its dispatch
    position = {e.value: i for i, e in enumerate(records)}
    time_of = {e.value: e.event.occurred_at for e in records}
    ties = 0
    for earlier, later in itertools.pairwise(out):
        if time_of[earlier.value] == time_of[later.value]:
            assert position[earlier.value] < position[later.value]
            ties += 1
    assert ties > 100


@pytest.mark.parametrize("run_events", [7, 250, 10_000])
def test_spilled_runs_merge_to_the_same_order(tmp_path: Path, run_events: int) -> None:
    records = record_order()
    spill = tmp_path / "spill"
    spill.mkdir()
    out = pairs(in_event_time(records, spill_dir=spill, run_events=run_events))
    assert out == pairs(sorted(records, key=lambda e: e.event.occurred_at))
    assert list(spill.iterdir()) == []


def test_runs_are_on_disk_while_merging_and_gone_when_stopped_early(tmp_path: Path) -> None:
    records = record_order()
    spill = tmp_path / "spill"
    spill.mkdir()
    merged = in_event_time(records, spill_dir=spill, run_events=100)
    first = next(merged)
    assert first.value == min(records, key=lambda e: e.event.occurred_at).value
    (work,) = spill.iterdir()
    assert len(list(work.iterdir())) == -(-len(records) // 100)
    merged.close()  # the consumer stops half-way (a failed Kafka send, say)
    assert list(spill.iterdir()) == []


def test_one_run_never_touches_the_disk(tmp_path: Path) -> None:
    records = record_order()[:50]
    spill = tmp_path / "spill"
    spill.mkdir()
    merged = in_event_time(records, spill_dir=spill, run_events=51)
    next(merged)
    assert list(spill.iterdir()) == []
    assert len(list(merged)) == 49


def test_times_before_and_after_the_epoch_and_a_bad_run_size() -> None:
    records = record_order()[:3]
    first, second = records[0].event, records[1].event
    early = dataclasses.replace(first, occurred_at=first.occurred_at.replace(year=1969))
    shifted = dataclasses.replace(second, occurred_at=second.occurred_at + timedelta(days=1))
    mixed = [
        ImportedEvent(shifted, encode_event(shifted)),
        records[2],
        ImportedEvent(early, encode_event(early)),
    ]
    out = pairs(in_event_time(mixed, run_events=1))
    assert out == pairs([mixed[2], mixed[1], mixed[0]])
    with pytest.raises(ValueError, match="run_events"):
        list(in_event_time(mixed, run_events=0))


@pytest.mark.parametrize("max_open", [2, 3, 200])
def test_runs_beyond_the_open_file_limit_merge_in_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_open: int
) -> None:
    import resource

    from streams.sources.importers import event_time

    records = record_order()
    monkeypatch.setattr(event_time, "MAX_OPEN_RUNS", max_open)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # a run per event: more runs than this process may open files
    runs = len(records)
    limit = min(len(os.listdir("/proc/self/fd")) + 250, hard)
    assert runs > limit - len(os.listdir("/proc/self/fd"))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        out = pairs(in_event_time(records, spill_dir=tmp_path, run_events=1))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert out == pairs(sorted(records, key=lambda e: e.event.occurred_at))
    assert list(tmp_path.iterdir()) == []
