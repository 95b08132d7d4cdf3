"""SLA alerts of a case (pure core), the worker's watch list, and the alert contract."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from streams.app.alert_index import AlertIndex, Watch, join_record, split_record
from streams.contract.alerts import InvalidAlert, decode_alert, encode_alert
from streams.core.case_state import CaseState
from streams.core.sla.alerts import BREACHED, WARNING, due_alerts, pending_instants
from streams.core.sla.calendar import to_us
from streams.core.state_codec import decode_state, encode_state
from streams.store.rows import SlaAlertRow
from tests.test_sla_clock import CN, Case, T, cn, h

FAR = T + timedelta(days=400)


def ids(case: Case, now: datetime) -> list[str]:
    return [a.alert_id for a in due_alerts(case.sla(), now)]


def test_an_untouched_case_raises_every_warning_then_each_breach_in_order() -> None:
    case = Case(case_id="C-9").opened(T)
    assert ids(case, h(0.99)) == []
    assert ids(case, h(1)) == ["C-9/first_response/0/warn50"]
    alerts = due_alerts(case.sla(), FAR, {"agency": "water", "district": "d1"})
    assert [(a.alert_id, a.type, a.fired_at) for a in alerts] == [
        ("C-9/first_response/0/warn50", WARNING, h(1)),
        ("C-9/first_response/0/warn75", WARNING, h(1.5)),
        ("C-9/first_response/0/warn90", WARNING, h(1.8)),
        ("C-9/first_response/0/breach", BREACHED, h(2)),
        ("C-9/resolution/0/warn50", WARNING, h(12)),
        ("C-9/resolution/0/warn75", WARNING, h(18)),
        ("C-9/resolution/0/warn90", WARNING, h(21.6)),
        ("C-9/resolution/0/breach", BREACHED, h(24)),
    ]
    assert alerts[3].due_at == h(2) and alerts[3].threshold == 1.0
    assert alerts[0].dimension("agency") == "water" and alerts[0].dimension("channel") == ""
    assert alerts[0].policy_id == "wall"
    # Ids a worker already emitted are left out.
    known = {"C-9/first_response/0/warn50", "C-9/resolution/0/breach"}
    rest = due_alerts(case.sla(), FAR, known=known)
    assert [a.alert_id for a in rest] == [a.alert_id for a in alerts if a.alert_id not in known]


def test_answering_in_time_cancels_the_rest_of_that_clock() -> None:
    case = Case().opened(T).contact(h(0.9))
    assert [a for a in ids(case, FAR) if "first_response" in a] == []
    case = Case().opened(T).contact(h(1.2))  # after the 50 % warning only
    assert [a for a in ids(case, FAR) if "first_response" in a] == ["C-1/first_response/0/warn50"]
    resolved = Case().opened(T).contact(h(0.5)).resolve(h(13))
    assert ids(resolved, FAR) == ["C-1/resolution/0/warn50"]


def test_answered_late_still_raised_its_breach_dated_at_the_deadline() -> None:
    case = Case().opened(T).contact(h(3))
    fr = [a for a in due_alerts(case.sla(), FAR) if a.target == "first_response"]
    assert [(a.type, a.fired_at) for a in fr][-1] == (BREACHED, h(2))
    # The instant the clock stops exactly at a warning raises nothing for it.
    exact = Case().opened(T).contact(h(1))
    assert [a for a in ids(exact, FAR) if "first_response" in a] == []


def test_a_pause_stops_alerts_and_a_reopen_starts_a_new_cycle() -> None:
    paused = Case(category="allpause").opened(T).contact(h(0.5)).pause(h(1))
    assert [a for a in ids(paused, FAR) if "resolution" in a] == []
    assert pending_instants(paused.sla()) == []
    case = Case().opened(T).contact(h(0.5)).resolve(h(30)).reopen(h(31))
    got = ids(case, FAR)
    assert "C-1/resolution/0/breach" in got
    assert "C-1/resolution/1/breach" in got
    assert len(got) == len(set(got))


def test_alerts_only_accumulate_as_now_moves_on() -> None:
    rng = random.Random(7)
    for n in range(60):
        case = Case(case_id=f"C-{n}").opened(T)
        if rng.random() < 0.7:
            case.contact(h(rng.uniform(0, 4)))
        if rng.random() < 0.5:
            case.resolve(h(rng.uniform(4, 40)))
        seen: set[str] = set()
        for hours in range(0, 60, 3):
            current = set(ids(case, h(hours)))
            assert seen <= current, "an alert raised earlier disappeared"
            seen = current
        # The instants the scheduler is given are those of the still-running clocks: each
        # of them makes something due, and nothing due then is missing at the end.
        final = set(ids(case, FAR))
        for at in pending_instants(case.sla()):
            due_then = set(ids(case, at))
            assert due_then and due_then <= final
            assert any(a.fired_at == at for a in due_alerts(case.sla(), at))


def test_watch_list_schedules_counts_and_survives_encoding() -> None:
    index = AlertIndex()
    case = Case(case_id="A").opened(T)
    watch = Watch.of(case.sla(), 3, ("water", "d1", "wall", "normal"))
    assert watch is not None
    assert Watch.decode(watch.encode()) == watch
    state = encode_state(CaseState("A", case.events))
    assert split_record(join_record(state, watch)) == (state, watch.encode())
    assert split_record(join_record(state, None)) == (state, None)
    assert decode_state("A", split_record(join_record(state, watch))[0]).events == case.events
    index.put("A", watch, not_before_us=to_us(T))
    closed = Case(case_id="B").opened(T).contact(h(0.1)).resolve(h(0.2))
    index.put("B", Watch.of(closed.sla(), 1, ("x", "y", "z", "w")), None)
    assert len(index) == 1
    assert index.due(to_us(h(0.5))) == []
    assert index.due(to_us(h(1))) == ["A"]
    assert index.due(to_us(h(1))) == []  # popped until rescheduled
    index.reschedule("A", to_us(h(1)))
    assert index.due(to_us(h(1.6))) == ["A"]
    opened, at_risk, breached = index.counts(to_us(h(1.6)))
    labels = ("water", "d1", "wall", "normal")
    assert (opened[labels], at_risk[labels], breached[labels]) == (1, 1, 0)
    _, at_risk, breached = index.counts(to_us(h(2)))
    assert (at_risk[labels], breached[labels]) == (0, 1)
    # A case whose only running clock is paused is watched (it counts as open) but has no
    # instant to schedule, whether it comes from a batch or from the table at a rebalance.
    paused = Case(category="allpause", case_id="P").opened(T).contact(h(0.1)).pause(h(0.2))
    paused_watch = Watch.of(paused.sla(), 3, labels)
    assert paused_watch is not None and paused_watch.instants == ()
    index.put("P", paused_watch, None)
    index.put("P", Watch.decode(paused_watch.encode()), to_us(h(2)))
    assert "P" not in index.due(to_us(FAR)) and index.counts(to_us(h(2)))[0][labels] == 2
    index.drop_partitions([3])
    assert len(index) == 0 and index.due(to_us(FAR)) == []


def test_alert_messages_follow_the_schema_both_ways() -> None:
    case = Case(case_id="C-7").opened(T)
    alert = due_alerts(case.sla(), FAR, {"agency": "water"})[-1]
    emitted = datetime(2024, 3, 5, 12, 0, 0, 123456, tzinfo=UTC)
    document = decode_alert(encode_alert(alert, emitted, "w1"))
    assert document["alert_id"] == "C-7/resolution/0/breach"
    assert document["emitted_at"] == "2024-03-05T12:00:00.123456Z"
    row = SlaAlertRow.from_document(document)
    assert row.fired_at == h(24) and row.emitted_at == emitted and row.agency == "water"
    with pytest.raises(InvalidAlert, match="not JSON"):
        decode_alert(b"{nope")
    with pytest.raises(InvalidAlert, match="not a v1 alert"):
        decode_alert(b'{"schema_version": 1, "alert_id": "x"}')


def test_business_time_alerts_wait_for_the_working_days_after_a_holiday() -> None:
    # Opened on the evening of 30 September 2024 in Beijing: National Day week follows,
    # and the first working day after it is Tuesday 8 October.
    case = Case(category="days").opened(cn(2024, 9, 30, 19))
    alerts = due_alerts(case.sla(), cn(2024, 12, 31))
    fired = {a.alert_id: a.fired_at.astimezone(CN) for a in alerts}
    assert all(at.date() >= date(2024, 10, 8) for at in fired.values()), fired
    breach = fired["C-1/first_response/0/breach"]
    assert breach == cn(2024, 10, 8, 18)  # one working day: all of 8 October
    assert due_alerts(case.sla(), cn(2024, 10, 7, 23)) == []  # nothing during the holiday
