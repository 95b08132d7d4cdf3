"""``civicpulse replay ...``: recompute the derived tables into a new generation.

Registered on the main app by streams/cli.py. The work is :mod:`streams.replay`;
generations are :mod:`streams.store.generations`. Documentation: docs/replay.md.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from streams.cli_output import console, err_console, fail, summary_table

replay_app = typer.Typer(
    no_args_is_help=True,
    help="Recompute every derived table from events into a new generation (docs/replay.md).",
)


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
    from streams.replay.progress import PHASE_UNITS

    tasks: dict[str, Any] = {}

    def update(phase: str, done: int, total: int | None) -> None:
        task = tasks.get(phase)
        if task is None:
            task = tasks[phase] = bar.add_task(phase, total=total, rate="")
        bar.update(task, completed=done, total=total)
        speed = bar.tasks[task].speed
        unit = PHASE_UNITS.get(phase, "events")
        bar.update(task, rate=f"{speed:,.0f} {unit}/s" if speed else "")

    with bar:
        yield update


#: ``replay run --replace`` and ``import ... --replay --replace``
Replace = Annotated[
    bool,
    typer.Option(
        "--replace",
        help="a file or topic replay (import: --replay): switch even if the boards would "
        "lose cases it does not hold (they then show its cases only)",
    ),
]


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
    from_time: Annotated[
        str | None,
        typer.Option(help="topic: from the first message stamped at or after (ISO 8601)"),
    ] = None,
    to_time: Annotated[
        str | None,
        typer.Option(help="topic: up to the first message stamped at or after (ISO 8601)"),
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
    buckets: Annotated[
        int, typer.Option(help="case-hash buckets, at least (checkpoint and memory unit)")
    ] = 16,
    bucket_events: Annotated[
        int, typer.Option(help="more buckets when needed for about this many events each")
    ] = 200_000,
    no_switch: Annotated[
        bool, typer.Option("--no-switch", help="build the generation, do not switch to it")
    ] = False,
    replace: Replace = False,
    archive: Annotated[
        bool | None,
        typer.Option(
            "--archive/--no-archive",
            help="add the events to the live raw archive at the switch, so later replays "
            "from the archive hold them (default: yes for files, no for topics)",
        ),
    ] = None,
) -> None:
    """Replay events into a new generation of the derived tables, then switch the boards
    to it. Interrupted or failed: rerun with the same --id to resume. With the embedded
    store and a running worker, the replay runs inside the worker (the boards stay up)."""
    from streams.access import REPLAY_PATH, StoreAccessError, ask_worker
    from streams.cli import _settings
    from streams.replay.service import ReplayRequest, ReplayRequestError

    settings = _settings()
    try:
        request = ReplayRequest(
            generation=replay_id or "",
            from_file=str(from_file) if from_file is not None else None,
            from_topic=from_topic,
            from_archive=from_archive,
            from_offset=from_offset,
            to_offset=to_offset,
            from_time=from_time,
            to_time=to_time,
            since=since,
            until=until,
            policies=policies,
            invalid=invalid,
            workers=workers or min(4, os.cpu_count() or 1),
            buckets=max(1, buckets),
            bucket_events=max(1, bucket_events),
            switch=not no_switch,
            replace=replace,
            archive=archive,
        ).absolute()
    except ReplayRequestError as err:
        raise fail(str(err)) from err
    _note_other_policies(settings, request.policies, request.switch)
    answer = None
    if settings.embedded_clickhouse:
        try:
            answer = ask_worker(settings, "POST", REPLAY_PATH, request.to_json())
        except StoreAccessError as err:
            raise fail(f"the worker refused the replay: {err}") from err
    if answer is not None:
        summary = _run_in_worker(settings, request.generation)
    else:
        summary = _run_here(settings, request)
    table = summary_table(f"replay {request.generation}")
    table.add_row("events", f"{summary['events']:,}")
    table.add_row("cases", f"{summary['cases']:,}")
    table.add_row("dead letters", f"{summary['dead_letters']:,}")
    table.add_row("late events", f"{summary['late_events']:,}")
    table.add_row("SLA alerts", f"{summary['alerts']:,}")
    table.add_row("buckets", f"{summary['buckets']}")
    table.add_row("buckets resumed", f"{summary['resumed_buckets']}")
    table.add_row("seconds", f"{summary['seconds']:,.1f}")
    table.add_row("events/s", f"{summary['events_per_second']:,.0f}")
    table.add_row("switched", "yes" if summary["switched"] else "no (--no-switch)")
    table.add_row("added to the archive", f"{summary['archived']:,}")
    table.add_row("caught up (archived meanwhile)", f"{summary['caught_up']:,}")
    table.add_row("ran in", "the worker" if answer is not None else "this process")
    console.print(table)


def _note_other_policies(settings: Any, policies: str | None, switch: bool) -> None:
    """A replay with other SLA policies than the settings' (the live worker's): after
    the switch, the worker rewrites every case it touches with its own."""
    if not policies or not switch:
        return
    from streams.replay import policies_hash

    worker_policies = settings.sla_policies or None
    if policies_hash(policies) == policies_hash(worker_policies):
        return
    err_console.print(
        f"[yellow]note:[/] this replay evaluates with {escape(policies)}, the live worker "
        f"with {escape(worker_policies or 'the shipped policies')}: after the switch it "
        "rewrites each case it touches with its own. Point the worker at the same file "
        '(CIVICPULSE_SLA_POLICIES) and restart it (docs/replay.md, "Changing SLA '
        'policies").'
    )


def _run_here(settings: Any, request: Any) -> dict[str, Any]:
    """The replay in this process (a ClickHouse server, or no worker owns the store)."""
    from streams.cli import resolve_bootstrap
    from streams.gc_tuning import tuned_for_long_lived_objects
    from streams.replay import AfterSwitchError, ReplayError, run_replay
    from streams.replay.service import options_for, result_summary, source_reader
    from streams.store import StoreError

    options = options_for(request, settings)
    bootstrap = resolve_bootstrap(settings) if request.from_topic is not None else ""
    # this process plans, writes and may fold
    with tuned_for_long_lived_objects(), _progress_bars() as progress:
        read = source_reader(request, options, lambda: bootstrap, progress)
        try:
            result = run_replay(settings.clickhouse_dsn, read, options, progress)
        except AfterSwitchError as err:
            raise fail(str(err)) from err
        except (ReplayError, StoreError) as err:
            raise fail(f"replay {options.generation} failed, live tables untouched: {err}") from err
        except KeyboardInterrupt:
            raise fail(_interrupted(options.generation)) from None
    return result_summary(result)


#: the command that resumes a replay of this process, when that is not the command that
#: started it with --id added: set by `import ... --replay` (which has no --id)
_resume_command: ContextVar[str | None] = ContextVar("_resume_command", default=None)


def run_imported(path: Path, replace: bool = False) -> None:
    """`import ... --replay`: replay the converted events kept at ``path``; one that is
    interrupted names `civicpulse replay run --from-file <path> --id <id>` to resume it."""
    command = f"civicpulse replay run --from-file {shlex.quote(str(path))}"
    token = _resume_command.set(command)
    try:
        run(from_file=path, replace=replace)
    finally:
        _resume_command.reset(token)


def _resume_hint(generation: str) -> str:
    command = _resume_command.get()
    if command is None:
        return f"resume with --id {generation}"
    return f"resume with: {command} --id {generation}"


def _interrupted(generation: str) -> str:
    return f"replay {generation} interrupted, live tables untouched; {_resume_hint(generation)}"


#: seconds between two progress polls of a replay running in the worker
POLL_SECONDS = 0.5


def _pause() -> None:
    time.sleep(POLL_SECONDS)


def _run_in_worker(settings: Any, generation: str) -> dict[str, Any]:
    """Follow a replay the worker runs: the same progress bars; Ctrl-C asks the worker
    to stop it (it is left failed, interrupted, and resumable)."""
    from streams.access import REPLAY_PATH, StoreAccessError, ask_worker

    path = f"{REPLAY_PATH}/{generation}"

    def status() -> dict[str, Any]:
        try:
            answer = ask_worker(settings, "GET", path)
        except StoreAccessError as err:
            raise fail(f"replay {generation}: {err}") from err
        if answer is None:
            raise fail(
                f"replay {generation}: the worker stopped answering; see `civicpulse replay "
                f"list`, {_resume_hint(generation)}"
            )
        found: dict[str, Any] = answer
        return found

    with _progress_bars() as progress:

        def shown() -> dict[str, Any]:
            state = status()
            for item in state["progress"]:
                progress(item["phase"], item["done"], item["total"])
            return state

        try:
            while (state := shown())["status"] == "running":
                _pause()
        except KeyboardInterrupt:
            try:
                ask_worker(settings, "POST", f"{path}/cancel")
                deadline = time.monotonic() + 120
                # the bars end where the worker stopped, not where the last poll was
                while (state := shown())["status"] == "running":
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(POLL_SECONDS)
            except StoreAccessError:
                raise fail(_interrupted(generation)) from None
            if state["status"] == "running":
                raise fail(_interrupted(generation)) from None
            # it may have ended otherwise before the cancel reached it (switched, say)
    if state["status"] == "interrupted":
        raise fail(_interrupted(generation))
    if state["status"] == "switched-incomplete":
        raise fail(state["error"])
    if state["status"] != "succeeded":
        raise fail(f"replay {generation} failed, live tables untouched: {state['error']}")
    result: dict[str, Any] = state["result"]
    return result


def _open_or_ask(settings: Any, method: str, path: str) -> tuple[Any, Any]:
    """(the worker's answer, None) when a worker owns the embedded store, else
    (None, the opened store)."""
    from streams.access import StoreAccessError, ask_worker
    from streams.store import Store

    if settings.embedded_clickhouse:
        try:
            answer = ask_worker(settings, method, path)
        except StoreAccessError as err:
            raise fail(str(err)) from err
        if answer is not None:
            return answer, None
    return None, Store.open(settings.clickhouse_dsn)


@replay_app.command("list")
def list_() -> None:
    """The generations: which one the boards read, which ones are kept."""
    from streams.access import REPLAY_PATH
    from streams.cli import _settings
    from streams.store.generations import list_generations

    answer, store = _open_or_ask(_settings(), "GET", REPLAY_PATH)
    if answer is not None:
        found = [_generation_from_json(item) for item in answer["generations"]]
    else:
        found = list_generations(store.client)
    table = Table(title="generations")
    for name in ("id", "status", "database", "source", "events", "cases", "started", "detail"):
        table.add_column(name)
    for g in found:
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


def _generation_from_json(item: dict[str, Any]) -> Any:
    from streams.store.generations import GENERATION_COLUMNS, Generation

    values: dict[str, Any] = {name: item[name] for name in GENERATION_COLUMNS}
    for name in ("started_at", "finished_at"):
        if values[name]:
            values[name] = datetime.fromisoformat(values[name])
    return Generation(**values)


@replay_app.command("drop")
def drop(
    replay_id: Annotated[str, typer.Argument(help="a retired, built or failed generation")],
) -> None:
    """Drop a retired, built or failed generation's tables (never the active one)."""
    from streams.access import REPLAY_PATH
    from streams.cli import _settings
    from streams.store.generations import GenerationError
    from streams.store.generations import drop as drop_generation

    answer, store = _open_or_ask(_settings(), "DELETE", f"{REPLAY_PATH}/{replay_id}")
    if answer is not None:
        detail = answer["detail"]
    else:
        try:
            detail = drop_generation(store.client, replay_id).detail
        except GenerationError as err:
            raise fail(str(err)) from err
    console.print(f"dropped generation {replay_id} ({detail})")


@replay_app.command("export")
def export(
    source: Annotated[Path, typer.Argument(help="a JSON Lines file of events")],
    to_parquet: Annotated[Path, typer.Option("--to-parquet", help="the Parquet file to write")],
) -> None:
    """Copy a JSON Lines file of events into a replay Parquet file (column `event`)."""
    from streams.replay import ReplayError, export_parquet

    try:
        rows = export_parquet(source, to_parquet)
    except ReplayError as err:
        raise fail(str(err)) from err
    console.print(f"{rows:,} events written to {to_parquet}")
