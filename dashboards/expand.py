"""Expand a panel's SQL as Grafana and the ClickHouse plugin do before ClickHouse sees it.

In order, as in Grafana 12 with grafana-clickhouse-datasource 4.x:

1. the plugin's frontend replaces ``$__conditionalAll(condition, $var)`` by ``1=1`` when
   ``var`` is "All" (``$__all``), else by ``condition`` (``CHDatasource.applyConditionalAll``);
2. Grafana's template service replaces ``${var:singlequote}``, ``${var}`` and ``$var``
   (singlequote: every value quoted, ``'`` escaped as ``\\'``, joined by commas);
3. the plugin's backend expands its macros (``pkg/macros/macros.go``, matched as
   ``\\$__name\\b`` with a bracketed argument list): ``$__fromTime`` / ``$__toTime``
   (``toDateTime(<unix s>)``), ``$__fromTime_ms`` / ``$__toTime_ms``
   (``fromUnixTimestamp64Milli(<unix ms>)``), ``$__timeFilter(c)``
   (``c >= toDateTime(from) AND c <= toDateTime(to)``), ``$__timeFilter_ms(c)``,
   ``$__dateFilter(c)``, ``$__timeInterval(c)``
   (``toStartOfInterval(toDateTime(c), INTERVAL <s> second)``), ``$__timeInterval_ms(c)``,
   ``$__interval_s``.

Grafana's own ``$__rate_interval`` etc. are Prometheus-side and not handled here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

ALL = "$__all"


class ExpansionError(ValueError):
    """The SQL uses a macro or variable this expander (and so the test) does not know."""


@dataclass(frozen=True)
class Context:
    """A dashboard time range, the panel's interval and the variables' current values
    (``ALL`` or a list of values)."""

    start: datetime
    end: datetime
    interval_s: int = 3600
    variables: Mapping[str, str | Sequence[str]] = field(default_factory=dict)


def _args(text: str, open_index: int) -> tuple[list[str], int]:
    """Arguments of a bracketed list starting at ``open_index`` and the index after it."""
    depth, start, args = 0, open_index + 1, []
    quote = ""
    for i in range(open_index, len(text)):
        ch = text[i]
        if quote:
            if ch == "\\":
                continue
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append(text[start:i])
                return args, i + 1
        elif ch == "," and depth == 1:
            args.append(text[start:i])
            start = i + 1
    raise ExpansionError(
        f"unbalanced brackets after {text[max(0, open_index - 30) : open_index]!r}"
    )


def apply_conditional_all(sql: str, variables: Mapping[str, str | Sequence[str]]) -> str:
    macro = "$__conditionalAll("
    index = sql.rfind(macro)
    while index != -1:
        args, end = _args(sql, index + len(macro) - 1)
        if len(args) != 2:
            raise ExpansionError(f"$__conditionalAll takes 2 arguments, got {len(args)}")
        match = re.search(r"\$\{(\w+)\}|\$(\w+)", args[1].strip())
        if match is None:
            raise ExpansionError(f"$__conditionalAll second argument {args[1]!r}")
        name = match.group(1) or match.group(2)
        if name not in variables:
            raise ExpansionError(f"unknown variable {name!r}")
        value = variables[name]
        is_all = value == ALL or (not isinstance(value, str) and list(value) in ([ALL], []))
        sql = sql[:index] + ("1=1" if is_all else args[0]) + sql[end:]
        index = sql.rfind(macro)
    return sql


def _singlequote(values: Sequence[str]) -> str:
    return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)


_VARIABLE = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\$(\w+)")


def replace_variables(sql: str, variables: Mapping[str, str | Sequence[str]]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        fmt = match.group(2)
        if name.startswith("__"):
            return match.group(0)  # a macro (or Grafana built-in) left to the next step
        if name not in variables:
            raise ExpansionError(f"unknown variable {name!r}")
        value = variables[name]
        values = [value] if isinstance(value, str) else list(value)
        if ALL in values:
            raise ExpansionError(f"${name} is 'All' outside $__conditionalAll")
        if fmt == "singlequote":
            return _singlequote(values)
        if fmt is None:
            return ",".join(values)
        raise ExpansionError(f"variable format {fmt!r} not supported")

    return _VARIABLE.sub(one, sql)


def _seconds(at: datetime) -> int:
    return int(at.timestamp())


def _millis(at: datetime) -> int:
    return round(at.timestamp() * 1000)


def _macros(ctx: Context) -> dict[str, tuple[int | None, object]]:
    """name -> (argument count or None for none, expansion)."""
    s_from, s_to = f"toDateTime({_seconds(ctx.start)})", f"toDateTime({_seconds(ctx.end)})"
    ms_from = f"fromUnixTimestamp64Milli({_millis(ctx.start)})"
    ms_to = f"fromUnixTimestamp64Milli({_millis(ctx.end)})"
    d_from = f"toDate('{ctx.start.strftime('%Y-%m-%d')}')"
    d_to = f"toDate('{ctx.end.strftime('%Y-%m-%d')}')"
    seconds = max(ctx.interval_s, 1)
    return {
        "fromTime": (None, s_from),
        "toTime": (None, s_to),
        "fromTime_ms": (None, ms_from),
        "toTime_ms": (None, ms_to),
        "timeFilter": (1, lambda c: f"{c} >= {s_from} AND {c} <= {s_to}"),
        "timeFilter_ms": (1, lambda c: f"{c} >= {ms_from} AND {c} <= {ms_to}"),
        "dateFilter": (1, lambda c: f"{c} >= {d_from} AND {c} <= {d_to}"),
        "timeInterval": (
            1,
            lambda c: f"toStartOfInterval(toDateTime({c}), INTERVAL {seconds} second)",
        ),
        "timeInterval_ms": (
            1,
            lambda c: (
                f"toStartOfInterval(toDateTime64({c}, 3), INTERVAL {seconds * 1000} millisecond)"
            ),
        ),
        "interval_s": (None, str(seconds)),
    }


_MACRO = re.compile(r"\$__(\w+)\b")


def apply_macros(sql: str, ctx: Context) -> str:
    macros = _macros(ctx)
    out: list[str] = []
    position = 0
    for match in _MACRO.finditer(sql):
        if match.start() < position:
            continue
        name = match.group(1)
        if name not in macros:
            raise ExpansionError(f"unknown macro $__{name}")
        count, expansion = macros[name]
        end = match.end()
        args: list[str] = []
        if end < len(sql) and sql[end] == "(":
            args, end = _args(sql, end)
            args = [a.strip() for a in args]
        out.append(sql[position : match.start()])
        if count is None:
            out.append(str(expansion))
        else:
            if len(args) != count:
                raise ExpansionError(f"$__{name} takes {count} argument(s), got {len(args)}")
            out.append(expansion(*args))  # type: ignore[operator]
        position = end
    out.append(sql[position:])
    return "".join(out)


def expand(sql: str, ctx: Context) -> str:
    """The SQL ClickHouse receives for this panel."""
    sql = apply_conditional_all(sql, ctx.variables)
    sql = replace_variables(sql, ctx.variables)
    return apply_macros(sql, ctx)


__all__ = ["ALL", "Context", "ExpansionError", "expand"]
