"""The ClickHouse store: client factory (chDB or server), migrations, batch writer, reads.

Documentation: docs/storage.md. This package never imports faust.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from clickhouse_connect.driver.client import Client

from streams.store.client import (
    StoreError,
    StoreInUseError,
    close_client,
    close_clients,
    open_client,
    parse_dsn,
)
from streams.store.migrations import MigrationError, apply_migrations, pending_migrations
from streams.store.writer import BatchWriter

__all__ = [
    "BatchWriter",
    "Client",
    "MigrationError",
    "Store",
    "StoreError",
    "StoreInUseError",
    "apply_migrations",
    "close_clients",
    "open_client",
    "pending_migrations",
]


@dataclass(slots=True)
class Store:
    """An opened, migrated store: its client, a batch writer and what was migrated."""

    dsn: str
    client: Client
    writer: BatchWriter
    #: names of the migrations applied when the store was opened (empty: was up to date)
    applied: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, dsn: str, *, database: str | None = None, migrate: bool = True) -> Store:
        """Open (cached per process) the store at ``dsn`` and apply pending migrations."""
        client = open_client(dsn, database=database)
        applied = apply_migrations(client) if migrate else []
        return cls(dsn=dsn, client=client, writer=BatchWriter(client), applied=applied)

    def describe(self) -> str:
        """The store for logs: the DSN without password, the database, the engine version."""
        target = parse_dsn(self.dsn)
        version = getattr(self.client, "server_version", None) or "?"
        database = self.client.database or "default"
        return f"{target.redacted} database={database} (ClickHouse {version})"

    def close(self) -> None:
        """Close this store's client (for chDB: releases the directory to other processes)."""
        close_client(self.client)
