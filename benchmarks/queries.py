"""Board query latency on the SLA tables, against baselines measured in the same run.

    python benchmarks/queries.py                      # 10M events: 1.4M cases over a year
    python benchmarks/queries.py --events 100M        # 14M cases (about 8 GB on disk)
    python benchmarks/queries.py --days 3650          # the same cases spread over 10 years
    python benchmarks/queries.py --stress             # recent rewrites left unmerged

It generates case rows directly in embedded ClickHouse (``INSERT ... SELECT`` from
``numbers()``: cities, categories, agencies and channels from the simulator's tables;
log-normal response and resolution times; callbacks, ratings, reopens, transfers, pauses;
open cases at the end, and a few old ones stuck open), in the state a live store has: the
whole history written once, then the last 30 days rewritten ``--rewrites`` times (a
third of those cases each time, some with older versions, as a worker rewrites a case
after every batch that touches it), plus 0.1 % of cases whose intake moved (a second,
earlier ``opened``: they live in ``case_sla_moved``). ``--stress`` stops merges before
the rewrites, so every rewrite stays a separate part and FINAL must merge them all.

Then every board query of ``streams.store.metrics`` (the real API, the SQL the boards
run) runs ``--repeat`` times for each window (1 h, 24 h, 7 d, 30 d, the last full
calendar month) with ``now`` moved by one second each time (so no cache answers), and
prints p50 / p95 per query and its ratio to two baselines measured in the same run:
``SELECT count()`` (the cost of a round trip) and a plain scan of one column of every
case (the cost of touching every case once, without FINAL). Absolute numbers on a shared
2-core machine are noisy; the ratios travel between machines. The run fails (exit 1) when
a board query's p95 exceeds ``--budget-ms`` (200).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.core.sla.rows import CASE_SLA_COLUMNS, CYCLE_COLUMNS
from streams.sources.city import AGENCIES, CATEGORIES, CHANNELS, DISTRICTS
from streams.store import metrics
from streams.store.client import Client, close_clients, open_client
from streams.store.migrations import apply_migrations

EVENTS_PER_CASE = 7.1  # 10M events ~ 1.4M cases, as in the brief
SIZES = {"10M": 10_000_000, "100M": 100_000_000}
START = datetime(2025, 3, 1, tzinfo=UTC)
CHUNK = 1_000_000
SECOND_US = 1_000_000


# --------------------------------------------------------------------------- generation


def _q(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _array(items: list[str]) -> str:
    return "[" + ", ".join(_q(i) for i in items) + "]"


def _pick(u: str, items: list[str], weights: list[float]) -> str:
    """A weighted choice among SQL expressions, by the uniform draw ``u``."""
    total, acc, parts = sum(weights), 0.0, []
    for item, weight in zip(items[:-1], weights[:-1], strict=True):
        acc += weight / total
        parts.append(f"{u} < {acc:.6f}, {item}")
    return f"multiIf({', '.join(parts)}, {items[-1]})"


def _u(k: int) -> str:
    """A uniform draw in [0, 1) for case number n, stream k (deterministic)."""
    return f"(cityHash64(n, {k}) / 18446744073709551616.0)"


def _normal(k: int) -> str:
    return f"(sqrt(-2 * log(greatest({_u(k)}, 1e-12))) * cos(2 * pi() * {_u(k + 1000)}))"


def _lognormal_us(median_seconds: str, sigma: float, k: int) -> str:
    return f"toInt64(exp(log({median_seconds} * 1e6) + {sigma} * {_normal(k)}))"


def _ts(us: str) -> str:
    return f"fromUnixTimestamp64Micro(toInt64({us}), 'UTC')"


def case_expressions(total: int, span_us: int, now_us: int, version_shift: int) -> dict[str, str]:
    """Column -> SQL expression of a generated case_sla row (inner columns: see _inner)."""
    agency_names = [a.name for a in AGENCIES]
    subs = "[" + ", ".join(_array(list(d.sub_districts)) for d in DISTRICTS) + "]"
    units = "[" + ", ".join(_array(list(a.sub_units)) for a in AGENCIES) + "]"
    closure = _pick(
        _u(20),
        [
            "'fixed'",
            "'referred_elsewhere'",
            "'duplicate'",
            "'not_our_responsibility'",
            "'no_problem_found'",
            "'cancelled_by_citizen'",
            "'other'",
        ],
        [78, 6, 4, 5, 4, 2, 1],
    )
    ended = f"res_end_us <= {now_us}"
    levels = ["'satisfied'", "'basically_satisfied'", "'dissatisfied'"]
    rating = _pick(_u(23), levels, [62, 22, 16])
    e: dict[str, str] = {
        "case_id": "hex(cityHash64(n, 99))",
        "version": f"toUInt32(greatest(1, 7 + {version_shift} + (cityHash64(n, 7) % 5)))",
        "status": (
            f"multiIf({ended}, if(callback_u < 0.97, 'closed', 'resolved'), "
            "paused_u < 0.08, 'paused', 'open')"
        ),
        "opened_at": _ts("opened_us"),
        "channel": _pick(_u(5), [_q(c) for c, _ in CHANNELS], [w for _, w in CHANNELS]),
        "category": f"arrayElement({_array([c.name for c in CATEGORIES])}, cat_i)",
        "urgency": "urg",
        "district": f"arrayElement({_array([d.name for d in DISTRICTS])}, dist_i)",
        "sub_district": (
            f"arrayElement(arrayElement({subs}, dist_i), "
            f"1 + toUInt32({_u(4)} * length(arrayElement({subs}, dist_i))))"
        ),
        "agency": f"arrayElement({_array(agency_names)}, ag_i)",
        "sub_unit": (
            f"arrayElement(arrayElement({units}, ag_i), "
            f"1 + (dist_i % length(arrayElement({units}, ag_i))))"
        ),
        "policy_id": (
            "multiIf(urg = 'emergency', 'bj-emergency', "
            "match(category, '^(water|power|gas|heating|sewage)_'), 'bj-utilities', "
            "urg = 'urgent', 'bj-urgent', urg = 'complex', 'bj-complex', 'bj-general')"
        ),
        "first_dispatched_at": _ts("opened_us + dispatch_us"),
        "signed_for_at": f"if(opened_us + sign_us <= {now_us}, {_ts('opened_us + sign_us')}, NULL)",
        "first_contact_at": f"if(fr_end_us <= {now_us}, {_ts('fr_end_us')}, NULL)",
        "first_resolved_at": f"if({ended}, {_ts('res_end_us')}, NULL)",
        "resolved_at": "first_resolved_at",
        "closed_at": f"if(status = 'closed', {_ts('res_end_us + 7200000000')}, NULL)",
        "fr_allowed_seconds": "toFloat64(fr_allowed)",
        "fr_extension_seconds": "toUInt32(0)",
        "fr_due_at": _ts(f"opened_us + fr_allowed * {SECOND_US}"),
        "fr_responded_at": "first_contact_at",
        "fr_ended_at": "first_contact_at",
        "fr_ended_by": "if(fr_ended_at IS NULL, '', 'first_contact')",
        "fr_seconds": "if(fr_ended_at IS NULL, NULL, fr_us / 1e6)",
        "fr_business_seconds": "if(fr_ended_at IS NULL, NULL, fr_us / 1e6 * 0.31)",
        "fr_on_time": f"if(fr_ended_at IS NULL, NULL, fr_us <= fr_allowed * {SECOND_US})",
        "fr_breached_at": "if(fr_on_time = false, fr_due_at, NULL)",
        **{f"fr_warn_{p}_at": _ts(f"opened_us + fr_allowed * {p * 10_000}") for p in (50, 75, 90)},
        "res0_due_at": _ts(f"opened_us + res_allowed * {SECOND_US}"),
        "res0_ended_at": "first_resolved_at",
        "res0_ended_by": "if(res0_ended_at IS NULL, '', 'resolved')",
        "res0_closure_reason": f"if(res0_ended_at IS NULL, '', {closure})",
        "res0_seconds": "if(res0_ended_at IS NULL, NULL, res_us / 1e6)",
        "res0_business_seconds": "if(res0_ended_at IS NULL, NULL, res_us / 1e6 * 0.31)",
        "res0_paused_seconds": (
            "if(res0_ended_at IS NULL, NULL, if(paused_u < 0.13, res_us / 1e6 * 0.2, 0.))"
        ),
        "res0_on_time": f"if(res0_ended_at IS NULL, NULL, res_us <= res_allowed * {SECOND_US})",
        "res0_breached_at": "if(res0_on_time = false, res0_due_at, NULL)",
        "cycles": "toUInt32(if(reopen_u < 0.05 AND res0_ended_at IS NOT NULL, 2, 1))",
        "res_cycle": "toUInt32(cycles - 1)",
        "res_started_at": "opened_at",
        "res_due_at": "res0_due_at",
        "res_resolved_at": "resolved_at",
        "res_ended_at": "res0_ended_at",
        "res_ended_by": "res0_ended_by",
        "res_on_time": "res0_on_time",
        "res_breached_at": "res0_breached_at",
        "res_paused_since": (
            f"if(status = 'paused', {_ts('opened_us + intDiv(res_us, 3)')}, NULL)"
        ),
        **{
            f"res_warn_{p}_at": (
                f"if(status = 'paused', NULL, {_ts(f'opened_us + res_allowed * {p * 10_000}')})"
            )
            for p in (50, 75, 90)
        },
        "provisional": "false",
        "anomalies": ("CAST(if(moved, ['duplicate_opened'], []), 'Array(LowCardinality(String))')"),
        "multiple_opened": "moved",
        "closure_reason": "res0_closure_reason",
        "callback_reached": "callback_u < 0.64 AND res0_ended_at IS NOT NULL",
        "citizen_confirms_solved": (
            f"if(callback_reached, {_u(21)} < if(closure_reason = 'fixed', 0.88, 0.45), NULL)"
        ),
        "satisfaction": (
            f"if(callback_reached AND {_u(22)} < 0.7, {rating}, "
            f"if(res0_ended_at IS NOT NULL AND {_u(24)} < 0.05, 'dissatisfied', ''))"
        ),
        "transfers": "toUInt32(if(ag_u < 0.1, 1 + (cityHash64(n, 30) % 2), 0))",
        "returns": f"toUInt32({_u(31)} < 0.05)",
        "ping_pongs": "toUInt32(ag_u < 0.02)",
        "pauses": "toUInt32(paused_u < 0.13)",
        "reopens": "toUInt32(cycles - 1)",
        "last_event_at": _ts(f"least({now_us}, opened_us + res_us + 90000000000)"),
    }
    missing = set(CASE_SLA_COLUMNS) ^ set(e)
    if missing:
        raise SystemExit(f"benchmark generator out of date with CaseSlaRow: {sorted(missing)}")
    return e


def _inner(lo: int, count: int, total: int, span_us: int, now_us: int, where: str = "") -> str:
    cats = CATEGORIES
    agency_names = [a.name for a in AGENCIES]
    cat_agency = [agency_names.index(c.agency) + 1 for c in cats]
    stuck = f"{_u(13)} < 0.003"  # a few cases never resolve: old open cases in every month
    category = _pick(_u(1), [str(i) for i in range(1, len(cats) + 1)], [c.weight for c in cats])
    district = _pick(
        _u(3), [str(i) for i in range(1, len(DISTRICTS) + 1)], [d.weight for d in DISTRICTS]
    )
    dispatch = _lognormal_us("multiIf(urg = 'emergency', 120, 600)", 0.8, 40)
    sign = _lognormal_us("multiIf(urg = 'emergency', 300, 2400)", 1.0, 41)
    contact = _lognormal_us("multiIf(urg = 'emergency', 600, urg = 'urgent', 3000, 7200)", 1.1, 42)
    resolve = _lognormal_us(
        "multiIf(urg = 'emergency', 3600, urg = 'urgent', 43200, urg = 'complex', 400000, 200000)",
        1.0,
        43,
    )
    fr_allowed = "multiIf(urg = 'emergency', 1800, urg = 'urgent', 7200, 14400)"
    res_allowed = (
        "multiIf(urg = 'emergency', 7200, urg = 'urgent', 86400, urg = 'complex', 1296000, 604800)"
    )
    return f"""
    SELECT
        number AS n,
        {category} AS cat_i,
        {district} AS dist_i,
        {_u(2)} AS ag_u,
        if(ag_u < 0.05, toUInt32(1 + cityHash64(n, 8) % {len(AGENCIES)}),
           arrayElement({cat_agency}, cat_i)) AS ag_i,
        arrayElement({_array([c.urgency for c in cats])}, cat_i) AS urg,
        toInt64({START.timestamp() * SECOND_US:.0f} + (number + 0.5) / {total} * {span_us}
                + ({_u(6)} - 0.5) * 600e6) AS opened_us,
        {dispatch} AS dispatch_us,
        dispatch_us + {sign} AS sign_us,
        sign_us + {contact} AS fr_us,
        opened_us + fr_us AS fr_end_us,
        fr_us + if({stuck}, toInt64(1e15), {resolve}) AS res_us,
        opened_us + res_us AS res_end_us,
        {fr_allowed} AS fr_allowed,
        {res_allowed} AS res_allowed,
        {_u(10)} AS paused_u,
        {_u(11)} AS callback_u,
        {_u(12)} AS reopen_u,
        {_u(14)} < 0.001 AS moved
    FROM numbers({lo}, {count})
    {where}
    """


def case_select(
    lo: int, count: int, total: int, span_us: int, now_us: int, version_shift: int, where: str
) -> str:
    """SELECT of generated case_sla rows, columns in table order."""
    expressions = case_expressions(total, span_us, now_us, version_shift)
    select = ",\n        ".join(f"{expressions[c]} AS {c}" for c in CASE_SLA_COLUMNS)
    return f"SELECT {select}\nFROM ({_inner(lo, count, total, span_us, now_us, where)})"


def cycle_expressions() -> dict[str, str]:
    """Column -> expression of a case_cycles row, over a generated case row and the cycle
    index k (cycle 0, and cycle 1 of reopened cases)."""
    c = {
        "case_id": "case_id",
        "cycle": "toUInt32(k)",
        "version": "version",
        "opened_at": "assumeNotNull(opened_at)",
        **{d: d for d in ("channel", "category", "urgency", "district", "sub_district")},
        "agency": "agency",
        "sub_unit": "sub_unit",
        "policy_id": "policy_id",
        "started_at": (
            "if(k = 0, assumeNotNull(opened_at), assumeNotNull(res0_ended_at) + INTERVAL 1 DAY)"
        ),
        "started_by": "if(k = 0, 'opened', 'reopened')",
        "allowed_seconds": (
            "toFloat64(dateDiff('second', assumeNotNull(opened_at), assumeNotNull(res0_due_at)))"
        ),
        "extension_seconds": "toUInt32(0)",
        "late_extensions": "toUInt32(0)",
        "due_at": "if(k = 0, res0_due_at, started_at + toIntervalSecond(toInt64(allowed_seconds)))",
        "resolved_at": "if(k = 0, res0_ended_at, NULL)",
        "ended_at": "if(k = 0, res0_ended_at, NULL)",
        "ended_by": "if(k = 0, res0_ended_by, '')",
        "closure_reason": "if(k = 0, res0_closure_reason, '')",
        "seconds": "if(k = 0, res0_seconds, NULL)",
        "business_seconds": "if(k = 0, res0_business_seconds, NULL)",
        "paused_seconds": "if(k = 0, res0_paused_seconds, NULL)",
        "paused_business_seconds": "if(k = 0, res0_paused_seconds * 0.31, NULL)",
        "pauses": "pauses",
        "paused_since": "if(k + 1 = cycles, res_paused_since, NULL)",
        "on_time": "if(k = 0, res0_on_time, NULL)",
        "breached_at": "if(k = 0, res0_breached_at, NULL)",
        "warn_50_at": "if(k = 0, res_warn_50_at, NULL)",
        "warn_75_at": "if(k = 0, res_warn_75_at, NULL)",
        "warn_90_at": "if(k = 0, res_warn_90_at, NULL)",
        "provisional": "false",
        "multiple_opened": "multiple_opened",
    }
    missing = set(CYCLE_COLUMNS) ^ set(c)
    if missing:
        raise SystemExit(f"benchmark generator out of date with CycleRow: {sorted(missing)}")
    return c


def insert_rows(
    client: Client,
    lo: int,
    count: int,
    total: int,
    span_us: int,
    now_us: int,
    *,
    version_shift: int = 0,
    where: str = "",
    cycles: bool = True,
) -> None:
    """Generated cases (and their cycles) numbered [lo, lo + count) matching ``where``."""
    cases = case_select(lo, count, total, span_us, now_us, version_shift, where)
    client.command(f"INSERT INTO case_sla ({', '.join(CASE_SLA_COLUMNS)})\n{cases}")
    if cycles:
        c = cycle_expressions()
        select = ", ".join(f"{c[name]} AS {name}" for name in CYCLE_COLUMNS)
        client.command(
            f"INSERT INTO case_cycles ({', '.join(CYCLE_COLUMNS)})\n"
            f"SELECT {select} FROM ({cases}) ARRAY JOIN range(cycles) AS k"
        )


def generate(client: Client, cases: int, days: int, rewrites: int, stress: bool) -> datetime:
    span_us = days * 86_400 * SECOND_US
    now = START + timedelta(days=days)
    now_us = int(now.timestamp() * SECOND_US)
    started = time.perf_counter()
    for lo in range(0, cases, CHUNK):
        count = min(CHUNK, cases - lo)
        insert_rows(client, lo, count, cases, span_us, now_us)
        print(
            f"  {lo + count:>11,} cases written  {time.perf_counter() - started:6.1f} s", flush=True
        )
    if stress:
        client.command("SYSTEM STOP MERGES case_sla")
        client.command("SYSTEM STOP MERGES case_cycles")
    recent = max(0, int(cases * (days - 30) / days))
    for i in range(rewrites):
        # a third of the last 30 days' cases, rewritten: older versions (arriving late)
        # and the current one again (a redelivery)
        where = f"WHERE cityHash64(number, {1000 + i}) % 3 = 0"
        insert_rows(
            client,
            recent,
            cases - recent,
            cases,
            span_us,
            now_us,
            version_shift=-(i % 3),
            where=where,
            cycles=i % 3 == 0,
        )
    print(f"  rewrites done                 {time.perf_counter() - started:6.1f} s", flush=True)
    return now


def describe(client: Client) -> None:
    for table in ("case_sla", "case_sla_moved", "case_cycles"):
        rows, parts, disk = client.query(
            "SELECT sum(rows), count(), sum(bytes_on_disk) FROM system.parts "
            "WHERE database = currentDatabase() AND table = {t:String} AND active",
            parameters={"t": table},
        ).result_rows[0]
        print(
            f"  {table:<16} {int(rows):>12,} stored rows in {int(parts):>3} parts, "
            f"{int(disk) / 2**30:6.2f} GiB"
        )
    latest = client.query("SELECT count() FROM case_sla FINAL").result_rows[0][0]
    print(f"  case_sla FINAL   {int(latest):>12,} cases")


# --------------------------------------------------------------------------- measuring


def measure(run: Callable[[int], Any], repeat: int) -> list[float]:
    run(-1)  # warm-up (not counted)
    times = []
    for i in range(repeat):
        started = time.perf_counter()
        run(i)
        times.append((time.perf_counter() - started) * 1000)
    return times


def p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]


Query = Callable[[metrics.Window, datetime], Any]


def _bind(
    query: Query, win: Callable[[int], metrics.Window], at: Callable[[int], datetime]
) -> Callable[[int], Any]:
    def run(i: int) -> Any:
        return query(win(i), at(i))

    return run


def board_queries(client: Client, now: datetime) -> dict[str, Callable[[int], Any]]:
    """Every board query: name -> run(i), with now moved by i seconds."""

    def at(i: int) -> datetime:
        return now + timedelta(seconds=i)

    last_month = (now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")

    def window_of(preset: str) -> Callable[[int], metrics.Window]:
        def win(i: int) -> metrics.Window:
            if preset == "month":  # the last full calendar month (Asia/Shanghai)
                return metrics.window("month", month=last_month)
            return metrics.window(preset, now=at(i))

        return win

    per_window: dict[str, Query] = {
        "rates {} total": lambda w, t: metrics.rates(client, w, now=t),
        "rates {} by agency": lambda w, t: metrics.rates(client, w, group_by="agency", now=t),
        "rates {} by sub_district": lambda w, t: metrics.rates(
            client, w, group_by=("district", "sub_district"), now=t
        ),
        "durations {} by agency": lambda w, t: metrics.durations(client, w, group_by="agency"),
        "on_time {} by category": lambda w, t: metrics.on_time(
            client, w, group_by="category", now=t
        ),
        "quality {} by district": lambda w, t: metrics.quality(
            client, w, group_by="district", filters={"channel": ["hotline", "app", "wechat"]}
        ),
    }
    queries: dict[str, Callable[[int], Any]] = {}
    for preset in ("1h", "24h", "7d", "30d", "month"):
        for name, query in per_window.items():
            queries[name.format(preset)] = _bind(query, window_of(preset), at)
    config = metrics.load_ranking_config()
    everything: dict[str, Query] = {
        "backlog by agency": lambda w, t: metrics.backlog(client, group_by="agency", now=t),
        "backlog by sub_district": lambda w, t: metrics.backlog(
            client, group_by=("district", "sub_district"), now=t
        ),
        f"ranking {last_month} sub_district": lambda w, t: metrics.ranking(
            client, "sub_district", month=last_month, config=config, now=t
        ),
        f"ranking {last_month} agency": lambda w, t: metrics.ranking(
            client, "agency", month=last_month, config=config, now=t
        ),
    }
    for name, query in everything.items():
        queries[name] = _bind(query, window_of("month"), at)
    return queries


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", choices=sorted(SIZES), default="10M")
    parser.add_argument("--days", type=int, default=365, help="history length (default 365)")
    parser.add_argument("--rewrites", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=30, help="runs per query")
    parser.add_argument("--budget-ms", type=float, default=200.0)
    parser.add_argument("--stress", action="store_true", help="stop merges before rewrites")
    parser.add_argument("--dir", default="", help="keep the store here (default: temporary)")
    parser.add_argument("--reuse", action="store_true", help="query an existing --dir as is")
    args = parser.parse_args()

    cases = round(SIZES[args.events] / EVENTS_PER_CASE)
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="civicpulse-queries-"))
    try:
        client = open_client(f"chdb://{root / 'clickhouse'}", database="bench")
        now = START + timedelta(days=args.days)
        if not args.reuse:
            apply_migrations(client)
            for table in ("case_sla", "case_sla_moved", "case_cycles", "case_cycles_moved"):
                client.command(f"TRUNCATE TABLE {table}")
            print(
                f"generating {args.events} events' worth: {cases:,} cases over {args.days} days"
                + (" (stress: merges stopped before the rewrites)" if args.stress else "")
            )
            generate(client, cases, args.days, args.rewrites, args.stress)
        describe(client)

        settings = {"use_query_condition_cache": 0}
        baselines = {
            "baseline: SELECT count()": lambda i: client.query(
                "SELECT count() + {i:Int32} FROM case_sla", parameters={"i": i}, settings=settings
            ),
            "baseline: scan one column of every case": lambda i: client.query(
                "SELECT sum(transfers) + {i:Int32} FROM case_sla",
                parameters={"i": i},
                settings=settings,
            ),
        }
        results: dict[str, list[float]] = {}
        for name, run in baselines.items():
            results[name] = measure(run, args.repeat)
        base_count = statistics.median(results["baseline: SELECT count()"])
        base_scan = statistics.median(results["baseline: scan one column of every case"])
        failures = []
        print(f"\n{'query':<42} {'p50 ms':>8} {'p95 ms':>8} {'x count':>8} {'x scan':>7}")
        for name, times in results.items():
            print(f"{name:<42} {statistics.median(times):8.1f} {p95(times):8.1f}")
        for name, run in board_queries(client, now).items():
            times = measure(run, args.repeat)
            results[name] = times
            slow = p95(times) > args.budget_ms
            if slow:
                failures.append(name)
            print(
                f"{name:<42} {statistics.median(times):8.1f} {p95(times):8.1f} "
                f"{statistics.median(times) / base_count:8.1f} "
                f"{statistics.median(times) / base_scan:7.2f}" + ("   OVER BUDGET" if slow else ""),
                flush=True,
            )
        worst = max(
            (n for n in results if not n.startswith("baseline")), key=lambda n: p95(results[n])
        )
        print(
            f"\nworst board query p95: {p95(results[worst]):.1f} ms ({worst}); "
            f"budget {args.budget_ms:.0f} ms"
        )
        if failures:
            print(f"FAIL: {len(failures)} board queries over budget: {', '.join(failures)}")
            return 1
        print("OK: every board query within budget")
        return 0
    finally:
        close_clients()
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
