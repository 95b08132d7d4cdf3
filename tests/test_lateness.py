"""Late events: measured against the newest event time seen on the same partition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from streams.app.lateness import LatenessTracker
from streams.app.steps import RawMessage, ingest

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
OPENED = {
    "channel": "app",
    "category": "noise",
    "urgency": "normal",
    "district": "d",
    "sub_district": "d-1",
    "citizen_ref": "cd" * 16,
}


def raw(n: int, hours: float, partition: int = 0) -> RawMessage:
    value = orjson.dumps(
        {
            "schema_version": 1,
            "event_id": f"evt-{n:06d}",
            "case_id": f"case-{n}",
            "type": "opened",
            "occurred_at": (T0 + timedelta(hours=hours)).isoformat(),
            "source": "test",
            "payload": OPENED,
        }
    )
    return RawMessage("civicpulse.events", partition, n, None, value)


def test_only_events_beyond_the_grace_period_are_reported() -> None:
    tracker = LatenessTracker(grace=timedelta(hours=2))
    batch = ingest([raw(1, 10), raw(2, 9), raw(3, 7.5), raw(4, 11), raw(5, 8.9)], now=T0).valid
    late = tracker.observe(batch, received=T0)
    assert [(r.event_id, r.lateness_seconds) for r in late] == [
        ("evt-000003", 2.5 * 3600),
        ("evt-000005", 2.1 * 3600),
    ]
    assert late[1].watermark_at == T0 + timedelta(hours=11)


def test_partitions_have_their_own_watermark() -> None:
    tracker = LatenessTracker(grace=timedelta(hours=1))
    batch = ingest([raw(1, 10, partition=0), raw(2, 5, partition=1)], now=T0).valid
    assert tracker.observe(batch, received=T0) == []
    assert tracker.observe(ingest([raw(3, 3, partition=1)], now=T0).valid, T0)[0].event_id == (
        "evt-000003"
    )
