"""Errors of the model registry."""

from __future__ import annotations

__all__ = ["RegistryError", "VersionNotFound", "IntegrityError"]


class RegistryError(Exception):
    """Root of every error raised by `registry`; carries the model name and version when known."""

    def __init__(self, message: str, *, name: str | None = None, version: str | None = None) -> None:
        self.name = name
        self.version = version
        super().__init__(message)


class VersionNotFound(RegistryError):
    """No such model or version in the store."""


class IntegrityError(RegistryError):
    """An artifact's bytes do not match the sha256 recorded for it."""
