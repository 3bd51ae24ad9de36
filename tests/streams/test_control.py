"""Signed control envelopes: what is accepted and every way one is refused."""

from __future__ import annotations

import orjson
import pytest

from streams.control import Command, ControlRejected, Verifier, canonical, sign

SECRET = "s3cret-for-tests"
NOW = 1_800_000_000_000
APP = "sg-test"


def _raw(env) -> bytes:
    return env.model_dump_json().encode()


def test_signed_command_is_accepted_once() -> None:
    v = Verifier(SECRET, app_id=APP, window_s=300)
    env = sign(Command(op="set_threshold", value=80), SECRET, app_id=APP, now_ms=NOW)
    got = v.verify(_raw(env), now_ms=NOW + 1000)
    assert got.command.op == "set_threshold" and got.command.value == 80
    with pytest.raises(ControlRejected) as exc:
        v.verify(_raw(env), now_ms=NOW + 2000)
    assert exc.value.reason == "replayed"


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda d: d.pop("signature"), "unsigned"),
    (lambda d: d.__setitem__("signature", "0" * 64), "bad_signature"),
    (lambda d: d["command"].__setitem__("value", 5), "bad_signature"),  # tampered after signing
    (lambda d: d.__setitem__("issued_at_ms", NOW - 301_000), "bad_signature"),
    (lambda d: d["command"].__setitem__("op", "format_disk"), "invalid_command"),
])
def test_tampered_or_unsigned_commands_are_refused(mutate, reason: str) -> None:
    d = orjson.loads(_raw(sign(Command(op="set_threshold", value=80), SECRET, app_id=APP, now_ms=NOW)))
    mutate(d)
    with pytest.raises(ControlRejected) as exc:
        Verifier(SECRET, app_id=APP).verify(orjson.dumps(d), now_ms=NOW)
    assert exc.value.reason == reason


def test_other_secret_stale_and_malformed_are_refused() -> None:
    env = sign(Command(op="pause_actions"), "another-secret", app_id=APP, now_ms=NOW)
    for raw, now, reason in [(_raw(env), NOW, "bad_signature"),
                             (_raw(sign(Command(op="pause_actions"), SECRET, app_id=APP, now_ms=NOW)), NOW + 301_000, "stale"),
                             (b'{"command": {"op": "pause', NOW, "malformed"),
                             (b"\x00\xff", NOW, "malformed"),
                             (b"[1]", NOW, "malformed")]:
        with pytest.raises(ControlRejected) as exc:
            Verifier(SECRET, app_id=APP, window_s=300).verify(raw, now_ms=now)
        assert exc.value.reason == reason, raw


def test_a_worker_without_secret_refuses_everything_and_the_cli_cannot_sign() -> None:
    with pytest.raises(ControlRejected):
        sign(Command(op="status"), "", app_id=APP, now_ms=NOW)
    with pytest.raises(ControlRejected) as exc:
        Verifier("", app_id=APP).verify(_raw(sign(Command(op="status"), SECRET, app_id=APP, now_ms=NOW)), now_ms=NOW)
    assert exc.value.reason == "no_secret"


def test_history_skips_the_time_check_but_not_the_nonce() -> None:
    v = Verifier(SECRET, app_id=APP, window_s=300)
    old = sign(Command(op="dry_run", on=True), SECRET, app_id=APP, now_ms=NOW - 86_400_000)
    assert v.verify(_raw(old), now_ms=NOW, check_time=False).command.on is True
    with pytest.raises(ControlRejected):
        v.verify(_raw(old), now_ms=NOW, check_time=False)


def test_nonces_are_forgotten_after_the_window_and_a_late_replay_is_stale() -> None:
    v = Verifier(SECRET, app_id=APP, window_s=300)
    envs = [sign(Command(op="status"), SECRET, app_id=APP, now_ms=NOW + i * 1000) for i in range(50)]
    for i, env in enumerate(envs):
        v.verify(_raw(env), now_ms=NOW + i * 1000)
    v.verify(_raw(sign(Command(op="status"), SECRET, app_id=APP, now_ms=NOW + 400_000)), now_ms=NOW + 400_000)
    assert len(v._seen) == 1  # bounded: old nonces dropped
    with pytest.raises(ControlRejected) as exc:
        v.verify(_raw(envs[0]), now_ms=NOW + 400_000)
    assert exc.value.reason == "stale"


@pytest.mark.parametrize("bad", [dict(op="promote"), dict(op="set_threshold", value=101), dict(op="dry_run"),
                                 dict(op="allowlist", action="add", cidr="10.0.0.1/8"), dict(op="unblock", target="x"),
                                 dict(op="status", extra=1), dict(op="challenger", fraction=0.5),
                                 dict(op="challenger", version="v2", fraction=1.5),
                                 dict(op="challenger", version="v2", fraction=float("nan")),
                                 dict(op="promote", version="v2", fraction=0.5),
                                 dict(op="label", label="benign"), dict(op="label", target="10.0.0.1"),
                                 dict(op="label", label="Benign", target="10.0.0.1"),
                                 dict(op="label", label="benign", target="not-an-ip"),
                                 dict(op="label", label="x" * 65, event_id="e1"),
                                 dict(op="label", label="benign", event_id=""),
                                 dict(op="unblock", target="10.0.0.1", label="benign"),
                                 dict(op="status", event_id="e1")])
def test_commands_check_their_arguments(bad: dict) -> None:
    with pytest.raises(ValueError):
        Command(**bad)


def test_a_label_names_a_source_or_an_event() -> None:
    assert Command(op="label", label="web_scan", target="203.0.113.9").target == "203.0.113.9"
    assert Command(op="label", label="benign", event_id="3f1c").event_id == "3f1c"


def test_a_challenger_command_starts_splits_or_stops() -> None:
    assert Command(op="challenger", version="v2").fraction is None  # shadow only
    assert Command(op="challenger", version="v2", fraction=0.25).fraction == 0.25
    assert Command(op="challenger").version is None  # stop


def test_canonical_form_is_key_order_independent() -> None:
    assert canonical({"b": 1, "a": [2, {"d": 1, "c": 2}]}) == canonical({"a": [2, {"c": 2, "d": 1}], "b": 1})
    assert canonical({"a": "é"}) == '{"a":"é"}'.encode()


def test_an_envelope_works_only_in_its_deployment_and_on_its_topic() -> None:
    """A captured envelope cannot be replayed into another app id, nor moved between the two signed topics."""
    pause = sign(Command(op="pause_actions"), SECRET, app_id=APP, now_ms=NOW)
    announce = sign(Command(op="announce", version="v2", sha256="a" * 64, feature_schema_version="1"), SECRET,
                    app_id=APP, now_ms=NOW)
    assert (pause.purpose, announce.purpose) == ("control", "models")
    drift = sign(Command(op="retrain", reason="drift"), SECRET, app_id=APP, purpose="models", now_ms=NOW)
    cases = [
        (Verifier(SECRET, app_id="sg-other"), pause, "control", "wrong_deployment"),
        (Verifier(SECRET, app_id=APP), pause, "models", "wrong_topic"),  # moved to models.retrain
        (Verifier(SECRET, app_id=APP), announce, "control", "wrong_topic"),  # moved to ops.control
        (Verifier(SECRET, app_id=APP), drift, "control", "wrong_topic"),
        # signed for the wrong topic by a holder of the secret: the op decides where it may act
        (Verifier(SECRET, app_id=APP), sign(Command(op="pause_actions"), SECRET, app_id=APP, purpose="models",
                                            now_ms=NOW), "models", "wrong_topic"),
        (Verifier(SECRET, app_id=APP), sign(Command(op="announce", version="v2", sha256="a" * 64,
                                                    feature_schema_version="1"), SECRET, app_id=APP,
                                            purpose="control", now_ms=NOW), "control", "wrong_topic"),
    ]
    for verifier, env, purpose, reason in cases:
        with pytest.raises(ControlRejected) as exc:
            verifier.verify(_raw(env), now_ms=NOW, purpose=purpose)
        assert exc.value.reason == reason, (env.command.op, purpose)
    # Rewriting the app id or the purpose breaks the signature.
    for field, value in (("app_id", "sg-other"), ("purpose", "models")):
        d = orjson.loads(_raw(pause))
        d[field] = value
        with pytest.raises(ControlRejected) as exc:
            Verifier(SECRET, app_id=d["app_id"]).verify(orjson.dumps(d), now_ms=NOW, purpose=d["purpose"])
        assert exc.value.reason == "bad_signature"
    # An envelope from before the binding (no app id, no purpose) is refused.
    d = orjson.loads(_raw(pause))
    del d["app_id"], d["purpose"]
    with pytest.raises(ControlRejected) as exc:
        Verifier(SECRET, app_id=APP).verify(orjson.dumps(d), now_ms=NOW)
    assert exc.value.reason == "invalid_command"
    v = Verifier(SECRET, app_id=APP)
    assert v.verify(_raw(pause), now_ms=NOW).command.op == "pause_actions"
    assert v.verify(_raw(announce), now_ms=NOW, purpose="models").command.op == "announce"
    assert v.verify(_raw(drift), now_ms=NOW, purpose="models").command.op == "retrain"
