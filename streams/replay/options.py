"""What a replay is asked to do: the options the command, the worker's replay service and
the benchmark set, read by the plan pass and the bucket count as well as the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path


@dataclass(slots=True)
class ReplayOptions:
    generation: str
    policies_path: str | None = None
    #: "stop": the first invalid event stops the replay naming its position;
    #: "dead-letter": invalid events go to the replay database's dead_letters, counted
    invalid: str = "stop"
    since: datetime | None = None
    until: datetime | None = None
    #: case-hash buckets, at least; more when the source holds more than
    #: ``buckets * bucket_events`` events (a resumed replay keeps its first count)
    buckets: int = 16
    #: target events per bucket: a fold process holds one bucket in memory
    bucket_events: int = 200_000
    workers: int = 1
    #: the partitions the live worker's case topic has (late_events are per partition)
    partitions: int = 4
    late_grace: timedelta = timedelta(days=1)
    switch: bool = True
    #: switch even if the boards would lose cases the generation does not hold (a file
    #: or topic replay holds its own cases only; the live tables may hold others)
    replace: bool = False
    #: also add the valid events to the live raw archive (``events``) at the switch, so
    #: a later replay from the archive holds them: for sources the live ingest step has
    #: not archived (files, imports)
    archive: bool = False
    #: where the bucket spill files go (``<work_dir>/buckets``); default: a temporary
    #: directory. Removed when the replay ends, rebuilt by a resume.
    work_dir: Path | None = None

    def signature(self) -> str:
        """The options that decide the generation's rows besides the source and the
        policies (which are checked on their own): a resume must be given the same."""
        since = self.since.isoformat() if self.since is not None else ""
        until = self.until.isoformat() if self.until is not None else ""
        return f"since={since}|until={until}|invalid={self.invalid}|archive={self.archive}"


def described(signature: str) -> str:
    """A ``ReplayOptions.signature`` as the command's options."""
    fields = dict(part.split("=", 1) for part in signature.split("|") if "=" in part)
    words = [f"--{name} {fields[name]}" for name in ("since", "until") if fields.get(name)]
    words.append(f"--invalid {fields.get('invalid', '?')}")
    words.append("--archive" if fields.get("archive") == "True" else "--no-archive")
    return " ".join(words)
