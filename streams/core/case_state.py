"""A case's state: its distinct events in lifecycle order, and the facts they imply.

Facts are recomputed from the whole ordered event set rather than updated incrementally,
so duplicates, redeliveries and out-of-order arrival cannot make two runs disagree.
Case histories are short (tens of events), so the recomputation is cheap.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from datetime import datetime

from streams.contract import Event
from streams.contract.generated import (
    CallbackPayload,
    DispatchedPayload,
    OpenedPayload,
    RatedPayload,
    ResolvedPayload,
    TransferredPayload,
)
from streams.core.facts import CaseFacts
from streams.core.ordering import order_key

_STATUS_AFTER = {
    "paused": "paused",
    "resumed": "open",
    "resolved": "resolved",
    "closed": "closed",
    "reopened": "reopened",
}


class CaseState:
    """The distinct events of one case, kept sorted by :func:`order_key`."""

    __slots__ = ("_ids", "_keys", "case_id", "events")

    def __init__(self, case_id: str, events: Iterable[Event] = ()) -> None:
        self.case_id = case_id
        self.events: list[Event] = []
        self._keys: list[tuple[datetime, int, str]] = []
        self._ids: set[str] = set()
        for event in events:
            self.apply(event)

    def apply(self, event: Event) -> bool:
        """Add ``event``; False when an event with the same id is already known."""
        if event.event_id in self._ids:
            return False
        if event.case_id != self.case_id:
            raise ValueError(
                f"event {event.event_id} belongs to {event.case_id}, not {self.case_id}"
            )
        key = order_key(event)
        at = bisect.bisect_right(self._keys, key)
        self._keys.insert(at, key)
        self.events.insert(at, event)
        self._ids.add(event.event_id)
        return True

    def __len__(self) -> int:
        return len(self.events)

    def facts(self) -> CaseFacts:
        return derive_facts(self.case_id, self.events)


def derive_facts(case_id: str, events: Sequence[Event]) -> CaseFacts:
    """Fold ``events`` (distinct, in :func:`order_key` order) into the case's facts."""
    if not events:
        raise ValueError(f"case {case_id} has no events")
    opened: OpenedPayload | None = None
    opened_at: datetime | None = None
    agency = sub_unit = ""
    owners: set[str] = set()
    first_at: dict[str, datetime] = {}
    last_at: dict[str, datetime] = {}
    counts: dict[str, int] = {}
    ping_pongs = 0
    closure_reason = ""
    lifecycle_status = "open"
    callback_reached = False
    confirms: bool | None = None
    satisfaction = ""

    for event in events:
        kind = event.type
        at = event.occurred_at
        payload = event.payload
        first_at.setdefault(kind, at)
        last_at[kind] = at
        counts[kind] = counts.get(kind, 0) + 1
        if kind in _STATUS_AFTER:
            lifecycle_status = _STATUS_AFTER[kind]

        if isinstance(payload, OpenedPayload):
            if opened is None:
                opened, opened_at = payload, at
        elif isinstance(payload, DispatchedPayload):
            agency, sub_unit = payload.agency, payload.sub_unit or ""
            owners.add(agency)
        elif isinstance(payload, TransferredPayload):
            if payload.to_agency in owners and payload.to_agency != payload.from_agency:
                ping_pongs += 1
            agency, sub_unit = payload.to_agency, payload.to_sub_unit or ""
            owners.add(payload.to_agency)
        elif kind == "returned":
            agency = sub_unit = ""
        elif isinstance(payload, ResolvedPayload):
            closure_reason = payload.closure_reason
        elif isinstance(payload, CallbackPayload):
            callback_reached = callback_reached or payload.reached
            if payload.citizen_confirms_solved is not None:
                confirms = payload.citizen_confirms_solved
        elif isinstance(payload, RatedPayload):
            satisfaction = payload.satisfaction

    return CaseFacts(
        case_id=case_id,
        version=len(events),
        status="unknown" if opened is None else lifecycle_status,
        opened_at=opened_at,
        channel=opened.channel if opened else "",
        category=opened.category if opened else "",
        urgency=opened.urgency if opened else "",
        district=opened.district if opened else "",
        sub_district=opened.sub_district if opened else "",
        agency=agency,
        sub_unit=sub_unit,
        first_dispatched_at=first_at.get("dispatched"),
        signed_for_at=first_at.get("signed_for"),
        first_contact_at=first_at.get("first_contact"),
        first_resolved_at=first_at.get("resolved"),
        resolved_at=last_at.get("resolved"),
        closed_at=last_at.get("closed"),
        closure_reason=closure_reason,
        transfers=counts.get("transferred", 0),
        returns=counts.get("returned", 0),
        ping_pongs=ping_pongs,
        pauses=counts.get("paused", 0),
        reopens=counts.get("reopened", 0),
        callback_reached=callback_reached,
        citizen_confirms_solved=confirms,
        satisfaction=satisfaction,
        last_event_at=events[-1].occurred_at,
    )
