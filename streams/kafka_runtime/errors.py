"""The one exception type of :mod:`streams.kafka_runtime`."""

from __future__ import annotations


class KafkaRuntimeError(RuntimeError):
    """The local broker cannot be built, started, stopped or reached.

    The message is meant for a human: it says what failed and, when the broker itself
    failed, carries the tail of its log.
    """
