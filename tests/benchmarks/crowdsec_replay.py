"""CrowdSec's agent replaying a log file offline (time-machine mode): which hosts its scenarios ban.

Debian's crowdsec package ships the hub (parsers, scenarios, their data files) under
/usr/share/crowdsec; this runs the agent with a private configuration in a temporary
folder, a local API on a free port, no central API and no network.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

HUB = Path("/usr/share/crowdsec/hub")
_CS_DATA = Path("/usr/share/crowdsec/data")
HTTP_SCENARIOS = ("http-crawl-non_statics", "http-probing", "http-bad-user-agent", "http-path-traversal-probing",
                  "http-sensitive-files", "http-sqli-probing", "http-xss-probing", "http-backdoors-attempts",
                  "http-generic-bf", "http-open-proxy")
HTTP_PARSERS = (("s00-raw", "syslog-logs"), ("s01-parse", "apache2-logs"), ("s02-enrich", "dateparse-enrich"),
                ("s02-enrich", "http-logs"))
SSH_PARSERS = (("s00-raw", "syslog-logs"), ("s01-parse", "sshd-logs"), ("s02-enrich", "dateparse-enrich"))
SSH_SCENARIOS = ("ssh-bf", "ssh-slow-bf")
_BAN = re.compile(r"\) (\S+) by ip \S+ : .* ban on Ip ([0-9A-Fa-f:.]+)")


def available() -> bool:
    """crowdsec, cscli and the bundled hub are installed."""
    return bool(shutil.which("crowdsec") and shutil.which("cscli") and HUB.is_dir())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def replay(path: Path, *, kind: str = "apache2", parsers: tuple[tuple[str, str], ...] = HTTP_PARSERS,
           scenarios: tuple[str, ...] = HTTP_SCENARIOS) -> dict[str, set[str]]:
    """Hosts CrowdSec bans on a replay of the file, by scenario (default: its base HTTP scenarios)."""
    with tempfile.TemporaryDirectory() as tmp:
        etc, data = Path(tmp) / "etc", Path(tmp) / "data"
        for stage in ("s00-raw", "s01-parse", "s02-enrich"):
            (etc / "parsers" / stage).mkdir(parents=True)
        (etc / "scenarios").mkdir()
        shutil.copytree(_CS_DATA, data)
        shutil.copy(data / "path_traversal.txt", data / "http_path_traversal.txt")  # the name the scenario reads
        shutil.copytree("/etc/crowdsec/patterns", etc / "patterns")
        for stage, name in parsers:
            (etc / "parsers" / stage / f"{name}.yaml").symlink_to(HUB / "parsers" / stage / "crowdsecurity" /
                                                                 f"{name}.yaml")
        for name in scenarios:
            (etc / "scenarios" / f"{name}.yaml").symlink_to(HUB / "scenarios" / "crowdsecurity" / f"{name}.yaml")
        shutil.copy("/etc/crowdsec/profiles.yaml", etc / "profiles.yaml")
        (etc / "simulation.yaml").write_text("simulation: false\n")
        (etc / "acquis.yaml").write_text("\n")
        config = etc / "config.yaml"
        config.write_text(f"""common: {{daemonize: false, log_media: stdout, log_level: info, working_dir: .}}
config_paths: {{config_dir: {etc}/, data_dir: {data}/, simulation_path: {etc}/simulation.yaml,
  hub_dir: {HUB}/, index_path: {HUB}/.index.json}}
crowdsec_service: {{acquisition_path: {etc}/acquis.yaml, parser_routines: 1}}
db_config: {{type: sqlite, db_path: {data}/crowdsec.db}}
prometheus: {{enabled: false}}
api:
  client: {{credentials_path: {etc}/local_api_credentials.yaml}}
  server: {{listen_uri: "127.0.0.1:{_free_port()}", profiles_path: {etc}/profiles.yaml}}
""")
        subprocess.run(["cscli", "-c", str(config), "machines", "add", "replay", "--auto", "-f",
                        str(etc / "local_api_credentials.yaml")], capture_output=True, timeout=120, check=True)
        done = subprocess.run(["crowdsec", "-c", str(config), "-dsn", f"file://{path.resolve()}", "-type", kind,
                               "-no-capi"], capture_output=True, text=True, timeout=1800, check=False)
    bans: dict[str, set[str]] = defaultdict(set)
    for line in (done.stdout + done.stderr).splitlines():
        m = _BAN.search(line)
        if m:
            bans[m.group(1).split("/")[-1]].add(m.group(2))
    return dict(bans)
