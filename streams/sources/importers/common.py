"""What every open-data importer shares: column matching, date parsing, labels, ids,
building validated contract events, and the accounting of rejected records.

Nothing here touches Kafka or the terminal. An importer turns records into
:class:`ImportedEvent` s (a typed :class:`~streams.contract.Event` plus its canonical,
schema-checked bytes) and records every record it could not import in an
:class:`ImportReport`, with the record's number and a reason code.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Final

from streams.contract import Event, InvalidEvent, Location, Payload, encode_event
from streams.contract.generated import EventType, ResolvedPayload

__all__ = [
    "UNKNOWN",
    "ColumnSpec",
    "DateError",
    "ImportFormatError",
    "ImportReport",
    "ImportedEvent",
    "Reject",
    "RowRejected",
    "build_event",
    "case_citizen_ref",
    "clean_label",
    "match_columns",
    "normalise_header",
    "parse_datetime",
    "parse_location",
    "snake_case",
    "valid_id",
]

#: The label of a required district / agency the source does not give.
UNKNOWN: Final = "unknown"

# Public and fixed on purpose: imported open data carries no citizen identity, so the
# reference is derived from the (public) request number and identifies nobody.
_IMPORT_CITIZEN_KEY: Final = b"civicpulse-import-unknown-citizen-v1"

_ID_CHARS = re.compile(r"^[A-Za-z0-9._:-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SPACES = re.compile(r"\s+")
_HEADER_NOISE = re.compile(r"[\s_\-./()]+")


class ImportFormatError(Exception):
    """The input is not what the importer reads (wrong kind of file): stop, reject nothing."""


class DateError(ValueError):
    """A date that cannot be read. ``reason`` is a reject reason code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class RowRejected(Exception):
    """Raised by a record converter: the record is not imported (``reason``, ``detail``)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# --------------------------------------------------------------------------- columns


def normalise_header(name: str) -> str:
    """``Created Date``, ``created_date``, ``CreatedDate`` -> ``createddate``."""
    return _HEADER_NOISE.sub("", name.strip().lstrip("\ufeff")).lower()


@dataclass(frozen=True)
class ColumnSpec:
    """The columns an importer knows: canonical name -> accepted spellings (any case,
    spacing or underscores), and which must be present."""

    aliases: Mapping[str, Sequence[str]]
    required: Sequence[str]


def match_columns(
    headers: Sequence[str], spec: ColumnSpec, source: str, kind: str
) -> dict[str, int]:
    """Canonical column name -> index in ``headers``. Unknown columns are ignored.

    Raises :class:`ImportFormatError` naming ``source`` (the file) when a required column
    is missing (``<source> is not <kind>: missing column(s) ...``) or two columns of the
    file claim the same canonical name.
    """
    lookup: dict[str, str] = {}
    for canonical, names in spec.aliases.items():
        for name in (canonical, *names):
            lookup[normalise_header(name)] = canonical
    found: dict[str, int] = {}
    for index, header in enumerate(headers):
        known = lookup.get(normalise_header(header))
        if known is None:
            continue
        if known in found:
            other = headers[found[known]]
            raise ImportFormatError(
                f"{source}: columns {other!r} and {header!r} both read as {known!r}"
            )
        found[known] = index
    missing = [(spec.aliases[name] or (name,))[0] for name in spec.required if name not in found]
    if missing:
        raise ImportFormatError(
            f"{source} is not {kind}: missing column(s) {', '.join(missing)} "
            f"(found: {', '.join(h for h in headers if h.strip()) or 'no header'})"
        )
    return found


# --------------------------------------------------------------------------- dates

# Explicit formats only (no fuzzy guessing). Slash dates are US order (month first), as in
# every US open-data portal; two-digit years follow strptime (69-99 -> 19xx, 00-68 -> 20xx).
_SLASH_FORMATS: Final = (
    "%m/%d/%y %H:%M",
    "%m/%d/%y %H:%M:%S",
    "%m/%d/%y %I:%M %p",
    "%m/%d/%y %I:%M:%S %p",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%y",
    "%m/%d/%Y",
)
_ISO: Final = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?$",
    re.IGNORECASE,
)


def _parse_iso(m: re.Match[str]) -> datetime:
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    moment = datetime(
        int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro
    )
    if offset is None:
        return moment
    if offset.upper() == "Z":
        return moment.replace(tzinfo=UTC)
    sign = -1 if offset[0] == "-" else 1
    digits = offset[1:].replace(":", "")
    delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
    if delta >= timedelta(hours=24):
        raise ValueError("offset out of range")
    return moment.replace(tzinfo=timezone(sign * delta))


def _parse_naive_or_aware(text: str) -> datetime:
    m = _ISO.match(text)
    if m is not None:
        return _parse_iso(m)
    for fmt in _SLASH_FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ValueError("no known date format")


def _localise(naive: datetime, tz: tzinfo) -> datetime:
    """The instant a local wall-clock time names in ``tz``. A time in the hour repeated when
    clocks go back is the first occurrence (daylight time); a time in the hour skipped when
    clocks go forward does not exist and raises."""
    aware = naive.replace(tzinfo=tz, fold=0)
    round_trip = aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None, fold=0)
    if round_trip != naive:
        raise DateError(
            "nonexistent_local_time",
            f"{naive.isoformat(sep=' ')} does not exist in {tz} (clocks went forward)",
        )
    return aware


def parse_datetime(text: str, tz: tzinfo | None, field_name: str) -> datetime:
    """An aware UTC datetime from one of the explicit formats.

    A value with an offset (ISO ``Z`` / ``+hh:mm``) keeps it; a local value is read in
    ``tz``; with ``tz`` None a local value is an error (``datetime_without_offset``).
    Raises :class:`DateError` with a reject reason (``bad_<field_name>``,
    ``nonexistent_local_time``, ``datetime_without_offset``).
    """
    value = text.strip()
    try:
        moment = _parse_naive_or_aware(value)
    except ValueError:
        raise DateError(
            f"bad_{field_name}", f"{field_name} {value!r} is not a known date format"
        ) from None
    if not 1900 <= moment.year <= 2299:
        raise DateError(f"bad_{field_name}", f"{field_name} {value!r} is out of range")
    if moment.tzinfo is None:
        if tz is None:
            raise DateError("datetime_without_offset", f"{field_name} {value!r} has no UTC offset")
        moment = _localise(moment, tz)
    if not 1900 <= moment.astimezone(UTC).year <= 2299:
        raise DateError(f"bad_{field_name}", f"{field_name} {value!r} is out of range")
    return moment.astimezone(UTC)


# --------------------------------------------------------------------------- values


def clean_label(value: str | None) -> str:
    """A label from a free cell: control characters become spaces, runs of white space
    one space, trimmed, at most 128 characters. Empty when nothing is left."""
    if value is None:
        return ""
    return _SPACES.sub(" ", _CONTROL.sub(" ", value)).strip()[:128]


def snake_case(value: str) -> str:
    """``Metal/Household Appliances`` -> ``metal_household_appliances``."""
    words = re.findall(r"[^\W_]+", value.lower())
    return "_".join(words)[:128]


def parse_location(lat_text: str | None, lon_text: str | None) -> Location | None:
    """WGS 84 point from two cells; None when absent, unreadable, out of range or 0,0
    (the placeholder some exports use for "no location")."""
    if not lat_text or not lon_text:
        return None
    try:
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        return None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0) or (lat == 0.0 and lon == 0.0):
        return None
    return Location(lat=lat, lon=lon)


def valid_id(value: str, max_len: int) -> bool:
    return 0 < len(value) <= max_len and _ID_CHARS.match(value) is not None


def case_citizen_ref(case_id: str) -> str:
    """A pseudonymous citizen reference for a case whose source names no citizen: keyed
    hash of the case id, so every imported case counts as its own unknown citizen."""
    digest = hmac.new(_IMPORT_CITIZEN_KEY, case_id.encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class ImportedEvent:
    """One contract event of an imported record and its canonical, validated bytes."""

    event: Event
    value: bytes

    @property
    def key(self) -> bytes:
        return self.event.case_id.encode()


def build_event(
    case_id: str, kind: EventType, occurred_at: datetime, source: str, payload: Payload
) -> ImportedEvent:
    """The event ``kind`` of ``case_id``; id ``<case_id>:<kind>`` (deterministic: importing
    the same record twice gives the same ids). Raises RowRejected(``invalid_event``) when
    the contract refuses it."""
    event = Event(
        event_id=f"{case_id}:{kind}",
        case_id=case_id,
        type=kind,
        occurred_at=occurred_at,
        source=source,
        schema_version=1,
        payload=payload,
    )
    try:
        value = encode_event(event)
    except InvalidEvent as exc:
        raise RowRejected("invalid_event", exc.detail) from None
    return ImportedEvent(event, value)


# --------------------------------------------------------------------------- accounting


@dataclass(frozen=True, slots=True)
class Reject:
    """A record not imported: its number (1 = the first data record: the first row after
    a CSV header, the first element of a JSON array), the file line it ends on (CSV; 0
    when not known), a reason code, what was wrong (never the record's free text), and the
    source's id of the record when it had one."""

    record: int
    reason: str
    detail: str
    source_id: str = ""
    line: int = 0

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"record": self.record}
        if self.line:
            out["line"] = self.line
        out.update(reason=self.reason, detail=self.detail, source_id=self.source_id)
        return out


@dataclass
class ImportReport:
    """What an import did: every record read is either imported or rejected."""

    source: str
    records_read: int = 0
    imported: int = 0
    rejects: list[Reject] = field(default_factory=list)
    events_by_type: Counter[str] = field(default_factory=Counter)
    closure_reasons: Counter[str] = field(default_factory=Counter)
    #: Facts about imported records worth knowing (defaults used, fields not carried).
    notes: Counter[str] = field(default_factory=Counter)

    @property
    def rejected(self) -> int:
        return len(self.rejects)

    @property
    def events(self) -> int:
        return sum(self.events_by_type.values())

    def rejected_by_reason(self) -> dict[str, int]:
        return dict(sorted(Counter(r.reason for r in self.rejects).items()))

    def reject(
        self, record: int, reason: str, detail: str, source_id: str = "", line: int = 0
    ) -> None:
        self.rejects.append(Reject(record, reason, detail, source_id, line))

    def accept(self, events: Iterable[ImportedEvent]) -> None:
        self.imported += 1
        for imported in events:
            self.events_by_type[imported.event.type] += 1
            if isinstance(imported.event.payload, ResolvedPayload):
                self.closure_reasons[imported.event.payload.closure_reason] += 1

    def balanced(self) -> bool:
        return self.records_read == self.imported + self.rejected

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "records_read": self.records_read,
            "imported": self.imported,
            "rejected": self.rejected,
            "rejected_by_reason": self.rejected_by_reason(),
            "events": self.events,
            "events_by_type": dict(sorted(self.events_by_type.items())),
            "closure_reasons": dict(sorted(self.closure_reasons.items())),
            "notes": dict(sorted(self.notes.items())),
        }
