"""Feature schema (versioned, ordered, named) and extraction from (event, window states)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .entities import ROLES, suspicious_url
from .events import AuthOutcome, Event, EventKind
from .store import WindowStoreV2, batch_from_events
from .web import is_scanner_agent, is_sensitive_path, is_unusual_method
from .windows import WindowConfig

__all__ = [
    "FEATURE_SCHEMA_VERSION",
    "FEATURE_NAMES",
    "EVENT_FEATURES",
    "ROLE_FEATURES",
    "FeatureSpec",
    "FEATURES",
    "event_features",
    "assemble",
    "WindowStore",
]

# Bump whenever a feature is added, removed, reordered or changes meaning: models carry it.
FEATURE_SCHEMA_VERSION = "3"  # 2: the compiled window store (features.store), distinct counts by bucket;
# 3: web probing (sensitive paths, scanner agents, odd methods, 5-min 4xx and distinct pages per source)

_PRIVILEGED = frozenset({"root", "admin", "administrator", "ubuntu", "oracle", "postgres", "test", "guest", "pi"})


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One feature: its name and what a SOC analyst should read it as."""

    name: str
    description: str
    unit: str = ""


_EVENT_SPECS = (
    FeatureSpec("kind_auth", "event is an authentication log line"),
    FeatureSpec("kind_http", "event is a web request"),
    FeatureSpec("kind_app", "event is an application log record"),
    FeatureSpec("kind_flow", "event is a network flow"),
    FeatureSpec("auth_failure", "authentication failed"),
    FeatureSpec("auth_invalid_user", "login tried for a user that does not exist"),
    FeatureSpec("auth_success", "authentication succeeded"),
    FeatureSpec("auth_privileged_user", "the user name is a privileged or default account"),
    FeatureSpec("http_status_class", "HTTP status divided by 100"),
    FeatureSpec("http_post", "request method is POST"),
    FeatureSpec("http_login_path", "request path is a login endpoint"),
    FeatureSpec("path_length", "length of the request path", "characters"),
    FeatureSpec("path_special_chars", "quotes, angle brackets, semicolons and parentheses in the path", "characters"),
    FeatureSpec("path_percent_ratio", "share of %-encoded characters in the path"),
    FeatureSpec("path_sqli_tokens", "SQL-injection tokens in the decoded path"),
    FeatureSpec("path_xss_tokens", "cross-site-scripting tokens in the decoded path"),
    FeatureSpec("path_traversal_tokens", "path-traversal tokens in the decoded path"),
    FeatureSpec("response_time_log", "log(1 + response time in ms)"),
    FeatureSpec("response_bytes_log", "log(1 + response bytes)"),
    FeatureSpec("app_error", "log level is error or worse"),
    FeatureSpec("flow_duration_log", "log(1 + flow duration in ms)"),
    FeatureSpec("flow_fwd_packets_log", "log(1 + forward packets)"),
    FeatureSpec("flow_bwd_packets_log", "log(1 + backward packets)"),
    FeatureSpec("flow_fwd_bytes_log", "log(1 + forward bytes)"),
    FeatureSpec("flow_bwd_bytes_log", "log(1 + backward bytes)"),
    FeatureSpec("flow_bytes_per_packet", "mean bytes per packet", "bytes"),
    FeatureSpec("flow_packets_per_s_log", "log(1 + packets per second in the flow)"),
    FeatureSpec("flow_bwd_fwd_packet_ratio", "backward packets / forward packets"),
    FeatureSpec("flow_syn", "SYN flags in the flow"),
    FeatureSpec("flow_rst", "RST flags in the flow"),
    FeatureSpec("flow_fin", "FIN flags in the flow"),
    FeatureSpec("flow_ack", "ACK flags in the flow"),
    FeatureSpec("flow_psh", "PSH flags in the flow"),
    FeatureSpec("dst_port_well_known", "destination port is below 1024"),
    FeatureSpec("proto_tcp", "protocol is TCP"),
    FeatureSpec("proto_udp", "protocol is UDP"),
    FeatureSpec("http_sensitive_path", "request asks for a secret, repository, backup, server internal or admin page"),
    FeatureSpec("http_scanner_agent", "user agent names a known web scanner or probing tool"),
    FeatureSpec("http_unusual_method", "request method is none a browser, API client or CORS preflight sends"),
)

_ROLE_SPECS: dict[str, tuple[FeatureSpec, ...]] = {
    "src": (
        FeatureSpec("src_events_1m", "events from this source in the last 60 s"),
        FeatureSpec("src_failed_logins_1m", "failed logins from this source in the last 60 s"),
        FeatureSpec("src_failed_logins_10m", "failed logins from this source in the last 10 min"),
        FeatureSpec("src_distinct_users_10m", "distinct user names tried by this source in 10 min"),
        FeatureSpec("src_http_4xx_1m", "4xx answers to this source in the last 60 s"),
        FeatureSpec("src_attack_urls_10m", "requests with attack tokens from this source in 10 min"),
        FeatureSpec("src_distinct_paths_1m", "distinct request paths from this source in 60 s"),
        FeatureSpec("src_flows_1m", "flows from this source in the last 60 s"),
        FeatureSpec("src_distinct_dst_ports_1m", "distinct destination ports from this source in 60 s"),
        FeatureSpec("src_distinct_dst_ips_1m", "distinct destinations of this source in 60 s"),
        FeatureSpec("src_http_4xx_5m", "4xx answers to this source in the last 5 min"),
        FeatureSpec("src_distinct_pages_5m", "distinct non-static request paths from this source in 5 min"),
        FeatureSpec("src_sensitive_paths_5m", "requests for sensitive files or admin pages from this source in 5 min"),
    ),
    "dst": (
        FeatureSpec("dst_distinct_srcs_1m", "distinct sources sending flows to this destination in 60 s"),
        FeatureSpec("dst_flows_10s", "flows to this destination in the last 10 s"),
        FeatureSpec("dst_packets_per_s_10s", "packets per second to this destination over 10 s"),
        FeatureSpec("dst_bytes_per_s_10s", "bytes per second to this destination over 10 s"),
    ),
    "user": (
        FeatureSpec("user_failed_logins_10m", "failed logins for this user in 10 min"),
        FeatureSpec("user_distinct_srcs_10m", "distinct sources logging in as this user in 10 min"),
    ),
    "service": (
        FeatureSpec("service_events_1m", "events of this service in the last 60 s"),
        FeatureSpec("service_error_rate_5m", "share of this service's events that were errors over 5 min"),
        FeatureSpec("service_rt_zscore", "this response time in standard deviations above the service's 5-min mean"),
    ),
}

FEATURES: tuple[FeatureSpec, ...] = _EVENT_SPECS + tuple(s for r in ROLES for s in _ROLE_SPECS[r])
FEATURE_NAMES: tuple[str, ...] = tuple(s.name for s in FEATURES)
EVENT_FEATURES: tuple[str, ...] = tuple(s.name for s in _EVENT_SPECS)
ROLE_FEATURES: dict[str, tuple[str, ...]] = {r: tuple(s.name for s in _ROLE_SPECS[r]) for r in ROLES}


def _log1p(x: float | int | None) -> float:
    return math.log1p(max(float(x or 0), 0.0))


def event_features(event: Event) -> list[float]:
    """The features of the event alone, in `EVENT_FEATURES` order."""
    kind = event.kind
    outcome = event.auth_outcome
    path = event.path or ""
    sqli, xss, trav = suspicious_url(path) if path else (0, 0, 0)
    fwd_p = event.fwd_packets or 0
    bwd_p = event.bwd_packets or 0
    packets = fwd_p + bwd_p
    total_bytes = (event.fwd_bytes or 0) + (event.bwd_bytes or 0)
    duration = event.duration_s or 0.0
    is_flow = kind is EventKind.FLOW
    return [
        float(kind is EventKind.AUTH),
        float(kind is EventKind.HTTP),
        float(kind is EventKind.APP),
        float(is_flow),
        float(outcome in (AuthOutcome.FAILURE, AuthOutcome.INVALID_USER)),
        float(outcome is AuthOutcome.INVALID_USER),
        float(outcome is AuthOutcome.SUCCESS),
        float((event.user or "").lower() in _PRIVILEGED),
        (event.status or 0) / 100.0,
        float(event.method == "POST"),
        float("login" in path.lower() or "signin" in path.lower()),
        float(len(path)),
        float(sum(path.count(c) for c in "'\"<>;()")),
        (path.count("%") * 3 / len(path)) if path else 0.0,
        float(sqli),
        float(xss),
        float(trav),
        _log1p(event.response_time_ms),
        _log1p(event.response_bytes),
        float(event.level in ("error", "critical", "fatal")),
        _log1p(duration * 1000.0) if is_flow else 0.0,
        _log1p(fwd_p),
        _log1p(bwd_p),
        _log1p(event.fwd_bytes),
        _log1p(event.bwd_bytes),
        (total_bytes / packets) if packets else 0.0,
        _log1p(packets / duration) if duration > 0 else _log1p(packets),
        (bwd_p / fwd_p) if fwd_p else 0.0,
        float(event.syn_count or 0),
        float(event.rst_count or 0),
        float(event.fin_count or 0),
        float(event.ack_count or 0),
        float(event.psh_count or 0),
        float(is_flow and event.dst_port is not None and event.dst_port < 1024),
        float(event.protocol == 6),
        float(event.protocol == 17),
        float(is_sensitive_path(path)),
        float(is_scanner_agent(event.user_agent)),
        float(is_unusual_method(event.method)),
    ]


def assemble(event_part: list[float], parts: Mapping[str, list[float]]) -> list[float]:
    """The full vector in `FEATURE_NAMES` order from the event part and each role's part."""
    out = list(event_part)
    for role in ROLES:
        part = parts.get(role)
        out.extend(part if part is not None else [0.0] * len(ROLE_FEATURES[role]))
    return out


class WindowStore:
    """Entity windows for offline use (training, `streamguard score`): the stream's compiled store, fed events."""

    def __init__(self, cfg: WindowConfig | None = None, *, batch: int = 4096, sweep_every: int = 50_000) -> None:
        self.cfg = cfg or WindowConfig()
        self.store = WindowStoreV2(self.cfg)
        self.batch = batch
        self.sweep_every = sweep_every
        self._since_sweep = 0

    def observe(self, event: Event) -> list[float]:
        """Count the event in every entity it belongs to and return its full feature vector."""
        return self.observe_all([event])[0]

    def observe_all(self, events: Iterable[Event]) -> list[list[float]]:
        """Feature vectors for events in the given order (sort by time first for event-time semantics).

        Batches change nothing: the kernel reads each event's windows right after counting it.
        """
        events = list(events)
        out: list[list[float]] = []
        for lo in range(0, len(events), self.batch):
            part = events[lo:lo + self.batch]
            roles = self.store.observe(batch_from_events(part)).tolist()
            out.extend(event_features(e) + r for e, r in zip(part, roles, strict=True))
            self._since_sweep += len(part)
            if self._since_sweep >= self.sweep_every:
                self.sweep(part[-1].ts_ms)
        return out

    def sweep(self, now_ms: int) -> int:
        """Drop idle entities and every bucket no read can reach; returns how many entities were dropped."""
        self._since_sweep = 0
        return self.store.sweep(now_ms)
