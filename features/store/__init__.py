"""The compiled window store (feature schema 2, stream core v2): see docs/design/core-v2.md.

`WindowStoreV2` keeps every entity's windows in flat arrays and updates and reads them a batch
at a time through a numba kernel. Training (`features.extract.WindowStore`) and the stream's hop
stage (one store per hop partition) both run on it; `features.schema1` is the reference it is
tested against.
"""

from .columns import INPUTS, batch_from_events, batch_from_inputs, check_inputs, kernel_inputs
from .store import Batch, StoreStats, WindowStoreV2, compile_kernels

__all__ = ["INPUTS", "Batch", "StoreStats", "WindowStoreV2", "batch_from_events", "batch_from_inputs", "check_inputs",
           "compile_kernels", "kernel_inputs"]
