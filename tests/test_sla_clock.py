"""The SLA clock of a case: intake vs sign-for, pauses, extensions, reopen cycles,
out-of-order events, working-day and business-hour golden cases, timers; hypothesis
properties checked against a brute-force count of the clock."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.contract import (
    CallbackPayload,
    ClosedPayload,
    ClosureReason,
    DeadlineExtendedPayload,
    DeadlineTarget,
    DispatchedPayload,
    Event,
    EventType,
    FirstContactPayload,
    OpenedPayload,
    PausedPayload,
    PauseReason,
    Payload,
    ReopenedPayload,
    ResolvedPayload,
    ResumedPayload,
    SignedForPayload,
    Urgency,
)
from streams.core.case_state import CaseState
from streams.core.sla.calendar import (
    BusinessCalendar,
    ChineseCalendarSource,
    WallClockCalendar,
    parse_span,
    to_us,
)
from streams.core.sla.clock import (
    CLOSED_BEFORE_OPENED,
    DUPLICATE_OPENED,
    FIRST_CONTACT_BEFORE_OPENED,
    LATE_EXTENSION,
    NO_OPENED,
    NO_POLICY,
    REOPENED_WHILE_OPEN,
    RESOLVED_BEFORE_OPENED,
    CaseSla,
    FirstResponse,
    ResolutionCycle,
    Timer,
    case_sla_to_dict,
    evaluate,
    next_timer,
)
from streams.core.sla.policy import PolicySet, policies_from_text

CN = timezone(timedelta(hours=8))
LA = ZoneInfo("America/Los_Angeles")
H = 3600.0

BJ = BusinessCalendar(
    "bj",
    "Asia/Shanghai",
    {d: [parse_span("09:00-12:00"), parse_span("13:30-18:00")] for d in range(5)},
    holidays=ChineseCalendarSource(),
)
LA_OFFICE = BusinessCalendar(
    "la", "America/Los_Angeles", {d: [parse_span("09:00-17:00")] for d in range(5)}
)

POLICIES = policies_from_text(
    """
version: 1
defaults: {calendar: bj}
policies:
  - id: wall
    match: {category: wall}
    first_response: {clock: wall, within: 2h}
    resolution: {clock: wall, within: 24h}
  - id: biz
    match: {category: biz}
    first_response: {clock: business, within: 4h}
    resolution: {clock: business, within: 16h}
  - id: days
    match: {category: days}
    first_response: {clock: working_days, days: 1}
    resolution: {clock: working_days, days: 5}
  - id: allpause
    match: {category: allpause}
    first_response: {clock: wall, within: 2h, pause_reasons: [awaiting_citizen]}
    resolution:
      clock: wall
      within: 24h
      pause_reasons: [awaiting_citizen, awaiting_third_party, scheduled_work, other]
  - id: la-wall
    match: {category: la-wall}
    first_response: {clock: wall, within: 24h, calendar: la}
    resolution: {clock: business, within: 4h, calendar: la}
""",
    calendars={"bj": BJ, "la": LA_OFFICE},
)
ONLY_NOISE = policies_from_text(
    "version: 1\npolicies: [{id: n, match: {category: noise}, "
    "first_response: {clock: wall, within: 1h}, resolution: {clock: wall, within: 2h}}]\n"
)

T = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)  # a Monday; wall-clock cases


class Case:
    """Builds a case's events; ids follow the order of the calls."""

    def __init__(self, category: str = "wall", urgency: Urgency = "normal", case_id: str = "C-1"):
        self.category, self.urgency, self.case_id = category, urgency, case_id
        self.events: list[Event] = []

    def add(self, kind: EventType, at: datetime, payload: Payload) -> Case:
        n = len(self.events)
        event = Event(
            f"evt-{self.case_id}-{n:04d}",
            self.case_id,
            kind,
            at.astimezone(UTC),
            "test",
            1,
            payload,
        )
        self.events.append(event)
        return self

    def opened(self, at: datetime) -> Case:
        payload = OpenedPayload(
            "hotline", self.category, self.urgency, "d", "s", "0123456789abcdef"
        )
        return self.add("opened", at, payload)

    def dispatched(self, at: datetime) -> Case:
        return self.add("dispatched", at, DispatchedPayload("agency"))

    def signed(self, at: datetime) -> Case:
        return self.add("signed_for", at, SignedForPayload("agency"))

    def contact(self, at: datetime) -> Case:
        return self.add("first_contact", at, FirstContactPayload("agency", "call"))

    def pause(self, at: datetime, reason: PauseReason = "awaiting_citizen") -> Case:
        return self.add("paused", at, PausedPayload(reason))

    def resume(self, at: datetime) -> Case:
        return self.add("resumed", at, ResumedPayload())

    def extend(self, at: datetime, seconds: int, target: DeadlineTarget = "resolution") -> Case:
        return self.add("deadline_extended", at, DeadlineExtendedPayload(target, seconds, "sup"))

    def resolve(self, at: datetime, reason: ClosureReason = "fixed") -> Case:
        return self.add("resolved", at, ResolvedPayload("agency", reason))

    def close(self, at: datetime) -> Case:
        return self.add("closed", at, ClosedPayload())

    def reopen(self, at: datetime) -> Case:
        return self.add("reopened", at, ReopenedPayload("not_solved"))

    def callback(self, at: datetime) -> Case:
        return self.add("callback", at, CallbackPayload(True, True))

    def sla(self, now: datetime | None = None, policies: PolicySet = POLICIES) -> CaseSla:
        return evaluate(self.events, policies, now)


def h(hours: float) -> datetime:
    return T + timedelta(hours=hours)


def cn(y: int, mo: int, d: int, hh: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, hh, mi, tzinfo=CN)


def crossed(marks: object) -> dict[float, datetime | None]:
    return {m.fraction: m.at for m in marks if m.crossed}  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- intake


def test_clock_starts_at_intake_not_at_sign_for() -> None:
    case = Case().opened(T).dispatched(h(1)).signed(h(5)).contact(h(6)).resolve(h(20))
    sla = case.sla()
    fr = sla.first_response
    assert fr is not None
    assert sla.policy_id == "wall" and fr.policy_id == "wall"
    assert fr.started_at == T
    assert fr.due_at == h(2)
    assert fr.responded_at == h(6) and fr.ended_by == "first_contact"
    assert fr.on_time is False
    assert fr.breached_at == h(2)
    assert fr.elapsed_seconds == 6 * H
    (cycle,) = sla.cycles
    assert cycle.started_at == T and cycle.started_by == "opened"
    assert cycle.due_at == h(24)
    assert cycle.resolved_at == h(20) and cycle.closure_reason == "fixed"
    assert cycle.on_time is True and cycle.breached_at is None
    assert cycle.elapsed_seconds == 20 * H and cycle.paused_seconds == 0
    assert crossed(cycle.thresholds) == {0.5: h(12), 0.75: h(18)}
    assert [m.crossed for m in cycle.thresholds] == [True, True, False]
    assert not sla.is_open


def test_open_case_with_and_without_now() -> None:
    case = Case().opened(T)
    sla = case.sla()
    fr = sla.first_response
    assert fr is not None and fr.on_time is None and fr.breached_at is None
    assert fr.elapsed_seconds is None
    assert [m.crossed for m in fr.thresholds] == [None, None, None]
    assert [m.at for m in fr.thresholds] == [h(1), h(1.5), h(1.8)]
    assert sla.cycles[0].due_at == h(24)
    # The instants do not depend on now; the verdicts do.
    later = case.sla(now=h(3))
    assert later.first_response is not None
    assert later.first_response.due_at == fr.due_at
    assert later.first_response.breached_at == h(2)
    assert later.first_response.on_time is None
    assert later.first_response.elapsed_seconds == 3 * H
    assert crossed(later.cycles[0].thresholds) == {}
    assert later.cycles[0].breached_at is None
    at_due = case.sla(now=h(24))
    assert at_due.cycles[0].breached_at == h(24)
    assert at_due.is_open


def test_next_timer_walks_warnings_then_breaches() -> None:
    case = Case().opened(T)
    expected = [
        Timer(h(1), "warning", 0.5, "first_response", None),
        Timer(h(1.5), "warning", 0.75, "first_response", None),
        Timer(h(1.8), "warning", 0.9, "first_response", None),
        Timer(h(2), "breach", None, "first_response", None),
        Timer(h(12), "warning", 0.5, "resolution", 0),
        Timer(h(18), "warning", 0.75, "resolution", 0),
        Timer(h(21.6), "warning", 0.9, "resolution", 0),
        Timer(h(24), "breach", None, "resolution", 0),
    ]
    assert next_timer(case.sla()) == expected[0]
    seen = []
    now = T
    while (timer := next_timer(case.sla(now=now))) is not None:
        seen.append(timer)
        now = timer.at
    assert seen == expected
    # Contact stops the first-response timers; resolution stops the rest.
    case.contact(h(0.5))
    assert next_timer(case.sla(now=h(0.5))) == expected[4]
    case.resolve(h(3))
    assert next_timer(case.sla(now=h(3))) is None
    assert next_timer(case.sla(), after=h(13)) is None


# --------------------------------------------------------------------------- pauses


def test_pause_while_awaiting_citizen_stops_the_resolution_clock() -> None:
    case = Case().opened(T).contact(h(0.5)).pause(h(1)).resume(h(5)).resolve(h(27))
    sla = case.sla()
    cycle = sla.cycles[0]
    assert cycle.due_at == h(28)
    assert cycle.on_time is True
    assert cycle.paused_seconds == 4 * H
    assert cycle.elapsed_seconds == 23 * H
    assert cycle.pauses == 1
    # Thresholds move with the pause: 12 h counted at T+16 h.
    assert [m.at for m in cycle.thresholds] == [h(16), h(22), h(25.6)]
    # The first-response clock does not pause by default.
    assert sla.first_response is not None and sla.first_response.due_at == h(2)


def test_only_the_configured_pause_reasons_stop_the_clock() -> None:
    case = Case().opened(T).pause(h(1), "awaiting_third_party").resume(h(5)).resolve(h(25))
    assert case.sla().cycles[0].due_at == h(24)
    assert case.sla().cycles[0].on_time is False
    assert case.sla().cycles[0].paused_seconds == 0
    allpause = (
        Case("allpause").opened(T).pause(h(1), "awaiting_third_party").resume(h(5)).resolve(h(25))
    )
    assert allpause.sla().cycles[0].due_at == h(28)
    # The reason in force decides: third party (runs) then citizen (stops) then resumed.
    switch = Case().opened(T).pause(h(1), "other").pause(h(2)).resume(h(4))
    assert switch.sla().cycles[0].due_at == h(26)
    back = Case().opened(T).pause(h(1)).pause(h(2), "scheduled_work").resume(h(4))
    assert back.sla().cycles[0].due_at == h(25)
    # A pause before intake counts from intake on.
    early = Case().pause(h(-3)).opened(T).resume(h(2))
    assert early.sla().cycles[0].due_at == h(26)


def test_a_pause_starting_when_the_allowance_runs_out_does_not_move_the_deadline() -> None:
    case = Case().opened(T).pause(h(24)).resume(h(30))
    cycle = case.sla(now=h(31)).cycles[0]
    assert cycle.due_at == h(24) and cycle.breached_at == h(24)
    # Same for a first-response clock that pauses: the pause starts when the 2 h are used.
    opened = cn(2024, 9, 27, 15, 0)
    biz = Case("allpause").opened(opened).pause(opened + timedelta(hours=2)).resume(h(999))
    assert biz.sla().first_response.due_at == opened + timedelta(hours=2)  # type: ignore[union-attr]


def test_open_pause_leaves_the_deadline_unknown() -> None:
    case = Case().opened(T).contact(h(0.5)).pause(h(13))
    sla = case.sla(now=h(40))
    cycle = sla.cycles[0]
    assert cycle.due_at is None
    assert cycle.paused_since == h(13)
    assert [m.at for m in cycle.thresholds] == [h(12), None, None]
    assert [m.crossed for m in cycle.thresholds] == [True, False, False]
    assert cycle.breached_at is None and cycle.on_time is None
    assert cycle.elapsed_seconds == 13 * H and cycle.paused_seconds == 27 * H
    assert next_timer(sla) is None
    case.resume(h(20))
    assert case.sla().cycles[0].due_at == h(31)
    assert case.sla().cycles[0].paused_since is None


def test_first_response_can_be_configured_to_pause() -> None:
    case = Case("allpause").opened(T).pause(h(1)).resume(h(4)).contact(h(4.5))
    fr = case.sla().first_response
    assert fr is not None
    assert fr.due_at == h(5) and fr.on_time is True and fr.paused_seconds == 3 * H


# --------------------------------------------------------------------------- extensions


def test_extensions_add_to_their_target() -> None:
    case = Case().opened(T).extend(h(10), 3 * 3600).extend(h(1), 1800, "first_response")
    sla = case.sla()
    assert sla.first_response is not None
    assert sla.first_response.due_at == h(2.5)
    assert sla.first_response.extension_seconds == 1800
    cycle = sla.cycles[0]
    assert cycle.due_at == h(27)
    assert cycle.allowed_seconds == 27 * H
    assert cycle.extension_seconds == 3 * 3600
    assert [m.at for m in cycle.thresholds] == [h(13.5), h(20.25), h(24.3)]


def test_extensions_after_the_deadline_or_after_the_stop_do_not_count() -> None:
    late = Case().opened(T).extend(h(25), 3 * 3600).resolve(h(26))
    sla = late.sla()
    cycle = sla.cycles[0]
    assert cycle.due_at == h(24) and cycle.on_time is False and cycle.breached_at == h(24)
    assert cycle.extension_seconds == 0 and cycle.late_extensions == 1
    assert LATE_EXTENSION in sla.anomalies
    after_stop = Case().opened(T).contact(h(1)).extend(h(1.5), 3600, "first_response")
    assert after_stop.sla().first_response.late_extensions == 1  # type: ignore[union-attr]
    # Chained: the second extension is on time thanks to the first.
    chained = Case().opened(T).extend(h(23), 3600).extend(h(24.5), 3600)
    assert chained.sla().cycles[0].due_at == h(26)


def test_business_time_extension_is_business_time() -> None:
    opened = cn(2024, 9, 27, 15, 0)  # Friday before National Day
    case = Case("biz").opened(opened).extend(opened + timedelta(hours=1), 3600)
    cycle = case.sla().cycles[0]
    # 16 h: Fri 3 h + Sun 29 Sep 7.5 h + Mon 5.5 h = Mon 16:00; one more business hour.
    assert cycle.due_at == cn(2024, 9, 30, 17, 0)
    assert cycle.allowed_seconds == 17 * H


# --------------------------------------------------------------------------- cycles


def test_each_reopen_starts_a_new_cycle_and_keeps_the_earlier_outcome() -> None:
    case = Case().opened(T).contact(h(1)).resolve(h(10)).close(h(11))
    before = case.sla().cycles
    case.callback(h(20)).reopen(h(30)).resolve(h(60), "no_problem_found")
    sla = case.sla()
    first, second = sla.cycles
    assert first == before[0]
    assert first.on_time is True and first.index == 0
    assert second.index == 1 and second.started_by == "reopened"
    assert second.started_at == h(30) and second.due_at == h(54)
    assert second.resolved_at == h(60) and second.closure_reason == "no_problem_found"
    assert second.on_time is False and second.breached_at == h(54)
    case.reopen(h(70))
    third = case.sla(now=h(71)).cycles[2]
    assert third.is_open and third.due_at == h(94) and third.elapsed_seconds == 1 * H


def test_reopen_of_an_open_case_is_ignored() -> None:
    sla = Case().opened(T).reopen(h(2)).resolve(h(3)).sla()
    assert len(sla.cycles) == 1
    assert REOPENED_WHILE_OPEN in sla.anomalies


def test_reopen_clears_a_pause_and_second_resolve_in_a_cycle_is_ignored() -> None:
    case = Case().opened(T).pause(h(1)).resolve(h(2)).resolve(h(3), "duplicate").reopen(h(5))
    sla = case.sla()
    assert sla.cycles[0].resolved_at == h(2) and sla.cycles[0].closure_reason == "fixed"
    assert sla.cycles[0].paused_seconds == 1 * H
    assert sla.cycles[1].due_at == h(29) and sla.cycles[1].paused_since is None


def test_closed_without_resolution_ends_the_cycle() -> None:
    sla = Case().opened(T).close(h(5)).sla()
    cycle = sla.cycles[0]
    assert cycle.ended_at == h(5) and cycle.ended_by == "closed"
    assert cycle.resolved_at is None and cycle.closure_reason is None
    assert cycle.on_time is True
    fr = sla.first_response
    assert fr is not None
    # No contact before the case ended: the response is not on time (and it stopped).
    assert fr.ended_by == "closed" and fr.responded_at is None and fr.on_time is False
    assert fr.breached_at == h(2)
    quick = Case().opened(T).resolve(h(1), "cancelled_by_citizen").sla().first_response
    assert quick is not None
    assert quick.on_time is False and quick.breached_at is None and quick.ended_by == "resolved"


# --------------------------------------------------------------------------- order, oddities


def test_events_in_any_order_and_duplicates_give_the_same_result() -> None:
    case = (
        Case()
        .opened(T)
        .dispatched(h(0.1))
        .contact(h(1))
        .pause(h(2))
        .resume(h(6))
        .extend(h(8), 7200)
        .resolve(h(20))
        .reopen(h(22))
        .pause(h(23), "other")
        .resolve(h(40))
    )
    expected = case.sla(now=h(50))
    rng = random.Random(7)
    for _ in range(20):
        shuffled = case.events + rng.sample(case.events, 4)
        rng.shuffle(shuffled)
        assert evaluate(shuffled, POLICIES, h(50)) == expected
        assert evaluate(CaseState("C-1", shuffled).events, POLICIES, h(50)) == expected


def test_no_opened_and_no_policy() -> None:
    sla = Case().dispatched(T).contact(h(1)).sla()
    assert sla.policy_id is None and sla.first_response is None and sla.cycles == ()
    assert sla.anomalies == (NO_OPENED,)
    assert next_timer(sla) is None
    sla = Case("unknown").opened(T).sla(policies=ONLY_NOISE)
    assert sla.policy_id is None and sla.anomalies == (NO_POLICY,)
    assert sla.category == "unknown" and sla.opened_at == T
    with pytest.raises(ValueError):
        evaluate([], POLICIES)


def test_events_before_opened() -> None:
    # Clock skew: the contact is stamped before intake. The response counts, in 0 s.
    sla = Case().contact(h(-0.1)).opened(T).sla()
    fr = sla.first_response
    assert fr is not None
    assert fr.responded_at == h(-0.1) and fr.on_time is True and fr.elapsed_seconds == 0
    assert FIRST_CONTACT_BEFORE_OPENED in sla.anomalies
    sla = Case().resolve(h(-0.1)).opened(T).sla()
    cycle = sla.cycles[0]
    assert cycle.resolved_at == h(-0.1) and cycle.on_time is True and cycle.elapsed_seconds == 0
    assert RESOLVED_BEFORE_OPENED in sla.anomalies
    assert CLOSED_BEFORE_OPENED in Case().close(h(-1)).opened(T).sla().anomalies
    # A reopen stamped before intake is ignored; a second opened too.
    sla = Case().reopen(h(-1)).opened(T).opened(h(1)).sla()
    assert len(sla.cycles) == 1
    assert {REOPENED_WHILE_OPEN, DUPLICATE_OPENED} <= set(sla.anomalies)
    assert sla.opened_at == T


# --------------------------------------------------------------------------- golden: calendars


def test_working_days_across_national_day() -> None:
    opened = cn(2024, 9, 27, 15, 0)  # Friday; Sun 29 Sep worked; 1-7 Oct holiday
    sla = Case("days").opened(opened).sla()
    fr = sla.first_response
    assert fr is not None
    assert fr.due_at == cn(2024, 9, 29, 18, 0)  # the 调休 Sunday
    cycle = sla.cycles[0]
    assert cycle.due_at == cn(2024, 10, 10, 18, 0)
    assert cycle.allowed_seconds == 40.5 * H  # Fri 3 h + 5 days of 7.5 h
    assert [m.at for m in cycle.thresholds] == [
        cn(2024, 10, 8, 11, 15),  # 50%, 20.25 h: Fri 3 + Sun 7.5 + Mon 7.5 + Tue 2.25
        cn(2024, 10, 9, 15, 22) + timedelta(seconds=30),  # 75%, 30.375 h
        cn(2024, 10, 10, 13, 57),  # 90%, 36.45 h
    ]
    assert not cycle.provisional


def test_working_days_with_a_pause_over_the_holiday() -> None:
    opened = cn(2024, 9, 27, 15, 0)
    case = Case("days").opened(opened).contact(cn(2024, 9, 29, 9, 30))
    case.pause(cn(2024, 9, 30, 10, 0)).resume(cn(2024, 10, 8, 10, 0)).resolve(
        cn(2024, 10, 11, 12, 0)
    )
    cycle = case.sla().cycles[0]
    # Paused business time: Mon 30 Sep 10:00-18:00 (6.5 h) + Tue 8 Oct 09:00-10:00 (1 h).
    assert cycle.paused_business_seconds == 7.5 * H
    assert cycle.due_at == cn(2024, 10, 11, 18, 0)
    assert cycle.on_time is True
    assert (
        cycle.elapsed_business_seconds
        == BJ.business_seconds_between(opened, cn(2024, 10, 11, 12, 0)) - 7.5 * H
    )


def test_business_hours_case_on_the_adjusted_working_sunday() -> None:
    opened = cn(2024, 9, 27, 15, 0)
    sla = Case("biz").opened(opened).contact(cn(2024, 9, 29, 9, 59)).sla()
    fr = sla.first_response
    assert fr is not None
    assert fr.due_at == cn(2024, 9, 29, 10, 0)  # Fri 3 h + Sun 1 h
    assert fr.on_time is True
    assert fr.elapsed_business_seconds == 3 * H + 59 * 60
    assert fr.elapsed_seconds == (cn(2024, 9, 29, 9, 59) - opened).total_seconds()
    assert sla.cycles[0].due_at == cn(2024, 9, 30, 16, 0)


def test_dst_wall_and_business_deadlines_in_los_angeles() -> None:
    friday = datetime(2024, 3, 8, 15, 0, tzinfo=LA)  # PST; clocks jump on Sun 10 Mar
    sla = Case("la-wall").opened(friday).sla()
    fr = sla.first_response
    assert fr is not None
    assert fr.due_at == datetime(2024, 3, 9, 15, 0, tzinfo=LA)  # 24 real hours, no DST yet
    assert sla.cycles[0].due_at == datetime(2024, 3, 11, 11, 0, tzinfo=LA)  # PDT
    saturday = datetime(2024, 3, 9, 12, 0, tzinfo=LA)
    sla = Case("la-wall").opened(saturday).sla()
    assert sla.first_response is not None
    assert sla.first_response.due_at == datetime(2024, 3, 10, 13, 0, tzinfo=LA)
    assert sla.cycles[0].due_at == datetime(2024, 3, 11, 13, 0, tzinfo=LA)


def test_provisional_beyond_the_holiday_package() -> None:
    source = ChineseCalendarSource()
    assert source.coverage is not None
    last = source.coverage[1]
    sla = Case("days").opened(datetime(last, 12, 28, 10, 0, tzinfo=CN)).sla()
    assert sla.cycles[0].provisional
    assert sla.first_response is not None


# --------------------------------------------------------------------------- properties

KINDS = [
    "contact",
    "pause",
    "pause_other",
    "resume",
    "extend",
    "extend_fr",
    "resolve",
    "close",
    "reopen",
]


@st.composite
def histories(draw: st.DrawFn) -> Case:
    category = draw(st.sampled_from(["wall", "biz", "days", "allpause"]))
    minutes = draw(st.integers(0, 30 * 24 * 60))
    start = datetime(2024, 9, 20, tzinfo=UTC) + timedelta(minutes=minutes)
    case = Case(category).opened(start)
    steps = draw(
        st.lists(st.tuples(st.sampled_from(KINDS), st.integers(-120, 5 * 24 * 60)), max_size=12)
    )
    for kind, minutes in steps:
        at = start + timedelta(minutes=minutes)
        if kind == "contact":
            case.contact(at)
        elif kind == "pause":
            case.pause(at)
        elif kind == "pause_other":
            case.pause(at, "awaiting_third_party")
        elif kind == "resume":
            case.resume(at)
        elif kind == "extend":
            case.extend(at, draw(st.integers(1, 3 * 86400)))
        elif kind == "extend_fr":
            case.extend(at, draw(st.integers(1, 86400)), "first_response")
        elif kind == "resolve":
            case.resolve(at)
        elif kind == "close":
            case.close(at)
        else:
            case.reopen(at)
    return case


def brute_counted(
    sla_start: datetime, until: datetime, stops: list[tuple[datetime, datetime]], business: bool
) -> float:
    """Counted seconds from start to ``until`` minus stops, by summing pieces."""
    total = 0.0
    cursor = sla_start
    for a, b in [*stops, (until, until)]:
        a, b = max(a, sla_start), min(b, until)
        if a > cursor:
            piece_end = min(a, until)
            if piece_end > cursor:
                total += (
                    BJ.business_seconds_between(cursor, piece_end)
                    if business
                    else (piece_end - cursor).total_seconds()
                )
        cursor = max(cursor, b)
        if cursor >= until:
            break
    return total


@settings(max_examples=150, deadline=None)
@given(histories(), st.integers(0, 40 * 24 * 60), st.randoms(use_true_random=False))
def test_clock_properties(case: Case, now_minutes: int, rng: random.Random) -> None:
    now = datetime(2024, 9, 20, tzinfo=UTC) + timedelta(minutes=now_minutes)
    sla = case.sla(now)
    shuffled = list(case.events)
    rng.shuffle(shuffled)
    assert evaluate(shuffled, POLICIES, now) == sla
    assert sla.first_response is not None
    clocks: list[FirstResponse | ResolutionCycle] = [sla.first_response, *sla.cycles]
    for index, cycle in enumerate(sla.cycles):
        assert cycle.index == index
        if index:
            previous = sla.cycles[index - 1]
            assert previous.ended_at is not None and previous.ended_at <= cycle.started_at
    for clock in clocks:
        ats = [m.at for m in clock.thresholds]
        known = [a for a in ats if a is not None]
        assert known == sorted(known)
        assert ats == known + [None] * (len(ats) - len(known))  # unknown only at the tail
        if clock.due_at is not None:
            assert all(a <= clock.due_at for a in known)
            assert clock.due_at >= clock.started_at
        if clock.ended_at is not None:
            assert clock.on_time is not None
            assert clock.due_at is not None
            if clock.on_time:
                assert clock.breached_at is None
            else:
                assert clock.breached_at == clock.due_at or clock.ended_by in ("resolved", "closed")
            assert clock.elapsed_seconds is not None and clock.paused_seconds is not None
            span = max(0.0, (clock.ended_at - clock.started_at).total_seconds())
            assert clock.elapsed_seconds + clock.paused_seconds == pytest.approx(span, abs=1e-6)
        else:
            assert clock.on_time is None
            assert (clock.breached_at is not None) == (
                clock.due_at is not None and now >= clock.due_at
            )
    timer = next_timer(sla)
    if timer is not None:
        assert timer.at > now
        assert sla.is_open


@settings(max_examples=100, deadline=None)
@given(histories())
def test_due_is_where_the_counted_time_reaches_the_allowance(case: Case) -> None:
    """Brute force: rebuild the stop intervals of each resolution cycle from the events
    and check that the counted time reaches the allowance exactly at due_at."""
    sla = case.sla()
    policy = POLICIES.get(sla.policy_id or "")
    reasons = policy.resolution.pause_reasons
    business = policy.resolution.counts_business
    ordered = sorted(case.events, key=lambda e: (e.occurred_at, _rank(e.type), e.event_id))
    restarts = {c.started_at for c in sla.cycles if c.index}
    # The pause reason in force over time (reopenings that start a cycle clear it).
    stops: list[tuple[datetime, datetime]] = []
    since: datetime | None = None
    for event in ordered:
        if event.type == "paused":
            stopped = getattr(event.payload, "reason", None) in reasons
        elif event.type == "resumed" or (
            event.type == "reopened" and event.occurred_at in restarts
        ):
            stopped = False
        else:
            continue
        if stopped and since is None:
            since = event.occurred_at
        elif not stopped and since is not None:
            stops.append((since, event.occurred_at))
            since = None
    if since is not None:
        stops.append((since, datetime(2100, 1, 1, tzinfo=UTC)))
    for cycle in sla.cycles:
        if cycle.due_at is None:
            continue
        end = cycle.ended_at
        clipped = stops if end is None else [(a, min(b, end)) for a, b in stops if a < end]
        counted = brute_counted(cycle.started_at, cycle.due_at, clipped, business)
        assert counted == pytest.approx(cycle.allowed_seconds, abs=1e-6)
        one_before = cycle.due_at - timedelta(microseconds=1)
        if one_before > cycle.started_at:
            before = brute_counted(cycle.started_at, one_before, clipped, business)
            assert before < cycle.allowed_seconds


def _rank(kind: str) -> int:
    from streams.contract import LIFECYCLE_RANK

    return LIFECYCLE_RANK[kind]  # type: ignore[index]


def test_to_us_agrees_with_event_times() -> None:
    event = Case().opened(T).events[0]
    assert to_us(event.occurred_at) == to_us(T)
    assert WallClockCalendar().add_business_time(T, 1.5) == T + timedelta(seconds=1.5)


def test_sla_engine_imports_no_adapter() -> None:
    code = (
        "import sys, streams.core.sla, streams.core.sla.catalogue;"
        "streams.core.sla.load_policies();"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('faust', 'mode', 'aiokafka', 'clickhouse_connect', 'chdb')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_worked_example_of_docs_sla_md() -> None:
    case = Case().opened(T).pause(h(1)).resume(h(5)).extend(h(10), 3 * 3600).resolve(h(29))
    cycle = case.sla().cycles[0]
    assert cycle.allowed_seconds == 27 * H
    assert cycle.due_at == h(31)
    assert [m.at for m in cycle.thresholds] == [h(17.5), h(24.25), h(28.3)]
    assert [m.crossed for m in cycle.thresholds] == [True, True, True]
    assert cycle.on_time is True
    assert (cycle.elapsed_seconds, cycle.paused_seconds) == (25 * H, 4 * H)


def test_case_sla_to_dict_is_json_ready() -> None:
    case = Case("days").opened(cn(2024, 9, 27, 15, 0)).contact(cn(2024, 9, 29, 9, 0))
    data = case_sla_to_dict(case.sla(now=cn(2024, 9, 30, 9, 0)))
    assert json.loads(json.dumps(data)) == data
    assert data["policy_id"] == "days"
    assert data["first_response"]["due_at"] == "2024-09-29T10:00:00.000Z"
    assert data["first_response"]["target"] == {
        "clock": "working_days",
        "within_seconds": None,
        "working_days": 1,
        "calendar": "bj",
    }
    cycle = data["cycles"][0]
    assert cycle["due_at"] == "2024-10-10T10:00:00.000Z" and cycle["on_time"] is None
    assert [m["fraction"] for m in cycle["thresholds"]] == [0.5, 0.75, 0.9]
