"""Errors of the model registry."""

__all__ = ["RegistryError"]


class RegistryError(Exception):
    """Root of every error raised by `registry`."""
