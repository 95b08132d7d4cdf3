"""LA 311 importer: the real January 2020 export (../shared/data), header and date
variants of other export years, time zones, rejects, the CLI, the pure core, and Kafka."""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.contract import decode_event
from streams.core.case_state import CaseState
from streams.core.ordering import order_key
from streams.sources.importers.common import (
    DateError,
    ImportedEvent,
    ImportFormatError,
    ImportReport,
    normalise_header,
    parse_datetime,
)
from streams.sources.importers.la311 import convert_la311, read_la311
from tests.importing import read_events, shared_file
from tests.test_contract import FULL, JSONSCHEMA

REAL = "data/la311-2020-01.csv"
runner = CliRunner()


def run_import(path: Path) -> tuple[ImportReport, list[ImportedEvent]]:
    report = ImportReport(str(path))
    return report, list(read_la311(path, report))


def import_text(text: str) -> tuple[ImportReport, list[ImportedEvent]]:
    report = ImportReport("<test>")
    reader = csv.reader(io.StringIO(text))
    return report, list(convert_la311(reader, report, line_of=lambda: reader.line_num))


# Plain functions rather than fixtures, so that a missing real file FAILS the tests that
# need it (pytest reports a fixture's failure as an error, not a failure).
def real_file() -> Path:
    return shared_file(REAL)


@functools.cache
def real() -> tuple[ImportReport, list[ImportedEvent]]:
    return run_import(real_file())


# --------------------------------------------------------------------------- real file


def test_every_row_of_the_real_file_is_imported_or_rejected() -> None:
    report, events = real()
    assert report.records_read == 10_000
    assert report.records_read == report.imported + report.rejected
    assert report.imported == 9_982
    assert report.rejected_by_reason() == {"missing_closed_date": 18}
    assert all(r.record >= 1 and r.line == r.record + 1 for r in report.rejects)
    assert dict(report.events_by_type) == {
        "opened": 9_982,
        "dispatched": 9_982,
        "resolved": 9_951,
        "closed": 9_951,
    }
    assert dict(report.closure_reasons) == {"fixed": 9_704, "other": 245, "referred_elsewhere": 2}
    assert len(events) == report.events == 39_866
    assert report.notes["district_unknown"] == 11
    assert report.notes["service_date_not_carried"] == 9_427


def test_every_imported_event_validates_against_the_schema() -> None:
    # Every event: the whole schema (fastjsonschema, not the decoder's per-type split) and
    # the decoder. jsonschema (an independent implementation, slow) checks every shape
    # seen (type + optional fields present) and every 10th event.
    _, events = real()
    shapes: set[tuple[str, ...]] = set()
    for n, imported in enumerate(events):
        data = orjson.loads(imported.value)
        FULL(data)
        assert decode_event(imported.value) == imported.event
        assert imported.event.source == "la311-import"
        shape = (data["type"], *sorted(data["payload"]))
        if shape not in shapes or n % 10 == 0:
            shapes.add(shape)
            errors = list(JSONSCHEMA.iter_errors(data))
            assert not errors, (imported.event.event_id, errors[0].message)
    assert len(shapes) >= 6


def test_ids_are_deterministic_and_unique() -> None:
    _, first = real()
    _, second = run_import(real_file())
    assert [e.value for e in first] == [e.value for e in second]
    ids = [e.event.event_id for e in first]
    assert len(set(ids)) == len(ids)
    sample = first[0].event
    assert sample.case_id == "la311:1-1523590121"
    assert sample.event_id == "la311:1-1523590121:opened"


def test_a_row_checked_by_hand() -> None:
    # 1-1523590121,Illegal Dumping Pickup,Closed,SR Created,1/1/20 0:05,1/2/20 8:43,
    # 1/2/20 0:00,1/2/20 8:43,Call,BOS,...,WV,34.19402846,-118.4994716,...,6,...,
    # LAKE BALBOA NC: PST (UTC-8) in January.
    _, events = real()
    mine = [orjson.loads(e.value) for e in events if e.event.case_id == "la311:1-1523590121"]
    assert [(e["type"], e["occurred_at"]) for e in mine] == [
        ("opened", "2020-01-01T08:05:00.000Z"),
        ("dispatched", "2020-01-01T08:05:00.000Z"),
        ("resolved", "2020-01-02T16:43:00.000Z"),
        ("closed", "2020-01-02T16:43:00.000Z"),
    ]
    opened = mine[0]["payload"]
    assert opened["channel"] == "hotline"
    assert opened["category"] == "illegal_dumping_pickup"
    assert opened["district"] == "Council District 6"
    assert opened["sub_district"] == "LAKE BALBOA NC"
    assert opened["location"] == {"lat": 34.19402846, "lon": -118.4994716}
    assert mine[1]["payload"] == {"agency": "BOS", "sub_unit": "WV"}
    assert mine[2]["payload"] == {"agency": "BOS", "closure_reason": "fixed"}


def test_facts_folded_by_the_pure_core_make_sense() -> None:
    report, events = real()
    by_case: dict[str, list[Any]] = defaultdict(list)
    for imported in events:
        by_case[imported.event.case_id].append(imported.event)
    assert len(by_case) == report.imported
    statuses: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for case_id, case_events in by_case.items():
        state = CaseState(case_id, case_events)
        assert [e.type for e in state.events][:2] == ["opened", "dispatched"]
        assert state.events == sorted(case_events, key=order_key)
        facts = state.facts()
        statuses[facts.status] += 1
        assert facts.opened_at is not None and facts.agency
        assert facts.first_dispatched_at == facts.opened_at
        if facts.status == "closed":
            reasons[facts.closure_reason] += 1
            assert facts.resolved_at is not None and facts.resolved_at >= facts.opened_at
            assert facts.closed_at == facts.resolved_at
        else:
            assert facts.resolved_at is None and facts.closure_reason == ""
    assert statuses == {"closed": 9_951, "open": 31}
    assert reasons == report.closure_reasons


# --------------------------------------------------------------------------- variants

# Canonical synthetic rows: column -> value (dates as naive LA local datetimes).
SYNTHETIC: list[dict[str, Any]] = [
    {
        "SRNumber": "1-9000000001",
        "RequestType": "Bulky Items",
        "Status": "Closed",
        "ActionTaken": "SR Created",
        "CreatedDate": datetime(2020, 1, 2, 8, 15),
        "UpdatedDate": datetime(2020, 1, 6, 13, 2, 5),
        "ServiceDate": datetime(2020, 1, 6),
        "ClosedDate": datetime(2020, 1, 6, 13, 2, 5),
        "RequestSource": "Call",
        "Owner": "BOS",
        "AssignTo": "EV",
        "Latitude": "34.1",
        "Longitude": "-118.4",
        "CD": "2",
        "NCName": "NORTH HOLLYWOOD NE",
    },
    {
        "SRNumber": "1-9000000002",
        "RequestType": "Metal/Household Appliances",
        "Status": "Cancelled",
        "ActionTaken": "SR Created",
        "CreatedDate": datetime(2020, 7, 4, 23, 59, 59),
        "UpdatedDate": datetime(2020, 7, 5, 9, 0),
        "ServiceDate": None,
        "ClosedDate": datetime(2020, 7, 5, 9, 0),
        "RequestSource": "Mobile App",
        "Owner": "BOS",
        "AssignTo": "",
        "Latitude": "",
        "Longitude": "",
        "CD": "",
        "NCName": "",
    },
    {
        "SRNumber": "1-9000000003",
        "RequestType": "Graffiti Removal",
        "Status": "Referred Out",
        "ActionTaken": "SR Created",
        "CreatedDate": datetime(2020, 11, 1, 1, 30),  # clocks go back: first (PDT) 1:30
        "UpdatedDate": datetime(2020, 11, 2, 10, 0),
        "ServiceDate": datetime(2020, 11, 2),
        "ClosedDate": datetime(2020, 11, 2, 10, 0),
        "RequestSource": "Self Service",
        "Owner": "OCB",
        "AssignTo": "GAPBH",
        "Latitude": "34.05",
        "Longitude": "-118.2",
        "CD": "14",
        "NCName": "BOYLE HEIGHTS NC",
    },
    {
        "SRNumber": "1-9000000004",
        "RequestType": "Dead Animal Removal",
        "Status": "Open",
        "ActionTaken": "SR Created",
        "CreatedDate": datetime(2020, 3, 8, 3, 0),  # first minute of PDT
        "UpdatedDate": datetime(2020, 3, 8, 3, 0),
        "ServiceDate": None,
        "ClosedDate": None,
        "RequestSource": "Driver Self Report",
        "Owner": "BOS",
        "AssignTo": "NC",
        "Latitude": "34.2",
        "Longitude": "-118.5",
        "CD": "12",
        "NCName": "NORTHRIDGE EAST",
    },
]
COLUMNS = list(SYNTHETIC[0])


def _slash_short(d: datetime) -> str:  # this file's style: 1/2/20 8:15 (seconds dropped)
    return f"{d.month}/{d.day}/{d.year % 100:02d} {d.hour}:{d.minute:02d}"


def _slash_long(d: datetime) -> str:  # 01/02/2020 08:15:00 AM
    return d.strftime("%m/%d/%Y %I:%M:%S %p")


def _iso(d: datetime) -> str:  # 2020-01-02T08:15:00.000 (Socrata floating timestamp)
    return d.strftime("%Y-%m-%dT%H:%M:%S.000")


def _iso_space(d: datetime) -> str:
    return d.strftime("%Y-%m-%d %H:%M:%S")


def render(
    header: Callable[[str], str], order: Sequence[str], fmt: Callable[[datetime], str]
) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([header(c) for c in order] + ["Zip Code"])
    for row in SYNTHETIC:
        cells = []
        for column in order:
            value = row[column]
            cells.append(fmt(value) if isinstance(value, datetime) else value or "")
        writer.writerow([*cells, "90000"])
    return out.getvalue()


def _spaced(name: str) -> str:  # SRNumber -> SR Number, CreatedDate -> Created Date
    special = {"SRNumber": "SR Number", "NCName": "NC Name", "CD": "CD"}
    if name in special:
        return special[name]
    return "".join(f" {c}" if c.isupper() and i else c for i, c in enumerate(name))


VARIANTS = {
    "camel-long-dates": (lambda c: c, COLUMNS, _slash_long),
    "lower-short-dates": (str.lower, COLUMNS, _slash_short),
    "spaced-reversed-iso": (_spaced, COLUMNS[::-1], _iso),
    "snake-shuffled-iso-space": (
        lambda c: _spaced(c).replace(" ", "_").lower(),
        sorted(COLUMNS, key=lambda c: (len(c), c)),
        _iso_space,
    ),
    "upper-spaced": (lambda c: _spaced(c).upper(), COLUMNS[5:] + COLUMNS[:5], _slash_long),
}


def test_header_and_date_variants_give_identical_events() -> None:
    results = {}
    for name, (header, order, fmt) in VARIANTS.items():
        if fmt is _slash_short:
            continue  # drops seconds: compared separately below
        report, events = import_text(render(header, order, fmt))
        assert report.imported == len(SYNTHETIC) and not report.rejects, (name, report.rejects)
        results[name] = [e.value for e in events]
    first = next(iter(results.values()))
    assert len(first) == 14
    for name, values in results.items():
        assert values == first, name


def test_short_dates_differ_only_by_the_dropped_seconds() -> None:
    header, order, fmt = VARIANTS["lower-short-dates"]
    _, short = import_text(render(header, order, fmt))
    _, long_ = import_text(render(*VARIANTS["camel-long-dates"]))
    for a, b in zip(short, long_, strict=True):
        assert a.event.event_id == b.event.event_id
        assert a.event.payload == b.event.payload
        assert a.event.occurred_at == b.event.occurred_at.replace(second=0)


def test_real_rows_rewritten_in_another_vintage_give_identical_events() -> None:
    with real_file().open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[:501]
    header, data = rows[0], rows[1:]
    dated = {i for i, h in enumerate(header) if h.endswith("date")}
    names = {
        "srnumber": "SR Number",
        "createddate": "Created Date",
        "closeddate": "Closed_Date",
        "requesttype": "REQUEST TYPE",
        "ncname": "NC Name",
        "requestsource": "Request Source",
        "assignto": "AssignTo",
    }
    order = list(range(len(header)))[::-1]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([names.get(header[i], header[i].title()) for i in order])
    for row in data:
        cells = []
        for i in order:
            value = row[i]
            if i in dated and value:
                value = _iso(datetime.strptime(value, "%m/%d/%y %H:%M"))
            cells.append(value)
        writer.writerow(cells)
    _, rewritten = import_text(out.getvalue())
    _, original = import_text("\n".join(",".join(f'"{c}"' for c in row) for row in rows) + "\n")
    assert len(original) > 1_900
    assert [e.value for e in rewritten] == [e.value for e in original]


def test_la_local_times_become_utc_across_daylight_saving() -> None:
    _, events = import_text(render(*VARIANTS["camel-long-dates"]))
    opened = {e.event.case_id: e.event.occurred_at for e in events if e.event.type == "opened"}
    assert opened == {
        "la311:1-9000000001": datetime(2020, 1, 2, 16, 15, tzinfo=UTC),  # PST, UTC-8
        "la311:1-9000000002": datetime(2020, 7, 5, 6, 59, 59, tzinfo=UTC),  # PDT, UTC-7
        "la311:1-9000000003": datetime(2020, 11, 1, 8, 30, tzinfo=UTC),  # repeated hour: PDT
        "la311:1-9000000004": datetime(2020, 3, 8, 10, 0, tzinfo=UTC),  # PDT from 03:00
    }
    closed = {e.event.case_id: e.event.occurred_at for e in events if e.event.type == "closed"}
    assert closed["la311:1-9000000003"] == datetime(2020, 11, 2, 18, 0, tzinfo=UTC)  # PST again


def test_synthetic_mapping_of_statuses_channels_and_districts() -> None:
    _, events = import_text(render(*VARIANTS["camel-long-dates"]))
    got = {(e.event.case_id, e.event.type): orjson.loads(e.value)["payload"] for e in events}
    assert got["la311:1-9000000001", "opened"]["channel"] == "hotline"
    assert got["la311:1-9000000002", "opened"]["channel"] == "app"
    assert got["la311:1-9000000003", "opened"]["channel"] == "web"
    assert got["la311:1-9000000004", "opened"]["channel"] == "other"
    assert got["la311:1-9000000002", "opened"]["category"] == "metal_household_appliances"
    assert got["la311:1-9000000002", "opened"]["district"] == "unknown"
    assert got["la311:1-9000000002", "opened"]["sub_district"] == "unknown"
    assert "location" not in got["la311:1-9000000002", "opened"]
    assert got["la311:1-9000000002", "dispatched"] == {"agency": "BOS"}
    assert got["la311:1-9000000001", "resolved"]["closure_reason"] == "fixed"
    assert got["la311:1-9000000002", "resolved"]["closure_reason"] == "other"
    assert got["la311:1-9000000003", "resolved"]["closure_reason"] == "referred_elsewhere"
    assert ("la311:1-9000000004", "resolved") not in got


# --------------------------------------------------------------------------- rejects

HEADER = "SRNumber,CreatedDate,ClosedDate,Status,ActionTaken,RequestType,Owner,CD,NCName"
BAD_ROWS = [
    "1-1,1/2/20 8:15,1/3/20 9:00,Closed,SR Created,Bulky Items,BOS,1,A NC",  # ok
    ",1/2/20 8:15,1/3/20 9:00,Closed,SR Created,Bulky Items,BOS,1,A NC",
    "1-3,tomorrow,1/3/20 9:00,Closed,SR Created,Bulky Items,BOS,1,A NC",
    "1-4,1/2/20 8:15,1/1/20 9:00,Closed,SR Created,Bulky Items,BOS,1,A NC",
    "1-1,1/2/20 8:15,1/3/20 9:00,Closed,SR Created,Bulky Items,BOS,1,A NC",
    "1-6,1/2/20 8:15,1/3/20 9:00,Archived,SR Created,Bulky Items,BOS,1,A NC",
    "1-7,1/2/20 8:15,,Closed,SR Created,Bulky Items,BOS,1,A NC",
    "1-8,1/2/20 8:15,1/3/20 9:00,Closed",
    "1-9,3/8/20 2:30,,Open,SR Created,Bulky Items,BOS,1,A NC",
    "1-10,,,Open,SR Created,Bulky Items,BOS,1,A NC",
    "",
    '"1-11","1/2/20 8:15","13/45/20 9:00","Cancelled",x,"Bulky Items",BOS,1,"A, NC"',
    "1 12,1/2/20 8:15,,Open,SR Created,Bulky Items,BOS,1,A NC",
    "1-13,1/2/20 8:15,,Open,SR Created,,BOS,1,A NC",
    "1-14,1/2/20 8:15,1/3/20 9:00,Closed,SR Transferred,Bulky Items,BOS,1,A NC",  # ok
]


def test_rejects_carry_record_numbers_lines_and_reasons() -> None:
    report, events = import_text("\n".join([HEADER, *BAD_ROWS]) + "\n")
    assert report.records_read == 14  # the blank line is not a record
    assert report.notes["blank_rows_skipped"] == 1
    assert report.imported == 2 and report.balanced()
    assert [(r.record, r.line, r.reason, r.source_id) for r in report.rejects] == [
        (2, 3, "missing_sr_number", ""),
        (3, 4, "bad_created_date", "1-3"),
        (4, 5, "closed_before_created", "1-4"),
        (5, 6, "duplicate_sr_number", "1-1"),
        (6, 7, "unknown_status", "1-6"),
        (7, 8, "missing_closed_date", "1-7"),
        (8, 9, "wrong_field_count", "1-8"),
        (9, 10, "nonexistent_local_time", "1-9"),
        (10, 11, "missing_created_date", "1-10"),
        (11, 13, "bad_closed_date", "1-11"),
        (12, 14, "bad_sr_number", "1 12"),
        (13, 15, "missing_request_type", "1-13"),
    ]
    assert all(r.detail for r in report.rejects)
    assert {e.event.case_id for e in events} == {"la311:1-1", "la311:1-14"}
    resolved = [e.event for e in events if e.event.type == "resolved"]
    assert [r.payload.closure_reason for r in resolved] == ["fixed", "referred_elsewhere"]  # type: ignore[union-attr]


def test_a_csv_that_is_not_an_la311_export_stops_naming_file_and_columns(tmp_path: Path) -> None:
    other = tmp_path / "budget.csv"
    other.write_text("Fund,Department,Amount,Status\nGeneral,Parks,100,Approved\n")
    with pytest.raises(ImportFormatError) as err:
        run_import(other)
    message = str(err.value)
    assert str(other) in message
    assert "SR Number" in message and "Created Date" in message and "Request Type" in message
    assert "Status," not in message.split("(found")[0]

    out = tmp_path / "events.jsonl"
    result = runner.invoke(app, ["import", "la311", str(other), "--out", str(out)])
    assert result.exit_code == 1
    flat = result.output.replace("\n", "")
    assert "budget.csv" in flat and "SR Number" in flat
    assert not out.exists()


# --------------------------------------------------------------------------- CLI, Kafka


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIVICPULSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CIVICPULSE_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.delenv("CIVICPULSE_KAFKA_BOOTSTRAP", raising=False)


def test_cli_writes_json_lines_rejects_and_a_summary(cli_env: None, tmp_path: Path) -> None:
    _, events = real()
    out, rejects = tmp_path / "la311.jsonl", tmp_path / "rejects.jsonl"
    result = runner.invoke(
        app, ["import", "la311", str(real_file()), "--out", str(out), "--rejects", str(rejects)]
    )
    assert result.exit_code == 0, result.output
    # in event time, as the city's system sent them; ties in record order
    in_event_time = sorted(events, key=lambda e: e.event.occurred_at)
    assert out.read_bytes().splitlines() == [e.value for e in in_event_time]
    assert not (tmp_path / "data").exists()  # --out needs no data directory
    assert [e.value for e in events] != [e.value for e in in_event_time]
    lines = [orjson.loads(line) for line in rejects.read_bytes().splitlines()]
    assert len(lines) == 18 and {r["reason"] for r in lines} == {"missing_closed_date"}
    assert {"record", "line", "reason", "detail", "source_id"} <= set(lines[0])
    for needle in ("records read", "10,000", "9,982", "missing_closed_date", "39,866"):
        assert needle in result.output


def test_the_real_file_sorted_in_spilled_runs_is_sorted_as_in_memory(tmp_path: Path) -> None:
    from streams.sources.importers.event_time import in_event_time

    _, events = real()
    merged = [e.value for e in in_event_time(events, spill_dir=tmp_path, run_events=1_000)]
    assert merged == [e.value for e in sorted(events, key=lambda e: e.event.occurred_at)]
    assert list(tmp_path.iterdir()) == []


def test_cli_needs_exactly_one_sink(cli_env: None, tmp_path: Path) -> None:
    export = tmp_path / "la311.csv"
    export.write_text("\n".join([HEADER, BAD_ROWS[0]]) + "\n")
    result = runner.invoke(app, ["import", "la311", str(export)])
    assert result.exit_code == 1 and "--to-topic" in result.output
    result = runner.invoke(
        app, ["import", "la311", str(export), "--to-topic", "--out", str(tmp_path / "x")]
    )
    assert result.exit_code == 1
    result = runner.invoke(app, ["import", "la311", str(export), "--out", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output


@pytest.mark.integration
def test_real_file_to_the_raw_topic_of_a_real_broker(
    kafka_broker: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, expected = real()
    prefix = f"imp{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("CIVICPULSE_KAFKA_BOOTSTRAP", kafka_broker.bootstrap)
    monkeypatch.setenv("CIVICPULSE_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("CIVICPULSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CIVICPULSE_CONFIG", str(tmp_path / "none.toml"))
    result = runner.invoke(app, ["import", "la311", str(real_file()), "--to-topic"])
    assert result.exit_code == 0, result.output
    assert f"{prefix}.events.raw" in result.output.replace("\n", "")

    got = asyncio.run(read_events(kafka_broker.bootstrap, f"{prefix}.events.raw", len(expected)))
    assert len(got) == len(expected) == 39_866
    assert Counter(e.type for e in got) == Counter(e.event.type for e in expected)
    assert sorted(got, key=lambda e: e.event_id) == sorted(
        (e.event for e in expected), key=lambda e: e.event_id
    )


# --------------------------------------------------------------------------- dates, headers

LA = ZoneInfo("America/Los_Angeles")


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("1/2/20 8:15", "2020-01-02T16:15:00+00:00"),
        ("01/02/2020 08:15:00 AM", "2020-01-02T16:15:00+00:00"),
        ("01/02/2020 12:05:00 AM", "2020-01-02T08:05:00+00:00"),
        ("01/02/2020 12:05 PM", "2020-01-02T20:05:00+00:00"),
        ("01/02/2020 20:05", "2020-01-03T04:05:00+00:00"),
        ("2020-01-02T08:15:00.000", "2020-01-02T16:15:00+00:00"),
        ("2020-01-02 08:15:00", "2020-01-02T16:15:00+00:00"),
        ("2020-01-02T08:15:00.123456789", "2020-01-02T16:15:00.123456+00:00"),
        ("2020-01-02T08:15:00Z", "2020-01-02T08:15:00+00:00"),
        ("2020-01-02T08:15:00-05:00", "2020-01-02T13:15:00+00:00"),
        ("1/6/20", "2020-01-06T08:00:00+00:00"),
        ("  7/4/2020 9:00  ", "2020-07-04T16:00:00+00:00"),
    ],
)
def test_explicit_date_formats(text: str, utc: str) -> None:
    assert parse_datetime(text, LA, "created_date").isoformat() == utc


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Jan 2 2020", "bad_created_date"),
        ("13/02/2020 08:15", "bad_created_date"),
        ("2020-02-30T08:15:00", "bad_created_date"),
        ("2/1/20 8:15 tomorrow", "bad_created_date"),
        ("3/8/20 2:00", "nonexistent_local_time"),
        ("0001-01-01T00:00:00+01:00", "bad_created_date"),
        ("9999-12-31T23:59:59", "bad_created_date"),
    ],
)
def test_unreadable_dates_are_refused_not_guessed(text: str, reason: str) -> None:
    with pytest.raises(DateError) as err:
        parse_datetime(text, LA, "created_date")
    assert err.value.reason == reason


@pytest.mark.parametrize(
    "header", ["CreatedDate", "createddate", "Created Date", "created_date", "CREATED-DATE"]
)
def test_headers_match_whatever_their_case_and_spacing(header: str) -> None:
    assert normalise_header(header) == "createddate"


def test_two_columns_with_one_meaning_stop_the_import() -> None:
    with pytest.raises(ImportFormatError, match="'Lat' and 'Latitude'"):
        import_text("SR Number,Created Date,Request Type,Status,Lat,Latitude\n")
