"""Processing steps of the pipeline, free of Faust so that replay and tests reuse them.

Each step takes one batch and returns what must be emitted and written; the Faust agents
only move bytes between Kafka, these steps, the case table and the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from streams.contract import Event, InvalidEvent, decode_event, encode_event
from streams.core.case_state import CaseState
from streams.core.facts import CaseFacts
from streams.core.state_codec import decode_state, encode_state
from streams.store.rows import DeadLetterRow, EventRow


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message as it was read from Kafka."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


@dataclass(slots=True)
class IngestResult:
    valid: list[tuple[RawMessage, Event]] = field(default_factory=list)
    dead: list[DeadLetterRow] = field(default_factory=list)


def ingest(batch: Iterable[RawMessage], now: datetime | None = None) -> IngestResult:
    """Validate raw messages; invalid ones become dead letters with their reason."""
    received = now or datetime.now(UTC)
    result = IngestResult()
    for message in batch:
        try:
            result.valid.append((message, decode_event(message.value)))
        except InvalidEvent as err:
            result.dead.append(dead_letter(message, err, received))
    return result


def dead_letter(message: RawMessage, err: InvalidEvent, received: datetime) -> DeadLetterRow:
    return DeadLetterRow(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=(message.key or b"").decode("utf-8", "replace"),
        reason=err.reason,
        detail=err.detail,
        raw=message.value,
        case_id=err.case_id or "",
        received_at=received,
    )


@dataclass(slots=True)
class CaseBatchResult:
    """What one batch of validated events changed."""

    event_rows: list[EventRow] = field(default_factory=list)
    facts: list[CaseFacts] = field(default_factory=list)
    #: case_id -> encoded state, for the cases whose event set grew
    states: dict[str, bytes] = field(default_factory=dict)
    duplicates: int = 0


StateLookup = Callable[[str], bytes | None]


def apply_events(
    batch: Sequence[tuple[RawMessage, Event]],
    load_state: StateLookup,
    cache: MutableMapping[str, CaseState],
    now: datetime | None = None,
) -> CaseBatchResult:
    """Fold a batch of events into their cases.

    Every event and every touched case is written again even when nothing changed:
    the store is idempotent, and rewriting is what keeps a crash between the state
    update and the store write from losing rows on redelivery.
    """
    ingested = now or datetime.now(UTC)
    result = CaseBatchResult()
    touched: dict[str, CaseState] = {}
    for message, event in batch:
        state = touched.get(event.case_id)
        if state is None:
            state = cache.get(event.case_id)
            if state is None:
                stored = load_state(event.case_id)
                state = (
                    decode_state(event.case_id, stored)
                    if stored is not None
                    else CaseState(event.case_id)
                )
                cache[event.case_id] = state
            touched[event.case_id] = state
        if state.apply(event):
            result.states[event.case_id] = b""
        else:
            result.duplicates += 1
        result.event_rows.append(event_row(message, event, ingested))
    for case_id in result.states:
        result.states[case_id] = encode_state(touched[case_id])
    result.facts = [state.facts() for state in touched.values()]
    return result


def event_row(message: RawMessage, event: Event, ingested: datetime) -> EventRow:
    return EventRow(
        event_id=event.event_id,
        case_id=event.case_id,
        type=event.type,
        occurred_at=event.occurred_at,
        source=event.source,
        schema_version=event.schema_version,
        payload=encode_event(event, validate=False).decode(),
        ingested_at=ingested,
        kafka_partition=message.partition,
        kafka_offset=message.offset,
    )
