"""The ``civicpulse`` command line."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from streams import kafka_runtime
from streams.cli_alerts import alerts_app
from streams.cli_dashboards import dashboards_app
from streams.cli_import import import_app
from streams.cli_ops import ops_app
from streams.cli_output import console, fail
from streams.cli_replay import replay_app
from streams.logs import configure
from streams.settings import Settings

app = typer.Typer(no_args_is_help=True, help="civicpulse: how fast and how well a city answers.")
kafka_app = typer.Typer(no_args_is_help=True, help="The project's local Apache Kafka broker.")
app.add_typer(kafka_app, name="kafka")
sla_app = typer.Typer(no_args_is_help=True, help="SLA policies and their published catalogue.")
app.add_typer(sla_app, name="sla")
app.add_typer(alerts_app, name="alerts")
app.add_typer(ops_app, name="ops")
app.add_typer(import_app, name="import")
app.add_typer(dashboards_app, name="dashboards")
app.add_typer(replay_app, name="replay")


def _settings() -> Settings:
    settings = Settings()
    configure(settings.log_level, settings.log_format)
    return settings


def resolve_bootstrap(settings: Settings) -> str:
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    recorded = kafka_runtime.recorded_bootstrap(settings.kafka_dir)
    if recorded is None:
        raise fail(
            "no Kafka broker: start the local one with `civicpulse kafka up`, "
            "or set CIVICPULSE_KAFKA_BOOTSTRAP"
        )
    return recorded


# --- kafka ---------------------------------------------------------------------------


@kafka_app.command("up")
def kafka_up() -> None:
    """Build (first time) and start the local broker; print its bootstrap address."""
    settings = _settings()
    try:
        kafka_runtime.ensure_built()
        info = kafka_runtime.up(
            settings.kafka_dir, port=settings.kafka_port, heap=settings.kafka_heap
        )
    except kafka_runtime.KafkaRuntimeError as err:
        raise fail(str(err)) from err
    console.print(f"Kafka up at [bold]{info.bootstrap}[/] (pid {info.pid}, logs {info.log_file})")


@kafka_app.command("down")
def kafka_down() -> None:
    """Stop the local broker (data is kept)."""
    settings = _settings()
    stopped = kafka_runtime.down(settings.kafka_dir)
    console.print("Kafka stopped" if stopped else "Kafka was not running")


@kafka_app.command("status")
def kafka_status() -> None:
    """Say whether the local broker runs and where."""
    settings = _settings()
    info = kafka_runtime.status(settings.kafka_dir)
    if info is None:
        console.print("Kafka is not running")
        raise typer.Exit(code=3)
    console.print(f"Kafka running at {info.bootstrap} (pid {info.pid})")


# --- sla -----------------------------------------------------------------------------


def _policies(path: str | None) -> Any:
    from streams.core.sla.policy import PolicyError, load_policies

    try:
        return load_policies(path) if path else load_policies()
    except PolicyError as err:
        raise fail(str(err)) from err


@sla_app.command("check")
def sla_check(
    policies: Annotated[str | None, typer.Argument(help="policy file (default: shipped)")] = None,
) -> None:
    """Validate a policy file and its calendars; say what each policy targets."""
    loaded = _policies(policies)
    for policy in loaded.policies:
        console.print(
            f"[bold]{policy.id}[/]: first response {policy.first_response.describe()}, "
            f"resolution {policy.resolution.describe()}"
        )
    console.print(f"{len(loaded.policies)} policies OK ({loaded.source})")


@sla_app.command("catalogue")
def sla_catalogue(
    policies: Annotated[str | None, typer.Argument(help="policy file (default: shipped)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="markdown or json")] = "markdown",
    year: Annotated[
        list[int] | None, typer.Option(help="list this year's calendar exceptions")
    ] = None,
) -> None:
    """Print the SLA catalogue a city can publish: targets, calendars, holidays."""
    from streams.core.sla.catalogue import render_json, render_markdown

    loaded = _policies(policies)
    render = render_json if fmt == "json" else render_markdown
    sys.stdout.write(render(loaded, year or []) + "\n")


# --- worker --------------------------------------------------------------------------


@app.command()
def worker() -> None:
    """Run the Faust worker: ingest, case state, ClickHouse writes, local web views."""
    from streams.app.run import run_worker
    from streams.core.sla.policy import PolicyError

    settings = _settings()
    try:
        run_worker(settings, resolve_bootstrap(settings))
    except PolicyError as err:
        raise fail(f"SLA policies rejected: {err}") from err


@app.command()
def migrate() -> None:
    """Apply pending ClickHouse migrations (the worker also does this at start)."""
    from streams.store import Store

    settings = _settings()
    store = Store.open(settings.clickhouse_dsn)
    console.print(f"applied: {', '.join(store.applied) or 'nothing (up to date)'}")


# --- simulator -----------------------------------------------------------------------


@app.command()
def simulate(
    cases: Annotated[int, typer.Option(help="cases in the simulated history")] = 1000,
    seed: Annotated[int, typer.Option(help="random seed; same seed, same events")] = 1,
    rate: Annotated[float, typer.Option(help="messages per second; 0 = as fast as possible")] = 0,
    live: Annotated[bool, typer.Option(help="endless city whose events track the clock")] = False,
    malformed: Annotated[float, typer.Option(help="share of malformed messages")] = 0.01,
    duplicates: Annotated[float, typer.Option(help="share of duplicated messages")] = 0.02,
    out_of_order: Annotated[float, typer.Option(help="share of late messages")] = 0.02,
    events_per_message: Annotated[
        int, typer.Option(help="events per Kafka message (NDJSON batches when > 1)")
    ] = 200,
) -> None:
    """Produce a synthetic city's events to the raw topic."""
    from streams.app.topology import RAW, topic_layout
    from streams.kafka_runtime.topics import ensure_topics_sync
    from streams.sources.simulator import SimulationConfig, live_stream, produce, simulate

    settings = _settings()
    bootstrap = resolve_bootstrap(settings)
    ensure_topics_sync(bootstrap, topic_layout(settings))
    topic = settings.topic(RAW)
    if live:
        stream = live_stream(
            seed=seed,
            rate_per_s=rate or 200.0,
            malformed_share=malformed,
            duplicate_share=duplicates,
            out_of_order_share=out_of_order,
        )
        asyncio.run(
            produce(
                bootstrap, topic, stream, rate=rate or None, events_per_message=events_per_message
            )
        )
        return
    config = SimulationConfig(
        seed=seed,
        cases=cases,
        malformed_share=malformed,
        duplicate_share=duplicates,
        out_of_order_share=out_of_order,
    )
    history = simulate(config)
    sent = asyncio.run(
        produce(
            bootstrap,
            topic,
            history.emitted,
            rate=rate or None,
            progress=True,
            events_per_message=events_per_message,
        )
    )
    console.print(f"produced {sent} messages ({len(history.events)} valid events) to {topic}")


# --- reading the store ---------------------------------------------------------------


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="a read-only statement (SELECT, WITH, SHOW ...)")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON rows")] = False,
) -> None:
    """Run a read-only query against the store (through the worker when it owns it)."""
    from streams.access import StoreAccessError, run_query

    settings = _settings()
    try:
        columns, rows = run_query(settings, sql)
    except StoreAccessError as err:
        raise fail(str(err)) from err
    if as_json:
        for row in rows:
            sys.stdout.write(json.dumps(dict(zip(columns, row, strict=True)), default=str) + "\n")
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*(str(v) for v in row))
    console.print(table)


@app.command()
def summary(
    live: Annotated[bool, typer.Option(help="refresh until Ctrl-C")] = False,
    interval: Annotated[float, typer.Option(help="seconds between refreshes")] = 2.0,
) -> None:
    """Show events/s, open cases, time to first response by agency, dead letters."""
    from streams.summary_view import show_summary

    settings = _settings()
    show_summary(settings, live=live, interval=interval, console=console)


@app.command()
def report(
    month: Annotated[str, typer.Option(help="the month of intake, YYYY-MM")],
    out: Annotated[
        str | None, typer.Option(help="the HTML file to write (default report-YYYY-MM.html)")
    ] = None,
) -> None:
    """Write the public monthly report: the three rates with their denominators and both
    rankings with their inputs, as one self-contained HTML file."""
    from pathlib import Path

    from streams.access import StoreAccessError, report_data
    from streams.reporting.html import render_report

    settings = _settings()
    try:
        data = report_data(settings, month)
    except StoreAccessError as err:
        raise fail(str(err)) from err
    target = Path(out or f"report-{data['month']}.html")
    target.write_text(render_report(data), encoding="utf-8")
    city = data.get("city") or {}
    console.print(f"wrote {target} ({city.get('cases', 0)} cases opened in {data['month']})")


@app.command()
def demo(
    rate: Annotated[float, typer.Option(help="simulated messages per second")] = 2000,
    backfill: Annotated[int, typer.Option(help="cases of history produced first")] = 5000,
) -> None:
    """Start Kafka, a worker and the simulator, and show the live summary. Ctrl-C stops all."""
    from streams.demo import run_demo

    settings = _settings()
    run_demo(settings, rate=rate, backfill_cases=backfill, console=console)


def main(argv: list[str] | None = None) -> Any:
    return app(args=argv)


if __name__ == "__main__":  # pragma: no cover
    main()
