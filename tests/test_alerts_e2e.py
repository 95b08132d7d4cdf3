"""SLA alerts through the real broker and a real worker: timers fire for cases that get no
further events, answers cancel what has not fired yet, and every alert is written to the
alert topic exactly once although the worker is killed (SIGKILL) half-way."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.contract import (
    DispatchedPayload,
    Event,
    FirstContactPayload,
    OpenedPayload,
    Payload,
    ResolvedPayload,
    encode_event,
)
from streams.contract.alerts import decode_alert, parse_instant
from streams.core.sla.alerts import due_alerts
from streams.core.sla.clock import evaluate
from streams.core.sla.policy import load_policies
from streams.observability import registry
from streams.sources.producer import produce
from streams.sources.simulator import Emitted
from tests.workers import WorkerProcess

pytestmark = pytest.mark.integration


def quick_policy(first_response: str, resolution: str) -> str:
    """Wall-clock targets short enough for the whole life of an alert to fit in a test."""
    return (
        "version: 1\ntitle: alert test tiers\npolicies:\n"
        '  - id: quick\n    match: {category: "*"}\n    thresholds: [0.5, 0.75, 0.9]\n'
        f"    first_response: {{clock: wall, within: {first_response}}}\n"
        f"    resolution: {{clock: wall, within: {resolution}}}\n"
    )


class CaseBuilder:
    def __init__(self, case_id: str, agency: str, base: datetime) -> None:
        self.case_id, self.agency, self.base = case_id, agency, base
        self.events: list[Event] = []

    def add(self, seconds: float, payload: Payload) -> Event:
        event = Event(
            f"evt-{self.case_id}-{len(self.events):04d}",
            self.case_id,
            payload.EVENT_TYPE,
            self.base + timedelta(seconds=seconds),
            "test",
            1,
            payload,
        )
        self.events.append(event)
        return event

    def opened(self) -> list[Event]:
        return [
            self.add(0, OpenedPayload("hotline", "noise", "normal", "d1", "s1", "0" * 16)),
            self.add(0.5, DispatchedPayload(self.agency)),
        ]


def alert_worker(kafka_broker: Any, tmp_path: Path, policy: str, **env: str) -> WorkerProcess:
    """A worker on ``policy`` whose alert timer ticks every 0.25 s, its topics created."""
    policy_file = tmp_path / "policies.yaml"
    policy_file.write_text(policy)
    worker = WorkerProcess(
        bootstrap=kafka_broker.bootstrap,
        data_dir=tmp_path / "data",
        extra_env={
            "CIVICPULSE_SLA_POLICIES": str(policy_file),
            "CIVICPULSE_ALERT_TICK_SECONDS": "0.25",
            **env,
        },
    )
    worker.ensure_topics()
    return worker


def send(bootstrap: str, topic: str, events: list[Event]) -> None:
    messages = [Emitted(e.case_id.encode(), encode_event(e), "valid") for e in events]
    assert asyncio.run(produce(bootstrap, topic, messages)) == len(messages)


def read_alerts(bootstrap: str, topic: str, partitions: int) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            out: list[dict[str, Any]] = []

            async def behind() -> bool:
                return any([await consumer.position(tp) < ends[tp] for tp in tps])

            while await behind():
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for record in records:
                        alert = decode_alert(record.value)
                        assert record.key == alert["alert_id"].encode()
                        out.append(alert | {"_partition": record.partition})
            return out
        finally:
            await consumer.stop()

    return asyncio.run(read())


def metric_value(worker: WorkerProcess, name: str, **labels: str) -> float:
    text = httpx.get(worker.url("/metrics"), timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_alerts_fire_on_time_exactly_once_across_a_crash(kafka_broker: Any, tmp_path: Path) -> None:
    worker = alert_worker(
        kafka_broker,
        tmp_path,
        quick_policy("8s", "20s"),
        CIVICPULSE_KAFKA_SESSION_TIMEOUT_SECONDS="6",
    )
    policies = load_policies(Path(worker.extra_env["CIVICPULSE_SLA_POLICIES"]))
    raw = worker.topic("events.raw")
    alert_topic = worker.topic("sla.alerts")
    worker.start()

    base = datetime.now(UTC) + timedelta(seconds=2)
    base = base.replace(microsecond=base.microsecond // 1000 * 1000)  # events carry ms
    silent = [CaseBuilder(f"W-{n}", "water", base) for n in range(3)]  # never answered
    quick = CaseBuilder("R-quick", "roads", base)  # answered and resolved in time
    late = CaseBuilder("R-late", "roads", base)  # first contact after its deadline
    cases = [*silent, quick, late]
    send(worker.bootstrap, raw, [e for c in cases for e in c.opened()])

    def at(seconds: float) -> None:
        wait = base + timedelta(seconds=seconds) - datetime.now(UTC)
        time.sleep(max(0.0, wait.total_seconds()))

    try:
        at(2)
        send(worker.bootstrap, raw, [quick.add(2, FirstContactPayload("roads", "call"))])
        at(5)
        send(worker.bootstrap, raw, [quick.add(5, ResolvedPayload("roads", "fixed"))])
        at(6.8)  # after the 50 % and 75 % first-response warnings of the silent cases
        before_crash = read_alerts(worker.bootstrap, alert_topic, worker.partitions)
        assert worker.process is not None
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait()
    except BaseException:
        worker.stop()
        raise

    # What the live worker raised before the crash, and how promptly.
    ids_before = {a["alert_id"] for a in before_crash}
    for case in silent:
        assert f"{case.case_id}/first_response/0/warn50" in ids_before
        assert f"{case.case_id}/first_response/0/warn75" in ids_before
    assert not any(a["case_id"] == "R-quick" for a in before_crash)
    for alert in before_crash:
        lag = parse_instant(alert["emitted_at"]) - parse_instant(alert["fired_at"])
        assert timedelta(0) <= lag < timedelta(seconds=2.5), alert

    worker.start()
    try:
        at(10)
        send(worker.bootstrap, raw, [late.add(10, FirstContactPayload("roads", "call"))])
        at(12)
        send(worker.bootstrap, raw, [late.add(12, ResolvedPayload("roads", "fixed"))])
        at(21)  # past every deadline
        expected = {
            alert.alert_id: alert
            for case in cases
            for alert in due_alerts(
                evaluate(case.events, policies), base + timedelta(days=1), {"agency": case.agency}
            )
        }
        assert len(expected) == 3 * 8 + 4 + 1  # silent: all 8; late: fr 4, resolution warn50
        deadline = time.monotonic() + 90
        alerts: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            alerts = read_alerts(worker.bootstrap, alert_topic, worker.partitions)
            if len(alerts) >= len(expected):
                break
            time.sleep(1)
        time.sleep(3)  # anything extra would show up now
        alerts = read_alerts(worker.bootstrap, alert_topic, worker.partitions)

        counts = Counter(a["alert_id"] for a in alerts)
        assert [i for i, n in counts.items() if n > 1] == [], "alerts emitted twice"
        assert set(counts) == set(expected), (
            f"missing {sorted(set(expected) - set(counts))}, "
            f"unexpected {sorted(set(counts) - set(expected))}"
        )
        for alert in alerts:
            want = expected[alert["alert_id"]]
            assert parse_instant(alert["fired_at"]) == want.fired_at
            assert alert["type"] == want.type and alert["agency"] == want.dimension("agency")
        # The alert's partition is its case's: the owner of the case owns its alerts.
        by_case = {a["case_id"]: a["_partition"] for a in alerts}
        assert len({(c, p) for c, p in by_case.items()}) == len(by_case)

        # The ClickHouse copy the boards read, and the gauges Prometheus scrapes.
        worker.wait_until(
            "SELECT count() FROM sla_alerts FINAL", len(expected), what="alerts in ClickHouse"
        )
        stored = worker.query("SELECT alert_id FROM sla_alerts FINAL")[1]
        assert {row[0] for row in stored} == set(expected)
        scrape = httpx.get(worker.url("/metrics"), timeout=10).text
        sla_lines = [line for line in scrape.splitlines() if line.startswith("civicpulse_sla")]
        assert metric_value(worker, "civicpulse_sla_breached_cases", agency="water") == 3, sla_lines
        assert metric_value(worker, "civicpulse_sla_open_cases", agency="roads") == 0
        assert metric_value(worker, "civicpulse_sla_alerts_emitted_total") > 0
        # Every series of the one registry is exposed, and nothing outside it.
        families = {line.split()[2] for line in scrape.splitlines() if line.startswith("# HELP ")}
        ours = {f for f in families if f.startswith("civicpulse_")}
        assert ours == {
            spec.name + ("_total" if spec.kind == "counter" else "") for spec in registry.ALL
        }
    finally:
        assert worker.stop() == 0, worker.log_tail()
