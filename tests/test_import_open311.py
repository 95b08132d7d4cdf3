"""Open311 GeoReport v2 importer, on a hand-written fixture with bad records
(tests/data/open311-requests.json)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.contract import decode_event
from streams.core.case_state import CaseState
from streams.sources.importers.common import ImportedEvent, ImportFormatError, ImportReport
from streams.sources.importers.open311 import convert_open311, read_open311
from tests.test_contract import FULL, JSONSCHEMA

FIXTURE = Path(__file__).parent / "data" / "open311-requests.json"
runner = CliRunner()


def run(document: Any = None, **options: Any) -> tuple[ImportReport, list[ImportedEvent]]:
    report = ImportReport("open311")
    if document is None:
        return report, list(read_open311(FIXTURE, report, **options))
    return report, list(convert_open311(document, report, **options))


def test_every_record_is_imported_or_rejected_with_its_number_and_reason() -> None:
    report, events = run()
    assert report.records_read == 12 and report.balanced()
    assert report.imported == 4
    assert [(r.record, r.reason, r.source_id) for r in report.rejects] == [
        (3, "closed_before_created", "638351"),
        (4, "missing_request_id", ""),
        (5, "bad_requested_datetime", "638360"),
        (6, "datetime_without_offset", "638361"),
        (7, "duplicate_request_id", "638344"),
        (8, "unknown_status", "638370"),
        (9, "not_an_object", ""),
        (10, "missing_closed_date", "638372"),
    ]
    assert all(r.detail and r.line == 0 for r in report.rejects)
    assert dict(report.events_by_type) == {"opened": 4, "dispatched": 4, "resolved": 2, "closed": 2}
    assert len(events) == 12
    assert report.notes["agency_unknown"] == 1
    assert report.notes["location_missing"] == 1  # 0,0 is "no location"
    assert report.notes["expected_datetime_not_carried"] == 2


def test_every_event_validates_and_ids_are_deterministic() -> None:
    _, first = run()
    _, second = run()
    assert [e.value for e in first] == [e.value for e in second]
    for imported in first:
        data = orjson.loads(imported.value)
        FULL(data)
        assert not list(JSONSCHEMA.iter_errors(data))
        assert decode_event(imported.value) == imported.event
        assert data["event_id"] == f"{data['case_id']}:{data['type']}"
        assert data["source"] == "open311-import"


def test_times_keep_their_offsets_across_daylight_saving() -> None:
    _, events = run()
    got = {(e.event.case_id, e.event.type): e.event for e in events}
    # requested 09:42:11-05:00 (EST), updated 14:05:37-04:00 (EDT, after March 8)
    assert got["open311:638344", "opened"].occurred_at == datetime(
        2020, 3, 6, 14, 42, 11, tzinfo=UTC
    )
    assert got["open311:638344", "closed"].occurred_at == datetime(
        2020, 3, 10, 18, 5, 37, tzinfo=UTC
    )
    # an integer id and a Z time with a fraction
    assert got["open311:638380", "resolved"].occurred_at == datetime(
        2020, 3, 9, 15, 10, 0, 250_000, tzinfo=UTC
    )


def test_mapping_of_fields() -> None:
    _, events = run()
    got = {(e.event.case_id, e.event.type): orjson.loads(e.value)["payload"] for e in events}
    assert got["open311:638344", "opened"] == {
        "channel": "other",
        "category": "pothole_repair",
        "urgency": "normal",
        "district": "unknown",
        "sub_district": "unknown",
        "citizen_ref": got["open311:638344", "opened"]["citizen_ref"],
        "location": {"lat": 39.1702, "lon": -86.5339},
    }
    assert got["open311:638344", "dispatched"] == {"agency": "Street Department"}
    assert got["open311:638344", "resolved"] == {
        "agency": "Street Department",
        "closure_reason": "other",
    }
    assert got["open311:638350", "dispatched"] == {"agency": "unknown"}
    assert got["open311:638350", "opened"]["location"] == {"lat": 39.1628, "lon": -86.542}
    assert got["open311:638390", "opened"]["category"] == "noise"  # from service_code
    assert ("open311:638350", "resolved") not in got


def test_no_free_text_leaves_the_importer() -> None:
    _, events = run()
    wire = b"\n".join(e.value for e in events)
    for text in (b"pothole in the right lane", b"Walnut", b"example.org", b"patched by", b"5 bus"):
        assert text.lower() not in wire.lower()


def test_wrapped_and_bare_responses_give_the_same_events() -> None:
    document = orjson.loads(FIXTURE.read_bytes())
    _, bare = run(document)
    for key in ("requests", "service_requests"):
        _, wrapped = run({key: document})
        assert [e.value for e in wrapped] == [e.value for e in bare]


def test_a_timezone_reads_local_datetimes_instead_of_rejecting_them() -> None:
    report, events = run(timezone="America/Indiana/Indianapolis")
    assert report.imported == 5
    assert "datetime_without_offset" not in report.rejected_by_reason()
    opened = next(e.event for e in events if e.event.case_id == "open311:638361")
    assert opened.occurred_at == datetime(2020, 3, 8, 0, 20, tzinfo=UTC)  # 19:20 EST


def test_facts_folded_by_the_pure_core() -> None:
    _, events = run()
    by_case: dict[str, list[Any]] = defaultdict(list)
    for imported in events:
        by_case[imported.event.case_id].append(imported.event)
    facts = {case_id: CaseState(case_id, evs).facts() for case_id, evs in by_case.items()}
    assert {c: f.status for c, f in facts.items()} == {
        "open311:638344": "closed",
        "open311:638350": "open",
        "open311:638380": "closed",
        "open311:638390": "open",
    }
    for f in facts.values():
        assert f.opened_at is not None
        if f.resolved_at is not None:
            assert f.resolved_at >= f.opened_at


def test_not_an_open311_document(tmp_path: Path) -> None:
    for content in (b'{"error": "rate limited"}', b"srnumber,createddate\n1,2\n", b"42"):
        path = tmp_path / "x.json"
        path.write_bytes(content)
        with pytest.raises(ImportFormatError, match=str(path)):
            list(read_open311(path, ImportReport("x")))


def test_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIVICPULSE_CONFIG", str(tmp_path / "none.toml"))
    out, rejects = tmp_path / "o.jsonl", tmp_path / "r.jsonl"
    args = ["import", "open311", str(FIXTURE), "--out", str(out), "--rejects", str(rejects)]
    result = runner.invoke(app, [*args, "--case-prefix", "bloomington"])
    assert result.exit_code == 0, result.output
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(lines) == 12 and lines[0]["case_id"] == "bloomington:638344"
    assert len(rejects.read_bytes().splitlines()) == 8
    assert "records read" in result.output and "not_an_object" in result.output

    result = runner.invoke(app, [*args, "--case-prefix", "no spaces"])
    assert result.exit_code == 1 and "prefix" in result.output

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = runner.invoke(app, ["import", "open311", str(bad), "--out", str(out)])
    assert result.exit_code == 1 and "not JSON" in result.output
