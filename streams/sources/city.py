"""The synthetic city behind the simulator: districts, agencies, categories, and the
lifecycle of one citizen request as a lazy sequence of (event time, type, payload) steps.

Everything random goes through the ``random.Random`` the caller hands in, so a seed fixes
the whole city. Times are integer epoch milliseconds; within a case they strictly increase
(at least one second apart), so a case's event-time order is its lifecycle order.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import math
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from random import Random
from typing import Any

SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

# (event time in epoch ms, event type, payload)
Step = tuple[int, str, dict[str, Any]]

# Fixed, public, simulator-only pseudonymisation key. Real sources use a secret key.
SIMULATOR_CITIZEN_KEY = b"civicpulse-simulator-citizen-key-v1"


@lru_cache(maxsize=65_536)
def citizen_ref(citizen_number: int) -> str:
    """Pseudonymous reference of a synthetic citizen: HMAC-SHA256, 32 lowercase hex chars."""
    message = f"citizen:{citizen_number:010d}".encode()
    return hmac.new(SIMULATOR_CITIZEN_KEY, message, hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class District:
    name: str
    sub_districts: tuple[str, ...]
    weight: float  # share of the population
    lat: float
    lon: float
    service: float  # >1: served more slowly than the city (an equity gap to find)


@dataclass(frozen=True, slots=True)
class Agency:
    name: str
    sub_units: tuple[str, ...]
    sign_minutes: float  # median time to sign for a case it received
    contact_minutes: float  # median time from sign-for to the first contact
    resolve_hours: float  # median working time from first contact to resolution
    sigma: float  # log-normal spread of its delays
    office_hours: bool  # acts 08:00-20:00 local (except on emergencies)
    pause_share: float  # chance a case it handles is paused (some agencies overuse it)
    return_share: float  # chance it returns a case it owns for "insufficient info"
    bounce_share: float  # chance it bounces a transferred-in case back (ping-pong)
    fix_quality: float  # chance a citizen confirms a "fixed" case really is solved
    dodge: float  # extra weight on referred/not-ours closures


@dataclass(frozen=True, slots=True)
class Category:
    name: str
    agency: str  # owning agency
    urgency: str  # emergency | urgent | normal | complex
    weight: float
    confused_with: str  # the agency a dispatcher wrongly picks when misrouting
    misroute: float  # chance the first dispatch goes to the wrong agency


@dataclass(frozen=True, slots=True)
class UrgencyTier:
    dispatch_minutes: float  # median time from intake to dispatch
    response: float  # multiplier on sign-for and first-contact delays
    resolve: float  # multiplier on resolution time
    extend_response: float  # chance of an approved first-response deadline extension
    extend_resolution: float  # chance of an approved resolution deadline extension


DISTRICTS: tuple[District, ...] = (
    District(
        "Harbour",
        ("Harbour North", "Harbour South", "Dockside", "Lighthouse"),
        0.16,
        31.02,
        121.48,
        1.0,
    ),
    District(
        "Old Town",
        ("Drum Tower", "Temple Street", "Silk Lane", "West Gate", "Canal Side"),
        0.20,
        31.05,
        121.40,
        1.0,
    ),
    District("Riverside", ("Riverbend", "Willow Bank", "Mill Street"), 0.12, 31.09, 121.44, 1.1),
    District(
        "Hillcrest", ("Upper Hill", "Pine Ridge", "Observatory", "Quarry"), 0.10, 31.12, 121.36, 1.0
    ),
    District(
        "New District",
        ("Tech Park", "Airport Road", "Lakeside", "Metro Center", "Garden City", "University Town"),
        0.27,
        31.00,
        121.58,
        0.9,
    ),
    District(
        "Eastfield", ("Eastfield Market", "Rail Yard", "Orchard"), 0.15, 31.06, 121.66, 1.6
    ),  # the underserved outskirts
)

AGENCIES: tuple[Agency, ...] = (
    Agency(
        "Water Authority",
        ("North Works", "South Works", "Drainage Team"),
        25,
        60,
        18,
        0.9,
        True,
        0.10,
        0.02,
        0.10,
        0.90,
        0.0,
    ),
    Agency(
        "Energy Utilities",
        ("Grid North", "Grid South", "Gas Service", "Heating Service"),
        10,
        30,
        8,
        0.8,
        False,
        0.06,
        0.01,
        0.05,
        0.93,
        0.0,
    ),
    Agency(
        "Transport Bureau",
        ("Roads Maintenance", "Traffic Signals", "Parking Enforcement"),
        45,
        120,
        40,
        1.0,
        True,
        0.12,
        0.03,
        0.15,
        0.85,
        0.5,
    ),
    Agency(
        "Urban Management",
        ("Sanitation", "Street Order", "Green Spaces", "Inspection Brigade"),
        30,
        90,
        24,
        1.0,
        True,
        0.10,
        0.04,
        0.35,
        0.84,
        1.0,
    ),
    Agency(
        "Environment Bureau",
        ("Noise Control", "Air Quality", "Waste Oversight"),
        180,
        480,
        60,
        1.1,
        True,
        0.30,
        0.05,
        0.25,
        0.78,
        1.5,
    ),  # slow, pauses a lot
    Agency(
        "Housing Bureau",
        ("Property Office", "Building Safety", "Housing Repair"),
        240,
        600,
        90,
        1.2,
        True,
        0.18,
        0.06,
        0.20,
        0.70,
        1.2,
    ),  # slowest
    Agency(
        "Public Security",
        ("Patrol North", "Patrol South", "Community Police"),
        5,
        20,
        4,
        0.7,
        False,
        0.04,
        0.01,
        0.10,
        0.92,
        0.3,
    ),
    Agency(
        "Social Services",
        ("Social Assistance", "Labour Inspection", "Elderly Care"),
        120,
        360,
        72,
        1.1,
        True,
        0.15,
        0.04,
        0.15,
        0.80,
        0.6,
    ),
)

AGENCY_BY_NAME: dict[str, Agency] = {a.name: a for a in AGENCIES}

CATEGORIES: tuple[Category, ...] = (
    Category("gas_leak", "Energy Utilities", "emergency", 0.6, "Public Security", 0.04),
    Category("flooding", "Water Authority", "emergency", 0.5, "Urban Management", 0.06),
    Category("road_collapse", "Transport Bureau", "emergency", 0.3, "Urban Management", 0.08),
    Category("fire_hazard", "Public Security", "emergency", 0.4, "Urban Management", 0.05),
    Category("water_outage", "Water Authority", "urgent", 4.0, "Housing Bureau", 0.08),
    Category("power_outage", "Energy Utilities", "urgent", 4.0, "Housing Bureau", 0.06),
    Category("heating_failure", "Energy Utilities", "urgent", 3.0, "Housing Bureau", 0.12),
    Category("sewage_overflow", "Water Authority", "urgent", 2.0, "Urban Management", 0.10),
    Category("traffic_signal", "Transport Bureau", "urgent", 1.5, "Public Security", 0.08),
    Category("noise", "Environment Bureau", "normal", 9.0, "Public Security", 0.15),
    Category("illegal_parking", "Transport Bureau", "normal", 8.0, "Urban Management", 0.12),
    Category("garbage_collection", "Urban Management", "normal", 8.0, "Environment Bureau", 0.08),
    Category("street_lighting", "Urban Management", "normal", 4.0, "Energy Utilities", 0.18),
    Category("pothole", "Transport Bureau", "normal", 5.0, "Urban Management", 0.10),
    Category("stray_animals", "Urban Management", "normal", 2.0, "Public Security", 0.08),
    Category("air_pollution", "Environment Bureau", "normal", 3.0, "Urban Management", 0.10),
    Category("illegal_construction", "Urban Management", "normal", 4.0, "Housing Bureau", 0.16),
    Category("neighbour_dispute", "Public Security", "normal", 3.0, "Social Services", 0.10),
    Category("property_management", "Housing Bureau", "complex", 7.0, "Urban Management", 0.12),
    Category("housing_repair", "Housing Bureau", "complex", 4.0, "Water Authority", 0.10),
    Category("wage_arrears", "Social Services", "complex", 3.0, "Public Security", 0.10),
    Category("social_assistance", "Social Services", "complex", 3.0, "Housing Bureau", 0.06),
)

URGENCY: dict[str, UrgencyTier] = {
    "emergency": UrgencyTier(2, 0.1, 0.08, 0.0, 0.0),
    "urgent": UrgencyTier(10, 0.4, 0.4, 0.01, 0.03),
    "normal": UrgencyTier(20, 1.0, 1.0, 0.02, 0.05),
    "complex": UrgencyTier(30, 1.5, 2.0, 0.04, 0.25),
}

CHANNELS: tuple[tuple[str, float], ...] = (
    ("hotline", 0.42),
    ("app", 0.18),
    ("wechat", 0.20),
    ("web", 0.09),
    ("walk_in", 0.05),
    ("email", 0.06),
)

# Relative arrival rate by local hour of day (weekday); weekends get WEEKEND_FACTOR.
DIURNAL: tuple[float, ...] = (
    0.25,
    0.15,
    0.10,
    0.08,
    0.08,
    0.12,
    0.30,
    0.70,
    1.20,
    1.60,
    1.70,
    1.60,
    1.30,
    1.40,
    1.60,
    1.60,
    1.50,
    1.40,
    1.20,
    1.10,
    1.00,
    0.85,
    0.60,
    0.40,
)
WEEKEND_FACTOR = 0.7

CLOSURE_BASE: tuple[tuple[str, float], ...] = (
    ("fixed", 0.78),
    ("referred_elsewhere", 0.06),
    ("duplicate", 0.04),
    ("not_our_responsibility", 0.05),
    ("no_problem_found", 0.04),
    ("cancelled_by_citizen", 0.02),
    ("other", 0.01),
)
# Chance the citizen, reached on the callback, confirms the problem is solved.
CONFIRMS_BY_CLOSURE: dict[str, float] = {
    "referred_elsewhere": 0.35,
    "duplicate": 0.70,
    "not_our_responsibility": 0.20,
    "no_problem_found": 0.45,
    "cancelled_by_citizen": 0.90,
    "other": 0.50,
}
PAUSE_REASONS: tuple[tuple[str, float], ...] = (
    ("awaiting_citizen", 0.60),
    ("awaiting_third_party", 0.20),
    ("scheduled_work", 0.15),
    ("other", 0.05),
)
APPROVERS: tuple[str, ...] = ("Dispatch Center", "District Office", "Agency Director")


def _cumulative(weights: Sequence[float]) -> list[float]:
    out: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


class LocalClock:
    """Local-time arithmetic on epoch milliseconds for one time zone."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz

    def local(self, t_ms: int) -> datetime:
        return datetime.fromtimestamp(t_ms // SECOND, self.tz)

    def hour(self, t_ms: int) -> int:
        return self.local(t_ms).hour

    def is_weekend(self, t_ms: int) -> bool:
        return self.local(t_ms).weekday() >= 5

    def next_at_hour(self, t_ms: int, hour: int) -> int:
        """The next local ``hour``:00 strictly after ``t_ms``."""
        dt = self.local(t_ms)
        target = dt.replace(hour=hour, minute=0, second=0, microsecond=0)
        if target.timestamp() * SECOND <= t_ms:
            target = (dt + timedelta(days=1)).replace(hour=hour, minute=0, second=0, microsecond=0)
        return int(target.astimezone(UTC).timestamp()) * SECOND

    def next_at_hour_boundary(self, t_ms: int) -> int:
        """The next local full hour strictly after ``t_ms``."""
        dt = self.local(t_ms).replace(minute=0, second=0, microsecond=0)
        nxt = int(dt.astimezone(UTC).timestamp()) * SECOND + HOUR
        while nxt <= t_ms:
            nxt += HOUR
        return nxt

    def rate_factor(self, t_ms: int) -> float:
        dt = self.local(t_ms)
        factor = DIURNAL[dt.hour]
        return factor * WEEKEND_FACTOR if dt.weekday() >= 5 else factor


class City:
    """The synthetic city. One instance per simulation; all draws come from ``rng``."""

    def __init__(self, rng: Random, tz: tzinfo, citizen_pool: int) -> None:
        self.rng = rng
        self.clock = LocalClock(tz)
        self.citizen_pool = max(1, citizen_pool)
        self._cat_cum = _cumulative([c.weight for c in CATEGORIES])
        self._dist_cum = _cumulative([d.weight for d in DISTRICTS])
        self._chan_cum = _cumulative([w for _, w in CHANNELS])
        self._pause_cum = _cumulative([w for _, w in PAUSE_REASONS])
        # Recent case ids per (category, district): the targets of "duplicate" closures.
        self._recent: dict[tuple[str, str], deque[str]] = {}

    # -- draws -------------------------------------------------------------------------

    def _pick(self, cum: list[float]) -> int:
        return bisect.bisect_right(cum, self.rng.random() * cum[-1])

    def _choice_weighted(self, table: Sequence[tuple[str, float]], cum: list[float]) -> str:
        return table[min(self._pick(cum), len(table) - 1)][0]

    def _lognormal_ms(self, median_ms: float, sigma: float) -> int:
        # exp(gauss): a log-normal draw, cheaper than Random.lognormvariate
        return max(SECOND, int(median_ms * math.exp(sigma * self.rng.gauss())))

    def _agency_time(
        self, t: int, median_ms: float, sigma: float, agency: Agency, urgency: str
    ) -> int:
        """When an agency acts ``median_ms`` (log-normal) after ``t``: office agencies
        mostly push non-emergency work into 08:00-20:00 local time."""
        t2 = t + self._lognormal_ms(median_ms, sigma)
        if agency.office_hours and urgency != "emergency":
            hour = self.clock.hour(t2)
            if (hour < 8 or hour >= 20) and self.rng.random() < 0.85:
                t2 = self.clock.next_at_hour(t2, 8) + self._lognormal_ms(40 * MINUTE, 0.8)
        return t2

    def _center_time(self, t: int, median_ms: float, sigma: float = 0.8) -> int:
        """The 24/7 dispatch center: slower at night."""
        t2 = t + self._lognormal_ms(median_ms, sigma)
        hour = self.clock.hour(t2)
        if hour < 7 or hour >= 22:
            t2 += self._lognormal_ms(median_ms, sigma)
        return t2

    def arrivals(self, start_ms: int, end_ms: int, count: int) -> list[int]:
        """``count`` intake times in [start_ms, end_ms), drawn from the diurnal/weekly
        rate profile, sorted."""
        if count <= 0 or end_ms <= start_ms:
            return []
        bins: list[tuple[int, int]] = []
        weights: list[float] = []
        t = start_ms
        while t < end_ms:
            # bins end on local hour boundaries
            nxt = min(end_ms, self.clock.next_at_hour_boundary(t))
            bins.append((t, nxt))
            weights.append(self.clock.rate_factor(t) * (nxt - t))
            t = nxt
        cum = _cumulative(weights)
        rng = self.rng
        times: list[int] = []
        for _ in range(count):
            i = min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(bins) - 1)
            lo, hi = bins[i]
            times.append(lo + int(rng.random() * (hi - lo)))
        times.sort()
        return times

    # -- one case ----------------------------------------------------------------------

    def _dispatch_payload(self, agency: Agency, district_index: int) -> dict[str, Any]:
        payload: dict[str, Any] = {"agency": agency.name}
        if self.rng.random() < 0.93:
            # sub-units are regional branches / teams: mostly by district, sometimes not
            if self.rng.random() < 0.8:
                payload["sub_unit"] = agency.sub_units[district_index % len(agency.sub_units)]
            else:
                payload["sub_unit"] = self.rng.choice(agency.sub_units)
        return payload

    def _wrong_agency(self, category: Category, avoid: Agency | None) -> Agency:
        confused = AGENCY_BY_NAME[category.confused_with]
        if confused is not avoid and self.rng.random() < 0.75:
            return confused
        options = [a for a in AGENCIES if a.name != category.agency and a is not avoid]
        return self.rng.choice(options)

    def _contact_method(self, channel: str, urgency: str) -> str:
        r = self.rng.random()
        if channel in ("app", "wechat") and r < 0.55:
            return "app_message"
        if channel == "email" and r < 0.6:
            return "email"
        if urgency in ("emergency", "complex") and r > 0.8:
            return "visit"
        return "sms" if r > 0.9 else "call"

    def _closure(self, handler: Agency, cycle: int) -> str:
        if cycle > 0 and self.rng.random() < 0.7:
            return "fixed"
        weights = []
        for reason, w in CLOSURE_BASE:
            if reason in ("referred_elsewhere", "not_our_responsibility"):
                w *= 1.0 + handler.dodge
            weights.append(w)
        return CLOSURE_BASE[min(self._pick(_cumulative(weights)), len(weights) - 1)][0]

    def _satisfaction(self, confirms: bool | None) -> str:
        r = self.rng.random()
        if confirms is None:
            probs = (0.55, 0.25)
        elif confirms:
            probs = (0.78, 0.18)
        else:
            probs = (0.12, 0.30)
        if r < probs[0]:
            return "satisfied"
        if r < probs[0] + probs[1]:
            return "basically_satisfied"
        return "dissatisfied"

    def _rating(self, confirms: bool | None) -> dict[str, Any]:
        sat = self._satisfaction(confirms)
        payload: dict[str, Any] = {"satisfaction": sat}
        if self.rng.random() < 0.5:
            lo, hi = {"satisfied": (4, 5), "basically_satisfied": (3, 4), "dissatisfied": (1, 2)}[
                sat
            ]
            payload["score"] = self.rng.randint(lo, hi)
        return payload

    def lifecycle(self, case_id: str, t0: int) -> Iterator[Step]:
        """The events of one case, lazily, in strictly increasing event time from ``t0``.

        The caller stops consuming at its horizon; whatever is left never happens (the
        case stays open)."""
        rng = self.rng
        cat = CATEGORIES[min(self._pick(self._cat_cum), len(CATEGORIES) - 1)]
        d_index = min(self._pick(self._dist_cum), len(DISTRICTS) - 1)
        district = DISTRICTS[d_index]
        channel = self._choice_weighted(CHANNELS, self._chan_cum)
        tier = URGENCY[cat.urgency]
        urgency = cat.urgency
        opened: dict[str, Any] = {
            "channel": channel,
            "category": cat.name,
            "urgency": urgency,
            "district": district.name,
            "sub_district": rng.choice(district.sub_districts),
            "citizen_ref": citizen_ref(rng.randrange(self.citizen_pool)),
        }
        if rng.random() < (0.8 if channel in ("app", "wechat") else 0.25):
            opened["location"] = {
                "lat": round(district.lat + rng.gauss(0.0, 0.015), 5),
                "lon": round(district.lon + rng.gauss(0.0, 0.015), 5),
            }
        recent = self._recent.setdefault((cat.name, district.name), deque(maxlen=20))
        # the earlier case this one duplicates, should it be closed as a duplicate
        duplicate_of = recent[int(rng.random() * len(recent))] if recent else None
        recent.append(case_id)
        yield t0, "opened", opened
        del opened, recent  # keep suspended lifecycles small (live mode holds many)

        t = t0
        correct = AGENCY_BY_NAME[cat.agency]
        slow = district.service  # the district's equity gap scales agency delays

        # -- routing: until an agency that will handle it has signed for it ------------
        misroute = cat.misroute * (0.5 if urgency == "emergency" else 1.0)
        owner = correct if rng.random() >= misroute else self._wrong_agency(cat, None)
        t = self._center_time(t, tier.dispatch_minutes * MINUTE)
        yield t, "dispatched", self._dispatch_payload(owner, d_index)
        hops = 0
        while True:
            sign_ms = owner.sign_minutes * MINUTE * tier.response * slow
            if owner is correct or hops >= 4:
                t = self._agency_time(t, sign_ms, owner.sigma, owner, urgency)
                yield t, "signed_for", {"agency": owner.name}
                if hops < 4 and rng.random() < owner.return_share:
                    # the right agency sends it back for more information, gets it again
                    hops += 1
                    t = self._agency_time(t, sign_ms, owner.sigma, owner, urgency)
                    yield t, "returned", {"agency": owner.name, "reason": "insufficient_info"}
                    t = self._center_time(t, 3 * tier.dispatch_minutes * MINUTE)
                    yield t, "dispatched", self._dispatch_payload(owner, d_index)
                    continue
                break
            hops += 1
            if rng.random() < 0.45:
                # refuses without signing: back to the dispatcher, who re-dispatches
                t = self._agency_time(t, sign_ms, owner.sigma, owner, urgency)
                reason = "wrong_agency" if rng.random() < 0.65 else "not_in_scope"
                yield t, "returned", {"agency": owner.name, "reason": reason}
                nxt = correct if rng.random() < 0.9 else self._wrong_agency(cat, owner)
                t = self._center_time(t, 2 * tier.dispatch_minutes * MINUTE)
                yield t, "dispatched", self._dispatch_payload(nxt, d_index)
                owner = nxt
                continue
            # signs for it, then transfers it on
            t = self._agency_time(t, sign_ms, owner.sigma, owner, urgency)
            yield t, "signed_for", {"agency": owner.name}
            nxt = correct if rng.random() < 0.85 else self._wrong_agency(cat, owner)
            t = self._agency_time(t, sign_ms, owner.sigma, owner, urgency)
            transfer: dict[str, Any] = {"from_agency": owner.name, "to_agency": nxt.name}
            if rng.random() < 0.7:
                transfer["to_sub_unit"] = nxt.sub_units[d_index % len(nxt.sub_units)]
            if rng.random() < 0.9:
                transfer["reason"] = "wrong_agency" if rng.random() < 0.7 else "jurisdiction"
            yield t, "transferred", transfer
            previous, owner = owner, nxt
            if owner is correct and hops < 4 and rng.random() < owner.bounce_share:
                # ping-pong: the receiving agency bounces it straight back
                hops += 1
                bounce_ms = owner.sign_minutes * MINUTE * tier.response * slow
                t = self._agency_time(t, bounce_ms, owner.sigma, owner, urgency)
                back: dict[str, Any] = {
                    "from_agency": owner.name,
                    "to_agency": previous.name,
                    "reason": "wrong_agency",
                }
                yield t, "transferred", back
                owner = previous
        handler = owner

        # -- first response ------------------------------------------------------------
        if rng.random() < tier.extend_response:
            t = self._agency_time(t, 30 * MINUTE, 0.8, handler, urgency)
            yield (
                t,
                "deadline_extended",
                {
                    "target": "first_response",
                    "extension_seconds": rng.choice((1, 2, 3)) * 86_400,
                    "approved_by": rng.choice(APPROVERS),
                },
            )
        contact_ms = handler.contact_minutes * MINUTE * tier.response * slow
        t = self._agency_time(t, contact_ms, handler.sigma, handler, urgency)
        yield (
            t,
            "first_contact",
            {"agency": handler.name, "method": self._contact_method(channel, urgency)},
        )

        # -- resolution cycles (a reopen starts a new one) -----------------------------
        cycle = 0
        while True:
            pauses = 0
            while pauses < 3 and rng.random() < handler.pause_share * (0.35 if pauses else 1):
                pauses += 1
                t = self._agency_time(t, 4 * HOUR * tier.response, 1.0, handler, urgency)
                reason = self._choice_weighted(PAUSE_REASONS, self._pause_cum)
                yield t, "paused", {"reason": reason}
                wait_h = {
                    "awaiting_citizen": 20,
                    "awaiting_third_party": 48,
                    "scheduled_work": 72,
                }.get(reason, 24)
                t += self._lognormal_ms(wait_h * HOUR, 0.9)
                yield t, "resumed", {}
            if rng.random() < tier.extend_resolution:
                t = self._agency_time(t, 6 * HOUR, 1.0, handler, urgency)
                yield (
                    t,
                    "deadline_extended",
                    {
                        "target": "resolution",
                        "extension_seconds": rng.choice((3, 5, 7, 15)) * 86_400,
                        "approved_by": rng.choice(APPROVERS),
                    },
                )
            resolve_ms = handler.resolve_hours * HOUR * tier.resolve * slow
            if cycle:
                resolve_ms *= 0.6
            t = self._agency_time(t, resolve_ms, handler.sigma, handler, urgency)
            closure = self._closure(handler, cycle)
            resolved: dict[str, Any] = {"agency": handler.name, "closure_reason": closure}
            if closure == "duplicate":
                if duplicate_of is not None:
                    resolved["duplicate_of"] = duplicate_of
                else:
                    resolved["closure_reason"] = closure = "no_problem_found"
            yield t, "resolved", resolved

            if rng.random() < 0.03:
                return  # resolved, never closed
            t = self._center_time(t, 2 * HOUR)
            yield t, "closed", {}

            confirms: bool | None = None
            reached = False
            if rng.random() < 0.8:
                for attempt in range(2):
                    t = self._center_time(t, (18 if attempt == 0 else 24) * HOUR)
                    reached = rng.random() < 0.8
                    if reached:
                        p = (
                            handler.fix_quality
                            if closure == "fixed"
                            else (CONFIRMS_BY_CLOSURE.get(closure, 0.5))
                        )
                        confirms = rng.random() < p
                        yield t, "callback", {"reached": True, "citizen_confirms_solved": confirms}
                        break
                    yield t, "callback", {"reached": False}
                    if rng.random() < 0.5:
                        break
            rating: dict[str, Any] | None = None
            if reached and rng.random() < 0.7:
                t += self._lognormal_ms(3 * MINUTE, 0.6)  # rated at the end of the call
                rating = self._rating(confirms)
                yield t, "rated", rating
            elif not reached and rng.random() < 0.12:
                t += self._lognormal_ms(12 * HOUR, 1.0)  # rated later in the app
                rating = self._rating(None)
                yield t, "rated", rating

            if cycle >= 2:
                return
            if reached and confirms is False and rng.random() < 0.6:
                t += self._lognormal_ms(2 * HOUR, 1.0)
                reopen = "not_solved" if rng.random() < 0.7 else "citizen_disputes"
                yield t, "reopened", {"reason": reopen}
            elif (
                rating is not None
                and rating["satisfaction"] == "dissatisfied"
                and rng.random() < 0.15
            ):
                t += self._lognormal_ms(6 * HOUR, 1.0)
                yield t, "reopened", {"reason": "citizen_disputes"}
            else:
                return
            cycle += 1
