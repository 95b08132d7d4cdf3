"""ops/prometheus and ops/alertmanager: accepted by promtool and amtool, consistent with the
worker's metrics, and ``civicpulse ops check`` names the file and line of each mistake."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from streams import ops_check
from streams.cli import app
from streams.observability.registry import exposed_names
from tests.monitoring import require_binary

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = ROOT / "ops" / "prometheus" / "prometheus.yml"
RULES = ROOT / "ops" / "prometheus" / "rules" / "civicpulse.yml"
ALERTMANAGER = ROOT / "ops" / "alertmanager" / "alertmanager.yml"

runner = CliRunner()


@pytest.fixture(autouse=True)
def tools_installed() -> None:
    for tool in ("promtool", "amtool"):
        require_binary(tool)


@pytest.fixture
def copy(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A copy of the shipped files to break: (prometheus.yml, its rule file, alertmanager.yml)."""
    shutil.copytree(ROOT / "ops" / "prometheus", tmp_path / "prometheus")
    shutil.copytree(ROOT / "ops" / "alertmanager", tmp_path / "alertmanager")
    return (
        tmp_path / "prometheus" / "prometheus.yml",
        tmp_path / "prometheus" / "rules" / "civicpulse.yml",
        tmp_path / "alertmanager" / "alertmanager.yml",
    )


def replace_once(path: Path, old: str, new: str) -> int:
    """Replace the one occurrence of ``old`` in ``path``; return its (1-based) line."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    index = text.index(old)
    path.write_text(text.replace(old, new))
    return text.count("\n", 0, index) + 1


def ops_check_cli(prometheus: Path, alertmanager: Path) -> tuple[int, str]:
    result = runner.invoke(
        app, ["ops", "check", "--prometheus", str(prometheus), "--alertmanager", str(alertmanager)]
    )
    return result.exit_code, result.output


# --- the shipped files -----------------------------------------------------------------


def test_promtool_accepts_the_prometheus_config_and_rules() -> None:
    config = subprocess.run(
        ["promtool", "check", "config", str(PROMETHEUS)], capture_output=True, text=True
    )
    assert config.returncode == 0, config.stdout + config.stderr
    assert "1 rule files found" in config.stdout + config.stderr
    rules = subprocess.run(
        ["promtool", "check", "rules", str(RULES)], capture_output=True, text=True
    )
    assert rules.returncode == 0, rules.stdout + rules.stderr


def test_amtool_accepts_the_alertmanager_config() -> None:
    done = subprocess.run(
        ["amtool", "check-config", str(ALERTMANAGER)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_ops_check_passes_on_the_shipped_files() -> None:
    result = runner.invoke(app, ["ops", "check"])
    assert result.exit_code == 0, result.output
    assert f"{RULES}: OK" in result.output
    assert f"{ALERTMANAGER}: OK" in result.output
    report = ops_check.require_valid()
    assert report.rule_files == [RULES]
    assert report.rules == 8


def test_every_metric_name_in_the_rules_is_one_the_worker_exposes() -> None:
    problems, used = ops_check.check_metric_names(RULES)
    assert problems == []
    assert used <= exposed_names()
    # The tokenizer sees what a plain search of the expressions sees.
    rules = yaml.safe_load(RULES.read_text())
    expressions = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
    assert used == set(re.findall(r"civicpulse_[a-z_]+", expressions))
    assert {"civicpulse_sla_breached_cases", "civicpulse_sla_at_risk_cases"} <= used


def test_every_alert_has_a_severity_annotations_and_keeps_the_agency_it_groups_by() -> None:
    rules = yaml.safe_load(RULES.read_text())
    for rule in (r for g in rules["groups"] for r in g["rules"]):
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        if rule["alert"].startswith("CivicpulseSla"):
            assert "by (agency)" in rule["expr"], rule["alert"]


# --- broken copies: the file, the line, the reason ---------------------------------------


def test_a_yaml_syntax_error_in_the_prometheus_config(copy: tuple[Path, Path, Path]) -> None:
    prometheus, _, alertmanager = copy
    line = replace_once(prometheus, "scrape_timeout: 10s", "scrape_timeout: [10s")
    code, output = ops_check_cli(prometheus, alertmanager)
    assert code == 1
    assert f"{prometheus}:{line}: invalid YAML" in output


def test_a_yaml_syntax_error_in_a_rule_file(copy: tuple[Path, Path, Path]) -> None:
    prometheus, rules, alertmanager = copy
    line = replace_once(rules, "        for: 5m\n", "        for: [5m\n")
    code, output = ops_check_cli(prometheus, alertmanager)
    assert code == 1
    assert f"{rules}:{line}: invalid YAML" in output


def test_a_yaml_syntax_error_in_the_alertmanager_config(copy: tuple[Path, Path, Path]) -> None:
    prometheus, _, alertmanager = copy
    line = replace_once(
        alertmanager, "group_by: [agency, alertname]", "group_by: agency: alertname"
    )
    code, output = ops_check_cli(prometheus, alertmanager)
    assert code == 1
    assert f"{alertmanager}:{line}: invalid YAML" in output


def test_an_invalid_promql_expression(copy: tuple[Path, Path, Path]) -> None:
    prometheus, rules, alertmanager = copy
    line = replace_once(
        rules,
        "expr: sum by (agency) (civicpulse_sla_breached_cases) >= 5",
        "expr: sum by (agency) (civicpulse_sla_breached_cases >= 5",
    )
    code, output = ops_check_cli(prometheus, alertmanager)
    assert code == 1
    assert f"{rules}:{line}: " in output
    assert "CivicpulseSlaOpenBreaches" in output and "could not parse expression" in output


def test_an_unknown_receiver_in_a_route(copy: tuple[Path, Path, Path]) -> None:
    prometheus, _, alertmanager = copy
    line = replace_once(
        alertmanager, "      receiver: agency-warning\n", "      receiver: agency-nobody\n"
    )
    code, output = ops_check_cli(prometheus, alertmanager)
    assert code == 1
    assert f'{alertmanager}:{line}: undefined receiver "agency-nobody" used in route' in output


def test_an_unknown_field_in_the_alertmanager_config(copy: tuple[Path, Path, Path]) -> None:
    prometheus, _, alertmanager = copy
    line = replace_once(alertmanager, "  group_wait: 30s", "  group_wiat: 30s")
    code, output = ops_check_cli(prometheus, alertmanager)
    assert code == 1
    assert f"{alertmanager}:{line}: field group_wiat not found" in output


def test_a_misspelled_metric_name(copy: tuple[Path, Path, Path]) -> None:
    prometheus, rules, alertmanager = copy
    # On the second line of a multi-line expression: the line is the token's own.
    line = replace_once(
        rules,
        "/ sum(rate(civicpulse_events_received_total[10m]))",
        "/ sum(rate(civicpulse_events_recieved_total[10m]))",
    )
    code, output = ops_check_cli(prometheus, alertmanager)
    assert code == 1
    assert f"{rules}:{line}: rule 'CivicpulseDeadLetterSpike' uses metric " in output
    assert "'civicpulse_events_recieved_total'" in output
    assert "1 problem(s) found" in output


def test_every_problem_is_reported_not_just_the_first(copy: tuple[Path, Path, Path]) -> None:
    prometheus, rules, alertmanager = copy
    first = replace_once(
        rules,
        'expr: up{job="civicpulse-worker"} == 0',
        'expr: up{job="civicpulse-worker"} == 0 and civicpulse_up == 0',
    )
    receiver = replace_once(
        alertmanager, "      receiver: agency-warning\n", "      receiver: agency-nobody\n"
    )
    report = ops_check.check(prometheus, alertmanager)
    assert [(p.file, p.line) for p in report.problems] == [
        (rules, first),
        (alertmanager, receiver),
    ]
    with pytest.raises(ops_check.OpsCheckError) as raised:
        ops_check.require_valid(prometheus, alertmanager)
    assert f"{rules}:{first}: " in str(raised.value)


def test_a_missing_tool_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    code, output = ops_check_cli(PROMETHEUS, ALERTMANAGER)
    assert code == 1
    assert "promtool not found" in output and "make install" in output
