"""Generate the boards' JSON into dashboards/json/.

python -m dashboards.build            # write every board
python -m dashboards.build --check    # exit 1 when a committed file differs
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards import engineering, operations, public

JSON_DIR = Path(__file__).resolve().parent / "json"
#: the Grafana folder the boards are published into (``civicpulse dashboards publish``)
FOLDER_UID = "civicpulse"
FOLDER_TITLE = "civicpulse"
#: file name -> board builder
BOARDS: dict[str, Callable[[], db.Dashboard]] = {
    "public.json": public.build,
    "operations.json": operations.build,
    "engineering.json": engineering.build,
}


def render(build: Callable[[], db.Dashboard]) -> str:
    """The board as stable JSON text (sorted keys, two-space indent, trailing newline)."""
    model = json.loads(JSONEncoder().encode(build().build()))
    for number, panel in enumerate(model.get("panels", []), start=1):
        panel.setdefault("id", number)  # Grafana needs unique panel ids
    return json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate() -> dict[str, str]:
    return {name: render(build) for name, build in BOARDS.items()}


def boards() -> dict[str, dict[str, Any]]:
    """Every generated board as a JSON object, by file name."""
    return {name: json.loads(text) for name, text in generate().items()}


def stale(directory: Path = JSON_DIR) -> list[str]:
    """Files in ``directory`` that differ from the generated ones (or are missing/extra)."""
    expected = generate()
    present = {p.name for p in directory.glob("*.json")}
    out = sorted(present - set(expected))
    for name, text in expected.items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            out.append(name)
    return sorted(out)


def write(directory: Path = JSON_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in generate().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    parser.add_argument("--dir", type=Path, default=JSON_DIR)
    args = parser.parse_args(argv)
    if args.check:
        differing = stale(args.dir)
        if differing:
            print(f"out of date: {', '.join(differing)} (run python -m dashboards.build)")
            return 1
        print("boards up to date")
        return 0
    for path in write(args.dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
