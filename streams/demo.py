"""``civicpulse demo``: the whole pipeline on embedded defaults, with the live summary.

Kafka, the worker and the simulator run as child processes so that Ctrl-C stops each
cleanly (SIGTERM, then SIGKILL after a grace period) and the store is left closed and
queryable with ``civicpulse query``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console

from streams import kafka_runtime
from streams.access import HEALTH_PATH, worker_url
from streams.settings import Settings
from streams.summary_view import show_summary


def _spawn(args: list[str], log_file: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "streams.cli", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
        )


def _stop(process: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for_worker(settings: Settings, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited with code {process.returncode}")
        try:
            if httpx.get(worker_url(settings, HEALTH_PATH), timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the worker did not answer within {timeout:.0f} s")


def run_demo(settings: Settings, rate: float, backfill_cases: int, console: Console) -> None:
    logs = settings.data_dir / "logs"
    console.print("[bold]civicpulse demo[/]: starting the local Kafka broker ...")
    kafka_runtime.ensure_built()
    broker = kafka_runtime.up(
        settings.kafka_dir, port=settings.kafka_port, heap=settings.kafka_heap
    )
    env = {**os.environ, "CIVICPULSE_KAFKA_BOOTSTRAP": broker.bootstrap}
    env["CIVICPULSE_DATA_DIR"] = str(settings.data_dir)
    console.print(f"Kafka at {broker.bootstrap}; starting the worker (log: {logs / 'worker.log'})")
    worker = _spawn(["worker"], logs / "worker.log", env)
    children = [worker]
    try:
        wait_for_worker(settings, worker, timeout=120)
        console.print(
            f"producing {backfill_cases} cases of history, then a live city at {rate:.0f}/s"
        )
        backfill = _spawn(
            ["simulate", "--cases", str(backfill_cases), "--seed", str(int(time.time()))],
            logs / "simulator.log",
            env,
        )
        children.append(backfill)
        live = _spawn(["simulate", "--live", "--rate", str(rate)], logs / "simulator.log", env)
        children.append(live)
        show_summary(settings, live=True, interval=1.0, console=console)
    except KeyboardInterrupt:
        console.print("\nstopping ...")
    finally:
        for child in reversed(children):
            _stop(child)
        kafka_runtime.down(settings.kafka_dir)
        console.print(
            "stopped. The data stays in "
            f"{settings.data_dir}: try [bold]civicpulse query "
            '"SELECT agency, count() FROM case_facts FINAL GROUP BY agency"[/]'
        )
