"""The window store's maintenance kernels: rebuild (grow, prune, sweep), trim a distinct series, load a snapshot."""

from __future__ import annotations

import numpy as np
from numba import njit

# numba compiles DSLOT into these kernels as a constant and caches them by this file's own
# stamp, not kernel.py's: a change to the series layout must change this file too (feature
# schema 3 added two series; a stale cache read the old 20-entry table out of bounds).
from .kernel import DSLOT, EMPTY, NO_TIME, REMOVED, _bsub, _h, _slot

__all__ = ["load", "rebuild", "trim"]


@njit(cache=True)
def rebuild(bkeys, bidx, pool, vkeys, vown, vlast, wm, alive, ndist, width, keep, cap, bcap, pcap, vcap):
    """New tables of capacity (bcap, vcap) holding only what some read can still reach.

    A bucket is dropped when it is `keep[series]` or more buckets behind its entity's newest
    (the longest span read plus the lateness), or when its entity is no longer `alive`; a
    value likewise by its last sighting. A distinct series over `cap` values keeps its most
    recent ones: the values last seen before the cut are dropped with their histogram counts.
    """
    nb_keys = np.full(bcap, EMPTY, np.int64)
    nb_idx = np.zeros(bcap, np.int32)
    nb_pool = np.zeros((pcap, 8))
    rows = 0
    nv_keys = np.full(vcap, EMPTY, np.int64)
    nv_own = np.zeros(vcap, np.int64)
    nv_last = np.zeros(vcap, np.int64)
    ndist[:, :] = 0
    for j in range(bkeys.shape[0]):
        k = bkeys[j]
        if k == EMPTY:
            continue
        owner = k >> 30
        e, sid = owner // 32, owner % 32
        # A chunk goes when its newest bucket is out of reach (or its entity is gone).
        if not alive[e] or (k & 0x3FFFFFFF) * 8 + 7 <= wm[e] // width[sid] - keep[sid]:
            continue
        row = pool[bidx[j]]
        if not row.any():
            continue
        nj = _slot(nb_keys, k)
        nb_keys[nj] = k
        nb_idx[nj] = rows
        nb_pool[rows, :] = row
        rows += 1
    for j in range(vkeys.shape[0]):
        if vkeys[j] < 0:  # empty, or a value `trim` removed
            continue
        owner = vown[j]
        e, sid = owner // 32, owner % 32
        if not alive[e] or vlast[j] // width[sid] <= wm[e] // width[sid] - keep[sid]:
            continue
        h = vkeys[j]
        m = nv_keys.shape[0] - 1
        nj = _h(h) & m
        while nv_keys[nj] != EMPTY:
            nj = (nj + 1) & m
        nv_keys[nj] = h
        nv_own[nj] = owner
        nv_last[nj] = vlast[j]
        ndist[e, DSLOT[sid]] += 1
    return nb_keys, nb_idx, nb_pool, rows, nv_keys, nv_own, nv_last


@njit(cache=True)
def trim(bkeys, bidx, pool, vkeys, vown, vlast, ndist, width, cap, over):
    """Bring each distinct series `over` lists (over[0] of them, from `apply`) back to its `cap` newest values.

    One pass over the value table gathers every listed series' sightings, a second drops the
    stale ones: a series passes its limit once per `slack` new values, so this stays rare.
    """
    k = over[0]
    owners = over[1:1 + k]
    sizes = np.zeros(k, np.int64)
    for i in range(k):
        owner = owners[i]
        sizes[i] = ndist[owner // 32, DSLOT[owner % 32]]
    starts = np.zeros(k + 1, np.int64)
    starts[1:] = np.cumsum(sizes)
    lasts = np.empty(starts[k], np.int64)
    fill = starts[:k].copy()
    for j in range(vkeys.shape[0]):
        # Only listed series are over the cap: an O(1) test spares the owner search for the rest.
        if vkeys[j] < 0 or ndist[vown[j] // 32, DSLOT[vown[j] % 32]] <= cap:
            continue
        for i in range(k):
            if vown[j] == owners[i] and fill[i] < starts[i + 1]:
                lasts[fill[i]] = vlast[j]
                fill[i] += 1
                break
    cuts = np.empty(k, np.int64)
    for i in range(k):
        got = np.sort(lasts[starts[i]:fill[i]])
        cuts[i] = got[len(got) - cap] if len(got) > cap else NO_TIME
    removed = 0
    for j in range(vkeys.shape[0]):
        if vkeys[j] < 0 or ndist[vown[j] // 32, DSLOT[vown[j] % 32]] <= cap:
            continue
        for i in range(k):
            owner = owners[i]
            if vown[j] == owner and vlast[j] < cuts[i]:
                _bsub(bkeys, bidx, pool, owner, vlast[j] // width[owner % 32])
                vkeys[j] = REMOVED
                ndist[owner // 32, DSLOT[owner % 32]] -= 1
                removed += 1
                break
    over[0] = 0
    return removed


@njit(cache=True)
def load(bk, bv, vk, vo, vl, bcap, pcap, vcap):
    """Tables of capacity (bcap, vcap) and a pool of pcap rows holding a snapshot's live entries."""
    nb_keys = np.full(bcap, EMPTY, np.int64)
    nb_idx = np.zeros(bcap, np.int32)
    nb_pool = np.zeros((pcap, 8))
    for i in range(bk.shape[0]):
        j = _slot(nb_keys, bk[i])
        nb_keys[j] = bk[i]
        nb_idx[j] = i
        nb_pool[i, :] = bv[i, :]
    nv_keys = np.full(vcap, EMPTY, np.int64)
    nv_own = np.zeros(vcap, np.int64)
    nv_last = np.zeros(vcap, np.int64)
    m = vcap - 1
    for i in range(vk.shape[0]):
        j = _h(vk[i]) & m
        while nv_keys[j] != EMPTY:
            j = (j + 1) & m
        nv_keys[j] = vk[i]
        nv_own[j] = vo[i]
        nv_last[j] = vl[i]
    return nb_keys, nb_idx, nb_pool, bk.shape[0], nv_keys, nv_own, nv_last
