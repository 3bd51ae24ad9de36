"""Every patch of faust-streaming and every read of its (and aiokafka's) internals.

`fixes` patches four ways faust 0.15.3 loses input around rebalances and pauses;
`internals` reads the consumer bookkeeping faust keeps private; `watch` and `delivery`
notice what still goes missing and have it fetched again. All of it is written against
the versions in `PINNED`: `apply()` refuses to run on any other, with a clear message,
instead of patching code it was not written for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import metadata

from ..errors import StreamsError
from . import fixes
from .fixes import request_rewind, skipped_unacked

__all__ = ["PINNED", "UnsupportedFaust", "apply", "check_versions", "installed_versions", "request_rewind",
           "skipped_unacked"]

# What `fixes` copies and `internals` reads were written against; pyproject.toml pins the same.
PINNED: Mapping[str, str] = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}


class UnsupportedFaust(StreamsError):
    """The installed faust-streaming or aiokafka is not the version our patches were written for."""


def installed_versions() -> dict[str, str | None]:
    """The installed version of each pinned distribution (None: not installed)."""
    out: dict[str, str | None] = {}
    for name in PINNED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def check_versions(installed: Mapping[str, str | None] | None = None) -> None:
    """Raise `UnsupportedFaust` unless every pinned distribution is installed at its pinned version."""
    installed = installed_versions() if installed is None else installed
    wrong = [f"{name} {installed.get(name) or 'missing'} (need {want})" for name, want in PINNED.items()
             if installed.get(name) != want]
    if wrong:
        raise UnsupportedFaust(
            "the worker patches faust-streaming's consumer and reads its internals, written against "
            f"faust-streaming {PINNED['faust-streaming']} and aiokafka {PINNED['aiokafka']}; installed: "
            f"{', '.join(wrong)}. Install the pinned versions (`make install`), or port streams/faust/ "
            "to the new ones and update PINNED")


def apply(on_skip: Callable[[], None] | None = None) -> None:
    """Check the installed versions, then patch faust once per process (see `fixes`)."""
    check_versions()
    fixes.apply(on_skip)
