"""Model versions: artifacts, metadata, integrity, activation, rollback, retention."""

from .errors import IntegrityError, RegistryError, VersionNotFound
from .local import LocalRegistry, VersionInfo

__all__ = ["IntegrityError", "LocalRegistry", "RegistryError", "VersionInfo", "VersionNotFound"]
