"""A small live city in embedded ClickHouse for the board tests: simulated events fed
through the pipeline's own steps (ingest, lateness, apply_events with the shipped SLA
policies) in wire order, up to a cut-off instant ``now``, and written with the real batch
writer, as a worker would have written them by ``now``.

``sla_alerts`` (migration 0007) is filled from the stored clocks: every 50 % / 75 % warning
and every deadline passed by ``now``, each written twice, as the at-least-once copy of the
alert topic may.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from streams.app.lateness import LatenessTracker
from streams.app.steps import RawMessage, apply_events, ingest
from streams.contract import decode_event
from streams.core.case_state import CaseState
from streams.core.sla.policy import load_policies
from streams.core.sla.rows import CaseSlaRow
from streams.sources.simulator import DEFAULT_START, SimulationConfig, simulate
from streams.store.client import Client
from streams.store.writer import BatchWriter

BATCH = 400


@dataclass
class City:
    start: datetime
    now: datetime
    #: the latest SLA row of every case, as the worker last wrote it
    rows: dict[str, CaseSlaRow]
    events: int
    dead_letters: int
    #: distinct late events (a redelivered late event is one row)
    late_events: int


def fill_alerts(client: Client, now: datetime, copies: int = 2) -> None:
    insert = """
        INSERT INTO sla_alerts (alert_id, type, case_id, target, cycle, threshold, fired_at,
            emitted_at, due_at, policy_id, agency, sub_unit, district, sub_district, category,
            urgency, channel, worker)
        SELECT
            concat(case_id, '/', a.4, '/', a.1, '/', toString(a.2)) AS alert_id,
            a.1 AS type, case_id, a.4 AS target, toUInt16(if(a.4 = 'resolution',
            ifNull(res_cycle, 0), 0)) AS cycle, toFloat32(a.2) AS threshold,
            assumeNotNull(a.3) AS fired_at, fired_at + INTERVAL 2 SECOND AS emitted_at,
            a.5 AS due_at, policy_id, agency, sub_unit, district, sub_district, category,
            urgency, channel, 'boards-test' AS worker
        FROM case_sla FINAL
        ARRAY JOIN [
            tuple('sla.warning', 0.5, fr_warn_50_at, 'first_response', fr_due_at),
            tuple('sla.warning', 0.75, fr_warn_75_at, 'first_response', fr_due_at),
            tuple('sla.breached', 1.0, if(ifNull(fr_on_time, false), NULL, fr_due_at),
                  'first_response', fr_due_at),
            tuple('sla.warning', 0.5, res_warn_50_at, 'resolution', res_due_at),
            tuple('sla.warning', 0.75, res_warn_75_at, 'resolution', res_due_at),
            tuple('sla.breached', 1.0, if(ifNull(res_on_time, false), NULL, res_due_at),
                  'resolution', res_due_at)
        ] AS a
        WHERE a.3 IS NOT NULL AND a.3 <= {now:DateTime64(6, 'UTC')}
    """
    for _ in range(copies):  # redelivered: the feed shows each alert once
        client.command(insert, parameters={"now": now})


def build_city(
    client: Client, *, seed: int = 7, cases: int = 900, days: float = 16, cut_days: float = 12.6
) -> City:
    start = DEFAULT_START.astimezone(UTC)
    now = start + timedelta(days=cut_days)
    sim = simulate(
        SimulationConfig(
            seed=seed,
            cases=cases,
            horizon_days=days,
            malformed_share=0.01,
            duplicate_share=0.02,
            out_of_order_share=0.05,
        )
    )
    policies = load_policies()
    writer = BatchWriter(client)
    tracker = LatenessTracker(grace=timedelta(hours=1))
    cache: dict[str, CaseState] = {}
    states: dict[str, bytes] = {}
    rows: dict[str, CaseSlaRow] = {}
    messages: list[RawMessage] = []
    clock = start
    for offset, emitted in enumerate(sim.emitted):
        if emitted.kind != "malformed":
            at = decode_event(emitted.value).occurred_at
            if at > now:
                continue
            clock = max(clock, at)
        messages.append(
            RawMessage("civicpulse.raw", offset % 4, offset, emitted.key, emitted.value)
        )
    totals = {"events": 0, "dead": 0}
    late_ids: set[tuple[str, str]] = set()
    for lo in range(0, len(messages), BATCH):
        batch = messages[lo : lo + BATCH]
        newest = max((decode_event(m.value).occurred_at for m in batch if _valid(m)), default=start)
        received = min(newest + timedelta(seconds=3 + lo % 50), now)
        result = ingest(batch, now=received)
        late = tracker.observe(result.valid, received)
        folded = apply_events(result.valid, states.get, cache, now=received, policies=policies)
        states.update(folded.states)
        writer.write_events(folded.event_rows)
        writer.write_case_facts(folded.facts)
        writer.write_dead_letters(result.dead)
        writer.write_late_events(late)
        writer.write_case_sla(folded.sla)
        writer.write_cycles(folded.cycles)
        for row in folded.sla:
            rows[row.case_id] = row
        totals["events"] += len(folded.event_rows)
        totals["dead"] += len(result.dead)
        late_ids.update((r.case_id, r.event_id) for r in late)
    fill_alerts(client, now)
    return City(start, now, rows, totals["events"], totals["dead"], len(late_ids))


def _valid(message: RawMessage) -> bool:
    try:
        decode_event(message.value)
    except Exception:
        return False
    return True
