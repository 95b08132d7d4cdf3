"""The live terminal summary: what the pipeline does and what the store now knows."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from streams.access import StoreAccessError, fetch_summary
from streams.settings import Settings


def render(data: dict[str, Any]) -> Group:
    pipeline = data.get("pipeline") or {}
    store = data.get("store") or {}
    head = Table.grid(padding=(0, 3))
    head.add_row(
        f"[bold]{pipeline.get('events_per_second', 0):,.0f}[/] events/s",
        f"[bold]{store.get('events', 0):,}[/] events stored",
        f"[bold]{store.get('cases', 0):,}[/] cases",
        f"[bold]{store.get('open_cases', 0):,}[/] open",
        f"[bold red]{store.get('dead_letters', 0):,}[/] dead letters",
        f"[bold yellow]{pipeline.get('late_events', 0):,}[/] late",
    )
    alerts = store.get("alerts_by_type") or {}
    head.add_row(
        f"[bold yellow]{alerts.get('sla.warning', 0):,}[/] SLA warnings",
        f"[bold red]{alerts.get('sla.breached', 0):,}[/] SLA breaches",
        "",
        "",
        "",
        "[dim]civicpulse alerts tail[/]",
    )
    agencies = Table(title="Median time to first response, by agency", expand=False)
    agencies.add_column("agency")
    agencies.add_column("cases", justify="right")
    agencies.add_column("answered", justify="right")
    agencies.add_column("median", justify="right")
    for row in store.get("first_response_by_agency", []):
        agencies.add_row(
            str(row.get("agency") or "(unassigned)"),
            f"{row.get('cases', 0):,}",
            f"{row.get('answered', 0):,}",
            _duration(row.get("median_seconds")),
        )
    reasons = Table(title="Dead letters by reason")
    reasons.add_column("reason")
    reasons.add_column("count", justify="right")
    for reason, count in sorted((store.get("dead_letters_by_reason") or {}).items()):
        reasons.add_row(reason, f"{count:,}")
    worker = (
        f"worker up {pipeline.get('uptime_seconds', 0):.0f}s, "
        f"{pipeline.get('batches', 0)} batches, "
        f"last batch {pipeline.get('last_batch_seconds', 0) * 1000:.0f} ms"
        if pipeline
        else "no worker running: numbers read from the store"
    )
    return Group(Panel(head, title="civicpulse", subtitle=worker), agencies, reasons)


def _duration(seconds: Any) -> str:
    if seconds is None:
        return "-"
    value = float(seconds)
    if value < 3600:
        return f"{value / 60:.0f} min"
    if value < 86400 * 2:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} d"


def show_summary(settings: Settings, live: bool, interval: float, console: Console) -> None:
    if not live:
        console.print(render(fetch_summary(settings)))
        return
    with Live(console=console, refresh_per_second=4) as screen:
        while True:
            try:
                screen.update(render(fetch_summary(settings)))
            except StoreAccessError as err:
                screen.update(Panel(f"waiting for the store: {err}", title="civicpulse"))
            time.sleep(interval)
