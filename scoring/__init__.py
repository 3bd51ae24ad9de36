"""Models, batch scoring, risk and healing decisions. Imports `features` only."""

from .errors import ScoringError

__all__ = ["ScoringError"]
