"""Decoding raw Kafka bytes into typed events and encoding them back (the hot path).

Validation is fastjsonschema code compiled once, at import, from the schema file. The
envelope dispatches payloads with ``allOf``/``if``/``then`` on ``type``; trying out 14
``if`` branches costs ~35 µs per event in fastjsonschema, so the decoder compiles one
validator per type (the envelope with that type's payload, mechanically derived from the
same schema, see :func:`streams.contract.schema.specialise`) and picks it by ``type``.
Documents with an unknown or missing ``type`` go through the full schema, which reports
the error. Tests check that both paths accept exactly the same documents.

Each per-type schema is also compiled by jsonschema-rs (Rust), which checks a decoded
message in about a quarter of fastjsonschema's time but cannot say why one fails: a
document it accepts is valid; anything else goes on to fastjsonschema, which decides and
explains. Tests hold the two (and the reference ``jsonschema``) to the same verdicts on
JSON; Python objects that are not JSON values (``validate_dict``'s callers may pass enum
members, which the Rust side reads as their values) skip the Rust check.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NoReturn

import fastjsonschema
import jsonschema_rs
import orjson

from streams.contract.generated import (
    PAYLOAD_CLASSES,
    SCHEMA_FINGERPRINT,
    SCHEMA_VERSION,
    EventType,
    Payload,
)
from streams.contract.json_bytes import dumps
from streams.contract.schema import fingerprint, load_schema, specialise, type_branches

# Reason codes of InvalidEvent (and of the dead-letter topic).
REASON_NOT_UTF8: Final = "not_utf8"
REASON_NOT_JSON: Final = "not_json"
REASON_NOT_OBJECT: Final = "not_object"
REASON_UNSUPPORTED_VERSION: Final = "unsupported_version"
REASON_SCHEMA: Final = "schema"
REASONS: Final[tuple[str, ...]] = (
    REASON_NOT_UTF8,
    REASON_NOT_JSON,
    REASON_NOT_OBJECT,
    REASON_UNSUPPORTED_VERSION,
    REASON_SCHEMA,
)

SUPPORTED_VERSIONS: Final[frozenset[int]] = frozenset({SCHEMA_VERSION})

_MAX_DETAIL = 500


@dataclass(frozen=True, slots=True)
class Event:
    """One validated event. ``occurred_at`` is aware, in UTC, truncated to milliseconds."""

    event_id: str
    case_id: str
    type: EventType
    occurred_at: datetime
    source: str
    schema_version: int
    payload: Payload


class InvalidEvent(Exception):
    """A message that is not a valid event of a supported contract version.

    ``reason`` is a machine-readable code (one of :data:`REASONS`), ``detail`` says what is
    wrong (never echoes field values, which may hold personal data), ``field`` is the
    dotted path of the offending field when known (``payload.channel``), ``case_id`` the
    message's case id when it could be read and is a well-formed case id.
    """

    def __init__(
        self,
        reason: str,
        detail: str,
        case_id: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.case_id = case_id
        self.field = field

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.detail, self.case_id, self.field))


class StaleGeneratedCode(RuntimeWarning):
    """generated.py was produced from a different schema: run the code generator."""


# --------------------------------------------------------------------------- compile


def _refuse_remote(uri: str) -> NoReturn:
    raise ValueError(f"the event schema must be self-contained; remote $ref {uri!r} refused")


_HANDLERS: Final = {"http": _refuse_remote, "https": _refuse_remote, "file": _refuse_remote}
_Validator = Callable[[Any], Any]


def _compile(definition: dict[str, Any]) -> _Validator:
    # fastjsonschema rewrites $refs in the definition it is given: hand it a copy.
    validator: _Validator = fastjsonschema.compile(
        copy.deepcopy(definition), handlers=_HANDLERS, use_default=False
    )
    return validator


_SCHEMA: Final = load_schema(SCHEMA_VERSION)
if fingerprint(_SCHEMA) != SCHEMA_FINGERPRINT:
    warnings.warn(
        "streams/contract/generated.py does not match the event schema; "
        "run: python -m streams.contract.codegen",
        StaleGeneratedCode,
        stacklevel=2,
    )
_FULL_VALIDATOR: Final = _compile(_SCHEMA)


def _compile_check(definition: dict[str, Any]) -> Callable[[Any], bool]:
    check: Callable[[Any], bool] = jsonschema_rs.Draft7Validator(
        definition, validate_formats=True, offline=True
    ).is_valid
    return check


def _passes(check: Callable[[Any], bool], data: Any) -> bool:
    try:
        return check(data)
    except Exception:  # a value it cannot convert (a huge int, a non-JSON object)
        return False  # fastjsonschema decides


def _accepted(data: dict[str, Any]) -> bool:
    """The Rust pre-check of a parsed object: True means valid; False, ask fastjsonschema."""
    event_type = data.get("type")
    check = _CHECKS.get(event_type) if type(event_type) is str else None
    return check is not None and _passes(check, data)


_BRANCHES: Final = type_branches(_SCHEMA)
_VALIDATORS: Final[dict[str, _Validator]] = {
    b.event_type: _compile(specialise(_SCHEMA, b))
    for b in _BRANCHES
    if b.event_type in PAYLOAD_CLASSES
}
_CHECKS: Final[dict[str, Callable[[Any], bool]]] = {
    b.event_type: _compile_check(specialise(_SCHEMA, b))
    for b in _BRANCHES
    if b.event_type in PAYLOAD_CLASSES
}
_BUILDERS: Final[dict[str, Callable[[Mapping[str, Any]], Payload]]] = {
    event_type: cls.from_dict for event_type, cls in PAYLOAD_CLASSES.items()
}
# Same meaning as the schema's pattern (fastjsonschema and ECMA-262 anchor $ at the end).
_CASE_ID_RE: Final = re.compile(
    _SCHEMA["definitions"]["case_id"]["pattern"].removesuffix("$") + r"\Z"
)


# --------------------------------------------------------------------------- timestamps


def _parse_aware(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = datetime.fromisoformat(text.upper())  # RFC 3339 allows lower-case t and z
    if parsed.tzinfo is None:
        raise ValueError(f"date-time without an offset: {text!r}")
    return parsed


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)


def timestamp_ms(text: str) -> int:
    """:func:`parse_timestamp` as integer milliseconds since the epoch, without building
    the UTC datetime: for passes that only compare event times (the replay's plan)."""
    return (_parse_aware(text) - _EPOCH) // _MS


def ceil_ms(at: datetime) -> int:
    """An instant as integer milliseconds since the epoch, rounded up: event times (and
    Kafka timestamps) are whole milliseconds, so ``t < at`` holds exactly when
    ``t_ms < ceil_ms(at)``."""
    return -((_EPOCH - at) // _MS)


def ms_instant(ms: int) -> datetime:
    """Integer milliseconds since the epoch as an aware UTC datetime."""
    return _EPOCH + ms * _MS


def parse_timestamp(text: str) -> datetime:
    """Parse a schema-valid RFC 3339 date-time: aware, UTC, truncated to milliseconds.

    Raises ValueError for a string the schema's pattern would accept but the calendar
    does not (never happens after validation: the schema's date-time format checks it).
    """
    parsed = _parse_aware(text)
    if parsed.tzinfo is not UTC:
        parsed = parsed.astimezone(UTC)
    micro = parsed.microsecond
    if micro % 1000:
        parsed = parsed.replace(microsecond=micro - micro % 1000)
    return parsed


def format_timestamp(moment: datetime) -> str:
    """Canonical wire form: UTC, millisecond precision, ``Z`` suffix
    (``2024-03-01T08:15:00.250Z``). Finer precision is truncated. Naive datetimes are
    refused (ValueError)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("occurred_at must be timezone-aware")
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


# --------------------------------------------------------------------------- decode


def _readable_case_id(data: Any) -> str | None:
    if isinstance(data, dict):
        case_id = data.get("case_id")
        if isinstance(case_id, str) and _CASE_ID_RE.match(case_id):
            return case_id
    return None


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _schema_error(data: Any, exc: fastjsonschema.JsonSchemaValueException) -> InvalidEvent:
    name = exc.name or "data"
    path = name[5:] if name.startswith("data.") else ("" if name == "data" else name)
    message = exc.message
    predicate = message[len(name) :].strip() if message.startswith(name) else message
    field: str | None = path or None
    definition = exc.definition if isinstance(exc.definition, dict) else {}
    value = exc.value
    if exc.rule == "required" and isinstance(value, dict):
        missing = [k for k in definition.get("required", []) if k not in value]
        if missing:
            field = _join(path, missing[0])
            predicate = "is required but missing"
            if len(missing) > 1:
                predicate += f" (so are: {', '.join(missing[1:])})"
    elif exc.rule == "additionalProperties" and isinstance(value, dict):
        allowed = definition.get("properties", {})
        extra = sorted(str(k) for k in value if k not in allowed)
        if extra:
            field = _join(path, extra[0])
            predicate = "is not an allowed field"
            if len(extra) > 1:
                predicate += f" (nor are: {', '.join(extra[1:])})"
    detail = f"{field or '(event)'}: {predicate}"
    if len(detail) > _MAX_DETAIL:
        detail = detail[: _MAX_DETAIL - 3] + "..."
    return InvalidEvent(REASON_SCHEMA, detail, _readable_case_id(data), field)


def _not_json(raw: Any, exc: Exception) -> InvalidEvent:
    if isinstance(raw, bytes | bytearray | memoryview):
        try:
            bytes(raw).decode("utf-8")
        except UnicodeDecodeError as bad:
            return InvalidEvent(REASON_NOT_UTF8, f"invalid UTF-8 at byte {bad.start}: {bad.reason}")
    return InvalidEvent(REASON_NOT_JSON, f"not JSON: {exc}"[:_MAX_DETAIL])


def _check_version(data: dict[str, Any], version: Any) -> None:
    # Any number other than a supported version is a version we do not know; a missing or
    # non-numeric version is left to the schema to report (the schema rejects booleans).
    if type(version) in (int, float) and version not in SUPPORTED_VERSIONS:
        supported = ", ".join(str(v) for v in sorted(SUPPORTED_VERSIONS))
        raise InvalidEvent(
            REASON_UNSUPPORTED_VERSION,
            f"schema_version: {version} is not supported (supported: {supported})",
            _readable_case_id(data),
            "schema_version",
        )


def _validate(data: dict[str, Any], parsed: bool = False) -> str:
    """Validate a decoded object; returns its type. Raises InvalidEvent.

    ``parsed``: ``data`` came from ``orjson.loads`` (JSON types only), so the Rust
    pre-check may accept it; other Python objects (enum members, say, which the Rust
    side reads as their values) are judged by fastjsonschema alone."""
    version = data.get("schema_version")
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        _check_version(data, version)
    event_type = data.get("type")
    if parsed and _accepted(data):
        return event_type  # type: ignore[return-value]  # a str the schema accepted
    validate = _VALIDATORS.get(event_type) if type(event_type) is str else None
    try:
        if validate is not None:
            validate(data)
            return event_type  # type: ignore[return-value]  # str, checked above
        _FULL_VALIDATOR(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise _schema_error(data, exc) from None
    raise RuntimeError(  # valid for the schema, but generated.py has no class for the type
        f"event type {event_type!r} is in the schema but not in generated.py: "
        "run python -m streams.contract.codegen"
    )


def decode_event(raw: bytes) -> Event:
    """Validate one Kafka message value and build the typed event.

    Raises :class:`InvalidEvent` with reason ``not_utf8``, ``not_json``, ``not_object``,
    ``unsupported_version`` or ``schema``.
    """
    if not raw:
        raise InvalidEvent(REASON_NOT_JSON, "empty message")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _not_json(raw, exc) from None
    if type(data) is not dict:
        raise InvalidEvent(REASON_NOT_OBJECT, f"expected a JSON object, got {_json_type(data)}")
    event_type = _validate(data, parsed=True)
    return Event(
        data["event_id"],
        data["case_id"],
        event_type,  # type: ignore[arg-type]  # validated against the EventType enum
        _timestamp(data),
        data["source"],
        int(data["schema_version"]),  # 1.0 is the integer 1 (draft-07)
        _BUILDERS[event_type](data["payload"]),
    )


def decode_validated(raw: bytes) -> Event:
    """Build the typed event from bytes that already passed :func:`decode_event`.

    For the worker's internal topic, which only the ingest step writes: it skips the
    schema check (about three quarters of the cost of a decode). Bytes that are not
    shaped like a valid event raise :class:`InvalidEvent` via :func:`decode_event`,
    so a stray writer still gets a dead letter, not a crash.
    """
    try:
        data = orjson.loads(raw)
        event_type = data["type"]
        return Event(
            data["event_id"],
            data["case_id"],
            event_type,
            parse_timestamp(data["occurred_at"]),
            data["source"],
            int(data["schema_version"]),
            _BUILDERS[event_type](data["payload"]),
        )
    except Exception:
        return decode_event(raw)


def validate_dict(data: Any) -> None:
    """Check an already-parsed JSON value against the contract; raises InvalidEvent."""
    if type(data) is not dict:
        raise InvalidEvent(REASON_NOT_OBJECT, f"expected a JSON object, got {_json_type(data)}")
    _validate(data)
    _timestamp(data)


def conforms(data: dict[str, Any]) -> bool:
    """Whether an object ``orjson.loads`` made of message bytes is a valid event: the
    verdict of :func:`decode_event`, at the Rust pre-check's cost for a valid one."""
    if _accepted(data):
        return True
    try:
        validate_dict(data)
    except InvalidEvent:
        return False
    return True


def _timestamp(data: dict[str, Any]) -> datetime:
    try:
        return parse_timestamp(data["occurred_at"])
    except ValueError as exc:  # pragma: no cover - the date-time format rejects these first
        raise InvalidEvent(
            REASON_SCHEMA, f"occurred_at: {exc}", _readable_case_id(data), "occurred_at"
        ) from None


# --------------------------------------------------------------------------- encode


def event_to_dict(event: Event) -> dict[str, Any]:
    """The wire form of ``event`` as a dict (``occurred_at`` as its canonical string,
    absent optional fields omitted). Raises ValueError for a naive ``occurred_at`` or a
    payload whose class does not match ``event.type``."""
    if event.type != event.payload.EVENT_TYPE:
        raise ValueError(
            f"event {event.event_id}: type {event.type!r} but a "
            f"{type(event.payload).__name__} payload"
        )
    return {
        "schema_version": event.schema_version,
        "event_id": event.event_id,
        "case_id": event.case_id,
        "type": event.type,
        "occurred_at": format_timestamp(event.occurred_at),
        "source": event.source,
        "payload": event.payload.to_dict(),
    }


def encode_event(event: Event, *, validate: bool = True) -> bytes:
    """Canonical JSON bytes of ``event`` (sorted keys, no whitespace, UTC millisecond
    ``Z`` timestamps); ``decode_event(encode_event(e)) == e`` for every decoded event.

    With ``validate`` (the default) the output is checked against the schema and an
    :class:`InvalidEvent` is raised rather than emitting an event consumers would reject.
    """
    data = event_to_dict(event)
    if validate:
        validate_dict(data)
    return dumps(data, option=orjson.OPT_SORT_KEYS)
