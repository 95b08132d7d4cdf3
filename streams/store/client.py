"""The ClickHouse client factory: embedded chDB or a ClickHouse server, one API.

DSNs:

- ``chdb:///abs/path/to/dir`` (optionally ``?database=name``): in-process chDB, data in
  that directory. One *process* may open a directory (the others get "Cannot lock
  file <dir>/status"), and one process may host one chDB path at a time.
- ``http(s)://[user[:password]@]host[:port][/database][?option=value...]``: a ClickHouse
  server over HTTP; options are passed to ``clickhouse_connect.get_client``.

The database (from the DSN, or the ``database`` argument, default ``default``) is created
when missing. Clients are cached: one per (DSN, database) per process, shared by all
threads. Sharing is safe: the chDB backend serializes the calls on a client with its own
lock, and HTTP clients are opened without a ClickHouse session, so concurrent requests
cannot collide on a session lock.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

__all__ = [
    "Client",
    "StoreError",
    "StoreInUseError",
    "StoreTarget",
    "close_client",
    "close_clients",
    "open_client",
    "parse_dsn",
]

DEFAULT_DATABASE = "default"
_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class StoreError(Exception):
    """The store cannot be opened or used as asked."""


class StoreInUseError(StoreError):
    """An embedded store directory is held by another process."""


@dataclass(frozen=True, slots=True)
class StoreTarget:
    """A parsed DSN."""

    kind: Literal["chdb", "http"]
    database: str | None
    #: chdb: the absolute data directory
    path: str = ""
    #: http: the DSN without its database path, as handed to clickhouse-connect
    server_dsn: str = field(default="", repr=False)
    #: the DSN with any password replaced by ***, for logs
    redacted: str = ""


def parse_dsn(dsn: str) -> StoreTarget:
    """Parse a ``chdb://`` or ``http(s)://`` DSN; raise StoreError when malformed."""
    parts = urlsplit(dsn)
    scheme = parts.scheme.lower()
    if scheme == "chdb":
        return _parse_chdb(dsn, parts.netloc, parts.path, parts.query)
    if scheme in ("http", "https"):
        return _parse_http(dsn)
    raise StoreError(
        f"unsupported ClickHouse DSN {_redact(dsn)!r}: expected chdb:///abs/dir or "
        "http(s)://user:password@host:port/database"
    )


def _parse_chdb(dsn: str, netloc: str, path: str, query: str) -> StoreTarget:
    if netloc or not path.startswith("/"):
        raise StoreError(
            f"chdb DSN {dsn!r} must name an absolute directory: chdb:///abs/path (three slashes)"
        )
    options = dict(parse_qsl(query))
    database = options.pop("database", None) or None
    if options:
        raise StoreError(f"chdb DSN {dsn!r}: unknown options {sorted(options)}")
    real = os.path.realpath(unquote(path))
    return StoreTarget(kind="chdb", database=database, path=real, redacted=f"chdb://{real}")


def _parse_http(dsn: str) -> StoreTarget:
    parts = urlsplit(dsn)
    if not parts.hostname:
        raise StoreError(f"ClickHouse DSN {_redact(dsn)!r} has no host")
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) > 1:
        raise StoreError(f"ClickHouse DSN {_redact(dsn)!r}: the path must be a database name")
    database = unquote(segments[0]) if segments else None
    options = parse_qsl(parts.query)
    query_db = [v for k, v in options if k == "database"]
    if query_db:
        database = database or query_db[0]
        options = [(k, v) for k, v in options if k != "database"]
    server_dsn = urlunsplit((parts.scheme, parts.netloc, "", urlencode(options), ""))
    return StoreTarget(kind="http", database=database, server_dsn=server_dsn, redacted=_redact(dsn))


def _redact(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, ""))


def _check_database_name(name: str) -> str:
    if not _DATABASE_NAME.match(name):
        raise StoreError(f"invalid database name {name!r}: use letters, digits and _")
    return name


_CacheKey = tuple[str, str, str]  # (kind, location, database)

_lock = threading.Lock()
_clients: dict[_CacheKey, Client] = {}


def open_client(dsn: str, *, database: str | None = None) -> Client:
    """The process's client for ``dsn`` (and ``database``, which overrides the DSN's).

    Cached: every call with the same DSN and database returns the same client, which is
    safe to share between threads. The database is created when missing.
    """
    target = parse_dsn(dsn)
    name = _check_database_name(database or target.database or DEFAULT_DATABASE)
    location = target.path if target.kind == "chdb" else target.server_dsn
    key: _CacheKey = (target.kind, location, name)
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = _connect(target, name)
            _clients[key] = client
        return client


def open_private_client(dsn: str, *, database: str | None = None) -> Client:
    """A new client for ``dsn``, not cached nor shared: for a long streaming read, which
    holds its client (a chDB handle) until it ends, while the process's shared client
    goes on serving other work. The caller closes it."""
    target = parse_dsn(dsn)
    name = _check_database_name(database or target.database or DEFAULT_DATABASE)
    return _connect(target, name)


def _connect(target: StoreTarget, database: str) -> Client:
    client = _connect_chdb(target) if target.kind == "chdb" else _connect_http(target)
    try:
        if database != DEFAULT_DATABASE:
            client.command(f"CREATE DATABASE IF NOT EXISTS `{database}`")
            client.database = database
    except Exception:
        client.close()
        raise
    return client


def _connect_http(target: StoreTarget) -> Client:
    # No session: clickhouse-connect would otherwise generate one session id per client,
    # and a ClickHouse session runs one query at a time ("Session is locked"), which would
    # break sharing the client between the writer thread and the web views.
    kwargs: dict[str, Any] = {"autogenerate_session_id": False, "tz_mode": "aware"}
    try:
        return clickhouse_connect.get_client(dsn=target.server_dsn, **kwargs)
    except DatabaseError as err:
        raise StoreError(f"cannot connect to ClickHouse at {target.redacted}: {err}") from err


def _connect_chdb(target: StoreTarget) -> Client:
    os.makedirs(target.path, exist_ok=True)
    try:
        return clickhouse_connect.get_client(dsn=f"chdb://{target.path}", tz_mode="aware")
    except DatabaseError as err:
        message = str(err)
        if "already initialized with path" in message:
            raise StoreError(
                f"cannot open the embedded store {target.path}: this process already hosts "
                "another chDB directory, and chDB allows one per process (close_clients() "
                f"releases it): {message}"
            ) from err
        if _held_by_another_process(target.path):
            raise StoreInUseError(
                f"Cannot lock file {target.path}/status: the embedded store is held by "
                "another process (only one process may open a chDB directory; reach it "
                "through that process, or use a ClickHouse server: CLICKHOUSE_URL=http://...)"
            ) from err
        raise StoreError(f"cannot open the embedded store {target.path}: {message}") from err


def _held_by_another_process(path: str) -> bool:
    """Whether another process holds chDB's lock on ``<path>/status``.

    Only called after this process failed to open the path, so it does not hold the
    lock itself (an flock from this process would conflict with its own engine).
    """
    try:
        fd = os.open(os.path.join(path, "status"), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def close_client(client: Client) -> None:
    """Close one cached client and forget it."""
    with _lock:
        for key, cached in list(_clients.items()):
            if cached is client:
                del _clients[key]
    client.close()


def close_clients() -> None:
    """Close every cached client of this process.

    For chDB this releases the directory once no other handle is open: another process
    may then open it, or this process another directory.
    """
    with _lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()
