"""The project's local Kafka broker, against the real thing (no mocks, no skips)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.kafka_runtime import (
    BrokerInfo,
    KafkaRuntimeError,
    down,
    ensure_built,
    ensure_topics_sync,
    free_port,
    recorded_bootstrap,
    reset,
    status,
    up,
)
from streams.kafka_runtime._proc import all_pids, cmdline, pid_alive
from streams.kafka_runtime._wire import fetch_metadata
from streams.kafka_runtime.build import STAMP_NAME, pom_digest

pytestmark = pytest.mark.integration

T = TypeVar("T")


def run(coro: Awaitable[T], timeout: float = 30.0) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def unique(prefix: str) -> str:
    return f"test.{prefix}.{uuid.uuid4().hex[:8]}"


async def produce(bootstrap: str, topic: str, messages: Sequence[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def drain(
    consumer: AIOKafkaConsumer, count: int, wait: float = 20.0
) -> list[tuple[bytes, bytes]]:
    """Read until ``count`` records arrived (or ``wait`` s passed)."""
    got: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + wait
    while len(got) < count and time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=500)
        for records in batch.values():
            got.extend((r.key, r.value) for r in records)
    return got


async def read_all(bootstrap: str, topic: str, count: int) -> list[tuple[bytes, bytes]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        return await drain(consumer, count)
    finally:
        await consumer.stop()


async def partition_counts(bootstrap: str, topics: list[str]) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in described}


def broker_pids(data_dir: Path) -> list[int]:
    props = str(data_dir.resolve() / "server.properties")
    return [p for p in all_pids() if pid_alive(p) and props in (cmdline(p) or [])]


# --------------------------------------------------------------------------- build


def test_ensure_built_is_a_no_op_when_up_to_date(kafka_libs: Path) -> None:
    stamp = kafka_libs / STAMP_NAME
    before = stamp.stat().st_mtime_ns
    started = time.monotonic()
    assert ensure_built() == kafka_libs
    assert time.monotonic() - started < 5  # no mvn run
    assert stamp.stat().st_mtime_ns == before
    recorded = json.loads(stamp.read_text())
    assert recorded["pom_sha256"] == pom_digest(kafka_libs.parent / "pom.xml")
    assert any(j.startswith("kafka_2.13-") for j in recorded["jars"])
    assert all((kafka_libs / j).is_file() for j in recorded["jars"])


# --------------------------------------------------------------------------- session broker


def test_up_is_idempotent(kafka_broker: BrokerInfo) -> None:
    started = time.monotonic()
    again = up(kafka_broker.data_dir, timeout=30)
    assert again == kafka_broker
    assert time.monotonic() - started < 5  # found running, not restarted
    assert pid_alive(kafka_broker.pid)


def test_status_reports_the_running_broker(kafka_broker: BrokerInfo) -> None:
    data_dir = kafka_broker.data_dir
    assert status(data_dir) == kafka_broker
    assert recorded_bootstrap(data_dir) == kafka_broker.bootstrap
    record = json.loads((data_dir / "broker.json").read_text())
    assert record["pid"] == kafka_broker.pid
    assert record["controller"] == kafka_broker.controller
    assert "started_at" in record
    # A real Kafka metadata answer, from our cluster, on the recorded address.
    host, _, port = kafka_broker.bootstrap.rpartition(":")
    meta = fetch_metadata(host, int(port))
    cluster = json.loads((data_dir / "cluster.json").read_text())
    assert meta.cluster_id == cluster["cluster_id"]
    assert [(n.node_id, f"{n.host}:{n.port}") for n in meta.brokers] == [
        (1, kafka_broker.bootstrap)
    ]
    # The controller listener is up too, and the JVM runs in its own session.
    chost, _, cport = kafka_broker.controller.rpartition(":")
    socket.create_connection((chost, int(cport)), timeout=2).close()
    assert os.getsid(kafka_broker.pid) != os.getsid(0)
    assert kafka_broker.log_file.is_file()
    assert "Kafka Server started" in kafka_broker.log_file.read_text()


def test_produce_and_consume(kafka_broker: BrokerInfo) -> None:
    topic = unique("roundtrip")
    ensure_topics_sync(kafka_broker.bootstrap, {topic: 3})
    sent = [(f"case-{i % 4}".encode(), f"event-{i}".encode()) for i in range(20)]
    run(produce(kafka_broker.bootstrap, topic, sent))
    got = run(read_all(kafka_broker.bootstrap, topic, len(sent)))
    assert sorted(got) == sorted(sent)
    # Same key, same partition, order kept per key.
    for key in {k for k, _ in sent}:
        assert [v for k, v in got if k == key] == [v for k, v in sent if k == key]


def test_ensure_topics_creates_missing_and_ignores_existing(kafka_broker: BrokerInfo) -> None:
    first, second = unique("topics-a"), unique("topics-b")
    ensure_topics_sync(kafka_broker.bootstrap, {first: 3})
    ensure_topics_sync(kafka_broker.bootstrap, {first: 1, second: 2})  # first exists already
    counts = run(partition_counts(kafka_broker.bootstrap, [first, second]))
    assert counts == {first: 3, second: 2}


def test_ensure_topics_sync_inside_a_running_loop(kafka_broker: BrokerInfo) -> None:
    topic = unique("in-loop")

    async def caller() -> None:
        ensure_topics_sync(kafka_broker.bootstrap, {topic: 2})

    run(caller())
    assert run(partition_counts(kafka_broker.bootstrap, [topic])) == {topic: 2}


def test_consumer_group_commit(kafka_broker: BrokerInfo) -> None:
    bootstrap = kafka_broker.bootstrap
    topic, group = unique("group"), unique("group-id")
    ensure_topics_sync(bootstrap, {topic: 1})
    tp = TopicPartition(topic, 0)

    def member() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )

    async def scenario() -> None:
        await produce(bootstrap, topic, [(b"k", f"m{i}".encode()) for i in range(5)])
        consumer = member()
        await consumer.start()
        try:
            assert [v for _, v in await drain(consumer, 5)] == [f"m{i}".encode() for i in range(5)]
            await consumer.commit()
            assert await consumer.committed(tp) == 5
        finally:
            await consumer.stop()

        await produce(bootstrap, topic, [(b"k", b"m5")])
        # A new member of the group resumes at the committed offset.
        consumer = member()
        await consumer.start()
        try:
            assert await drain(consumer, 1) == [(b"k", b"m5")]
            assert await drain(consumer, 1, wait=1.0) == []
        finally:
            await consumer.stop()

    run(scenario(), timeout=60)


# --------------------------------------------------------------------------- lifecycle


def test_down_restart_keeps_data(kafka_libs: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "kafka"
    first = up(data_dir, port=free_port(), timeout=90, libs_dir=kafka_libs)
    try:
        topic = unique("durable")
        ensure_topics_sync(first.bootstrap, {topic: 1})
        run(produce(first.bootstrap, topic, [(b"case-1", b"before-restart")]))

        # A lost record does not orphan the broker: up() finds and adopts it.
        (data_dir / "broker.json").unlink()
        assert status(data_dir) is None
        assert up(data_dir, timeout=30, libs_dir=kafka_libs) == first

        assert down(data_dir) is True
        assert not pid_alive(first.pid)
        assert broker_pids(data_dir) == []
        assert status(data_dir) is None
        assert recorded_bootstrap(data_dir) is None
        assert down(data_dir) is False  # nothing left to stop

        # Restart with port 0: the client port of the last start is reused. The old
        # controller port is taken meanwhile, so the controller moves: no data is lost.
        old_controller_port = int(first.controller.rpartition(":")[2])
        with socket.socket() as squatter:
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", old_controller_port))
            squatter.listen()
            # Two concurrent callers (threads here, processes alike) get one broker.
            with ThreadPoolExecutor(max_workers=2) as pool:
                starts = [
                    pool.submit(up, data_dir, port=0, timeout=90, libs_dir=kafka_libs)
                    for _ in range(2)
                ]
                second, other = (f.result() for f in starts)
        assert other == second
        assert broker_pids(data_dir) == [second.pid]
        assert second.pid != first.pid
        assert second.bootstrap == first.bootstrap
        assert second.controller != first.controller
        assert status(data_dir) == second

        assert run(read_all(second.bootstrap, topic, 1)) == [(b"case-1", b"before-restart")]
        run(produce(second.bootstrap, topic, [(b"case-1", b"after-restart")]))
        assert [v for _, v in run(read_all(second.bootstrap, topic, 2))] == [
            b"before-restart",
            b"after-restart",
        ]
    finally:
        down(data_dir)
    assert broker_pids(data_dir) == []


def test_failed_start_is_killed_and_reported(kafka_libs: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "kafka"
    # Not ready within the timeout: the half-started JVM is killed.
    with pytest.raises(KafkaRuntimeError, match="did not answer") as slow:
        up(data_dir, port=free_port(), timeout=0.3, libs_dir=kafka_libs)
    assert len(str(slow.value).splitlines()) <= 2 + 30
    assert broker_pids(data_dir) == []
    assert status(data_dir) is None
    assert recorded_bootstrap(data_dir) is None

    # The broker itself gives up (storage from another node): the error carries its log.
    meta = data_dir / "kraft" / "meta.properties"
    meta.write_text(meta.read_text().replace("node.id=1", "node.id=7"))
    with pytest.raises(KafkaRuntimeError, match="exited during startup") as crash:
        up(data_dir, timeout=60, libs_dir=kafka_libs)
    message = str(crash.value)
    assert f"--- last lines of {data_dir.resolve() / 'logs' / 'server.log'} ---" in message
    assert "Stored node id 7 doesn't match" in message
    assert len(message.splitlines()) <= 2 + 30
    assert broker_pids(data_dir) == []
    assert recorded_bootstrap(data_dir) is None

    # reset() deletes what the broker stored, and only that.
    (data_dir / "notes.txt").write_text("not the broker's")
    reset(data_dir)
    assert sorted(p.name for p in data_dir.iterdir()) == ["notes.txt"]
    (data_dir / "notes.txt").unlink()
    reset(data_dir)
    assert not data_dir.exists()


def test_up_rejects_a_busy_port(kafka_broker: BrokerInfo, tmp_path: Path) -> None:
    busy = int(kafka_broker.bootstrap.rpartition(":")[2])
    with pytest.raises(KafkaRuntimeError, match="in use"):
        up(tmp_path / "kafka", port=busy, timeout=30)


def test_nothing_recorded_in_an_empty_dir(tmp_path: Path) -> None:
    assert status(tmp_path) is None
    assert recorded_bootstrap(tmp_path) is None
    assert down(tmp_path) is False
    assert down(tmp_path / "missing") is False
