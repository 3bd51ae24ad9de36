"""Thread pools of the numeric libraries scoring runs on (BLAS, OpenMP), pinned per process."""

from __future__ import annotations

from threadpoolctl import threadpool_info, threadpool_limits

__all__ = ["pin_threads", "pool_threads"]


def pin_threads(n: int) -> dict[str, int]:
    """Limit every BLAS and OpenMP pool loaded so far to `n` threads; returns each pool's threads after."""
    if n < 1:
        raise ValueError(f"thread count must be at least 1, got {n}")
    # Called once at start-up, after numpy and scikit-learn are imported (the pools exist
    # only once their libraries are loaded); the limit then holds for the process's life.
    threadpool_limits(limits=n)
    return pool_threads()


def pool_threads() -> dict[str, int]:
    """Threads of each loaded pool, by `internal_api:library` (what /debug pages and tests read)."""
    return {f"{p['internal_api']}:{p['prefix']}": int(p["num_threads"]) for p in threadpool_info()}
