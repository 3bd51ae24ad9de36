"""The one place that reads the environment: every setting, prefix `STREAMGUARD_`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import SettingsError

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    """Worker and CLI configuration; secrets are `SecretStr` and never logged in clear."""

    model_config = SettingsConfigDict(
        env_prefix="STREAMGUARD_",
        env_file=None,
        extra="ignore",
        validate_default=True,
    )

    # Kafka
    kafka_bootstrap: str = Field("localhost:9092", description="Kafka bootstrap servers, comma-separated host:port.")
    app_id: str = Field("streamguard", description="Faust app id; also the Kafka consumer group.")
    topic_prefix: str = Field("", description="Prefixed to every topic name, so deployments can share a cluster.")
    topic_partitions: int = Field(4, ge=1, description="Partitions for topics streamguard creates.")
    topic_logs_raw: str = "logs.raw"
    topic_flows_raw: str = "flows.raw"
    topic_threats: str = "threats.enriched"
    topic_actions: str = "actions.healing"
    topic_retrain: str = "models.retrain"
    topic_control: str = "ops.control"
    topic_deadletter: str = "ops.deadletter"

    # Storage
    mongo_uri: SecretStr | None = Field(None, description="MongoDB URI; unset means no MongoDB sink or store.")
    mongo_database: str = "streamguard"
    registry_dir: Path = Field(Path("var/registry"), description="Local directory model registry.")
    data_dir: Path = Field(Path("var/worker"), description="Worker state directory (Faust data dir).")

    # Operations
    metrics_port: int = Field(9108, ge=0, le=65535, description="Prometheus /metrics and /health port; 0 disables.")
    signing_secret: SecretStr = Field(
        SecretStr("change-me"), description="HMAC-SHA256 secret for control commands and model announcements."
    )
    log_level: str = "INFO"

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_ports(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers or any(":" not in s for s in servers):
            raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return ",".join(servers)

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_is_topic_safe(cls, value: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if set(value) - allowed:
            raise ValueError(f"topic prefix may only hold [a-zA-Z0-9._-], got {value!r}")
        return value

    def topic(self, name: str) -> str:
        """Full topic name for a base name, with the deployment prefix."""
        return f"{self.topic_prefix}{name}"

    @property
    def faust_broker(self) -> str:
        """The bootstrap list in Faust's `kafka://` URL form."""
        return ";".join(f"kafka://{s}" for s in self.kafka_bootstrap.split(","))

    def masked(self) -> dict[str, Any]:
        """Settings as plain data with secrets masked, safe to log or print."""
        out: dict[str, Any] = {}
        for name, value in self:
            if isinstance(value, SecretStr):
                out[name] = "**********" if value.get_secret_value() else ""
            elif isinstance(value, Path):
                out[name] = str(value)
            else:
                out[name] = value
        return out


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once from the environment; raises `SettingsError` naming bad variables."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"STREAMGUARD_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None
