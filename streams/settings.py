"""The one place that reads the environment: every setting, prefix `STREAMGUARD_`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import SettingsError

__all__ = ["DEFAULT_SECRET", "MIN_SECRET_CHARS", "Settings", "get_settings"]

DEFAULT_SECRET = "change-me"
MIN_SECRET_CHARS = 16


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
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How every Kafka client connects: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL.")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism (with SASL_PLAINTEXT or SASL_SSL).")
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (secret).")
    kafka_ssl_cafile: Path | None = Field(None, description="CA certificate(s) (PEM) the brokers' certificates are "
                                          "checked against (SSL, SASL_SSL); unset: the system's.")
    kafka_ssl_certfile: Path | None = Field(None, description="Client certificate (PEM), for brokers that ask one.")
    kafka_ssl_keyfile: Path | None = Field(None, description="Client certificate's private key (PEM).")
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
    topic_applied: str = Field("actions.applied", description="What enforcement points (streamguard enforce) did "
                               "with each healing action.")
    topic_incidents: str = Field("threats.incidents", description="Incidents: one record per attack, updated "
                                 "(compacted, keyed by incident id).")
    topic_audit: str = Field("ops.audit", description="The audit trail: every control command and model "
                             "announcement each worker read, and each retrain run (compacted, never expires).")
    topic_sample: str = Field("features.sample", description="Feature rows workers sample as they score, for "
                              "retraining on live traffic (live_sample_every).")
    topic_status: str = Field("ops.status", description="Workers' replies to control commands (applied or refused).")
    control_window_s: float = Field(300.0, gt=0, description="How far a control command's timestamp may be from now.")
    topic_scored: str = Field("events.scored", description="Every scored event, when emit_scored is on.")
    emit_scored: bool = Field(False, description="Also write every scored event (not only threats) to topic_scored.")
    topic_shadow: str = Field("threats.shadow", description="A challenger model's threats (all its verdicts with "
                              "emit_scored), when emit_shadow is on.")
    emit_shadow: bool = Field(False, description="Write a challenger's verdicts to topic_shadow (they always feed "
                              "the streamguard_challenger_* metrics).")

    # Detection
    model_name: str = Field("streamguard", description="Model name in the registry the worker serves.")
    threat_threshold: int = Field(70, ge=0, le=100, description="Risk at or above which a scored event is a threat.")
    batch_size: int = Field(1000, ge=1, description="Events per scoring micro-batch.")
    batch_timeout_s: float = Field(0.2, gt=0, description="Longest wait to fill a micro-batch.")
    blas_threads: int = Field(1, ge=1, le=64, description="Threads each BLAS/OpenMP pool of the worker may use. "
                              "One: scoring batches are small, and extra threads only contend with the worker's "
                              "own (4x slower scoring measured on a loaded machine with two).")
    session_timeout_s: float = Field(
        30.0, ge=6, le=300,
        description="How long a silent worker keeps its partitions before the group hands them to another "
                    "(also how long a restarted worker waits for a crashed one's).")
    allowed_lateness_s: int = Field(300, ge=0, description="Events older than an entity's watermark minus this "
                                                           "are not counted.")
    max_input_skew_s: float = Field(
        30.0, ge=0,
        description="While reading a backlog, input partitions more than this ahead (event time) of the slowest "
                    "one are paused, so an entity's events arrive near event-time order (0: off).")
    max_hold_s: float = Field(
        10.0, ge=0,
        description="A hop is applied to its entity once no partition of any worker is behind it (event time); "
                    "it waits at most this long (wall clock) for that (0: applied on arrival). "
                    "Needs input alignment (max_input_skew_s > 0).")
    idle_ttl_s: int = Field(900, ge=1, description="Entities unseen this long (event time) "
                                                   "are dropped from the window stores.")
    window_snapshot_min_s: float = Field(
        0.2, gt=0, le=600,
        description="Shortest time between snapshots of a hop partition's windows (see window_snapshot_s).")
    window_snapshot_s: float = Field(
        10.0, gt=0, le=600,
        description="Longest time between snapshots of a hop partition's windows (a small store is snapshotted "
                    "within a second, a large one as often as 5 % of the stage's time allows); a hop input is "
                    "acknowledged once a snapshot covers it, so after a crash up to this much input is read again.")
    max_future_s: int = Field(86400, ge=0, description="Events further than this in the future are dead-lettered.")
    not_before: str = Field("2000-01-01T00:00:00Z", description="Events before this instant are dead-lettered.")

    incident_update_s: float = Field(30.0, ge=0, description="An open incident's record goes out at most this "
                                     "often while its attack goes on.")
    incident_quiet_s: float = Field(300.0, gt=0, description="An incident closes this long after its last threat.")
    incident_max_open: int = Field(10_000, ge=1, description="Open incidents at most; one more closes the "
                                   "longest-quiet first.")
    incident_by_destination: str = Field("ddos", description="Comma-separated labels whose threats are grouped "
                                         "into one incident per destination (one attack, many sources), not per "
                                         "source.")

    # Drift
    drift_window_events: int = Field(5000, ge=100, description="Scored events per drift (PSI) measurement window.")
    promotion_watch_events: int = Field(5000, ge=0, description="After a promotion, this many events are scored "
                                        "by the previous version too and the new one is rolled back if it strays "
                                        "(0: not watched).")
    promotion_max_threat_ratio: float = Field(3.0, ge=1.0, description="Roll back a promoted version raising "
                                              "more than this many times the previous one's threats, or fewer "
                                              "than its inverse, on the same events.")
    promotion_min_decision_agreement: float = Field(0.97, ge=0.0, le=1.0, description="Roll back a promoted "
                                                    "version agreeing with the previous one on fewer threat "
                                                    "decisions than this share.")
    promotion_max_label_psi: float = Field(0.25, gt=0.0, description="Roll back a promoted version whose label mix "
                                           "moved further than this PSI from the previous one's.")
    drift_psi_threshold: float = Field(0.25, gt=0, description="Mean feature PSI at or above which a worker asks "
                                                               "for a retrain on models.retrain.")
    drift_cooldown_s: float = Field(3600.0, ge=0, description="Least time between two drift retrain "
                                                              "requests of a worker.")

    # Retraining (streamguard retrain-worker)
    auto_retrain_hours: float = Field(0.0, ge=0, description="Retrain on this interval (0: only on request).")
    retrain_min_interval_s: float = Field(600.0, ge=0, description="Drift and interval retrains are skipped this "
                                                                   "soon after the last run.")
    live_sample_every: int = Field(1000, ge=0, description="Workers write every flagged row and one unflagged row "
                                   "in this many to topic_sample, for retraining on live traffic (0: none).")
    live_window_hours: float = Field(24.0, gt=0, le=24 * 30, description="Retraining reads the live sample of "
                                     "this many past hours (and the blocks and operator commands around it).")
    live_rows_per_label: int = Field(2000, ge=0, description="Retraining uses at most this many labelled live rows "
                                     "per label (0: none; see docs/models.md, 'Retraining on live traffic').")

    # Healing
    dry_run: bool = Field(False, description="Emit actions with dry_run=true: enforcement agents log "
                                             "instead of acting.")
    allowlist: str = Field("", description="Comma-separated CIDRs never acted on, e.g. 10.0.0.0/8,192.168.0.0/16.")
    policy_file: Path | None = Field(None, description="Healing policy file (TOML) the worker starts with (default: "
                                     "the built-in one; `streamguard control policy --show-builtin` prints it). A "
                                     "policy loaded later with `streamguard control policy` replaces it.")
    max_blocks_per_minute: int = Field(20, ge=0, description="Circuit breaker: more blocking actions "
                                                             "per minute become alerts.")

    # Storage
    mongo_uri: SecretStr | None = Field(None, description="MongoDB URI; unset means no MongoDB sink or store.")
    webhook_url: str | None = Field(None, description="Where `streamguard webhook` POSTs healing actions "
                                    "(http or https).")
    webhook_token: SecretStr | None = Field(None, description="Sent as a bearer token by `streamguard webhook`, and "
                                            "the key of its body's HMAC-SHA256 signature header (secret).")
    mongo_database: str = "streamguard"
    mongo_sink: bool = Field(True, description="With mongo_uri set: also write threats and actions to MongoDB.")
    mongo_ttl_days: float = Field(0.0, ge=0, description="Delete stored threats and actions older than this "
                                                         "(0: keep them).")
    registry_store: Literal["local", "mongo"] = Field(
        "local", description="Where model versions live: 'local' (registry_dir) or 'mongo' (GridFS in "
                             "mongo_database, shared by workers on several machines; needs mongo_uri).")
    registry_dir: Path = Field(Path("var/registry"), description="Local directory model registry.")
    data_dir: Path = Field(Path("var/worker"), description="Worker state directory (Faust data dir).")

    max_record_bytes: int = Field(
        0, ge=0, description="Largest record (key + value) streamguard writes; larger outputs become too_large dead "
                             "letters. 0: the smallest of the broker's and the topics' limits and the producer's "
                             "(4 MiB), read at start-up.")

    # Operations
    metrics_port: int = Field(9108, ge=0, le=65535, description="Prometheus /metrics and /health port; 0 disables.")
    metrics_host: str = Field("127.0.0.1", description="Address the web server binds to; the loopback address by "
                              "default, 0.0.0.0 in containers where Prometheus scrapes from outside.")
    debug_pages: bool = Field(False, description="Serve /debug/tasks (where every task of the worker waits, and the "
                              "consumer's offsets): for diagnosing a stage that stopped.")
    signing_secret: SecretStr = Field(
        SecretStr(DEFAULT_SECRET), description="HMAC-SHA256 secret for control commands, model announcements "
                                               f"and the operator state (at least {MIN_SECRET_CHARS} characters).")
    allow_weak_secret: bool = Field(False, description="Development only: let workers start with the default or a "
                                                       "short signing secret.")
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

    @property
    def allowlist_cidrs(self) -> tuple[str, ...]:
        """The allowlist as a tuple of CIDR strings."""
        return tuple(c.strip() for c in self.allowlist.split(",") if c.strip())

    @field_validator("allowlist")
    @classmethod
    def _cidrs_parse(cls, value: str) -> str:
        import ipaddress

        for cidr in (c.strip() for c in value.split(",") if c.strip()):
            try:
                ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                if "host bits set" in str(exc):
                    net = ipaddress.ip_network(cidr, strict=False)
                    raise ValueError(f"{cidr!r} has host bits set: did you mean {net}? (the control command refuses "
                                     "it too)") from None
                raise ValueError(f"not a CIDR: {cidr!r}") from None
        return value

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> Settings:
        sasl = self.kafka_security_protocol.startswith("SASL_")
        if sasl and (not self.kafka_sasl_username or self.kafka_sasl_password is None):
            raise ValueError(f"STREAMGUARD_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                             "STREAMGUARD_KAFKA_SASL_USERNAME and STREAMGUARD_KAFKA_SASL_PASSWORD")
        tls = self.kafka_security_protocol in ("SSL", "SASL_SSL")
        files = {"kafka_ssl_cafile": self.kafka_ssl_cafile, "kafka_ssl_certfile": self.kafka_ssl_certfile,
                 "kafka_ssl_keyfile": self.kafka_ssl_keyfile}
        given = [k for k, v in files.items() if v is not None]
        if given and not tls:
            raise ValueError(f"STREAMGUARD_{given[0].upper()} is set but STREAMGUARD_KAFKA_SECURITY_PROTOCOL is "
                             f"{self.kafka_security_protocol} (TLS files need SSL or SASL_SSL)")
        missing = [k for k in given if not Path(files[k]).is_file()]
        if missing:
            raise ValueError(f"STREAMGUARD_{missing[0].upper()}: no such file {files[missing[0]]}")
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ValueError("STREAMGUARD_KAFKA_SSL_CERTFILE and STREAMGUARD_KAFKA_SSL_KEYFILE go together")
        return self

    def check_signing_secret(self) -> None:
        """Refuse the default or a short signing secret (anyone could sign commands) unless allowed for development."""
        secret = self.signing_secret.get_secret_value()
        if self.allow_weak_secret:
            return
        if secret == DEFAULT_SECRET or len(secret) < MIN_SECRET_CHARS:
            what = "the default" if secret == DEFAULT_SECRET else f"{len(secret)} characters long"
            raise SettingsError(
                f"STREAMGUARD_SIGNING_SECRET is {what}: anyone who knows it can steer every worker. Set a random "
                f"secret of at least {MIN_SECRET_CHARS} characters (e.g. `python -c 'import secrets; "
                "print(secrets.token_hex(32))'`), the same for every worker, the CLI and the retrain worker; "
                "for a development setup only, STREAMGUARD_ALLOW_WEAK_SECRET=true")

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
            (f"STREAMGUARD_{'_'.join(str(p) for p in err['loc']).upper()}: " if err["loc"] else "") + err["msg"]
            for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None
