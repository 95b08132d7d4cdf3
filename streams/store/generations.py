"""Generations of the derived tables: records, the atomic switch, dropping old ones.

A replay builds a new generation of the derived tables in its own database
(``civicpulse_replay_<id>``, same numbered migrations). The switch exchanges each derived
table of the live database with the replay database's (``EXCHANGE TABLES``, atomic per
table on ClickHouse's Atomic databases and on chDB): the boards see the new rows, and the
previous generation's tables are now in the replay database, kept until
``civicpulse replay drop``. Materialized views follow the table names, so the live
database's views feed the new tables. Documentation: docs/replay.md.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from streams.store.client import StoreError

#: the tables a replay recomputes (views on them follow their names); ``events`` and
#: ``dead_letters`` are shared inputs and never switched
DERIVED_TABLES: tuple[str, ...] = (
    "case_facts",
    "case_sla",
    "case_sla_moved",
    "case_cycles",
    "case_cycles_moved",
    "late_events",
    "sla_alerts",
)
GENERATIONS_TABLE = "generations"
CHECKPOINTS_TABLE = "replay_checkpoints"
REPLAY_DATABASE_PREFIX = "civicpulse_replay_"

RUNNING = "running"
FAILED = "failed"
#: finished without a switch (``--no-switch``): kept for comparison until dropped
BUILT = "built"
ACTIVE = "active"
RETIRED = "retired"
DROPPED = "dropped"

#: what a replay keeps in its own database besides derived tables: its dead letters,
#: its checkpoints and (file replays) the events it adds to the live archive
OWN_TABLES: tuple[str, ...] = ("dead_letters", CHECKPOINTS_TABLE, "events")
#: the materialized views on the derived tables (they follow the table names)
DERIVED_VIEWS: tuple[str, ...] = ("case_sla_moved_mv", "case_cycles_moved_mv")

_ID = re.compile(r"^[a-z0-9_]{1,40}$")

GENERATION_COLUMNS: tuple[str, ...] = (
    "generation",
    "revision",
    "database",
    "source",
    "policies_hash",
    "status",
    "started_at",
    "finished_at",
    "events",
    "cases",
    "dead_letters",
    "detail",
)
CHECKPOINT_COLUMNS: tuple[str, ...] = (
    "generation",
    "revision",
    "source",
    "fingerprint",
    "buckets",
    "buckets_done",
    "events_done",
    "cases_done",
    "updated_at",
    "options",
)


class GenerationError(StoreError):
    """A generation cannot be created, switched or dropped as asked."""


def check_id(generation: str) -> str:
    if not _ID.match(generation):
        raise GenerationError(
            f"invalid replay id {generation!r}: 1-40 characters of a-z, 0-9 and _"
        )
    return generation


def replay_database(generation: str) -> str:
    return REPLAY_DATABASE_PREFIX + check_id(generation)


def new_id(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%d_%H%M%S")


def _revision() -> int:
    return time.time_ns()


@dataclass(frozen=True, slots=True)
class Generation:
    generation: str
    revision: int
    database: str
    source: str
    policies_hash: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    events: int
    cases: int
    dead_letters: int
    detail: str

    def but(self, **changes: Any) -> Generation:
        values = {name: getattr(self, name) for name in GENERATION_COLUMNS}
        values.update(changes, revision=_revision())
        return Generation(**values)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    generation: str
    revision: int
    source: str
    fingerprint: str
    buckets: int
    buckets_done: int
    events_done: int
    cases_done: int
    updated_at: datetime
    #: the options that decide the rows (``ReplayOptions.signature``); "" when unknown
    options: str = ""


def record(client: Client, generation: Generation) -> None:
    """Write a generation's current state to the ``generations`` table of ``client``'s
    database (the live one)."""
    client.insert(
        GENERATIONS_TABLE,
        [[getattr(generation, name) for name in GENERATION_COLUMNS]],
        column_names=list(GENERATION_COLUMNS),
    )


def list_generations(client: Client) -> list[Generation]:
    result = client.query(
        f"SELECT {', '.join(GENERATION_COLUMNS)} FROM {GENERATIONS_TABLE} FINAL "
        "ORDER BY started_at, generation"
    )
    return [Generation(*row) for row in result.result_rows]


def get_generation(client: Client, generation: str) -> Generation | None:
    for item in list_generations(client):
        if item.generation == generation:
            return item
    return None


def new_generation(generation: str, source: str, policies_hash: str) -> Generation:
    return Generation(
        generation=generation,
        revision=_revision(),
        database=replay_database(generation),
        source=source,
        policies_hash=policies_hash,
        status=RUNNING,
        started_at=datetime.now(UTC),
        finished_at=None,
        events=0,
        cases=0,
        dead_letters=0,
        detail="",
    )


def save_checkpoint(client: Client, checkpoint: Checkpoint) -> None:
    """Record progress in the replay database (``client`` is its client)."""
    client.insert(
        CHECKPOINTS_TABLE,
        [[getattr(checkpoint, name) for name in CHECKPOINT_COLUMNS]],
        column_names=list(CHECKPOINT_COLUMNS),
    )


def load_checkpoint(client: Client, generation: str) -> Checkpoint | None:
    result = client.query(
        f"SELECT {', '.join(CHECKPOINT_COLUMNS)} FROM {CHECKPOINTS_TABLE} FINAL "
        "WHERE generation = {g:String}",
        parameters={"g": generation},
    )
    rows = result.result_rows
    return Checkpoint(*rows[0]) if rows else None


def checkpoint(
    generation: str,
    source: str,
    fingerprint: str,
    buckets: int,
    buckets_done: int,
    events_done: int,
    cases_done: int,
    options: str = "",
) -> Checkpoint:
    return Checkpoint(
        generation=generation,
        revision=_revision(),
        source=source,
        fingerprint=fingerprint,
        buckets=buckets,
        buckets_done=buckets_done,
        events_done=events_done,
        cases_done=cases_done,
        updated_at=datetime.now(UTC),
        options=options,
    )


def exchange(
    client: Client, live_database: str, other_database: str, tables: Sequence[str] = DERIVED_TABLES
) -> None:
    """Swap the derived tables of two databases, table by table.

    Each ``EXCHANGE TABLES`` is atomic; ClickHouse has no multi-table exchange, so for the
    few milliseconds between the first and the last one a reader joining two derived
    tables could see one old and one new table (docs/replay.md).
    """
    for table in tables:
        client.command(
            f"EXCHANGE TABLES `{live_database}`.`{table}` AND `{other_database}`.`{table}`"
        )


def switch(client: Client, live_database: str, generation: Generation) -> Generation:
    """Make a finished generation the live one; the previous one is retired into the
    replay database. Returns the new active record."""
    previous = [g for g in list_generations(client) if g.status == ACTIVE]
    exchange(client, live_database, generation.database)
    now = datetime.now(UTC)
    if previous:
        for old in previous:
            record(client, old.but(status=RETIRED, database=generation.database))
    else:
        record(
            client,
            Generation(
                generation=f"before_{generation.generation}",
                revision=_revision(),
                database=generation.database,
                source="live worker (before the first replay)",
                policies_hash="",
                status=RETIRED,
                started_at=generation.started_at,
                finished_at=now,
                events=0,
                cases=0,
                dead_letters=0,
                detail=f"moved out by the switch to {generation.generation}",
            ),
        )
    active = generation.but(status=ACTIVE, database=live_database, finished_at=now)
    record(client, active)
    return active


#: ``detail`` of an active generation whose events are not all in the live archive yet
ARCHIVE_PENDING = "switched; adding its events to the raw archive"


def copy_archive(client: Client, live_database: str, replay_database: str) -> int:
    """Add the raw events a replay archived in its own database to the live archive;
    returns how many were added. Events the live archive already holds (ingested through
    Kafka, or added by an earlier replay) are left as they are, with their partition,
    offset and ingestion time, so the archive's order does not change under them.
    Running it again adds nothing twice. Memory: ClickHouse holds the replayed cases'
    archived (case, event) ids while it runs.

    The columns are named: those both tables have, so a replay database migrated by an
    older release (its ``events`` without ``line``, say) copies into the live one, whose
    missing columns take their defaults."""
    new = (
        f"FROM `{replay_database}`.`events` FINAL WHERE (case_id, event_id) NOT IN ("
        f"SELECT case_id, event_id FROM `{live_database}`.`events` WHERE case_id IN ("
        f"SELECT DISTINCT case_id FROM `{replay_database}`.`events`))"
    )
    count = int(client.query(f"SELECT count() {new}").result_rows[0][0])
    if count:
        theirs = set(_columns_of(client, replay_database, "events"))
        names = ", ".join(
            f"`{name}`" for name in _columns_of(client, live_database, "events") if name in theirs
        )
        client.command(f"INSERT INTO `{live_database}`.`events` ({names}) SELECT {names} {new}")
    return count


def _columns_of(client: Client, database: str, table: str) -> list[str]:
    """A table's column names, in order."""
    return [
        str(name)
        for (name,) in client.query(
            "SELECT name FROM system.columns WHERE database = {db:String} "
            "AND table = {table:String} ORDER BY position",
            parameters={"db": database, "table": table},
        ).result_rows
    ]


def drop(client: Client, generation: str) -> Generation:
    """Drop a retired, built or failed generation's tables; refuse the active one.

    A generation's derived tables are wherever its switch or a later one moved them
    (``database``); its own database also holds its dead letters and checkpoints, and,
    once it switched, the tables of the generation it retired. So each drop removes only
    what belongs to the generation dropped, and a database goes when nothing in it
    belongs to a generation that is kept.
    """
    found = get_generation(client, generation)
    if found is None:
        raise GenerationError(f"no generation {generation!r} (see `civicpulse replay list`)")
    if found.status == ACTIVE:
        raise GenerationError(
            f"generation {generation!r} is active (the boards read it): switch to another one first"
        )
    if found.status == RUNNING:
        raise GenerationError(
            f"generation {generation!r} is running; stop it first (it is marked failed then)"
        )
    if found.status == DROPPED:
        raise GenerationError(f"generation {generation!r} is already dropped ({found.detail})")
    if not found.database.startswith(REPLAY_DATABASE_PREFIX):
        raise GenerationError(f"refusing to drop database {found.database!r}")
    for view in DERIVED_VIEWS:
        client.command(f"DROP VIEW IF EXISTS `{found.database}`.`{view}`")
    for table in DERIVED_TABLES:
        client.command(f"DROP TABLE IF EXISTS `{found.database}`.`{table}`")
    # ``before_<id>`` (the live worker's tables retired by the first switch) has no
    # database of its own, and may be longer than an id
    own = replay_database(generation) if _ID.match(generation) else None
    if own is not None and _database_exists(client, own):
        for table in OWN_TABLES:
            client.command(f"DROP TABLE IF EXISTS `{own}`.`{table}`")
    gone = [
        database
        for database in dict.fromkeys((found.database, own or found.database))
        if _database_exists(client, database) and not _holds_kept_tables(client, database)
    ]
    for database in gone:
        client.command(f"DROP DATABASE IF EXISTS `{database}`")
    detail = f"its tables dropped from {found.database}"
    if gone:
        detail += f"; database {', '.join(gone)} dropped"
    dropped = found.but(status=DROPPED, detail=detail)
    record(client, dropped)
    return dropped


def _database_exists(client: Client, database: str) -> bool:
    result = client.query(
        "SELECT count() FROM system.databases WHERE name = {d:String}", parameters={"d": database}
    )
    return bool(result.result_rows[0][0])


def _holds_kept_tables(client: Client, database: str) -> bool:
    result = client.query(
        "SELECT count() FROM system.tables "
        "WHERE database = {d:String} AND name IN {t:Array(String)}",
        parameters={"d": database, "t": [*DERIVED_TABLES, *OWN_TABLES]},
    )
    return bool(result.result_rows[0][0])
