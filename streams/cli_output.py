"""What every ``civicpulse`` sub-command prints with: the consoles and the one error form
(``error: ...`` on standard error, exit code 1)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Print ``message`` as an error; ``raise`` the result to exit with code 1."""
    err_console.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code=1)


def summary_table(title: str, value: str = "value") -> Table:
    """The two-column table a long command ends with (what, and its number)."""
    table = Table(title=escape(title), show_header=False)
    table.add_column("what")
    table.add_column(value, justify="right")
    return table
