"""Per-case facts: what the monitor knows about one case, derived from its events."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class CaseFacts:
    """One row of ``case_facts``. Definitions: docs/architecture.md, "Case facts"."""

    case_id: str
    version: int
    status: str
    opened_at: datetime | None
    channel: str
    category: str
    urgency: str
    district: str
    sub_district: str
    agency: str
    sub_unit: str
    first_dispatched_at: datetime | None
    signed_for_at: datetime | None
    first_contact_at: datetime | None
    first_resolved_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    closure_reason: str
    transfers: int
    returns: int
    ping_pongs: int
    pauses: int
    reopens: int
    callback_reached: bool
    citizen_confirms_solved: bool | None
    satisfaction: str
    last_event_at: datetime


CASE_FACT_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(CaseFacts))
