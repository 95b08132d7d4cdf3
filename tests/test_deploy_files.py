"""docker-compose.yml and the Dockerfile: complete, and consistent with the code.

No Docker engine runs here, so these check what can be checked without one.
"""

from __future__ import annotations

import re
from pathlib import Path
from xml.etree import ElementTree

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


# --- Grafana and its data sources ---------------------------------------------------------------


def provisioning(name: str) -> dict:  # type: ignore[type-arg]
    data: dict = yaml.safe_load((ROOT / "dashboards" / "provisioning" / name).read_text())  # type: ignore[type-arg]
    return data


def test_grafana_mounts_provisioning_and_the_generated_boards() -> None:
    grafana = compose()["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    assert mounts["/etc/grafana/provisioning"] == "./dashboards/provisioning"
    assert mounts["/var/lib/grafana/dashboards"] == "./dashboards/json"
    [provider] = provisioning("dashboards/civicpulse.yaml")["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert list((ROOT / "dashboards" / "json").glob("*.json"))


def test_datasources_match_the_boards_and_read_only_user() -> None:
    from dashboards.grafana import CLICKHOUSE_TYPE, CLICKHOUSE_UID, PROMETHEUS_TYPE, PROMETHEUS_UID

    sources = {d["uid"]: d for d in provisioning("datasources/clickhouse.yaml")["datasources"]}
    assert sources[CLICKHOUSE_UID]["type"] == CLICKHOUSE_TYPE
    assert sources[PROMETHEUS_UID]["type"] == PROMETHEUS_TYPE
    clickhouse = sources[CLICKHOUSE_UID]
    assert clickhouse["jsonData"]["host"] in compose()["services"]
    user = clickhouse["jsonData"]["username"]
    # the user Grafana logs in as is a read-only one, defined in the mounted users.d file
    mounts = compose()["services"]["clickhouse"]["volumes"]
    [users_file] = [v.split(":")[0] for v in mounts if "users.d" in v]
    root = ElementTree.parse(ROOT / users_file).getroot()
    node = root.find(f"users/{user}")
    assert node is not None, user
    profile = root.find(f"profiles/{node.findtext('profile')}")
    assert profile is not None and profile.findtext("readonly") == "1"
    assert node.findtext("password") == clickhouse["secureJsonData"]["password"]
    assert [d.text for d in node.iterfind("allow_databases/database")] == [
        clickhouse["jsonData"]["defaultDatabase"]
    ]
    # the worker writes as another user
    assert f"//{user}:" not in compose()["services"]["worker"]["environment"]["CLICKHOUSE_URL"]
