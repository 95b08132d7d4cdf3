"""Rows the batch writer inserts, one frozen dataclass per table.

The dataclass fields, in order, are the table's columns (``schemas/clickhouse/``); the
column tuples below are derived from them so there is one source of truth, and a test
checks them against the tables. ``case_facts`` rows are :class:`streams.core.facts.CaseFacts`
plus ``updated_at``, which the writer sets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streams.contract import Event
from streams.core.facts import CASE_FACT_COLUMNS

EVENTS_TABLE = "events"
CASE_FACTS_TABLE = "case_facts"
DEAD_LETTERS_TABLE = "dead_letters"
LATE_EVENTS_TABLE = "late_events"
SLA_ALERTS_TABLE = "sla_alerts"


@dataclass(frozen=True, slots=True)
class EventRow:
    """One valid event, as archived in ``events``."""

    event_id: str
    case_id: str
    type: str
    occurred_at: datetime  # aware (UTC); stored to the millisecond
    source: str
    schema_version: int
    event_json: str  # the whole event's JSON as received (decode_event reads it back)
    ingested_at: datetime
    kafka_partition: int  # -1 when the event did not come from Kafka
    kafka_offset: int
    line: int  # position of the event inside a batch message, 0 for a one-event message

    @classmethod
    def archived(
        cls,
        event: Event,
        raw: bytes,
        ingested_at: datetime,
        partition: int,
        offset: int,
        line: int = 0,
    ) -> EventRow:
        """The archive row of a valid event and the bytes it was decoded from (``line``:
        its position in a batch message)."""
        return cls(
            event.event_id,
            event.case_id,
            event.type,
            event.occurred_at,
            event.source,
            event.schema_version,
            raw.decode(),
            ingested_at,
            partition,
            offset,
            line,
        )


@dataclass(frozen=True, slots=True)
class DeadLetterRow:
    """One message that failed validation, as kept in ``dead_letters``."""

    topic: str
    partition: int
    offset: int
    line: int  # position of the event inside a batch message, 0 for a one-event message
    key: str  # the Kafka key, "" when none
    reason: str  # InvalidEvent.reason: not_utf8, not_json, schema, ...
    detail: str
    raw: bytes  # the message value exactly as read: may be anything, not even UTF-8
    case_id: str  # "" when it could not be read
    received_at: datetime


@dataclass(frozen=True, slots=True)
class LateEventRow:
    """An event that arrived more than the grace period behind its partition's watermark."""

    case_id: str
    event_id: str
    type: str
    occurred_at: datetime
    watermark_at: datetime  # the newest event time seen on the partition before it
    lateness_seconds: float
    received_at: datetime


@dataclass(frozen=True, slots=True)
class SlaAlertRow:
    """One alert of the alert topic (``schemas/alerts/v1/sla-alert.schema.json``)."""

    alert_id: str
    type: str
    case_id: str
    target: str
    cycle: int
    threshold: float
    fired_at: datetime
    due_at: datetime | None
    emitted_at: datetime
    policy_id: str
    agency: str
    sub_unit: str
    district: str
    sub_district: str
    category: str
    urgency: str
    channel: str
    worker: str

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> SlaAlertRow:
        """From a decoded, schema-valid alert message."""
        from streams.contract.alerts import parse_instant

        values = {name: doc[name] for name in SLA_ALERT_COLUMNS}
        values["fired_at"] = parse_instant(doc["fired_at"])
        values["emitted_at"] = parse_instant(doc["emitted_at"])
        values["due_at"] = parse_instant(doc["due_at"]) if doc["due_at"] is not None else None
        return cls(**values)


def column_names(row_type: type[Any]) -> tuple[str, ...]:
    """The column names of a row dataclass, in field order."""
    return tuple(f.name for f in dataclasses.fields(row_type))


EVENT_COLUMNS: tuple[str, ...] = column_names(EventRow)
DEAD_LETTER_COLUMNS: tuple[str, ...] = column_names(DeadLetterRow)
LATE_EVENT_COLUMNS: tuple[str, ...] = column_names(LateEventRow)
SLA_ALERT_COLUMNS: tuple[str, ...] = column_names(SlaAlertRow)
#: the columns of ``case_facts``: the CaseFacts fields, then the time of the write
CASE_FACTS_TABLE_COLUMNS: tuple[str, ...] = (*CASE_FACT_COLUMNS, "updated_at")
