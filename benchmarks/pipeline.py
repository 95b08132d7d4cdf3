"""Pipeline throughput against raw Kafka consumption, measured in the same run.

    python benchmarks/pipeline.py [--cases 20000] [--bootstrap HOST:PORT]

Both numbers come from the same broker and the same messages: first a plain aiokafka
consumer reads the raw topic (the ceiling), then a real `civicpulse worker` processes it
into embedded ClickHouse; the sustained rate runs from the worker's first processed batch
to the moment the store holds every distinct event. The ratio is what to compare across
machines and runs; absolute numbers on a shared 2-core machine are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.raw_consume import raw_consume_rate
from streams import kafka_runtime
from streams.kafka_runtime.topics import ensure_topics_sync
from streams.sources.simulator import SimulationConfig, produce, simulate
from tests.workers import WorkerProcess


def pipeline_rate(worker: WorkerProcess, messages: int, distinct: int) -> tuple[float, float]:
    """(messages/s through the case agent, distinct events/s until all are in the store)."""
    first: float | None = None
    while True:
        pipeline = httpx.get(worker.url("/civicpulse/summary"), timeout=60).json()["pipeline"]
        now = time.perf_counter()
        if first is None and pipeline["raw_in"] > 0:
            first = now
        if pipeline["events_processed"] >= messages:
            processed_at = now
            break
        time.sleep(0.1)
    while worker.scalar("SELECT count() FROM events FINAL") < distinct:
        time.sleep(0.1)
    stored_at = time.perf_counter()
    assert first is not None
    return messages / (processed_at - first), distinct / (stored_at - first)


def run_pipeline(bootstrap: str, root: Path, history: Any, events_per_message: int) -> float:
    """Produce the history with the given framing, run a fresh worker over it, and return
    the sustained distinct events/s into the store."""
    worker = WorkerProcess(bootstrap=bootstrap, data_dir=root / f"worker-{events_per_message}")
    worker.ensure_topics()
    asyncio.run(
        produce(
            bootstrap,
            worker.topic("events.raw"),
            history.emitted,
            events_per_message=events_per_message,
        )
    )
    worker.start()
    try:
        _, stored = pipeline_rate(worker, len(history.emitted), len(history.events))
    finally:
        worker.stop()
    return stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--bootstrap", default="")
    parser.add_argument("--batch", type=int, default=500, help="events per NDJSON message")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="civicpulse-bench-") as tmp:
        root = Path(tmp)
        bootstrap = args.bootstrap
        if not bootstrap:
            kafka_runtime.ensure_built()
            bootstrap = kafka_runtime.up(root / "kafka").bootstrap
        try:
            history = simulate(SimulationConfig(seed=42, cases=args.cases))
            messages = len(history.emitted)
            baseline_topic = f"bench-{uuid.uuid4().hex[:8]}.raw"
            ensure_topics_sync(bootstrap, {baseline_topic: 4})
            asyncio.run(produce(bootstrap, baseline_topic, history.emitted))
            baseline = asyncio.run(raw_consume_rate(bootstrap, baseline_topic, messages))
            print(f"{messages:,} messages, {len(history.events):,} distinct events")
            print(f"raw aiokafka consume (1 event/message):  {baseline:>10,.0f} events/s")
            for framing, per_message in (("1 event/message", 1), ("NDJSON batches", args.batch)):
                stored = run_pipeline(bootstrap, root, history, per_message)
                label = f"{framing}" + (f" of {per_message}" if per_message > 1 else "")
                print(
                    f"pipeline into ClickHouse, {label:<22} {stored:>10,.0f} events/s"
                    f"   ratio to raw consume {stored / baseline:.3f}"
                )
        finally:
            if not args.bootstrap:
                kafka_runtime.down(root / "kafka")


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    # `timeout` and CI stop with SIGTERM: unwind, so the broker and worker are stopped.
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    main()
