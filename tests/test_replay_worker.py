"""civicpulse replay inside the worker that owns the embedded store, while it runs.

A real worker process owns the chDB directory; the command sends the replay to it,
follows the progress, and Ctrl-C stops it (resumable). Live events keep flowing before,
during and after the switch.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from streams import cli_replay
from streams.cli import app
from streams.sources.simulator import Emitted, SimulationConfig, produce, simulate
from tests.workers import WorkerProcess

pytestmark = pytest.mark.integration


def trickle(bootstrap: str, topic: str, emitted: list[Emitted], stop: threading.Event) -> None:
    """Live traffic: small batches with pauses, until everything is sent."""
    for start in range(0, len(emitted), 150):
        asyncio.run(produce(bootstrap, topic, emitted[start : start + 150]))
        if stop.wait(0.3):
            return


def run_args(history: Path, generation: str, bucket_events: int) -> list[str]:
    """A file of other cases than the live ones: the boards show the file's cases only
    once switched, which the command does when told so (--replace)."""
    return [
        *("replay", "run", "--from-file", str(history), "--id", generation, "--workers", "2"),
        *("--bucket-events", str(bucket_events), "--replace"),
    ]


def cases_like(worker: WorkerProcess, prefix: str, database: str = "") -> tuple[int, int]:
    """(cases, sum of versions = distinct events) of the cases whose id starts so."""
    table = f"{database}.case_facts" if database else "case_facts"
    _, rows = worker.query(
        f"SELECT count(), sum(version) FROM {table} FINAL WHERE startsWith(case_id, '{prefix}')"
    )
    return int(rows[0][0]), int(rows[0][1])


def test_replay_through_the_running_worker_switches_and_live_goes_on(
    kafka_broker: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = simulate(SimulationConfig(seed=101, cases=150))
    replayed = simulate(SimulationConfig(seed=102, cases=300, duplicate_share=0.05))
    during = simulate(SimulationConfig(seed=103, cases=150))
    after = simulate(SimulationConfig(seed=104, cases=80))
    worker = WorkerProcess(bootstrap=kafka_broker.bootstrap, data_dir=tmp_path / "data")
    worker.ensure_topics()
    raw = worker.topic("events.raw")
    asyncio.run(produce(worker.bootstrap, raw, before.emitted))
    history = tmp_path / "replayed.jsonl"
    history.write_bytes(b"".join(m.value + b"\n" for m in replayed.emitted))
    env: dict[str, str | None] = {
        **worker.env,
        "CIVICPULSE_CONFIG": str(tmp_path / "none.toml"),
        "CLICKHOUSE_URL": None,
    }
    runner = CliRunner()
    worker.start()
    try:
        worker.wait_until(
            "SELECT sum(version) FROM case_facts FINAL WHERE startsWith(case_id, 'sim-101-')",
            len(before.events),
            what="live events before the replay",
        )

        # 1. a replay through the worker while live events keep coming
        stop = threading.Event()
        live = threading.Thread(
            target=trickle, args=(worker.bootstrap, raw, during.emitted, stop), daemon=True
        )
        live.start()
        result = runner.invoke(
            app,
            run_args(history, "inworker", 1000),
            env=env,
        )
        assert result.exit_code == 0, result.output + worker.log_tail()
        assert "the worker" in result.output
        live.join(timeout=120)
        assert cases_like(worker, "sim-102-") == (300, len(replayed.events))
        assert cases_like(worker, "sim-101-") == (0, 0), "the boards read the new generation"
        assert cases_like(worker, "sim-101-", "civicpulse_replay_inworker") == (
            150,
            len(before.events),
        ), "the live worker's generation is kept, retired"
        # every live event of the replay's time went to the live tables: those written
        # before the switch moved out with the old generation, the others are live
        worker.wait_until(
            "SELECT uniqExact(case_id) FROM (SELECT case_id FROM case_facts "
            "WHERE startsWith(case_id, 'sim-103-') UNION ALL SELECT case_id FROM "
            "civicpulse_replay_inworker.case_facts WHERE startsWith(case_id, 'sim-103-'))",
            150,
            what="live events during the replay",
        )

        # 2. Ctrl-C in the command stops the replay in the worker: failed, resumable
        def ctrl_c() -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(cli_replay, "_pause", ctrl_c)
        result = runner.invoke(
            app,
            run_args(history, "again", 100),
            env=env,
        )
        assert result.exit_code == 1, result.output
        assert "interrupted" in result.output and "--id again" in result.output
        monkeypatch.undo()
        listed = runner.invoke(app, ["replay", "list"], env=env)
        assert listed.exit_code == 0, listed.output
        assert "again" in listed.output
        _, rows = worker.query(
            "SELECT status, detail FROM generations FINAL WHERE generation = 'again'"
        )
        assert rows == [["failed", "interrupted"]]
        assert cases_like(worker, "sim-102-") == (300, len(replayed.events))

        # 3. resumed through the worker, to the same tables
        result = runner.invoke(
            app,
            run_args(history, "again", 100),
            env=env,
        )
        assert result.exit_code == 0, result.output + worker.log_tail()
        assert cases_like(worker, "sim-102-") == (300, len(replayed.events))

        # 4. list and drop go through the worker too
        result = runner.invoke(app, ["replay", "drop", "again"], env=env)
        assert result.exit_code == 1 and "active" in result.output
        result = runner.invoke(app, ["replay", "drop", "inworker"], env=env)
        assert result.exit_code == 0, result.output
        listed = runner.invoke(app, ["replay", "list"], env=env)
        assert "dropped" in listed.output and "active" in listed.output

        # 5. the live worker goes on after the switches
        asyncio.run(produce(worker.bootstrap, raw, after.emitted))
        worker.wait_until(
            "SELECT sum(version) FROM case_facts FINAL WHERE startsWith(case_id, 'sim-104-')",
            len(after.events),
            what="live events after the switch",
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            assert worker.process is not None and worker.process.poll() is None
            time.sleep(0.5)
    finally:
        assert worker.stop() == 0, worker.log_tail()
