"""The log filter that hides aiokafka's retried coordinator lookups and nothing else."""

from __future__ import annotations

import logging

from aiokafka import errors

from streams.logs import quiet_retried_coordinator_lookups


def emitted(message: str, *args: object) -> list[str]:
    logger = logging.getLogger("aiokafka.consumer.group_coordinator")
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    try:
        logger.error(message, *args)
    finally:
        logger.removeHandler(handler)
    return seen


def test_a_retried_lookup_is_quiet_and_other_errors_still_show() -> None:
    quiet_retried_coordinator_lookups()
    quiet_retried_coordinator_lookups()  # once is enough; twice adds nothing
    logger = logging.getLogger("aiokafka.consumer.group_coordinator")
    assert sum(type(f).__name__ == "_RetriedLookup" for f in logger.filters) == 1
    failed = "Group Coordinator Request failed: %s"
    assert errors.GroupCoordinatorNotAvailableError.retriable
    assert emitted(failed, errors.GroupCoordinatorNotAvailableError()) == []
    assert not errors.UnsupportedVersionError.retriable
    assert emitted(failed, errors.UnsupportedVersionError()) == [
        "Group Coordinator Request failed: [Error 35] UnsupportedVersionError"
    ]
    assert emitted("Heartbeat failed: %s", errors.GroupCoordinatorNotAvailableError())
