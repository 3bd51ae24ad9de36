"""Signed version records: which records pass, and every way one fails."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from registry import LocalRegistry, VersionInfo, record_problem, record_signature, signed
from registry.signature import SIGNED_FIELDS
from scoring.bundle import sha256_file

SECRET = "record-test-secret-0123456789"


def _info(**over) -> VersionInfo:
    fields = dict(name="streamguard", version="v1", sha256="a" * 64, feature_schema_version="1", created_ms=1)
    return VersionInfo(**{**fields, **over})


def test_a_signed_record_passes_and_only_with_its_secret() -> None:
    info = signed(_info(), SECRET)
    assert record_problem(info, SECRET) is None
    assert record_problem(info, "another-secret-0123456789")[0] == "bad_record_signature"
    assert record_problem(_info(), SECRET)[0] == "unsigned_record"


@pytest.mark.parametrize("field", SIGNED_FIELDS)
def test_changing_any_signed_field_breaks_the_signature(field: str) -> None:
    info = signed(_info(), SECRET)
    other = "b" * 64 if field == "sha256" else "other"
    assert record_problem(dataclasses.replace(info, **{field: other}), SECRET)[0] == "bad_record_signature"


def test_unsigned_fields_may_change_and_the_mac_is_not_a_control_signature() -> None:
    info = signed(_info(), SECRET)
    # Status, metrics and notes are not what decides which bytes are unpickled.
    assert record_problem(dataclasses.replace(info, status="active", metrics={"f1": 1.0}, extra={"x": 1}),
                          SECRET) is None
    import hashlib
    import hmac

    body = json.dumps({f: getattr(info, f) for f in SIGNED_FIELDS}, sort_keys=True, separators=(",", ":")).encode()
    plain = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert plain != record_signature(info, SECRET)  # domain-separated from an envelope's HMAC


def test_the_local_store_keeps_a_signature_set_later(tmp_path: Path) -> None:
    reg = LocalRegistry(tmp_path / "reg")
    art = tmp_path / "a.bin"
    art.write_bytes(b"artifact")
    info = _info(sha256=sha256_file(art))
    reg.register(info, art)
    assert reg.get("streamguard", "v1").signature == ""
    reg.set_signature("streamguard", "v1", record_signature(info, SECRET))
    got = reg.get("streamguard", "v1")
    assert record_problem(got, SECRET) is None
    meta = json.loads((tmp_path / "reg" / "streamguard" / "versions" / "v1" / "meta.json").read_text())
    assert meta["signature"] == got.signature and meta["sha256"] == info.sha256
