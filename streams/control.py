"""Signed operator commands on `ops.control`: the envelope, its signature and its checks.

Pure code (no Kafka): `sign` builds an envelope, `Verifier.verify` accepts it or says why not.
The signature is HMAC-SHA256 over the canonical JSON (sorted keys, no spaces, UTF-8) of
everything in the envelope but the signature. A command is refused when it is not JSON, not
signed, signed with another secret, signed for another deployment (app id) or another topic
(purpose), outside the timestamp window, or a replay (its nonce was seen inside the window).
Nonces older than the window are forgotten: a replay of one of those is refused as stale, so
memory stays bounded.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections import OrderedDict
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import StreamsError

__all__ = [
    "COMMANDS",
    "PURPOSES",
    "Purpose",
    "Command",
    "ControlRejected",
    "HealingPolicy",
    "PolicyRule",
    "Envelope",
    "Verifier",
    "canonical",
    "mac",
    "purpose_of",
    "sign",
]

COMMANDS = ("promote", "rollback", "set_threshold", "pause_actions", "resume_actions", "dry_run",
            "allowlist", "unblock", "retrain", "status", "announce", "challenger", "policy")


# Which topic an envelope was signed for: operator commands on `ops.control`, model announcements
# and drift requests on `models.retrain`. Signed, so an envelope cannot be moved between them.
PURPOSES = ("control", "models")
Purpose = Literal["control", "models"]
_MODELS_OPS = ("announce", "retrain")


class ControlRejected(StreamsError):
    """A control message that must not be applied; `reason` is a short code for metrics."""

    def __init__(self, reason: str, detail: str, envelope: Envelope | None = None, *,
                 claimed: Envelope | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.envelope = envelope  # set once the signature held: a reply may then name its nonce
        # What an unsigned or wrongly signed message claims to be: for the audit trail only, never
        # for a reply (a forgery naming a real command's nonce would answer it).
        self.claimed = claimed or envelope


def _claimed(data: dict[str, Any]) -> Envelope | None:
    """An unsigned message read as an envelope, if it is one (what it claims, unverified)."""
    try:
        return Envelope.model_validate({**data, "signature": ""})
    except ValidationError:
        return None


class PolicyRule(BaseModel):
    """One rule of a healing policy file (`scoring/healing/default_policy.toml` shows each field in use)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    label: str = Field(min_length=1, max_length=64, description="The predicted label it acts for; '*': every "
                       "label without rules of its own (never benign).")
    action: Literal["block_ip", "rate_limit", "lock_account", "isolate_host", "alert"]
    min_risk: int = Field(ge=0, le=100, description="Acts only at or above this risk.")
    target: Literal["source", "destination", "user"] = Field(
        "source", description="On whom: the threat's own entity, the destination address of its event, or the "
                              "account its event names.")
    min_evidence: dict[str, float] = Field(default_factory=dict, description="Window features that must all be at "
                                           "least these values.")
    max_evidence: dict[str, float] = Field(default_factory=dict, description="Window features that must all be at "
                                           "most these values.")
    ttl_ladder_s: list[int] | None = Field(None, min_length=1, description="This rule's durations by offence "
                                           "(default: the policy's).")


class HealingPolicy(BaseModel):
    """A healing policy file (TOML), as `streamguard control policy` sends it to the workers."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: str = Field(min_length=1, max_length=64, description="Names the rules; every action carries it.")
    ttl_ladder_s: list[int] = Field([600, 3600, 86400], min_length=1,
                                    description="Block duration by offence (1st, 2nd, 3rd and later), seconds.")
    offence_memory_s: int = Field(7 * 86400, ge=0, description="Offences older than this no longer escalate.")
    rules: list[PolicyRule] = Field(min_length=1, max_length=500)


class Command(BaseModel):
    """One operator command and its arguments (checked per op)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Literal["promote", "rollback", "set_threshold", "pause_actions", "resume_actions", "dry_run",
                "allowlist", "unblock", "retrain", "status", "announce", "challenger", "policy", "label"]
    version: str | None = Field(None, description="promote/rollback: the model version to serve; challenger: the "
                                "version to run beside it (none: stop the challenger).")
    fraction: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False,
                                   description="challenger: share of entities it serves for real (A/B); 0 or "
                                   "absent: shadow only.")
    value: int | None = Field(None, ge=0, le=100, description="set_threshold: the new risk threshold.")
    on: bool | None = Field(None, description="dry_run: on or off.")
    action: Literal["add", "remove"] | None = Field(None, description="allowlist: add or remove.")
    cidr: str | None = Field(None, description="allowlist: the CIDR.")
    target: str | None = Field(None, description="unblock: the IP address to unblock; label: the source address "
                               "whose rows get the label.")
    label: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]{0,63}$", description="label: an analyst's verdict "
                              "(benign or an attack label) for retraining on live traffic.")
    event_id: str | None = Field(None, min_length=1, max_length=200,
                                 description="label: the event whose row gets the label.")
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$",
                               description="announce: the artifact's sha256, as registered.")
    feature_schema_version: str | None = Field(None, max_length=64,
                                               description="announce: the feature schema the version was trained on.")
    reason: str | None = Field(None, max_length=2000, description="retrain: why (operator note, drift figures); "
                               "rollback: why (the promotion guard's figures).")
    policy: HealingPolicy | None = Field(None, description="policy: the healing rules every worker uses from now on.")

    @field_validator("cidr")
    @classmethod
    def _cidr(cls, value: str | None) -> str | None:
        if value is not None:
            ipaddress.ip_network(value, strict=True)  # ValueError -> validation error
        return value

    @field_validator("target")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        if value is not None:
            ipaddress.ip_address(value)
        return value

    @model_validator(mode="after")
    def _has_its_arguments(self) -> Command:
        needs = {"promote": ("version",), "rollback": ("version",), "set_threshold": ("value",),
                 "dry_run": ("on",), "allowlist": ("action", "cidr"), "unblock": ("target",),
                 "announce": ("version", "sha256", "feature_schema_version"), "policy": ("policy",)}.get(self.op, ())
        missing = [n for n in needs if getattr(self, n) is None]
        if missing:
            raise ValueError(f"{self.op} needs {', '.join(missing)}")
        if self.op == "label" and (self.label is None or (self.target is None and self.event_id is None)):
            raise ValueError("label needs a label and a target address or an event id")
        if self.op != "label" and (self.label is not None or self.event_id is not None):
            raise ValueError("label and event_id are for the label command only")
        if self.fraction is not None and (self.op != "challenger" or self.version is None):
            raise ValueError("fraction is for a challenger version only")
        return self


class Envelope(BaseModel):
    """What travels on the control topic."""

    model_config = ConfigDict(extra="forbid")

    command: Command
    app_id: str = Field(min_length=1, max_length=249, description="The deployment (STREAMGUARD_APP_ID) it is for.")
    purpose: Purpose = Field(description="The topic it is for: control (ops.control) or models (models.retrain).")
    issued_at_ms: int
    nonce: str = Field(min_length=16, max_length=128)
    issuer: str = Field("", max_length=200)
    signature: str = ""

    def signed_part(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"signature"}, exclude_none=True)


def canonical(obj: Any) -> bytes:
    """The bytes that are signed: sorted keys, no whitespace, UTF-8."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def mac(secret: str, obj: Any) -> str:
    """HMAC-SHA256 (hex) of `obj`'s canonical JSON: what every signed record of the project carries."""
    return hmac.new(secret.encode(), canonical(obj), hashlib.sha256).hexdigest()


def purpose_of(command: Command) -> Purpose:
    """The topic a command is sent on when the sender does not say: announcements to models, the rest to control."""
    return "models" if command.op == "announce" else "control"


def sign(command: Command, secret: str, *, now_ms: int, app_id: str, purpose: Purpose | None = None,
         issuer: str = "", nonce: str | None = None) -> Envelope:
    """A signed envelope for `command` in deployment `app_id`, issued at `now_ms`, for the topic `purpose`."""
    if not secret:
        raise ControlRejected("no_secret", "a signing secret is required (STREAMGUARD_SIGNING_SECRET)")
    env = Envelope(command=command, app_id=app_id, purpose=purpose or purpose_of(command), issued_at_ms=now_ms,
                   nonce=nonce or secrets.token_hex(16), issuer=issuer)
    env.signature = mac(secret, env.signed_part())
    return env


class Verifier:
    """Checks envelopes against one secret and deployment, a timestamp window and the nonces seen inside it."""

    def __init__(self, secret: str, *, app_id: str, window_s: float = 300.0) -> None:
        self._secret = secret
        self.app_id = app_id
        self.window_ms = int(window_s * 1000)
        self._seen: OrderedDict[str, int] = OrderedDict()  # nonce -> issued_at_ms, oldest first

    def verify(self, raw: bytes, *, now_ms: int, purpose: Purpose = "control", check_time: bool = True) -> Envelope:
        """The envelope if it may be applied on the `purpose` topic; raises `ControlRejected` otherwise.

        `check_time=False` is for re-reading the topic's history at start-up: those commands
        were accepted when they were new, and their nonces still have to be unique.
        """
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ControlRejected("malformed", f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ControlRejected("malformed", "not a JSON object")
        if not data.get("signature"):
            raise ControlRejected("unsigned", "no signature", claimed=_claimed(data))
        try:
            env = Envelope.model_validate(data)
        except ValidationError as exc:
            raise ControlRejected("invalid_command", str(exc.errors()[0].get("msg", exc))) from None
        if not self._secret:
            raise ControlRejected("no_secret", "this worker has no signing secret; every command is refused")
        # Bytes, not str: compare_digest raises TypeError on a non-ASCII str (found by fuzzing).
        if not hmac.compare_digest(mac(self._secret, env.signed_part()).encode(), env.signature.encode()):
            raise ControlRejected("bad_signature", "the signature does not match", claimed=env)
        # After the signature: these fields are only worth reading once they are known to be signed.
        if env.app_id != self.app_id:
            raise ControlRejected("wrong_deployment", f"signed for app id {env.app_id!r}, this is {self.app_id!r}",
                                  env)
        if env.purpose != purpose:
            raise ControlRejected("wrong_topic", f"signed for the {env.purpose} topic, read from the {purpose} topic",
                                  env)
        op = env.command.op
        if (purpose == "models" and op not in _MODELS_OPS) or (purpose == "control" and op == "announce"):
            raise ControlRejected("wrong_topic", f"{op} does not belong on the {purpose} topic", env)
        if check_time and abs(now_ms - env.issued_at_ms) > self.window_ms:
            raise ControlRejected("stale", f"issued {abs(now_ms - env.issued_at_ms) / 1000:.0f} s from now; "
                                  f"the window is {self.window_ms / 1000:.0f} s", env)
        self._forget_before(now_ms - self.window_ms if check_time else None)
        if env.nonce in self._seen:
            raise ControlRejected("replayed", f"nonce {env.nonce} was used before")
        self._seen[env.nonce] = env.issued_at_ms
        return env

    def recent_nonces(self, now_ms: int) -> dict[str, int]:
        """Nonces seen whose envelopes are still inside the window (what a restarted worker must remember)."""
        self._forget_before(now_ms - self.window_ms)
        return dict(self._seen)

    def remember(self, nonces: dict[str, int]) -> None:
        """Take nonces seen by an earlier run (`recent_nonces`), oldest first."""
        for nonce, issued in sorted(nonces.items(), key=lambda kv: kv[1]):
            self._seen.setdefault(nonce, int(issued))

    def _forget_before(self, cutoff_ms: int | None) -> None:
        if cutoff_ms is None:
            return
        while self._seen:
            nonce, issued = next(iter(self._seen.items()))
            if issued >= cutoff_ms:
                break
            del self._seen[nonce]
