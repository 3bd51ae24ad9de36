"""Settings: prefix, defaults, validation, masking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from streams.errors import SettingsError
from streams.settings import Settings, get_settings
from streams.topics import topic_names


def test_defaults_point_at_the_embedded_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("STREAMGUARD_KAFKA_BOOTSTRAP", "STREAMGUARD_TOPIC_PREFIX", "STREAMGUARD_MONGO_URI"):
        monkeypatch.delenv(var, raising=False)
    s = Settings()
    assert s.kafka_bootstrap == "localhost:9092"
    assert s.topic_prefix == ""
    assert s.mongo_uri is None
    assert topic_names(s).all() == [
        "logs.raw", "flows.raw", "threats.enriched", "actions.healing", "models.retrain", "ops.control", "ops.deadletter",
        "events.scored", "ops.status", "threats.shadow", "actions.applied", "threats.incidents", "ops.audit",
        "features.sample",
    ]


def test_environment_prefix_and_topic_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMGUARD_KAFKA_BOOTSTRAP", "k1:9092, k2:9093")
    monkeypatch.setenv("STREAMGUARD_TOPIC_PREFIX", "staging.")
    monkeypatch.setenv("STREAMGUARD_TOPIC_THREATS", "soc.threats")
    s = Settings()
    assert s.kafka_bootstrap == "k1:9092,k2:9093"
    assert s.faust_broker == "kafka://k1:9092;kafka://k2:9093"
    names = topic_names(s)
    assert names.threats == "staging.soc.threats"
    assert names.logs_raw == "staging.logs.raw"


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMGUARD_MONGO_URI", "mongodb://admin:hunter2@db:27017")
    monkeypatch.setenv("STREAMGUARD_SIGNING_SECRET", "s3cret-value")
    s = Settings()
    assert isinstance(s.mongo_uri, SecretStr)
    dumped = json.dumps(s.masked(), default=str)
    assert "hunter2" not in dumped and "s3cret-value" not in dumped
    assert "hunter2" not in repr(s) and "s3cret-value" not in str(s)
    assert s.signing_secret.get_secret_value() == "s3cret-value"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("STREAMGUARD_KAFKA_BOOTSTRAP", "no-port-here"),
        ("STREAMGUARD_METRICS_PORT", "70000"),
        ("STREAMGUARD_TOPIC_PREFIX", "bad prefix/"),
    ],
)
def test_invalid_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError, match=var):
            get_settings()
    finally:
        get_settings.cache_clear()


def test_an_allowlist_entry_with_host_bits_is_refused_with_the_network_meant(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings refuse what the control command refuses, before a worker starts, not in its first batch."""
    from streams.control import Command

    monkeypatch.setenv("STREAMGUARD_ALLOWLIST", "192.168.0.0/16,10.0.0.1/8")
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError, match="STREAMGUARD_ALLOWLIST.*did you mean 10.0.0.0/8"):
            get_settings()
    finally:
        get_settings.cache_clear()
    with pytest.raises(ValueError):
        Command(op="allowlist", action="add", cidr="10.0.0.1/8")


def test_the_web_server_binds_to_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMGUARD_METRICS_HOST", raising=False)
    monkeypatch.delenv("STREAMGUARD_DEBUG_PAGES", raising=False)
    get_settings.cache_clear()
    try:
        s = get_settings()
        assert s.metrics_host == "127.0.0.1" and s.debug_pages is False
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize("secret", ["change-me", "short-secret", ""])
def test_workers_refuse_a_default_or_short_signing_secret(secret: str) -> None:
    from streams.settings import Settings

    with pytest.raises(SettingsError, match="STREAMGUARD_SIGNING_SECRET"):
        Settings(signing_secret=secret).check_signing_secret()
    Settings(signing_secret=secret, allow_weak_secret=True).check_signing_secret()  # development only
    Settings(signing_secret="x" * 16).check_signing_secret()


def test_a_worker_with_the_default_secret_does_not_start(tmp_path) -> None:
    import os
    import subprocess

    from tests.streams.conftest import BIN

    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMGUARD_")}
    proc = subprocess.run([str(BIN), "worker"], env={**env, "STREAMGUARD_KAFKA_BOOTSTRAP": "127.0.0.1:1"},
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert "STREAMGUARD_SIGNING_SECRET is the default" in proc.stdout + proc.stderr


def test_settings_refuse_an_incomplete_kafka_security_setup(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="STREAMGUARD_KAFKA_SASL_USERNAME"):
        Settings(kafka_security_protocol="SASL_PLAINTEXT")
    with pytest.raises(ValueError, match="TLS files need SSL or SASL_SSL"):
        Settings(kafka_ssl_cafile=tmp_path / "ca.pem")
    with pytest.raises(ValueError, match="no such file"):
        Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "missing.pem")
    s = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="u", kafka_sasl_password="pw-secret-value")
    assert "pw-secret-value" not in str(s.masked())  # the password is a secret
