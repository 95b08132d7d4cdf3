"""Los Angeles 311 service requests (City of Los Angeles open data, CSV) -> contract events.

One export row is one case. It becomes, in lifecycle order:

- ``opened`` at ``CreatedDate``: channel from ``RequestSource``, category from
  ``RequestType`` in snake_case, urgency ``normal`` (the export has none), district the
  council district (``CD`` -> ``Council District 6``), sub-district the neighbourhood
  council (``NCName``), location from ``Latitude``/``Longitude``;
- ``dispatched`` at ``CreatedDate`` to the owner agency (``Owner``) and its sub-unit
  (``AssignTo``): the city routes a request when it is created; the export has no
  assignment time;
- for a finished case (status ``Closed``, ``Cancelled``, ``Referred Out``): ``resolved``
  with a typed closure reason and ``closed``, both at ``ClosedDate``.

Column names are matched case-, space- and underscore-insensitively with known aliases
(exports differ between years); times are local Los Angeles wall-clock times. The mapping
is documented, with the numbers of a real file, in docs/import.md.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from streams.contract.generated import (
    Channel,
    ClosedPayload,
    ClosureReason,
    DispatchedPayload,
    OpenedPayload,
    ResolvedPayload,
)
from streams.sources.importers.common import (
    UNKNOWN,
    ColumnSpec,
    DateError,
    ImportedEvent,
    ImportFormatError,
    ImportReport,
    RowRejected,
    build_event,
    case_citizen_ref,
    clean_label,
    match_columns,
    parse_datetime,
    parse_location,
    snake_case,
    valid_id,
)

__all__ = [
    "CHANNELS",
    "COLUMNS",
    "LA_TIMEZONE",
    "SOURCE",
    "convert_la311",
    "read_la311",
]

SOURCE: Final = "la311-import"
CASE_PREFIX: Final = "la311:"
LA_TIMEZONE: Final = "America/Los_Angeles"

COLUMNS: Final = ColumnSpec(
    aliases={
        "srnumber": ("SR Number", "Service Request Number", "SR No", "SRNum"),
        "createddate": ("Created Date", "Date Created", "Created On"),
        "updateddate": ("Updated Date", "Last Updated", "Updated On"),
        "servicedate": ("Service Date",),
        "closeddate": ("Closed Date", "Date Closed", "Closed On"),
        "requesttype": ("Request Type", "Service Request Type"),
        "status": ("Status", "SR Status"),
        "actiontaken": ("Action Taken",),
        "requestsource": ("Request Source",),
        "owner": ("Owner", "Owner Agency"),
        "assignto": ("Assign To", "Assigned To"),
        "cd": ("CD", "Council District"),
        "nc": ("NC", "Neighborhood Council Code", "NC Code"),
        "ncname": ("NC Name", "Neighborhood Council Name", "Neighborhood Council"),
        "latitude": ("Latitude", "Lat"),
        "longitude": ("Longitude", "Long", "Lon", "Lng"),
        "location": ("Location",),
    },
    required=("srnumber", "createddate", "requesttype", "status"),
)

#: Request source (lower case) -> channel. Anything else is ``other`` (and noted).
CHANNELS: Final[dict[str, Channel]] = {
    "call": "hotline",
    "voicemail": "hotline",
    "queue initiated customer call": "hotline",
    "mobile app": "app",
    "app": "app",
    "self service": "web",
    "web form": "web",
    "chat": "web",
    "email": "email",
    "e-mail": "email",
    "walk-in": "walk_in",
    "walk in": "walk_in",
    "driver self report": "other",
    "council's office": "other",
    "letter": "other",
    "fax": "other",
    "city attorney": "other",
    "elected official": "other",
    "twitter": "other",
    "radio": "other",
}

_OPEN_STATUSES: Final = frozenset({"open", "pending", "in progress", "new", "forward"})
#: Status (lower case) of a finished case -> closure reason.
_CLOSED_STATUSES: Final[dict[str, ClosureReason]] = {
    "closed": "fixed",
    # The export does not say who cancelled (citizen, agency, duplicate): not guessed.
    "cancelled": "other",
    "canceled": "other",
    "referred out": "referred_elsewhere",
}
#: Action taken (lower case) that overrides the closure reason of a ``Closed`` case.
_CLOSING_ACTIONS: Final[dict[str, ClosureReason]] = {
    "sr transferred": "referred_elsewhere",
    "referred over to authorities": "referred_elsewhere",
    "referred out": "referred_elsewhere",
    "information provided": "other",
}


def _council_district(cell: str) -> str:
    text = clean_label(cell)
    for prefix in ("council district", "cd"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :].strip()
    if text.endswith(".0"):
        text = text[:-2]
    if not text:
        return ""
    return f"Council District {text}"


def _location_cell(cell: str) -> tuple[str, str]:
    """``(34.1, -118.2)`` (the Location column of older exports) -> its two numbers."""
    parts = cell.strip().strip("()").split(",")
    if len(parts) != 2:
        return "", ""
    return parts[0].strip(), parts[1].strip()


class _Row:
    __slots__ = ("cells", "columns")

    def __init__(self, cells: Sequence[str], columns: dict[str, int]) -> None:
        self.cells = cells
        self.columns = columns

    def get(self, name: str) -> str:
        index = self.columns.get(name)
        if index is None or index >= len(self.cells):
            return ""
        return self.cells[index].strip()


class _Converter:
    def __init__(self, columns: dict[str, int], report: ImportReport, tz: ZoneInfo) -> None:
        self.columns = columns
        self.report = report
        self.tz = tz
        self.seen: set[str] = set()

    def convert(self, row: _Row) -> list[ImportedEvent]:
        notes = self.report.notes
        sr = row.get("srnumber")
        if not sr:
            raise RowRejected("missing_sr_number", "no SR number")
        case_id = CASE_PREFIX + sr
        if not valid_id(sr, 64 - len(CASE_PREFIX) - len(":deadline_extended")):
            raise RowRejected("bad_sr_number", "SR number has characters or length ids refuse")
        if sr in self.seen:
            raise RowRejected("duplicate_sr_number", f"SR number {sr} already imported")

        created_text = row.get("createddate")
        if not created_text:
            raise RowRejected("missing_created_date", "no created date")
        try:
            created = parse_datetime(created_text, self.tz, "created_date")
        except DateError as err:
            raise RowRejected(err.reason, err.detail) from None

        category = snake_case(row.get("requesttype"))
        if not category:
            raise RowRejected("missing_request_type", "no request type")

        status = clean_label(row.get("status")).lower()
        closure: ClosureReason | None
        if status in _CLOSED_STATUSES:
            closure = _CLOSED_STATUSES[status]
            if status == "closed":
                closure = _CLOSING_ACTIONS.get(clean_label(row.get("actiontaken")).lower(), closure)
        elif status in _OPEN_STATUSES:
            closure = None
        elif not status:
            raise RowRejected("missing_status", "no status")
        else:
            raise RowRejected("unknown_status", f"status {row.get('status')!r} is not known")

        closed_at: datetime | None = None
        closed_text = row.get("closeddate")
        if closure is not None:
            if not closed_text:
                raise RowRejected(
                    "missing_closed_date", f"status {row.get('status')!r} without a closed date"
                )
            try:
                closed_at = parse_datetime(closed_text, self.tz, "closed_date")
            except DateError as err:
                raise RowRejected(err.reason, err.detail) from None
            if closed_at < created:
                raise RowRejected(
                    "closed_before_created",
                    f"closed {closed_text!r} is before created {created_text!r}",
                )
        elif closed_text:
            notes["closed_date_ignored_on_open_status"] += 1

        source = clean_label(row.get("requestsource"))
        channel = CHANNELS.get(source.lower())
        if channel is None:
            channel = "other"
            notes[f"channel_other:{source or 'blank'}"] += 1

        district = _council_district(row.get("cd"))
        if not district:
            district = UNKNOWN
            notes["district_unknown"] += 1
        sub_district = clean_label(row.get("ncname"))
        if not sub_district and row.get("nc"):
            sub_district = f"NC {clean_label(row.get('nc'))}"
        if not sub_district:
            sub_district = UNKNOWN
            notes["sub_district_unknown"] += 1

        lat, lon = row.get("latitude"), row.get("longitude")
        if not (lat and lon) and row.get("location"):
            lat, lon = _location_cell(row.get("location"))
        location = parse_location(lat, lon)
        if location is None:
            notes["location_missing"] += 1

        agency = clean_label(row.get("owner"))
        if not agency:
            agency = UNKNOWN
            notes["agency_unknown"] += 1
        sub_unit = clean_label(row.get("assignto")) or None
        if sub_unit is None:
            notes["sub_unit_missing"] += 1

        self._note_service_date(row, created)

        events = [
            build_event(
                case_id,
                "opened",
                created,
                SOURCE,
                OpenedPayload(
                    channel=channel,
                    category=category,
                    urgency="normal",
                    district=district,
                    sub_district=sub_district,
                    citizen_ref=case_citizen_ref(case_id),
                    location=location,
                ),
            ),
            build_event(
                case_id, "dispatched", created, SOURCE, DispatchedPayload(agency, sub_unit)
            ),
        ]
        if closure is not None and closed_at is not None:
            events.append(
                build_event(
                    case_id, "resolved", closed_at, SOURCE, ResolvedPayload(agency, closure)
                )
            )
            events.append(build_event(case_id, "closed", closed_at, SOURCE, ClosedPayload()))
        self.seen.add(sr)
        return events

    def _note_service_date(self, row: _Row, created: datetime) -> None:
        """The contract has no field for the service (expected) date: count what it holds."""
        text = row.get("servicedate")
        if not text:
            return
        notes = self.report.notes
        notes["service_date_not_carried"] += 1
        try:
            service = parse_datetime(text, self.tz, "service_date")
        except DateError:
            notes["service_date_unreadable"] += 1
            return
        if service.astimezone(self.tz).date() < created.astimezone(self.tz).date():
            notes["service_date_before_created_day"] += 1


def convert_la311(
    rows: Iterable[Sequence[str]],
    report: ImportReport,
    *,
    name: str = "<input>",
    timezone: str = LA_TIMEZONE,
    line_of: Callable[[], int] | None = None,
) -> Iterator[ImportedEvent]:
    """The events of an LA311 export given as CSV rows, the first being the header.

    Every data row is counted in ``report``: imported, or rejected with its number.
    Fully blank rows are not records (skipped, counted in ``report.notes``). Raises
    :class:`ImportFormatError` when the header lacks a required column.
    """
    it = iter(rows)
    header = next(it, None)
    if header is None:
        raise ImportFormatError(f"{name}: empty file, not an LA311 export")
    columns = match_columns(header, COLUMNS, name, "an LA311 export")
    converter = _Converter(columns, report, ZoneInfo(timezone))
    width = len(header)
    for cells in it:
        if not any(cell.strip() for cell in cells):
            report.notes["blank_rows_skipped"] += 1
            continue
        report.records_read += 1
        number = report.records_read
        line = line_of() if line_of is not None else 0
        row = _Row(cells, columns)
        try:
            if len(cells) != width:
                raise RowRejected(
                    "wrong_field_count", f"{len(cells)} fields, the header has {width}"
                )
            events = converter.convert(row)
        except RowRejected as rej:
            report.reject(number, rej.reason, rej.detail, row.get("srnumber")[:64], line)
            continue
        report.accept(events)
        yield from events


def read_la311(
    path: str | Path,
    report: ImportReport,
    *,
    timezone: str = LA_TIMEZONE,
    encoding: str = "utf-8-sig",
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[ImportedEvent]:
    """:func:`convert_la311` over a CSV file, read as a stream. ``on_bytes(n)`` is called
    now and then with the bytes read so far (for a progress bar)."""
    path = Path(path)
    with path.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding=encoding, newline="")
        reader = csv.reader(text)

        def rows() -> Iterator[list[str]]:
            try:
                for n, cells in enumerate(reader):
                    if on_bytes is not None and n % 1000 == 0:
                        on_bytes(raw.tell())
                    yield cells
            except UnicodeDecodeError as err:
                raise ImportFormatError(
                    f"{path}: not {encoding} text near line {reader.line_num + 1} ({err.reason});"
                    " give the file's encoding with --encoding"
                ) from None
            except csv.Error as err:
                raise ImportFormatError(f"{path}: line {reader.line_num}: {err}") from None
            if on_bytes is not None:
                on_bytes(raw.tell())

        yield from convert_la311(
            rows(),
            report,
            name=str(path),
            timezone=timezone,
            line_of=lambda: reader.line_num,
        )
