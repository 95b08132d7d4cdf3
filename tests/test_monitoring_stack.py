"""The shipped alerting rules and Alertmanager routing, end to end on real processes.

Prometheus and Alertmanager run from ``ops/`` with shortened timings (tests/monitoring.py).
What they scrape is a real exposition by the real client library: a prometheus_client HTTP
server in this process, whose gauges carry the worker's metric names and labels
(streams/observability/registry.py) and which the test sets to drive the alerts. The
worker's own /metrics endpoint is tested with the worker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from streams.kafka_runtime import free_port
from streams.observability.registry import (
    AT_RISK_CASES,
    BREACHED_CASES,
    LAST_PROCESSED,
    OPEN_CASES,
    SLA_LABELS,
)
from tests.monitoring import ROOT, Stack, WebhookReceiver, monitoring_stack

WATER = {
    "agency": "Water Authority",
    "district": "Harbour",
    "category": "flooding",
    "urgency": "emergency",
}
ROADS = {
    "agency": "Transport Bureau",
    "district": "Harbour",
    "category": "pothole",
    "urgency": "normal",
}
BREACH = "CivicpulseSlaOpenBreaches"
AT_RISK = "CivicpulseSlaAtRiskGrowing"


@dataclass
class Exposition:
    """The worker's SLA gauges, served over HTTP by prometheus_client."""

    address: str
    open: Gauge
    at_risk: Gauge
    breached: Gauge

    def set(self, labels: dict[str, str], *, at_risk: float, breached: float) -> None:
        self.at_risk.labels(**labels).set(at_risk)
        self.breached.labels(**labels).set(breached)
        self.open.labels(**labels).set(at_risk + breached + 40)


@pytest.fixture
def exposition() -> Iterator[Exposition]:
    registry = CollectorRegistry()

    def gauge(spec: Any) -> Gauge:
        assert spec.kind == "gauge" and spec.labels == SLA_LABELS
        return Gauge(spec.name, spec.help, spec.labels, registry=registry)

    served = Exposition(
        address="",
        open=gauge(OPEN_CASES),
        at_risk=gauge(AT_RISK_CASES),
        breached=gauge(BREACHED_CASES),
    )
    last_batch = Gauge(
        LAST_PROCESSED.name, LAST_PROCESSED.help, LAST_PROCESSED.labels, registry=registry
    )
    last_batch.labels(agent="cases").set_to_current_time()
    for labels in (WATER, ROADS):  # a first sample at 0: the at-risk rule looks at growth
        served.set(labels, at_risk=0, breached=0)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    served.address = f"127.0.0.1:{port}"
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def stack(tmp_path: Path, exposition: Exposition) -> Iterator[Stack]:
    with (
        WebhookReceiver() as webhook,
        monitoring_stack(tmp_path, exposition.address, webhook) as running,
    ):
        running.wait_scraped()
        yield running


def _is(alertname: str, labels: dict[str, str], status: str) -> Any:
    def predicate(payload: Any, alert: Any) -> bool:
        return bool(
            alert["status"] == status
            and alert["labels"].get("alertname") == alertname
            and alert["labels"].get("agency") == labels["agency"]
        )

    return predicate


def _wait_until(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.3)


def _am_alert(stack: Stack, alertname: str, labels: dict[str, str]) -> Any:
    for alert in stack.alertmanager_alerts():
        if (
            alert["labels"].get("alertname") == alertname
            and alert["labels"].get("agency") == labels["agency"]
        ):
            return alert
    return None


def test_a_breach_pages_the_agency_mutes_its_at_risk_warning_and_resolves(
    stack: Stack, exposition: Exposition
) -> None:
    webhook = stack.webhook

    # Open breaches above the threshold (5) in one agency: a critical page for it.
    exposition.set(WATER, at_risk=0, breached=8)
    payload, alert = webhook.wait_for(
        _is(BREACH, WATER, "firing"), timeout=30, what="firing breach"
    )
    assert alert["labels"]["severity"] == "critical"
    assert alert["labels"]["alertname"] == BREACH
    assert alert["labels"]["agency"] == "Water Authority"
    assert "Water Authority" in alert["annotations"]["summary"]
    assert alert["annotations"]["description"]
    assert payload["receiver"] == "agency-critical"
    assert payload["groupLabels"] == {"agency": "Water Authority", "alertname": BREACH}

    # At-risk backlogs grow in both agencies: the one without a breach gets its warning...
    exposition.set(WATER, at_risk=25, breached=8)
    exposition.set(ROADS, at_risk=25, breached=0)
    payload, alert = webhook.wait_for(
        _is(AT_RISK, ROADS, "firing"), timeout=30, what="firing at-risk warning (roads)"
    )
    assert alert["labels"]["severity"] == "warning"
    assert payload["receiver"] == "agency-warning"

    # ...the agency in breach does not: Alertmanager holds the warning as inhibited.
    inhibited = _wait_until(
        lambda: _am_alert(stack, AT_RISK, WATER), timeout=15, what="water at-risk alert in AM"
    )
    assert inhibited["status"]["state"] == "suppressed", inhibited
    assert inhibited["status"]["inhibitedBy"], inhibited
    assert inhibited["labels"]["severity"] == "warning"
    breach_in_am = _am_alert(stack, BREACH, WATER)
    assert breach_in_am["status"]["state"] == "active"
    assert breach_in_am["fingerprint"] in inhibited["status"]["inhibitedBy"]

    # Cases answered: the at-risk cases first (so the warning never surfaces), then the
    # breaches; the page resolves, and the muted warning was never sent.
    exposition.set(WATER, at_risk=0, breached=8)
    _wait_until(
        lambda: _am_alert(stack, AT_RISK, WATER) is None,
        timeout=20,
        what="water at-risk alert resolved in AM",
    )
    exposition.set(WATER, at_risk=0, breached=0)
    payload, alert = webhook.wait_for(
        _is(BREACH, WATER, "resolved"), timeout=30, what="resolved breach"
    )
    assert payload["receiver"] == "agency-critical"
    assert alert["labels"]["severity"] == "critical"

    water_warnings = [
        alert
        for _, alert in webhook.alerts()
        if alert["labels"]["alertname"] == AT_RISK
        and alert["labels"]["agency"] == "Water Authority"
    ]
    assert water_warnings == []
    # Per-agency grouping: no notification mixes two agencies.
    for sent in webhook.payloads():
        assert len({a["labels"].get("agency") for a in sent["alerts"]}) == 1, sent


def test_pipeline_alerts_stay_quiet_while_the_worker_is_healthy(
    stack: Stack, exposition: Exposition
) -> None:
    # Every shipped rule is loaded and evaluates without error against the exposition...
    rules = _wait_until(
        lambda: (r := stack.rules()) and all(rule["health"] != "unknown" for rule in r) and r,
        timeout=15,
        what="every rule evaluated",
    )
    shipped = yaml.safe_load((ROOT / "ops/prometheus/rules/civicpulse.yml").read_text())
    names = {rule["alert"] for group in shipped["groups"] for rule in group["rules"]}
    assert {rule["name"] for rule in rules} == names
    assert all(rule["health"] == "ok" for rule in rules), [
        (rule["name"], rule.get("lastError")) for rule in rules
    ]
    # ...and with the target up, a recent batch and no cases in breach, nothing fires.
    time.sleep(2)
    assert [a["labels"]["alertname"] for a in stack.prometheus_alerts()] == []
    assert stack.webhook.payloads() == []


def test_a_page_sent_while_the_webhook_is_down_arrives_once_it_is_back(
    tmp_path: Path, exposition: Exposition
) -> None:
    # The receiver's address is reserved, then nothing listens there: Alertmanager's
    # notifications fail until it comes back.
    down = WebhookReceiver()
    port = int(down.url.rsplit(":", 1)[1].split("/")[0])
    down.close()
    with monitoring_stack(tmp_path, exposition.address, down) as stack:
        stack.wait_scraped()
        exposition.set(WATER, at_risk=0, breached=8)
        _wait_until(
            lambda: (a := _am_alert(stack, BREACH, WATER)) and a["status"]["state"] == "active",
            timeout=30,
            what="breach active in Alertmanager",
        )
        time.sleep(3)  # several failed deliveries
        assert "connection refused" in stack.alertmanager.log_tail(200).lower()
        with WebhookReceiver(port=port) as back:
            payload, alert = back.wait_for(
                _is(BREACH, WATER, "firing"), timeout=60, what="page delivered after the outage"
            )
            assert payload["receiver"] == "agency-critical"
            assert alert["labels"]["severity"] == "critical"
