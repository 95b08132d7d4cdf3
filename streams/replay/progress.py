"""How a replay reports progress: one callback shape shared by the readers, the plan pass
and the fold, so the command's progress bars and the worker's status views render any
phase the same way.
"""

from __future__ import annotations

from collections.abc import Callable

#: progress callback: (phase, done, total); phases "read" (events or, for topics,
#: messages) and "fold" (events)
Progress = Callable[[str, int, int | None], None]

#: progress and cancellation are checked every so many events of the plan pass
PROGRESS_EVERY = 20_000
