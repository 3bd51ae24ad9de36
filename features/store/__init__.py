"""The compiled window store (feature schema 2, stream core v2): see docs/design/core-v2.md.

`WindowStoreV2` keeps every entity's windows in flat arrays and updates and reads them a batch
at a time through a numba kernel. Not wired into the stream or training yet: it is measured
against `features.extract.WindowStore` (tests/features/store/) until both switch together.
"""

from .columns import batch_from_events
from .store import Batch, StoreStats, WindowStoreV2, compile_kernels

__all__ = ["Batch", "StoreStats", "WindowStoreV2", "batch_from_events", "compile_kernels"]
