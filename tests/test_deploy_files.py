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


def test_compose_mounts_exist() -> None:
    for service in compose()["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source


def test_the_image_carries_every_directory_the_code_reads_at_run_time() -> None:
    copied = set(re.findall(r"^COPY (\S+) ", (ROOT / "Dockerfile").read_text(), re.MULTILINE))
    assert {"streams", "schemas", "config"} <= copied
