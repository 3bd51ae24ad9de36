"""Fuzzing the stream's edges: raw input, the JSON wire contracts and signed control envelopes.

Each edge has one way to refuse (a dead letter with a reason, a ValidationError, a
ControlRejected); any other exception, or the ingest stage's own safety net, fails the test.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import orjson
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from features.parsing import TimeBounds
from features.store import check_inputs
from streams.agents.ingest import Ingested, ingest
from streams.control import Command, ControlRejected, Verifier, sign
from streams.internal import decode, encode, hop_event
from streams.wire import DeadLetter, HealingAction, ThreatEvent
from tests.features.test_parsing_fuzz import SEEDS_FLOW, SEEDS_LOG, anything, json_mutated, json_values, mutated

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
SECRET = "fuzz-secret"


@given(st.sampled_from(["logs", "flows"]), anything | mutated(SEEDS_LOG) | mutated(SEEDS_FLOW)
       | json_mutated(SEEDS_LOG + SEEDS_FLOW) | st.none())
def test_ingest_scores_or_dead_letters_and_never_falls_back_to_internal(kind: str, raw: bytes | None) -> None:
    out = ingest(raw, input_kind=kind, topic=f"{kind}.raw", partition=1, offset=7, now=NOW, bounds=TimeBounds())
    if isinstance(out, DeadLetter):
        # "internal" is the stage's safety net, "unparseable input" the parsers': neither may catch anything.
        assert out.reason != "internal" and "unparseable input (" not in out.error, out.error
        # The dead letter itself crosses the wire: it must survive its own contract.
        assert DeadLetter.model_validate_json(out.model_dump_json()) == out
    else:
        assert isinstance(out, Ingested)
        msg = out.hop.message
        assert decode(encode(msg)) == msg
        assert all(not isinstance(v, float) or math.isfinite(v) for v in hop_event(msg).values())
        assert check_inputs(msg["k"]) == msg["k"]  # the windows' inputs: numbers the stage accepts


def _near(model: type, extra: dict) -> bytes:
    """A JSON object with the contract's field names and random values."""
    return json.dumps({name: extra.get(name) for name in model.model_fields} | extra, allow_nan=True).encode()


@given(st.sampled_from([ThreatEvent, DeadLetter, HealingAction]),
       st.dictionaries(st.text(max_size=12), json_values, max_size=6), st.binary(max_size=200))
def test_wire_contracts_refuse_junk_with_a_validation_error_only(model: type, fields: dict, junk: bytes) -> None:
    for raw in (_near(model, fields), junk):
        try:
            model.model_validate_json(raw)
        except ValidationError:
            pass


@given(st.dictionaries(st.sampled_from(["command", "issued_at_ms", "nonce", "signature", "issuer"])
                       | st.text(max_size=8), json_values, max_size=7)
       | st.binary(max_size=200).map(lambda b: {"raw": b.hex()}))
@example({"command": {"op": "status"}, "issued_at_ms": NOW_MS, "nonce": "n" * 16, "signature": "é"})
def test_control_envelopes_are_applied_or_rejected_with_a_reason(data: dict) -> None:
    if "raw" in data:
        raw = bytes.fromhex(data["raw"])
    else:
        try:
            raw = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:  # orjson refuses some generated dicts (e.g. huge ints): the generator's limit, not ours
            return
    try:
        Verifier(SECRET, app_id="fuzz-app").verify(raw, now_ms=NOW_MS)
    except ControlRejected as exc:
        assert exc.reason in {"malformed", "unsigned", "invalid_command", "bad_signature", "stale", "replayed"}
    else:
        raise AssertionError(f"an unsigned random envelope was accepted: {data}")


@given(st.integers(0, 400), st.binary(min_size=1, max_size=3))
def test_a_signed_envelope_with_any_byte_changed_is_rejected(at: int, chunk: bytes) -> None:
    env = sign(Command(op="set_threshold", value=80), SECRET, app_id="fuzz-app", now_ms=NOW_MS, issuer="fuzz")
    raw = bytearray(env.model_dump_json().encode())
    assert Verifier(SECRET, app_id="fuzz-app").verify(bytes(raw), now_ms=NOW_MS).command == env.command  # untouched, it is accepted
    at = at % len(raw)
    if raw[at:at + len(chunk)] == chunk:
        return
    raw[at:at + len(chunk)] = chunk
    try:
        got = Verifier(SECRET, app_id="fuzz-app").verify(bytes(raw), now_ms=NOW_MS)
    except ControlRejected:
        return
    # A change that keeps the JSON's meaning (e.g. whitespace) may verify; the content must be the original.
    assert got.command == env.command and got.issued_at_ms == env.issued_at_ms
