"""Structured logging for every civicpulse process (console for people, JSON for machines)."""

from __future__ import annotations

import logging
import sys

import structlog


def configure(level: str = "info", fmt: str = "console") -> None:
    numeric = getattr(logging, level.upper(), logging.INFO)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processor=renderer)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # aiokafka reports every coordinator hiccup at WARNING; they are routine during start-up.
    logging.getLogger("aiokafka").setLevel(max(numeric, logging.ERROR))
    quiet_retried_coordinator_lookups()
    # One line per HTTP request would bury the live summary, which polls every second.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(numeric, logging.WARNING))


class _RetriedLookup(logging.Filter):
    """Drops aiokafka's "Group Coordinator Request failed" when it retries: on a fresh
    broker the first consumer group waits for the offsets topic to be created
    (GroupCoordinatorNotAvailable), which aiokafka logs as an error and then retries
    until it succeeds. Errors it does not retry still show."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        retried = bool(args) and bool(getattr(args[0], "retriable", False))
        return not (record.msg == "Group Coordinator Request failed: %s" and retried)


_LOOKUP_LOGGER = "aiokafka.consumer.group_coordinator"


def quiet_retried_coordinator_lookups() -> None:
    """Install the filter once (``configure`` does; so do readers of topics that may run
    without it, like the replay benchmark)."""
    logger = logging.getLogger(_LOOKUP_LOGGER)
    if not any(isinstance(f, _RetriedLookup) for f in logger.filters):
        logger.addFilter(_RetriedLookup())


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
