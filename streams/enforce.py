"""Enforcement of healing actions on this host: what each action becomes (pure), and an nftables backend.

`plan` decides, from the action alone and the time, what to run: a `block_ip` becomes an
element of an nftables set with the action's remaining lifetime as its timeout (the kernel
expires it), an `unblock_ip` removes the element, and anything else runs nothing. The target
is attacker-influenced text only in the sense that it names an address the pipeline chose;
it is still parsed as an IP address, and commands are argument lists, never a shell line.
"""

from __future__ import annotations

import ipaddress
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from .wire import HealingAction

__all__ = ["NftBackend", "Plan", "plan", "ruleset"]

ADDRESS_ACTIONS = ("block_ip", "unblock_ip")


@dataclass(frozen=True, slots=True)
class Plan:
    """What to do about one action: commands to run (argument lists after the nft command) or why none."""

    outcome: str  # applied (once the commands ran), dry_run, expired, ignored or failed
    detail: str
    commands: list[list[str]] = field(default_factory=list)


def ruleset(table: str) -> str:
    """The nftables script that creates (or keeps) streamguard's table, sets and drop rules; idempotent."""
    return (
        f"table inet {table} {{\n"
        "  set blocked_v4 { type ipv4_addr; flags timeout; }\n"
        "  set blocked_v6 { type ipv6_addr; flags timeout; }\n"
        "  chain input { type filter hook input priority -10; policy accept; }\n"
        "}\n"
        f"flush chain inet {table} input\n"
        f"add rule inet {table} input ip saddr @blocked_v4 drop\n"
        f"add rule inet {table} input ip6 saddr @blocked_v6 drop\n"
    )


def plan(action: HealingAction, now_ms: int, *, table: str) -> Plan:
    """The commands that enforce `action` at `now_ms`, or the reason there are none."""
    if action.action not in ADDRESS_ACTIONS:
        return Plan("ignored", f"{action.action} is not enforced here (only block_ip and unblock_ip)")
    if action.dry_run:
        return Plan("dry_run", "dry run: nothing applied")
    try:
        ip = ipaddress.ip_address(action.target)
    except ValueError:
        return Plan("failed", f"target {action.target[:100]!r} is not an IP address")
    family = "blocked_v4" if ip.version == 4 else "blocked_v6"
    if action.action == "unblock_ip":
        return Plan("applied", f"{ip} unblocked", [["delete", "element", "inet", table, family, f"{{ {ip} }}"]])
    if action.expires_at_ms is not None:
        left_s = -(-(action.expires_at_ms - now_ms) // 1000)  # rounded up: never shorter than decided
        if left_s <= 0:
            return Plan("expired", f"the block expired {(now_ms - action.expires_at_ms) / 1000:.0f} s ago")
    else:
        left_s = action.ttl_s  # 0: no expiry
    if left_s > 0:
        return Plan("applied", f"{ip} blocked for {left_s} s",
                    [["add", "element", "inet", table, family, f"{{ {ip} timeout {left_s}s }}"]])
    return Plan("applied", f"{ip} blocked until unblocked", [["add", "element", "inet", table, family, f"{{ {ip} }}"]])


class NftBackend:
    """Runs nft (or a command in its place, e.g. `sudo nft` or `ip netns exec NS nft`)."""

    def __init__(self, command: str = "nft", timeout_s: float = 10.0) -> None:
        self.argv = shlex.split(command)
        if not self.argv:
            raise ValueError("the nft command is empty")
        self.timeout_s = timeout_s

    def line(self, args: Sequence[str]) -> str:
        """The command as one shell-quoted line (what --print writes and acknowledgements record)."""
        return shlex.join([*self.argv, *args])

    def load(self, script: str) -> None:
        """Run an nft script (`nft -f -`); raises RuntimeError with nft's message if it fails."""
        self._run(["-f", "-"], script)

    def run(self, args: Sequence[str]) -> None:
        """Run one nft command; raises RuntimeError with nft's message if it fails."""
        self._run(list(args), None)

    def _run(self, args: list[str], stdin: str | None) -> None:
        try:
            done = subprocess.run([*self.argv, *args], input=stdin, capture_output=True, text=True,
                                  timeout=self.timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"{self.argv[0]}: {exc}") from exc
        if done.returncode != 0:
            raise RuntimeError((done.stderr or done.stdout).strip()[:500] or f"exit code {done.returncode}")
