"""Compact bytes for a case's state, as kept in the worker's case table.

A state is a short list of events; each is stored as
``[event_id, type, occurred_at in epoch milliseconds, source, schema_version, payload]``
so that restoring it skips JSON Schema validation (the events were validated on the way
in) and timestamp parsing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from streams.contract import PAYLOAD_CLASSES, Event
from streams.contract.json_bytes import dumps
from streams.core.case_state import CaseState

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def encode_state(state: CaseState) -> bytes:
    return dumps(
        [
            [
                e.event_id,
                e.type,
                (e.occurred_at - _EPOCH) // _MS,
                e.source,
                e.schema_version,
                e.payload.to_dict(),
            ]
            for e in state.events
        ]
    )


def decode_state(case_id: str, data: bytes) -> CaseState:
    events = [
        Event(
            event_id=event_id,
            case_id=case_id,
            type=type_,
            occurred_at=_EPOCH + timedelta(milliseconds=millis),
            source=source,
            schema_version=version,
            payload=PAYLOAD_CLASSES[type_].from_dict(payload),
        )
        for event_id, type_, millis, source, version, payload in orjson.loads(data)
    ]
    return CaseState(case_id, events)
