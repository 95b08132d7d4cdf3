"""The public monthly report: its numbers are the metric queries', it is self-contained,
and headless Chromium renders its charts (a screenshot is kept in test-artifacts/)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from streams.app.steps import RawMessage, apply_events, ingest
from streams.cli import app
from streams.core.sla.policy import load_policies
from streams.kafka_runtime import free_port
from streams.reporting.html import BAR, render_report
from streams.reporting.monthly import monthly_report_data
from streams.sources.simulator import DEFAULT_START, SimulationConfig, simulate
from streams.store import Store, metrics
from streams.store.client import close_clients

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
MONTH = DEFAULT_START.strftime("%Y-%m")
NOW = DEFAULT_START.replace(month=DEFAULT_START.month + 2)


@pytest.fixture(scope="module")
def dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    history = simulate(SimulationConfig(seed=3, cases=2500, horizon_days=35))
    messages = [RawMessage("raw", 0, i, None, m.value, ()) for i, m in enumerate(history.emitted)]
    result = apply_events(ingest(messages).valid, lambda _: None, {}, policies=load_policies())
    location = f"chdb://{tmp_path_factory.mktemp('report') / 'store'}"
    store = Store.open(location)
    store.writer.write_case_facts(result.facts)
    store.writer.write_case_sla(result.sla)
    store.writer.write_cycles(result.cycles)
    yield location
    close_clients()


@pytest.fixture(scope="module")
def data(dsn: str) -> dict[str, Any]:
    return monthly_report_data(Store.open(dsn).client, MONTH, now=NOW)


def test_the_report_shows_the_metric_queries_numbers(dsn: str, data: dict[str, Any]) -> None:
    client = Store.open(dsn).client
    config = metrics.load_ranking_config()
    win = metrics.window("month", month=MONTH, timezone=config.timezone)
    city = metrics.rates(client, win, now=NOW, min_cases=config.min_cases)[0]
    assert data["city"] == city and city["cases"] > 1000
    ranking = metrics.ranking(client, "sub_district", month=MONTH, now=NOW, config=config)
    assert data["ranking"]["sub_district"] == ranking and len(ranking["ranked"]) > 10

    page = render_report(data)
    for key in ("response_rate", "resolution_rate", "satisfaction_rate", "participation_rate"):
        rate = city[key]
        assert f"({rate['numerator']} / {rate['denominator']})" in page, key
    for entry in ranking["ranked"]:
        assert f"{entry['index']:.1f}" in page
        assert entry["sub_district"] in page
    assert "0.45 x resolution_rate" in page  # the weights, beside the index
    # Self-contained: nothing is fetched.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script" not in page


def test_headless_chromium_renders_the_charts(tmp_path: Path, data: dict[str, Any]) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed: `make test` installs it (Debian package)"
    page = tmp_path / "report.html"
    page.write_text(render_report(data), encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"report-{MONTH}.png"
    shot.unlink(missing_ok=True)
    completed = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1200,1400",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0 and shot.exists(), completed.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 1400)
    bar = tuple(int(BAR[i : i + 2], 16) for i in (1, 3, 5))
    bar_pixels = sum(count for count, colour in image.getcolors(1 << 20) or [] if colour == bar)
    # The city-wide rates chart and the start of the ranking chart are in view: their bars
    # cover tens of thousands of pixels when the SVG rendered.
    assert bar_pixels > 20_000, f"chart bars cover only {bar_pixels} px ({shot})"
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    ranked = len(data["ranking"]["sub_district"]["ranked"])
    assert dom.count('class="bar"') == 4 + ranked + len(data["ranking"]["agency"]["ranked"])


def test_report_command_writes_the_file_and_names_a_bad_month(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLICKHOUSE_URL", dsn)
    monkeypatch.setenv("CIVICPULSE_WEB_PORT", str(free_port()))  # no worker answers there
    monkeypatch.setenv("CIVICPULSE_CONFIG", str(tmp_path / "none.toml"))
    runner = CliRunner()
    out = tmp_path / "r.html"
    result = runner.invoke(app, ["report", "--month", MONTH, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.output.replace("\n", "")
    assert "<svg" in out.read_text()
    bad = runner.invoke(app, ["report", "--month", "2026-13"])
    assert bad.exit_code == 1 and "not YYYY-MM" in bad.output
