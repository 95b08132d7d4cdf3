"""Processing steps of the pipeline, free of Faust so that replay and tests reuse them.

Each step takes one batch and returns what must be emitted and written; the Faust agents
only move bytes between Kafka, these steps, the case table and the store.

Messages carry one event or a batch of them (streams.contract.framing); the worker's
own repartitioning always writes batches.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka.partitioner import murmur2

from streams.contract import Event, InvalidEvent, decode_event, encode_event
from streams.contract.framing import is_batch, split_items
from streams.core.case_state import CaseState
from streams.core.facts import CaseFacts
from streams.core.sla.clock import CaseSla, evaluate
from streams.core.sla.policy import PolicySet
from streams.core.sla.rows import CaseSlaRow, CycleRow, sla_rows
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
    headers: Sequence[tuple[str, bytes]] = ()

    def items(self) -> Iterator[tuple[int, bytes]]:
        """(line, bytes) of each event the message carries."""
        return split_items(self.value, self.headers)


@dataclass(frozen=True, slots=True)
class Valid:
    message: RawMessage
    event: Event
    #: the event's JSON as received (one line of a batch message, or the whole message)
    raw: bytes
    #: its position inside a batch message (0 for a one-event message)
    line: int = 0


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
                result.valid.append(Valid(message, decode(item), item, line))
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


def route(
    valid: Sequence[Valid], partitions: int, max_bytes: int = 256 * 1024
) -> list[tuple[int, bytes]]:
    """Valid events as received, as batch messages for their case's partition, each at
    most ``max_bytes`` long (or one event, if a single event is longer).

    An event whose JSON spans several lines is re-encoded (canonical JSON is one line).
    """
    open_: dict[int, tuple[list[bytes], int]] = {}
    messages: list[tuple[int, bytes]] = []
    for item in valid:
        target = partition_for(item.event.case_id, partitions)
        raw = item.raw if b"\n" not in item.raw else encode_event(item.event, validate=False)
        lines, size = open_.get(target, ([], 0))
        if lines and size + len(raw) + 1 > max_bytes:
            messages.append((target, b"\n".join(lines)))
            lines, size = [], 0
        lines.append(raw)
        open_[target] = (lines, size + len(raw) + 1)
    messages.extend((target, b"\n".join(lines)) for target, (lines, _) in open_.items())
    return messages


def chunks(batch: Sequence[RawMessage], max_events: int) -> Iterator[list[RawMessage]]:
    """Consecutive runs of messages carrying at most ``max_events`` events each
    (a single message may carry more)."""
    chunk: list[RawMessage] = []
    events = 0
    for message in batch:
        carried = message.value.count(b"\n") + 1 if is_batch(message.headers) else 1
        if chunk and events + carried > max_events:
            yield chunk
            chunk, events = [], 0
        chunk.append(message)
        events += carried
    if chunk:
        yield chunk


@dataclass(slots=True)
class CaseBatchResult:
    """What one batch of validated events changed."""

    event_rows: list[EventRow] = field(default_factory=list)
    facts: list[CaseFacts] = field(default_factory=list)
    #: case_id -> encoded state, for the cases whose event set grew
    states: dict[str, bytes] = field(default_factory=dict)
    #: case_id -> the message that carried its latest event in this batch
    carriers: dict[str, RawMessage] = field(default_factory=dict)
    sla: list[CaseSlaRow] = field(default_factory=list)
    cycles: list[CycleRow] = field(default_factory=list)
    #: case_id -> its SLA evaluation (without ``now``), when policies were given
    evaluations: dict[str, CaseSla] = field(default_factory=dict)
    duplicates: int = 0


#: a case's stored state by case id (the worker's table, a replay's dict.get)
StateLookup = Callable[[str], bytes | None]


def apply_events(
    batch: Sequence[Valid],
    load_state: StateLookup,
    cache: MutableMapping[str, CaseState],
    now: datetime | None = None,
    policies: PolicySet | None = None,
) -> CaseBatchResult:
    """Fold a batch of events into their cases (and, given policies, their SLA clocks).

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
    if policies is not None:
        for facts, state in zip(result.facts, touched.values(), strict=True):
            # No `now`: stored SLA rows hold instants (due, thresholds, breach of ended
            # cycles) only, so a replay and the live run store the same rows; whether
            # an open case is past its deadline is asked at query time.
            evaluation, sla_row, cycles = case_sla_of(state, facts, policies)
            result.evaluations[facts.case_id] = evaluation
            result.sla.append(sla_row)
            result.cycles.extend(cycles)
    return result


def case_sla_of(
    state: CaseState, facts: CaseFacts, policies: PolicySet
) -> tuple[CaseSla, CaseSlaRow, list[CycleRow]]:
    """A case's SLA evaluation (without ``now``) and its ``case_sla`` / ``case_cycles`` rows:
    what the live case agent and a replay (``streams.replay``) both store."""
    evaluation = evaluate(state.events, policies)
    sla_row, cycles = sla_rows(facts, evaluation)
    return evaluation, sla_row, cycles


def event_row(item: Valid, ingested: datetime) -> EventRow:
    return EventRow.archived(
        item.event, item.raw, ingested, item.message.partition, item.message.offset, item.line
    )
