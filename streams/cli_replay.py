"""``civicpulse replay ...``: recompute the derived tables into a new generation.

Registered on the main app by streams/cli.py. The work is :mod:`streams.app.replay`;
generations are :mod:`streams.store.generations`. Documentation: docs/replay.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

replay_app = typer.Typer(
    no_args_is_help=True,
    help="Recompute every derived table from events into a new generation (docs/replay.md).",
)
console = Console()
err_console = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code=1)


def _instant(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError as err:
        raise _fail(f"{name}: not an ISO 8601 date-time: {text!r}") from err
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).astimezone(UTC)


@contextmanager
def _progress_bars() -> Iterator[Callable[[str, int, int | None], None]]:
    """Rich progress bars (events/s and ETA) on stderr, one per phase."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err_console,
    )
    tasks: dict[str, Any] = {}

    def update(phase: str, done: int, total: int | None) -> None:
        task = tasks.get(phase)
        if task is None:
            task = tasks[phase] = bar.add_task(phase, total=total, rate="")
        bar.update(task, completed=done, total=total)
        speed = bar.tasks[task].speed
        bar.update(task, rate=f"{speed:,.0f} events/s" if speed else "")

    with bar:
        yield update


@replay_app.command("run")
def run(
    from_file: Annotated[
        Path | None, typer.Option("--from-file", help=".jsonl / .ndjson / .parquet file")
    ] = None,
    from_topic: Annotated[
        str | None, typer.Option("--from-topic", help="a Kafka topic of raw events")
    ] = None,
    from_archive: Annotated[
        bool, typer.Option("--from-archive", help="the ClickHouse raw archive (events)")
    ] = False,
    from_offset: Annotated[
        int | None, typer.Option(help="topic: first offset (every partition)")
    ] = None,
    to_offset: Annotated[
        int | None, typer.Option(help="topic: last offset, included (every partition)")
    ] = None,
    since: Annotated[str | None, typer.Option(help="only events at or after (ISO 8601)")] = None,
    until: Annotated[str | None, typer.Option(help="only events before (ISO 8601)")] = None,
    replay_id: Annotated[
        str | None, typer.Option("--id", help="generation id; rerun with it to resume")
    ] = None,
    policies: Annotated[
        str | None, typer.Option(help="SLA policy file (default: the worker's)")
    ] = None,
    invalid: Annotated[
        str,
        typer.Option(
            help="stop: an invalid event stops the replay; dead-letter: count it and go on "
            "(default: stop for files, dead-letter for topics and the archive)"
        ),
    ] = "",
    workers: Annotated[int, typer.Option(help="processes folding cases (default: CPU count)")] = 0,
    buckets: Annotated[int, typer.Option(help="case-hash buckets (checkpoint unit)")] = 16,
    no_switch: Annotated[
        bool, typer.Option("--no-switch", help="build the generation, do not switch to it")
    ] = False,
) -> None:
    """Replay events into a new generation of the derived tables, then switch the boards
    to it. Interrupted or failed: rerun with the same --id to resume."""
    from streams.app.replay import (
        ReplayError,
        ReplayOptions,
        SourceData,
        read_archive,
        read_file,
        read_topic,
        run_replay,
    )
    from streams.cli import _settings, resolve_bootstrap
    from streams.store import Store, StoreError
    from streams.store.generations import new_id

    chosen = [from_file is not None, from_topic is not None, from_archive]
    if sum(chosen) != 1:
        raise _fail("give exactly one of --from-file, --from-topic, --from-archive")
    mode = invalid or ("stop" if from_file is not None else "dead-letter")
    if mode not in ("stop", "dead-letter"):
        raise _fail("--invalid is stop or dead-letter")
    settings = _settings()
    options = ReplayOptions(
        generation=replay_id or new_id(),
        policies_path=policies or settings.sla_policies or None,
        invalid=mode,
        since=_instant(since, "--since"),
        until=_instant(until, "--until"),
        buckets=max(1, buckets),
        workers=workers or min(4, os.cpu_count() or 1),
        partitions=settings.topic_partitions,
        late_grace=timedelta(seconds=settings.late_grace_seconds),
        switch=not no_switch,
    )
    bootstrap = resolve_bootstrap(settings) if from_topic is not None else ""

    with _progress_bars() as progress:

        def read(store: Store) -> SourceData:
            if from_file is not None:
                return read_file(from_file, progress)
            if from_topic is not None:
                return read_topic(
                    bootstrap,
                    from_topic,
                    f"civicpulse-replay-{options.generation}",
                    from_offset,
                    to_offset,
                    progress,
                )
            return read_archive(store, options.since, options.until)

        try:
            result = run_replay(settings.clickhouse_dsn, read, options, progress)
        except (ReplayError, StoreError) as err:
            raise _fail(
                f"replay {options.generation} failed, live tables untouched: {err}"
            ) from err
        except KeyboardInterrupt:
            raise _fail(
                f"replay {options.generation} interrupted, live tables untouched; resume with "
                f"--id {options.generation}"
            ) from None
    table = Table(title=f"replay {escape(options.generation)}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("events", f"{result.events:,}")
    table.add_row("cases", f"{result.cases:,}")
    table.add_row("dead letters", f"{result.dead_letters:,}")
    table.add_row("late events", f"{result.late_events:,}")
    table.add_row("SLA alerts", f"{result.alerts:,}")
    table.add_row("buckets resumed", f"{result.resumed_buckets}")
    table.add_row("seconds", f"{result.seconds:,.1f}")
    table.add_row("events/s", f"{result.events_per_second:,.0f}")
    table.add_row("switched", "yes" if result.switched else "no (--no-switch)")
    console.print(table)


@replay_app.command("list")
def list_() -> None:
    """The generations: which one the boards read, which ones are kept."""
    from streams.cli import _settings
    from streams.store import Store
    from streams.store.generations import list_generations

    store = Store.open(_settings().clickhouse_dsn)
    table = Table(title="generations")
    for name in ("id", "status", "database", "source", "events", "cases", "started", "detail"):
        table.add_column(name)
    for g in list_generations(store.client):
        table.add_row(
            g.generation,
            g.status,
            g.database,
            escape(g.source),
            f"{g.events:,}",
            f"{g.cases:,}",
            g.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            escape(g.detail[:60]),
        )
    console.print(table)


@replay_app.command("drop")
def drop(replay_id: Annotated[str, typer.Argument(help="a retired or failed generation")]) -> None:
    """Drop a retired or failed generation's tables (never the active one)."""
    from streams.cli import _settings
    from streams.store import Store
    from streams.store.generations import GenerationError
    from streams.store.generations import drop as drop_generation

    store = Store.open(_settings().clickhouse_dsn)
    try:
        dropped = drop_generation(store.client, replay_id)
    except GenerationError as err:
        raise _fail(str(err)) from err
    console.print(f"dropped generation {replay_id} ({dropped.detail})")


@replay_app.command("export")
def export(
    source: Annotated[Path, typer.Argument(help="a JSON Lines file of events")],
    to_parquet: Annotated[Path, typer.Option("--to-parquet", help="the Parquet file to write")],
) -> None:
    """Copy a JSON Lines file of events into a replay Parquet file (column `event`)."""
    from streams.app.replay import ReplayError, export_parquet

    try:
        rows = export_parquet(source, to_parquet)
    except ReplayError as err:
        raise _fail(str(err)) from err
    console.print(f"{rows:,} events written to {to_parquet}")
