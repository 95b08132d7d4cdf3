"""Real worker processes for integration tests: `civicpulse worker` in a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from streams.app.topology import topic_layout
from streams.kafka_runtime.topics import ensure_topics_sync
from streams.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class WorkerProcess:
    """One `civicpulse worker` with its own data dir, topics and web port."""

    bootstrap: str
    data_dir: Path
    topic_prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}")
    web_port: int = field(default_factory=free_port)
    partitions: int = 4
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICPULSE_")}
        env.pop("CLICKHOUSE_URL", None)
        env.update(
            CIVICPULSE_KAFKA_BOOTSTRAP=self.bootstrap,
            CIVICPULSE_DATA_DIR=str(self.data_dir),
            CIVICPULSE_TOPIC_PREFIX=self.topic_prefix,
            CIVICPULSE_TOPIC_PARTITIONS=str(self.partitions),
            CIVICPULSE_WEB_PORT=str(self.web_port),
            CIVICPULSE_WORKER_ID=f"{self.topic_prefix}-worker",
            CIVICPULSE_BATCH_MAX_SECONDS="0.2",
        )
        env.update(self.extra_env)
        return env

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}.{name}"

    def ensure_topics(self) -> None:
        """Create this worker's topics, as the pipeline's topology defines them."""
        layout = topic_layout(
            Settings(topic_prefix=self.topic_prefix, topic_partitions=self.partitions)
        )
        ensure_topics_sync(self.bootstrap, layout)

    @property
    def log_file(self) -> Path:
        return self.data_dir / "worker.log"

    def start(self, timeout: float = 90.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited early:\n{self.log_tail()}")
            try:
                if httpx.get(self.url("/civicpulse/health"), timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"worker did not come up in {timeout} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 60.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"worker ignored SIGTERM for {timeout} s:\n{self.log_tail()}"
            ) from None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.web_port}{path}"

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_file.exists():
            return "(no log)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def query(self, sql: str) -> tuple[list[str], list[list[Any]]]:
        response = httpx.post(self.url("/civicpulse/query"), json={"sql": sql}, timeout=60)
        body = response.json()
        assert response.status_code == 200, body
        return body["columns"], body["rows"]

    def scalar(self, sql: str) -> Any:
        return self.query(sql)[1][0][0]

    def wait_until(self, sql: str, expected: Any, timeout: float = 180.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"worker died:\n{self.log_tail()}")
            value = self.scalar(sql)
            if value == expected:
                return
            time.sleep(0.5)
        raise AssertionError(
            f"{what or sql}: expected {expected}, still {value} after {timeout} s\n"
            f"{self.log_tail()}"
        )


def rows_as_dicts(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(columns, row, strict=True)) for row in rows]
