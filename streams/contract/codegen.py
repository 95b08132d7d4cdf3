"""Generate ``streams/contract/generated.py`` from the event JSON Schema.

Usage::

    python -m streams.contract.codegen           # (re)write generated.py if it changed
    python -m streams.contract.codegen --check   # exit 1 if generated.py is stale

The output is a pure function of the schema (deterministic, no timestamps) and is already
formatted the way ``ruff format`` would format it, so it passes ``ruff check``,
``ruff format --check`` and ``mypy --strict`` as written.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.contract.schema import (
    Branch,
    SchemaShapeError,
    fingerprint,
    load_schema,
    schema_path,
    type_branches,
)

LINE_LENGTH = 100
INDENT = "    "
GENERATED_PATH = Path(__file__).resolve().with_name("generated.py")
SCHEMA_DISPLAY_PATH = "schemas/events/v1/event.schema.json"

_SCALARS = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}


def camel(name: str) -> str:
    """``first_contact_payload`` -> ``FirstContactPayload``."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def plural_constant(name: str) -> str:
    """``urgency`` -> ``URGENCIES``, ``channel`` -> ``CHANNELS``."""
    upper = name.upper()
    if upper.endswith("Y") and upper[-2:-1] not in ("A", "E", "I", "O", "U"):
        return upper[:-1] + "IES"
    if upper.endswith(("S", "X", "CH", "SH")):
        return upper + "ES"
    return upper + "S"


def _q(value: str) -> str:
    """A Python string literal with double quotes (ruff format's preference)."""
    return json.dumps(value, ensure_ascii=False)


def _bracketed(head: str, items: list[str], tail: str, indent: str = "") -> list[str]:
    """``head item, item tail`` on one line if it fits, else one item per line (magic comma)."""
    one_line = f"{indent}{head}{', '.join(items)}{tail}"
    if len(one_line) <= LINE_LENGTH:
        return [one_line]
    inner = indent + INDENT
    return [f"{indent}{head}", *(f"{inner}{item}," for item in items), f"{indent}{tail}"]


def _comment_lines(text: str, indent: str) -> list[str]:
    words = text.split()
    lines: list[str] = []
    current = f"{indent}#"
    for word in words:
        if len(current) + 1 + len(word) > LINE_LENGTH and current != f"{indent}#":
            lines.append(current)
            current = f"{indent}#"
        current += " " + word
    lines.append(current)
    return lines


def _docstring(text: str, indent: str) -> list[str]:
    text = " ".join(text.split()).replace('"""', "'''")
    one = f'{indent}"""{text}"""'
    if len(one) <= LINE_LENGTH:
        return [one]
    words = text.split()
    lines = [f'{indent}"""']
    current = indent
    for word in words:
        if len(current) + len(word) + (0 if current == indent else 1) > LINE_LENGTH:
            lines.append(current)
            current = indent
        current += word if current == indent else " " + word
    lines.append(current)
    lines.append(f'{indent}"""')
    return lines


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    annotation: str  # without "| None"
    kind: str  # "plain" | "int" | "float" | "object"
    required: bool
    description: str | None


@dataclass(frozen=True, slots=True)
class ObjectSpec:
    definition: str
    class_name: str
    description: str | None
    fields: tuple[Field, ...]  # required first, then optional, each in schema order
    event_type: str | None  # set for payload classes


class _Model:
    """The parts of the schema the generator needs, with shape checks."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.definitions: dict[str, Any] = schema.get("definitions", {})
        self.branches: list[Branch] = type_branches(schema)
        try:
            self.version = schema["properties"]["schema_version"]["const"]
        except KeyError as exc:
            raise SchemaShapeError("properties.schema_version.const is required") from exc
        if not isinstance(self.version, int):
            raise SchemaShapeError("properties.schema_version.const must be an integer")
        self.enums: dict[str, list[str]] = {}
        for name, definition in self.definitions.items():
            if "enum" in definition:
                values = definition["enum"]
                if definition.get("type") != "string" or not all(
                    isinstance(v, str) for v in values
                ):
                    raise SchemaShapeError(f"definitions.{name}: enums must be string enums")
                self.enums[name] = list(values)
        self.objects: dict[str, ObjectSpec] = {}
        payload_types = {b.definition_name: b.event_type for b in self.branches}
        for name, definition in self.definitions.items():
            if definition.get("type") == "object":
                self.objects[name] = self._object(name, definition, payload_types.get(name))
        for branch in self.branches:
            if branch.definition_name not in self.objects:
                raise SchemaShapeError(f"{branch.payload_ref} is not an object definition")

    def _resolve(self, ref: str) -> tuple[str, dict[str, Any]]:
        prefix = "#/definitions/"
        if not ref.startswith(prefix) or ref[len(prefix) :] not in self.definitions:
            raise SchemaShapeError(f"unresolvable $ref {ref}")
        name = ref[len(prefix) :]
        return name, self.definitions[name]

    def _field(self, owner: str, name: str, prop: dict[str, Any], required: bool) -> Field:
        description = prop.get("description")
        if "$ref" in prop:
            target, definition = self._resolve(prop["$ref"])
            if target in self.enums:
                return Field(name, camel(target), "plain", required, description)
            if definition.get("type") == "object":
                return Field(name, camel(target), "object", required, description)
            prop = definition
        kind = prop.get("type")
        if kind not in _SCALARS:
            raise SchemaShapeError(f"definitions.{owner}.{name}: unsupported type {kind!r}")
        if "enum" in prop:
            raise SchemaShapeError(f"definitions.{owner}.{name}: put enums in definitions")
        annotation = _SCALARS[kind]
        # JSON numbers arrive as int or float: draft-07 counts 5.0 as an integer and 5 as a
        # number, so both are converted to the annotated type.
        convert = annotation in ("int", "float")
        return Field(name, annotation, annotation if convert else "plain", required, description)

    def _object(self, name: str, definition: dict[str, Any], event_type: str | None) -> ObjectSpec:
        if definition.get("additionalProperties") is not False:
            raise SchemaShapeError(f"definitions.{name}: additionalProperties must be false")
        properties: dict[str, Any] = definition.get("properties", {})
        required: list[str] = definition.get("required", [])
        unknown = [r for r in required if r not in properties]
        if unknown:
            raise SchemaShapeError(f"definitions.{name}: required but not defined: {unknown}")
        fields = [self._field(name, p, properties[p], True) for p in properties if p in required]
        fields += [
            self._field(name, p, properties[p], False) for p in properties if p not in required
        ]
        return ObjectSpec(
            name, camel(name), definition.get("description"), tuple(fields), event_type
        )


def _emit_enum(name: str, values: list[str], description: str | None) -> list[str]:
    alias = camel(name)
    quoted = [_q(v) for v in values]
    lines: list[str] = []
    if description:
        lines += _comment_lines(description, "")
    lines += _bracketed(f"{alias}: TypeAlias = Literal[", quoted, "]")
    lines += _bracketed(f"{plural_constant(name)}: tuple[{alias}, ...] = (", quoted, ")")
    return lines


def _from_dict(spec: ObjectSpec) -> list[str]:
    body = INDENT * 2
    lines = [
        f"{INDENT}@classmethod",
        f"{INDENT}def from_dict(cls, data: Mapping[str, Any]) -> {spec.class_name}:",
        f'{body}"""Build from an already-validated dict (no checks here)."""',
    ]
    args: list[str] = []
    for field in spec.fields:
        if field.required:
            value = f"data[{_q(field.name)}]"
            if field.kind in ("int", "float"):
                args.append(f"{field.kind}({value})")
            elif field.kind == "object":
                args.append(f"{field.annotation}.from_dict({value})")
            else:
                args.append(value)
        elif field.kind == "plain":
            args.append(f"data.get({_q(field.name)})")
        else:
            local = f"opt_{field.name}"
            lines.append(f"{body}{local} = data.get({_q(field.name)})")
            convert = field.kind if field.kind != "object" else f"{field.annotation}.from_dict"
            args.append(f"None if {local} is None else {convert}({local})")
    lines += _bracketed("return cls(", args, ")", body)
    return lines


def _to_dict(spec: ObjectSpec) -> list[str]:
    body = INDENT * 2
    lines = [
        f"{INDENT}def to_dict(self) -> dict[str, Any]:",
        f'{body}"""The JSON-ready dict of this object (absent optional fields omitted)."""',
    ]

    def value(field: Field) -> str:
        if field.kind == "object":
            return f"self.{field.name}.to_dict()"
        return f"self.{field.name}"

    required = [f for f in spec.fields if f.required]
    optional = [f for f in spec.fields if not f.required]
    items = [f"{_q(f.name)}: {value(f)}" for f in required]
    if not optional:
        lines += _bracketed("return {", items, "}", body)
        return lines
    lines += _bracketed("out: dict[str, Any] = {", items, "}", body)
    for field in optional:
        lines.append(f"{body}if self.{field.name} is not None:")
        lines.append(f"{body}{INDENT}out[{_q(field.name)}] = {value(field)}")
    lines.append(f"{body}return out")
    return lines


def _emit_class(spec: ObjectSpec) -> list[str]:
    lines = ["@dataclass(frozen=True, slots=True)", f"class {spec.class_name}:"]
    doc = spec.description or f"The ``{spec.definition}`` object."
    if spec.event_type is not None:
        article = "an" if spec.event_type[:1] in "aeiou" else "a"
        doc = f"Payload of {article} ``{spec.event_type}`` event. {doc}"
    lines += _docstring(doc, INDENT)
    lines.append("")
    if spec.event_type is not None:
        lines.append(f"{INDENT}EVENT_TYPE: ClassVar[EventType] = {_q(spec.event_type)}")
        lines.append("")
    for field in spec.fields:
        if field.description:
            lines += _comment_lines(field.description, INDENT)
        if field.required:
            lines.append(f"{INDENT}{field.name}: {field.annotation}")
        else:
            lines.append(f"{INDENT}{field.name}: {field.annotation} | None = None")
    if spec.fields:
        lines.append("")
    lines += _from_dict(spec)
    lines.append("")
    lines += _to_dict(spec)
    return lines


def _section(blocks: Iterable[list[str]], gap: int) -> list[str]:
    out: list[str] = []
    for block in blocks:
        if out:
            out += [""] * gap
        out += block
    return out


def render(schema: dict[str, Any]) -> str:
    """The full text of ``generated.py`` for ``schema``."""
    model = _Model(schema)
    payload_specs = [model.objects[b.definition_name] for b in model.branches]
    payload_names = {s.definition for s in payload_specs}
    helper_specs = [s for name, s in model.objects.items() if name not in payload_names]
    event_type_alias = camel("event_type")
    if "event_type" not in model.enums:
        raise SchemaShapeError("definitions.event_type (string enum) is required")

    header = [
        "# GENERATED FILE - DO NOT EDIT.",
        f"# Generated by streams/contract/codegen.py from {SCHEMA_DISPLAY_PATH}.",
        "# Regenerate with: python -m streams.contract.codegen",
        f'"""Typed Python view of event contract v{model.version} (generated from the schema)."""',
        "",
        "from __future__ import annotations",
        "",
        "from collections.abc import Mapping",
        "from dataclasses import dataclass",
        "from typing import Any, ClassVar, Final, Literal, TypeAlias",
        "",
        f"SCHEMA_VERSION: Final = {model.version}",
        "# SHA-256 of the schema's canonical JSON; the package warns at import if it differs.",
        f"SCHEMA_FINGERPRINT: Final = {_q(fingerprint(schema))}",
    ]
    enum_blocks = [
        _emit_enum(name, values, model.definitions[name].get("description"))
        for name, values in model.enums.items()
    ]
    types = model.enums["event_type"]
    rank = _bracketed(
        f"LIFECYCLE_RANK: dict[{event_type_alias}, int] = {{",
        [f"{_q(t)}: {i}" for i, t in enumerate(types)],
        "}",
    )
    rank = ["# Position of each type in the lifecycle order (ties in occurred_at).", *rank]
    classes = [_emit_class(s) for s in helper_specs + payload_specs]
    union_items = [s.class_name for s in payload_specs]
    union_line = f"Payload: TypeAlias = {' | '.join(union_items)}"
    if len(union_line) <= LINE_LENGTH:
        union = [union_line]
    else:
        union = ["Payload: TypeAlias = ("]
        union += [f"{INDENT}{'| ' if i else ''}{name}" for i, name in enumerate(union_items)]
        union += [")"]
    classes_map = _bracketed(
        "PAYLOAD_CLASSES: dict[str, type[Payload]] = {",
        [f"{_q(s.event_type or '')}: {s.class_name}" for s in payload_specs],
        "}",
    )
    lines = [
        *header,
        "",
        "",
        *_section(enum_blocks, 1),
        "",
        *rank,
        "",
        "",
        *_section(classes, 2),
        "",
        "",
        *union,
        "",
        *classes_map,
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m streams.contract.codegen", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--output", type=Path, default=GENERATED_PATH)
    args = parser.parse_args(argv)
    text = render(load_schema())
    output: Path = args.output
    current = output.read_text(encoding="utf-8") if output.exists() else None
    if args.check:
        if current != text:
            print(
                f"{output} is stale relative to {schema_path()}: "
                "run python -m streams.contract.codegen",
                file=sys.stderr,
            )
            return 1
        print(f"{output} is up to date")
        return 0
    if current == text:
        print(f"{output} already up to date")
        return 0
    output.write_text(text, encoding="utf-8")
    print(f"wrote {output} from {schema_path()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
