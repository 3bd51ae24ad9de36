"""The active bundle of a registry, for the offline benchmarks."""

from __future__ import annotations

import sys
from pathlib import Path

from registry import LocalRegistry
from scoring.bundle import ModelBundle, load_bundle


def active_bundle() -> ModelBundle | None:
    """The registry's (argv[1], default var/registry) active bundle; None, said on stderr, if there is none."""
    reg = LocalRegistry(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("var/registry"))
    info = reg.active("streamguard")
    if info is None:
        print("no active model: run `make models` first", file=sys.stderr)
        return None
    return load_bundle(reg.artifact_path(info.name, info.version), info.sha256)
