"""Processing steps of the pipeline, free of Faust so that replay and tests reuse them.

Each step takes one batch and returns what must be emitted and written; the Faust agents
only move bytes between Kafka, these steps, the case table and the store.

Framing: a message carries one event (the contract), or, when it has the header
``civicpulse-batch: ndjson``, several events one per line. Bulk producers (simulator,
importers, replay) and the worker's own repartitioning use batch messages, because the
per-message cost of a stream processor, not the per-event work, bounds throughput.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka.partitioner import murmur2

from streams.contract import Event, InvalidEvent, decode_event, encode_event
from streams.core.case_state import CaseState
from streams.core.facts import CaseFacts
from streams.core.state_codec import decode_state, encode_state
from streams.store.rows import DeadLetterRow, EventRow

BATCH_HEADER = "civicpulse-batch"
NDJSON = b"ndjson"
BATCH_HEADERS: list[tuple[str, bytes]] = [(BATCH_HEADER, NDJSON)]


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One message as it was read from Kafka."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]] = ()

    @property
    def is_batch(self) -> bool:
        return any(k == BATCH_HEADER and v == NDJSON for k, v in self.headers)

    def items(self) -> Iterator[tuple[int, bytes]]:
        """(line, bytes) of each event the message carries."""
        if not self.is_batch:
            yield 0, self.value
            return
        for line, item in enumerate(self.value.split(b"\n")):
            if item.strip():
                yield line, item


@dataclass(frozen=True, slots=True)
class Valid:
    message: RawMessage
    event: Event
    #: the event's JSON as received (one line of a batch message, or the whole message)
    raw: bytes


@dataclass(slots=True)
class IngestResult:
    valid: list[Valid] = field(default_factory=list)
    dead: list[DeadLetterRow] = field(default_factory=list)


def ingest(
    batch: Sequence[RawMessage],
    now: datetime | None = None,
    decode: Callable[[bytes], Event] = decode_event,
) -> IngestResult:
    """Decode every event in the messages; invalid ones become dead letters.

    ``decode`` is :func:`decode_event` (full validation) for outside input, and
    :func:`decode_validated` for the worker's internal topic, written by this step only.
    """
    received = now or datetime.now(UTC)
    result = IngestResult()
    for message in batch:
        for line, item in message.items():
            try:
                result.valid.append(Valid(message, decode(item), item))
            except InvalidEvent as err:
                result.dead.append(dead_letter(message, line, item, err, received))
    return result


def dead_letter(
    message: RawMessage, line: int, item: bytes, err: InvalidEvent, received: datetime
) -> DeadLetterRow:
    return DeadLetterRow(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        line=line,
        key=(message.key or b"").decode("utf-8", "replace"),
        reason=err.reason,
        detail=err.detail,
        raw=item,
        case_id=err.case_id or "",
        received_at=received,
    )


@functools.lru_cache(maxsize=1 << 18)
def partition_for(case_id: str, partitions: int) -> int:
    """The partition of a case: Kafka's default partitioner on the case id as key, so
    a producer that keys raw events by case id puts them where the case agent keeps them.
    """
    return (int(murmur2(case_id.encode())) & 0x7FFFFFFF) % partitions


def route(valid: Sequence[Valid], partitions: int) -> dict[int, bytes]:
    """Valid events as received, one batch message per target partition.

    An event whose JSON spans several lines is re-encoded (canonical JSON is one line).
    """
    lines: dict[int, list[bytes]] = {}
    for item in valid:
        target = partition_for(item.event.case_id, partitions)
        raw = item.raw if b"\n" not in item.raw else encode_event(item.event, validate=False)
        lines.setdefault(target, []).append(raw)
    return {partition: b"\n".join(items) for partition, items in lines.items()}


@dataclass(slots=True)
class CaseBatchResult:
    """What one batch of validated events changed."""

    event_rows: list[EventRow] = field(default_factory=list)
    facts: list[CaseFacts] = field(default_factory=list)
    #: case_id -> encoded state, for the cases whose event set grew
    states: dict[str, bytes] = field(default_factory=dict)
    #: case_id -> the message that carried its latest event in this batch
    carriers: dict[str, RawMessage] = field(default_factory=dict)
    duplicates: int = 0


#: a case's stored state by case id (the worker's table, a replay's dict.get)
StateLookup = Callable[[str], bytes | None]


def apply_events(
    batch: Sequence[Valid],
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
    for item in batch:
        event = item.event
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
        result.carriers[event.case_id] = item.message
        result.event_rows.append(event_row(item, ingested))
    for case_id in result.states:
        result.states[case_id] = encode_state(touched[case_id])
    result.facts = [state.facts() for state in touched.values()]
    return result


def event_row(item: Valid, ingested: datetime) -> EventRow:
    event = item.event
    return EventRow(
        event_id=event.event_id,
        case_id=event.case_id,
        type=event.type,
        occurred_at=event.occurred_at,
        source=event.source,
        schema_version=event.schema_version,
        event_json=item.raw.decode(),
        ingested_at=ingested,
        kafka_partition=item.message.partition,
        kafka_offset=item.message.offset,
    )
