"""SLA evaluation cost per case, against baselines measured in the same run.

    python benchmarks/sla_eval.py [--cases 3000] [--days 30] [--repeat 5] [--profile]

The simulator's histories (``simulate``: a city over ``--days`` days, every case's
distinct events decoded and put in lifecycle order, as ``CaseState`` holds them) are
evaluated with the shipped policies (``config/sla/policies.yaml``: business and wall
clocks on the Beijing calendar; ``policies-shanghai.yaml``: working-day clocks on the
Shanghai calendar), the way the case agent does after every batch (``evaluate(events,
policies)``, no ``now``). Two baselines run on the same cases in the same process:

* ``fold``: ``derive_facts`` of the case (what the agent computes for every touched case
  anyway);
* ``json``: ``orjson.loads`` of the case's events (the cheapest thing done per event).

Each figure is the best of ``--repeat`` passes over all cases, in µs per case; the ratios
(evaluate / baseline) are what to compare across machines and runs, since absolute
numbers on a shared 2-core machine are noisy. ``--profile`` prints the cProfile top
functions of one more pass over the Beijing policies.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streams.contract import Event, decode_validated
from streams.core.case_state import CaseState, derive_facts
from streams.core.sla.clock import evaluate
from streams.core.sla.policy import DEFAULT_POLICIES_PATH, PolicySet, load_policies
from streams.sources.simulator import SimulationConfig, simulate


def cases_of(count: int, days: float, seed: int) -> tuple[list[list[Event]], list[list[bytes]]]:
    """(events of each case in lifecycle order, the same events as JSON bytes)."""
    history = simulate(SimulationConfig(seed=seed, cases=count, horizon_days=days))
    raw: dict[str, list[bytes]] = defaultdict(list)
    for event in history.events:
        raw[event["case_id"]].append(orjson.dumps(event))
    events = [
        CaseState(case_id, map(decode_validated, raws)).events for case_id, raws in raw.items()
    ]
    return events, list(raw.values())


def us_per_case(run: Callable[[], Any], cases: int) -> float:
    """The time of one ``run()`` (a pass over every case), in µs per case."""
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) / cases * 1e6


def measure(
    name: str,
    policies: PolicySet,
    events: Sequence[list[Event]],
    raws: Sequence[list[bytes]],
    repeat: int,
) -> None:
    for case in events:  # warm the calendars' caches, as a running worker has them
        evaluate(case, policies)

    def sla() -> None:
        for case in events:
            evaluate(case, policies)

    def fold() -> None:
        for case in events:
            derive_facts(case[0].case_id, case)

    def decode() -> None:
        loads = orjson.loads
        for case in raws:
            for raw in case:
                loads(raw)

    n = len(events)
    # Interleave the measurements so that a burst of load elsewhere hits them alike.
    t_sla = t_fold = t_json = float("inf")
    for _ in range(repeat):
        t_sla = min(t_sla, us_per_case(sla, n))
        t_fold = min(t_fold, us_per_case(fold, n))
        t_json = min(t_json, us_per_case(decode, n))
    print(
        f"{name:<10} evaluate {t_sla:7.1f} µs/case | fold {t_fold:5.1f} µs/case "
        f"(ratio {t_sla / t_fold:5.2f}) | json {t_json:5.1f} µs/case (ratio {t_sla / t_json:5.2f})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    events, raws = cases_of(args.cases, args.days, args.seed)
    print(
        f"{len(events):,} cases, {sum(map(len, events)):,} events "
        f"({args.days:g} simulated days), best of {args.repeat}"
    )
    beijing = load_policies(DEFAULT_POLICIES_PATH)
    shanghai = load_policies(DEFAULT_POLICIES_PATH.with_name("policies-shanghai.yaml"))
    measure("beijing", beijing, events, raws, args.repeat)
    measure("shanghai", shanghai, events, raws, args.repeat)

    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for case in events:
            evaluate(case, beijing)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
