"""Seeded, deterministic synthetic citizen-request events in the v1 event envelope.

``simulate(config)`` runs a finite city (``config.cases`` cases over ``horizon_days``) and
returns both the true valid history and what goes on the wire: the valid events (mostly in
event-time order, some delayed), exact redeliveries, and malformed messages.
``iter_simulation`` streams the same wire messages with bounded working memory.
``live_stream`` runs an endless city whose event times track the wall clock.

Identical seed and parameters give byte-identical output: every draw comes from a
``random.Random`` seeded from the seed (the city and the wire noise use separate ones, so
the noise shares never change the true history).
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from random import Random
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from streams.contract.json_bytes import dumps
from streams.sources.city import DAY, HOUR, SECOND, City, Step
from streams.sources.producer import produce

__all__ = [
    "DEFAULT_START",
    "MALFORMED_KINDS",
    "SOURCE",
    "Emitted",
    "LiveCity",
    "LiveStream",
    "SimulatedHistory",
    "SimulationConfig",
    "iter_simulation",
    "live_stream",
    "produce",
    "simulate",
]

SOURCE = "simulator"
DEFAULT_START = datetime(2026, 3, 2, 0, 0, tzinfo=timezone(timedelta(hours=8)))  # a Monday

KIND_VALID = "valid"
KIND_DUPLICATE = "duplicate"
KIND_MALFORMED = "malformed"

MALFORMED_KINDS: tuple[str, ...] = (
    "not_json",
    "invalid_utf8",
    "not_object",
    "missing_field",
    "unknown_type",
    "bad_enum",
    "timestamp_without_offset",
    "forbidden_field",
    "wrong_schema_version",
)

_REQUIRED_TOP = (
    "schema_version",
    "event_id",
    "case_id",
    "type",
    "occurred_at",
    "source",
    "payload",
)
_REQUIRED_PAYLOAD: dict[str, tuple[str, ...]] = {
    "opened": ("channel", "category", "urgency", "district", "sub_district", "citizen_ref"),
    "dispatched": ("agency",),
    "signed_for": ("agency",),
    "first_contact": ("agency", "method"),
    "transferred": ("from_agency", "to_agency"),
    "returned": ("agency", "reason"),
    "paused": ("reason",),
    "resumed": (),
    "deadline_extended": ("target", "extension_seconds", "approved_by"),
    "resolved": ("agency", "closure_reason"),
    "closed": (),
    "callback": ("reached",),
    "rated": ("satisfaction",),
    "reopened": ("reason",),
}
# (payload field, a value outside its enum)
_BAD_ENUMS: dict[str, tuple[tuple[str, Any], ...]] = {
    "opened": (("channel", "fax"), ("urgency", "critical")),
    "first_contact": (("method", "carrier_pigeon"),),
    "returned": (("reason", "lunch_break"),),
    "paused": (("reason", "holiday"),),
    "deadline_extended": (("target", "forever"),),
    "resolved": (("closure_reason", "solved"),),
    "rated": (("satisfaction", "ecstatic"),),
    "reopened": (("reason", "bored"),),
}


@dataclass(frozen=True)
class SimulationConfig:
    seed: int = 1
    cases: int = 1000
    start: datetime = DEFAULT_START
    horizon_days: float = 14
    timezone: str = "Asia/Shanghai"
    malformed_share: float = 0.0  # malformed messages per valid event (Bernoulli each)
    duplicate_share: float = 0.0  # exact redeliveries per valid event (Bernoulli each)
    out_of_order_share: float = 0.0  # valid events delayed on the wire (Bernoulli each)

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise ValueError("SimulationConfig.start must be timezone-aware")
        if self.cases < 0:
            raise ValueError("cases must be >= 0")
        if not self.horizon_days > 0:
            raise ValueError("horizon_days must be > 0")
        for name in ("malformed_share", "duplicate_share", "out_of_order_share"):
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {share}")
        ZoneInfo(self.timezone)  # raises for an unknown zone


@dataclass(frozen=True, slots=True)
class Emitted:
    """One Kafka message: key (case id when known), value bytes, and what it is:
    "valid" (first copy of a valid event), "duplicate" (an exact redelivery) or
    "malformed" (must be dead-lettered)."""

    key: bytes | None
    value: bytes
    kind: str


@dataclass(slots=True)
class SimulatedHistory:
    events: list[dict[str, Any]]  # the true valid history, each distinct event once
    emitted: list[Emitted]  # the wire, in wire order


def _epoch_ms(dt: datetime) -> int:
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return delta // timedelta(milliseconds=1)


class _TimeFormat:
    """Epoch ms -> RFC 3339 with the zone's offset and millisecond precision."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz

    def __call__(self, t_ms: int) -> str:
        s = datetime.fromtimestamp(t_ms // SECOND, self.tz).isoformat(timespec="seconds")
        return f"{s[:19]}.{t_ms % SECOND:03d}{s[19:]}"


def _event(
    event_id: str, case_id: str, type_: str, occurred_at: str, payload: dict[str, Any]
) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": event_id,
        "case_id": case_id,
        "type": type_,
        "occurred_at": occurred_at,
        "source": SOURCE,
        "payload": payload,
    }


def _deep_copy(event: dict[str, Any]) -> dict[str, Any]:
    copied: dict[str, Any] = orjson.loads(orjson.dumps(event))
    return copied


class _Malformer:
    """Builds malformed messages from a template valid event (never the event itself:
    each gets its own event id, so it cannot collide with a valid one)."""

    def __init__(self, rng: Random, id_prefix: str) -> None:
        self.rng = rng
        self.id_prefix = id_prefix
        self.count = 0
        self.last_by_type: dict[str, dict[str, Any]] = {}

    def observe(self, event: dict[str, Any]) -> None:
        if event["type"] in _BAD_ENUMS:
            self.last_by_type[event["type"]] = event

    def make(self, template: dict[str, Any]) -> Emitted:
        rng = self.rng
        self.count += 1
        kind = MALFORMED_KINDS[rng.randrange(len(MALFORMED_KINDS))]
        ev = _deep_copy(template)
        ev["event_id"] = f"{self.id_prefix}-bad-{self.count:07d}"
        case_key: bytes | None = ev["case_id"].encode()
        value: bytes
        if kind == "not_json":
            variant = rng.randrange(4)
            if variant == 0:
                raw = dumps(ev)
                value = raw[: rng.randint(1, len(raw) - 2)]  # truncated
            elif variant == 1:
                value = dumps(ev).replace(b'"payload":', b"payload:")
            elif variant == 2:
                value, case_key = b"", None
            else:
                value, case_key = b"case opened, see attachment", None
        elif kind == "invalid_utf8":
            value = dumps(ev).replace(b'"simulator"', b'"simul\xc3\x28\xffator"', 1)
        elif kind == "not_object":
            variant = rng.randrange(3)
            if variant == 0:
                value = dumps([ev])
            elif variant == 1:
                value, case_key = b"null", None
            else:
                value, case_key = dumps(ev["case_id"]), None
        elif kind == "missing_field":
            required = _REQUIRED_PAYLOAD.get(ev["type"], ())
            if required and rng.random() < 0.5:
                del ev["payload"][rng.choice(required)]
            else:
                field = rng.choice(_REQUIRED_TOP)
                del ev[field]
                if field == "case_id":
                    case_key = None
            value = dumps(ev)
        elif kind == "unknown_type":
            ev["type"] = rng.choice(("escalated", "merged", "archived", "Opened"))
            value = dumps(ev)
        elif kind == "bad_enum":
            base = ev if ev["type"] in _BAD_ENUMS else None
            if base is None and self.last_by_type:
                types = sorted(self.last_by_type)
                base = _deep_copy(self.last_by_type[rng.choice(types)])
                base["event_id"] = ev["event_id"]
                case_key = base["case_id"].encode()
            if base is None:  # nothing with an enum payload seen yet
                ev["type"] = "OPENED"
                value = dumps(ev)
            else:
                field, bad = rng.choice(_BAD_ENUMS[base["type"]])
                base["payload"][field] = bad
                value = dumps(base)
        elif kind == "timestamp_without_offset":
            ts: str = ev["occurred_at"]
            ev["occurred_at"] = rng.choice((ts[:23], ts[:19], ts[:23].replace("T", " ")))
            value = dumps(ev)
        elif kind == "forbidden_field":
            if rng.random() < 0.6:
                ev["payload"]["citizen_name"] = "SYNTHETIC-TEST-NAME"
            elif rng.random() < 0.5:
                ev["citizen_name"] = "SYNTHETIC-TEST-NAME"
            else:
                ev["payload"]["phone"] = "000-0000-0000"
            value = dumps(ev)
        else:  # wrong_schema_version
            ev["schema_version"] = rng.choice((2, 0, "1", 99))
            value = dumps(ev)
        return Emitted(case_key, value, KIND_MALFORMED)


class _Wire:
    """Turns valid events (in event-time order) into wire order: delays some by a random
    number of positions, adds exact redeliveries after the original, injects malformed
    messages. Working memory: the delayed messages only."""

    def __init__(self, config: SimulationConfig, rng: Random, id_prefix: str) -> None:
        self.rng = rng
        self.ooo = config.out_of_order_share
        self.dup = config.duplicate_share
        self.mal = config.malformed_share
        self.malformer = _Malformer(rng, id_prefix)
        self.i = 0
        self.seq = 0
        self.heap: list[tuple[int, int, Emitted]] = []

    def _delay(self, median: float, sigma: float) -> int:
        return 1 + min(200_000, int(median * math.exp(sigma * self.rng.gauss())))

    def _hold(self, release: int, em: Emitted) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (release, self.seq, em))

    def push(self, em: Emitted, event: dict[str, Any]) -> list[Emitted]:
        i = self.i
        self.i += 1
        out: list[Emitted] = []
        heap = self.heap
        while heap and heap[0][0] <= i:
            out.append(heapq.heappop(heap)[2])
        release = i
        if self.ooo and self.rng.random() < self.ooo:
            release = i + self._delay(20, 1.5)
            self._hold(release, em)
        else:
            out.append(em)
        if self.dup and self.rng.random() < self.dup:
            self._hold(release + self._delay(30, 1.5), Emitted(em.key, em.value, KIND_DUPLICATE))
        if self.mal:
            self.malformer.observe(event)
            if self.rng.random() < self.mal:
                out.append(self.malformer.make(event))
        return out

    def flush(self) -> list[Emitted]:
        out = [em for _, _, em in sorted(self.heap)]
        self.heap.clear()
        return out


def _true_steps(config: SimulationConfig) -> Iterator[tuple[int, str, str, dict[str, Any]]]:
    """(event time ms, case id, type, payload) of the valid history, in event-time order
    (ties: the earlier-scheduled first)."""
    tz = ZoneInfo(config.timezone)
    city = City(Random(config.seed), tz, citizen_pool=max(50, int(config.cases * 0.7)))
    start_ms = _epoch_ms(config.start)
    end_ms = start_ms + int(config.horizon_days * DAY)
    arrivals = city.arrivals(start_ms, end_ms, config.cases)
    heap: list[tuple[int, int, str, str, dict[str, Any], Iterator[Step]]] = []
    seq = 0

    def pop() -> Iterator[tuple[int, str, str, dict[str, Any]]]:
        nonlocal seq
        t, _, case_id, type_, payload, steps = heapq.heappop(heap)
        if t >= end_ms:
            return  # beyond the horizon: the rest of this case never happens
        yield t, case_id, type_, payload
        nxt = next(steps, None)
        if nxt is not None:
            seq += 1
            heapq.heappush(heap, (nxt[0], seq, case_id, nxt[1], nxt[2], steps))

    width = max(6, len(str(config.cases)))
    for n, t_open in enumerate(arrivals):
        while heap and heap[0][0] <= t_open:
            yield from pop()
        case_id = f"sim-{config.seed}-case-{n + 1:0{width}d}"
        steps = city.lifecycle(case_id, t_open)
        t, type_, payload = next(steps)
        seq += 1
        heapq.heappush(heap, (t, seq, case_id, type_, payload, steps))
    while heap:
        yield from pop()


def _generate(config: SimulationConfig, sink: list[dict[str, Any]] | None) -> Iterator[Emitted]:
    fmt = _TimeFormat(ZoneInfo(config.timezone))
    prefix = f"sim-{config.seed}"
    wire = _Wire(config, Random(f"civicpulse-wire-{config.seed}"), prefix)
    for n, (t, case_id, type_, payload) in enumerate(_true_steps(config)):
        event = _event(f"{prefix}-{n:09d}", case_id, type_, fmt(t), payload)
        if sink is not None:
            sink.append(event)
        yield from wire.push(Emitted(case_id.encode(), dumps(event), KIND_VALID), event)
    yield from wire.flush()


def iter_simulation(config: SimulationConfig) -> Iterator[Emitted]:
    """The wire messages of ``simulate(config)``, streamed. Working memory: the intake
    times (one int per case), the open cases' state and the delayed messages."""
    return _generate(config, None)


def simulate(config: SimulationConfig) -> SimulatedHistory:
    """The whole run in memory: the true history and the wire."""
    events: list[dict[str, Any]] = []
    # Building hundreds of thousands of long-lived, acyclic objects: the cyclic garbage
    # collector would rescan them again and again (simulate(50k) ran 2.5x slower with it).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        emitted = list(_generate(config, events))
    finally:
        if gc_was_enabled:
            gc.enable()
    return SimulatedHistory(events=events, emitted=emitted)


# -- live -----------------------------------------------------------------------------

# Mean events per case over a full lifecycle (measured: 8.7), to turn a message rate into
# a case arrival rate.
EVENTS_PER_CASE = 8.7


class LiveCity:
    """An endless city whose event times track a (wall) clock.

    Cases arrive as a Poisson process modulated by the simulated time of day, at the rate
    that gives about ``rate_per_s`` messages per second once the first lifecycles have
    run their course (before that, mostly intake events flow). Each lifecycle runs
    ``speedup`` times faster than real time (1440: one simulated day per wall minute).
    ``occurred_at`` is the wall time an event is due, so the output depends only on seed,
    start and parameters, never on when or how often ``poll`` is called.

    Memory: about 2 KB per open case; open cases ~ case rate x mean lifetime / speedup
    (at 2000 msg/s and speedup 1440: ~100k cases).
    """

    def __init__(
        self,
        seed: int,
        rate_per_s: float,
        *,
        start_ms: int,
        speedup: float = 1440.0,
        timezone: str = "Asia/Shanghai",
        malformed_share: float = 0.0,
        duplicate_share: float = 0.0,
        out_of_order_share: float = 0.0,
        run_id: str | None = None,
    ) -> None:
        if rate_per_s <= 0 or speedup <= 0:
            raise ValueError("rate_per_s and speedup must be > 0")
        for share in (malformed_share, duplicate_share, out_of_order_share):
            if not 0.0 <= share <= 1.0:
                raise ValueError("shares must be within [0, 1]")
        self.case_rate = rate_per_s / (EVENTS_PER_CASE * (1 + malformed_share + duplicate_share))
        self.speedup = speedup
        self.start_ms = start_ms
        tz = ZoneInfo(timezone)
        self.fmt = _TimeFormat(tz)
        self.rng = Random(seed)
        self.city = City(self.rng, tz, citizen_pool=500_000)
        self.wire_rng = Random(f"civicpulse-live-wire-{seed}")
        run = run_id if run_id is not None else format(start_ms // SECOND, "x")
        self.prefix = f"live-{seed}-{run}"
        self.malformer = _Malformer(self.wire_rng, self.prefix)
        self.ooo = out_of_order_share
        self.dup = duplicate_share
        self.mal = malformed_share
        self.cases = 0
        self.events = 0
        self.seq = 0
        # (due wall ms, seq, case id ("" for a held message), step or message, steps)
        self.heap: list[tuple[int, int, str, Step | Emitted, Iterator[Step] | None]] = []
        week = [self.city.clock.rate_factor(start_ms + h * HOUR) for h in range(24 * 7)]
        self._peak = max(week)  # bounds the thinning
        self._mean = sum(week) / len(week)
        self.next_arrival = start_ms + self._interarrival(start_ms)

    @property
    def open_cases(self) -> int:
        return sum(1 for entry in self.heap if entry[4] is not None)

    def sim_ms(self, wall_ms: int) -> int:
        return self.start_ms + int((wall_ms - self.start_ms) * self.speedup)

    def wall_ms(self, sim_ms: int) -> int:
        return self.start_ms + math.ceil((sim_ms - self.start_ms) / self.speedup)

    def _interarrival(self, after_wall: int) -> int:
        t = float(after_wall)
        peak_rate = self.case_rate * self._peak / self._mean / SECOND  # per ms
        while True:
            t += self.rng.expovariate(peak_rate)
            factor = self.city.clock.rate_factor(self.sim_ms(int(t)))
            if self.rng.random() * self._peak < factor:
                return max(1, int(t) - after_wall)

    def _push(
        self, due: int, case_id: str, item: Step | Emitted, steps: Iterator[Step] | None
    ) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (due, self.seq, case_id, item, steps))

    def next_due(self) -> int:
        return min(self.next_arrival, self.heap[0][0]) if self.heap else self.next_arrival

    def _emit(self, due: int, case_id: str, step: Step, out: list[Emitted]) -> None:
        _, type_, payload = step
        event = _event(f"{self.prefix}-{self.events:09d}", case_id, type_, self.fmt(due), payload)
        self.events += 1
        em = Emitted(case_id.encode(), dumps(event), KIND_VALID)
        rng = self.wire_rng
        release = due
        if self.ooo and rng.random() < self.ooo:
            release = due + int(5_000 * math.exp(rng.gauss())) + 1  # ~5 s late
            self._push(release, "", em, None)
        else:
            out.append(em)
        if self.dup and rng.random() < self.dup:
            dup = Emitted(em.key, em.value, KIND_DUPLICATE)
            self._push(release + int(3_000 * math.exp(rng.gauss())) + 1, "", dup, None)
        if self.mal:
            self.malformer.observe(event)
            if rng.random() < self.mal:
                out.append(self.malformer.make(event))

    def _schedule_next(self, case_id: str, last_wall: int, steps: Iterator[Step]) -> None:
        nxt = next(steps, None)
        if nxt is not None:
            due = max(last_wall + 1, self.wall_ms(nxt[0]))
            self._push(due, case_id, nxt, steps)

    def poll(self, now_ms: int) -> list[Emitted]:
        """Everything due at or before ``now_ms``, in due order."""
        out: list[Emitted] = []
        heap = self.heap
        while True:
            if self.next_arrival <= now_ms and (not heap or self.next_arrival <= heap[0][0]):
                due = self.next_arrival
                self.cases += 1
                case_id = f"{self.prefix}-case-{self.cases:07d}"
                steps = self.city.lifecycle(case_id, self.sim_ms(due))
                opened = next(steps)
                self._emit(due, case_id, opened, out)
                self._schedule_next(case_id, due, steps)
                self.next_arrival = due + self._interarrival(due)
            elif heap and heap[0][0] <= now_ms:
                due, _, case_id, item, held_steps = heapq.heappop(heap)
                if isinstance(item, Emitted):
                    out.append(item)
                else:
                    assert held_steps is not None
                    self._emit(due, case_id, item, out)
                    self._schedule_next(case_id, due, held_steps)
            else:
                return out


class LiveStream(Iterator[Emitted], AsyncIterator[Emitted]):
    """A live city's wire messages, each handed out when its time comes on ``clock``.

    Iterate it (blocking in ``sleep`` while nothing is due) or ``async for`` over it
    (waiting in ``asyncio.sleep``): ``produce`` takes the async route, so its Kafka I/O
    keeps running while the city is quiet."""

    def __init__(
        self,
        city: LiveCity,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        max_messages: int | None = None,
    ) -> None:
        self.city = city
        self.clock = clock
        self.sleep = sleep
        self.remaining = max_messages
        self._buffer: deque[Emitted] = deque()

    def _wait_s(self) -> float | None:
        """Fill the buffer with what is due; None when there is something, else how long
        to wait for the next due item."""
        if self._buffer:
            return None
        now_ms = int(self.clock() * SECOND)
        self._buffer.extend(self.city.poll(now_ms))
        if self._buffer:
            return None
        return min(0.25, max(0.001, (self.city.next_due() - now_ms) / SECOND))

    def _take(self) -> Emitted:
        if self.remaining is not None:
            self.remaining -= 1
        return self._buffer.popleft()

    def __iter__(self) -> LiveStream:
        return self

    def __next__(self) -> Emitted:
        if self.remaining is not None and self.remaining <= 0:
            raise StopIteration
        while (wait := self._wait_s()) is not None:
            self.sleep(wait)
        return self._take()

    def __aiter__(self) -> LiveStream:
        return self

    async def __anext__(self) -> Emitted:
        if self.remaining is not None and self.remaining <= 0:
            raise StopAsyncIteration
        while (wait := self._wait_s()) is not None:
            await asyncio.sleep(wait)
        return self._take()


def live_stream(
    seed: int,
    rate_per_s: float,
    *,
    speedup: float = 1440.0,
    start: datetime | None = None,
    timezone: str = "Asia/Shanghai",
    malformed_share: float = 0.0,
    duplicate_share: float = 0.0,
    out_of_order_share: float = 0.0,
    run_id: str | None = None,
    max_messages: int | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> LiveStream:
    """An endless live city: about ``rate_per_s`` messages per second (once warmed up),
    event times tracking ``clock``, lifecycles ``speedup`` times faster than real time.
    ``start`` (default: now) anchors the run; ids carry ``run_id`` (default: the start
    time in hex seconds), so restarts never reuse an event id. The result is both an
    iterator (blocking) and an async iterator (pass it to ``produce`` as is)."""
    start_ms = int(clock() * SECOND) if start is None else _epoch_ms(start)
    city = LiveCity(
        seed,
        rate_per_s,
        start_ms=start_ms,
        speedup=speedup,
        timezone=timezone,
        malformed_share=malformed_share,
        duplicate_share=duplicate_share,
        out_of_order_share=out_of_order_share,
        run_id=run_id,
    )
    return LiveStream(city, clock=clock, sleep=sleep, max_messages=max_messages)
