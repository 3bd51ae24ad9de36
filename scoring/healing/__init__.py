"""Self-healing policy: decides, per threat, which enforcement actions to emit for its target.

The policy is pure: no I/O, no clock. Time is passed in as timezone-aware datetimes and
written on the wire as integer milliseconds since the Unix epoch; the only mutable thing is
a `HealingState`, which `snapshot()`/`restore()` turn into plain JSON-able data.

The rules live in a policy file (TOML, `rules.read_policy_toml`); the built-in one is
`default_policy.toml` (`DEFAULT_RULES`). A label may have several rules, and every one that is met
acts, each on its own target: the threat's source, the destination of its event (`target =
"destination"`: a distributed attack answered at the victim, with the attacking sources listed on
the action), or the account its event names (`target = "user"`). Evidence bounds are window
features of the threat: `min_evidence` all `>=`, `max_evidence` all `<=`. Repeated evidence, not
one high score, is what triggers a block. Built in:

- brute_force, credential_stuffing: block_ip the source at risk 70 with src_failed_logins_10m >= 5;
- password_spraying: block_ip the source at risk 70 with src_distinct_users_10m >= 5, or with
  src_failed_logins_10m >= 5 (log formats without user names show spraying only as failures);
- those three also: lock_account the user at risk 70 with user_distinct_srcs_10m >= 5 and
  user_failed_logins_10m >= 20, for 5 then 15 min;
- port_scan: block_ip the source at risk 70 with src_distinct_dst_ports_1m >= 10;
- ddos: rate_limit the destination at risk 70 with dst_distinct_srcs_1m >= 20; block_ip the
  source at risk 80 with src_flows_1m >= 30, dst_flows_10s >= 10 and dst_distinct_srcs_1m <= 19;
- sql_injection, xss, path_traversal: block_ip the source at risk 80 with src_attack_urls_10m >= 2;
- web_scan: block_ip the source at risk 70 with src_http_4xx_5m >= 20, src_distinct_pages_5m >= 30 and
  src_sensitive_paths_5m >= 3, or with src_http_4xx_5m >= 20 and src_sensitive_paths_5m >= 20;
- benign: alert at risk 70 (anomaly only; never a block); `*` (any other label): alert at 90.

Decision order for one threat (`decide`):

1. a target inside an allowlisted CIDR (IPv4 or IPv6, IPv4-mapped IPv6 included) gets nothing;
2. each rule of the label (`benign`, the label itself, else `*`) that is met acts, on its target
   (an allowlisted target, or an event that names none, gets nothing from that rule);
3. `alert` rules give one alert per (target, label) per 60 s;
4. a blocking rule acts only on a target it can name safely: `block_ip`, `rate_limit` and
   `isolate_host` on a valid `ip` target, `lock_account` on a `user` target; anything else
   (host names, services, unparsable IPs) gets an alert instead — we never block by name;
5. a target already actively blocked gets nothing (the threat is counted on the block);
6. `paused`, or a full circuit breaker (`max_blocks_per_minute` blocking actions in the
   rolling last 60 s), turns the block into an alert with `degraded=True`;
7. otherwise the n-th block of the target within `offence_memory_s` lasts
   `ttl_ladder_s[min(n - 1, len - 1)]` seconds (the rule's ladder if it has one, else the policy's).

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
    TARGETS,
    Action,
    PolicyConfig,
    Rule,
    RuleSet,
    Threat,
    in_allowlist,
    rules_of,
    validate,
)
from .rules import BUILTIN, BUILTIN_TEXT, PolicyRules, parse_policy, read_policy_toml
from .state import HealingState

__all__ = [
    "ACTIONS",
    "BUILTIN",
    "BUILTIN_TEXT",
    "PolicyRules",
    "RuleSet",
    "TARGETS",
    "parse_policy",
    "read_policy_toml",
    "rules_of",
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
