"""civicpulse's Grafana boards as code (grafana-foundation-sdk).

``python -m dashboards.build`` writes every board to ``dashboards/json/``; the tests fail
when the committed JSON differs from what this code generates. ``dashboards.expand``
expands a panel's SQL the way Grafana and the ClickHouse plugin do, so tests and the
benchmark can run it against the real schema.
"""
