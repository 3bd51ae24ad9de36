"""Self-healing policy: decides, per threat, which enforcement actions to emit for its target.

The policy is pure: no I/O, no clock. Time is passed in as timezone-aware datetimes and
written on the wire as integer milliseconds since the Unix epoch; the only mutable thing is
a `HealingState`, which `snapshot()`/`restore()` turn into plain JSON-able data.

Default rules (`DEFAULT_RULES`; evidence thresholds are all met with `>=` from the threat's
window features — repeated evidence, not one high score, is what triggers a block):

| label               | action   | min_risk | min_evidence                      |
|---------------------|----------|----------|-----------------------------------|
| brute_force         | block_ip | 70       | src_failed_logins_10m >= 5        |
| password_spraying   | block_ip | 70       | src_distinct_users_10m >= 5       |
| credential_stuffing | block_ip | 70       | src_failed_logins_10m >= 5        |
| port_scan           | block_ip | 70       | src_distinct_dst_ports_1m >= 10   |
| ddos                | block_ip | 70       | dst_distinct_srcs_1m >= 20        |
| sql_injection       | block_ip | 80       | src_attack_urls_10m >= 2          |
| xss                 | block_ip | 80       | src_attack_urls_10m >= 2          |
| path_traversal      | block_ip | 80       | src_attack_urls_10m >= 2          |
| benign              | alert    | 70       | (anomaly-only high risk; never a block) |
| `*` (any other)     | alert    | 90       | (unknown labels are never blocked)      |

Decision order for one threat (`decide`):

1. a target inside an allowlisted CIDR (IPv4 or IPv6, IPv4-mapped IPv6 included) gets nothing;
2. the label's rule (`benign`, the label itself, else `*`) must be met: risk and all evidence;
3. `alert` rules give one alert per (target, label) per 60 s;
4. a blocking rule acts only on a target it can name safely: `block_ip`, `rate_limit` and
   `isolate_host` on a valid `ip` target, `lock_account` on a `user` target; anything else
   (host names, services, unparsable IPs) gets an alert instead — we never block by name;
5. a target already actively blocked gets nothing (the threat is counted on the block);
6. `paused`, or a full circuit breaker (`max_blocks_per_minute` blocking actions in the
   rolling last 60 s), turns the block into an alert with `degraded=True`;
7. otherwise the n-th block of the target within `offence_memory_s` lasts
   `ttl_ladder_s[min(n - 1, len - 1)]` seconds.

`expire()` lifts every block whose expiry has passed (and, early, every block whose target
has since been allowlisted) with `unblock_ip`, the one undo action of every blocking action;
call it on a timer. A block that expired but was not yet lifted no longer de-duplicates: a
new offence issues a fresh block that supersedes it (so enforcers should upsert per target).
Dry-run policies produce exactly the same actions, flagged `dry_run`; a dry-run block never
suppresses a live one. Blocking actions count towards the circuit breaker, dry run or not.
"""

from .decide import decide, expire, release
from .policy import (
    ACTIONS,
    ANY_LABEL,
    BENIGN,
    BLOCKING,
    DEFAULT_RULES,
    ISSUED_MEMORY,
    Action,
    PolicyConfig,
    Rule,
    Threat,
    in_allowlist,
    validate,
)
from .state import HealingState

__all__ = [
    "ACTIONS",
    "ANY_LABEL",
    "BENIGN",
    "BLOCKING",
    "DEFAULT_RULES",
    "ISSUED_MEMORY",
    "Action",
    "HealingState",
    "PolicyConfig",
    "Rule",
    "Threat",
    "decide",
    "expire",
    "release",
    "in_allowlist",
    "validate",
]
