"""Operational telemetry: the one registry of Prometheus metric names and their exposition."""
