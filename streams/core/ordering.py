"""The canonical order of a case's events.

Events that share a timestamp are ordered by lifecycle rank (the contract's order of
event types), then by event id, so every consumer sorts a case's history the same way
whatever order the events arrived in.
"""

from __future__ import annotations

from datetime import datetime

from streams.contract import LIFECYCLE_RANK, Event


def order_key(event: Event) -> tuple[datetime, int, str]:
    return (event.occurred_at, LIFECYCLE_RANK[event.type], event.event_id)
