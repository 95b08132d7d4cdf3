"""``civicpulse alerts``: the alert topic, for city operations."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import Annotated

import typer
from rich.markup import escape

from streams.app.topology import ALERTS
from streams.cli_output import console, fail

alerts_app = typer.Typer(no_args_is_help=True, help="SLA alerts (warnings and breaches).")

_STYLE = {"sla.breached": "bold red", "sla.warning": "yellow"}


@alerts_app.command("tail")
def tail(
    agency: Annotated[
        list[str] | None, typer.Option(help="only this agency (repeat for several)")
    ] = None,
    alert_type: Annotated[
        list[str] | None,
        typer.Option("--type", help="sla.warning or sla.breached (repeat for both)"),
    ] = None,
    from_beginning: Annotated[
        bool, typer.Option(help="replay the topic from its start, not only new alerts")
    ] = False,
    limit: Annotated[int, typer.Option(help="stop after this many alerts (0: never)")] = 0,
    idle: Annotated[
        float, typer.Option(help="stop after this many seconds without a message (0: never)")
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON alert per line")] = False,
) -> None:
    """Show alerts as the workers raise them. Ctrl-C stops."""
    from streams.alerts_tail import tail_alerts
    from streams.cli import _settings, resolve_bootstrap

    for kind in alert_type or []:
        if kind not in _STYLE:
            raise fail(f"unknown alert type {kind!r}: use sla.warning or sla.breached")
    settings = _settings()
    bootstrap = resolve_bootstrap(settings)
    topic = settings.topic(ALERTS)

    async def run() -> None:
        shown = 0
        async for item in tail_alerts(
            bootstrap,
            topic,
            from_beginning=from_beginning,
            agencies=agency or (),
            types=alert_type or (),
            idle_timeout=idle or None,
        ):
            if item.alert is None:
                where = f"{topic}/{item.partition}@{item.offset}"
                console.print(f"[red]not an alert[/] at {where}: {escape(item.error or '')}")
                continue
            if as_json:
                sys.stdout.write(json.dumps(item.alert) + "\n")
                sys.stdout.flush()
            else:
                a = item.alert
                style = _STYLE[a["type"]]
                what = (
                    "BREACHED"
                    if a["type"] == "sla.breached"
                    else f"{round(a['threshold'] * 100)}% used"
                )
                console.print(
                    f"{a['fired_at']}  [{style}]{what:>9}[/]  {escape(a['agency'] or '-')}"
                    f"  {escape(a['case_id'])}  {a['target']} (cycle {a['cycle']})"
                    f"  due {a['due_at']}  {escape(a['category'])}/{escape(a['district'])}"
                )
            shown += 1
            if limit and shown >= limit:
                return

    if not as_json:
        console.print(f"[dim]alerts on {topic} at {bootstrap} (Ctrl-C stops)[/]")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
