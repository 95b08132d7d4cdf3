"""Shared fixtures.

``kafka_broker``: one real Apache Kafka broker (the project's own, built from Maven Central
by ``streams.kafka_runtime``) for the whole test session, in a temporary directory on a
free port, so it never collides with a developer's ``civicpulse kafka up`` broker.
"""

from __future__ import annotations

import atexit
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.kafka_runtime import BrokerInfo, down, ensure_built, free_port, up

# Generous: a loaded CI machine may need far longer than the usual ~3 s to start a JVM.
KAFKA_START_TIMEOUT = 120.0


@pytest.fixture(scope="session")
def kafka_libs() -> Path:
    """The broker's classpath (``ops/kafka/libs``). On a fresh machine the first call runs
    mvn, which downloads ~45 MB from Maven Central (retried once on failure)."""
    return ensure_built()


@pytest.fixture(scope="session")
def kafka_broker(
    kafka_libs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BrokerInfo]:
    """A running broker for the session; stopped at the end (also when the session dies
    on an exception, via atexit). A failed start fails the dependent tests with the tail
    of the broker's log in the error."""
    data_dir = tmp_path_factory.mktemp("kafka")

    def stop() -> None:
        with contextlib.suppress(Exception):
            down(data_dir, timeout=20)

    atexit.register(stop)
    try:
        info = up(data_dir, port=free_port(), timeout=KAFKA_START_TIMEOUT, libs_dir=kafka_libs)
        yield info
    finally:
        stop()
        atexit.unregister(stop)
