"""The command line as a person uses it: exit codes and messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from streams.cli import app

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
