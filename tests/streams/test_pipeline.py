"""The detection pipeline end to end: real broker, 4 partitions, real worker processes.

One scenario run (generator traffic with every attack, an allowlisted attacker and a
bad-input corpus interleaved) is shared by the accounting, blocking, allowlist, metrics
and dead-letter checks; dry-run, circuit breaker and two-worker runs replay the same input.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from features.extract import ROLE_FEATURES
from features.simulation import ScenarioConfig, attackers, generate, normal_sources
from streams.wire import DeadLetter, HealingAction, ThreatEvent
from tests.streams.conftest import drain, metric_sum, produce_mixed, unique_prefix, wait_pipeline_idle

# One xdist worker runs the tests that share the module's one-worker run (all but the dry run).
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("test_pipeline")]

ALLOWLISTED = "203.0.113.250"
NOW = datetime.now(UTC).replace(microsecond=0)
CFG = ScenarioConfig(seed=21, duration_s=240, start=NOW - timedelta(seconds=300), allowlisted_attacker=ALLOWLISTED)
_FLOW = ('{"ts": %d, "src_ip": "10.9.9.9", "src_port": 40000, "dst_ip": "10.0.0.9", "dst_port": 443, '
         '"protocol": "tcp", "fwd_packets": 10, "fwd_bytes": 1500%s}')
_TS = int((NOW - timedelta(seconds=200)).timestamp() * 1000)

# (topic, raw bytes, expected reason)
BAD_INPUT = [
    ("logs", b'{"ts": 1767600000000, "level": "info", "serv', "bad_json"),
    ("logs", b"\x00\xff\xfe\x9c\x13\x80\x00\x01garbage", "not_utf8"),
    ("logs", b'{"ts": 1, "level": "info", "service": "s", "message": "' + b"a" * (5 * 1024 * 1024) + b'"}', "too_large"),
    ("logs", b'{"ts": NaN, "level": "info", "service": "s"}', "bad_json"),
    ("flows", (_FLOW % (_TS, ', "bwd_packets": 1e999')).encode(), "bad_value"),
    ("flows", (_FLOW % (_TS, "")).replace('"fwd_packets": 10', '"fwd_packets": "ten"').encode(), "wrong_type"),
    ("flows", f'{{"ts": {_TS}, "src_ip": "10.9.9.9", "dst_ip": "10.0.0.9", "dst_port": 443, "protocol": "tcp"}}'.encode(),
     "missing_field"),
    ("flows", (_FLOW % (_TS, "")).replace('"10.9.9.9"', '"999.1.1.1"').encode(), "bad_ip"),
    ("flows", (_FLOW % (int((NOW + timedelta(days=30)).timestamp() * 1000), "")).encode(), "time_out_of_range"),
    ("flows", (_FLOW % (86_400_000, "")).encode(), "time_out_of_range"),
    ("logs", b"[1, 2, 3]", "not_an_object"),
    ("logs", b"", "empty"),
    ("flows", b"1,2,3", "unknown_format"),
]
# Accepted although odd: unknown fields are ignored, not refused.
ODD_BUT_GOOD = [("flows", (_FLOW % (_TS, ', "vlan": 12, "nested": {"a": [1]}')).encode())]


def _inputs(prefix: str) -> tuple[list, list, list, list]:
    """The scenario plus the corpus: (raw events, logs, flows), and `mixed`, all of it in arrival order.

    Bad input is spread through the good; `mixed` interleaves the two topics in generator
    (event-time) order, as live traffic arrives.
    """
    raws = generate(CFG)
    logs, flows, mixed = [], [], []
    bad_every = len(raws) // (len(BAD_INPUT) + 1)
    extra = iter(BAD_INPUT + [(t, b, None) for t, b in ODD_BUT_GOOD])

    def add(kind: str, key: bytes | None, value: bytes) -> None:
        (logs if kind == "logs" else flows).append((key, value))
        mixed.append((f"{prefix}{kind}.raw", key, value))

    for i, r in enumerate(raws):
        add(r.topic, r.actor.encode(), r.payload)
        if i and i % bad_every == 0:
            nxt = next(extra, None)
            if nxt is not None:
                add(nxt[0], None, nxt[1])
    for t, b, *_ in extra:  # whatever did not fit in between
        add(t, None, b)
    return raws, logs, flows, mixed


def _wait_group_stable(bootstrap: str, group: str, members: int, timeout_s: float = 120.0) -> None:
    """Wait until the group is stable with `members` members that all have partitions.

    Traffic then starts with every worker reading: a worker that started alone would read
    minutes of event time ahead before the other takes half of its partitions (README,
    Known limits: arrival order), which is another test than one of equal workers.
    """
    from confluent_kafka import ConsumerGroupState
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            desc = admin.describe_consumer_groups([group])[group].result(10)
            if (desc.state == ConsumerGroupState.STABLE and len(desc.members) == members
                    and all(m.assignment and m.assignment.topic_partitions for m in desc.members)):
                return
        except Exception:  # noqa: BLE001 - not created yet
            pass
        time.sleep(0.5)
    raise AssertionError(f"group {group} not stable with {members} members after {timeout_s:.0f} s")


LIVE_RATE = 1500.0  # messages/s: both runs keep up with it on this machine


class Run:
    """Outputs of one pipeline run over the shared input."""

    def __init__(self, kafka_bootstrap: str, start_worker, *, workers: int = 1, rate: float | None = LIVE_RATE,
                 **settings: object) -> None:
        self.prefix = unique_prefix()
        app_id = self.prefix.rstrip(".")
        base = dict(emit_scored=True, allowlist=f"{ALLOWLISTED}/32", max_blocks_per_minute=100_000)
        base.update(settings)
        self.workers = [start_worker(app_id, self.prefix, ready=False, **base) for _ in range(workers)]
        for w in self.workers:
            w.wait_ready()
        _wait_group_stable(kafka_bootstrap, app_id, workers)
        raws, logs, flows, mixed = _inputs(self.prefix)
        self.produced = len(logs) + len(flows)
        self.good = len(raws) + len(ODD_BUT_GOOD)
        # Both topics interleaved in event-time order: at a steady rate, as live traffic
        # arrives, or (rate None) all at once, a backlog the workers race through.
        produce_mixed(kafka_bootstrap, mixed, rate=rate)

        wait_pipeline_idle(kafka_bootstrap, self.prefix, app_id, 300,
                           lambda: "\n\n".join(w.log_tail() for w in self.workers))
        t = kafka_bootstrap
        # Every stage has committed its input, so every output is on its topic already.
        self.scored = [ThreatEvent.model_validate_json(m.value()) for m in
                       drain(t, f"{self.prefix}events.scored", idle_s=1, until=lambda out: len(out) >= self.good)]
        self.threats = [ThreatEvent.model_validate_json(m.value()) for m in
                        drain(t, f"{self.prefix}threats.enriched", idle_s=1)]
        self.deadletters = [DeadLetter.model_validate_json(m.value()) for m in
                            drain(t, f"{self.prefix}ops.deadletter", idle_s=1)]
        self.actions = [HealingAction.model_validate_json(m.value()) for m in
                        drain(t, f"{self.prefix}actions.healing", idle_s=1)]
        self.metrics = [w.metrics() for w in self.workers]

    def blocked(self) -> set[str]:
        return {a.target for a in self.actions if a.action == "block_ip"}

    def rate_limited(self) -> set[str]:
        return {a.target for a in self.actions if a.action == "rate_limit"}

    def ddos_victims(self) -> set[str]:
        """Where the scenario's DDoS flows went."""
        bots = attackers(CFG)["ddos"]
        return {t.event["dst_ip"] for t in self.scored
                if t.event.get("kind") == "flow" and t.event.get("src_ip") in bots and t.event.get("dst_ip")}


@pytest.fixture(scope="module")
def run(kafka_bootstrap: str, model_registry, request) -> Run:
    # start_worker is function-scoped; build a module-scoped one from the same pieces.
    from tests.streams import conftest as c

    factory = c.start_worker.__wrapped__(kafka_bootstrap, model_registry, request.getfixturevalue("tmp_path_factory").mktemp("run"))
    start = next(factory)
    try:
        yield Run(kafka_bootstrap, start)
    finally:
        next(factory, None)


def test_every_input_is_scored_or_dead_lettered_exactly(run: Run) -> None:
    ids = Counter(t.event_id for t in run.scored)
    assert len(ids) == run.good, f"{len(ids)} distinct scored of {run.good} good inputs"
    # Duplicates are allowed (at-least-once) but must be the same event.
    assert len(run.scored) - len(ids) < run.good * 0.01
    assert len(run.deadletters) == len(BAD_INPUT)
    assert len(ids) + len(run.deadletters) == run.produced


def test_bad_input_gets_the_right_reason_codes(run: Run) -> None:
    assert Counter(d.reason for d in run.deadletters) == Counter(r for _, _, r in BAD_INPUT)
    big = [d for d in run.deadletters if d.reason == "too_large"][0]
    assert big.original_size > 5 * 1024 * 1024 and big.truncated and len(big.original_b64) < 400_000
    assert all(d.source_topic.startswith(run.prefix) and d.source_offset >= 0 for d in run.deadletters)


def test_attackers_are_blocked_and_normal_sources_never(run: Run) -> None:
    truth = attackers(CFG)
    blocked = run.blocked()
    for label in ("brute_force", "port_scan"):
        expected = truth[label] - {ALLOWLISTED}
        missed = expected - blocked
        assert not missed, f"{label}: {len(missed)} of {len(expected)} attackers not blocked: {sorted(missed)[:10]}"
    # The DDoS (134 bots) is answered at its target: one rate limit listing the bots seen as threats
    # so far, no bot blocked. How many were seen by then depends on when the limit's threat is
    # scored against the bots' (measured: 11 and 3 in two runs).
    [victim] = run.ddos_victims()
    [limit] = [a for a in run.actions if a.action == "rate_limit"]
    assert limit.target == victim and limit.sources and set(limit.sources) <= truth["ddos"], limit
    assert not (blocked & truth["ddos"]), f"{len(blocked & truth['ddos'])} DDoS bots blocked one by one"
    normal = normal_sources(CFG)
    # The victim also sends traffic of its own; rate-limiting what reaches it is not acting on it as a source.
    acted = {a.target for a in run.actions if a.action not in ("alert", "rate_limit")}
    assert not (acted & normal), f"normal sources acted on: {sorted(acted & normal)[:10]}"


def test_allowlisted_attacker_is_never_acted_on(run: Run) -> None:
    assert ALLOWLISTED in attackers(CFG)["brute_force"]
    assert any(t.entity.value == ALLOWLISTED for t in run.threats), "the allowlisted attacker should still be detected"
    assert not [a for a in run.actions if a.target == ALLOWLISTED]


def test_actions_are_well_formed_and_unique(run: Run) -> None:
    by_id: dict[str, set[str]] = defaultdict(set)
    for a in run.actions:
        by_id[a.action_id].add(a.model_dump_json())
        assert not a.dry_run
        if a.action == "block_ip":
            assert a.ttl_s == 600 and a.expires_at_ms > a.issued_at_ms and a.threat_event_ids
    assert all(len(v) == 1 for v in by_id.values()), "one action id, two contents"
    blocks = Counter(a.target for a in run.actions if a.action == "block_ip")
    assert max(blocks.values()) == 1, "a target blocked twice while blocked"


def test_threat_events_explain_themselves(run: Run) -> None:
    bf = [t for t in run.threats if t.ml_predicted_label == "brute_force" and t.features.get("src_failed_logins_1m", 0) >= 5]
    assert bf
    t = bf[-1]
    assert t.severity in ("high", "critical") and t.ml_risk_score >= 70
    assert any(t.entity.value in s and any(ch.isdigit() for ch in s) for s in t.ml_reasoning), t.ml_reasoning
    assert t.model.version and t.event["ts"] == t.event_time_ms


def test_metrics_agree_with_the_topics(run: Run) -> None:
    m = run.metrics[0]
    assert metric_sum(m, "streamguard_events_total", outcome="scored") == len(run.scored)
    assert metric_sum(m, "streamguard_events_total", outcome="deadlettered") == len(run.deadletters)
    assert metric_sum(m, "streamguard_events_in_total") == run.produced
    for reason, n in Counter(d.reason for d in run.deadletters).items():
        assert metric_sum(m, "streamguard_deadletters_total", reason=reason) == n
    assert metric_sum(m, "streamguard_threats_total") == len(run.threats)
    assert metric_sum(m, "streamguard_actions_total") == len(run.actions)
    assert metric_sum(m, "streamguard_actions_total", action="block_ip", dry_run="false") == len(run.blocked())
    assert metric_sum(m, "streamguard_scoring_seconds_count") >= 1
    # One worker, no crash, no rebalance: nothing is redelivered, so no window update may be
    # skipped as a duplicate (a destination once dropped flows that arrived out of raw order).
    assert metric_sum(m, "streamguard_window_skips_total", reason="duplicate") == 0
    assert metric_sum(m, "streamguard_end_to_end_lag_seconds_count") == len(run.scored)
    health = json.loads(run.workers[0].get("/health")[1])
    assert health["consuming"] and health["model"]["version"]


@pytest.mark.xdist_group("dry-run")  # a group of its own (a test takes the union of its groups)
def test_dry_run_and_circuit_breaker(kafka_bootstrap: str, start_worker) -> None:
    r = Run(kafka_bootstrap, start_worker, dry_run=True, max_blocks_per_minute=5)
    assert r.actions and all(a.dry_run for a in r.actions)
    blocks = sorted(a.issued_at_ms for a in r.actions if a.action == "block_ip")
    # At most 5 blocking actions in any 60 s of issue time; the rest degrade to alerts.
    for i, t in enumerate(blocks):
        assert sum(1 for u in blocks[i:] if u - t < 60_000) <= 5
    assert any(a.degraded and a.action == "alert" for a in r.actions)


def _why(t: ThreatEvent) -> str:
    f = t.features
    return (f"{t.event.get('src_ip')} ts={t.event_time_ms} {t.ml_predicted_label} risk={t.ml_risk_score} "
            f"dst_srcs_1m={f.get('dst_distinct_srcs_1m')} dst_flows_10s={f.get('dst_flows_10s')}")


def _compare_two_with_one(two: Run, one: Run, *, backlog: bool = False) -> None:
    """Two workers give the same verdicts as one, up to what arrival order may move.

    Reading a `backlog`, arrival order strays further (see the backlog test): a few more
    threats may differ.
    """
    # Event ids name the input position (topic, partition, offset) and the topics differ per
    # run, so compare events by their normalised content.
    def key(t: ThreatEvent) -> str:
        return json.dumps(t.event, sort_keys=True)

    assert Counter(map(key, {t.event_id: t for t in two.scored}.values())) == \
        Counter(map(key, {t.event_id: t for t in one.scored}.values()))
    one_threats = {key(t): t.ml_predicted_label for t in one.threats}
    two_threats = {key(t): t.ml_predicted_label for t in two.threats}
    common = one_threats.keys() & two_threats.keys()
    one_scored = {key(t): t for t in one.scored}
    two_scored = {key(t): t for t in two.scored}
    diff: Counter[str] = Counter()
    for k in (one_threats.keys() ^ two_threats.keys()):
        a, b = one_scored.get(k), two_scored.get(k)
        if a and b:
            diff.update(n for n in a.features if a.features[n] != b.features[n])
    # Measured: 96.5-98.1 % in common before batching (it varies with load). The differences
    # are in windows that cannot count what has not arrived yet: a busy destination fed by
    # several source partitions, and a source whose logs and flows arrive from two topics read
    # at different paces. With two workers they arrive in another order. Arrival order can
    # only move window features: an event's own features must never differ.
    window_features = {n for names in ROLE_FEATURES.values() for n in names}
    assert set(diff) <= window_features, diff.most_common(8)
    print(f"threats in common: {len(common)} of {len(one_threats)} (one) / {len(two_threats)} (two); "
          f"differing features: {diff.most_common(6)}")
    # Backlog: measured 96.4-99.9 % in common with hops held for the event-time floor
    # (94.4-96.0 % before, when each entity applied hops as they arrived).
    assert len(common) >= (0.95 if backlog else 0.94) * max(len(one_threats), len(two_threats))
    # Labels of common threats: measured 98.6-99.x % the same (the same arrival-order effect).
    assert sum(one_threats[k] == two_threats[k] for k in common) >= 0.97 * len(common)
    truth = attackers(CFG)
    for label in ("brute_force", "port_scan"):
        missed = truth[label] - {ALLOWLISTED} - two.blocked()
        assert not missed, f"{label}: not blocked by two workers: {sorted(missed)}\n" + "\n".join(
            f"  {_why(t)}" for t in two.scored if t.event.get("src_ip") in missed)
    assert two.rate_limited() == one.rate_limited() == two.ddos_victims(), "the DDoS victim is rate-limited"
    assert not (two.blocked() & normal_sources(CFG))
    assert two.blocked() == one.blocked()
    # Both workers did part of the work.
    assert all(metric_sum(m, "streamguard_events_in_total") > 0 for m in two.metrics)
    print("hops forced out of order:", [metric_sum(m, "streamguard_hops_forced_total") for m in two.metrics])


def test_two_workers_match_one(kafka_bootstrap: str, start_worker, run: Run) -> None:
    _compare_two_with_one(Run(kafka_bootstrap, start_worker, workers=2), run)


def test_two_workers_reading_a_backlog_match_one(kafka_bootstrap: str, start_worker, run: Run) -> None:
    # Each worker races through its half of the input. A backlog this sparse (~12 events/s
    # per partition) arrives at a destination in chunks of minutes of event time: one
    # internal message can carry a source partition's flows for the whole attack. Applied
    # on arrival, DDoS bots on the side that arrived first were scored against a half-empty
    # window: 0-12 of 134 not blocked. Hops now wait for the event-time floor of both
    # workers (`streams._hold`), so every bot must be blocked, as by one worker.
    # Hops held past `max_hold_s` (wall clock) go out of order; a loaded machine reached the
    # default 10 s and left DDoS bots scored against half-filled windows. The hold's bound is
    # a safety valve, not what this test checks, so it is raised out of a busy machine's reach.
    two = Run(kafka_bootstrap, start_worker, workers=2, rate=None, max_hold_s=300)
    _compare_two_with_one(two, run, backlog=True)
