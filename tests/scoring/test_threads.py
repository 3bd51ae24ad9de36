"""Pinning the numeric libraries' thread pools."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from scoring.threads import pin_threads, pool_threads


def test_pin_threads_limits_every_loaded_pool_and_says_so() -> None:
    np.dot(np.ones((8, 8)), np.ones((8, 8)))  # BLAS loaded
    before = threadpool_info()
    assert before, "numpy's BLAS pool should be visible to threadpoolctl"
    try:
        after = pin_threads(1)
        assert after and set(after.values()) == {1}
        assert pool_threads() == after
    finally:
        # The limit is process-wide: give the other tests in this process their pools back.
        for pool in before:
            threadpool_limits(limits=pool["num_threads"], user_api=pool["user_api"])


def test_pin_threads_refuses_zero() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        pin_threads(0)
