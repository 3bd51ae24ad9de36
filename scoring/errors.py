"""Errors of the scoring layer."""

__all__ = ["ScoringError"]


class ScoringError(Exception):
    """Root of every error raised by `scoring`."""
