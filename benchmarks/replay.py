"""Replay throughput against raw Kafka consumption, measured in the same run.

    python benchmarks/replay.py [--cases 70000] [--workers 2] [--bootstrap HOST:PORT]

A simulated history (>= 500k events with the default 70,000 cases) is written to a JSON
Lines file and produced to a Kafka topic (NDJSON batch messages of 500 events, as bulk
producers send). Then, on the same machine and broker:

- raw: a plain aiokafka consumer reads the topic and splits the batches into events
  (the ceiling of anything that reads Kafka from Python);
- replay from the file and replay from the topic, each into a fresh embedded
  ClickHouse, switch included: events/s = events read / wall time of ``run_replay``;
  the file once more with ``archive=True`` (what ``civicpulse replay run --from-file``
  does by default: its events are added to the live raw archive);
- replay from the archive: the valid events written to a fresh store's ``events`` table
  (as the live worker archives them), then replayed from it (trusted decoding);
- the same with the last tenth archived while the replay reads the rest (as a live
  worker would): the replay catches it up before the switch; events/s counts all of
  them over the whole replay.

The ratio is what to compare across machines; absolute numbers on a shared 2-core
machine are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.raw_consume import raw_consume_rate
from streams import kafka_runtime
from streams.contract import InvalidEvent, decode_event
from streams.gc_tuning import tune_for_long_lived_objects
from streams.kafka_runtime.topics import ensure_topics_sync
from streams.replay import (
    ReplayOptions,
    SourceData,
    read_archive,
    read_file,
    read_topic,
    run_replay,
)
from streams.sources.simulator import SimulationConfig, produce, simulate
from streams.store import Store, close_clients
from streams.store.rows import EventRow


def fill_archive(dsn: str, raws: list[bytes], first_offset: int = 0, close: bool = True) -> None:
    """The valid events in ``events``, as the live ingest step archives them (``close``:
    then close the process's clients; not while a replay in this process uses them)."""
    from datetime import UTC, datetime

    store = Store.open(dsn)
    now = datetime.now(UTC)
    rows: list[EventRow] = []
    for offset, raw in enumerate(raws, first_offset):
        try:
            event = decode_event(raw)
        except InvalidEvent:
            continue
        rows.append(EventRow.archived(event, raw, now, 0, offset))
        if len(rows) >= 100_000:
            store.writer.write_events(rows)
            rows = []
    store.writer.write_events(rows)
    if close:
        close_clients()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=70_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bootstrap", default="")
    parser.add_argument("--batch", type=int, default=500, help="events per NDJSON message")
    args = parser.parse_args()
    tune_for_long_lived_objects()  # as `civicpulse replay run` does in its process

    with tempfile.TemporaryDirectory(prefix="civicpulse-replay-bench-") as tmp:
        root = Path(tmp)
        bootstrap = args.bootstrap
        if not bootstrap:
            kafka_runtime.ensure_built()
            bootstrap = kafka_runtime.up(root / "kafka").bootstrap
        try:
            history = simulate(SimulationConfig(seed=42, cases=args.cases, duplicate_share=0.01))
            events = len(history.emitted)
            path = root / "history.jsonl"
            path.write_bytes(b"".join(m.value + b"\n" for m in history.emitted))
            topic = f"bench-{uuid.uuid4().hex[:8]}.raw"
            ensure_topics_sync(bootstrap, {topic: 4})
            asyncio.run(produce(bootstrap, topic, history.emitted, events_per_message=args.batch))
            print(f"{events:,} events ({len(history.events):,} distinct), {args.cases:,} cases")

            raw = asyncio.run(raw_consume_rate(bootstrap, topic, events))
            print(f"raw aiokafka consume (NDJSON {args.batch}/message): {raw:>10,.0f} events/s")

            def replay(
                label: str, dsn: str, read: Callable[[Store], SourceData], **extra: Any
            ) -> None:
                options = ReplayOptions(
                    generation=f"bench_{uuid.uuid4().hex[:8]}",
                    workers=args.workers,
                    invalid="dead-letter",
                    **extra,
                )
                started = time.perf_counter()
                result = run_replay(dsn, read, options)
                rate = result.events / (time.perf_counter() - started)
                close_clients()
                caught = f", {result.caught_up:,} caught up" if result.caught_up else ""
                print(
                    f"replay from {label} ({args.workers} processes): {rate:>10,.0f} events/s"
                    f"  ({rate / raw:.2f} x raw consume{caught})"
                )

            replay("file", f"chdb://{root / 'ch-file'}", lambda _store: read_file(path))
            replay(
                "file, archived (the command's default for files)",
                f"chdb://{root / 'ch-file-archived'}",
                lambda _store: read_file(path),
                archive=True,
            )
            replay(
                "topic",
                f"chdb://{root / 'ch-topic'}",
                lambda _store: read_topic(bootstrap, topic, "civicpulse-replay-bench"),
            )
            archive = f"chdb://{root / 'ch-archive'}"
            fill_archive(archive, [m.value for m in history.emitted])
            replay("archive", archive, read_archive)

            # the live worker archives the last tenth while the replay reads the rest
            growing = f"chdb://{root / 'ch-growing'}"
            raws = [m.value for m in history.emitted]
            cut = len(raws) * 9 // 10
            fill_archive(growing, raws[:cut])

            def archive_growing(store: Store) -> SourceData:
                data = read_archive(store)
                inner = data.events

                def events() -> Any:
                    yield from inner
                    fill_archive(growing, raws[cut:], cut, close=False)

                data.events = events()
                return data

            replay(
                "archive, a tenth archived during the replay (caught up)", growing, archive_growing
            )
        finally:
            if not args.bootstrap:
                kafka_runtime.down(root / "kafka")


if __name__ == "__main__":
    main()
