"""Real Prometheus and Alertmanager processes for tests, run from the shipped configs.

``monitoring_stack(tmp_dir, worker_address)`` starts ``prometheus`` (2.42) and
``alertmanager`` (0.25) as subprocesses on free loopback ports, in ``tmp_dir``, from
``ops/prometheus/`` and ``ops/alertmanager/`` transformed for a test by YAML load -> modify
-> dump. The transformation only shortens timings and points addresses at the test:

* Prometheus: ``scrape_interval`` and ``evaluation_interval`` 1 s (``scrape_timeout`` 1 s);
  every scrape target -> ``worker_address``; the Alertmanager target -> the test's
  Alertmanager; each rule's ``for:`` -> at most ``RULE_FOR``.
* Alertmanager: ``group_wait`` / ``group_interval`` / ``repeat_interval`` shortened wherever
  the route tree sets them; every webhook URL -> the test's :class:`WebhookReceiver`.

Nothing else is changed: expressions, thresholds, labels, routes, matchers, inhibit rules and
receivers are the shipped ones, so a test of the stack is a test of what ships. (The range
windows in expressions, e.g. ``[30m]``, are kept: with 1 s scrapes they hold the test's few
samples.)

``WebhookReceiver`` (a context manager) is a tiny HTTP server on a thread (127.0.0.1, any
free port) recording every payload Alertmanager POSTs. ``make test`` installs the binaries (``make
monitoring-deps``, Debian packages ``prometheus`` and ``prometheus-alertmanager``); when
they are missing the test fails and says so.
"""

from __future__ import annotations

import contextlib
import glob
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from streams.kafka_runtime import free_port

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "ops" / "prometheus"
ALERTMANAGER_CONFIG = ROOT / "ops" / "alertmanager" / "alertmanager.yml"

INTERVAL = "1s"  # scrape, evaluation
RULE_FOR = "1s"  # upper bound on every rule's `for:`
GROUP_WAIT = "1s"
GROUP_INTERVAL = "1s"
REPEAT_INTERVAL = "1m"
START_TIMEOUT = 60.0  # a loaded 2-core machine may take a while to start either process

Json = Any


def require_binary(name: str) -> str:
    """The path of ``name`` (Debian calls ``alertmanager`` ``prometheus-alertmanager``);
    otherwise the test fails saying how to install it."""
    path = shutil.which(name) or shutil.which(f"prometheus-{name}")
    if path is None:
        package = "prometheus" if name in ("prometheus", "promtool") else "prometheus-alertmanager"
        pytest.fail(
            f"{name} is not installed: `make test` installs it (make monitoring-deps, "
            f"Debian package {package})",
            pytrace=False,
        )
    return path


# --- the webhook receiver ----------------------------------------------------------------


class WebhookReceiver:
    """Records every JSON payload POSTed to it (Alertmanager's webhook notifications)."""

    def __init__(self, port: int = 0) -> None:
        self._payloads: list[Json] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver._payloads.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/alerts"

    def payloads(self) -> list[Json]:
        with self._lock:
            return list(self._payloads)

    def alerts(self) -> list[tuple[Json, Json]]:
        """``(payload, alert)`` for every alert of every payload received so far."""
        return [(p, a) for p in self.payloads() for a in p.get("alerts", [])]

    def wait_for(
        self, predicate: Callable[[Json, Json], bool], timeout: float = 30.0, what: str = ""
    ) -> tuple[Json, Json]:
        """The first ``(payload, alert)`` satisfying ``predicate``; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for payload, alert in self.alerts():
                if predicate(payload, alert):
                    return payload, alert
            if time.monotonic() > deadline:
                received = [(p["receiver"], a["status"], a["labels"]) for p, a in self.alerts()]
                raise AssertionError(f"no webhook notification {what} in {timeout} s: {received}")
            time.sleep(0.2)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- configs for a test --------------------------------------------------------------------


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    total, number = 0.0, ""
    i = 0
    while i < len(duration):
        ch = duration[i]
        if ch.isdigit():
            number += ch
            i += 1
            continue
        unit = "ms" if duration.startswith("ms", i) else ch
        total += int(number) * units[unit]
        number = ""
        i += len(unit)
    return total


def _shorter(value: str, limit: str) -> str:
    return value if _seconds(value) <= _seconds(limit) else limit


def prometheus_test_config(
    target_dir: Path, worker_address: str, alertmanager_address: str
) -> Path:
    """Write the shipped Prometheus config and its rule files, transformed as the module
    docstring says, under ``target_dir``; return the config's path."""
    source = PROMETHEUS_DIR / "prometheus.yml"
    config: Json = yaml.safe_load(source.read_text())
    glob_ = config.setdefault("global", {})
    glob_["scrape_interval"] = INTERVAL
    glob_["evaluation_interval"] = INTERVAL
    glob_["scrape_timeout"] = INTERVAL
    for job in config["scrape_configs"]:
        job.pop("scrape_interval", None)
        job.pop("scrape_timeout", None)
        for static in job.get("static_configs", []):
            static["targets"] = [worker_address]
    for am in config["alerting"]["alertmanagers"]:
        for static in am.get("static_configs", []):
            static["targets"] = [alertmanager_address]
    for pattern in config.get("rule_files", []):
        for rule_path in sorted(glob.glob(str(PROMETHEUS_DIR / pattern))):
            rules: Json = yaml.safe_load(Path(rule_path).read_text())
            for group in rules["groups"]:
                group.pop("interval", None)
                for rule in group["rules"]:
                    if "for" in rule:
                        rule["for"] = _shorter(rule["for"], RULE_FOR)
            relative = Path(rule_path).relative_to(PROMETHEUS_DIR)
            (target_dir / relative).parent.mkdir(parents=True, exist_ok=True)
            (target_dir / relative).write_text(yaml.safe_dump(rules, sort_keys=False))
    path = target_dir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def alertmanager_test_config(target_dir: Path, webhook_url: str) -> Path:
    """Write the shipped Alertmanager config, transformed as the module docstring says."""
    config: Json = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    limits = {
        "group_wait": GROUP_WAIT,
        "group_interval": GROUP_INTERVAL,
        "repeat_interval": REPEAT_INTERVAL,
    }

    def shorten(route: Json, root: bool) -> None:
        for key, limit in limits.items():
            if key in route:
                route[key] = _shorter(route[key], limit)
            elif root:
                route[key] = limit
        for child in route.get("routes", []):
            shorten(child, root=False)

    shorten(config["route"], root=True)
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = webhook_url
    path = target_dir / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# --- processes -----------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    url: str
    popen: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name} not ready in {timeout:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)


def _start(name: str, args: list[str], port: int, log: Path) -> Process:
    with log.open("wb") as out:
        popen = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    return Process(name, f"http://127.0.0.1:{port}", popen, log)


def start_alertmanager(work_dir: Path, webhook_url: str) -> Process:
    binary = require_binary("alertmanager")
    work_dir.mkdir(parents=True, exist_ok=True)
    config = alertmanager_test_config(work_dir, webhook_url)
    port = free_port()
    return _start(
        "alertmanager",
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={work_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        port,
        work_dir / "alertmanager.log",
    )


def start_prometheus(work_dir: Path, worker_address: str, alertmanager_address: str) -> Process:
    binary = require_binary("prometheus")
    work_dir.mkdir(parents=True, exist_ok=True)
    config = prometheus_test_config(work_dir, worker_address, alertmanager_address)
    port = free_port()
    return _start(
        "prometheus",
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={work_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        port,
        work_dir / "prometheus.log",
    )


@dataclass
class Stack:
    prometheus: Process
    alertmanager: Process
    webhook: WebhookReceiver
    processes: list[Process] = field(default_factory=list)

    def targets(self) -> list[Json]:
        data: Json = httpx.get(f"{self.prometheus.url}/api/v1/targets", timeout=5).json()
        targets: list[Json] = data["data"]["activeTargets"]
        return targets

    def wait_scraped(self, timeout: float = 30.0) -> None:
        """Until every target has been scraped successfully at least once."""
        deadline = time.monotonic() + timeout
        while True:
            targets = self.targets()
            if targets and all(t["health"] == "up" for t in targets):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"targets not up in {timeout} s: {targets}")
            time.sleep(0.2)

    def prometheus_alerts(self) -> list[Json]:
        data: Json = httpx.get(f"{self.prometheus.url}/api/v1/alerts", timeout=5).json()
        alerts: list[Json] = data["data"]["alerts"]
        return alerts

    def rules(self) -> list[Json]:
        """Every loaded rule with its ``health`` and ``lastError`` (``/api/v1/rules``)."""
        data: Json = httpx.get(f"{self.prometheus.url}/api/v1/rules", timeout=5).json()
        return [rule for group in data["data"]["groups"] for rule in group["rules"]]

    def alertmanager_alerts(self) -> list[Json]:
        """Alertmanager's active, silenced and inhibited alerts (``/api/v2/alerts``)."""
        alerts: list[Json] = httpx.get(f"{self.alertmanager.url}/api/v2/alerts", timeout=5).json()
        return alerts


@contextlib.contextmanager
def monitoring_stack(
    work_dir: Path, worker_address: str, webhook: WebhookReceiver
) -> Iterator[Stack]:
    """Alertmanager (notifying ``webhook``) and Prometheus (scraping ``worker_address``),
    both ready; stopped on exit, also when a test fails."""
    require_binary("prometheus")
    require_binary("alertmanager")
    started: list[Process] = []
    try:
        am = start_alertmanager(work_dir / "alertmanager", webhook.url)
        started.append(am)
        prom = start_prometheus(
            work_dir / "prometheus", worker_address, am.url.removeprefix("http://")
        )
        started.append(prom)
        am.wait_ready()
        prom.wait_ready()
        yield Stack(prometheus=prom, alertmanager=am, webhook=webhook, processes=started)
    finally:
        for process in reversed(started):
            process.stop()
