"""Which events arrive later than the grace period allows.

The stored numbers never need a grace period to be right: facts and SLA rows are per case
and rewritten whenever an event arrives, so a late event corrects every window it belongs
to. What the grace period decides is what gets *reported*: an event whose time is more
than ``grace`` behind the newest event time seen on its partition (the watermark) may
change windows that readers already took as final (a published monthly ranking), so it
is counted and recorded in ``late_events``.

Watermarks live in memory: after a restart the first events set them again, so lateness
is measured against what this worker has seen (a replay in event-time order reports
nothing late).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from streams.app.steps import Valid
from streams.store.rows import LateEventRow


@dataclass
class LatenessTracker:
    grace: timedelta
    watermarks: dict[tuple[str, int], datetime] = field(default_factory=dict)

    def observe(self, batch: Sequence[Valid], received: datetime) -> list[LateEventRow]:
        late: list[LateEventRow] = []
        for item in batch:
            where = (item.message.topic, item.message.partition)
            at = item.event.occurred_at
            watermark = self.watermarks.get(where)
            if watermark is None or at > watermark:
                self.watermarks[where] = at
            elif watermark - at > self.grace:
                late.append(
                    LateEventRow(
                        case_id=item.event.case_id,
                        event_id=item.event.event_id,
                        type=item.event.type,
                        occurred_at=at,
                        watermark_at=watermark,
                        lateness_seconds=(watermark - at).total_seconds(),
                        received_at=received,
                    )
                )
        return late
