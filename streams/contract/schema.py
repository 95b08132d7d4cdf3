"""Locating, loading and splitting the event contract's JSON Schema.

The schema file ``schemas/events/v1/event.schema.json`` is the single source of truth.
This module only reads it (stdlib only, so the code generator can use it too).

Lookup order for the schema directory:

1. ``$CIVICPULSE_EVENT_SCHEMAS`` (a directory holding ``v1/event.schema.json``), if set;
2. ``<repo root>/schemas/events`` (editable install / source checkout);
3. ``streams/contract/_schemas/events`` (package data, for a non-editable install that ships
   the schemas inside the package).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_FILE_NAME = "event.schema.json"
SCHEMA_DIR_ENV = "CIVICPULSE_EVENT_SCHEMAS"
CURRENT_VERSION = 1

_PACKAGE_DIR = Path(__file__).resolve().parent
_CANDIDATE_ROOTS: tuple[Path, ...] = (
    _PACKAGE_DIR.parents[1] / "schemas" / "events",
    _PACKAGE_DIR / "_schemas" / "events",
)


class SchemaNotFound(RuntimeError):
    """The event schema file could not be located."""


class SchemaShapeError(RuntimeError):
    """The schema file does not have the shape this package relies on."""


def schema_roots() -> tuple[Path, ...]:
    """Directories searched (in order) for ``v<N>/event.schema.json``."""
    override = os.environ.get(SCHEMA_DIR_ENV)
    if override:
        return (Path(override),)
    return _CANDIDATE_ROOTS


def schema_path(version: int = CURRENT_VERSION) -> Path:
    """Path of the schema file of contract ``version``; raises :class:`SchemaNotFound`."""
    tried = []
    for root in schema_roots():
        candidate = root / f"v{version}" / SCHEMA_FILE_NAME
        if candidate.is_file():
            return candidate
        tried.append(str(candidate))
    raise SchemaNotFound(
        f"event schema v{version} not found; looked for: {', '.join(tried)}. "
        f"Install civicpulse editable from a checkout (pip install -e .), ship "
        f"schemas/events inside streams/contract/_schemas/, or set ${SCHEMA_DIR_ENV} "
        f"to a directory containing v{version}/{SCHEMA_FILE_NAME}."
    )


@cache
def _load_cached(version: int) -> dict[str, Any]:
    path = schema_path(version)
    with path.open("rb") as fh:
        loaded = json.loads(fh.read().decode("utf-8"))
    if not isinstance(loaded, dict):
        raise SchemaShapeError(f"{path}: top level is not a JSON object")
    return loaded


def load_schema(version: int = CURRENT_VERSION) -> dict[str, Any]:
    """The parsed event schema (a fresh deep copy: callers may mutate it)."""
    return copy.deepcopy(_load_cached(version))


def fingerprint(schema: dict[str, Any]) -> str:
    """SHA-256 of the schema's canonical JSON (key order and whitespace do not matter)."""
    canonical = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Branch:
    """One ``allOf`` entry of the envelope: ``if type == event_type then payload: $ref``."""

    event_type: str
    payload_ref: str  # "#/definitions/<name>"

    @property
    def definition_name(self) -> str:
        return self.payload_ref.rsplit("/", 1)[-1]


def type_branches(schema: dict[str, Any]) -> list[Branch]:
    """The type -> payload dispatch, read from the envelope's ``allOf`` if/then entries.

    Raises :class:`SchemaShapeError` if the schema does not dispatch that way, or if the
    branches and the ``event_type`` enum disagree (missing, extra or out-of-order types).
    """
    branches: list[Branch] = []
    for index, entry in enumerate(schema.get("allOf", [])):
        try:
            event_type = entry["if"]["properties"]["type"]["const"]
            ref = entry["then"]["properties"]["payload"]["$ref"]
        except (KeyError, TypeError) as exc:
            raise SchemaShapeError(
                f"allOf[{index}] is not 'if type == X then payload: $ref': missing {exc}"
            ) from exc
        if set(entry) != {"if", "then"} or entry["if"].get("required") != ["type"]:
            raise SchemaShapeError(f"allOf[{index}] must be exactly {{if: ..., then: ...}}")
        if not isinstance(event_type, str) or not isinstance(ref, str):
            raise SchemaShapeError(f"allOf[{index}]: type const and $ref must be strings")
        if not ref.startswith("#/definitions/"):
            raise SchemaShapeError(f"allOf[{index}]: payload $ref must be local: {ref}")
        branches.append(Branch(event_type, ref))
    enum = schema.get("definitions", {}).get("event_type", {}).get("enum")
    if [b.event_type for b in branches] != enum:
        raise SchemaShapeError(
            "the allOf dispatch must list every definitions.event_type enum value once, "
            f"in the same order; enum={enum}, allOf={[b.event_type for b in branches]}"
        )
    return branches


def specialise(schema: dict[str, Any], branch: Branch) -> dict[str, Any]:
    """The envelope restricted to one event type: equivalent to the full schema for every
    document whose ``type`` is ``branch.event_type``, but with no if/then to try out."""
    spec = copy.deepcopy(schema)
    del spec["allOf"]
    spec["properties"]["type"] = {"const": branch.event_type}
    spec["properties"]["payload"] = {"$ref": branch.payload_ref}
    return spec
