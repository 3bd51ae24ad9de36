"""streamguard against fail2ban and CrowdSec on the same public SSH log: which hosts each one would block (`make compare`).

The log is loghub's `Linux_2k.log` (a real server's syslog, copied into `tests/data/loghub/`
with its licence). Its SSH failures are PAM lines of an older format
(`sshd(pam_unix)[pid]: authentication failure; ... rhost=HOST`), from 48 remote hosts, 28 of
which are host names rather than addresses. Per tool:

- reference: hosts with at least 5 failures within 10 minutes, counted from the raw lines
  (what fail2ban's default jail, maxretry 5 and findtime 10 min, is meant to ban);
- fail2ban: `fail2ban-regex` (Debian's package) with its stock `sshd` and `pam-generic`
  filters, and with the old-format regex that `pam-generic.conf` carries as a comment; the
  matches it prints (time, address) go through the default jail's counting (5 in 10 min);
  fail2ban resolves host names by DNS, which these machines have none of;
- streamguard: `streamguard score` of the file with the active model, then the built-in
  healing policy over the threats in event-time order (`scoring.healing.decide`, the
  stream's code), with the event time as the clock.

- CrowdSec: the agent (Debian's package, its bundled hub) replaying the file offline with
  the `sshd-logs` parser and the `ssh-bf` and `ssh-slow-bf` scenarios
  (`tests.benchmarks.crowdsec_replay`); it resolves no host names either.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict, deque
from datetime import UTC, datetime
from pathlib import Path

from scoring.healing import HealingState, PolicyConfig, Threat, decide
from streams.wire import ThreatEvent
from tests.benchmarks import crowdsec_replay

ROOT = Path(__file__).resolve().parents[2]
LOG = ROOT / "tests" / "data" / "loghub" / "Linux_2k.log"
_FAIL = re.compile(r"^(\w{3} +\d+ [\d:]{8}) \S+ sshd\(pam_unix\)\[\d+\]: authentication failure;.* rhost=(\S+)")
_OLD_PAM = (r"^\s*\S+\s+sshd\(pam_unix\)\[\d+\]: authentication failure; logname=\S* uid=\S* euid=\S* tty=\S* "
            r"ruser=\S* rhost=<HOST>(?:\s+user=.*)?\s*$")
MAXRETRY, FINDTIME_S = 5, 600


def jail(hits: list[tuple[float, str]], maxretry: int = MAXRETRY, findtime: float = FINDTIME_S) -> set[str]:
    """Hosts with `maxretry` hits within `findtime` seconds: a fail2ban jail's counting (default: the default jail)."""
    recent: dict[str, deque[float]] = defaultdict(deque)
    banned = set()
    for t, host in sorted(hits):
        q = recent[host]
        q.append(t)
        while q and q[0] <= t - findtime:
            q.popleft()
        if len(q) >= maxretry:
            banned.add(host)
    return banned


def reference(path: Path) -> tuple[set[str], set[str]]:
    """(every host with a failure, hosts with 5 failures within 10 min), from the raw lines."""
    hits = []
    for line in path.read_text(errors="replace").splitlines():
        m = _FAIL.match(line)
        if m:
            t = datetime.strptime(f"2005 {m.group(1)}", "%Y %b %d %H:%M:%S").timestamp()
            hits.append((t, m.group(2)))
    return {h for _, h in hits}, jail(hits)


def fail2ban_hits(path: Path, failregex: str) -> list[tuple[float, str]]:
    """(time, address) of every line one filter (a file under filter.d or a regex) matches, by `fail2ban-regex`."""
    out = subprocess.run(["fail2ban-regex", "-o", "<time> <ip>", str(path), failregex], capture_output=True,
                         text=True, timeout=300, check=False)
    hits = []
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                hits.append((float(parts[0]), parts[1]))
            except ValueError:
                continue
    return hits


def fail2ban(path: Path, failregex: str) -> tuple[int, set[str]]:
    """(lines matched, hosts the default jail would ban) for one filter."""
    hits = fail2ban_hits(path, failregex)
    return len(hits), jail(hits)


def streamguard(path: Path) -> tuple[int, set[str], set[str]]:
    """(threats, hosts blocked, hosts alerted on) by `streamguard score` and the built-in policy."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "threats.jsonl"
        done = subprocess.run([str(ROOT / ".venv" / "bin" / "streamguard"), "score", str(path), "--out", str(out)],
                              capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            sys.exit(f"streamguard score failed (is a model active? `make models`):\n{done.stderr[-2000:]}")
        threats = [ThreatEvent.model_validate_json(line) for line in out.read_text().splitlines() if line.strip()]
    threats.sort(key=lambda t: t.event_time_ms)
    state, cfg = HealingState(), PolicyConfig()
    blocked, alerted = set(), set()
    for t in threats:
        when = datetime.fromtimestamp(t.event_time_ms / 1000, UTC)
        view = Threat(event_id=t.event_id, label=t.ml_predicted_label, risk=t.ml_risk_score,
                      target_type=t.entity.type, target=t.entity.value, evidence=dict(t.features), detected_at=when)
        for a in decide(view, state, cfg, when):
            (blocked if a.action == "block_ip" else alerted if a.action == "alert" else set()).add(a.target)
    return len(threats), blocked, alerted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--log", type=Path, default=LOG)
    ap.add_argument("--json", type=Path, help="Also write the figures here.")
    args = ap.parse_args()
    seen, should = reference(args.log)
    named = {h for h in seen if not re.fullmatch(r"[\d.]+", h)}
    rows = [("reference: 5 failures in 10 min", len(should), len(should - named), len(should & named), "")]
    report = {"log": str(args.log.relative_to(ROOT)), "hosts_with_failures": len(seen),
              "hosts_named": len(named), "reference": sorted(should)}
    if shutil.which("fail2ban-regex"):
        for name, regex in (("fail2ban sshd filter", "/etc/fail2ban/filter.d/sshd.conf"),
                            ("fail2ban pam-generic filter", "/etc/fail2ban/filter.d/pam-generic.conf"),
                            ("fail2ban, pam-generic's old-format regex", _OLD_PAM)):
            matched, banned = fail2ban(args.log, regex)
            rows.append((name, len(banned), len(banned - named), len(banned & named), f"{matched} lines matched"))
            report[name] = sorted(banned)
    else:
        print("fail2ban-regex is not installed (apt-get install fail2ban): fail2ban rows skipped", file=sys.stderr)
    if crowdsec_replay.available():
        bans = crowdsec_replay.replay(args.log, kind="syslog", parsers=crowdsec_replay.SSH_PARSERS,
                                      scenarios=crowdsec_replay.SSH_SCENARIOS)
        banned = set().union(set(), *bans.values())
        rows.append(("CrowdSec ssh-bf, ssh-slow-bf", len(banned), len(banned - named), len(banned & named), ""))
        report["crowdsec"] = sorted(banned)
    else:
        print("crowdsec is not installed (apt-get install crowdsec): CrowdSec row skipped", file=sys.stderr)
    n, blocked, alerted = streamguard(args.log)
    rows.append(("streamguard, built-in policy", len(blocked), len(blocked - named), len(blocked & named),
                 f"{n} threats; alerts on {len(alerted & named)} named hosts"))
    report["streamguard_blocked"], report["streamguard_alerted"] = sorted(blocked), sorted(alerted)
    print(f"{args.log.name}: {len(seen)} hosts with SSH authentication failures, {len(named)} of them host names\n")
    print(f"| {'tool':44} | blocked | addresses | names | notes |")
    print(f"|{'-' * 46}|---------|-----------|-------|-------|")
    for name, total, ips, names, note in rows:
        print(f"| {name:44} | {total:7} | {ips:9} | {names:5} | {note} |")
    missed = (should - named) - blocked
    print(f"\nstreamguard: reference addresses not blocked: {sorted(missed) or 'none'}; blocked beyond the "
          f"(SSH-only) reference: {sorted(blocked - should) or 'none'}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
