"""Generated web scanners and the benign robots that are their hard negatives."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from functools import cache

from features.events import LABEL_BENIGN, Event
from features.parsing import parse_line
from features.simulation import ScenarioConfig, attackers, generate
from features.web import is_scanner_agent, is_sensitive_path, is_unusual_method

_CRAWLERS = ("AhrefsBot", "SemrushBot", "Applebot", "Screaming Frog", "W3C-checklink", "SiteAuditBot", "Googlebot",
             "bingbot")


@cache
def _web(seed: int) -> tuple[tuple[str, Event], ...]:
    now = datetime.now(UTC)
    out = []
    for raw in generate(ScenarioConfig(seed=seed, duration_s=900.0)):
        if b"HTTP/1." in raw.payload:
            out.append((raw.label, parse_line(raw.payload, now=now, bounds=None)))  # raises on any unparsed line
    return tuple(out)


def test_every_scanner_is_labelled_and_probes_like_one() -> None:
    for seed in (0, 1, 2, 3):
        cfg = ScenarioConfig(seed=seed, duration_s=900.0)
        scanners = attackers(cfg)["web_scan"]
        by_src: dict[str, list[Event]] = defaultdict(list)
        for label, e in _web(seed):
            if e.src_ip in scanners:
                assert label == "web_scan"
                by_src[e.src_ip].append(e)
        assert set(by_src) == scanners and len(scanners) == 2
        for src, evs in by_src.items():
            fourxx = sum(400 <= (e.status or 0) < 500 for e in evs) / len(evs)
            sensitive = sum(is_sensitive_path(e.path) for e in evs)
            assert fourxx > 0.3, (seed, src, fourxx)  # crawl-and-fuzz scanners get 200s for real pages
            assert sensitive >= 3, (seed, src, sensitive)


def test_benign_robots_walk_many_pages_with_404s_but_never_probe() -> None:
    pages: Counter[str] = Counter()
    missing: Counter[str] = Counter()
    for seed in (0, 1):
        for label, e in _web(seed):
            ua = e.user_agent or ""
            if not any(c in ua for c in _CRAWLERS):
                continue
            assert label == LABEL_BENIGN
            assert not is_sensitive_path(e.path) and not is_scanner_agent(ua) and not is_unusual_method(e.method)
            pages[e.src_ip or ""] += 1
            missing[e.src_ip or ""] += e.status == 404
    # Hard negatives: busy robots that do meet missing pages (the reason a rule wants more than 404s).
    assert max(pages.values()) >= 200 and max(missing.values()) >= 20
