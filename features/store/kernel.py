"""The compiled window kernel: a batch of event columns in, every role's window features out (numba).

State is a handful of flat arrays (see `features.store.store`), so the store can snapshot them
and the kernel can run without Python objects:
- an entity table (role, watermark, last seen, late events, distinct values per series, and
  a bit per series it ever wrote: most entities write a few of the 22, and the others read 0);
- a bucket table: open addressing, key `(entity * 32 + series) << 30 | bucket // 8` -> a row
  of a dense pool holding 8 consecutive buckets, so a read of 60 buckets probes 8 or 9 entries
  and an empty slot costs 12 bytes, not a row's 64. Counters keep
  sums per bucket; distinct series keep how many values were last seen in each bucket (a
  last-seen histogram), so a read sums at most the buckets of its span;
- a value table: open addressing, (owner = entity * 32 + series, 64-bit value hash) -> last seen.

Series ids are positions in `layout.SERIES`; this module spells them as constants below.
`maintain.py` holds the kernels that rebuild, trim and load these tables.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

EMPTY = -1
REMOVED = -2  # a value slot `trim` emptied: probes go on past it, the next rebuild drops it
NO_TIME = -(1 << 62)
_MASK = (1 << 63) - 1

# Series ids (layout.SERIES order).
SRC_EVENTS, SRC_FAILURES, SRC_4XX, SRC_ATTACK, SRC_FLOWS = 0, 1, 2, 3, 4
SRC_USERS, SRC_PATHS, SRC_PORTS, SRC_DIPS = 5, 6, 7, 8
DST_SRCS, DST_FLOWS, DST_PACKETS, DST_BYTES = 9, 10, 11, 12
USER_FAILURES, USER_SRCS = 13, 14
SVC_EVENTS, SVC_ERRORS, SVC_RT_N, SVC_RT_S, SVC_RT_SS = 15, 16, 17, 18, 19
SRC_SENSITIVE, SRC_PAGES = 20, 21
# Distinct series -> column of the entity table's per-series value counts.
DSLOT = np.array([-1, -1, -1, -1, -1, 0, 1, 2, 3, 0, -1, -1, -1, -1, 0, -1, -1, -1, -1, -1, -1, 4], dtype=np.int64)
N_DSLOT = 5  # columns of the entity table's distinct counts
READ_ONLY, LATE = 1, 2  # `apply`'s per-event flags
N_OUT = 22  # role features: src 13, dst 4, user 2, service 3 (extract.ROLE_FEATURES order)


@njit(cache=True, inline="always")
def _h(key):
    """splitmix64's finaliser: table keys differ in their high bits, slots are the low bits."""
    x = np.uint64(key)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return np.int64(x & np.uint64(_MASK))


@njit(cache=True, inline="always")
def _slot(keys, key):
    """The slot holding `key`, or the empty slot where it would go (linear probing)."""
    m = keys.shape[0] - 1
    j = _h(key) & m
    while keys[j] != EMPTY and keys[j] != key:
        j = (j + 1) & m
    return j


@njit(cache=True, inline="always")
def _badd(bkeys, bidx, pool, pn, used, owner, bucket, v):
    """Add v to one bucket of a series; 1 if that took a new chunk entry."""
    used[owner // 32] |= 1 << (owner % 32)  # reads of series an entity never wrote are skipped
    key = (owner << 30) | (bucket >> 3)
    j = _slot(bkeys, key)
    new = 0
    if bkeys[j] == EMPTY:
        bkeys[j] = key
        bidx[j] = pn[0]  # the next free pool row: the caller keeps the pool large enough
        pn[0] += 1
        new = 1
    pool[bidx[j], bucket & 7] += v
    return new


@njit(cache=True, inline="always")
def _bslot(bkeys, key):
    """The slot of a chunk key, or -1."""
    m = bkeys.shape[0] - 1
    j = _h(key) & m
    while True:
        k = bkeys[j]
        if k == key:
            return j
        if k == EMPTY:
            return -1
        j = (j + 1) & m


@njit(cache=True, inline="always")
def _sum(bkeys, bidx, pool, owner, lo, hi):
    """Sum of the buckets lo..hi (inclusive) of one series: one probe per chunk of 8 buckets."""
    if lo < 0:
        lo = 0
    t = 0.0
    for c in range(lo >> 3, (hi >> 3) + 1):
        j = _bslot(bkeys, (owner << 30) | c)
        if j < 0:
            continue
        a = max(lo - c * 8, 0)
        b = min(hi - c * 8, 7)
        for k in range(a, b + 1):
            t += pool[bidx[j], k]
    return t


@njit(cache=True, inline="always")
def _total(bkeys, bidx, pool, used, eid, sid, width, now, span):
    """A series' sum over the buckets overlapping (now - span, now]."""
    if not (used[eid] >> sid) & 1:
        return 0.0
    return _sum(bkeys, bidx, pool, eid * 32 + sid, (now - span) // width + 1, now // width)


@njit(cache=True, inline="always")
def _dtotal(bkeys, bidx, pool, used, eid, sid, width, now, top, span):
    """A distinct series' values last seen in (now - span, top]: `top` is the entity's latest event time.

    For an event in order, top == now. For one older than its entity's latest, the values seen
    after it are counted too (a value seen before and after it has only its later sighting).
    """
    if not (used[eid] >> sid) & 1:
        return 0.0
    return _sum(bkeys, bidx, pool, eid * 32 + sid, (now - span) // width + 1, top // width)


@njit(cache=True, inline="always")
def _vhash(owner, value):
    x = (owner * 0x9E3779B97F4A7C15) ^ value
    x ^= (x >> 31) & _MASK
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 29
    return x & _MASK


@njit(cache=True)
def _distinct(bkeys, bidx, pool, pn, used, vkeys, vown, vlast, ndist, eid, sid, width, value, ts, limit, over):
    """Record a distinct value seen at ts: move its last sighting to ts's bucket. Returns new entries."""
    owner = eid * 32 + sid
    h = _vhash(owner, value)
    m = vkeys.shape[0] - 1
    j = _h(h) & m
    while vkeys[j] != EMPTY and not (vkeys[j] == h and vown[j] == owner):
        j = (j + 1) & m
    if vkeys[j] == EMPTY:
        vkeys[j] = h
        vown[j] = owner
        vlast[j] = ts
        ndist[eid, DSLOT[sid]] += 1
        if ndist[eid, DSLOT[sid]] == limit + 1 and over[0] < over.shape[0] - 1:
            # Listed once, when it passes the limit; a full list waits for the next batch's trim.
            over[0] += 1
            over[over[0]] = owner
        return 1 + _badd(bkeys, bidx, pool, pn, used, owner, ts // width, 1.0)
    old = vlast[j]
    if ts <= old or ts // width == old // width:
        if ts > old:
            vlast[j] = ts
        return 0
    vlast[j] = ts
    new = _badd(bkeys, bidx, pool, pn, used, owner, ts // width, 1.0)
    _bsub(bkeys, bidx, pool, owner, old // width)
    return new


@njit(cache=True, inline="always")
def _bsub(bkeys, bidx, pool, owner, bucket):
    """Take one value's last sighting out of a histogram bucket (if that bucket is still kept)."""
    j = _bslot(bkeys, (owner << 30) | (bucket >> 3))
    if j >= 0:
        pool[bidx[j], bucket & 7] -= 1.0


@njit(cache=True)
def apply(ts, ids, fail, status, err, atk, sens, rt, flow, pk, by, hv, flag,
          role, wm, last_seen, late, ndist, used, bkeys, bidx, pool, pn, vkeys, vown, vlast,
          width, lateness, cap, limit, over, out):
    """Observe each event in order in its entities' windows, then read its role features into `out`.

    `flag[i]` is READ_ONLY for an event to read without counting (a redelivery); the kernel sets
    it to LATE for an event too late to count in some entity. Returns (new table entries, late
    observations). The caller keeps both tables under half full; a distinct series passing
    `limit` values is listed in `over` (count in over[0]) for `trim`.
    """
    n = ts.shape[0]
    entries = 0
    n_late = 0
    fcap = float(cap)
    for i in range(n):
        t = ts[i]
        now = t if t > 0 else 0
        for r in range(4):
            e = ids[r, i]
            if e < 0:
                continue
            role[e] = r
            counted = wm[e] == NO_TIME or t >= wm[e] - lateness
            if flag[i] == READ_ONLY:
                pass
            elif not counted:
                late[e] += 1
                n_late += 1
                flag[i] = LATE
            else:
                if t > wm[e]:
                    wm[e] = t
                if t > last_seen[e]:
                    last_seen[e] = t
                if r == 0:
                    entries += _badd(bkeys, bidx, pool, pn, used, e * 32 + SRC_EVENTS, t // width[SRC_EVENTS], 1.0)
                    if fail[i]:
                        entries += _badd(bkeys, bidx, pool, pn, used,
                                         e * 32 + SRC_FAILURES, t // width[SRC_FAILURES], 1.0)
                    if 400 <= status[i] < 500:
                        entries += _badd(bkeys, bidx, pool, pn, used, e * 32 + SRC_4XX, t // width[SRC_4XX], 1.0)
                    if sens[i]:
                        entries += _badd(bkeys, bidx, pool, pn, used,
                                         e * 32 + SRC_SENSITIVE, t // width[SRC_SENSITIVE], 1.0)
                    if hv[5, i] != 0:
                        entries += _distinct(bkeys, bidx, pool, pn, used, vkeys, vown, vlast, ndist, e, SRC_PAGES,
                                             width[SRC_PAGES], hv[5, i], t, limit, over)
                    if atk[i]:
                        entries += _badd(bkeys, bidx, pool, pn, used, e * 32 + SRC_ATTACK, t // width[SRC_ATTACK], 1.0)
                    if flow[i]:
                        entries += _badd(bkeys, bidx, pool, pn, used, e * 32 + SRC_FLOWS, t // width[SRC_FLOWS], 1.0)
                    if hv[0, i] != 0:
                        entries += _distinct(bkeys, bidx, pool, pn, used, vkeys, vown, vlast, ndist, e, SRC_USERS,
                                             width[SRC_USERS], hv[0, i], t, limit, over)
                    if hv[3, i] != 0:
                        entries += _distinct(bkeys, bidx, pool, pn, used, vkeys, vown, vlast, ndist, e, SRC_PATHS,
                                             width[SRC_PATHS], hv[3, i], t, limit, over)
                    if hv[1, i] != 0:
                        entries += _distinct(bkeys, bidx, pool, pn, used, vkeys, vown, vlast, ndist, e, SRC_PORTS,
                                             width[SRC_PORTS], hv[1, i], t, limit, over)
                    if hv[2, i] != 0:
                        entries += _distinct(bkeys, bidx, pool, pn, used, vkeys, vown, vlast, ndist, e, SRC_DIPS,
                                             width[SRC_DIPS], hv[2, i], t, limit, over)
                elif r == 1:
                    if flow[i]:
                        entries += _badd(bkeys, bidx, pool, pn, used, e * 32 + DST_FLOWS, t // width[DST_FLOWS], 1.0)
                        entries += _badd(bkeys, bidx, pool, pn, used,
                                         e * 32 + DST_PACKETS, t // width[DST_PACKETS], pk[i])
                        entries += _badd(bkeys, bidx, pool, pn, used, e * 32 + DST_BYTES, t // width[DST_BYTES], by[i])
                    if hv[4, i] != 0:
                        entries += _distinct(bkeys, bidx, pool, pn, used, vkeys, vown, vlast, ndist, e, DST_SRCS,
                                             width[DST_SRCS], hv[4, i], t, limit, over)
                elif r == 2:
                    if fail[i]:
                        entries += _badd(bkeys, bidx, pool, pn, used,
                                         e * 32 + USER_FAILURES, t // width[USER_FAILURES], 1.0)
                    if hv[4, i] != 0:
                        entries += _distinct(bkeys, bidx, pool, pn, used, vkeys, vown, vlast, ndist, e, USER_SRCS,
                                             width[USER_SRCS], hv[4, i], t, limit, over)
                else:
                    w = width[SVC_EVENTS]
                    entries += _badd(bkeys, bidx, pool, pn, used, e * 32 + SVC_EVENTS, t // w, 1.0)
                    if status[i] >= 500:
                        entries += _badd(bkeys, bidx, pool, pn, used, e * 32 + SVC_ERRORS, t // w, 1.0)
                    if err[i]:
                        entries += _badd(bkeys, bidx, pool, pn, used, e * 32 + SVC_ERRORS, t // w, 1.0)
                    if not math.isnan(rt[i]):
                        entries += _badd(bkeys, bidx, pool, pn, used, e * 32 + SVC_RT_N, t // w, 1.0)
                        entries += _badd(bkeys, bidx, pool, pn, used, e * 32 + SVC_RT_S, t // w, rt[i])
                        entries += _badd(bkeys, bidx, pool, pn, used, e * 32 + SVC_RT_SS, t // w, rt[i] * rt[i])
            # A distinct series keeps each value's last sighting only: read as of an earlier time
            # than its entity's latest event, it would miss every value seen since, its own too.
            top = wm[e] if wm[e] > now else now
            _read(i, r, e, now, top, rt, bkeys, bidx, pool, used, width, fcap, out)
    return entries, n_late


@njit(cache=True, inline="always")
def _read(i, r, e, now, top, rt, bkeys, bidx, pool, used, width, fcap, out):
    s, m = 1000, 60_000
    if r == 0:
        out[i, 0] = _total(bkeys, bidx, pool, used, e, SRC_EVENTS, width[SRC_EVENTS], now, m)
        out[i, 1] = _total(bkeys, bidx, pool, used, e, SRC_FAILURES, width[SRC_FAILURES], now, m)
        out[i, 2] = _total(bkeys, bidx, pool, used, e, SRC_FAILURES, width[SRC_FAILURES], now, 10 * m)
        out[i, 3] = min(_dtotal(bkeys, bidx, pool, used, e, SRC_USERS, width[SRC_USERS], now, top, 10 * m), fcap)
        out[i, 4] = _total(bkeys, bidx, pool, used, e, SRC_4XX, width[SRC_4XX], now, m)
        out[i, 5] = _total(bkeys, bidx, pool, used, e, SRC_ATTACK, width[SRC_ATTACK], now, 10 * m)
        out[i, 6] = min(_dtotal(bkeys, bidx, pool, used, e, SRC_PATHS, width[SRC_PATHS], now, top, m), fcap)
        out[i, 7] = _total(bkeys, bidx, pool, used, e, SRC_FLOWS, width[SRC_FLOWS], now, m)
        out[i, 8] = min(_dtotal(bkeys, bidx, pool, used, e, SRC_PORTS, width[SRC_PORTS], now, top, m), fcap)
        out[i, 9] = min(_dtotal(bkeys, bidx, pool, used, e, SRC_DIPS, width[SRC_DIPS], now, top, m), fcap)
        out[i, 10] = _total(bkeys, bidx, pool, used, e, SRC_4XX, width[SRC_4XX], now, 5 * m)
        out[i, 11] = min(_dtotal(bkeys, bidx, pool, used, e, SRC_PAGES, width[SRC_PAGES], now, top, 5 * m), fcap)
        out[i, 12] = _total(bkeys, bidx, pool, used, e, SRC_SENSITIVE, width[SRC_SENSITIVE], now, 5 * m)
    elif r == 1:
        out[i, 13] = min(_dtotal(bkeys, bidx, pool, used, e, DST_SRCS, width[DST_SRCS], now, top, m), fcap)
        out[i, 14] = _total(bkeys, bidx, pool, used, e, DST_FLOWS, width[DST_FLOWS], now, 10 * s)
        out[i, 15] = _total(bkeys, bidx, pool, used, e, DST_PACKETS, width[DST_PACKETS], now, 10 * s) / 10.0
        out[i, 16] = _total(bkeys, bidx, pool, used, e, DST_BYTES, width[DST_BYTES], now, 10 * s) / 10.0
    elif r == 2:
        out[i, 17] = _total(bkeys, bidx, pool, used, e, USER_FAILURES, width[USER_FAILURES], now, 10 * m)
        out[i, 18] = min(_dtotal(bkeys, bidx, pool, used, e, USER_SRCS, width[USER_SRCS], now, top, 10 * m), fcap)
    else:
        w = width[SVC_EVENTS]
        out[i, 19] = _total(bkeys, bidx, pool, used, e, SVC_EVENTS, w, now, m)
        e5 = _total(bkeys, bidx, pool, used, e, SVC_EVENTS, w, now, 5 * m)
        out[i, 20] = _total(bkeys, bidx, pool, used, e, SVC_ERRORS, w, now, 5 * m) / e5 if e5 else 0.0
        z = 0.0
        nn = _total(bkeys, bidx, pool, used, e, SVC_RT_N, w, now, 5 * m)
        if nn >= 5 and not math.isnan(rt[i]):
            mean = _total(bkeys, bidx, pool, used, e, SVC_RT_S, w, now, 5 * m) / nn
            var = _total(bkeys, bidx, pool, used, e, SVC_RT_SS, w, now, 5 * m) / nn - mean * mean
            if math.isfinite(mean) and math.isfinite(var):
                z = (rt[i] - mean) / max(math.sqrt(max(var, 0.0)), 1.0)
        out[i, 21] = max(min(z, 50.0), -50.0)
