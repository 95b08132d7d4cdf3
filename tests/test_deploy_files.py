"""docker-compose.yml and the Dockerfile: complete, and consistent with the code.

No Docker engine runs here, so these check what can be checked without one.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict:  # type: ignore[type-arg]
    data: dict = yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[type-arg]
    return data


def test_compose_runs_the_whole_stack() -> None:
    services = compose()["services"]
    assert {"kafka", "clickhouse", "migrate", "worker", "simulator", "grafana"} <= set(services)
    worker_env = services["worker"]["environment"]
    assert worker_env["CIVICPULSE_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert worker_env["CLICKHOUSE_URL"].startswith("http://")
    assert (
        "grafana-clickhouse-datasource" in services["grafana"]["environment"]["GF_INSTALL_PLUGINS"]
    )


def test_compose_runs_prometheus_and_alertmanager_on_the_shipped_configs() -> None:
    services = compose()["services"]
    assert {"prometheus", "alertmanager", "alert-webhook"} <= set(services)
    prometheus, alertmanager = services["prometheus"], services["alertmanager"]
    assert prometheus["image"].startswith("prom/prometheus:")
    assert alertmanager["image"].startswith("prom/alertmanager:")
    assert "./ops/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "./ops/alertmanager:/etc/alertmanager:ro" in alertmanager["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in alertmanager["command"]
    # The addresses in the configs are these services and ports.
    assert "6066" in services["worker"]["expose"]
    assert "8080" in services["alert-webhook"]["expose"]
    assert "9093:9093" in alertmanager["ports"]
    prometheus_yml = yaml.safe_load((ROOT / "ops/prometheus/prometheus.yml").read_text())
    scraped = [
        t
        for job in prometheus_yml["scrape_configs"]
        for s in job["static_configs"]
        for t in s["targets"]
    ]
    assert scraped == ["worker:6066"]
    alerting = prometheus_yml["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alerting == ["alertmanager:9093"]
    alertmanager_yml = yaml.safe_load((ROOT / "ops/alertmanager/alertmanager.yml").read_text())
    urls = {w["url"] for r in alertmanager_yml["receivers"] for w in r["webhook_configs"]}
    assert urls == {"http://alert-webhook:8080/alerts"}


def test_compose_mounts_exist() -> None:
    for service in compose()["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source


def test_the_image_carries_every_directory_the_code_reads_at_run_time() -> None:
    copied = set(re.findall(r"^COPY (\S+) ", (ROOT / "Dockerfile").read_text(), re.MULTILINE))
    assert {"streams", "schemas", "config"} <= copied
