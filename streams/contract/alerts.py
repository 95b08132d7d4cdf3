"""The alert topic's contract: ``schemas/alerts/v1/sla-alert.schema.json``.

Alerts are produced by the worker alone, but read by operators' tools (``civicpulse
alerts tail``), the ClickHouse sink and outside consumers, so every message is checked
against the schema on both sides.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema
import orjson

from streams.core.sla.alerts import SlaAlert

ALERT_SCHEMA_PATH = (
    Path(__file__).resolve().parents[2] / "schemas" / "alerts" / "v1" / "sla-alert.schema.json"
)


class InvalidAlert(ValueError):
    """A message of the alert topic that is not a valid v1 alert."""


@cache
def _validator() -> Any:
    return fastjsonschema.compile(json.loads(ALERT_SCHEMA_PATH.read_text()))


def format_instant(moment: datetime) -> str:
    """UTC with microseconds and ``Z``: SLA instants can fall between milliseconds."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_instant(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def alert_document(alert: SlaAlert, emitted_at: datetime, worker: str) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schema_version": 1,
        "alert_id": alert.alert_id,
        "type": alert.type,
        "case_id": alert.case_id,
        "target": alert.target,
        "cycle": alert.cycle,
        "threshold": alert.threshold,
        "fired_at": format_instant(alert.fired_at),
        "due_at": format_instant(alert.due_at) if alert.due_at is not None else None,
        "emitted_at": format_instant(emitted_at),
        "policy_id": alert.policy_id,
    }
    document.update(alert.dimensions)
    document["worker"] = worker
    return document


def encode_alert(alert: SlaAlert, emitted_at: datetime, worker: str) -> bytes:
    document = alert_document(alert, emitted_at, worker)
    _validator()(document)
    return orjson.dumps(document)


def decode_alert(raw: bytes) -> dict[str, Any]:
    """The alert as a dict (instants still strings); :class:`InvalidAlert` otherwise."""
    try:
        document = orjson.loads(raw)
        _validator()(document)
    except orjson.JSONDecodeError as err:
        raise InvalidAlert(f"not JSON: {err}") from err
    except fastjsonschema.JsonSchemaException as err:
        raise InvalidAlert(f"not a v1 alert: {err}") from err
    if not isinstance(document, dict):
        raise InvalidAlert("not a JSON object")
    return document
