"""The pipeline's topics. All share one partition count, so a case keeps its partition."""

from __future__ import annotations

from streams.settings import Settings

RAW = "events.raw"
EVENTS = "events"
DEAD_LETTERS = "deadletter"
#: SLA alerts (schemas/alerts/v1/sla-alert.schema.json), the durable record of every alert
ALERTS = "sla.alerts"


def topic_layout(settings: Settings) -> dict[str, int]:
    return {
        settings.topic(name): settings.topic_partitions
        for name in (RAW, EVENTS, DEAD_LETTERS, ALERTS)
    }
