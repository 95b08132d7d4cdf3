"""Create the topics the project needs on a broker (any Kafka broker, not only the local one)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Mapping
from typing import Any

from .errors import KafkaRuntimeError

# Kafka error codes that mean "already there" for CreateTopics.
_TOPIC_ALREADY_EXISTS = 36
_NO_ERROR = 0


async def ensure_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    replication: int = 1,
    *,
    timeout: float = 30.0,
) -> None:
    """Create the topics of ``topics`` (name -> partition count) that do not exist yet.

    Existing topics are left as they are, whatever their partition count. Returns once
    every topic of ``topics`` shows up in the cluster's metadata with a leader for each
    partition, so producers can use them right away. Raises :class:`KafkaRuntimeError`
    when a topic cannot be created or the broker does not answer within ``timeout`` s.
    """
    if not topics:
        return
    for name, partitions in topics.items():
        if partitions < 1:
            raise KafkaRuntimeError(f"topic {name!r}: partition count must be >= 1")
    # Imported here so that importing streams.kafka_runtime stays stdlib-only.
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id="civicpulse-ensure-topics",
        request_timeout_ms=int(timeout * 1000),
    )
    try:
        async with asyncio.timeout(timeout):
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [name for name in topics if name not in existing]
            if missing:
                response = await admin.create_topics(
                    [NewTopic(name, topics[name], replication) for name in missing],
                    timeout_ms=int(timeout * 1000),
                )
                _check_created(response.to_object())
            await _wait_for_leaders(admin, list(topics), timeout)
    except TimeoutError as exc:
        raise KafkaRuntimeError(
            f"ensuring topics {sorted(topics)} on {bootstrap}: no answer within {timeout:g} s"
        ) from exc
    except KafkaRuntimeError:
        raise
    except Exception as exc:  # aiokafka's errors share no useful base class
        raise KafkaRuntimeError(f"ensuring topics on {bootstrap} failed: {exc!r}") from exc
    finally:
        await admin.close()


def _check_created(response: dict[str, Any]) -> None:
    failures = []
    for entry in response.get("topic_errors", []):
        code = entry.get("error_code", _NO_ERROR)
        if code not in (_NO_ERROR, _TOPIC_ALREADY_EXISTS):
            message = entry.get("error_message") or f"error code {code}"
            failures.append(f"{entry.get('topic')}: {message}")
    if failures:
        raise KafkaRuntimeError("cannot create topics: " + "; ".join(failures))


async def _wait_for_leaders(admin: Any, names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        described = await admin.describe_topics(names)
        ready = {
            t["topic"]
            for t in described
            if t.get("error_code") == _NO_ERROR
            and t.get("partitions")
            and all(p.get("leader", -1) >= 0 for p in t["partitions"])
        }
        if ready >= set(names):
            return
        if time.monotonic() >= deadline:
            raise TimeoutError
        await asyncio.sleep(0.1)


def ensure_topics_sync(
    bootstrap: str,
    topics: Mapping[str, int],
    replication: int = 1,
    *,
    timeout: float = 30.0,
) -> None:
    """:func:`ensure_topics` for synchronous code (also safe inside a running event loop:
    it then runs on a helper thread)."""
    coro_args = (bootstrap, dict(topics), replication)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(ensure_topics(*coro_args, timeout=timeout))
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, ensure_topics(*coro_args, timeout=timeout)).result()
