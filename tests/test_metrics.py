"""SLA rows, the SLA tables and the board metrics, on embedded chDB.

Case histories (from the simulator, hand-made, and random ones from hypothesis) go through
the real core (``CaseState``, ``evaluate``, ``sla_rows``); every intermediate version of
every case is written, shuffled, in several batches and with duplicates, as a worker that
rewrites a case after each batch would. Every metric query is then compared with a
brute-force computation over the cases' final rows written here, separately, from the
definitions in docs/metrics.md (it never calls the SQL or its helpers).

chDB hosts one data directory per process: the directory is module-scoped (released at the
end by close_clients()) and every test gets its own database in it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import types
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Union, get_args, get_origin, get_type_hints

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.contract import (
    CallbackPayload,
    ClosedPayload,
    DeadlineExtendedPayload,
    DispatchedPayload,
    Event,
    FirstContactPayload,
    OpenedPayload,
    PausedPayload,
    Payload,
    RatedPayload,
    ReopenedPayload,
    ResolvedPayload,
    ResumedPayload,
    SignedForPayload,
    TransferredPayload,
    decode_event,
)
from streams.contract.generated import CLOSURE_REASONS, URGENCIES
from streams.core.case_state import CaseState
from streams.core.sla.clock import evaluate
from streams.core.sla.policy import PolicySet, policies_from_text
from streams.core.sla.rows import (
    CASE_SLA_COLUMNS,
    CYCLE_COLUMNS,
    CaseSlaRow,
    CycleRow,
    sla_rows,
)
from streams.sources.simulator import SimulationConfig, simulate
from streams.store.client import Client, close_client, close_clients, open_client
from streams.store.metrics import (
    MetricsError,
    RankingConfig,
    RankingConfigError,
    Window,
    backlog,
    durations,
    late_events,
    load_ranking_config,
    on_time,
    quality,
    ranking,
    ranking_config_from_text,
    rates,
    window,
)
from streams.store.migrations import apply_migrations
from streams.store.writer import BatchWriter

SERVER_URL_ENV = "CIVICPULSE_TEST_CLICKHOUSE_URL"
BACKENDS = ["chdb"] + (["server"] if os.environ.get(SERVER_URL_ENV) else [])
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday
H = timedelta(hours=1)

# Categories starting with "u" match no policy: those cases have no SLA.
POLICIES: PolicySet = policies_from_text(
    """
version: 1
defaults: {calendar: cn-beijing, thresholds: [0.5, 0.75, 0.9]}
policies:
  - id: emergency
    match: {category: "[!u]*", urgency: emergency}
    first_response: {clock: wall, within: 30m}
    resolution: {clock: wall, within: 2h}
  - id: business
    match: {category: [pothole, noise], urgency: [normal, urgent]}
    first_response: {clock: business, within: 4h}
    resolution: {clock: working_days, days: 5}
  - id: general
    match: {category: "[!u]*"}
    first_response: {clock: wall, within: 2h}
    resolution: {clock: wall, within: 24h}
"""
)

OPEN = ("open", "paused", "reopened")
SATISFIED = ("satisfied", "basically_satisfied")
LEVELS = ("satisfied", "basically_satisfied", "dissatisfied")
DIMS = ("agency", "sub_unit", "district", "sub_district", "category", "channel", "urgency")


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chdb_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    close_clients()
    yield f"chdb://{tmp_path_factory.mktemp('metrics') / 'clickhouse'}"
    close_clients()


@pytest.fixture(scope="module", params=BACKENDS)
def backend_dsn(request: pytest.FixtureRequest, chdb_dsn: str) -> str:
    if request.param == "chdb":
        return chdb_dsn
    return os.environ[SERVER_URL_ENV]


@pytest.fixture
def client(backend_dsn: str) -> Iterator[Client]:
    database = f"metrics_{uuid.uuid4().hex[:12]}"
    client = open_client(backend_dsn, database=database)
    apply_migrations(client)
    yield client
    close_client(client)
    open_client(backend_dsn).command(f"DROP DATABASE IF EXISTS `{database}`")


@pytest.fixture
def writer(client: Client) -> BatchWriter:
    return BatchWriter(client)


SLA_TABLES = ("case_sla", "case_sla_moved", "case_cycles", "case_cycles_moved")


def reset(client: Client) -> None:
    for table in SLA_TABLES:
        client.command(f"TRUNCATE TABLE {table}")


# --- building case histories ---------------------------------------------------------------------


class Case:
    """Builds one case's events; ids follow the order of the calls."""

    def __init__(self, case_id: str) -> None:
        self.case_id = case_id
        self.events: list[Event] = []

    def add(self, at: datetime, payload: Payload) -> Case:
        kind = type(payload).EVENT_TYPE  # type: ignore[union-attr]
        n = len(self.events)
        self.events.append(
            Event(f"{self.case_id}-e{n:03d}", self.case_id, kind, at, "test", 1, payload)
        )
        return self

    def opened(
        self,
        at: datetime,
        category: str = "pothole",
        urgency: str = "normal",
        district: str = "d1",
        sub_district: str = "s1",
        channel: str = "hotline",
    ) -> Case:
        payload = OpenedPayload(
            channel,  # type: ignore[arg-type]
            category,
            urgency,  # type: ignore[arg-type]
            district,
            sub_district,
            "0123456789abcdef",
        )
        return self.add(at, payload)


def rows_of(
    events: Sequence[Event], policies: PolicySet = POLICIES
) -> tuple[CaseSlaRow, list[CycleRow]]:
    state = CaseState(events[0].case_id, events)
    return sla_rows(state.facts(), evaluate(state.events, policies))


@dataclasses.dataclass
class History:
    """Every version written for a set of cases, and the final (latest) rows."""

    writes: list[tuple[CaseSlaRow, list[CycleRow]]]
    final: dict[str, CaseSlaRow]
    final_cycles: dict[tuple[str, int], CycleRow]


def history(arrivals: dict[str, list[Event]], policies: PolicySet = POLICIES) -> History:
    """Rows after every arrival of every case (events in arrival order per case)."""
    writes: list[tuple[CaseSlaRow, list[CycleRow]]] = []
    final: dict[str, CaseSlaRow] = {}
    final_cycles: dict[tuple[str, int], CycleRow] = {}
    for case_id, events in arrivals.items():
        state = CaseState(case_id)
        for event in events:
            state.apply(event)
            row, cycles = sla_rows(state.facts(), evaluate(state.events, policies))
            writes.append((row, cycles))
        final[case_id] = row
        for cycle in cycles:
            final_cycles[(case_id, cycle.cycle)] = cycle
    return History(writes, final, final_cycles)


def write_shuffled(
    writer: BatchWriter, hist: History, rng: random.Random, batches: int = 4
) -> None:
    """All versions, shuffled, some twice, in ``batches`` inserts per table."""
    writes = list(hist.writes)
    writes += rng.sample(writes, k=len(writes) // 5)  # redeliveries
    rng.shuffle(writes)
    size = max(1, math.ceil(len(writes) / batches))
    for start in range(0, len(writes), size):
        chunk = writes[start : start + size]
        writer.write_case_sla([row for row, _ in chunk])
        writer.write_cycles([cycle for _, cycles in chunk for cycle in cycles])


# --- the brute-force oracle (docs/metrics.md) ----------------------------------------------------


def o_rate(num: int, den: int, min_cases: int) -> dict[str, Any]:
    small = 0 < den < min_cases
    return {
        "numerator": None if small else num,
        "denominator": den,
        "rate": None if small or den == 0 else num / den,
        "suppressed": small,
    }


def o_blank(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: True if k == "suppressed" else o_blank(v) for k, v in value.items()}
    return None


def percentile_inc(values: list[float], p: float) -> float:
    """Excel PERCENTILE.INC: linear interpolation between the order statistics."""
    xs = sorted(values)
    h = (len(xs) - 1) * p
    lo = math.floor(h)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (h - lo) * (xs[hi] - xs[lo])


def o_stats(values: list[float], min_cases: int) -> dict[str, Any]:
    publish = bool(values) and len(values) >= min_cases
    out: dict[str, Any] = {"count": len(values)}
    out["mean"] = sum(values) / len(values) if publish else None
    for p in (0.5, 0.9, 0.99):
        out[f"p{round(p * 100)}"] = percentile_inc(values, p) if publish else None
    return out


def selected(
    rows: Sequence[Any], win: Window | None, filters: dict[str, list[str]] | None
) -> list[Any]:
    out = []
    for row in rows:
        if win is not None and not (
            row.opened_at is not None and win.start <= row.opened_at < win.end
        ):
            continue
        if any(getattr(row, dim) not in values for dim, values in (filters or {}).items()):
            continue
        out.append(row)
    return out


def by_group(rows: Sequence[Any], group: tuple[str, ...]) -> dict[tuple[str, ...], list[Any]]:
    groups: dict[tuple[str, ...], list[Any]] = defaultdict(list)
    for row in rows:
        groups[tuple(getattr(row, dim) for dim in group)].append(row)
    if not group:
        groups.setdefault((), [])
    return dict(sorted(groups.items()))


def o_publish(
    group: tuple[str, ...],
    groups: dict[tuple[str, ...], list[Any]],
    min_cases: int,
    build: Callable[[list[Any]], dict[str, Any]],
) -> list[dict[str, Any]]:
    out = []
    for key, members in groups.items():
        body = build(members)
        small = 0 < len(members) < min_cases
        if small:
            body = o_blank(body)
        out.append({"group": dict(zip(group, key, strict=True)), "suppressed": small, **body})
    return out


def decided(ended: datetime | None, due: datetime | None, now: datetime) -> bool:
    return ended is not None or (due is not None and due <= now)


def finished(r: CaseSlaRow) -> bool:
    return r.first_resolved_at is not None or r.closed_at is not None


def o_rates(rows, win, group, filters, now, min_cases):  # type: ignore[no-untyped-def]
    def build(rs: list[CaseSlaRow]) -> dict[str, Any]:
        dispatched = [r for r in rs if r.first_dispatched_at is not None and r.policy_id != ""]
        dec = [r for r in dispatched if decided(r.fr_ended_at, r.fr_due_at, now)]
        good = [
            r
            for r in dec
            if r.fr_on_time is True
            and r.signed_for_at is not None
            and r.fr_due_at is not None
            and r.signed_for_at <= r.fr_due_at
        ]
        answered = [r for r in rs if r.citizen_confirms_solved is not None]
        rated = [r for r in rs if r.satisfaction != ""]
        done = [r for r in rs if finished(r)]
        return {
            "cases": len(rs),
            "response_rate": {
                **o_rate(len(good), len(dec), min_cases),
                "pending": len(dispatched) - len(dec),
                "dispatched": sum(r.first_dispatched_at is not None for r in rs),
                "dispatched_without_sla": sum(
                    r.first_dispatched_at is not None and r.policy_id == "" for r in rs
                ),
            },
            "resolution_rate": {
                **o_rate(
                    sum(r.citizen_confirms_solved is True for r in answered),
                    len(answered),
                    min_cases,
                ),
                "called_back": sum(r.callback_reached for r in rs),
                "resolved": sum(r.first_resolved_at is not None for r in rs),
            },
            "satisfaction_rate": {
                **o_rate(sum(r.satisfaction in SATISFIED for r in rated), len(rated), min_cases),
                **{level: sum(r.satisfaction == level for r in rs) for level in LEVELS},
            },
            "participation_rate": o_rate(
                sum(r.satisfaction != "" for r in done), len(done), min_cases
            ),
        }

    return o_publish(group, by_group(selected(rows, win, filters), group), min_cases, build)


def o_durations(rows, win, group, filters, min_cases):  # type: ignore[no-untyped-def]
    def build(rs: list[CaseSlaRow]) -> dict[str, Any]:
        fr = [r for r in rs if r.fr_ended_by == "first_contact"]
        res = [r for r in rs if r.res0_ended_by == "resolved"]
        return {
            "cases": len(rs),
            "first_response": {
                "wall": o_stats([r.fr_seconds for r in fr], min_cases),
                "business": o_stats([r.fr_business_seconds for r in fr], min_cases),
            },
            "resolution": {
                "wall": o_stats([r.res0_seconds for r in res], min_cases),
                "business": o_stats([r.res0_business_seconds for r in res], min_cases),
            },
        }

    return o_publish(group, by_group(selected(rows, win, filters), group), min_cases, build)


def o_on_time(rows, cycles, win, group, filters, now, min_cases):  # type: ignore[no-untyped-def]
    cycle_groups = by_group(selected(cycles, win, filters), group)

    def build(rs: list[CaseSlaRow]) -> dict[str, Any]:
        sla = [r for r in rs if r.policy_id != ""]
        fr_dec = [r for r in sla if decided(r.fr_ended_at, r.fr_due_at, now)]
        res_dec = [r for r in sla if decided(r.res0_ended_at, r.res0_due_at, now)]
        key = tuple(getattr(rs[0], d) for d in group) if rs else ()
        cs = cycle_groups.get(key, [])
        c_dec = [c for c in cs if decided(c.ended_at, c.due_at, now)]
        re_dec = [c for c in c_dec if c.cycle > 0]
        return {
            "cases": len(rs),
            "cases_with_sla": len(sla),
            "first_response": {
                **o_rate(sum(r.fr_on_time is True for r in fr_dec), len(fr_dec), min_cases),
                "running_late": sum(r.fr_ended_at is None for r in fr_dec),
            },
            "resolution": {
                **o_rate(sum(r.res0_on_time is True for r in res_dec), len(res_dec), min_cases),
                "running_late": sum(r.res0_ended_at is None for r in res_dec),
            },
            "resolution_all_cycles": {
                **o_rate(sum(c.on_time is True for c in c_dec), len(c_dec), min_cases),
                "cycles": len(cs),
            },
            "resolution_reopened_cycles": o_rate(
                sum(c.on_time is True for c in re_dec), len(re_dec), min_cases
            ),
        }

    return o_publish(group, by_group(selected(rows, win, filters), group), min_cases, build)


def o_backlog(rows, win, group, filters, now, min_cases):  # type: ignore[no-untyped-def]
    day = 86_400
    bands = (("lt_1d", 0, 1), ("1d_3d", 1, 3), ("3d_7d", 3, 7), ("7d_15d", 7, 15))

    def build(rs: list[CaseSlaRow]) -> dict[str, Any]:
        ages = [(now - r.opened_at).total_seconds() for r in rs]
        running = [r for r in rs if r.res_ended_at is None]
        aging = {name: sum(lo * day <= a < hi * day for a in ages) for name, lo, hi in bands}
        aging["ge_15d"] = sum(a >= 15 * day for a in ages)

        def past(attr: str) -> int:
            return sum(getattr(r, attr) is not None and getattr(r, attr) <= now for r in running)

        return {
            "open": len(rs),
            "aging": aging,
            "past_due": o_rate(past("res_due_at"), len(rs), min_cases),
            "at_risk": {
                f"past_{lv}": o_rate(past(f"res_warn_{lv}_at"), len(rs), min_cases)
                for lv in ("50", "75", "90")
            },
            "first_response_overdue": sum(
                r.fr_ended_at is None and r.fr_due_at is not None and r.fr_due_at <= now for r in rs
            ),
            "paused": sum(r.res_paused_since is not None for r in rs),
            "without_sla": sum(r.policy_id == "" for r in rs),
            "oldest_opened_at": (
                min(r.opened_at for r in rs).isoformat().replace("+00:00", "Z") if rs else None
            ),
        }

    open_rows = [r for r in selected(rows, win, filters) if r.status in OPEN]
    return o_publish(group, by_group(open_rows, group), min_cases, build)


def o_quality(rows, win, group, filters, min_cases):  # type: ignore[no-untyped-def]
    def build(rs: list[CaseSlaRow]) -> dict[str, Any]:
        n = len(rs)
        done = [r for r in rs if finished(r)]
        reasoned = [r for r in rs if r.closure_reason != ""]
        answered = [r for r in reasoned if r.citizen_confirms_solved is not None]
        claimed = o_rate(
            sum(r.closure_reason == "fixed" for r in answered), len(answered), min_cases
        )
        confirmed = o_rate(
            sum(r.citizen_confirms_solved is True for r in answered), len(answered), min_cases
        )
        return {
            "cases": n,
            "reopen_rate": o_rate(sum(r.reopens > 0 for r in done), len(done), min_cases),
            "transfers": {
                "total": sum(r.transfers for r in rs),
                "per_case": None if n == 0 or n < min_cases else sum(r.transfers for r in rs) / n,
                "cases_transferred": o_rate(sum(r.transfers > 0 for r in rs), n, min_cases),
                "returns": sum(r.returns for r in rs),
            },
            "ping_pong": {
                "total": sum(r.ping_pongs for r in rs),
                "cases": o_rate(sum(r.ping_pongs > 0 for r in rs), n, min_cases),
            },
            "paused_cases": o_rate(sum(r.pauses > 0 for r in rs), n, min_cases),
            "closure_reasons": {
                reason: o_rate(
                    sum(r.closure_reason == reason for r in reasoned), len(reasoned), min_cases
                )
                for reason in CLOSURE_REASONS
            },
            "claimed_vs_confirmed": {
                "claimed": claimed,
                "confirmed": confirmed,
                "gap": (
                    claimed["rate"] - confirmed["rate"]
                    if claimed["rate"] is not None and confirmed["rate"] is not None
                    else None
                ),
                "fixed_not_confirmed": sum(
                    r.closure_reason == "fixed" and r.citizen_confirms_solved is False for r in rs
                ),
            },
        }

    return o_publish(group, by_group(selected(rows, win, filters), group), min_cases, build)


def o_ranking(rows, cycles, level, win, config, now, min_cases):  # type: ignore[no-untyped-def]
    group = ("district", "sub_district") if level == "sub_district" else ("agency",)
    rate_rows = o_rates(rows, win, group, None, now, min_cases)
    timely = {
        tuple(r["group"].values()): r
        for r in o_on_time(rows, cycles, win, group, None, now, min_cases)
    }
    ranked, unranked = [], []
    total = sum(config.weights.values())
    for row in rate_rows:
        t = timely[tuple(row["group"].values())]
        inputs = {
            "response_rate": row["response_rate"],
            "resolution_rate": row["resolution_rate"],
            "satisfaction_rate": row["satisfaction_rate"],
            "participation_rate": row["participation_rate"],
            "first_response_on_time": t["first_response"],
            "resolution_on_time": t["resolution"],
        }
        values = [inputs[m]["rate"] for m in config.weights]
        index = None
        if not row["suppressed"] and None not in values:
            index = 100 * sum(w * inputs[m]["rate"] for m, w in config.weights.items()) / total
        entry = {
            "rank": None,
            **row["group"],
            "index": index,
            "cases": row["cases"],
            "inputs": inputs,
        }
        (ranked if index is not None else unranked).append(entry)
    ranked.sort(key=lambda e: (-e["index"], *(e[g] for g in group)))
    unranked.sort(key=lambda e: tuple(e[g] for g in group))
    for i, entry in enumerate(ranked):
        same = i > 0 and entry["index"] == ranked[i - 1]["index"]
        entry["rank"] = ranked[i - 1]["rank"] if same else i + 1
    return ranked, unranked


def assert_same(actual: Any, expected: Any, path: str = "$") -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        assert set(actual) == set(expected), (path, set(actual) ^ set(expected))
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (path, actual, expected)
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{path}[{i}]")
    elif isinstance(expected, float) and not isinstance(expected, bool):
        assert isinstance(actual, float), (path, actual, expected)
        assert math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-6), (path, actual, expected)
    else:
        assert actual == expected and type(actual) is type(expected), (path, actual, expected)


def check_all(
    client: Client,
    hist: History,
    win: Window,
    *,
    group: tuple[str, ...],
    filters: dict[str, list[str]] | None,
    now: datetime,
    min_cases: int,
) -> None:
    rows = list(hist.final.values())
    cycles = list(hist.final_cycles.values())
    kw: dict[str, Any] = {"group_by": group, "filters": filters, "min_cases": min_cases}
    got = rates(client, win, now=now, **kw)
    assert_same(got, o_rates(rows, win, group, filters, now, min_cases))
    got = durations(client, win, **kw)
    assert_same(got, o_durations(rows, win, group, filters, min_cases))
    got = on_time(client, win, now=now, **kw)
    assert_same(got, o_on_time(rows, cycles, win, group, filters, now, min_cases))
    got = quality(client, win, **kw)
    assert_same(got, o_quality(rows, win, group, filters, min_cases))
    got = backlog(client, now=now, **kw)
    assert_same(got, o_backlog(rows, None, group, filters, now, min_cases))
    got = backlog(client, now=now, win=win, **kw)
    assert_same(got, o_backlog(rows, win, group, filters, now, min_cases))
    json.dumps(got)


# --- sla_rows ------------------------------------------------------------------------------------


def test_sla_rows_of_a_reopened_case_keep_the_first_cycle() -> None:
    c = Case("c1").opened(T0, category="other", urgency="normal")
    c.add(T0 + 0.5 * H, DispatchedPayload("a1", "u1"))
    c.add(T0 + 1 * H, SignedForPayload("a1"))
    c.add(T0 + 3 * H, FirstContactPayload("a1", "call"))  # late: 2 h allowed
    c.add(T0 + 10 * H, ResolvedPayload("a1", "fixed"))
    c.add(T0 + 11 * H, ClosedPayload())
    c.add(T0 + 12 * H, CallbackPayload(True, False))
    c.add(T0 + 13 * H, ReopenedPayload("not_solved"))
    c.add(T0 + 14 * H, PausedPayload("awaiting_citizen"))
    row, cycles = rows_of(c.events)
    assert row.policy_id == "general" and row.version == 9 and row.status == "paused"
    assert (row.agency, row.sub_unit, row.district) == ("a1", "u1", "d1")
    assert row.fr_due_at == T0 + 2 * H and row.fr_responded_at == T0 + 3 * H
    assert row.fr_on_time is False and row.fr_breached_at == T0 + 2 * H
    assert row.fr_seconds == 3 * 3600 and row.fr_ended_by == "first_contact"
    assert row.fr_warn_50_at == T0 + 1 * H and row.fr_warn_90_at == T0 + 1.8 * H
    # the first cycle's outcome stays recorded after the reopen
    assert row.res0_ended_by == "resolved" and row.res0_closure_reason == "fixed"
    assert row.res0_on_time is True and row.res0_seconds == 10 * 3600
    assert row.res0_paused_seconds == 0 and row.res0_due_at == T0 + 24 * H
    # the current cycle runs (paused since 14 h): its verdicts are unknown without "now"
    assert row.cycles == 2 and row.res_cycle == 1
    assert row.res_started_at == T0 + 13 * H and row.res_ended_at is None
    assert row.res_on_time is None and row.res_breached_at is None and row.res_due_at is None
    assert row.res_paused_since == T0 + 14 * H
    assert row.res_warn_50_at is None  # 1 h of 12 h counted before the open pause
    assert row.citizen_confirms_solved is False and row.reopens == 1 and row.pauses == 1
    assert not row.multiple_opened and row.anomalies == ()
    assert [c.cycle for c in cycles] == [0, 1]
    assert cycles[0].on_time is True and cycles[0].resolved_at == T0 + 10 * H
    assert cycles[1].started_by == "reopened" and cycles[1].seconds is None
    assert all(c.opened_at == T0 and c.version == 9 for c in cycles)


def test_sla_rows_never_depend_on_now() -> None:
    hist = simulate(SimulationConfig(seed=11, cases=150, horizon_days=6))
    states: dict[str, CaseState] = {}
    for raw in hist.events:
        event = decode_event(orjson.dumps(raw))
        states.setdefault(event.case_id, CaseState(event.case_id)).apply(event)
    moments = [T0 + timedelta(days=d) for d in (0.5, 3, 30)]
    for state in states.values():
        facts = state.facts()
        expected = sla_rows(facts, evaluate(state.events, POLICIES))
        for now in moments:
            assert sla_rows(facts, evaluate(state.events, POLICIES, now)) == expected


def test_sla_rows_without_sla() -> None:
    no_open = Case("x1").add(T0, DispatchedPayload("a1"))
    row, cycles = rows_of(no_open.events)
    assert row.status == "unknown" and row.opened_at is None and row.policy_id == ""
    assert row.anomalies == ("no_opened",) and row.cycles == 0 and cycles == []
    assert row.fr_due_at is None and row.res0_on_time is None and row.res_cycle is None
    assert row.first_dispatched_at == T0

    no_policy = Case("x2").opened(T0, category="unruled").add(T0 + H, DispatchedPayload("a"))
    row, cycles = rows_of(no_policy.events)
    assert row.policy_id == "" and row.anomalies == ("no_policy",) and cycles == []
    assert row.category == "unruled" and row.opened_at == T0 and row.status == "open"

    state = CaseState("x2", no_policy.events)
    bare, cycles = sla_rows(state.facts(), None)
    assert bare == replace(row, anomalies=()) and cycles == []
    with pytest.raises(ValueError, match="x2"):
        sla_rows(CaseState("x1", no_open.events).facts(), evaluate(no_policy.events, POLICIES))


def test_sla_rows_flag_a_moving_intake() -> None:
    c = Case("m1").opened(T0 + 48 * H).add(T0 + 49 * H, DispatchedPayload("a"))
    c.opened(T0, district="d2")  # an earlier intake, arriving last
    row, cycles = rows_of(c.events)
    assert row.opened_at == T0 and row.district == "d2" and row.multiple_opened
    assert "duplicate_opened" in row.anomalies
    assert all(cycle.multiple_opened for cycle in cycles)


# --- tables and writer ---------------------------------------------------------------------------


def clickhouse_type(annotation: Any, name: str) -> str:
    nullable = get_origin(annotation) in (Union, types.UnionType)
    if nullable:
        (annotation,) = [a for a in get_args(annotation) if a is not type(None)]
    if annotation is datetime:
        base = "DateTime64(6, 'UTC')"
    elif annotation is str:
        base = "String" if name == "case_id" else "LowCardinality(String)"
    elif get_origin(annotation) is tuple:
        base = "Array(LowCardinality(String))"
    else:
        base = {bool: "Bool", int: "UInt32", float: "Float64"}[annotation]
    return f"Nullable({base})" if nullable else base


def columns(client: Client, table: str) -> list[tuple[str, str, str]]:
    result = client.query(
        "SELECT name, type, default_kind FROM system.columns "
        "WHERE database = currentDatabase() AND table = {t:String} ORDER BY position",
        parameters={"t": table},
    )
    return [(str(n), str(t), str(k)) for n, t, k in result.result_rows]


@pytest.mark.parametrize(
    ("row_type", "table", "names"),
    [(CaseSlaRow, "case_sla", CASE_SLA_COLUMNS), (CycleRow, "case_cycles", CYCLE_COLUMNS)],
)
def test_tables_match_the_row_dataclasses(
    client: Client, row_type: type[Any], table: str, names: tuple[str, ...]
) -> None:
    hints = get_type_hints(row_type)
    expected = [(name, clickhouse_type(hints[name], name), "") for name in names]
    assert names == tuple(f.name for f in dataclasses.fields(row_type))
    assert columns(client, table) == [*expected, ("intake_date", "Date", "MATERIALIZED")]
    assert columns(client, f"{table}_moved") == expected


def test_writer_round_trips_rows_and_keeps_the_highest_version(
    client: Client, writer: BatchWriter
) -> None:
    c = Case("w1").opened(T0 + 0.123456 * H, category="noise")
    c.add(T0 + 1 * H, DispatchedPayload("a1")).add(T0 + 2 * H, FirstContactPayload("a1", "sms"))
    c.add(T0 + 30 * H, ResolvedPayload("a1", "duplicate"))
    hist = history({"w1": c.events})
    assert writer.write_case_sla([hist.writes[-1][0], *(r for r, _ in hist.writes[:-1])]) == 4
    assert writer.write_cycles([cyc for _, cs in reversed(hist.writes) for cyc in cs]) == 4
    assert writer.write_case_sla([]) == 0
    assert writer.stats()["rows_written"]["case_sla"] == 4
    result = client.query("SELECT * FROM case_sla FINAL")
    assert result.column_names == CASE_SLA_COLUMNS
    (stored,) = result.result_rows
    values = dict(zip(CASE_SLA_COLUMNS, stored, strict=True))
    values["anomalies"] = tuple(values["anomalies"])
    assert CaseSlaRow(**values) == hist.final["w1"]
    (cycle,) = client.query("SELECT * FROM case_cycles FINAL").result_rows
    assert CycleRow(*cycle) == hist.final_cycles[("w1", 0)]
    assert client.query("SELECT count() FROM case_sla_moved").result_rows == [(0,)]


# --- metrics against the oracle ------------------------------------------------------------------


def simulated_history(seed: int, cases: int, days: float) -> tuple[History, datetime]:
    """Simulated cases in wire order (out of order, duplicates), plus hand-made trouble:
    cases whose ``opened`` arrives last, cases without any ``opened``, no-policy cases,
    and cases with an earlier second ``opened`` arriving late (their intake moves)."""
    sim = simulate(
        SimulationConfig(
            seed=seed,
            cases=cases,
            horizon_days=days,
            duplicate_share=0.05,
            out_of_order_share=0.1,
        )
    )
    arrivals: dict[str, list[Event]] = defaultdict(list)
    for message in sim.emitted:
        if message.kind == "malformed":
            continue
        event = decode_event(message.value)
        arrivals[event.case_id].append(event)
    rng = random.Random(seed)
    for n, (case_id, events) in enumerate(sorted(arrivals.items())):
        opened = next(e for e in events if e.type == "opened")
        if n % 17 == 0:  # the intake arrives last
            events.remove(opened)
            events.append(opened)
        elif n % 23 == 0:  # an earlier intake, in another district, arrives last
            payload = replace(opened.payload, district="Moved", sub_district="Moved Lane")  # type: ignore[type-var]
            earlier = opened.occurred_at - timedelta(days=rng.choice((0.2, 2, 3)))
            events.append(
                replace(opened, event_id=f"{case_id}-early", occurred_at=earlier, payload=payload)
            )
    for n in range(8):  # no `opened` at all
        case = Case(f"orphan-{n}").add(T0 + n * H, DispatchedPayload("Housing Bureau"))
        arrivals[case.case_id] = case.events
    for n in range(12):  # no policy
        case = Case(f"nopolicy-{n}").opened(T0 + n * 7 * H, category="unruled", district="Harbour")
        case.add(T0 + n * 7 * H + H, DispatchedPayload("Water Authority"))
        if n % 2:
            case.add(T0 + n * 7 * H + 2 * H, ResolvedPayload("Water Authority", "fixed"))
        arrivals[case.case_id] = case.events
    hist = history(dict(arrivals))
    end = max(r.last_event_at for r in hist.final.values())
    return hist, end


@pytest.fixture(scope="module")
def city() -> tuple[History, datetime]:
    return simulated_history(seed=5, cases=1200, days=16)


def test_metrics_match_the_oracle_on_a_simulated_city(
    client: Client, writer: BatchWriter, city: tuple[History, datetime]
) -> None:
    hist, end = city
    write_shuffled(writer, hist, random.Random(1), batches=5)
    assert client.query("SELECT count() FROM case_sla_moved FINAL").result_rows[0][0] > 0
    now = end - timedelta(days=3)  # some clocks still run and are late, some are not
    start = T0 - timedelta(days=4)
    windows = [
        Window(start, end + H),
        window("24h", now=now),
        window("7d", now=now),
        window("month", month="2026-03", timezone="Asia/Shanghai"),
    ]
    cases = [
        ((), None, 5),
        (("agency",), None, 5),
        (("district", "sub_district"), None, 5),
        (("category",), {"district": ["Harbour", "Moved"]}, 10),
        (("channel", "urgency"), {"agency": ["Water Authority"]}, 0),
        (("sub_unit",), None, 1),
    ]
    for win in windows:
        for group, filters, min_cases in cases:
            check_all(client, hist, win, group=group, filters=filters, now=now, min_cases=min_cases)


def test_ranking_matches_the_oracle(
    client: Client, writer: BatchWriter, city: tuple[History, datetime]
) -> None:
    hist, end = city
    write_shuffled(writer, hist, random.Random(2))
    config = RankingConfig(
        weights={
            "response_rate": 1,
            "resolution_rate": 2,
            "satisfaction_rate": 2,
            "resolution_on_time": 1,
        },
        timezone="Asia/Shanghai",
        min_cases=20,
    )
    rows, cycles = list(hist.final.values()), list(hist.final_cycles.values())
    for level in ("sub_district", "agency"):
        got = ranking(client, level, month="2026-03", config=config, now=end)  # type: ignore[arg-type]
        win = window("month", month="2026-03", timezone="Asia/Shanghai")
        ranked, unranked = o_ranking(rows, cycles, level, win, config, end, 20)
        assert got["month"] == "2026-03" and got["window"] == win.to_dict()
        assert got["config"]["normalized_weights"]["resolution_rate"] == pytest.approx(2 / 6)
        assert_same(got["ranked"], ranked)
        assert_same(got["unranked"], unranked)
        assert ranked and got["ranked"][0]["rank"] == 1
        json.dumps(got)


# --- random case sets (hypothesis) ---------------------------------------------------------------

AGENCIES = ("a1", "a2", "a3")


@st.composite
def case_events(draw: st.DrawFn, case_id: str) -> list[Event]:
    """One random case history, in arrival order."""
    hours = st.floats(0.01, 200, allow_nan=False)
    at = T0 + timedelta(hours=draw(st.floats(0, 24 * 20)))
    c = Case(case_id).opened(
        at,
        category=draw(st.sampled_from(("pothole", "noise", "flood", "unruled"))),
        urgency=draw(st.sampled_from(URGENCIES)),
        district=draw(st.sampled_from(("d1", "d2"))),
        sub_district=draw(st.sampled_from(("s1", "s2"))),
        channel=draw(st.sampled_from(("hotline", "app"))),
    )
    t = at
    if draw(st.booleans()):
        t += timedelta(hours=draw(st.floats(0, 2)))
        c.add(
            t,
            DispatchedPayload(draw(st.sampled_from(AGENCIES)), draw(st.sampled_from(("u1", None)))),
        )
        if draw(st.booleans()):
            c.add(t + timedelta(hours=draw(hours)), SignedForPayload("a1"))
        if draw(st.booleans()):
            c.add(
                t + timedelta(hours=draw(st.floats(0, 6))),
                TransferredPayload("a1", draw(st.sampled_from(AGENCIES))),
            )
    if draw(st.booleans()):
        c.add(t + timedelta(hours=draw(st.floats(0, 8))), FirstContactPayload("a1", "call"))
    if draw(st.booleans()):
        start = t + timedelta(hours=draw(hours))
        c.add(start, PausedPayload(draw(st.sampled_from(("awaiting_citizen", "other")))))
        if draw(st.booleans()):
            c.add(start + timedelta(hours=draw(hours)), ResumedPayload())
    if draw(st.booleans()):
        c.add(t + timedelta(hours=draw(hours)), DeadlineExtendedPayload("resolution", 7200, "boss"))
    for _ in range(draw(st.integers(0, 2))):
        t += timedelta(hours=draw(hours))
        c.add(t, ResolvedPayload("a1", draw(st.sampled_from(CLOSURE_REASONS))))
        if draw(st.booleans()):
            c.add(t + H, ClosedPayload())
        if draw(st.booleans()):
            reached = draw(st.booleans())
            confirms = draw(st.none() | st.booleans()) if reached else None
            c.add(t + 2 * H, CallbackPayload(reached, confirms))
        if draw(st.booleans()):
            c.add(t + 3 * H, RatedPayload(draw(st.sampled_from(LEVELS))))
        if draw(st.booleans()):
            t += timedelta(hours=draw(st.floats(4, 48)))
            c.add(t, ReopenedPayload("citizen_disputes"))
    if draw(st.integers(0, 9)) == 0:  # a dispute while the case is still open: ignored
        c.add(at + timedelta(hours=draw(hours)), ReopenedPayload("other"))
    if draw(st.integers(0, 9)) == 0:  # an earlier intake, elsewhere
        earlier = at - timedelta(hours=draw(st.floats(1, 96)))
        c.opened(earlier, category="pothole", district="d3", sub_district="s3")
    events = c.events
    order = draw(st.permutations(range(len(events))))
    arrived = [events[i] for i in order]
    if draw(st.integers(0, 9)) == 0:  # the `opened` never arrives
        arrived = [e for e in arrived if e.type != "opened"] or arrived
    return arrived


@st.composite
def case_sets(draw: st.DrawFn) -> dict[str, list[Event]]:
    n = draw(st.integers(1, 24))
    return {f"h{i:02d}": draw(case_events(f"h{i:02d}")) for i in range(n)}


def instants(hist: History) -> list[datetime]:
    """Instants where a verdict flips: deadlines, warnings, and age-band edges."""
    out: list[datetime] = []
    for row in hist.final.values():
        for name in ("fr_due_at", "res_due_at", "res0_due_at", "res_warn_50_at", "res_warn_90_at"):
            value = getattr(row, name)
            if value is not None:
                out.append(value)
        if row.opened_at is not None:
            out += [row.opened_at + timedelta(days=d) for d in (1, 3, 7, 15)]
    for cycle in hist.final_cycles.values():
        if cycle.due_at is not None:
            out.append(cycle.due_at)
    return sorted(out)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    arrivals=case_sets(),
    seed=st.integers(0, 2**16),
    group=st.sampled_from(((), ("agency",), ("district", "sub_district"), ("category", "channel"))),
    use_filter=st.booleans(),
    min_cases=st.sampled_from((0, 0, 1, 2, 5)),
    span=st.sampled_from(("24h", "7d", "30d", "all", "all", "from-intake")),
    data=st.data(),
)
def test_metrics_match_the_oracle_on_random_cases(
    client: Client,
    writer: BatchWriter,
    arrivals: dict[str, list[Event]],
    seed: int,
    group: tuple[str, ...],
    use_filter: bool,
    min_cases: int,
    span: str,
    data: st.DataObject,
) -> None:
    reset(client)
    hist = history(arrivals)
    write_shuffled(writer, hist, random.Random(seed), batches=3)
    moments = instants(hist)
    if moments and data.draw(st.booleans()):
        now = data.draw(st.sampled_from(moments))  # exactly on a deadline or band edge
    else:
        now = T0 + timedelta(hours=data.draw(st.floats(0, 24 * 30)))
    if span == "all":
        win = Window(T0 - timedelta(days=5), T0 + timedelta(days=40))
    elif span == "from-intake":  # starts exactly at some case's intake
        opened = sorted(r.opened_at for r in hist.final.values() if r.opened_at is not None)
        first = data.draw(st.sampled_from(opened)) if opened else T0
        win = Window(first, first + timedelta(days=data.draw(st.sampled_from((1, 3, 30)))))
    else:
        win = window(span, now=now)
    filters = {"district": ["d1", "d3"], "urgency": list(URGENCIES[:3])} if use_filter else None
    check_all(client, hist, win, group=group, filters=filters, now=now, min_cases=min_cases)


# --- windows, attribution, suppression, safety ---------------------------------------------------


def test_window_presets() -> None:
    now = datetime(2026, 3, 15, 10, 30, tzinfo=UTC)
    assert window("1h", now=now) == Window(now - H, now, "1h")
    assert window("24h", now=now).start == now - 24 * H
    assert window("7d", now=now).start == now - timedelta(days=7)
    assert window("30d", now=now).start == now - timedelta(days=30)
    march = window("month", month="2026-03", timezone="Asia/Shanghai")
    assert (march.start, march.end) == (
        datetime(2026, 2, 28, 16, tzinfo=UTC),
        datetime(2026, 3, 31, 16, tzinfo=UTC),
    )
    assert march.label == "2026-03" and march.to_dict()["start"] == "2026-02-28T16:00:00Z"
    december = window("month", month="2025-12", timezone="UTC")
    assert december.end == datetime(2026, 1, 1, tzinfo=UTC)
    # a month with a DST change: 31 days minus the hour lost on 10 March
    la = window("month", month="2024-03", timezone="America/Los_Angeles")
    assert la.start == datetime(2024, 3, 1, 8, tzinfo=UTC)
    assert la.end == datetime(2024, 4, 1, 7, tzinfo=UTC)
    # the month of "now", in the zone: 1 March 02:00 in Shanghai is still February in UTC
    early = datetime(2026, 2, 28, 18, tzinfo=UTC)
    assert window("month", now=early, timezone="Asia/Shanghai").label == "2026-03"
    assert window("month", now=early, timezone="UTC").label == "2026-02"
    for bad in (
        lambda: window("2d"),
        lambda: window("month", month="2026-13"),
        lambda: window("month", month="March"),
        lambda: window("24h", month="2026-03"),
        lambda: window("month", timezone="Mars/Olympus"),
        lambda: window("1h", now=datetime(2026, 3, 1)),
        lambda: Window(now, now),
        lambda: Window(datetime(2026, 3, 1), now),
    ):
        with pytest.raises(MetricsError):
            bad()


def test_intake_attributes_a_case_to_a_window(client: Client, writer: BatchWriter) -> None:
    start, end = T0, T0 + 24 * H
    cases = {
        "at-start": Case("at-start").opened(start).events,
        "before": Case("before").opened(start - timedelta(microseconds=1000)).events,
        "at-end": Case("at-end").opened(end).events,
        "late-events": Case("late-events")
        .opened(end - H)
        .add(end + 72 * H, ResolvedPayload("a1", "fixed"))
        .events,
    }
    hist = history(cases)
    write_shuffled(writer, hist, random.Random(0))
    (total,) = quality(client, Window(start, end), min_cases=0)
    assert total["cases"] == 2  # at-start and late-events (resolved later: still its window)
    assert total["closure_reasons"]["fixed"]["numerator"] == 1


def test_small_groups_are_suppressed(client: Client, writer: BatchWriter) -> None:
    cases = {}
    for i in range(8):
        c = Case(f"s{i}").opened(T0 + i * H, sub_district="big" if i < 5 else "small")
        c.add(T0 + i * H + H, DispatchedPayload("a1")).add(
            T0 + i * H + 2 * H, RatedPayload("satisfied")
        )
        cases[c.case_id] = c.events
    write_shuffled(writer, history(cases), random.Random(0))
    win = Window(T0, T0 + 48 * H)
    big, small = rates(client, win, group_by="sub_district", now=T0 + 48 * H)
    assert big["group"] == {"sub_district": "big"} and not big["suppressed"]
    assert big["cases"] == 5 and big["satisfaction_rate"]["rate"] == 1.0
    assert small["suppressed"] and small["cases"] is None
    assert small["satisfaction_rate"] == {
        "numerator": None,
        "denominator": None,
        "rate": None,
        "suppressed": True,
        "satisfied": None,
        "basically_satisfied": None,
        "dissatisfied": None,
    }
    (open_small,) = backlog(client, filters={"sub_district": "small"}, now=T0)
    assert open_small["suppressed"] and open_small["oldest_opened_at"] is None
    (published,) = rates(client, win, filters={"sub_district": "small"}, min_cases=0, now=T0)
    assert published["cases"] == 3 and published["satisfaction_rate"]["rate"] == 1.0


def test_values_are_bound_and_dimensions_checked(client: Client, writer: BatchWriter) -> None:
    odd = "x' OR 1=1 --"
    c = Case("q1").opened(T0, district=odd).add(T0 + H, DispatchedPayload("a'1"))
    write_shuffled(writer, history({"q1": c.events}), random.Random(0))
    win = Window(T0, T0 + H)
    (row,) = quality(client, win, group_by="district", filters={"district": odd}, min_cases=0)
    assert row["group"] == {"district": odd} and row["cases"] == 1
    (none,) = quality(client, win, filters={"district": "x", "agency": ["a'1"]}, min_cases=0)
    assert none["cases"] == 0
    for kwargs in (
        {"group_by": "agency; DROP TABLE case_sla"},
        {"group_by": ("agency", "agency")},
        {"filters": {"citizen_ref": "x"}},
        {"filters": {"agency": []}},
        {"filters": {"agency": [1]}},
        {"min_cases": -1},
    ):
        with pytest.raises(MetricsError):
            quality(client, win, **kwargs)
    assert client.query("SELECT count() FROM case_sla FINAL").result_rows == [(1,)]


def test_empty_store_gives_zero_totals(client: Client) -> None:
    win = window("30d", now=T0)
    (total,) = rates(client, win, now=T0)
    assert total["cases"] == 0 and total["response_rate"]["rate"] is None
    (times,) = durations(client, win)
    assert times["first_response"]["wall"] == {
        "count": 0,
        "mean": None,
        "p50": None,
        "p90": None,
        "p99": None,
    }
    assert backlog(client, now=T0)[0]["open"] == 0
    assert rates(client, win, group_by="agency", now=T0) == []


# --- ranking configuration ---------------------------------------------------------------------


def test_shipped_ranking_config_is_valid() -> None:
    config = load_ranking_config()
    assert config.weights == {
        "response_rate": 0.10,
        "resolution_rate": 0.45,
        "satisfaction_rate": 0.45,
    }
    assert config.timezone == "Asia/Shanghai" and config.min_cases == 5


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("[1, 2]", ""),
        ("version: 2\nweights: {response_rate: 1}", "version"),
        ("version: 1\nweights: {}", "weights"),
        ("version: 1\nweights: {speed: 1}", "weights.speed"),
        ("version: 1\nweights: {response_rate: -1}", "weights.response_rate"),
        ("version: 1\nweights: {response_rate: true}", "weights.response_rate"),
        ("version: 1\nweights: {response_rate: .nan}", "weights.response_rate"),
        ("version: 1\nweights: {response_rate: 0}", "weights"),
        ("version: 1\nweights: {response_rate: 1}\ntimezone: Nowhere/City", "timezone"),
        ("version: 1\nweights: {response_rate: 1}\nmin_cases: -3", "min_cases"),
        ("version: 1\nweights: {response_rate: 1}\nextra: 1", "extra"),
        ("version: 1\nweights: [response_rate]", "weights"),
        ("version: 1\nweights: {response_rate: 1", ""),
    ],
)
def test_ranking_config_errors(text: str, path: str) -> None:
    with pytest.raises(RankingConfigError) as info:
        ranking_config_from_text(text, file="ranking.yaml")
    assert info.value.path == path and info.value.file == "ranking.yaml"


def test_ranking_ties_share_a_rank(client: Client, writer: BatchWriter) -> None:
    cases = {}
    for unit, solved in (("east", 2), ("west", 2), ("north", 1), ("tiny", 2)):
        for i in range(3 if unit == "tiny" else 4):
            c = Case(f"{unit}-{i}").opened(T0 + H, district="d", sub_district=unit)
            c.add(T0 + 2 * H, CallbackPayload(True, i < solved))
            cases[c.case_id] = c.events
    write_shuffled(writer, history(cases), random.Random(0))
    config = ranking_config_from_text("version: 1\nmin_cases: 4\nweights: {resolution_rate: 1}")
    got = ranking(client, "sub_district", month="2026-03", config=config, now=T0 + 3 * H)
    assert [(e["sub_district"], e["rank"], e["index"]) for e in got["ranked"]] == [
        ("east", 1, 50.0),
        ("west", 1, 50.0),
        ("north", 3, 25.0),
    ]
    assert [(e["sub_district"], e["rank"], e["index"]) for e in got["unranked"]] == [
        ("tiny", None, None)
    ]
    assert got["ranked"][0]["inputs"]["resolution_rate"]["denominator"] == 4
    with pytest.raises(MetricsError):
        ranking(client, "street", config=config)  # type: ignore[arg-type]


def test_late_events_are_reported_by_event_time_and_by_intake(
    client: Client, writer: BatchWriter
) -> None:
    from streams.store.rows import LateEventRow

    march = Case("late-1").opened(T0).add(T0 + 40 * 24 * H, CallbackPayload(True, True))
    write_shuffled(writer, history({"late-1": march.events}), random.Random(0))
    late = [
        LateEventRow(
            "late-1",
            "late-1-e001",
            "callback",
            T0 + 40 * 24 * H,
            T0 + 45 * 24 * H,
            5 * 86400.0,
            T0 + 45 * 24 * H,
        ),
        LateEventRow(
            "other", "other-e9", "rated", T0 + 2 * H, T0 + 50 * H, 48 * 3600.0, T0 + 50 * H
        ),
    ]
    writer.write_late_events(late)
    writer.write_late_events(late[:1])  # a redelivered report counts once
    report = late_events(client, window("month", month="2026-03", timezone="UTC"))
    assert report["by_event_time"] == {
        "events": 1,
        "by_type": {"rated": {"events": 1, "cases": 1, "max_lateness_seconds": 172800.0}},
    }
    assert report["by_intake"] == {
        "events": 1,
        "by_type": {"callback": {"events": 1, "cases": 1, "max_lateness_seconds": 432000.0}},
    }


def test_sla_rows_module_imports_no_adapter() -> None:
    import subprocess
    import sys

    code = (
        "import sys, streams.core.sla.rows;"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('faust', 'mode', 'aiokafka', 'clickhouse_connect', 'chdb')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_worked_example_of_docs_metrics_md(client: Client, writer: BatchWriter) -> None:
    """The five cases of docs/metrics.md, "Worked example", with the shipped policies."""
    from streams.core.sla.policy import load_policies

    def at(day: int, hh: int, mm: int = 0) -> datetime:
        return datetime(2026, 3, day, hh, mm, tzinfo=UTC)

    def case(name: str, opened: datetime) -> Case:
        return Case(name).opened(opened, category="traffic_signal", urgency="urgent")

    a = case("A", at(2, 8)).add(at(2, 8, 10), DispatchedPayload("roads"))
    a.add(at(2, 8, 30), SignedForPayload("roads")).add(
        at(2, 9), FirstContactPayload("roads", "call")
    )
    a.add(at(2, 20), ResolvedPayload("roads", "fixed")).add(at(2, 21), CallbackPayload(True, True))
    a.add(at(2, 21, 5), RatedPayload("satisfied"))
    b = case("B", at(2, 9)).add(at(2, 9, 20), DispatchedPayload("roads"))
    b.add(at(2, 11, 30), SignedForPayload("roads"))
    b.add(at(2, 10, 30), FirstContactPayload("roads", "call"))
    b.add(at(3, 11), ResolvedPayload("roads", "fixed")).add(
        at(3, 11, 30), CallbackPayload(True, False)
    )
    b.add(at(3, 11, 35), RatedPayload("dissatisfied"))
    c = case("C", at(2, 10)).add(at(2, 10, 5), DispatchedPayload("roads"))
    c.add(at(2, 10, 10), SignedForPayload("roads")).add(
        at(2, 13), FirstContactPayload("roads", "sms")
    )
    c.add(at(2, 14), ResolvedPayload("roads", "referred_elsewhere"))
    c.add(at(2, 15), CallbackPayload(True, True)).add(
        at(2, 15, 5), RatedPayload("basically_satisfied")
    )
    d = case("D", at(2, 11)).add(at(2, 11, 15), DispatchedPayload("roads"))
    d.add(at(2, 11, 20), SignedForPayload("roads"))
    e = case("E", at(3, 11, 30)).add(at(3, 11, 40), DispatchedPayload("roads"))
    policies = load_policies()
    hist = history({x.case_id: x.events for x in (a, b, c, d, e)}, policies)
    assert {r.policy_id for r in hist.final.values()} == {"bj-urgent"}
    write_shuffled(writer, hist, random.Random(0))
    now = at(3, 12)
    march = window("month", month="2026-03", timezone="UTC")

    (r,) = rates(client, march, now=now, min_cases=0)
    assert (r["response_rate"]["numerator"], r["response_rate"]["denominator"]) == (1, 4)
    assert r["response_rate"]["pending"] == 1
    assert (r["resolution_rate"]["numerator"], r["resolution_rate"]["denominator"]) == (2, 3)
    assert (r["satisfaction_rate"]["numerator"], r["satisfaction_rate"]["denominator"]) == (2, 3)
    assert r["participation_rate"]["rate"] == 1.0
    (t,) = on_time(client, march, now=now, min_cases=0)
    assert (t["first_response"]["numerator"], t["first_response"]["denominator"]) == (2, 4)
    assert (t["resolution"]["numerator"], t["resolution"]["denominator"]) == (2, 4)
    assert t["first_response"]["running_late"] == 1 and t["resolution"]["running_late"] == 1
    (dur,) = durations(client, march, min_cases=0)
    assert dur["first_response"]["wall"] == pytest.approx(
        {"count": 3, "mean": 6600.0, "p50": 5400.0, "p90": 9720.0, "p99": 10692.0}
    )
    assert dur["resolution"]["wall"] == pytest.approx(
        {"count": 3, "mean": 50400.0, "p50": 43200.0, "p90": 83520.0, "p99": 92592.0}
    )
    (bl,) = backlog(client, now=now, min_cases=0)
    assert bl["open"] == 2 and bl["aging"]["lt_1d"] == 1 and bl["aging"]["1d_3d"] == 1
    assert bl["past_due"]["numerator"] == 1 and bl["first_response_overdue"] == 1
    assert [bl["at_risk"][f"past_{p}"]["numerator"] for p in (50, 75, 90)] == [1, 1, 1]
    (q,) = quality(client, march, min_cases=0)
    assert q["closure_reasons"]["fixed"]["numerator"] == 2
    assert q["closure_reasons"]["fixed"]["denominator"] == 3
    gap = q["claimed_vs_confirmed"]
    assert gap["claimed"]["rate"] == gap["confirmed"]["rate"] == pytest.approx(2 / 3)
    assert gap["gap"] == 0.0 and gap["fixed_not_confirmed"] == 1
