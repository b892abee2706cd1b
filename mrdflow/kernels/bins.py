"""Per-bin statistics over runs of consecutive events (time QC), and a distinct-value count of a sorted column.

Both read the event matrix in place (C or Fortran order) and make no column copies.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


#: numpy's pairwise-summation block (``PW_BLOCKSIZE`` in its loops_utils.h)
_PW_BLOCK = 128


@njit(cache=True)
def _block_sum(a, lo, n):
    # a leaf of numpy's pairwise_sum_DOUBLE: n <= 128 values, 8 partial sums (n >= 8) or a plain loop
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    stop = n - n % 8
    while i < stop:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(cache=True)
def _pairwise_sum(a, lo, n):
    """numpy's ``pairwise_sum_DOUBLE`` over ``a[lo:lo + n]``, operation for operation (blocks of <= 128 values
    with 8 partial sums; larger stretches split in halves at a multiple of 8, left sum + right sum), so the
    float64 sum is bit-identical. Iterative (an explicit stack): numba's cache does not keep recursive functions."""
    if n <= _PW_BLOCK:
        return _block_sum(a, lo, n)
    f_lo = np.empty(64, dtype=np.int64)
    f_n = np.empty(64, dtype=np.int64)
    f_state = np.empty(64, dtype=np.int64)
    vals = np.empty(64)
    sp, vp = 0, 0
    f_lo[0], f_n[0], f_state[0] = lo, n, 0
    sp = 1
    while sp > 0:
        t = sp - 1
        m = f_n[t]
        if m <= _PW_BLOCK:
            vals[vp] = _block_sum(a, f_lo[t], m)
            vp += 1
            sp -= 1
            continue
        n2 = m // 2
        n2 -= n2 % 8
        if f_state[t] == 0:
            f_state[t] = 1
            f_lo[sp], f_n[sp], f_state[sp] = f_lo[t], n2, 0
            sp += 1
        elif f_state[t] == 1:
            f_state[t] = 2
            f_lo[sp], f_n[sp], f_state[sp] = f_lo[t] + n2, m - n2, 0
            sp += 1
        else:
            vals[vp - 2] = vals[vp - 2] + vals[vp - 1]
            vp -= 1
            sp -= 1
    return vals[0]


@njit(cache=True, inline="always")
def _clip(v, lo, hi):
    # numpy's float clip: MIN(MAX(v, lo), hi) with MAX(x, y) = x if isnan(x) else (x if x > y else y)
    if v == v:
        v = v if v > lo else lo
    if v == v:
        v = v if v < hi else hi
    return v


@njit(cache=True, parallel=True)
def _clipped_bin_means(events, cols, edges, order, lo, hi, out):
    n_bins = edges.shape[0] - 1
    k = cols.shape[0]
    use_order = order.shape[0] > 0
    for b in prange(n_bins):
        a, e = edges[b], edges[b + 1]
        buf = np.empty(e - a)
        for j in range(k):
            c = cols[j]
            lj, hj = lo[j], hi[j]
            if use_order:
                for r in range(a, e):
                    buf[r - a] = _clip(np.float64(events[order[r], c]), lj, hj)
            else:
                col = events[a:e, c]  # a view indexed from 0: the loop vectorises (contiguous if column-major)
                for r in range(e - a):
                    buf[r] = _clip(np.float64(col[r]), lj, hj)
            # numpy's add.reduce: its identity 0.0 plus the pairwise sum of the whole contiguous column
            out[b, j] = (0.0 + _pairwise_sum(buf, 0, e - a)) / (e - a)


def clipped_bin_means(events: np.ndarray, cols: np.ndarray, edges: np.ndarray, order: np.ndarray | None,
                      lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Mean of each column's values clipped to ``[lo, hi]``, per bin of consecutive (time-ordered) events.

    Bit for bit ``np.clip(events[rows][:, cols], lo, hi).mean(axis=0, dtype=np.float64)``: the column selection
    makes each column of the block contiguous, so numpy sums it with its pairwise summation, reproduced here.

    Parameters
    ----------
    events : (n, p) float32 or float64 event matrix (C or Fortran order; not modified).
    cols : (k,) column indices.
    edges : (n_bins + 1,) int64 bin boundaries, non-decreasing, in ``[0, n]``, each bin non-empty.
    order : (n,) int64 time order of the events (bin rows are ``order[edges[b]:edges[b+1]]``), or None when the
        events are already in time order.
    lo, hi : (k,) float64 clip limits per column.

    Returns
    -------
    (n_bins, k) float64 bin means.
    """
    if not isinstance(events, np.ndarray) or events.ndim != 2 or events.dtype not in (np.float32, np.float64):
        raise ValueError(f"clipped_bin_means: events must be a 2-D float32/float64 array, found "
                         f"{getattr(events, 'dtype', type(events))} {getattr(events, 'shape', '')}")
    n, p = events.shape
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    edges = np.ascontiguousarray(edges, dtype=np.int64)
    lo = np.ascontiguousarray(lo, dtype=np.float64)
    hi = np.ascontiguousarray(hi, dtype=np.float64)
    if cols.ndim != 1 or lo.shape != cols.shape or hi.shape != cols.shape:
        raise ValueError(f"clipped_bin_means: cols, lo and hi must be 1-D of one length, found {cols.shape}, "
                         f"{lo.shape}, {hi.shape}")
    if cols.size and (cols.min() < 0 or cols.max() >= p):
        raise ValueError(f"clipped_bin_means: a column is outside the matrix's {p} columns: {cols.tolist()}")
    if edges.ndim != 1 or edges.size < 1 or edges[0] < 0 or edges[-1] > n or np.any(np.diff(edges) <= 0):
        raise ValueError("clipped_bin_means: edges must be increasing bin boundaries within [0, n_events]")
    if order is None:
        order = np.zeros(0, dtype=np.int64)
    else:
        order = np.ascontiguousarray(order, dtype=np.int64)
        if order.shape != (n,):
            raise ValueError(f"clipped_bin_means: order must have shape ({n},), found {order.shape}")
    out = np.empty((edges.size - 1, cols.size), dtype=np.float64)
    if out.size:
        _clipped_bin_means(events, cols, edges, order, lo, hi, out)
    return out


#: consecutive pairs per parallel work item of :func:`_sorted_distinct`
_DISTINCT_BLOCK = 1 << 16


@njit(cache=True, parallel=True)
def _sorted_distinct(values):
    # blocks of consecutive pairs in parallel, each counting its value changes and its out-of-order (or NaN) pairs
    # without an early exit, so the loop vectorises
    n_pairs = values.shape[0] - 1
    nb = (n_pairs + _DISTINCT_BLOCK - 1) // _DISTINCT_BLOCK
    changes = np.zeros(nb, dtype=np.int64)
    bad = np.zeros(nb, dtype=np.int64)
    for b in prange(nb):
        lo = b * _DISTINCT_BLOCK
        hi = min(n_pairs, lo + _DISTINCT_BLOCK)
        left = values[lo:hi]
        right = values[lo + 1:hi + 1]
        c = 0
        d = 0
        for i in range(hi - lo):
            d += not left[i] <= right[i]  # out of order, or NaN
            c += left[i] != right[i]
        changes[b] = c
        bad[b] = d
    if bad.sum():
        return -1
    return 1 + changes.sum()


def sorted_distinct(values: np.ndarray) -> int:
    """Number of distinct values of a non-decreasing 1-D array (one pass, no copy); -1 when it is not in
    non-decreasing order (or holds NaN), 0 when empty."""
    if not isinstance(values, np.ndarray) or values.ndim != 1:
        raise ValueError("sorted_distinct: expected a 1-D array")
    if values.size == 0:
        return 0
    return int(_sorted_distinct(values))
