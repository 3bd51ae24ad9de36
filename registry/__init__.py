"""Model versions: artifacts, metadata, integrity, activation, rollback, retention."""

from .errors import RegistryError

__all__ = ["RegistryError"]
