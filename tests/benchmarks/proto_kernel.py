"""The prototype window kernel of proto_core_v2 (numba, dense rings; memory not bounded)."""

import math

import numpy as np
from numba import njit

EMPTY = -(1 << 62)

@njit(cache=True)
def radd(ring, head, s, b, v):
    h = head[s]
    L = ring.shape[1]
    if b > h:
        if h == EMPTY or b - h >= L:
            ring[s, :] = 0.0
        else:
            for k in range(h + 1, b + 1):
                ring[s, k % L] = 0.0
        head[s] = b
    elif b <= h - L:
        return False
    ring[s, b % L] += v
    return True

@njit(cache=True)
def rsum(ring, head, s, lo, hi):
    h = head[s]
    if h == EMPTY:
        return 0.0
    L = ring.shape[1]
    if hi > h:
        hi = h
    if lo < h - L + 1:
        lo = h - L + 1
    t = 0.0
    for k in range(lo, hi + 1):
        t += ring[s, k % L]
    return t

@njit(cache=True)
def total(ring, head, s, now, span, w):
    return rsum(ring, head, s, (now - span) // w + 1, now // w)

@njit(cache=True)
def mix(a, b):
    x = (a * 0x9E3779B97F4A7C15) ^ (b + 0x632BE59BD9B4E5D) ^ ((b << 13) & 0x7FFFFFFFFFFFFFFF)
    x ^= x >> 31
    x *= 0xBF58476D1CE4E5B9
    x ^= x >> 29
    return x & 0x7FFFFFFFFFFFFFFF

@njit(cache=True)
def dadd(keys, last, hist, head, s, wid, value, ts, w):
    """Distinct value seen at ts: move its last-seen from its old bucket to the new one."""
    k = mix(s * 8 + wid, value) | 1
    m = keys.shape[0] - 1
    j = k & m
    while keys[j] != 0 and keys[j] != k:
        j = (j + 1) & m
    if keys[j] == 0:
        keys[j] = k
        last[j] = ts
        radd(hist, head, s, ts // w, 1.0)
        return
    old = last[j]
    if ts <= old:
        return
    last[j] = ts
    radd(hist, head, s, ts // w, 1.0)
    ob = old // w
    if ob > head[s] - hist.shape[1]:
        hist[s, ob % hist.shape[1]] -= 1.0

@njit(cache=True)
def ring(n, length):
    return np.zeros((n, length)), np.full(n, EMPTY, np.int64)


@njit(cache=True)
def run(ts, ids, fail, status, err, atk, rt, flow, pk, by, hv, n_ids, late, out):
    n = ts.shape[0]
    S = 1000
    M = 60 * S
    # one ring array per window; rows are entity ids (dense: the prototype's memory is not bounded)
    wm = np.full(n_ids, EMPTY, np.int64)
    c10, hc10 = ring(n_ids, 91)  # events, 10 s buckets, 10 min + lateness
    f10, hf10 = ring(n_ids, 91)  # failures
    x4, hx4 = ring(n_ids, 37)  # http_4xx
    er, her = ring(n_ids, 61)  # errors
    au, hau = ring(n_ids, 91)  # attack urls
    fl, hfl = ring(n_ids, 361)  # flows, 1 s buckets
    pkr, hpk = ring(n_ids, 311)  # packets
    byr, hby = ring(n_ids, 311)  # bytes
    rn, hrn = ring(n_ids, 61)  # response times: count, sum, sum of squares
    rs, hrs = ring(n_ids, 61)
    rq, hrq = ring(n_ids, 61)
    du, hdu = ring(n_ids, 91)  # distinct users, 10 min, 10 s last-seen histogram
    dp, hdp = ring(n_ids, 361)  # distinct paths, 1 min, 1 s histogram
    dpo, hdpo = ring(n_ids, 361)  # distinct dst ports
    ddi, hddi = ring(n_ids, 361)  # distinct dst ips
    ds1, hds1 = ring(n_ids, 361)  # dst: distinct srcs, 1 min read
    ds10, hds10 = ring(n_ids, 91)  # user: distinct srcs, 10 min
    cap = 1
    while cap < 4 * n:
        cap *= 2
    keys = np.zeros(cap * 2, np.int64)
    last = np.zeros(cap * 2, np.int64)
    for i in range(n):
        t = ts[i]
        now = t if t > 0 else 0
        for r in range(4):
            s = ids[r, i]
            if s < 0:
                continue
            ok = t >= wm[s] - late if wm[s] != EMPTY else True
            if ok:
                if t > wm[s]:
                    wm[s] = t
                radd(c10, hc10, s, t // (10 * S), 1.0)
                if fail[i]:
                    radd(f10, hf10, s, t // (10 * S), 1.0)
                if status[i] >= 400 and status[i] < 500:
                    radd(x4, hx4, s, t // (10 * S), 1.0)
                elif status[i] >= 500:
                    radd(er, her, s, t // (10 * S), 1.0)
                if err[i]:
                    radd(er, her, s, t // (10 * S), 1.0)
                if atk[i]:
                    radd(au, hau, s, t // (10 * S), 1.0)
                if not math.isnan(rt[i]):
                    radd(rn, hrn, s, t // (10 * S), 1.0)
                    radd(rs, hrs, s, t // (10 * S), rt[i])
                    radd(rq, hrq, s, t // (10 * S), rt[i] * rt[i])
                if flow[i]:
                    radd(fl, hfl, s, t // S, 1.0)
                    radd(pkr, hpk, s, t // S, pk[i])
                    radd(byr, hby, s, t // S, by[i])
                if r == 0:
                    if hv[0, i]:
                        dadd(keys, last, du, hdu, s, 0, hv[0, i], t, 10 * S)
                    if hv[1, i]:
                        dadd(keys, last, dpo, hdpo, s, 1, hv[1, i], t, S)
                    if hv[2, i]:
                        dadd(keys, last, ddi, hddi, s, 2, hv[2, i], t, S)
                    if hv[3, i]:
                        dadd(keys, last, dp, hdp, s, 3, hv[3, i], t, S)
                elif hv[4, i]:
                    if r == 1:
                        dadd(keys, last, ds1, hds1, s, 4, hv[4, i], t, S)
                    else:
                        dadd(keys, last, ds10, hds10, s, 5, hv[4, i], t, 10 * S)
            if r == 0:
                out[i, 0] = total(c10, hc10, s, now, M, 10 * S)
                out[i, 1] = total(f10, hf10, s, now, M, 10 * S)
                out[i, 2] = total(f10, hf10, s, now, 10 * M, 10 * S)
                out[i, 3] = total(du, hdu, s, now, 10 * M, 10 * S)
                out[i, 4] = total(x4, hx4, s, now, M, 10 * S)
                out[i, 5] = total(au, hau, s, now, 10 * M, 10 * S)
                out[i, 6] = total(dp, hdp, s, now, M, S)
                out[i, 7] = total(fl, hfl, s, now, M, S)
                out[i, 8] = total(dpo, hdpo, s, now, M, S)
                out[i, 9] = total(ddi, hddi, s, now, M, S)
            elif r == 1:
                out[i, 10] = total(ds1, hds1, s, now, M, S)
                out[i, 11] = total(fl, hfl, s, now, 10 * S, S)
                out[i, 12] = total(pkr, hpk, s, now, 10 * S, S) / 10.0
                out[i, 13] = total(byr, hby, s, now, 10 * S, S) / 10.0
            elif r == 2:
                out[i, 14] = total(f10, hf10, s, now, 10 * M, 10 * S)
                out[i, 15] = total(ds10, hds10, s, now, 10 * M, 10 * S)
            else:
                out[i, 16] = total(c10, hc10, s, now, M, 10 * S)
                e5 = total(c10, hc10, s, now, 5 * M, 10 * S)
                out[i, 17] = total(er, her, s, now, 5 * M, 10 * S) / e5 if e5 else 0.0
                nn = total(rn, hrn, s, now, 5 * M, 10 * S)
                z = 0.0
                if nn >= 5 and not math.isnan(rt[i]):
                    mean = total(rs, hrs, s, now, 5 * M, 10 * S) / nn
                    var = total(rq, hrq, s, now, 5 * M, 10 * S) / nn - mean * mean
                    std = math.sqrt(var) if var > 0 else 0.0
                    z = (rt[i] - mean) / max(std, 1.0)
                out[i, 18] = max(min(z, 50.0), -50.0)
    return out
