"""Signed version records: what lets a worker trust a record it reads from a store it does not own.

A store (a directory, a MongoDB database) can be written by more people than should run code on
the workers, and an artifact is a pickle: loading one runs whatever it says. So every record
carries an HMAC-SHA256, with the deployment's signing secret, over its name, version, sha256 and
feature schema version; a worker loads an artifact only when the record's signature holds and
the artifact's bytes hash to the signed sha256. Replacing an artifact and its sha256 together
needs the secret.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json

from .store import VersionInfo

__all__ = ["SIGNED_FIELDS", "record_problem", "record_signature", "signed"]

SIGNED_FIELDS = ("name", "version", "sha256", "feature_schema_version")
# Domain separation: a record MAC can never pass for a control envelope's (same secret) or back.
_DOMAIN = b"streamguard model record v1\n"


def record_signature(info: VersionInfo, secret: str) -> str:
    """The HMAC-SHA256 (hex) of a record's signed fields."""
    body = json.dumps({f: getattr(info, f) for f in SIGNED_FIELDS}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()
    return hmac.new(secret.encode(), _DOMAIN + body, hashlib.sha256).hexdigest()


def signed(info: VersionInfo, secret: str) -> VersionInfo:
    """The record with its signature."""
    return dataclasses.replace(info, signature=record_signature(info, secret))


def record_problem(info: VersionInfo, secret: str) -> tuple[str, str] | None:
    """None if the record is signed with `secret`; else (reason code, what to do)."""
    if not info.signature:
        return ("unsigned_record", f"the registry record of {info.name} {info.version} is not signed; sign it "
                "with `streamguard models sign` if you trust its artifact")
    expected = record_signature(info, secret)
    if not hmac.compare_digest(expected.encode(), str(info.signature).encode()):
        return ("bad_record_signature", f"the registry record of {info.name} {info.version} is signed with "
                "another secret or was changed after signing")
    return None
