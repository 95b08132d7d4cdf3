"""What the monthly report shows, as plain JSON-ready data.

Every number comes from ``streams.store.metrics`` (the same tested queries as the boards),
so the report and the boards cannot disagree; this module only chooses and bundles them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from streams.store import metrics


def monthly_report_data(
    client: Client,
    month: str,
    *,
    now: datetime | None = None,
    config: metrics.RankingConfig | None = None,
) -> dict[str, Any]:
    """The month's rates (city and by agency), on-time shares and both rankings.
    Raises ``metrics.MetricsError`` for a bad month."""
    cfg = config or metrics.load_ranking_config()
    moment = now or datetime.now(UTC)
    win = metrics.window("month", month=month, timezone=cfg.timezone)
    min_cases = cfg.min_cases
    city = metrics.rates(client, win, now=moment, min_cases=min_cases)
    on_time = metrics.on_time(client, win, now=moment, min_cases=min_cases)
    return {
        "month": win.label,
        "timezone": cfg.timezone,
        "window": {"start": win.start.isoformat(), "end": win.end.isoformat()},
        "generated_at": moment.astimezone(UTC).isoformat(timespec="seconds"),
        "min_cases": min_cases,
        "city": city[0] if city else None,
        "on_time": on_time[0] if on_time else None,
        "by_agency": metrics.rates(client, win, group_by="agency", now=moment, min_cases=min_cases),
        "ranking": {
            level: metrics.ranking(client, level, month=win.label, now=moment, config=cfg)
            for level in ("sub_district", "agency")
        },
    }
