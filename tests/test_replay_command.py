"""The replay commands as a user meets them: `replay export` leaves no file behind when it
fails, a terminal's Ctrl-C (SIGINT to the whole process group) stops a replay with the
command's own message only, and an interrupted `import ... --replay` names a command that
resumes it. The Ctrl-C tests run the real CLI in a subprocess in its own process group.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.kafka_runtime import free_port
from streams.replay import ReplayInputError, SourceData, export_parquet, read_file
from streams.replay.sources import Position
from streams.sources.simulator import SimulationConfig, simulate
from streams.store import Store, close_clients
from streams.store.generations import get_generation
from tests.importing import shared_file

CLI = [sys.executable, "-m", "streams.cli"]


def write_events(path: Path, cases: int, seed: int = 5) -> Path:
    history = simulate(SimulationConfig(seed=seed, cases=cases))
    path.write_bytes(b"".join(m.value + b"\n" for m in history.emitted))
    return path


# --------------------------------------------------------------------- replay export


def test_export_checks_its_input_first_and_leaves_no_file_when_it_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # short relative paths: messages are not wrapped
    runner = CliRunner()
    env = {"CIVICPULSE_CONFIG": str(tmp_path / "none.toml")}

    def export(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, ["replay", "export", *args], env=env)
        assert isinstance(result.exception, SystemExit | None), result.exception
        return result.exit_code, result.output

    code, output = export("nosuch.jsonl", "--to-parquet", "x.parquet")
    assert code == 1 and "error: nosuch.jsonl: no such file" in output
    assert list(tmp_path.iterdir()) == []  # no empty x.parquet a replay would read

    events = write_events(tmp_path / "events.jsonl", cases=40)
    lines = events.read_bytes().splitlines()
    code, output = export("events.jsonl", "--to-parquet", "nodir/z.parquet")
    assert code == 1, output
    assert "error: nodir/z.parquet: cannot write it: no such directory" in output
    assert "Traceback" not in output
    (tmp_path / "adir.parquet").mkdir()
    code, output = export("events.jsonl", "--to-parquet", "adir.parquet")
    assert code == 1 and "error: adir.parquet: cannot write it: Is a directory" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir.parquet", "events.jsonl"]

    # an existing target is replaced only by a complete file
    (tmp_path / "events.parquet").write_bytes(b"an earlier export")
    code, output = export("events.jsonl", "--to-parquet", "events.parquet")
    assert code == 0 and f"{len(lines):,} events written to events.parquet" in output
    table = pq.read_table(tmp_path / "events.parquet")
    assert [v.encode() for v in table.column("event").to_pylist()] == lines

    # failing or interrupted half-way (a row group already written): no target, no .part
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\n".join([*lines[:30], b"\xff\xfe", *lines[30:]]) + b"\n")
    with pytest.raises(ReplayInputError, match=r"bad\.jsonl:31: not UTF-8"):
        export_parquet(bad, tmp_path / "bad.parquet", rows_per_group=10)
    code, output = export("bad.jsonl", "--to-parquet", "bad.parquet")
    assert code == 1 and "error: bad.jsonl:31: not UTF-8" in output

    def interrupted_after(count: int) -> Callable[..., SourceData]:
        def read(path: Path, progress: object = None) -> SourceData:
            data = read_file(path)
            inner = iter(data.events)

            def stopping() -> Iterator[tuple[bytes, Position]]:
                for number, item in enumerate(inner):
                    if number == count:
                        raise KeyboardInterrupt
                    yield item

            data.events = stopping()
            return data

        return read

    monkeypatch.setattr("streams.replay.sources.read_file", interrupted_after(25))
    with pytest.raises(KeyboardInterrupt):
        export_parquet(events, tmp_path / "cut.parquet", rows_per_group=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "adir.parquet",
        "bad.jsonl",
        "events.jsonl",
        "events.parquet",
    ]


# --------------------------------------------------------------------- Ctrl-C


def cli_env(tmp_path: Path) -> dict[str, str]:
    """An embedded store and a data directory in ``tmp_path``, no worker answering, and a
    wide console (no wrapped messages)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICPULSE_")}
    env.update(
        CIVICPULSE_DATA_DIR=str(tmp_path / "data"),
        CIVICPULSE_CONFIG=str(tmp_path / "none.toml"),
        CIVICPULSE_WEB_PORT=str(free_port()),
        CLICKHOUSE_URL=f"chdb://{tmp_path / 'clickhouse'}",
        COLUMNS="2000",
    )
    return env


def group_processes(group: int) -> list[int]:
    """The live (not zombie) processes of a process group, from /proc (Linux, as the
    whole project: its Makefile installs with apt-get)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, _ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
        if int(pgrp) == group and state != "Z":
            found.append(int(entry.name))
    return found


def ctrl_c_while_folding(process: subprocess.Popen[bytes], data: Path) -> None:
    """A terminal's Ctrl-C (SIGINT to the process group) once the fold processes run and
    a bucket is folded and written (its spill file, under ``<data dir>/replay/<id>``, is
    removed) while others are left."""
    most = 0
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert process.poll() is None, "the replay ended before it could be interrupted"
        left = len(list(data.glob("replay/*/buckets/*.bin")))
        most = max(most, left)
        if 0 < left < most:
            assert len(group_processes(process.pid)) >= 3  # the command, 2 fold processes
            os.killpg(process.pid, signal.SIGINT)
            return
        time.sleep(0.01)
    raise AssertionError("the replay did not start folding")


def interrupted(args: list[str], env: dict[str, str], data: Path) -> str:
    """Run the command, Ctrl-C it while it folds; its output, once every process of its
    group is gone."""
    process = subprocess.Popen(
        [*CLI, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        ctrl_c_while_folding(process, data)
        output = process.communicate(timeout=120)[0].decode()
        assert process.returncode == 1, output  # `error: ...`, as every failure
        deadline = time.monotonic() + 30
        while group_processes(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert group_processes(process.pid) == [], "a fold process was left running"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert "SpawnPoolWorker" not in output, output
    return output


def generation_state(tmp_path: Path, generation: str) -> tuple[str, str]:
    close_clients()
    try:
        found = get_generation(Store.open(f"chdb://{tmp_path / 'clickhouse'}").client, generation)
        assert found is not None
        return found.status, found.detail
    finally:
        close_clients()


def resumed_buckets(output: str) -> int:
    found = re.search(r"buckets resumed\s*\W\s*(\d+)", output)
    assert found is not None, output
    return int(found.group(1))


def test_ctrl_c_stops_a_replay_with_its_message_only_and_it_resumes(tmp_path: Path) -> None:
    events = write_events(tmp_path / "history.jsonl", cases=20_000)  # ~140k events
    env = cli_env(tmp_path)
    args = ["replay", "run", "--from-file", str(events), "--workers", "2", "--id", "ctrlc"]
    output = interrupted(args, env, tmp_path / "data")
    assert "error: replay ctrlc interrupted, live tables untouched; resume with --id ctrlc" in (
        output
    )
    assert generation_state(tmp_path, "ctrlc") == ("failed", "interrupted")
    assert not (tmp_path / "data" / "replay" / "ctrlc" / "buckets").exists()  # spill files

    again = subprocess.run([*CLI, *args], env=env, capture_output=True, timeout=600)
    assert again.returncode == 0, again.stdout.decode() + again.stderr.decode()
    assert resumed_buckets(again.stdout.decode()) >= 1
    assert generation_state(tmp_path, "ctrlc")[0] == "active"


def test_an_interrupted_import_replay_names_the_command_that_resumes_it(tmp_path: Path) -> None:
    source = shared_file("data/la311-2020-01.csv")
    env = cli_env(tmp_path)
    output = interrupted(["import", "la311", str(source), "--replay"], env, tmp_path / "data")
    kept = (tmp_path / "data").resolve() / "imports" / "la311-2020-01.jsonl"
    hint = re.search(r"interrupted, live tables untouched; resume with: (.*)$", output, re.M)
    assert hint is not None, output
    command = shlex.split(hint.group(1))
    assert command[:4] == ["civicpulse", "replay", "run", "--from-file"], command
    assert command[4] == str(kept) and command[5] == "--id", command
    generation = command[6]
    assert generation_state(tmp_path, generation) == ("failed", "interrupted")

    again = subprocess.run([*CLI, *command[1:]], env=env, capture_output=True, timeout=600)
    assert again.returncode == 0, again.stdout.decode() + again.stderr.decode()
    assert resumed_buckets(again.stdout.decode()) >= 1
    status, _ = generation_state(tmp_path, generation)
    assert status == "active"


def test_a_parquet_event_column_that_is_not_text_is_refused_naming_its_type(
    tmp_path: Path,
) -> None:
    import pyarrow as pa

    numbers = tmp_path / "numbers.parquet"
    pq.write_table(pa.table({"event": pa.array([1, 2, 3], pa.int64())}), numbers)
    with pytest.raises(ReplayInputError, match=r"numbers\.parquet: .*string column 'event'.*int64"):
        read_file(numbers)
    binary = tmp_path / "binary.parquet"
    pq.write_table(pa.table({"event": pa.array([b'{"a": 1}'], pa.binary())}), binary)
    assert [raw for raw, _ in read_file(binary).events] == [b'{"a": 1}']


@pytest.mark.parametrize(
    ("final", "expected"),
    [
        ({"status": "succeeded", "result": {"events": 5}}, {"events": 5}),
        ({"status": "interrupted"}, "interrupted, live tables untouched"),
        ({"status": "switched-incomplete", "error": "generation g is live, but"}, "is live"),
    ],
)
def test_ctrl_c_of_a_replay_in_the_worker_reports_how_it_ended(
    monkeypatch: pytest.MonkeyPatch, final: dict[str, object], expected: object
) -> None:
    """Ctrl-C asks the worker to cancel; a replay that had already switched (or whose
    cancel came too late) is reported as it ended, not as interrupted and untouched.
    The worker's HTTP answers are stood in for; the real worker path is in
    tests/test_replay_worker.py."""
    import click

    import streams.access
    import streams.cli_replay as cli_replay

    answers = iter([{"status": "running", "progress": []}, {**final, "progress": []}])
    calls: list[tuple[str, str]] = []

    def ask(_settings: object, method: str, path: str) -> object:
        calls.append((method, path))
        return {} if method == "POST" else next(answers)

    def pause() -> None:
        raise KeyboardInterrupt

    failures: list[str] = []

    def fail(message: str) -> click.exceptions.Exit:
        failures.append(message)
        return click.exceptions.Exit(1)

    monkeypatch.setattr(streams.access, "ask_worker", ask)
    monkeypatch.setattr(cli_replay, "_pause", pause)
    monkeypatch.setattr(cli_replay, "fail", fail)
    if isinstance(expected, dict):
        assert cli_replay._run_in_worker(object(), "g") == expected
    else:
        with pytest.raises(click.exceptions.Exit) as stopped:
            cli_replay._run_in_worker(object(), "g")
        assert stopped.value.exit_code == 1
        assert len(failures) == 1 and str(expected) in failures[0]
    assert ("POST", "/civicpulse/replay/g/cancel") in calls
