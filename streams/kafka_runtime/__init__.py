"""The project's own local Apache Kafka broker.

Built from Maven Central with ``mvn`` (``ops/kafka/pom.xml`` -> ``ops/kafka/libs``) and run
as one JVM in KRaft combined mode. Importing this package needs the stdlib only; the topic
helpers import aiokafka when called. See ``docs/kafka.md``.

    libs = ensure_built()
    info = up(Path(".civicpulse/kafka"))          # idempotent
    ensure_topics_sync(info.bootstrap, {"civicpulse.events": 4})
    status(Path(".civicpulse/kafka"))             # BrokerInfo | None
    down(Path(".civicpulse/kafka"))
"""

from __future__ import annotations

from .broker import (
    DEFAULT_PORT,
    BrokerInfo,
    down,
    free_port,
    recorded_bootstrap,
    reset,
    status,
    up,
)
from .build import ensure_built, find_java, find_project_root, kafka_home
from .errors import KafkaRuntimeError
from .topics import ensure_topics, ensure_topics_sync

__all__ = [
    "DEFAULT_PORT",
    "BrokerInfo",
    "KafkaRuntimeError",
    "down",
    "ensure_built",
    "ensure_topics",
    "ensure_topics_sync",
    "find_java",
    "find_project_root",
    "free_port",
    "kafka_home",
    "recorded_bootstrap",
    "reset",
    "status",
    "up",
]
