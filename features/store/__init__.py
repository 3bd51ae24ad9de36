"""The compiled window store (feature schema 2, stream core v2): see docs/design/core-v2.md.

`WindowStoreV2` keeps every entity's windows in flat arrays and updates and reads them a batch
at a time through a numba kernel. Training (`features.extract.WindowStore`) and the stream's hop
stage (one store per hop partition) both run on it; `features.schema1` is the reference it is
tested against.
"""

from .columns import batch_from_events
from .store import Batch, StoreStats, WindowStoreV2, compile_kernels

__all__ = ["Batch", "StoreStats", "WindowStoreV2", "batch_from_events", "compile_kernels"]
