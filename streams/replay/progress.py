"""How a replay reports progress: one callback shape shared by the readers, the plan pass
and the fold, so the command's progress bars and the worker's status views render any
phase the same way.
"""

from __future__ import annotations

from collections.abc import Callable

#: progress callback: (phase, done, total); phases "read" (events), "messages" (a
#: topic's read: Kafka messages, which may carry batches), "fold" and "catch-up" (events)
Progress = Callable[[str, int, int | None], None]

#: what each phase counts, for its rate; events unless said here
PHASE_UNITS = {"messages": "messages"}

#: progress and cancellation are checked every so many events of the plan pass
PROGRESS_EVERY = 20_000
