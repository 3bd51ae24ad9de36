"""Errors of the scoring layer."""

from __future__ import annotations

__all__ = ["ScoringError", "BundleError", "ConformanceError"]


class ScoringError(Exception):
    """Root of every error raised by `scoring`."""


class BundleError(ScoringError):
    """A model bundle cannot be loaded or used; names the bundle and version."""

    def __init__(self, message: str, *, name: str | None = None, version: str | None = None) -> None:
        self.name = name
        self.version = version
        where = f" ({name} {version})" if name or version else ""
        super().__init__(message + where)


class ConformanceError(ScoringError):
    """A bundle failed the conformance check; `failures` lists every failed check."""

    def __init__(self, failures: list[str], *, version: str | None = None) -> None:
        self.failures = failures
        self.version = version
        super().__init__(f"bundle {version or '?'} failed conformance: " + "; ".join(failures))
