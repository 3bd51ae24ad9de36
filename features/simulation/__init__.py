"""Seeded, reproducible generator of realistic labelled security traffic.

It produces the raw bytes shippers would put on the raw Kafka topics: sshd syslog lines,
Apache/nginx combined access-log lines (with a trailing request time), JSON application
log records (topic family "logs") and minimal-schema JSON flow records ("flows").
Ground truth travels only in `RawEvent.label` / `RawEvent.actor`, never in a payload.

Benign traffic comes from a seeded population (internal staff workstations, servers,
external customers, a NAT'd office, search-engine crawlers, a monitoring host, a backup
host, a CI host) and contains deliberate confusers: password typos, health-check floods,
huge backup flows, search queries with quotes/"select", many users behind one IP, service
incidents with bursts of errors, TCP health probes to many ports.

Attacks run over a sub-interval of the run (start in the first half, 60-300 s long):
brute_force, password_spraying, credential_stuffing, port_scan, ddos, sql_injection, xss,
path_traversal. Every event an attacker produces during its attack carries the scenario
label; every other event is benign.

Determinism: each component draws from its own `random.Random` seeded with a string derived
from `ScenarioConfig.seed` (string seeds are hashed with SHA-512, independent of
PYTHONHASHSEED); no global random state, no wall clock, no set iteration.

Pure Python (stdlib only).
"""

from .formats import ATTACK_LABELS, SCENARIO_LABELS, TOPIC_FLOWS, TOPIC_LOGS, RawEvent
from .generate import attackers, generate, iter_generate, normal_sources
from .population import ScenarioConfig

__all__ = [
    "SCENARIO_LABELS",
    "ATTACK_LABELS",
    "TOPIC_LOGS",
    "TOPIC_FLOWS",
    "RawEvent",
    "ScenarioConfig",
    "generate",
    "iter_generate",
    "attackers",
    "normal_sources",
]
