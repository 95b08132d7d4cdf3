"""Runtime settings, read from the environment and an optional TOML file.

Precedence (highest first): explicit arguments, environment variables
(``CIVICPULSE_*``, plus ``CLICKHOUSE_URL``), the file named by
``CIVICPULSE_CONFIG`` (default ``civicpulse.toml`` in the working directory), defaults.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def _config_file() -> Path:
    return Path(os.environ.get("CIVICPULSE_CONFIG", "civicpulse.toml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CIVICPULSE_", extra="ignore")

    data_dir: Path = Path(".civicpulse")

    # Kafka. Empty bootstrap means: the project's local broker, at the address it recorded
    # in <data_dir>/kafka/broker.json when it started.
    kafka_bootstrap: str = ""
    kafka_port: int = 0  # 0: the local broker picks a free port (19092 when free)
    kafka_heap: str = "512m"
    topic_prefix: str = "civicpulse"
    topic_partitions: int = 4
    # How long the group waits for a silent worker before its partitions move on (after a
    # crash, alerts and events of its partitions wait this long).
    kafka_session_timeout_seconds: float = 30.0

    # ClickHouse: chdb://<dir> (embedded, default) or http(s)://user:pass@host:port/db.
    clickhouse_url: str = Field(
        default="", validation_alias=AliasChoices("CLICKHOUSE_URL", "CIVICPULSE_CLICKHOUSE_URL")
    )

    # Worker
    worker_id: str = "civicpulse-worker"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    # Batches are bounded in messages and time when taken from a stream, then processed
    # in chunks of at most chunk_events events (one store write per chunk).
    ingest_batch_messages: int = 2000
    case_batch_messages: int = 64
    batch_max_seconds: float = 0.5
    chunk_events: int = 20_000
    internal_message_bytes: int = 256 * 1024  # repartitioned batch messages stay below this
    # Events more than this far behind their partition's newest event time are reported
    # as late (they are applied all the same): see streams/app/lateness.py.
    late_grace_seconds: float = 86_400
    # SLA policies (YAML, schemas/sla/policies.v1.schema.json); empty: config/sla/policies.yaml
    sla_policies: str = ""
    # SLA alerts: how often the timers are checked, and how old an alert may be when it is
    # first noticed and still be raised (older ones, e.g. from importing years of history
    # into a live worker, are counted as stale instead). Keep the alert topic's retention
    # longer than this: the topic is what makes alerts exactly-once across restarts.
    alert_tick_seconds: float = 1.0
    alert_max_age_seconds: float = 86_400
    log_level: str = "info"
    log_format: str = "console"  # console | json

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=_config_file()),
        )

    @property
    def kafka_dir(self) -> Path:
        return self.data_dir / "kafka"

    @property
    def clickhouse_dsn(self) -> str:
        if self.clickhouse_url:
            return self.clickhouse_url
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def embedded_clickhouse(self) -> bool:
        return self.clickhouse_dsn.startswith("chdb://")

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}.{name}"
