"""Numbered, idempotent schema migrations: ``schemas/clickhouse/NNNN_name.sql``.

A migration file holds one or more statements, each ending with ``;`` at the end of a
line, each idempotent (``CREATE ... IF NOT EXISTS``, ``ALTER ... ADD COLUMN IF NOT EXISTS``).
Applied migrations are recorded in ``schema_migrations`` (version, name, SHA-256 of the
file, applied_at). A migration whose file changed after it was applied is refused: write
a new migration instead. Two processes migrating one server at once is harmless: every
statement is idempotent and the record table replaces rows by version.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from clickhouse_connect.driver.client import Client

from streams.store.client import StoreError

#: the migrations of a source checkout / editable install; ``$CIVICPULSE_CLICKHOUSE_MIGRATIONS``
#: (a directory) overrides it
MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "schemas" / "clickhouse"
MIGRATIONS_DIR_ENV = "CIVICPULSE_CLICKHOUSE_MIGRATIONS"
MIGRATIONS_TABLE = "schema_migrations"

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_STATEMENT_END = re.compile(r";[ \t]*$", re.MULTILINE)
_COMMENT_LINE = re.compile(r"^\s*--.*$", re.MULTILINE)

_CREATE_MIGRATIONS_TABLE = f"""
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE}
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY version
"""

_apply_lock = threading.Lock()


class MigrationError(StoreError):
    """The migrations on disk and the ones recorded in the database disagree."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str  # the file name without .sql, e.g. "0001_events"
    path: Path
    sql: str
    checksum: str  # SHA-256 of the file's bytes, hex

    @property
    def statements(self) -> list[str]:
        return split_statements(self.sql)


@dataclass(frozen=True, slots=True)
class AppliedMigration:
    version: int
    name: str
    checksum: str
    applied_at: datetime


def split_statements(sql: str) -> list[str]:
    """Split on ``;`` at a line end; drop empty and comment-only pieces."""
    statements = []
    for piece in _STATEMENT_END.split(sql):
        if _COMMENT_LINE.sub("", piece).strip():
            statements.append(piece.strip())
    return statements


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """The migration files of ``directory`` (default: ``schemas/clickhouse``), in order."""
    directory = directory or Path(os.environ.get(MIGRATIONS_DIR_ENV) or MIGRATIONS_DIR)
    if not directory.is_dir():
        raise MigrationError(f"no migrations directory at {directory}")
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path}: migration files are named NNNN_name.sql")
        version = int(match.group(1))
        if version in migrations:
            raise MigrationError(
                f"two migrations numbered {version:04d}: {migrations[version].path.name} "
                f"and {path.name}"
            )
        data = path.read_bytes()
        migrations[version] = Migration(
            version=version,
            name=path.stem,
            path=path,
            sql=data.decode("utf-8"),
            checksum=hashlib.sha256(data).hexdigest(),
        )
    return [migrations[v] for v in sorted(migrations)]


def applied_migrations(client: Client) -> dict[int, AppliedMigration]:
    """The migrations recorded in the database, by version (creates the record table)."""
    client.command(_CREATE_MIGRATIONS_TABLE)
    result = client.query(
        f"SELECT version, name, checksum, applied_at FROM {MIGRATIONS_TABLE} FINAL ORDER BY version"
    )
    return {
        int(row[0]): AppliedMigration(
            version=int(row[0]), name=str(row[1]), checksum=str(row[2]), applied_at=row[3]
        )
        for row in result.result_rows
    }


def _pending(client: Client, directory: Path | None) -> list[Migration]:
    available = load_migrations(directory)
    applied = applied_migrations(client)
    known = {m.version for m in available}
    unknown = sorted(set(applied) - known)
    if unknown:
        names = ", ".join(applied[v].name for v in unknown)
        raise MigrationError(
            f"the database has migrations this code does not know: {names} "
            "(it was migrated by a newer version of civicpulse)"
        )
    for migration in available:
        record = applied.get(migration.version)
        if record is not None and record.checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.name} was changed after it was applied "
                f"(recorded checksum {record.checksum[:12]}..., file {migration.path} has "
                f"{migration.checksum[:12]}...): never edit an applied migration, "
                "add a new numbered one"
            )
    return [m for m in available if m.version not in applied]


def pending_migrations(client: Client, directory: Path | None = None) -> list[str]:
    """Names of the migrations not applied yet, in order.

    Raises MigrationError when an applied migration's file changed or is unknown.
    """
    return [m.name for m in _pending(client, directory)]


def apply_migrations(client: Client, directory: Path | None = None) -> list[str]:
    """Apply the pending migrations in order; return the names applied (empty: up to date).

    Raises MigrationError, before applying anything, when an applied migration's file
    changed or is unknown.
    """
    with _apply_lock:
        applied: list[str] = []
        for migration in _pending(client, directory):
            for statement in migration.statements:
                try:
                    client.command(statement)
                except Exception as err:
                    raise MigrationError(
                        f"migration {migration.name} failed: {err}\n{statement}"
                    ) from err
            client.insert(
                MIGRATIONS_TABLE,
                [[migration.version, migration.name, migration.checksum, datetime.now(UTC)]],
                column_names=["version", "name", "checksum", "applied_at"],
            )
            applied.append(migration.name)
        return applied
