"""The command line as a person uses it: exit codes and messages."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.contract import Event, OpenedPayload
from streams.contract.alerts import encode_alert
from streams.core.sla.alerts import due_alerts
from streams.core.sla.clock import evaluate
from streams.core.sla.policy import load_policies
from streams.kafka_runtime.topics import ensure_topics_sync
from streams.sources.producer import produce
from streams.sources.simulator import Emitted

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIVICPULSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CIVICPULSE_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.delenv("CIVICPULSE_KAFKA_BOOTSTRAP", raising=False)


def test_sla_check_lists_the_shipped_policies() -> None:
    result = runner.invoke(app, ["sla", "check"])
    assert result.exit_code == 0, result.output
    assert "bj-emergency: first response 30 min (wall clock)" in result.output
    assert "5 policies OK" in result.output


def test_sla_check_names_the_file_and_reason_of_a_bad_policy_file(tmp_path: Path) -> None:
    bad = tmp_path / "policies.yaml"
    bad.write_text("version: 1\npolicies:\n  - id: x\n    bogus: 1\n")
    result = runner.invoke(app, ["sla", "check", str(bad)])
    assert result.exit_code == 1
    assert str(bad) in result.output.replace("\n", "")


def test_sla_catalogue_lists_the_2025_national_day_holiday_and_its_working_sunday() -> None:
    result = runner.invoke(app, ["sla", "catalogue", "--year", "2025"])
    assert result.exit_code == 0, result.output
    assert "2025-10-01" in result.output and "2025-09-28" in result.output


def test_commands_that_need_kafka_say_how_to_start_it() -> None:
    result = runner.invoke(app, ["simulate", "--cases", "1"])
    assert result.exit_code == 1
    assert "civicpulse kafka up" in result.output


def test_kafka_status_without_a_broker_exits_3() -> None:
    result = runner.invoke(app, ["kafka", "status"])
    assert result.exit_code == 3 and "not running" in result.output


def test_query_refuses_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["query", "DROP TABLE events"])
    assert result.exit_code == 1
    assert "read-only" in result.output.lower() or "not allowed" in result.output.lower()


@pytest.mark.integration
def test_alerts_tail_filters_by_agency_and_reports_foreign_messages(
    kafka_broker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"tail-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CIVICPULSE_KAFKA_BOOTSTRAP", kafka_broker.bootstrap)
    monkeypatch.setenv("CIVICPULSE_TOPIC_PREFIX", prefix)
    topic = f"{prefix}.sla.alerts"
    ensure_topics_sync(kafka_broker.bootstrap, {topic: 1})
    opened = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    events = [
        Event(
            f"evt-{agency}-0001",
            f"C-{agency}",
            "opened",
            opened,
            "test",
            1,
            OpenedPayload("app", "noise", "urgent", "d1", "s1", "0" * 16),
        )
        for agency in ("water", "roads")
    ]
    policies = load_policies()
    messages = []
    for event, agency in zip(events, ("water", "roads"), strict=True):
        later = opened + timedelta(days=3)
        alert = due_alerts(evaluate([event], policies), later, {"agency": agency})[-1]
        value = encode_alert(alert, opened, "w")
        messages.append(Emitted(alert.alert_id.encode(), value, "valid"))
    messages.insert(1, Emitted(b"junk", b"not an alert", "malformed"))
    asyncio.run(produce(kafka_broker.bootstrap, topic, messages))

    result = runner.invoke(
        app,
        ["alerts", "tail", "--from-beginning", "--idle", "3", "--json", "--agency", "water"],
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    shown = [json.loads(line) for line in lines if line.startswith("{")]
    assert [a["case_id"] for a in shown] == ["C-water"]
    assert shown[0]["type"] == "sla.breached" and shown[0]["target"] == "resolution"
    assert any("not an alert" in line and f"{topic}/0@1" in line for line in lines)


def test_simulate_live_takes_the_noise_and_batch_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`simulate --live` passes --malformed, --duplicates, --out-of-order and
    --events-per-message on (the stream and the producer are stood in for here: the
    options' effect on the wire is tested with the simulator and the producer)."""
    import streams.cli
    import streams.kafka_runtime.topics
    import streams.sources.simulator as simulator

    seen: dict[str, Any] = {}

    def fake_stream(**options: Any) -> str:
        seen["stream"] = options
        return "stream"

    async def fake_produce(*args: Any, **options: Any) -> int:
        seen["produce"] = (args, options)
        return 0

    monkeypatch.setattr(simulator, "live_stream", fake_stream)
    monkeypatch.setattr(simulator, "produce", fake_produce)
    monkeypatch.setattr(streams.cli, "resolve_bootstrap", lambda _settings: "127.0.0.1:1")
    monkeypatch.setattr(streams.kafka_runtime.topics, "ensure_topics_sync", lambda *_: None)
    monkeypatch.setenv("CIVICPULSE_CONFIG", str(tmp_path / "none.toml"))
    args = ["simulate", "--live", "--rate", "5", "--malformed", "0.1", "--duplicates", "0.2"]
    args += ["--out-of-order", "0.3", "--events-per-message", "7"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert seen["stream"] == {
        "seed": 1,
        "rate_per_s": 5.0,
        "malformed_share": 0.1,
        "duplicate_share": 0.2,
        "out_of_order_share": 0.3,
    }
    produced_args, produced_options = seen["produce"]
    assert produced_args[2] == "stream"
    assert produced_options == {"rate": 5.0, "events_per_message": 7}
