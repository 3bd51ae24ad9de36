"""Model versions: artifacts, metadata, integrity, activation, rollback, retention.

Two stores behind one interface (`ModelStore`): a local directory (the embedded default)
and MongoDB with GridFS, so workers on several machines share versions.
"""

from .errors import IntegrityError, RegistryError, VersionNotFound
from .local import LocalRegistry
from .mongo import MongoRegistry
from .signature import record_problem, record_signature, signed
from .store import ModelStore, VersionInfo

__all__ = [
    "IntegrityError",
    "LocalRegistry",
    "ModelStore",
    "MongoRegistry",
    "RegistryError",
    "VersionInfo",
    "VersionNotFound",
    "record_problem",
    "record_signature",
    "signed",
]
