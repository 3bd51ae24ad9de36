"""streamguard against fail2ban and CrowdSec on public web access logs: which hosts each would block (`make compare`).

Per log (combined log format), per tool, the hosts it would block:
- fail2ban: `fail2ban-regex` (Debian's fail2ban) with its stock filters that read access logs
  (`apache-badbots`, `nginx-botsearch`, `nginx-bad-request`, `php-url-fopen`), each through its
  jail's counting as Debian's `jail.conf` sets it (`apache-badbots`: 1 match; the others: the
  default 5 matches within 10 minutes);
- CrowdSec: the agent (Debian's crowdsec, its bundled hub) replaying the file in time-machine
  mode (`crowdsec -dsn file://... -type apache2`) with the `crowdsecurity/apache2` parser and the
  scenarios of `crowdsecurity/base-http-scenarios` (http-probing, http-sensitive-files,
  http-bad-user-agent, http-crawl-non_statics, path traversal, SQLi and XSS probing, backdoor
  attempts, generic brute force, open proxy), in a private configuration and a local API on a
  free port: no central API, no network;
- streamguard: `streamguard score` with the active model, then the built-in healing policy
  over the threats in event-time order (`compare_tools.streamguard`).

Each log's ground truth is in `tests/data/weblogs/LABELS.json` with its provenance: scanners
(20 or more requests probing for what the site does not serve, named by hand after reading
their requests), probes (fewer requests, or internet-wide scanners such as zgrab and masscan),
and benign hosts (named crawlers and monitors, browsers whose requests mostly succeed, and
hosts named in the notes; never one that asked for a sensitive path). A tool is credited with
the scanners and probes it blocks and charged with the benign hosts it blocks. Only the logs
whose licence allows it are in `tests/data/weblogs/`; the others are read from `--more`
(fetch them from the repository and commit in LABELS.json).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from tests.benchmarks import crowdsec_replay
from tests.benchmarks.compare_tools import fail2ban_hits, jail, streamguard

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "weblogs"
# (filter, matches that ban, within seconds): Debian's jail.conf for the filters that read access logs.
_F2B = (("apache-badbots", 1, 600), ("nginx-botsearch", 5, 600), ("nginx-bad-request", 5, 600),
        ("php-url-fopen", 5, 600))


def fail2ban(path: Path) -> dict[str, set[str]]:
    """Hosts each stock access-log filter's jail would ban."""
    return {name: jail(fail2ban_hits(path, f"/etc/fail2ban/filter.d/{name}.conf"), maxretry, findtime)
            for name, maxretry, findtime in _F2B}


def _score(blocked: set[str], truth: dict) -> str:
    scanners, probes, benign = set(truth["scanners"]), set(truth["probes"]), set(truth["benign"])
    return (f"{len(blocked & scanners)} of {len(scanners)} | {len(blocked & probes)} of {len(probes)} | "
            f"{len(blocked & benign)} of {len(benign)} | {len(blocked)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA, help="Folder of the shipped logs and LABELS.json.")
    ap.add_argument("--more", type=Path, default=ROOT / "var" / "reallogs",
                    help="Folder holding the logs LABELS.json names that are not shipped.")
    ap.add_argument("--json", type=Path, help="Also write every tool's blocked hosts here.")
    args = ap.parse_args()
    labels = json.loads((args.data / "LABELS.json").read_text())
    report: dict[str, dict] = {}
    for name, truth in labels.items():
        path = next((d / name for d in (args.data, args.more) if (d / name).is_file()), None)
        if path is None:
            print(f"\n{name}: not here; it is {truth['path']} in github.com/{truth['repo']} at {truth['commit']}")
            continue
        rows: list[tuple[str, set[str]]] = []
        if shutil.which("fail2ban-regex"):
            got = fail2ban(path)
            rows += [(f"fail2ban `{f}`", hosts) for f, hosts in got.items()]
            rows.append(("fail2ban, all four jails", set().union(*got.values())))
        else:
            print("fail2ban-regex is not installed (apt-get install fail2ban): fail2ban rows skipped", file=sys.stderr)
        if crowdsec_replay.available():
            by_scenario = crowdsec_replay.replay(path)
            rows.append(("CrowdSec base HTTP scenarios", set().union(set(), *by_scenario.values())))
            report.setdefault(name, {})["crowdsec_by_scenario"] = {k: sorted(v) for k, v in by_scenario.items()}
        else:
            print("crowdsec is not installed (apt-get install crowdsec): CrowdSec row skipped", file=sys.stderr)
        n, blocked, alerted = streamguard(path)
        rows.append((f"streamguard, built-in policy ({n} threats)", blocked))
        print(f"\n{name}: {len(truth['scanners'])} scanners, {len(truth['probes'])} probes, "
              f"{len(truth['benign'])} known benign hosts\n")
        print("| tool | scanners blocked | probes blocked | benign blocked | hosts blocked |\n|---|---|---|---|---|")
        for tool, hosts in rows:
            print(f"| {tool} | {_score(hosts, truth)} |")
            report.setdefault(name, {})[tool] = sorted(hosts)
        missed = sorted(set(truth["scanners"]) - blocked)
        print(f"\nstreamguard: scanners not blocked: {missed or 'none'}; "
              f"benign blocked: {sorted(blocked & set(truth['benign'])) or 'none'}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
