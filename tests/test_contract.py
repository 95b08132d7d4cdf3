"""The event contract: schema, generated model, decoder and encoder (docs/events.md)."""

from __future__ import annotations

import copy
import dataclasses
import pickle
import re
import subprocess
import sys
import types
import typing
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import fastjsonschema
import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streams.contract as contract
from streams.contract import (
    EVENT_TYPES,
    LIFECYCLE_RANK,
    PAYLOAD_CLASSES,
    SCHEMA_VERSION,
    CallbackPayload,
    ClosedPayload,
    DeadlineExtendedPayload,
    Event,
    InvalidEvent,
    Location,
    OpenedPayload,
    RatedPayload,
    ResumedPayload,
    codec,
    codegen,
    decode_event,
    encode_event,
    event_to_dict,
    format_timestamp,
    generated,
    load_schema,
    parse_timestamp,
    validate_dict,
)
from streams.contract.schema import (
    SCHEMA_DIR_ENV,
    SchemaNotFound,
    SchemaShapeError,
    fingerprint,
    schema_path,
    specialise,
    type_branches,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = ROOT / "schemas" / "events" / "v1" / "examples"
SCHEMA = load_schema()
DEFINITIONS: dict[str, Any] = SCHEMA["definitions"]
VENV_BIN = Path(sys.executable).parent

# The type table of docs/architecture.md, in its (lifecycle) order.
SPEC_TYPES = [
    "opened",
    "dispatched",
    "signed_for",
    "first_contact",
    "transferred",
    "returned",
    "paused",
    "resumed",
    "deadline_extended",
    "resolved",
    "closed",
    "callback",
    "rated",
    "reopened",
]


def example(event_type: str) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads((EXAMPLES_DIR / f"{event_type}.json").read_bytes())
    return loaded


def raw(data: Any) -> bytes:
    return orjson.dumps(data)


# --------------------------------------------------------------------------- independent
# validators: jsonschema (a different implementation) in the contract's dialect, and the
# full schema compiled by fastjsonschema without the decoder's per-type specialisation.

_DOLLAR = re.compile(r"(?<!\\)\$")


def _ecma_pattern(
    validator: Any, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    # ECMA-262 (what JSON Schema specifies): $ is the end of input, not "before a final \n".
    if validator.is_type(instance, "string") and not re.search(
        _DOLLAR.sub(r"\\Z", pattern), instance
    ):
        yield jsonschema.ValidationError(f"does not match {pattern!r}")


_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(instance: object) -> bool:
    if isinstance(instance, str):
        datetime.fromisoformat(instance.upper())  # the calendar: the pattern checks the shape
    return True


_StrictValidator = jsonschema.validators.extend(
    jsonschema.Draft7Validator,
    validators={"pattern": _ecma_pattern},
)
JSONSCHEMA = _StrictValidator(SCHEMA, format_checker=_FORMATS)
# (fastjsonschema rewrites the $refs of the schema it compiles: give it a copy)
FULL = fastjsonschema.compile(copy.deepcopy(SCHEMA), use_default=False)


def full_valid(data: Any) -> bool:
    try:
        FULL(data)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def decodes(data: Any) -> bool:
    try:
        decode_event(raw(data))
    except InvalidEvent as err:
        assert err.reason in ("not_object", "schema", "unsupported_version"), err
        return False
    return True


# --------------------------------------------------------------------------- examples


def test_one_example_per_type() -> None:
    assert sorted(p.stem for p in EXAMPLES_DIR.glob("*.json")) == sorted(EVENT_TYPES)
    for event_type in EVENT_TYPES:
        assert example(event_type)["type"] == event_type


@pytest.mark.parametrize("event_type", SPEC_TYPES)
def test_example_validates_and_round_trips(event_type: str) -> None:
    data = example(event_type)
    JSONSCHEMA.validate(data)
    assert full_valid(data)
    event = decode_event(raw(data))
    assert event.type == event_type
    assert isinstance(event.payload, PAYLOAD_CLASSES[event_type])
    assert event.case_id == data["case_id"] and event.event_id == data["event_id"]
    assert event.schema_version == 1 and event.source == data["source"]
    assert event.occurred_at.tzinfo is UTC
    assert event.occurred_at.microsecond % 1000 == 0
    assert event.occurred_at == datetime.fromisoformat(data["occurred_at"])
    encoded = encode_event(event)
    assert decode_event(encoded) == event
    assert encode_event(decode_event(encoded)) == encoded  # canonical: a fixed point
    wire = event_to_dict(event)
    assert wire["payload"] == data["payload"]
    JSONSCHEMA.validate(wire)
    assert orjson.loads(encoded) == wire


def test_opened_example_decodes_to_typed_values() -> None:
    event = decode_event(raw(example("opened")))
    assert event.occurred_at == datetime(2024, 3, 1, 8, 15, 0, 250_000, tzinfo=UTC)
    assert event.payload == OpenedPayload(
        channel="hotline",
        category="noise",
        urgency="normal",
        district="Chaoyang",
        sub_district="Jianwai",
        citizen_ref="9f86d081884c7d659a2feaa0c55ad015",
        location=Location(lat=39.9075, lon=116.4574),
    )
    assert encode_event(event) == (
        b'{"case_id":"BJ-2024-000123","event_id":"evt-BJ-2024-000123-00",'
        b'"occurred_at":"2024-03-01T08:15:00.250Z","payload":{"category":"noise",'
        b'"channel":"hotline","citizen_ref":"9f86d081884c7d659a2feaa0c55ad015",'
        b'"district":"Chaoyang","location":{"lat":39.9075,"lon":116.4574},'
        b'"sub_district":"Jianwai","urgency":"normal"},"schema_version":1,'
        b'"source":"simulator","type":"opened"}'
    )


def test_optional_fields_absent_decode_to_none_and_stay_absent() -> None:
    data = example("opened")
    del data["payload"]["location"]
    event = decode_event(raw(data))
    assert isinstance(event.payload, OpenedPayload) and event.payload.location is None
    assert "location" not in event_to_dict(event)["payload"]
    data = example("callback")
    data["payload"] = {"reached": False}
    event = decode_event(raw(data))
    assert event.payload == CallbackPayload(reached=False, citizen_confirms_solved=None)
    assert encode_event(event).endswith(
        b'"payload":{"reached":false},"schema_version":1,"source":"simulator","type":"callback"}'
    )


def test_integral_floats_are_integers() -> None:
    # draft-07: 5.0 is an integer; the typed model and the canonical encoding say 5.
    data = example("deadline_extended")
    data["schema_version"] = 1.0
    data["payload"]["extension_seconds"] = 3600.0
    event = decode_event(raw(data))
    assert type(event.schema_version) is int and event.schema_version == 1
    assert event.payload == DeadlineExtendedPayload("resolution", 3600, "hotline-supervisor")
    assert type(event.payload.extension_seconds) is int
    assert b'"extension_seconds":3600,' in encode_event(event)
    assert b'"schema_version":1,' in encode_event(event)
    data = example("rated")
    data["payload"]["score"] = 4.0
    payload = decode_event(raw(data)).payload
    assert isinstance(payload, RatedPayload) and type(payload.score) is int


def test_integer_coordinates_become_floats() -> None:
    data = example("opened")
    data["payload"]["location"] = {"lat": 40, "lon": -74}
    event = decode_event(raw(data))
    assert isinstance(event.payload, OpenedPayload)
    assert event.payload.location == Location(40.0, -74.0)
    assert type(event.payload.location.lat) is float


# --------------------------------------------------------------------------- rejections


def mutated(event_type: str, change: Callable[[dict[str, Any]], object]) -> bytes:
    data = example(event_type)
    change(data)
    return raw(data)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = data
        for key in parents:
            target = target[key]
        target[last] = value

    return apply


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def apply(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = data
        for key in parents:
            target = target[key]
        del target[last]

    return apply


CASE = "BJ-2024-000123"
INVALID: list[tuple[str, bytes, str, str | None, str | None]] = [
    # (name, raw bytes, reason, field, case_id)
    ("empty", b"", "not_json", None, None),
    ("truncated json", b'{"schema_version": 1, "event_id": ', "not_json", None, None),
    ("trailing garbage", raw(example("closed")) + b"}", "not_json", None, None),
    ("python literal", b"{'a': 1}", "not_json", None, None),
    ("NaN", b'{"schema_version": NaN}', "not_json", None, None),
    (
        "number overflowing a double",
        b'{"schema_version": 1e400}',
        "not_json",
        None,
        None,
    ),
    (
        "version beyond 64 bits (parsed as a float)",
        raw(example("closed")).replace(b'"schema_version":1', b'"schema_version":1' + b"0" * 30),
        "unsupported_version",
        "schema_version",
        CASE,
    ),
    ("latin-1 bytes", '{"source": "caf\u00e9"}'.encode("latin-1"), "not_utf8", None, None),
    ("encoded surrogate", b'{"a": "\xed\xa0\x80"}', "not_utf8", None, None),
    ("array", b"[1, 2]", "not_object", None, None),
    ("string", b'"opened"', "not_object", None, None),
    ("null", b"null", "not_object", None, None),
    (
        "version 2",
        mutated("opened", _set("schema_version", 2)),
        "unsupported_version",
        "schema_version",
        CASE,
    ),
    (
        "version 0",
        mutated("closed", _set("schema_version", 0)),
        "unsupported_version",
        "schema_version",
        CASE,
    ),
    (
        "version as string",
        mutated("closed", _set("schema_version", "1")),
        "schema",
        "schema_version",
        CASE,
    ),
    (
        "version true",
        mutated("closed", _set("schema_version", True)),
        "schema",
        "schema_version",
        CASE,
    ),
    (
        "version 2.0",
        mutated("closed", _set("schema_version", 2.0)),
        "unsupported_version",
        "schema_version",
        CASE,
    ),
    (
        "version missing",
        mutated("closed", _drop("schema_version")),
        "schema",
        "schema_version",
        CASE,
    ),
    ("unknown type", mutated("closed", _set("type", "escalated")), "schema", "type", CASE),
    ("type missing", mutated("closed", _drop("type")), "schema", "type", CASE),
    ("type not a string", mutated("closed", _set("type", ["closed"])), "schema", "type", CASE),
    (
        "payload of another type",
        mutated("resolved", _set("type", "dispatched")),
        "schema",
        "payload.closure_reason",
        CASE,
    ),
    ("payload missing", mutated("closed", _drop("payload")), "schema", "payload", CASE),
    ("payload not an object", mutated("closed", _set("payload", [])), "schema", "payload", CASE),
    (
        "missing payload field",
        mutated("opened", _drop("payload.urgency")),
        "schema",
        "payload.urgency",
        CASE,
    ),
    ("missing envelope field", mutated("opened", _drop("source")), "schema", "source", CASE),
    (
        "citizen_name in opened",
        mutated("opened", _set("payload.citizen_name", "Li Lei")),
        "schema",
        "payload.citizen_name",
        CASE,
    ),
    (
        "phone at top level",
        mutated("opened", _set("phone", "13800138000")),
        "schema",
        "phone",
        CASE,
    ),
    (
        "extra field in location",
        mutated("opened", _set("payload.location.alt", 12)),
        "schema",
        "payload.location.alt",
        CASE,
    ),
    (
        "note in closed",
        mutated("closed", _set("payload.note", "fixed it")),
        "schema",
        "payload.note",
        CASE,
    ),
    (
        "timestamp without offset",
        mutated("opened", _set("occurred_at", "2024-03-01T08:15:00")),
        "schema",
        "occurred_at",
        CASE,
    ),
    (
        "timestamp offset without colon",
        mutated("opened", _set("occurred_at", "2024-03-01T08:15:00+0800")),
        "schema",
        "occurred_at",
        CASE,
    ),
    (
        "timestamp with space",
        mutated("opened", _set("occurred_at", "2024-03-01 08:15:00Z")),
        "schema",
        "occurred_at",
        CASE,
    ),
    (
        "date only",
        mutated("opened", _set("occurred_at", "2024-03-01")),
        "schema",
        "occurred_at",
        CASE,
    ),
    (
        "epoch number",
        mutated("opened", _set("occurred_at", 1709280900)),
        "schema",
        "occurred_at",
        CASE,
    ),
    (
        "not a calendar date",
        mutated("opened", _set("occurred_at", "2023-02-29T10:00:00Z")),
        "schema",
        "occurred_at",
        CASE,
    ),
    (
        "leap second",
        mutated("opened", _set("occurred_at", "2016-12-31T23:59:60Z")),
        "schema",
        "occurred_at",
        CASE,
    ),
    (
        "year out of range",
        mutated("opened", _set("occurred_at", "0001-01-01T00:00:00Z")),
        "schema",
        "occurred_at",
        CASE,
    ),
    (
        "bad channel",
        mutated("opened", _set("payload.channel", "fax")),
        "schema",
        "payload.channel",
        CASE,
    ),
    (
        "enum in upper case",
        mutated("opened", _set("payload.urgency", "URGENT")),
        "schema",
        "payload.urgency",
        CASE,
    ),
    (
        "bad closure reason",
        mutated("resolved", _set("payload.closure_reason", "done")),
        "schema",
        "payload.closure_reason",
        CASE,
    ),
    (
        "citizen_ref is a phone",
        mutated("opened", _set("payload.citizen_ref", "13800138000")),
        "schema",
        "payload.citizen_ref",
        CASE,
    ),
    (
        "citizen_ref is a long phone",
        mutated("opened", _set("payload.citizen_ref", "+86-138-0013-8000")),
        "schema",
        "payload.citizen_ref",
        CASE,
    ),
    (
        "citizen_ref is a name",
        mutated("opened", _set("payload.citizen_ref", "Zhang San Feng Li")),
        "schema",
        "payload.citizen_ref",
        CASE,
    ),
    (
        "citizen_ref upper-case hex",
        mutated("opened", _set("payload.citizen_ref", "9F86D081884C7D659A2FEAA0C55AD015")),
        "schema",
        "payload.citizen_ref",
        CASE,
    ),
    (
        "citizen_ref too long",
        mutated("opened", _set("payload.citizen_ref", "a" * 65)),
        "schema",
        "payload.citizen_ref",
        CASE,
    ),
    ("event_id too short", mutated("closed", _set("event_id", "e1")), "schema", "event_id", CASE),
    (
        "event_id with space",
        mutated("closed", _set("event_id", "evt 00000001")),
        "schema",
        "event_id",
        CASE,
    ),
    (
        "event_id with trailing newline",
        mutated("closed", _set("event_id", "evt-00000001\n")),
        "schema",
        "event_id",
        CASE,
    ),
    ("case_id empty", mutated("closed", _set("case_id", "")), "schema", "case_id", None),
    ("case_id too long", mutated("closed", _set("case_id", "c" * 65)), "schema", "case_id", None),
    ("case_id with slash", mutated("closed", _set("case_id", "a/b")), "schema", "case_id", None),
    (
        "empty label",
        mutated("dispatched", _set("payload.agency", "")),
        "schema",
        "payload.agency",
        CASE,
    ),
    (
        "label with newline",
        mutated("dispatched", _set("payload.agency", "roads\nnorth")),
        "schema",
        "payload.agency",
        CASE,
    ),
    (
        "label too long",
        mutated("opened", _set("payload.category", "x" * 129)),
        "schema",
        "payload.category",
        CASE,
    ),
    (
        "null optional field",
        mutated("dispatched", _set("payload.sub_unit", None)),
        "schema",
        "payload.sub_unit",
        CASE,
    ),
    (
        "latitude out of range",
        mutated("opened", _set("payload.location.lat", 91.0)),
        "schema",
        "payload.location.lat",
        CASE,
    ),
    (
        "location missing lon",
        mutated("opened", _drop("payload.location.lon")),
        "schema",
        "payload.location.lon",
        CASE,
    ),
    (
        "zero extension",
        mutated("deadline_extended", _set("payload.extension_seconds", 0)),
        "schema",
        "payload.extension_seconds",
        CASE,
    ),
    (
        "fractional extension",
        mutated("deadline_extended", _set("payload.extension_seconds", 3600.5)),
        "schema",
        "payload.extension_seconds",
        CASE,
    ),
    (
        "extension over a year",
        mutated("deadline_extended", _set("payload.extension_seconds", 31622401)),
        "schema",
        "payload.extension_seconds",
        CASE,
    ),
    ("score 6", mutated("rated", _set("payload.score", 6)), "schema", "payload.score", CASE),
    (
        "score as string",
        mutated("rated", _set("payload.score", "5")),
        "schema",
        "payload.score",
        CASE,
    ),
    (
        "reached as string",
        mutated("callback", _set("payload.reached", "yes")),
        "schema",
        "payload.reached",
        CASE,
    ),
    (
        "confirmed though not reached",
        mutated("callback", _set("payload.reached", False)),
        "schema",
        "payload.reached",
        CASE,
    ),
    ("source empty", mutated("closed", _set("source", "")), "schema", "source", CASE),
    (
        "duplicate_of not a case id",
        mutated("resolved", _set("payload.duplicate_of", "the other one")),
        "schema",
        "payload.duplicate_of",
        CASE,
    ),
]


@pytest.mark.parametrize(
    ("message", "reason", "field", "case_id"),
    [pytest.param(m, r, f, c, id=name) for name, m, r, f, c in INVALID],
)
def test_invalid_input_is_rejected_with_reason(
    message: bytes, reason: str, field: str | None, case_id: str | None
) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_event(message)
    err = caught.value
    assert err.reason == reason, err.detail
    assert err.reason in contract.REASONS
    assert err.field == field, err.detail
    assert err.case_id == case_id
    assert err.detail
    if field is not None:
        assert err.detail.startswith(f"{field}: ")
    assert str(err) == f"{reason}: {err.detail}"


def test_rejection_detail_does_not_echo_personal_values() -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_event(mutated("opened", _set("payload.citizen_ref", "+86-138-0013-8000")))
    assert "138" not in caught.value.detail
    with pytest.raises(InvalidEvent) as caught:
        decode_event(mutated("opened", _set("payload.citizen_name", "Li Lei")))
    assert "Li Lei" not in caught.value.detail


def test_invalid_event_pickles() -> None:
    err = InvalidEvent("schema", "payload.channel: bad", "c-1", "payload.channel")
    copy_ = pickle.loads(pickle.dumps(err))
    assert (copy_.reason, copy_.detail, copy_.case_id, copy_.field) == (
        "schema",
        "payload.channel: bad",
        "c-1",
        "payload.channel",
    )


# --------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01T08:15:00Z", datetime(2024, 3, 1, 8, 15, tzinfo=UTC)),
        ("2024-03-01t08:15:00z", datetime(2024, 3, 1, 8, 15, tzinfo=UTC)),
        ("2024-03-01T16:15:00+08:00", datetime(2024, 3, 1, 8, 15, tzinfo=UTC)),
        ("2024-03-01T00:15:00-08:00", datetime(2024, 3, 1, 8, 15, tzinfo=UTC)),
        ("2024-03-01T08:15:00-00:00", datetime(2024, 3, 1, 8, 15, tzinfo=UTC)),
        ("2024-03-01T08:15:00.1Z", datetime(2024, 3, 1, 8, 15, 0, 100_000, tzinfo=UTC)),
        ("2024-03-01T08:15:00.1239Z", datetime(2024, 3, 1, 8, 15, 0, 123_000, tzinfo=UTC)),
        ("2024-03-01T08:15:00.999999999Z", datetime(2024, 3, 1, 8, 15, 0, 999_000, tzinfo=UTC)),
        ("2024-01-01T05:00:00.0005+05:30", datetime(2023, 12, 31, 23, 30, tzinfo=UTC)),
        ("2024-02-29T23:59:59.999+23:59", datetime(2024, 2, 29, 0, 0, 59, 999_000, tzinfo=UTC)),
    ],
)
def test_timestamps_normalised_to_utc_milliseconds(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected and parsed.tzinfo is UTC
    data = example("closed")
    data["occurred_at"] = text
    assert decode_event(raw(data)).occurred_at == expected


def test_format_timestamp() -> None:
    assert format_timestamp(datetime(2024, 3, 1, 8, 15, tzinfo=UTC)) == "2024-03-01T08:15:00.000Z"
    plus8 = timezone(timedelta(hours=8))
    moment = datetime(2024, 3, 1, 16, 15, 0, 123_987, tzinfo=plus8)
    assert format_timestamp(moment) == "2024-03-01T08:15:00.123Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        format_timestamp(datetime(2024, 3, 1, 8, 15))


# --------------------------------------------------------------------------- encoding


def _event(payload: Any, type_: str, at: datetime | None = None) -> Event:
    return Event(
        event_id="evt-00000001",
        case_id="c-1",
        type=type_,  # type: ignore[arg-type]
        occurred_at=at or datetime(2024, 3, 1, 8, 15, tzinfo=UTC),
        source="test",
        schema_version=1,
        payload=payload,
    )


def test_encode_refuses_events_consumers_would_reject() -> None:
    bad_ref = OpenedPayload("hotline", "noise", "normal", "d", "s", "13800138000")
    with pytest.raises(InvalidEvent) as caught:
        encode_event(_event(bad_ref, "opened"))
    assert caught.value.reason == "schema" and caught.value.field == "payload.citizen_ref"
    with pytest.raises(ValueError, match="ResumedPayload"):
        encode_event(_event(ResumedPayload(), "closed"))
    with pytest.raises(ValueError, match="timezone-aware"):
        encode_event(_event(ClosedPayload(), "closed", datetime(2024, 3, 1)))
    with pytest.raises(InvalidEvent) as caught:
        encode_event(_event(CallbackPayload(False, True), "callback"))
    assert caught.value.field == "payload.reached"
    # Without validation the caller takes responsibility (e.g. re-encoding decoded events).
    assert b'"reached":false' in encode_event(
        _event(CallbackPayload(False, True), "callback"), validate=False
    )


def test_encode_truncates_to_milliseconds_and_converts_to_utc() -> None:
    moment = datetime(2024, 3, 1, 16, 15, 0, 123_999, tzinfo=timezone(timedelta(hours=8)))
    encoded = encode_event(_event(ClosedPayload(), "closed", moment))
    assert b'"occurred_at":"2024-03-01T08:15:00.123Z"' in encoded
    assert decode_event(encoded).occurred_at == datetime(2024, 3, 1, 8, 15, 0, 123_000, tzinfo=UTC)


def test_validate_dict() -> None:
    validate_dict(example("rated"))
    with pytest.raises(InvalidEvent) as caught:
        validate_dict([])
    assert caught.value.reason == "not_object"


# --------------------------------------------------------------------------- schema + codegen


def test_schema_is_valid_draft7() -> None:
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    assert jsonschema.validators.validator_for(SCHEMA) is jsonschema.Draft7Validator


def test_every_object_forbids_additional_properties() -> None:
    assert SCHEMA["additionalProperties"] is False
    objects = {n: d for n, d in DEFINITIONS.items() if d.get("type") == "object"}
    assert len(objects) == len(EVENT_TYPES) + 1  # the payloads and location
    for name, definition in objects.items():
        assert definition["additionalProperties"] is False, name


def test_schema_dispatch_matches_spec_table() -> None:
    assert list(EVENT_TYPES) == SPEC_TYPES
    assert DEFINITIONS["event_type"]["enum"] == SPEC_TYPES
    assert [b.event_type for b in type_branches(SCHEMA)] == SPEC_TYPES
    assert {t: i for i, t in enumerate(SPEC_TYPES)} == LIFECYCLE_RANK
    assert list(PAYLOAD_CLASSES) == SPEC_TYPES
    for event_type, cls in PAYLOAD_CLASSES.items():
        assert event_type == cls.EVENT_TYPE


def test_generated_module_is_up_to_date() -> None:
    committed = (ROOT / "streams" / "contract" / "generated.py").read_text(encoding="utf-8")
    assert codegen.render(load_schema()) == committed, (
        "generated.py is stale: run python -m streams.contract.codegen"
    )
    assert fingerprint(SCHEMA) == generated.SCHEMA_FINGERPRINT
    assert codegen.main(["--check"]) == 0


def test_codegen_is_deterministic_and_writes(tmp_path: Path) -> None:
    first = codegen.render(load_schema())
    assert codegen.render(load_schema()) == first
    target = tmp_path / "generated.py"
    assert codegen.main(["--check", "--output", str(target)]) == 1  # missing = stale
    assert codegen.main(["--output", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == first
    assert codegen.main(["--check", "--output", str(target)]) == 0


def test_generated_module_passes_ruff_and_mypy_strict() -> None:
    path = str(ROOT / "streams" / "contract" / "generated.py")
    for command in (
        [str(VENV_BIN / "ruff"), "check", path],
        [str(VENV_BIN / "ruff"), "format", "--check", path],
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", path],
    ):
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        assert result.returncode == 0, (command, result.stdout, result.stderr)


def test_generated_enums_match_schema() -> None:
    pairs = {
        "event_type": generated.EVENT_TYPES,
        "channel": generated.CHANNELS,
        "urgency": generated.URGENCIES,
        "contact_method": generated.CONTACT_METHODS,
        "transfer_reason": generated.TRANSFER_REASONS,
        "return_reason": generated.RETURN_REASONS,
        "pause_reason": generated.PAUSE_REASONS,
        "deadline_target": generated.DEADLINE_TARGETS,
        "closure_reason": generated.CLOSURE_REASONS,
        "satisfaction_level": generated.SATISFACTION_LEVELS,
        "reopen_reason": generated.REOPEN_REASONS,
    }
    assert set(pairs) == {n for n, d in DEFINITIONS.items() if "enum" in d}
    for name, values in pairs.items():
        assert list(values) == DEFINITIONS[name]["enum"], name
        alias = getattr(generated, codegen.camel(name))
        assert typing.get_args(alias) == values, name


def test_generated_dataclasses_match_schema() -> None:
    for branch in type_branches(SCHEMA):
        cls = PAYLOAD_CLASSES[branch.event_type]
        definition = DEFINITIONS[branch.definition_name]
        assert cls.__name__ == codegen.camel(branch.definition_name)
        params = cls.__dataclass_params__  # type: ignore[union-attr]
        assert params.frozen and hasattr(cls, "__slots__")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        assert set(fields) == set(definition.get("properties", {}))
        required = set(definition.get("required", []))
        for name, field in fields.items():
            assert (field.default is dataclasses.MISSING) == (name in required), name
            if name not in required:
                assert field.default is None


def test_codegen_rejects_schemas_of_another_shape() -> None:
    broken = load_schema()
    broken["allOf"].pop()
    with pytest.raises(SchemaShapeError, match="event_type"):
        codegen.render(broken)
    broken = load_schema()
    broken["definitions"]["closed_payload"]["additionalProperties"] = True
    with pytest.raises(SchemaShapeError, match="additionalProperties"):
        codegen.render(broken)
    broken = load_schema()
    broken["allOf"][0]["then"]["properties"]["payload"]["$ref"] = "other.json#/x"
    with pytest.raises(SchemaShapeError, match="local"):
        codegen.render(broken)


def test_codegen_follows_schema_changes() -> None:
    changed = load_schema()
    changed["definitions"]["channel"]["enum"].append("fax")
    changed["definitions"]["closed_payload"]["properties"]["by"] = {"$ref": "#/definitions/label"}
    text = codegen.render(changed)
    assert '"fax"' in text and "by: str | None = None" in text
    module = types.ModuleType("generated_variant")
    sys.modules[module.__name__] = module  # dataclasses resolve string ClassVars through it
    try:
        exec(compile(text, "generated_variant.py", "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]
    closed = module.ClosedPayload.from_dict({"by": "ops"})
    assert closed.to_dict() == {"by": "ops"}


def test_schema_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert schema_path() == ROOT / "schemas" / "events" / "v1" / "event.schema.json"
    assert load_schema() == SCHEMA and load_schema() is not load_schema()
    monkeypatch.setenv(SCHEMA_DIR_ENV, str(tmp_path))
    with pytest.raises(SchemaNotFound, match=SCHEMA_DIR_ENV):
        schema_path()
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "event.schema.json").write_text("{}")
    assert schema_path() == tmp_path / "v1" / "event.schema.json"


def test_specialised_validators_cover_each_type_only() -> None:
    for branch in type_branches(SCHEMA):
        validator = fastjsonschema.compile(specialise(SCHEMA, branch), use_default=False)
        validator(example(branch.event_type))
        other = example("opened" if branch.event_type != "opened" else "closed")
        with pytest.raises(fastjsonschema.JsonSchemaValueException):
            validator(other)


def test_contract_imports_no_adapter() -> None:
    code = (
        "import sys, streams.contract, streams.contract.codegen;"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('faust', 'mode', 'aiokafka', 'clickhouse_connect', 'chdb', 'jsonschema', 'pydantic')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- property tests

_CONTROL = "".join(chr(c) for c in range(0x20)) + "\x7f"


def _resolve(prop: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in prop:
        prop = DEFINITIONS[prop["$ref"].rsplit("/", 1)[-1]]
    return prop


def _string_strategy(prop: dict[str, Any]) -> st.SearchStrategy[str]:
    pattern = prop.get("pattern", "")
    if pattern == DEFINITIONS["label"]["pattern"]:
        return st.text(
            st.characters(codec="utf-8", exclude_characters=_CONTROL),
            min_size=prop["minLength"],
            max_size=prop["maxLength"],
        )
    return st.from_regex(pattern, fullmatch=True)


def _scalar_strategy(hint: Any, prop: dict[str, Any]) -> st.SearchStrategy[Any]:
    if typing.get_origin(hint) is typing.Literal:
        return st.sampled_from(typing.get_args(hint))
    if dataclasses.is_dataclass(hint):
        return _dataclass_strategy(hint, _resolve(prop))  # type: ignore[arg-type]
    if hint is bool:
        return st.booleans()
    if hint is int:
        return st.integers(prop.get("minimum"), prop.get("maximum"))
    if hint is float:
        return st.floats(prop.get("minimum"), prop.get("maximum"), allow_nan=False)
    assert hint is str, hint
    return _string_strategy(prop)


def _dataclass_strategy(cls: type[Any], definition: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of a generated dataclass: field types from the class (enums as Literal),
    string/number constraints from the schema property of the same name."""
    hints = typing.get_type_hints(cls, vars(generated))
    kwargs: dict[str, st.SearchStrategy[Any]] = {}
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        prop = _resolve(definition["properties"][field.name])
        if typing.get_origin(hint) in (typing.Union, types.UnionType):  # X | None: optional
            (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
            kwargs[field.name] = st.none() | _scalar_strategy(inner, prop)
        else:
            kwargs[field.name] = _scalar_strategy(hint, prop)
    strategy = st.builds(cls, **kwargs)
    if cls is CallbackPayload:  # the one cross-field rule: no answer when not reached
        strategy = strategy.filter(lambda p: p.reached or p.citizen_confirms_solved is None)
    return strategy


PAYLOADS = st.one_of(
    [
        _dataclass_strategy(PAYLOAD_CLASSES[b.event_type], DEFINITIONS[b.definition_name])
        for b in type_branches(SCHEMA)
    ]
)
MOMENTS = st.datetimes(
    min_value=datetime(1900, 1, 2), max_value=datetime(2299, 12, 30), timezones=st.just(UTC)
).map(lambda m: m.replace(microsecond=m.microsecond // 1000 * 1000))


@st.composite
def events(draw: st.DrawFn) -> Event:
    payload = draw(PAYLOADS)
    return Event(
        event_id=draw(_string_strategy(DEFINITIONS["event_id"])),
        case_id=draw(_string_strategy(DEFINITIONS["case_id"])),
        type=payload.EVENT_TYPE,
        occurred_at=draw(MOMENTS),
        source=draw(_string_strategy(SCHEMA["properties"]["source"])),
        schema_version=SCHEMA_VERSION,
        payload=payload,
    )


@settings(max_examples=400, deadline=None)
@given(events())
def test_random_valid_events_round_trip(event: Event) -> None:
    encoded = encode_event(event)
    assert decode_event(encoded) == event
    wire = orjson.loads(encoded)
    JSONSCHEMA.validate(wire)
    assert full_valid(wire)
    assert wire == event_to_dict(event)


@settings(max_examples=300, deadline=None)
@given(
    local=st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2299, 12, 30)),
    offset_minutes=st.integers(-(23 * 60 + 59), 23 * 60 + 59),
    extra_digits=st.text("0123456789", min_size=3, max_size=3),
    digits=st.integers(0, 9),
    lower=st.booleans(),
    zulu=st.booleans(),
)
def test_any_rfc3339_spelling_decodes_to_utc_milliseconds(
    local: datetime, offset_minutes: int, extra_digits: str, digits: int, lower: bool, zulu: bool
) -> None:
    if zulu:
        offset_minutes = 0
        suffix = "Z"
    else:
        sign = "+" if offset_minutes >= 0 else "-"
        hours, minutes = divmod(abs(offset_minutes), 60)
        suffix = f"{sign}{hours:02d}:{minutes:02d}"
    fraction = (f"{local.microsecond:06d}" + extra_digits)[:digits]
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + suffix
    if lower:
        text = text.lower()
    millis = int((fraction + "000")[:3])
    expected = local.replace(microsecond=millis * 1000) - timedelta(minutes=offset_minutes)
    data = example("closed")
    data["occurred_at"] = text
    assert JSONSCHEMA.is_valid(data) and full_valid(data)
    assert decode_event(raw(data)).occurred_at == expected.replace(tzinfo=UTC)


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
# Values that are valid somewhere in the contract, to make near misses likely.
PLAUSIBLE = st.one_of(
    JSON_VALUES,
    st.sampled_from([v for d in DEFINITIONS.values() for v in d.get("enum", [])]),
    st.sampled_from([0, 1, 2, 5, 6, -1, 1.0, 5.0, 90, 90.5, 31622400, 31622401, True, False]),
    st.sampled_from(
        [
            "2024-03-01T08:15:00Z",
            "2024-03-01T08:15:00",
            "2024-02-30T00:00:00Z",
            "evt-00000001",
            "evt-0000001\n",
            "0123456789abcdef",
            "0123456789ABCDEF",
            "c",
            "",
            "x" * 129,
        ]
    ),
    st.sampled_from(
        [
            {},
            {"reached": True},
            {"reached": False, "citizen_confirms_solved": True},
            {"lat": 1, "lon": 2},
            {"agency": "roads"},
            {"reason": "other"},
        ]
    ),
)
KEYS = st.sampled_from(
    sorted(
        {k for d in DEFINITIONS.values() for k in d.get("properties", {})}
        | set(SCHEMA["properties"])
        | {"citizen_name", "phone", "note"}
    )
)


def _containers(data: dict[str, Any]) -> list[dict[str, Any]]:
    found = [data]
    for value in data.values():
        if isinstance(value, dict):
            found += _containers(value)
    return found


@st.composite
def mutations(draw: st.DrawFn) -> Any:
    data = event_to_dict(draw(events()))
    for _ in range(draw(st.integers(0, 3))):  # 0: the valid event itself
        containers = _containers(data)
        target = draw(st.sampled_from(containers))
        action = draw(st.sampled_from(["drop", "add", "replace", "retype", "swap_payload"]))
        if action == "drop" and target:
            del target[draw(st.sampled_from(sorted(target)))]
        elif action == "add":
            target[draw(KEYS)] = copy.deepcopy(draw(PLAUSIBLE))
        elif action == "replace" and target:
            target[draw(st.sampled_from(sorted(target)))] = copy.deepcopy(draw(PLAUSIBLE))
        elif action == "retype":
            data["type"] = draw(st.sampled_from([*EVENT_TYPES, "escalated", 3]))
        elif action == "swap_payload":
            data["payload"] = event_to_dict(draw(events()))["payload"]
    if draw(st.integers(0, 19)) == 10:  # now and then, not an object at all
        return draw(st.sampled_from([[data], "event", 1, None]))
    return data


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_validators_agree_on_mutated_events(document: Any) -> None:
    by_decoder = decodes(document)
    assert by_decoder == full_valid(document), document
    assert by_decoder == JSONSCHEMA.is_valid(document), document
    if isinstance(document, dict):  # the plan pass's check, on what orjson parsed
        assert contract.conforms(orjson.loads(raw(document))) == by_decoder, document
    kind = document.get("type") if isinstance(document, dict) else None
    if isinstance(kind, str) and kind in _RUST_CHECKS:
        # the Rust check alone (the decoder falls back on a rejection): same verdict
        assert _rust_valid(document) == by_decoder, document
    if by_decoder:
        event = decode_event(raw(document))
        assert decode_event(encode_event(event)) == event


# ------------------------------------------------------------ the Rust pre-check

_RUST_CHECKS = codec._CHECKS


def _rust_valid(data: dict[str, Any]) -> bool:
    return codec._passes(_RUST_CHECKS[data["type"]], data)


# Where two JSON Schema implementations are most likely to part ways: formats, ECMA-262
# patterns, integral floats, control characters, bounds, numbers outside 64 bits.
EDGES = [
    ("integral float version", "closed", "schema_version", 1.0),
    ("version as bool", "closed", "schema_version", True),
    ("version outside 64 bits", "closed", "schema_version", 2**70),
    ("30 February", "closed", "occurred_at", "2024-02-30T00:00:00Z"),
    ("29 February, leap year", "closed", "occurred_at", "2024-02-29T00:00:00Z"),
    ("29 February, common year", "closed", "occurred_at", "2023-02-29T00:00:00Z"),
    ("leap second", "closed", "occurred_at", "2024-06-30T23:59:60Z"),
    ("lower-case t and z", "closed", "occurred_at", "2024-03-01t08:15:00z"),
    ("nine fraction digits", "closed", "occurred_at", "2024-03-01T08:15:00.123456789+08:00"),
    ("ten fraction digits", "closed", "occurred_at", "2024-03-01T08:15:00.1234567891Z"),
    ("offset without colon", "closed", "occurred_at", "2024-03-01T08:15:00+0800"),
    ("year 2300", "closed", "occurred_at", "2300-01-01T00:00:00Z"),
    ("newline at the end of an id", "closed", "case_id", "case-1\n"),
    ("unicode in an id", "closed", "case_id", "case-ü"),
    ("64-character event id", "closed", "event_id", "e" * 64),
    ("65-character event id", "closed", "event_id", "e" * 65),
    ("control character in a label", "dispatched", "payload.agency", "Roads\u0007"),
    ("DEL in a label", "dispatched", "payload.agency", "Roads\u007f"),
    ("astral character in a label", "dispatched", "payload.agency", "Roads \U0001f6a7"),
    ("128-character label", "dispatched", "payload.agency", "a" * 128),
    ("129-character label", "dispatched", "payload.agency", "a" * 129),
    ("empty label", "dispatched", "payload.agency", ""),
    ("integral float score", "rated", "payload.score", 5.0),
    ("fractional score", "rated", "payload.score", 4.5),
    ("huge extension", "deadline_extended", "payload.extension_seconds", 2**70),
    ("integer latitude", "opened", "payload.location.lat", 31),
    ("latitude out of range", "opened", "payload.location.lat", 90.5),
    ("upper-case citizen ref", "opened", "payload.citizen_ref", "0123456789ABCDEF"),
]


@pytest.mark.parametrize(
    ("event_type", "path", "value"),
    [pytest.param(t, p, v, id=name) for name, t, p, v in EDGES],
)
def test_rust_precheck_agrees_with_the_reference_validators(
    event_type: str, path: str, value: Any
) -> None:
    data = example(event_type)
    _set(path, value)(data)
    expected = full_valid(data)
    assert JSONSCHEMA.is_valid(data) == expected
    assert _rust_valid(data) == expected
    try:  # the decoder's own path, on the parsed object (JSON bytes cannot hold 2**70)
        validate_dict(data)
    except InvalidEvent:
        assert not expected
    else:
        assert expected


def test_python_objects_that_are_not_json_values_skip_the_rust_check() -> None:
    """jsonschema-rs reads an enum member as its value; the contract is JSON, so
    ``validate_dict`` leaves such objects to fastjsonschema, which rejects them."""
    import enum

    class Channel(enum.Enum):
        HOTLINE = "hotline"

    class Version(enum.Enum):
        ONE = 1

    for path, value in (("payload.channel", Channel.HOTLINE), ("schema_version", Version.ONE)):
        data = example("opened")
        _set(path, value)(data)
        assert not full_valid(data)
        with pytest.raises(InvalidEvent):
            validate_dict(data)
