"""An independent, brute-force oracle for the "Case facts" table of docs/architecture.md.

Written from the spec alone (it does not import or mirror ``streams.core``), deliberately
simple: group by case, sort, then walk each case's events once per fact. Slow and
obviously correct is the point.

Input events are plain dicts in the v1 envelope (``occurred_at`` an RFC 3339 string with
offset, or an aware datetime). Output timestamps are aware UTC datetimes truncated to the
millisecond; missing timestamps are None.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

# Lifecycle rank: the order of the event type table.
RANK = {
    "opened": 0,
    "dispatched": 1,
    "signed_for": 2,
    "first_contact": 3,
    "transferred": 4,
    "returned": 5,
    "paused": 6,
    "resumed": 7,
    "deadline_extended": 8,
    "resolved": 9,
    "closed": 10,
    "callback": 11,
    "rated": 12,
    "reopened": 13,
}

FACT_NAMES = (
    "case_id",
    "version",
    "status",
    "opened_at",
    "channel",
    "category",
    "urgency",
    "district",
    "sub_district",
    "agency",
    "sub_unit",
    "first_dispatched_at",
    "signed_for_at",
    "first_contact_at",
    "first_resolved_at",
    "resolved_at",
    "closed_at",
    "closure_reason",
    "transfers",
    "returns",
    "ping_pongs",
    "pauses",
    "reopens",
    "callback_reached",
    "citizen_confirms_solved",
    "satisfaction",
    "last_event_at",
)

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


def parse_time(value: str | datetime) -> datetime:
    """RFC 3339 (with offset) -> aware UTC datetime, truncated to the millisecond."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        dt = value.astimezone(UTC)
        return dt.replace(microsecond=dt.microsecond // 1000 * 1000)
    m = _RFC3339.match(value)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp with offset: {value!r}")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    fraction = m.group(7) or "."
    millis = int((fraction[1:] + "000")[:3])
    offset = m.group(8)
    if offset in ("Z", "z"):
        delta = timedelta(0)
    else:
        sign = 1 if offset[0] == "+" else -1
        delta = sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    local = datetime(year, month, day, hour, minute, second, millis * 1000)
    return (local - delta).replace(tzinfo=UTC)


def order_events(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Deduplicate by event_id (first copy wins), then order by
    (occurred_at truncated to ms, lifecycle rank, event_id)."""
    seen: set[str] = set()
    distinct: list[dict[str, Any]] = []
    for event in events:
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        distinct.append(event)
    return sorted(
        distinct,
        key=lambda e: (parse_time(e["occurred_at"]), RANK[e["type"]], e["event_id"]),
    )


def _first(events: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    for event in events:
        if event["type"] == type_:
            return event
    return None


def _last(events: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    found = None
    for event in events:
        if event["type"] == type_:
            found = event
    return found


def _time_of(event: dict[str, Any] | None) -> datetime | None:
    return None if event is None else parse_time(event["occurred_at"])


def _count(events: list[dict[str, Any]], type_: str) -> int:
    return sum(1 for event in events if event["type"] == type_)


def case_facts(case_id: str, events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The facts of one case from its events (duplicates and any order allowed)."""
    ordered = order_events(events)
    payloads = [event["payload"] for event in ordered]
    types = [event["type"] for event in ordered]

    opened = _first(ordered, "opened")

    # status: the last of {paused, resumed, resolved, closed, reopened}
    status_of = {
        "paused": "paused",
        "resumed": "open",
        "resolved": "resolved",
        "closed": "closed",
        "reopened": "reopened",
    }
    if opened is None:
        status = "unknown"
    else:
        status = "open"
        for type_ in types:
            if type_ in status_of:
                status = status_of[type_]

    # current owner
    agency = ""
    sub_unit = ""
    for type_, payload in zip(types, payloads, strict=True):
        if type_ == "dispatched":
            agency = payload["agency"]
            sub_unit = payload.get("sub_unit", "")
        elif type_ == "transferred":
            agency = payload["to_agency"]
            sub_unit = payload.get("to_sub_unit", "")
        elif type_ == "returned":
            agency = ""
            sub_unit = ""

    # ping-pongs: transferred to an agency that owned the case before (any earlier
    # dispatched agency or transferred to_agency), other than the one it comes from
    ping_pongs = 0
    for i, (type_, payload) in enumerate(zip(types, payloads, strict=True)):
        if type_ != "transferred":
            continue
        earlier_owners = set()
        for earlier_type, earlier in zip(types[:i], payloads[:i], strict=True):
            if earlier_type == "dispatched":
                earlier_owners.add(earlier["agency"])
            elif earlier_type == "transferred":
                earlier_owners.add(earlier["to_agency"])
        earlier_owners.discard(payload["from_agency"])
        if payload["to_agency"] in earlier_owners:
            ping_pongs += 1

    callbacks = [p for t, p in zip(types, payloads, strict=True) if t == "callback"]
    callback_reached = any(p["reached"] is True for p in callbacks)
    citizen_confirms_solved = None
    for p in callbacks:
        if "citizen_confirms_solved" in p:
            citizen_confirms_solved = p["citizen_confirms_solved"]

    last_resolved = _last(ordered, "resolved")
    last_rated = _last(ordered, "rated")

    facts: dict[str, Any] = {
        "case_id": case_id,
        "version": len(ordered),
        "status": status,
        "opened_at": _time_of(opened),
        "channel": opened["payload"]["channel"] if opened else "",
        "category": opened["payload"]["category"] if opened else "",
        "urgency": opened["payload"]["urgency"] if opened else "",
        "district": opened["payload"]["district"] if opened else "",
        "sub_district": opened["payload"]["sub_district"] if opened else "",
        "agency": agency,
        "sub_unit": sub_unit,
        "first_dispatched_at": _time_of(_first(ordered, "dispatched")),
        "signed_for_at": _time_of(_first(ordered, "signed_for")),
        "first_contact_at": _time_of(_first(ordered, "first_contact")),
        "first_resolved_at": _time_of(_first(ordered, "resolved")),
        "resolved_at": _time_of(last_resolved),
        "closed_at": _time_of(_last(ordered, "closed")),
        "closure_reason": last_resolved["payload"]["closure_reason"] if last_resolved else "",
        "transfers": _count(ordered, "transferred"),
        "returns": _count(ordered, "returned"),
        "ping_pongs": ping_pongs,
        "pauses": _count(ordered, "paused"),
        "reopens": _count(ordered, "reopened"),
        "callback_reached": callback_reached,
        "citizen_confirms_solved": citizen_confirms_solved,
        "satisfaction": last_rated["payload"]["satisfaction"] if last_rated else "",
        "last_event_at": max(parse_time(e["occurred_at"]) for e in ordered),
    }
    assert tuple(facts) == FACT_NAMES
    return facts


def expected_case_facts(events: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """case_id -> facts, for every case that has at least one event."""
    by_case: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_case.setdefault(event["case_id"], []).append(event)
    return {case_id: case_facts(case_id, evs) for case_id, evs in by_case.items()}


def expected_dead_letter_count(history: Any) -> int:
    """Messages of a ``SimulatedHistory`` that must end up dead-lettered."""
    return sum(1 for em in history.emitted if em.kind == "malformed")


def expected_valid_message_count(history: Any) -> int:
    """Messages that pass validation (first copies and redeliveries)."""
    return sum(1 for em in history.emitted if em.kind in ("valid", "duplicate"))


def expected_distinct_event_count(history: Any) -> int:
    return len({event["event_id"] for event in history.events})
