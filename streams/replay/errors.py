"""Why a replay stops: one base class, so callers (the command, the worker's replay
service) catch every refusal with one ``except`` and show its message as it is.
"""

from __future__ import annotations


class ReplayError(Exception):
    """A replay cannot run as asked."""


class ReplayInputError(ReplayError):
    """The input is unreadable or holds an invalid event; the message names the file (or
    topic) and the position."""


class ReplayInterrupted(ReplayError):
    """The replay was asked to stop (Ctrl-C, or a cancel through the worker)."""


class AfterSwitchError(ReplayError):
    """The generation is live (switched), but a step after the switch did not finish:
    the generation is not marked failed, and the message says what to run."""


class ArchivePending(AfterSwitchError):
    """The generation is live, but adding its events to the raw archive did not finish:
    running the same replay again (same id) adds them, and nothing else."""


class CatchUpIncomplete(AfterSwitchError):
    """The generation is live, but the events archived in the moment before the switch
    were not caught up."""
