"""The ClickHouse store adapter, on embedded chDB (and on a server when one is given).

Backends: always embedded chDB in a temporary directory; also a ClickHouse server when
``CIVICPULSE_TEST_CLICKHOUSE_URL`` is set (e.g. ``http://default:@localhost:8123``).

chDB hosts one data directory per process, and clients are cached per process, so the
chDB directory is module-scoped (released at the end of the module by close_clients())
and every test gets its own database in it.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import threading
import types
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Union, cast, get_args, get_origin

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError, ProgrammingError

from streams.contract.alerts import ALERT_SCHEMA_PATH
from streams.core.facts import CASE_FACT_COLUMNS, CaseFacts
from streams.store import Store
from streams.store.client import (
    Client,
    StoreError,
    StoreInUseError,
    close_client,
    close_clients,
    open_client,
    parse_dsn,
)
from streams.store.migrations import (
    MIGRATIONS_DIR,
    MigrationError,
    apply_migrations,
    load_migrations,
    pending_migrations,
    split_statements,
)
from streams.store.queries import (
    OPEN_STATUSES,
    ReadOnlyViolation,
    check_read_only,
    query_rows,
    summary,
)
from streams.store.rows import (
    CASE_FACTS_TABLE_COLUMNS,
    DEAD_LETTER_COLUMNS,
    EVENT_COLUMNS,
    SLA_ALERT_COLUMNS,
    DeadLetterRow,
    EventRow,
    SlaAlertRow,
)
from streams.store.writer import BatchWriter, is_transient

ROOT = Path(__file__).resolve().parents[1]
SERVER_URL_ENV = "CIVICPULSE_TEST_CLICKHOUSE_URL"
BACKENDS = ["chdb"] + (["server"] if os.environ.get(SERVER_URL_ENV) else [])
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chdb_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """This module's chDB directory; released at the end so other modules may open theirs."""
    close_clients()
    yield f"chdb://{tmp_path_factory.mktemp('store') / 'clickhouse'}"
    close_clients()


@pytest.fixture(scope="module", params=BACKENDS)
def backend_dsn(request: pytest.FixtureRequest, chdb_dsn: str) -> str:
    if request.param == "chdb":
        return chdb_dsn
    return os.environ[SERVER_URL_ENV]


@pytest.fixture
def fresh(backend_dsn: str) -> Iterator[Client]:
    """A client on a new, empty database of the backend."""
    database = f"test_{uuid.uuid4().hex[:12]}"
    client = open_client(backend_dsn, database=database)
    yield client
    close_client(client)
    open_client(backend_dsn).command(f"DROP DATABASE IF EXISTS `{database}`")


@pytest.fixture
def client(fresh: Client) -> Client:
    """A client on a new, migrated database."""
    apply_migrations(fresh)
    return fresh


@pytest.fixture
def writer(client: Client) -> BatchWriter:
    return BatchWriter(client)


# --- builders ------------------------------------------------------------------------------------


def event_row(case_id: str, n: int, type_: str = "opened", offset: int = 0) -> EventRow:
    return EventRow(
        event_id=f"{case_id}-e{n:04d}",
        case_id=case_id,
        type=type_,
        occurred_at=T0 + timedelta(minutes=n),
        source="simulator",
        schema_version=1,
        event_json=json.dumps({"case_id": case_id, "n": n}),
        ingested_at=T0 + timedelta(hours=1),
        kafka_partition=n % 4,
        kafka_offset=offset + n,
        line=n % 3,
    )


def facts(case_id: str, **changes: Any) -> CaseFacts:
    base = CaseFacts(
        case_id=case_id,
        version=1,
        status="open",
        opened_at=T0,
        channel="hotline",
        category="roads",
        urgency="normal",
        district="d1",
        sub_district="d1-s1",
        agency="",
        sub_unit="",
        first_dispatched_at=None,
        signed_for_at=None,
        first_contact_at=None,
        first_resolved_at=None,
        resolved_at=None,
        closed_at=None,
        closure_reason="",
        transfers=0,
        returns=0,
        ping_pongs=0,
        pauses=0,
        reopens=0,
        callback_reached=False,
        citizen_confirms_solved=None,
        satisfaction="",
        last_event_at=T0,
    )
    return replace(base, **changes)


def dead_letter(offset: int, reason: str = "not_json", raw: bytes = b"{oops") -> DeadLetterRow:
    return DeadLetterRow(
        topic="civicpulse.events.raw",
        partition=1,
        offset=offset,
        line=0,
        key="case-1",
        reason=reason,
        detail=f"detail {offset}",
        raw=raw,
        case_id="",
        received_at=T0,
    )


def scalar(client: Client, sql: str) -> Any:
    return client.query(sql).result_rows[0][0]


def table_columns(client: Client, table: str) -> list[tuple[str, str]]:
    return [
        (str(name), str(type_))
        for name, type_ in client.query(
            "SELECT name, type FROM system.columns "
            "WHERE database = currentDatabase() AND table = {t:String} ORDER BY position",
            parameters={"t": table},
        ).result_rows
    ]


# --- DSNs and the client factory -----------------------------------------------------------------


def test_parse_dsn_forms() -> None:
    chdb = parse_dsn("chdb:///tmp/x/../y/clickhouse?database=civic")
    assert (chdb.kind, chdb.path, chdb.database) == ("chdb", "/tmp/y/clickhouse", "civic")
    assert parse_dsn("chdb:///data/ch").database is None

    http = parse_dsn("http://reader:s3cret@ch.example:8123/civic?compress=false")
    assert (http.kind, http.database) == ("http", "civic")
    assert http.server_dsn == "http://reader:s3cret@ch.example:8123?compress=false"
    assert "s3cret" not in http.redacted and "reader:***@ch.example:8123/civic" in http.redacted
    assert parse_dsn("https://ch.example").database is None

    for bad in ("chdb://relative/path", "chdb:relative", "tcp://host:9000", "http:///db"):
        with pytest.raises(StoreError):
            parse_dsn(bad)


def test_unreachable_server_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot connect") as caught:
        open_client("http://u:s3cret@127.0.0.1:1/civic?connect_timeout=2")
    assert "s3cret" not in str(caught.value)


def test_open_client_is_cached_per_dsn_and_database(backend_dsn: str) -> None:
    database = f"test_{uuid.uuid4().hex[:12]}"
    first = open_client(backend_dsn, database=database)
    try:
        assert open_client(backend_dsn, database=database) is first
        assert open_client(backend_dsn) is not first  # another database, another client
        assert first.database == database
        assert scalar(first, "SELECT currentDatabase()") == database  # created
    finally:
        close_client(first)
        open_client(backend_dsn).command(f"DROP DATABASE IF EXISTS `{database}`")


def test_chdb_second_process_is_refused(chdb_dsn: str) -> None:
    open_client(chdb_dsn)  # this process holds the directory
    code = (
        "import sys\n"
        "from streams.store.client import StoreInUseError, open_client\n"
        "try:\n"
        f"    open_client({chdb_dsn!r})\n"
        "except StoreInUseError as err:\n"
        "    print('refused:', err)\n"
        "    sys.exit(0)\n"
        "sys.exit(3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Cannot lock file" in done.stdout


def test_chdb_hosts_one_directory_per_process(chdb_dsn: str, tmp_path: Path) -> None:
    held = open_client(chdb_dsn)
    with pytest.raises(StoreError, match="one per process") as caught:
        open_client(f"chdb://{tmp_path / 'other'}")
    assert not isinstance(caught.value, StoreInUseError)
    assert scalar(held, "SELECT 1") == 1  # the open engine is unharmed


def test_shared_client_is_thread_safe(client: Client) -> None:
    """The worker inserts from an executor thread while web views query."""
    writer = BatchWriter(client)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for batch in range(20):
                writer.write_events([event_row(f"c{batch}-{i}", 0) for i in range(500)])
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    def read() -> None:
        try:
            for _ in range(40):
                assert scalar(client, "SELECT count() FROM events") % 500 == 0
                query_rows(client, "SELECT count() FROM events FINAL")
                summary(client)
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert scalar(client, "SELECT count() FROM events FINAL") == 20 * 500


# --- migrations ----------------------------------------------------------------------------------


def test_migrations_apply_once_and_are_idempotent(fresh: Client) -> None:
    names = [m.name for m in load_migrations()]
    assert names[:3] == ["0001_events", "0002_case_facts", "0003_dead_letters"]
    assert pending_migrations(fresh) == names
    assert apply_migrations(fresh) == names
    assert apply_migrations(fresh) == []
    assert pending_migrations(fresh) == []
    recorded = fresh.query(
        "SELECT version, name, checksum FROM schema_migrations FINAL ORDER BY version"
    ).result_rows
    assert [(v, n, c) for v, n, c in recorded] == [
        (m.version, m.name, m.checksum) for m in load_migrations()
    ]
    tables = {row[0] for row in fresh.query("SHOW TABLES").result_rows}
    assert {"events", "case_facts", "dead_letters", "schema_migrations"} <= tables


def test_every_migration_statement_is_idempotent(fresh: Client) -> None:
    for migration in load_migrations():
        statements = migration.statements
        assert statements, migration.name
        for statement in statements:
            assert "IF NOT EXISTS" in " ".join(statement.upper().split()), statement
            fresh.command(statement)
            fresh.command(statement)  # again: no error
    # the recorded run on top of already existing tables still works
    assert len(apply_migrations(fresh)) == len(load_migrations())


def test_split_statements() -> None:
    sql = "-- header;\nCREATE TABLE a (x String DEFAULT ';');\n\n-- only a comment\nSELECT 1;\n"
    # "-- header;" ends with ";" at the line end: a comment-only piece, dropped
    assert split_statements(sql) == [
        "CREATE TABLE a (x String DEFAULT ';')",
        "-- only a comment\nSELECT 1",
    ]


def copy_migrations(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, target)
    return target


def test_changed_migration_is_refused(fresh: Client, tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    apply_migrations(fresh, directory)
    edited = directory / "0002_case_facts.sql"
    edited.write_text(edited.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(MigrationError, match="0002_case_facts was changed after it was applied"):
        apply_migrations(fresh, directory)
    with pytest.raises(MigrationError, match="0002_case_facts"):
        pending_migrations(fresh, directory)


def test_new_migration_applies_alone(fresh: Client, tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    apply_migrations(fresh, directory)
    (directory / "0099_extra.sql").write_text(
        "CREATE TABLE IF NOT EXISTS extra_a (x UInt8) ENGINE = MergeTree ORDER BY x;\n"
        "ALTER TABLE extra_a ADD COLUMN IF NOT EXISTS y String;\n"
    )
    assert pending_migrations(fresh, directory) == ["0099_extra"]
    assert apply_migrations(fresh, directory) == ["0099_extra"]
    assert [name for name, _ in table_columns(fresh, "extra_a")] == ["x", "y"]


def test_unknown_applied_migration_is_refused(fresh: Client, tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    apply_migrations(fresh, directory)
    (directory / "0003_dead_letters.sql").unlink()
    with pytest.raises(MigrationError, match="does not know: 0003_dead_letters"):
        apply_migrations(fresh, directory)


def test_badly_named_migration_is_refused(tmp_path: Path) -> None:
    directory = copy_migrations(tmp_path)
    (directory / "4_oops.sql").write_text("SELECT 1;\n")
    with pytest.raises(MigrationError, match="NNNN_name"):
        load_migrations(directory)


# --- tables match the Python rows ----------------------------------------------------------------

LOW_CARDINALITY_FACTS = {
    "status", "channel", "category", "urgency", "district", "sub_district",
    "agency", "sub_unit", "closure_reason", "satisfaction",
}  # fmt: skip


def expected_type(name: str, annotation: Any) -> str:
    """The ClickHouse type a CaseFacts field must have (docs/storage.md)."""
    nullable = False
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        nullable, annotation = True, args[0]
    base = {
        datetime: "DateTime64(3, 'UTC')",
        int: "UInt32",
        bool: "Bool",
        str: "LowCardinality(String)" if name in LOW_CARDINALITY_FACTS else "String",
    }[annotation]
    return f"Nullable({base})" if nullable else base


def test_case_facts_table_matches_case_facts(client: Client) -> None:
    columns = table_columns(client, "case_facts")
    assert tuple(name for name, _ in columns) == (*CASE_FACT_COLUMNS, "updated_at")
    assert (*CASE_FACT_COLUMNS, "updated_at") == CASE_FACTS_TABLE_COLUMNS
    hints = {f.name: f.type for f in fields(CaseFacts)}
    resolved = {
        name: eval(hint, vars(sys.modules[CaseFacts.__module__])) if isinstance(hint, str) else hint
        for name, hint in hints.items()
    }
    expected = [(name, expected_type(name, resolved[name])) for name in CASE_FACT_COLUMNS]
    assert columns == [*expected, ("updated_at", "DateTime64(3, 'UTC')")]


def test_events_and_dead_letters_tables_match_rows(client: Client) -> None:
    assert tuple(name for name, _ in table_columns(client, "events")) == EVENT_COLUMNS
    assert tuple(name for name, _ in table_columns(client, "dead_letters")) == DEAD_LETTER_COLUMNS


def test_alert_table_row_and_message_schema_name_the_same_fields(client: Client) -> None:
    assert tuple(name for name, _ in table_columns(client, "sla_alerts")) == SLA_ALERT_COLUMNS
    schema = json.loads(ALERT_SCHEMA_PATH.read_text())
    assert set(schema["required"]) - {"schema_version"} == set(SLA_ALERT_COLUMNS)
    assert set(schema["properties"]) == set(schema["required"])


# --- the writer ----------------------------------------------------------------------------------


def test_same_events_twice_count_once(client: Client, writer: BatchWriter) -> None:
    rows = [event_row(f"case-{c}", n) for c in range(50) for n in range(4)]
    assert writer.write_events(rows) == 200
    assert writer.write_events(rows) == 200  # a redelivered batch: a second part
    assert writer.write_events(rows[:10]) == 10  # and a partial one
    assert scalar(client, "SELECT count() FROM events FINAL") == 200
    assert scalar(client, "SELECT uniqExact(event_id) FROM events") == 200
    assert summary(client)["events"] == 200
    assert summary(client)["cases"] == 50
    stored = client.query(
        "SELECT * FROM events FINAL WHERE event_id = {id:String}",
        parameters={"id": rows[5].event_id},
    ).result_rows
    assert [EventRow(*row) for row in stored] == [rows[5]]


def test_case_facts_highest_version_wins_in_any_order(client: Client, writer: BatchWriter) -> None:
    v1 = facts("case-a", version=1)
    v2 = facts("case-a", version=2, agency="water", first_dispatched_at=T0 + timedelta(hours=1))
    v3 = facts("case-a", version=3, agency="roads", status="resolved", transfers=1)
    for batch in ([v3], [v1], [v2], [v1, v3]):  # the newest first, then older ones
        writer.write_case_facts(batch)
    rows = client.query("SELECT * FROM case_facts FINAL").result_rows
    assert len(rows) == 1
    assert CaseFacts(*rows[0][:-1]) == v3
    assert scalar(client, "SELECT argMax(agency, version) FROM case_facts") == "roads"


def test_case_facts_round_trip_every_field(client: Client, writer: BatchWriter) -> None:
    full = facts(
        "case-full",
        version=14,
        status="closed",
        agency="sanitation",
        sub_unit="north",
        first_dispatched_at=T0 + timedelta(minutes=5, milliseconds=123),
        signed_for_at=T0 + timedelta(minutes=9),
        first_contact_at=T0 + timedelta(minutes=30),
        first_resolved_at=T0 + timedelta(days=1),
        resolved_at=T0 + timedelta(days=2),
        closed_at=T0 + timedelta(days=3),
        closure_reason="fixed",
        transfers=2,
        returns=1,
        ping_pongs=1,
        pauses=3,
        reopens=1,
        callback_reached=True,
        citizen_confirms_solved=False,
        satisfaction="basically_satisfied",
        last_event_at=T0 + timedelta(days=3),
    )
    empty = facts("case-empty", status="unknown", opened_at=None, channel="", urgency="")
    stamp = T0 + timedelta(days=10)
    assert writer.write_case_facts([full, empty], updated_at=stamp) == 2
    rows = client.query("SELECT * FROM case_facts FINAL ORDER BY case_id").result_rows
    assert [CaseFacts(*row[:-1]) for row in rows] == [empty, full]
    assert {row[-1] for row in rows} == {stamp}


def test_case_facts_updated_at_defaults_to_now(client: Client, writer: BatchWriter) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    writer.write_case_facts([facts("case-now")])
    assert scalar(client, "SELECT updated_at FROM case_facts") >= before


def test_dead_letters_keep_raw_bytes_exactly(client: Client, writer: BatchWriter) -> None:
    raws = [
        bytes(range(256)),  # every byte value, NUL included
        b'\xff\xfe{"case_id": "c\xc3\x28"}',  # invalid UTF-8
        b"",
        "plain text, caf\u00e9".encode(),
    ]
    rows = [dead_letter(i, reason="not_utf8", raw=raw) for i, raw in enumerate(raws)]
    writer.write_dead_letters(rows)
    writer.write_dead_letters(rows)  # redelivered
    stored = client.query(
        "SELECT `offset`, raw, key FROM dead_letters FINAL ORDER BY `offset`",
        column_formats={"raw": "bytes"},
    ).result_rows
    assert [(offset, raw) for offset, raw, _ in stored] == list(enumerate(raws))
    assert {key for *_, key in stored} == {"case-1"}
    assert summary(client)["dead_letters"] == len(raws)


def test_one_insert_per_table_per_call(client: Client) -> None:
    spy = InsertSpy(client)
    writer = BatchWriter(cast(Client, spy))
    writer.write_events([event_row(f"c{i}", i) for i in range(1000)])
    writer.write_case_facts([facts(f"c{i}") for i in range(1000)])
    writer.write_dead_letters([dead_letter(i) for i in range(1000)])
    writer.write_events([])
    writer.write_case_facts([])
    writer.write_dead_letters([])
    assert spy.inserts == ["events", "case_facts", "dead_letters"]
    written = {table: n for table, n in writer.stats()["rows_written"].items() if n}
    assert written == {"events": 1000, "case_facts": 1000, "dead_letters": 1000}
    assert writer.stats()["inserts"] == 3


class InsertSpy:
    """Delegates to a real client; records inserts; can fail the first ``failures`` ones."""

    def __init__(self, client: Client, failures: Sequence[BaseException] = ()) -> None:
        self._client = client
        self._failures = list(failures)
        self.inserts: list[str] = []

    def insert(self, table: str, *args: Any, **kwargs: Any) -> Any:
        self.inserts.append(table)
        if self._failures:
            raise self._failures.pop(0)
        return self._client.insert(table, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_writer_retries_transient_errors_with_backoff(client: Client) -> None:
    flaky = InsertSpy(
        client, [OperationalError("connection reset"), DatabaseError("parts", code=252)]
    )
    sleeps: list[float] = []
    writer = BatchWriter(cast(Client, flaky), sleep=sleeps.append, backoff_initial=0.1)
    assert writer.write_events([event_row("c1", 1)]) == 1
    assert sleeps == [0.1, 0.2]
    assert (writer.write_errors, writer.write_retries, writer.write_failures) == (2, 2, 0)
    assert scalar(client, "SELECT count() FROM events FINAL") == 1


def test_writer_gives_up_after_max_attempts(client: Client) -> None:
    errors = [OperationalError(f"down {i}") for i in range(3)]
    writer = BatchWriter(
        cast(Client, InsertSpy(client, errors)), max_attempts=3, sleep=lambda _: None
    )
    with pytest.raises(OperationalError, match="down 2"):
        writer.write_events([event_row("c1", 1)])
    assert (writer.write_errors, writer.write_retries, writer.write_failures) == (3, 2, 1)


def test_writer_does_not_retry_permanent_errors(client: Client) -> None:
    spy = InsertSpy(client, [ProgrammingError("bad data")])
    writer = BatchWriter(cast(Client, spy), sleep=lambda _: pytest.fail("no retry expected"))
    with pytest.raises(ProgrammingError):
        writer.write_events([event_row("c1", 1)])
    assert (writer.write_errors, writer.write_retries, writer.write_failures) == (1, 0, 1)
    assert spy.inserts == ["events"]


def test_transient_classification() -> None:
    assert is_transient(OperationalError("x"))
    assert is_transient(DatabaseError("x", code=159))
    assert not is_transient(DatabaseError("x", code=60))  # UNKNOWN_TABLE
    assert not is_transient(ValueError("x"))


def test_writer_names_missing_tables(fresh: Client) -> None:
    with pytest.raises(StoreError, match="migrations applied"):
        BatchWriter(fresh).write_events([event_row("c1", 1)])


# --- read-only queries ---------------------------------------------------------------------------

REJECTED = [
    "INSERT INTO events (event_id) VALUES ('x')",
    "  insert into events select * from events",
    "DROP TABLE events",
    "ALTER TABLE events DELETE WHERE 1",
    "TRUNCATE TABLE events",
    "CREATE TABLE x (a UInt8) ENGINE = Memory",
    "OPTIMIZE TABLE events FINAL",
    "SYSTEM STOP MERGES",
    "SET readonly = 0",
    "KILL QUERY WHERE 1",
    "RENAME TABLE events TO e2",
    "SELECT 1; DROP TABLE events",
    "SELECT 1;\nDROP TABLE events;",
    "SELECT 1 INTO OUTFILE '/tmp/civicpulse-leak.txt'",
    "/* SELECT */ DROP TABLE events",
    "/* nested /* */ SELECT 1 */ DROP TABLE events",
    "-- SELECT\nDROP TABLE events",
    "",
    "   ;  ",
    "SELECT 'unterminated",
]


@pytest.mark.parametrize("sql", REJECTED)
def test_read_only_guard_rejects(sql: str) -> None:
    with pytest.raises(ReadOnlyViolation):
        check_read_only(sql)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "select 1;",
        "  -- a comment\n/* another */ SELECT ';' AS semicolon, 'INTO OUTFILE' AS words;  ",
        "WITH 2 AS two SELECT two",
        "SHOW TABLES",
        "DESCRIBE TABLE events",
        "DESC events",
        "EXPLAIN SELECT count() FROM events",
        "EXISTS TABLE events",
        "(SELECT 1)",
        "SELECT $$;DROP$$",
    ],
)
def test_read_only_guard_accepts(sql: str) -> None:
    assert check_read_only(sql) == sql.rstrip().rstrip(";").rstrip()


def test_read_only_guard_cuts_after_the_statement() -> None:
    """The driver appends SETTINGS readonly = 1: nothing may sit between it and the query."""
    assert check_read_only("SELECT 1; -- done\n ; /* and */") == "SELECT 1"
    assert check_read_only("SELECT 1 -- trailing comment") == "SELECT 1 -- trailing comment"


def test_query_rows_rejects_writes_and_changes_nothing(client: Client, writer: BatchWriter) -> None:
    writer.write_events([event_row("c1", 1)])
    for sql in (
        "INSERT INTO events SELECT * FROM events",
        "DROP TABLE events",
        "ALTER TABLE events DELETE WHERE 1",
    ):
        with pytest.raises(ReadOnlyViolation):
            query_rows(client, sql)
    assert scalar(client, "SELECT count() FROM events") == 1


def test_query_rows_reads(client: Client, writer: BatchWriter) -> None:
    writer.write_events([event_row(f"c{i}", i) for i in range(30)])
    columns, rows = query_rows(
        client,
        "SELECT case_id, type FROM events FINAL WHERE kafka_offset >= {low:Int64} ORDER BY case_id",
        {"low": 25},
    )
    assert columns == ["case_id", "type"]
    assert rows == [(f"c{i}", "opened") for i in range(25, 30)]
    assert query_rows(client, "SELECT number FROM numbers(100000)", max_rows=7)[1] == [
        (i,) for i in range(7)
    ]
    assert ("events",) in query_rows(client, "SHOW TABLES")[1]
    assert query_rows(client, "DESCRIBE TABLE events")[1][0][:2] == ("event_id", "String")
    json.dumps(query_rows(client, "SELECT count() FROM events FINAL"))


def test_query_rows_runs_in_readonly_mode(client: Client) -> None:
    """Defence in depth: even a SELECT may not reach the file system."""
    for sql in (
        "SELECT * FROM file('/etc/hostname', 'LineAsString')",
        "SELECT * FROM file('/etc/hostname', 'LineAsString'); -- comment",
    ):
        with pytest.raises(DatabaseError, match=r"(?i)readonly"):
            query_rows(client, sql)
    assert query_rows(client, "SELECT 42 -- the answer")[1] == [(42,)]


# --- the summary ---------------------------------------------------------------------------------


def test_summary_on_a_known_data_set(client: Client, writer: BatchWriter) -> None:
    def answered(case_id: str, agency: str, minutes: float, **changes: Any) -> CaseFacts:
        return facts(
            case_id,
            agency=agency,
            first_contact_at=T0 + timedelta(minutes=minutes),
            **changes,
        )

    cases = [
        # water: 4 cases, 3 answered after 10, 20, 60 min -> median 20 min
        answered("w1", "water", 10),
        answered("w2", "water", 20, status="paused"),
        answered("w3", "water", 60, status="closed"),
        facts("w4", agency="water", status="reopened"),
        # roads: 2 answered after 1.5 and 2.5 min -> median 2 min (interpolated)
        answered("r1", "roads", 1.5, status="resolved"),
        answered("r2", "roads", 2.5, status="resolved"),
        # parks: 1 case, never answered
        facts("p1", agency="parks"),
        # no owner: not in the agency table
        facts("n1", agency="", status="unknown", opened_at=None),
    ]
    # 11 more agencies with one case each: only 10 agencies are listed
    cases += [answered(f"x{i}", f"zz-agency-{i:02d}", i + 1) for i in range(11)]
    # an older version of w1, written later, must not count
    writer.write_case_facts(cases)
    writer.write_case_facts([replace(cases[0], version=0, agency="roads", status="closed")])

    events = [event_row(c.case_id, n) for c in cases for n in range(2)]
    writer.write_events(events)
    writer.write_events(events[:5])  # redelivered
    writer.write_dead_letters([dead_letter(1), dead_letter(2), dead_letter(3, "schema")])
    writer.write_dead_letters([dead_letter(1)])  # redelivered

    def alert(case_id: str, kind: str) -> SlaAlertRow:
        return SlaAlertRow(
            f"{case_id}/resolution/0/{kind}", "sla.breached" if kind == "breach" else
            "sla.warning", case_id, "resolution", 0, 1.0 if kind == "breach" else 0.5, T0,
            T0, T0, "p", "water", "", "d", "s", "c", "normal", "app", "w",
        )  # fmt: skip

    alerts = [alert("w1", "warn50"), alert("w1", "breach"), alert("w2", "warn50")]
    writer.write_alerts(alerts)
    writer.write_alerts(alerts[:1])  # the sink is at least once

    result = summary(client)
    json.dumps(result)  # served over HTTP as JSON
    assert result["events"] == len(cases) * 2
    assert result["cases"] == len(cases)
    assert result["cases_by_status"] == {
        "closed": 1, "open": 13, "paused": 1, "reopened": 1, "resolved": 2, "unknown": 1,
    }  # fmt: skip
    assert OPEN_STATUSES == ("open", "paused", "reopened")
    assert result["open_cases"] == 13 + 1 + 1
    assert result["dead_letters"] == 3
    assert result["dead_letters_by_reason"] == {"not_json": 2, "schema": 1}
    agencies = result["first_response_by_agency"]
    assert len(agencies) == 10
    assert agencies[:3] == [
        {"agency": "water", "cases": 4, "answered": 3, "median_seconds": 1200.0},
        {"agency": "roads", "cases": 2, "answered": 2, "median_seconds": 120.0},
        {"agency": "parks", "cases": 1, "answered": 0, "median_seconds": None},
    ]
    assert [a["agency"] for a in agencies[3:]] == [f"zz-agency-{i:02d}" for i in range(7)]
    assert agencies[3]["median_seconds"] == 60.0
    assert result["alerts_by_type"] == {"sla.breached": 1, "sla.warning": 2}


def test_summary_of_an_empty_store(client: Client) -> None:
    assert summary(client) == {
        "events": 0,
        "cases": 0,
        "open_cases": 0,
        "cases_by_status": {},
        "dead_letters": 0,
        "dead_letters_by_reason": {},
        "first_response_by_agency": [],
        "alerts_by_type": {},
    }


# --- Store, the facade the worker and the CLI use ------------------------------------------------


def test_store_open_migrates_once(backend_dsn: str) -> None:
    database = f"test_{uuid.uuid4().hex[:12]}"
    store = Store.open(backend_dsn, database=database)
    try:
        assert store.applied == [m.name for m in load_migrations()]
        again = Store.open(backend_dsn, database=database)
        assert again.applied == [] and again.client is store.client
        assert database in store.describe()
        store.writer.write_events([event_row("c1", 1)])
        assert summary(store.client)["events"] == 1
    finally:
        store.close()
        open_client(backend_dsn).command(f"DROP DATABASE IF EXISTS `{database}`")


def test_store_package_does_not_import_faust() -> None:
    for path in (ROOT / "streams" / "store").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in {"faust", "mode", "aiokafka"}, (path, name)
