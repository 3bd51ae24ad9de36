"""The `streamguard` command line: one Typer app, commands grouped by module."""

from __future__ import annotations

# ruff: noqa: I001 - the imports register the commands, and `--help` lists them in this order.
from ..errors import StreamsError
from . import _models  # noqa: F401 - registers the model commands
from . import _schemas  # noqa: F401 - registers the schemas command
from . import _tail  # noqa: F401 - registers the tail command
from . import _enforce  # noqa: F401 - registers the enforce command
from . import _webhook  # noqa: F401 - registers the webhook command
from . import _investigate  # noqa: F401 - registers incidents, threats, actions, blocks and audit
from . import _traffic  # noqa: F401 - registers the produce and simulate commands
from . import _replay  # noqa: F401 - registers the replay command
from . import _control  # noqa: F401 - registers the control commands
from . import _retrain  # noqa: F401 - registers the retrain-worker command
from . import _demo  # noqa: F401 - registers the demo command
from . import _worker  # noqa: F401 - registers the worker command
from ._app import app, console

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point: errors of ours become one clear line and exit code 2."""
    from registry.errors import RegistryError
    from scoring.errors import ScoringError

    try:
        app(standalone_mode=True)
    except (StreamsError, ScoringError, RegistryError) as exc:
        console.print(f"[red]error[/] {exc}")
        raise SystemExit(2) from None
