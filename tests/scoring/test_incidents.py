"""Incidents group one attack's threats: opened once, updated at most every N seconds, closed when quiet."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from scoring.errors import ScoringError
from scoring.healing import HealingState, PolicyConfig, Threat, decide, expire
from scoring.incidents import Incident, IncidentBook, IncidentConfig, incident_id

T0 = 1_700_000_000_000
CFG = IncidentConfig(update_every_ms=30_000, quiet_ms=300_000, max_open=100)


def threat(n: int, *, target: str = "203.0.113.7", label: str = "brute_force", risk: int = 80,
           failed: float = 1.0) -> Threat:
    return Threat(event_id=f"ev-{target}-{label}-{n}", label=label, risk=risk, target_type="ip", target=target,
                  evidence={"src_failed_logins_10m": failed}, detected_at=datetime.fromtimestamp(T0 / 1000, UTC))


def test_one_attack_is_one_incident_that_counts_every_threat() -> None:
    book = IncidentBook(CFG)
    for n in range(50):
        book.observe(threat(n, risk=70 + n % 20), [], T0 + n * 1000, position=n, event_time_ms=T0 - 5000 + n)
    (inc,) = list(book)
    assert inc.threat_count == 50 and inc.max_risk == 89 and inc.severity == "high"
    assert inc.first_seen_ms == T0 - 5000 and inc.last_seen_ms == T0 - 5000 + 49
    assert inc.incident_id == incident_id(("ip", "203.0.113.7", "brute_force"), "ev-203.0.113.7-brute_force-0")
    assert len(inc.event_ids) == CFG.keep_event_ids and inc.last_event_id == "ev-203.0.113.7-brute_force-49"


def test_labels_and_targets_are_separate_incidents() -> None:
    book = IncidentBook(CFG)
    book.observe(threat(1), [], T0)
    book.observe(threat(2, label="port_scan"), [], T0)
    book.observe(threat(3, target="198.51.100.9"), [], T0)
    assert len(book) == 3
    assert len({inc.incident_id for inc in book}) == 3


def test_records_go_out_when_opened_then_at_most_every_interval_then_when_closed() -> None:
    book = IncidentBook(CFG)
    book.observe(threat(0), [], T0, position=0)
    (first,) = book.due(T0, close=True)
    assert first.status == "open" and first.threat_count == 1
    emitted = [first.revision]
    for s in range(1, 100):  # one threat a second for 99 s
        now = T0 + s * 1000
        book.observe(threat(s), [], now, position=s)
        emitted += [inc.revision for inc in book.due(now, close=True)]
    # at 30 s, 60 s and 90 s: never more often than the interval, and every change eventually
    assert len(emitted) == 4
    assert book.due(T0 + 100_000, close=True) == []  # changed since 90 s but within the interval
    (later,) = book.due(T0 + 120_000, close=True)
    later = later.record()  # the book goes on changing its incidents
    assert later["threat_count"] == 100
    assert book.due(T0 + 99_000 + 299_999, close=True) == []
    (closed,) = book.due(T0 + 99_000 + 300_000, close=True)
    assert closed.status == "closed" and closed.closed_at_ms == T0 + 399_000 and closed.revision > later["revision"]
    assert len(book) == 0 and book.due(T0 + 500_000, close=True) == []
    # a threat after it closed opens a new incident with another id
    book.observe(threat(200), [], T0 + 500_000, position=200)
    (reopened,) = book.due(T0 + 500_000, close=False)
    assert reopened.incident_id != closed.incident_id and reopened.threat_count == 1


def test_without_close_nothing_closes() -> None:
    book = IncidentBook(CFG)
    book.observe(threat(0), [], T0)
    book.due(T0, close=False)
    assert book.due(T0 + 10 * CFG.quiet_ms, close=False) == [] and len(book) == 1


def test_a_redelivered_position_is_not_counted_again() -> None:
    book = IncidentBook(CFG)
    for n in range(10):
        assert book.observe(threat(n), [], T0, position=100 + n) is not None
    for n in range(5, 10):  # the batch's second half again, after a crash
        assert book.observe(threat(n), [], T0, position=100 + n) is None
    assert next(iter(book)).threat_count == 10


def test_actions_are_listed_on_the_incident_and_unblocks_on_the_targets_incidents() -> None:
    policy, state, book = PolicyConfig(), HealingState(), IncidentBook(CFG)
    now = datetime.fromtimestamp(T0 / 1000, UTC)
    t = threat(1, failed=9.0)
    actions = decide(t, state, policy, now)
    assert [a.action for a in actions] == ["block_ip"]
    book.observe(t, actions, T0)
    book.observe(threat(2, label="port_scan"), [], T0)
    later = datetime.fromtimestamp((T0 + 10 * 3600_000) / 1000, UTC)
    lifted = expire(state, policy, later)
    assert [a.action for a in lifted] == ["unblock_ip"]
    book.note_actions(lifted, T0 + 1000)
    incidents = {inc.label: inc for inc in book}
    assert [a["action"] for a in incidents["brute_force"].actions] == ["block_ip", "unblock_ip"]
    assert [a["action"] for a in incidents["port_scan"].actions] == ["unblock_ip"]
    assert incidents["brute_force"].actions[0]["action_id"] == actions[0].action_id


def test_open_incidents_are_capped_by_closing_the_longest_quiet() -> None:
    book = IncidentBook(IncidentConfig(max_open=3))
    for n in range(3):
        book.observe(threat(n, target=f"10.0.0.{n}"), [], T0 + n)
    book.due(T0 + 3, close=False)
    book.observe(threat(0, target="10.0.0.0"), [], T0 + 10)  # 10.0.0.0 is busy again: 10.0.0.1 is the quietest
    book.observe(threat(9, target="10.0.0.9"), [], T0 + 11)
    assert len(book) == 3
    out = book.due(T0 + 12, close=False)
    closed = [inc for inc in out if inc.status == "closed"]
    assert [inc.target for inc in closed] == ["10.0.0.1"]
    assert {inc.target for inc in book} == {"10.0.0.0", "10.0.0.2", "10.0.0.9"}


def test_hostile_volume_of_new_targets_stays_bounded() -> None:
    book = IncidentBook(IncidentConfig(max_open=1000))
    for n in range(20_000):
        book.observe(threat(n, target=f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", label=f"l{n % 7}"), [],
                     T0 + n, position=n)
        if n % 500 == 0:
            book.due(T0 + n, close=True)
    assert len(book) == 1000
    assert len(book.due(T0 + 20_000, close=True)) <= 20_000


def test_snapshot_restores_an_equal_incident_whose_record_goes_out_again() -> None:
    book = IncidentBook(CFG)
    book.observe(threat(1), [], T0, model_version="v1")
    book.observe(threat(2, risk=95), [], T0 + 5, model_version="v2")
    (inc,) = book.due(T0 + 5, close=False)
    data = json.loads(json.dumps(inc.snapshot()))
    again = Incident.restore(data)
    assert again == inc and again.model_versions == ["v1", "v2"] and again.severity == "critical"
    fresh = IncidentBook(CFG)
    fresh.add_restored(again)
    fresh.finish_restore()
    (out,) = fresh.due(T0 + 6, close=False)  # possibly lost in a crash: it goes out again
    assert out.record() == inc.record()
    assert "emitted_revision" not in out.record()


@pytest.mark.parametrize("bad", [{}, {"incident_id": 1}, {**Incident(
    "x", "ip", "1.2.3.4", "l", "open", 0, 0, None, 0, 0, 0, 1, 1, "low", {}, [], "e").snapshot(),
    "evidence": {"a": "not a number"}}])
def test_a_malformed_snapshot_is_a_scoring_error(bad: dict) -> None:
    with pytest.raises(ScoringError):
        Incident.restore(bad)


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ScoringError):
        IncidentConfig(quiet_ms=0)


def test_a_ddos_is_one_incident_at_its_target_listing_the_bots_and_the_rate_limit() -> None:
    book, state, cfg = IncidentBook(CFG), HealingState(), PolicyConfig()
    victim = "10.0.0.5"
    for n in range(150):
        bot = f"198.51.100.{n % 250 + 1}" if n < 120 else f"198.51.101.{n}"
        t = Threat(event_id=f"flood-{n}", label="ddos", risk=90, target_type="ip", target=bot,
                   evidence={"dst_distinct_srcs_1m": float(min(n + 1, 60))}, subjects={"dst_ip": victim},
                   detected_at=datetime.fromtimestamp((T0 + n * 100) / 1000, UTC))
        book.observe(t, decide(t, state, cfg, t.detected_at), T0 + n * 100, position=n)
    (inc,) = list(book)
    assert (inc.target_type, inc.target, inc.label) == ("ip", victim, "ddos") and inc.threat_count == 150
    assert len(inc.sources) == CFG.keep_sources and inc.sources[:2] == ["198.51.100.1", "198.51.100.2"]
    assert [a["action"] for a in inc.actions] == ["rate_limit"]
    # A ddos threat whose event names no destination stays with its source; other labels are never regrouped.
    book.observe(threat(1, label="ddos"), [], T0 + 20_000)
    book.observe(Threat(event_id="bf", label="brute_force", risk=90, target_type="ip", target="192.0.2.1",
                        evidence={}, subjects={"dst_ip": victim}, detected_at=datetime.fromtimestamp(T0 / 1000, UTC)),
                 [], T0 + 20_000)
    assert {(i.target, i.label, tuple(i.sources)) for i in book if i.target != victim} == {
        ("203.0.113.7", "ddos", ()), ("192.0.2.1", "brute_force", ())}
    assert Incident.restore(json.loads(json.dumps(inc.snapshot()))).sources == inc.sources
