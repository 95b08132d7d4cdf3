"""Read helpers for the CLI, the worker's web views and the live summary.

``query_rows`` runs caller-supplied SQL, which arrives over the worker's local web
endpoint, so it only runs one read-only statement: it must start with SELECT, WITH,
SHOW, DESC(RIBE), EXPLAIN or EXISTS, may not contain a second statement or INTO OUTFILE,
and runs with ``readonly = 1`` (which also forbids table functions such as ``file()``
and ``url()`` and SETTINGS clauses). Rows beyond ``max_rows`` are not read.

Tables are ReplacingMergeTree: every query here reads them with FINAL, so a row written
twice (redelivery, retry) counts once and a case's latest facts win.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping
from typing import Any, TypedDict

from clickhouse_connect.driver.client import Client

from streams.store.client import StoreError

READ_ONLY_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})
DEFAULT_MAX_ROWS = 10_000
_STREAMED = frozenset({"SELECT", "WITH"})  # read block by block, stopping at max_rows

#: statuses that count as open: the case is opened and not (yet, or any more) resolved.
#: ``unknown`` (events seen but no ``opened`` event yet) is not counted as open: it is
#: reported apart in ``cases_by_status``.
OPEN_STATUSES: tuple[str, ...] = ("open", "paused", "reopened")
TOP_AGENCIES = 10


class ReadOnlyViolation(StoreError, ValueError):
    """The SQL is not a single read-only statement."""


# --- the read-only guard ---------------------------------------------------------------

_HEREDOC_OPEN = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _words_and_semicolons(sql: str) -> list[tuple[str, int]]:
    """Upper-cased keywords/identifiers and ';', outside literals and comments, with offsets.

    Follows ClickHouse's lexer where it matters: ``--``, ``#!`` and ``# `` line comments,
    nested ``/* */`` comments, '...' strings, "..." and `...` identifiers (backslash
    escapes, doubled quotes) and $tag$...$tag$ heredocs.
    """
    out: list[tuple[str, int]] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        two = sql[i : i + 2]
        if c.isspace():
            i += 1
        elif two == "--" or two in ("#!", "# "):
            newline = sql.find("\n", i)
            i = n if newline < 0 else newline + 1
        elif two == "/*":
            depth, i = 1, i + 2
            while depth:
                if i >= n:
                    raise ReadOnlyViolation("unterminated comment in the query")
                if sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c in "'\"`":
            i += 1
            while True:
                if i >= n:
                    raise ReadOnlyViolation("unterminated quoted string in the query")
                if sql[i] == "\\":
                    i += 2
                elif sql[i] == c:
                    if sql.startswith(c, i + 1):  # a doubled quote stands for itself
                        i += 2
                    else:
                        i += 1
                        break
                else:
                    i += 1
        elif c == "$" and (heredoc := _HEREDOC_OPEN.match(sql, i)):
            closing = sql.find(heredoc.group(), heredoc.end())
            if closing < 0:
                raise ReadOnlyViolation("unterminated heredoc string in the query")
            i = closing + len(heredoc.group())
        elif word := _WORD.match(sql, i):
            out.append((word.group().upper(), i))
            i = word.end()
        else:
            if c == ";":
                out.append((";", i))
            i += 1
    return out


def check_read_only(sql: str) -> str:
    """Return ``sql`` without a trailing ``;`` if it is one read-only statement.

    Raises ReadOnlyViolation otherwise.
    """
    return _check(sql)[1]


def _check(sql: str) -> tuple[str, str]:
    """(first keyword, statement) of a single read-only statement."""
    positioned = _words_and_semicolons(sql)
    end = len(sql)
    while positioned and positioned[-1][0] == ";":
        end = positioned.pop()[1]  # trailing ';': cut there (comments after it go too)
    tokens = [token for token, _ in positioned]
    if not tokens:
        raise ReadOnlyViolation("empty query")
    if ";" in tokens:
        raise ReadOnlyViolation("only one statement per query")
    first = tokens[0]
    if first not in READ_ONLY_KEYWORDS:
        raise ReadOnlyViolation(
            f"only read-only statements are allowed ({', '.join(sorted(READ_ONLY_KEYWORDS))}),"
            f" not {first}"
        )
    for before, after in itertools.pairwise(tokens):
        if before == "INTO" and after == "OUTFILE":
            raise ReadOnlyViolation("INTO OUTFILE is not allowed")
    # Nothing may follow the statement: the driver appends SETTINGS (readonly) and FORMAT.
    return first, sql[:end].rstrip()


def _read_only_settings(client: Client) -> dict[str, Any]:
    current = client.server_settings.get("readonly")
    if current is not None and str(current.value) != "0":
        return {}  # already read-only (a readonly server user): it may not even be re-set
    return {"readonly": 1}


def query_rows(
    client: Client,
    sql: str,
    params: Mapping[str, Any] | None = None,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one read-only statement; return (column names, rows), at most ``max_rows`` rows.

    ``params`` are clickhouse-connect parameters (``{name:Type}`` server-side binding).
    Raises ReadOnlyViolation for anything but a single read-only statement.
    """
    first, statement = _check(sql)
    parameters = dict(params) if params else None
    settings = _read_only_settings(client)
    if first not in _STREAMED:
        # small answers; chDB cannot stream these statements
        result = client.query(statement, parameters=parameters, settings=settings)
        return list(result.column_names), [tuple(r) for r in result.result_rows[:max_rows]]
    rows: list[tuple[Any, ...]] = []
    with client.query_row_block_stream(
        statement, parameters=parameters, settings=settings
    ) as stream:
        columns = [str(name) for name in stream.source.column_names]
        for block in stream:
            for row in block:
                if len(rows) >= max_rows:
                    break
                rows.append(tuple(row))
            if len(rows) >= max_rows:
                break
    return columns, rows


# --- the summary -------------------------------------------------------------------------


class AgencyResponse(TypedDict):
    agency: str
    cases: int
    answered: int  # cases with a first contact
    median_seconds: float | None  # median of first_contact_at - opened_at, seconds


class Summary(TypedDict):
    events: int  # distinct events stored
    cases: int  # distinct cases with at least one stored event
    open_cases: int  # case_facts with status in OPEN_STATUSES
    cases_by_status: dict[str, int]
    dead_letters: int
    dead_letters_by_reason: dict[str, int]
    first_response_by_agency: list[AgencyResponse]  # top TOP_AGENCIES by case count
    alerts_by_type: dict[str, int]  # distinct SLA alerts (sla_alerts), by type


def summary(client: Client) -> Summary:
    """What the store knows now; JSON-serializable (the worker serves it over HTTP).

    - ``events``: distinct events (``events FINAL``); ``cases``: distinct case ids there.
    - ``open_cases``: cases whose status is one of OPEN_STATUSES (open, paused, reopened).
    - ``first_response_by_agency``: per current owning agency (``case_facts.agency``,
      cases with no owner left out), the 10 agencies with most cases; ``answered`` counts
      the cases with both ``opened_at`` and ``first_contact_at``; ``median_seconds`` is
      the median (interpolated between the two middle values for an even count) of
      ``first_contact_at - opened_at`` over those, in seconds, None when no case was
      answered.
    - ``alerts_by_type``: distinct alert ids in ``sla_alerts`` per type (sla.warning,
      sla.breached).
    """
    events, cases = client.query(
        "SELECT count(), uniqExact(case_id) FROM events FINAL"
    ).result_rows[0]
    by_status = {
        str(status): int(n)
        for status, n in client.query(
            "SELECT status, count() FROM case_facts FINAL GROUP BY status ORDER BY status"
        ).result_rows
    }
    dead_by_reason = {
        str(reason): int(n)
        for reason, n in client.query(
            "SELECT reason, count() FROM dead_letters FINAL GROUP BY reason ORDER BY reason"
        ).result_rows
    }
    agencies = client.query(
        """
        SELECT
            agency,
            count() AS cases,
            countIf(has_contact) AS answered,
            quantileExactInclusiveIf(0.5)(seconds, has_contact) AS median_seconds
        FROM
        (
            SELECT
                agency,
                opened_at IS NOT NULL AND first_contact_at IS NOT NULL AS has_contact,
                (toUnixTimestamp64Milli(assumeNotNull(first_contact_at))
                    - toUnixTimestamp64Milli(assumeNotNull(opened_at))) / 1000 AS seconds
            FROM case_facts FINAL
            WHERE agency != ''
        )
        GROUP BY agency
        ORDER BY cases DESC, agency
        LIMIT {top:UInt32}
        """,
        parameters={"top": TOP_AGENCIES},
    ).result_rows
    alerts = {
        str(kind): int(n)
        for kind, n in client.query(
            "SELECT type, uniqExact(alert_id) FROM sla_alerts GROUP BY type ORDER BY type"
        ).result_rows
    }
    return Summary(
        events=int(events),
        cases=int(cases),
        open_cases=sum(by_status.get(s, 0) for s in OPEN_STATUSES),
        cases_by_status=by_status,
        dead_letters=sum(dead_by_reason.values()),
        dead_letters_by_reason=dead_by_reason,
        first_response_by_agency=[
            AgencyResponse(
                agency=str(agency),
                cases=int(n),
                answered=int(answered),
                median_seconds=_finite(median) if answered else None,
            )
            for agency, n, answered, median in agencies
        ],
        alerts_by_type=alerts,
    )


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


__all__ = [
    "DEFAULT_MAX_ROWS",
    "OPEN_STATUSES",
    "READ_ONLY_KEYWORDS",
    "AgencyResponse",
    "ReadOnlyViolation",
    "Summary",
    "check_read_only",
    "query_rows",
    "summary",
]
