"""Open311 GeoReport v2 service requests (JSON) -> contract events.

The input is the response of ``GET requests.json``: a bare array of service requests, or
an object holding it under ``requests`` (or ``service_requests``). One request is one case:

- ``opened`` at ``requested_datetime``: category from ``service_name`` (else
  ``service_code``) in snake_case, channel ``other``, urgency ``normal``, district and
  sub-district ``unknown`` (GeoReport v2 has none of them), location from ``lat``/``long``;
- ``dispatched`` at ``requested_datetime`` to ``agency_responsible`` (``unknown`` when
  absent);
- for ``status: closed``: ``resolved`` (closure reason ``other``: GeoReport v2 does not
  type closures, and ``status_notes`` is free text, never interpreted) and ``closed``,
  both at ``updated_datetime``, the last change of a closed request.

``description``, ``address``, ``status_notes``, ``service_notice`` and ``media_url`` are
never carried (free text and pictures may hold personal data); the contract has no field
for ``expected_datetime`` (counted in the report's notes). See docs/import.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import orjson

from streams.contract.generated import (
    ClosedPayload,
    DispatchedPayload,
    OpenedPayload,
    ResolvedPayload,
)
from streams.sources.importers.common import (
    UNKNOWN,
    DateError,
    ImportedEvent,
    ImportFormatError,
    ImportReport,
    RowRejected,
    build_event,
    case_citizen_ref,
    clean_label,
    parse_datetime,
    parse_location,
    snake_case,
    valid_id,
)

__all__ = ["CASE_PREFIX", "SOURCE", "convert_open311", "read_open311", "requests_of"]

SOURCE: Final = "open311-import"
CASE_PREFIX: Final = "open311"
_LONGEST_KIND: Final = len(":deadline_extended")


def requests_of(document: Any, name: str) -> list[Any]:
    """The service requests of a GeoReport v2 response (bare array, or under ``requests``
    / ``service_requests``). Raises ImportFormatError for anything else."""
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        for key in ("requests", "service_requests"):
            value = document.get(key)
            if isinstance(value, list):
                return value
    raise ImportFormatError(
        f"{name}: not an Open311 GeoReport v2 response "
        "(expected an array of service requests, or an object with a 'requests' array)"
    )


def _text(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, int | float):
        return str(value)
    return value.strip() if isinstance(value, str) else ""


def _coordinate(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return ""
    return str(value).strip()


class _Converter:
    def __init__(self, report: ImportReport, tz: ZoneInfo | None, prefix: str) -> None:
        self.report = report
        self.tz = tz
        self.prefix = f"{prefix}:"
        self.seen: set[str] = set()

    def time(self, record: dict[str, Any], key: str) -> datetime:
        try:
            return parse_datetime(_text(record, key), self.tz, key)
        except DateError as err:
            raise RowRejected(err.reason, err.detail) from None

    def convert(self, record: Any) -> list[ImportedEvent]:
        notes = self.report.notes
        if not isinstance(record, dict):
            raise RowRejected("not_an_object", "a service request must be a JSON object")
        request_id = _text(record, "service_request_id")
        if not request_id:
            raise RowRejected("missing_request_id", "no service_request_id")
        if not valid_id(request_id, 64 - len(self.prefix) - _LONGEST_KIND):
            raise RowRejected(
                "bad_request_id", "service_request_id has characters or length ids refuse"
            )
        if request_id in self.seen:
            raise RowRejected(
                "duplicate_request_id", f"service_request_id {request_id} already imported"
            )
        case_id = self.prefix + request_id

        if not _text(record, "requested_datetime"):
            raise RowRejected("missing_requested_datetime", "no requested_datetime")
        requested = self.time(record, "requested_datetime")

        category = snake_case(_text(record, "service_name") or _text(record, "service_code"))
        if not category:
            raise RowRejected("missing_service", "neither service_name nor service_code")

        status = _text(record, "status").lower()
        closed_at: datetime | None = None
        if status == "closed":
            if not _text(record, "updated_datetime"):
                raise RowRejected("missing_closed_date", "closed request without updated_datetime")
            closed_at = self.time(record, "updated_datetime")
            if closed_at < requested:
                raise RowRejected(
                    "closed_before_created", "updated_datetime is before requested_datetime"
                )
        elif not status:
            raise RowRejected("missing_status", "no status")
        elif status != "open":
            raise RowRejected("unknown_status", f"status {status!r} is neither open nor closed")

        if _text(record, "expected_datetime"):
            notes["expected_datetime_not_carried"] += 1
            try:
                self.time(record, "expected_datetime")
            except RowRejected:
                notes["expected_datetime_unreadable"] += 1

        agency = clean_label(_text(record, "agency_responsible"))
        if not agency:
            agency = UNKNOWN
            notes["agency_unknown"] += 1
        location = parse_location(_coordinate(record, "lat"), _coordinate(record, "long"))
        if location is None:
            notes["location_missing"] += 1

        events = [
            build_event(
                case_id,
                "opened",
                requested,
                SOURCE,
                OpenedPayload(
                    channel="other",
                    category=category,
                    urgency="normal",
                    district=UNKNOWN,
                    sub_district=UNKNOWN,
                    citizen_ref=case_citizen_ref(case_id),
                    location=location,
                ),
            ),
            build_event(case_id, "dispatched", requested, SOURCE, DispatchedPayload(agency)),
        ]
        if closed_at is not None:
            events.append(
                build_event(
                    case_id, "resolved", closed_at, SOURCE, ResolvedPayload(agency, "other")
                )
            )
            events.append(build_event(case_id, "closed", closed_at, SOURCE, ClosedPayload()))
        self.seen.add(request_id)
        return events


def convert_open311(
    document: Any,
    report: ImportReport,
    *,
    name: str = "<input>",
    timezone: str | None = None,
    case_prefix: str = CASE_PREFIX,
) -> Iterator[ImportedEvent]:
    """The events of a parsed GeoReport v2 response; every request counted in ``report``.

    Datetimes must carry an offset (GeoReport v2 says so); with ``timezone`` a datetime
    without one is read as local time there instead of being rejected. ``case_prefix``
    namespaces the case ids (``open311:<service_request_id>``): give each city its own.
    """
    if not valid_id(case_prefix, 16):
        raise ValueError(f"case prefix {case_prefix!r}: 1..16 of A-Z a-z 0-9 . _ : -")
    requests = requests_of(document, name)
    converter = _Converter(report, ZoneInfo(timezone) if timezone else None, case_prefix)
    for number, record in enumerate(requests, start=1):
        report.records_read += 1
        try:
            events = converter.convert(record)
        except RowRejected as rej:
            source_id = _text(record, "service_request_id")[:64] if isinstance(record, dict) else ""
            report.reject(number, rej.reason, rej.detail, source_id)
            continue
        report.accept(events)
        yield from events


def read_open311(
    path: str | Path,
    report: ImportReport,
    *,
    timezone: str | None = None,
    case_prefix: str = CASE_PREFIX,
) -> Iterator[ImportedEvent]:
    """:func:`convert_open311` over a JSON file."""
    path = Path(path)
    try:
        document = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as err:
        raise ImportFormatError(f"{path}: not JSON ({err})") from None
    return convert_open311(
        document, report, name=str(path), timezone=timezone, case_prefix=case_prefix
    )
