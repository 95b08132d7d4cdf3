"""``civicpulse import ...``: public open data into events of the contract.

Registered on the main app by streams/cli.py. The conversion lives in
:mod:`streams.sources.importers`; this module only picks the sink, shows progress and
prints the accounting (docs/import.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from streams.cli_output import console, err_console, fail, summary_table
from streams.cli_replay import Replace
from streams.sources.importers.common import ImportedEvent, ImportFormatError, ImportReport

import_app = typer.Typer(
    no_args_is_help=True,
    help="Import public open data (LA 311, Open311) as events of the contract.",
)

ToTopic = Annotated[
    bool, typer.Option("--to-topic", help="produce to the raw topic of the Kafka broker")
]
Out = Annotated[Path | None, typer.Option("--out", help="write the events to this JSON Lines file")]
Replay = Annotated[
    bool,
    typer.Option(
        "--replay",
        help="replay the events straight into a new generation of the derived tables "
        "(kept as <data dir>/imports/<file>.jsonl, the replay's source)",
    ),
]
Rejects = Annotated[
    Path | None,
    typer.Option("--rejects", help="write the rejected records (JSON Lines) to this file"),
]
EventsPerMessage = Annotated[
    int, typer.Option(help="events per Kafka message (NDJSON batches when > 1)")
]


def _check_sink(to_topic: bool, out: Path | None, replay: bool = False) -> None:
    if [to_topic, out is not None, replay].count(True) != 1:
        raise fail("give exactly one of --to-topic, --out FILE.jsonl or --replay")


def _imports_dir() -> Path:
    """``<data dir>/imports``: ``--replay``'s sources and the event-time sort's runs."""
    from streams.cli import _settings

    imports = _settings().data_dir.resolve() / "imports"
    imports.mkdir(parents=True, exist_ok=True)
    return imports


def _replay_source(path: Path) -> Path:
    """Where ``--replay`` keeps the converted events: the replay reads them from there
    (also from inside a running worker, and again when it is resumed)."""
    return _imports_dir() / f"{path.stem}.jsonl"


@contextmanager
def _byte_progress(path: Path) -> Iterator[Callable[[int], None]]:
    """A rich progress bar over the bytes of ``path`` read so far (on stderr)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    total = path.stat().st_size
    bar = Progress(
        TextColumn(f"importing {escape(path.name)}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )
    task = bar.add_task("import", total=total)
    with bar:
        yield lambda done: bar.update(task, completed=done)
        bar.update(task, completed=total)


def _deliver(
    imported: Iterator[ImportedEvent],
    to_topic: bool,
    out: Path | None,
    events_per_message: int,
) -> tuple[int, str]:
    """Send the events to the chosen sink, in event time: (events written, where)."""
    from streams.sources.importers.event_time import in_event_time

    # sorted runs go beside the output file, or (to a topic) under the data directory
    spill = out.resolve().parent if out is not None else _imports_dir()
    events = in_event_time(imported, spill_dir=spill)
    if out is not None:
        from streams.sources.importers.sinks import write_jsonl

        return write_jsonl(events, out), str(out)
    from streams.app.topology import RAW, topic_layout
    from streams.cli import _settings, resolve_bootstrap
    from streams.kafka_runtime.topics import ensure_topics_sync
    from streams.sources.importers.sinks import produce_events

    settings = _settings()
    bootstrap = resolve_bootstrap(settings)
    ensure_topics_sync(bootstrap, topic_layout(settings))
    topic = settings.topic(RAW)
    sent = asyncio.run(
        produce_events(bootstrap, topic, events, events_per_message=events_per_message)
    )
    return sent, f"topic {topic}"


def _summary(report: ImportReport, written: int, where: str, rejects: Path | None) -> None:
    table = summary_table(f"import of {report.source}", "count")
    table.add_row("records read", f"{report.records_read:,}")
    table.add_row("imported", f"{report.imported:,}")
    table.add_row("rejected", f"{report.rejected:,}")
    for reason, count in report.rejected_by_reason().items():
        table.add_row(f"  rejected: {reason}", f"{count:,}")
    table.add_row(f"events written to {escape(where)}", f"{written:,}")
    for kind, count in sorted(report.events_by_type.items()):
        table.add_row(f"  {kind}", f"{count:,}")
    for reason, count in sorted(report.closure_reasons.items()):
        table.add_row(f"  resolved as {reason}", f"{count:,}")
    for note, count in sorted(report.notes.items()):
        table.add_row(f"note: {escape(note)}", f"{count:,}")
    console.print(table)
    if rejects is not None:
        console.print(f"rejected records written to {escape(str(rejects))}")
    elif report.rejected:
        console.print("give --rejects FILE to list the rejected records")


def _run(
    report: ImportReport,
    make_events: Callable[[Callable[[int], None] | None], Iterator[ImportedEvent]],
    path: Path,
    to_topic: bool,
    out: Path | None,
    rejects: Path | None,
    events_per_message: int,
    replay: bool = False,
    replace: bool = False,
) -> None:
    from streams.sources.importers.sinks import write_rejects

    _check_sink(to_topic, out, replay)
    if not path.is_file():
        raise fail(f"{path}: no such file")
    if replay:
        out = _replay_source(path)
    try:
        with _byte_progress(path) as on_bytes:
            written, where = _deliver(make_events(on_bytes), to_topic, out, events_per_message)
    except ImportFormatError as err:
        raise fail(str(err)) from err
    if rejects is not None:
        write_rejects(report, rejects)
    _summary(report, written, where, rejects)
    if not report.balanced():  # pragma: no cover - an importer bug, never the data
        raise fail("records read != imported + rejected")
    if replay and out is not None:
        from streams.cli_replay import run_imported

        run_imported(out, replace)


@import_app.command("la311")
def import_la311(
    file: Annotated[Path, typer.Argument(help="a Los Angeles 311 CSV export")],
    to_topic: ToTopic = False,
    out: Out = None,
    replay: Replay = False,
    replace: Replace = False,
    rejects: Rejects = None,
    timezone: Annotated[
        str, typer.Option(help="time zone of the export's local times")
    ] = "America/Los_Angeles",
    encoding: Annotated[str, typer.Option(help="text encoding of the file")] = "utf-8-sig",
    events_per_message: EventsPerMessage = 200,
) -> None:
    """Convert an LA 311 export (any year's header and date style) into lifecycle events."""
    from streams.sources.importers.la311 import read_la311

    report = ImportReport(source=str(file))

    def events(on_bytes: Any) -> Iterator[ImportedEvent]:
        return read_la311(file, report, timezone=timezone, encoding=encoding, on_bytes=on_bytes)

    _run(report, events, file, to_topic, out, rejects, events_per_message, replay, replace)


@import_app.command("open311")
def import_open311(
    file: Annotated[Path, typer.Argument(help="an Open311 GeoReport v2 requests.json")],
    to_topic: ToTopic = False,
    out: Out = None,
    replay: Replay = False,
    replace: Replace = False,
    rejects: Rejects = None,
    timezone: Annotated[
        str | None,
        typer.Option(help="read datetimes without an offset in this zone (default: reject)"),
    ] = None,
    case_prefix: Annotated[
        str, typer.Option(help="case id namespace, e.g. the city: <prefix>:<request id>")
    ] = "open311",
    events_per_message: EventsPerMessage = 200,
) -> None:
    """Convert Open311 GeoReport v2 service requests into lifecycle events."""
    from streams.sources.importers.open311 import read_open311

    report = ImportReport(source=str(file))

    def events(on_bytes: Any) -> Iterator[ImportedEvent]:
        return read_open311(file, report, timezone=timezone, case_prefix=case_prefix)

    try:
        _run(report, events, file, to_topic, out, rejects, events_per_message, replay, replace)
    except ValueError as err:  # a bad --case-prefix
        raise fail(str(err)) from err
