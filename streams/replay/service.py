"""A replay as a request: run here (the command's process) or inside the worker.

An embedded store (chDB) is opened by one process. While a worker owns it, ``civicpulse
replay run`` sends a :class:`ReplayRequest` to the worker's web views
(``streams.app.web``), which run it in a background thread of the worker process with
:class:`ReplayRuns`; the command polls the progress and renders it. The fold processes
never open the store, so they are started from the worker as from the command; only the
writes and the switch go through the worker's store clients. Documentation:
docs/replay.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from streams.replay import (
    AfterSwitchError,
    Progress,
    ReplayError,
    ReplayInterrupted,
    ReplayOptions,
    ReplayResult,
    SourceData,
    read_archive,
    read_file,
    read_topic,
    run_replay,
)
from streams.settings import Settings
from streams.store import Store, StoreError
from streams.store.generations import check_id, new_id

INVALID_MODES = ("stop", "dead-letter")


class ReplayRequestError(ValueError):
    """A replay request that cannot run as given."""


@dataclass(slots=True)
class ReplayRequest:
    """What ``civicpulse replay run`` asks for; JSON-able (the worker's ``POST`` body).

    Paths are absolute when sent to a worker (its working directory is not the
    command's)."""

    generation: str = ""
    from_file: str | None = None
    from_topic: str | None = None
    from_archive: bool = False
    from_offset: int | None = None
    to_offset: int | None = None
    #: topic: from the first message stamped (Kafka timestamp) at or after ``from_time``
    #: up to the first stamped at or after ``to_time``; ISO 8601
    from_time: str | None = None
    to_time: str | None = None
    since: str | None = None  # ISO 8601, UTC when no offset is given
    until: str | None = None
    policies: str | None = None  # default: the settings' (the worker's) policy file
    invalid: str = ""  # default: stop for files, dead-letter for topics and the archive
    workers: int = 1
    buckets: int = 16
    bucket_events: int = 200_000
    switch: bool = True
    #: switch even if the boards would lose cases the generation does not hold
    replace: bool = False
    #: add the events to the live archive at the switch (default: for files only)
    archive: bool | None = None

    def __post_init__(self) -> None:
        if not self.generation:
            self.generation = new_id()
        if sum([self.from_file is not None, self.from_topic is not None, self.from_archive]) != 1:
            raise ReplayRequestError(
                "give exactly one of --from-file, --from-topic, --from-archive"
            )
        self.invalid = self.invalid or ("stop" if self.from_file is not None else "dead-letter")
        if self.archive is None:
            self.archive = self.from_file is not None
        if self.archive and self.from_archive:
            raise ReplayRequestError("--archive: a replay from the archive reads it already")
        if self.invalid not in INVALID_MODES:
            raise ReplayRequestError("--invalid is stop or dead-letter")
        try:
            check_id(self.generation)
        except StoreError as err:
            raise ReplayRequestError(str(err)) from err
        from_time, to_time = (
            instant(self.from_time, "--from-time"),
            instant(self.to_time, "--to-time"),
        )
        for first, last, names in (
            (instant(self.since, "--since"), instant(self.until, "--until"), "--since/--until"),
            (from_time, to_time, "--from-time/--to-time"),
        ):
            if first is not None and last is not None and first >= last:
                raise ReplayRequestError(
                    f"{names}: an empty range (the start is not before the end)"
                )
        first_offset, last_offset = self.from_offset, self.to_offset
        if first_offset is not None and last_offset is not None and first_offset > last_offset:
            raise ReplayRequestError("--from-offset/--to-offset: the first is after the last")
        for at, name in ((from_time, "--from-time"), (to_time, "--to-time")):
            if at is not None and at.year < 1970:
                raise ReplayRequestError(f"{name}: Kafka timestamps start in 1970")
        if self.from_topic is None:
            given = [
                option
                for option, value in (
                    ("--from-offset", self.from_offset),
                    ("--to-offset", self.to_offset),
                    ("--from-time", self.from_time),
                    ("--to-time", self.to_time),
                )
                if value is not None
            ]
            if given:
                raise ReplayRequestError(f"{', '.join(given)}: for --from-topic only")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, body: Any) -> ReplayRequest:
        if not isinstance(body, dict):
            raise ReplayRequestError("expected a JSON object of replay parameters")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(body) - set(known))
        if unknown:
            raise ReplayRequestError(f"unknown replay parameters: {', '.join(unknown)}")
        try:
            return cls(**body)
        except TypeError as err:
            raise ReplayRequestError(str(err)) from err

    def absolute(self) -> ReplayRequest:
        """The same request with its file paths made absolute (for another process)."""
        changes = self.to_json()
        for name in ("from_file", "policies"):
            if changes[name]:
                changes[name] = str(Path(changes[name]).resolve())
        return ReplayRequest(**changes)


def instant(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError as err:
        raise ReplayRequestError(f"{name}: not an ISO 8601 date-time: {text!r}") from err
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).astimezone(UTC)


def options_for(request: ReplayRequest, settings: Settings) -> ReplayOptions:
    return ReplayOptions(
        generation=request.generation,
        policies_path=request.policies or settings.sla_policies or None,
        invalid=request.invalid,
        since=instant(request.since, "--since"),
        until=instant(request.until, "--until"),
        buckets=max(1, request.buckets),
        bucket_events=max(1, request.bucket_events),
        workers=max(1, request.workers),
        partitions=settings.topic_partitions,
        late_grace=timedelta(seconds=settings.late_grace_seconds),
        switch=request.switch,
        replace=request.replace,
        archive=bool(request.archive),
        work_dir=settings.data_dir.resolve() / "replay" / request.generation,
    )


def source_reader(
    request: ReplayRequest,
    options: ReplayOptions,
    bootstrap: Callable[[], str],
    progress: Progress | None,
) -> Callable[[Store], SourceData]:
    def read(store: Store) -> SourceData:
        if request.from_file is not None:
            return read_file(Path(request.from_file), progress)
        if request.from_topic is not None:
            return read_topic(
                bootstrap(),
                request.from_topic,
                f"civicpulse-replay-{request.generation}",
                request.from_offset,
                request.to_offset,
                progress,
                from_time=instant(request.from_time, "--from-time"),
                to_time=instant(request.to_time, "--to-time"),
            )
        return read_archive(store, options.since, options.until, progress)

    return read


def result_summary(result: ReplayResult) -> dict[str, Any]:
    """A finished replay's numbers, as the command prints them."""
    return {
        "events": result.events,
        "cases": result.cases,
        "dead_letters": result.dead_letters,
        "late_events": result.late_events,
        "alerts": result.alerts,
        "buckets": result.buckets,
        "resumed_buckets": result.resumed_buckets,
        "seconds": result.seconds,
        "events_per_second": result.events_per_second,
        "switched": result.switched,
        "archived": result.archived,
        "caught_up": result.caught_up,
    }


# --- inside the worker -------------------------------------------------------------------

RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
#: switched, but a step after the switch did not finish (the error says what to run)
SWITCHED_INCOMPLETE = "switched-incomplete"
INTERRUPTED = "interrupted"


class ReplayRun:
    """One replay in a background thread of this process, with its progress."""

    def __init__(self, request: ReplayRequest, settings: Settings, bootstrap: str) -> None:
        self.request = request
        self.settings = settings
        self.bootstrap = bootstrap
        self.status = RUNNING
        self.error = ""
        self.result: dict[str, Any] | None = None
        self.started = time.time()
        #: phase -> [done, total, first seen (monotonic), last update (monotonic)]
        self.phases: dict[str, list[Any]] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(
            target=self._run, name=f"replay-{request.generation}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def cancel(self) -> None:
        self._stop.set()

    def _progress(self, phase: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        with self._lock:
            entry = self.phases.get(phase)
            if entry is None:
                self.phases[phase] = [done, total, now, now, done]
            else:
                entry[0], entry[1], entry[3] = done, total, now

    def _run(self) -> None:
        try:
            options = options_for(self.request, self.settings)
            read = source_reader(self.request, options, lambda: self.bootstrap, self._progress)
            result = run_replay(
                self.settings.clickhouse_dsn, read, options, self._progress, self._stop.is_set
            )
        except ReplayInterrupted:
            self.status, self.error = INTERRUPTED, "interrupted"
        except AfterSwitchError as err:
            self.status, self.error = SWITCHED_INCOMPLETE, str(err)
        except (ReplayError, StoreError, ReplayRequestError) as err:
            self.status, self.error = FAILED, str(err)
        except Exception as err:  # reported to the command; the worker goes on
            self.status, self.error = FAILED, f"{type(err).__name__}: {err}"
        else:
            self.result = result_summary(result)
            self.status = SUCCEEDED

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            progress = []
            for phase, (done, total, first, last, initial) in self.phases.items():
                seconds = last - first
                rate = (done - initial) / seconds if seconds > 0 else 0.0
                progress.append(
                    {"phase": phase, "done": done, "total": total, "events_per_second": rate}
                )
        return {
            "generation": self.request.generation,
            "status": self.status,
            "error": self.error,
            "progress": progress,
            "result": self.result,
            "request": self.request.to_json(),
        }


class ReplayBusy(Exception):
    """Another replay is running in this worker."""


class ReplayRuns:
    """The replays a worker runs (one at a time), by generation id."""

    def __init__(self, settings: Settings, bootstrap: str) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.runs: dict[str, ReplayRun] = {}
        self._lock = threading.Lock()

    def start(self, request: ReplayRequest) -> ReplayRun:
        with self._lock:
            for run in self.runs.values():
                if run.status == RUNNING:
                    raise ReplayBusy(
                        f"replay {run.request.generation} is running in this worker; "
                        "wait for it or cancel it first"
                    )
            run = ReplayRun(request, self.settings, self.bootstrap)
            self.runs[request.generation] = run
            run.start()
            return run

    def get(self, generation: str) -> ReplayRun | None:
        return self.runs.get(generation)
