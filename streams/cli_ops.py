"""``civicpulse ops``: the monitoring configuration in ``ops/`` (Prometheus, Alertmanager)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streams.ops_check import DEFAULT_ALERTMANAGER, DEFAULT_PROMETHEUS, OpsCheckError, check

ops_app = typer.Typer(
    no_args_is_help=True, help="The Prometheus and Alertmanager configuration in ops/."
)


@ops_app.command("check")
def ops_check(
    prometheus: Annotated[
        Path, typer.Option(help="Prometheus configuration; its rule_files are checked too")
    ] = DEFAULT_PROMETHEUS,
    alertmanager: Annotated[
        Path, typer.Option(help="Alertmanager configuration")
    ] = DEFAULT_ALERTMANAGER,
) -> None:
    """Check the configs with promtool and amtool, and the rules' metric names against the
    worker's metrics. Prints `file:line: reason` for each problem and exits 1."""
    try:
        report = check(prometheus, alertmanager)
    except OpsCheckError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from err
    if not report.ok:
        for problem in report.problems:
            typer.echo(str(problem), err=True)
        typer.echo(f"{len(report.problems)} problem(s) found", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"{prometheus}: OK (promtool check config)")
    for rule_file in report.rule_files:
        typer.echo(f"{rule_file}: OK (promtool check rules)")
    typer.echo(
        f"{report.rules} rules use {len(report.metric_names)} metric names, "
        "all exposed by the worker"
    )
    typer.echo(f"{alertmanager}: OK (amtool check-config)")
