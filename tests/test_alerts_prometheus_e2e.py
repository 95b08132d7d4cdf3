"""The whole alert path on real parts: cases through Kafka into a real worker, whose
/metrics a real Prometheus scrapes with the shipped rules, which page a real Alertmanager
with the shipped routing, which notifies a webhook receiver; and the page resolves when
the cases are answered. Only timings are shortened (tests/monitoring.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from streams.contract import FirstContactPayload, ResolvedPayload
from tests.monitoring import WebhookReceiver, monitoring_stack
from tests.test_alerts_e2e import CaseBuilder, alert_worker, quick_policy, send

pytestmark = pytest.mark.integration

BREACHES = "CivicpulseSlaOpenBreaches"


def test_breaches_page_the_agency_through_prometheus_and_alertmanager_then_resolve(
    kafka_broker: Any, tmp_path: Path
) -> None:
    worker = alert_worker(kafka_broker, tmp_path, quick_policy("3s", "6s"))
    raw = worker.topic("events.raw")
    worker.start()
    try:
        with (
            WebhookReceiver() as webhook,
            monitoring_stack(
                tmp_path / "monitoring", f"127.0.0.1:{worker.web_port}", webhook
            ) as stack,
        ):
            stack.wait_scraped()
            base = datetime.now(UTC).replace(microsecond=0)
            water = [CaseBuilder(f"W-{n}", "Water Authority", base) for n in range(6)]
            roads = [CaseBuilder(f"R-{n}", "Transport Bureau", base) for n in range(6)]
            send(worker.bootstrap, raw, [e for c in water + roads for e in c.opened()])
            # Roads answers and resolves in time: it must never be paged.
            send(
                worker.bootstrap,
                raw,
                [
                    e
                    for c in roads
                    for e in (
                        c.add(1, FirstContactPayload("Transport Bureau", "call")),
                        c.add(2, ResolvedPayload("Transport Bureau", "fixed")),
                    )
                ],
            )

            firing_payload, page = webhook.wait_for(
                lambda p, a: a["status"] == "firing" and a["labels"]["alertname"] == BREACHES,
                timeout=90,
                what="for the water breaches",
            )
            assert page["labels"]["agency"] == "Water Authority"
            assert page["labels"]["severity"] == "critical"
            assert firing_payload["receiver"] == "agency-critical"
            assert firing_payload["groupLabels"] == {
                "agency": "Water Authority",
                "alertname": BREACHES,
            }

            # Water answers and resolves all six: the page resolves.
            now = (datetime.now(UTC) - base).total_seconds()
            send(
                worker.bootstrap,
                raw,
                [
                    e
                    for c in water
                    for e in (
                        c.add(now, FirstContactPayload("Water Authority", "call")),
                        c.add(now + 0.5, ResolvedPayload("Water Authority", "fixed")),
                    )
                ],
            )
            webhook.wait_for(
                lambda p, a: (
                    a["status"] == "resolved"
                    and a["labels"]["alertname"] == BREACHES
                    and a["labels"]["agency"] == "Water Authority"
                ),
                timeout=90,
                what="resolving the water page",
            )
            assert not [
                a for _, a in webhook.alerts() if a["labels"].get("agency") == "Transport Bureau"
            ], "an agency that answered in time was paged"
    finally:
        assert worker.stop() == 0, worker.log_tail()
