"""Latency of every ClickHouse panel of the Grafana boards, as Grafana would run it.

    python benchmarks/boards.py                    # 10M events (1.4M cases over a year)
    python benchmarks/boards.py --events 1M        # a smaller store, for a quick run

The case tables come from the generator of benchmarks/queries.py (the same store its
numbers describe: a year of cases, the last 30 days rewritten, moved intakes). This script
adds what the boards read besides them: ``events`` (about 7.1 per case; the ``opened`` ones
carry the district and a location), ``dead_letters``, ``late_events`` and ``sla_alerts``
(migration 0007; rows derived from the stored clocks).

Every panel's SQL is taken from dashboards/json, expanded as Grafana and the ClickHouse
plugin would (dashboards.expand: the board's default time range, 30 days for the public
board, 24 hours for operations, 6 hours for engineering; all variables "All"; the last full
calendar month for the ranking), and run ``--repeat`` times with the time range moved by
one second each time (no cache answers). Printed: p50 / p95 per panel and the ratio of its
p50 to ``SELECT count()`` measured in the same run, and ``metrics.rates`` over 30 days as a
reference (the same work as the first public panel, through streams.store.metrics). The
run fails (exit 1) when a panel's p95 exceeds ``--budget-ms``.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dashboards import build, expand  # noqa: E402
from streams.sources.city import DISTRICTS  # noqa: E402
from streams.store import metrics  # noqa: E402
from streams.store.client import Client, close_clients, open_client  # noqa: E402
from streams.store.migrations import apply_migrations  # noqa: E402
from tests.boards_data import fill_alerts  # noqa: E402

SIZES = {"1M": 1_000_000, "10M": 10_000_000, "100M": 100_000_000}
#: each board's default time range (what Grafana runs when the board opens)
RANGES = {
    "now-30d": timedelta(days=30),
    "now-24h": timedelta(hours=24),
    "now-6h": timedelta(hours=6),
}
HEADER = "panel (its board's default range, variables All)"
EVENT_TYPES = [
    "opened",
    "dispatched",
    "signed_for",
    "first_contact",
    "resolved",
    "callback",
    "rated",
]


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "bench_queries", ROOT / "benchmarks" / "queries.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _array(values: list[Any]) -> str:
    return "[" + ", ".join(repr(v) for v in values) + "]"


def add_events(client: Client, events: int) -> None:
    """About ``events`` rows: 7 per case in the life of every case of case_sla."""
    names = _array([d.name for d in DISTRICTS])
    lats, lons = _array([d.lat for d in DISTRICTS]), _array([d.lon for d in DISTRICTS])
    types = _array(EVENT_TYPES)
    opened = (
        'concat(\'{"type":"opened","payload":{"district":\', toJSONString(district),'
        " if(cityHash64(case_id) % 3 = 0, '', concat(',\"location\":{\"lat\":',"
        f" toString(transform(district, {names}, {lats}, 0.)"
        " + (cityHash64(case_id, 1) % 100 - 50) / 5000),"
        " ',\"lon\":',"
        f" toString(transform(district, {names}, {lons}, 0.)"
        " + (cityHash64(case_id, 2) % 100 - 50) / 5000),"
        " '}')), '}}')"
    )
    client.command(
        f"""
        INSERT INTO events
        SELECT
            concat(case_id, '-', toString(k)) AS event_id,
            case_id,
            arrayElement({types}, k + 1) AS type,
            toDateTime64(assumeNotNull(opened_at) + toIntervalSecond(k * k * 1800), 3)
                AS occurred_at,
            'bench' AS source,
            1 AS schema_version,
            if(k = 0, {opened}, '{{}}') AS event_json,
            occurred_at + toIntervalMillisecond(200 + cityHash64(case_id, k) % 5000) AS ingested_at,
            toInt32(cityHash64(case_id) % 4) AS kafka_partition,
            toInt64(0) AS kafka_offset,
            toUInt32(0) AS line
        FROM case_sla FINAL
        ARRAY JOIN range(7) AS k
        WHERE opened_at IS NOT NULL
        SETTINGS max_partitions_per_insert_block = 1000
        """
    )
    del events


def add_side_tables(client: Client, now_us: int, span_days: int) -> None:
    start = f"fromUnixTimestamp64Micro(toInt64({now_us} - {span_days} * 86400e6), 'UTC')"
    client.command(
        f"""
        INSERT INTO dead_letters
        SELECT 'civicpulse.raw', toInt32(number % 4), toInt64(number), 0, '',
               arrayElement(['not_json', 'schema', 'not_utf8', 'unsupported_version'],
                            1 + number % 4),
               'generated', 'x', '', {start} + toIntervalSecond(number * 3000)
        FROM numbers({span_days * 28})
        """
    )
    client.command(
        """
        INSERT INTO late_events
        SELECT case_id, concat(case_id, '-late'), 'callback',
               toDateTime64(assumeNotNull(opened_at), 3), toDateTime64(assumeNotNull(opened_at)
               + INTERVAL 3 DAY, 3), 259200, toDateTime64(assumeNotNull(opened_at)
               + INTERVAL 3 DAY, 3)
        FROM case_sla WHERE cityHash64(case_id) % 200 = 0 AND opened_at IS NOT NULL
        LIMIT 1 BY case_id
        """
    )


def measure(client: Client, sql: str, ctx_of: Any, repeat: int) -> list[float]:
    settings = {"use_query_condition_cache": 0}
    client.query(expand.expand(sql, ctx_of(-1)), settings=settings)  # warm-up
    times = []
    for i in range(repeat):
        text = expand.expand(sql, ctx_of(i))
        started = time.perf_counter()
        client.query(text, settings=settings)
        times.append((time.perf_counter() - started) * 1000)
    return times


def p95(times: list[float]) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", choices=sorted(SIZES), default="10M")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--rewrites", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--budget-ms", type=float, default=200.0)
    parser.add_argument("--dir", default="", help="keep the store here (default: temporary)")
    args = parser.parse_args()

    gen = _generator()
    cases = round(SIZES[args.events] / gen.EVENTS_PER_CASE)
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="civicpulse-boards-"))
    try:
        client = open_client(f"chdb://{root / 'clickhouse'}", database="bench")
        apply_migrations(client)
        print(f"generating {args.events} events' worth: {cases:,} cases over {args.days} days")
        started = time.perf_counter()
        now = gen.generate(client, cases, args.days, args.rewrites, False)
        now_us = int(now.timestamp() * 1_000_000)
        add_events(client, SIZES[args.events])
        add_side_tables(client, now_us, args.days)
        fill_alerts(client, now, copies=1)
        counts = {
            t: client.query(f"SELECT count() FROM {t}").result_rows[0][0]
            for t in ("events", "case_sla", "case_cycles", "dead_letters", "sla_alerts")
        }
        print(
            f"  generated in {time.perf_counter() - started:.0f} s: "
            + ", ".join(f"{t} {n:,}" for t, n in counts.items())
        )
        month = (now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
        variables: dict[str, Any] = {
            d: expand.ALL for d in ("agency", "district", "category", "channel")
        }
        variables["month"] = month

        def context(interval_s: int, span: timedelta = timedelta(days=30)) -> Any:
            def ctx_of(i: int) -> expand.Context:
                end = now + timedelta(seconds=i)
                return expand.Context(end - span, end, interval_s, variables)

            return ctx_of

        base = measure(client, "SELECT count() FROM case_sla", context(3600), args.repeat)
        base_p50 = statistics.median(base)
        print(f"\n{HEADER:<70} {'p50 ms':>7} {'p95 ms':>7} {'x count':>8}")
        print(f"{'baseline: SELECT count() FROM case_sla':<70} {base_p50:7.1f} {p95(base):7.1f}")
        reference = []
        for i in range(-1, args.repeat):
            at = now + timedelta(seconds=i)
            started = time.perf_counter()
            metrics.rates(client, metrics.window("30d", now=at), now=at)
            if i >= 0:
                reference.append((time.perf_counter() - started) * 1000)
        print(
            f"{'reference: metrics.rates, 30d total (streams.store.metrics)':<70} "
            f"{statistics.median(reference):7.1f} {p95(reference):7.1f} "
            f"{statistics.median(reference) / base_p50:8.1f}"
        )
        over = []
        worst = (0.0, "")
        for board_name, board in build.boards().items():
            for panel in board["panels"]:
                for target in panel.get("targets", []):
                    if target["datasource"]["type"] != "grafana-clickhouse-datasource":
                        continue
                    span = RANGES[board["time"]["from"]]
                    minimum = {"1d": 86_400}.get(panel.get("interval", ""), 0)
                    interval = max(minimum, int(span.total_seconds() // 1000))
                    times = measure(client, target["rawSql"], context(interval, span), args.repeat)
                    name = f"{board_name.removesuffix('.json')}: {panel['title']}"[:70]
                    slow = p95(times) > args.budget_ms
                    worst = max(worst, (p95(times), name))
                    if slow:
                        over.append(name)
                    print(
                        f"{name:<70} {statistics.median(times):7.1f} {p95(times):7.1f} "
                        f"{statistics.median(times) / base_p50:8.1f}"
                        + ("   OVER BUDGET" if slow else ""),
                        flush=True,
                    )
        print(f"\nworst panel p95: {worst[0]:.1f} ms ({worst[1]}); budget {args.budget_ms:.0f} ms")
        if over:
            print(f"FAIL: {len(over)} panels over budget")
            return 1
        print("OK: every panel within budget")
        return 0
    finally:
        close_clients()
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
