"""Errors of the pure feature layer."""

__all__ = ["FeaturesError"]


class FeaturesError(Exception):
    """Root of every error raised by `features`."""
