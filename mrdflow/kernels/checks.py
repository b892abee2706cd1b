"""Data checks over a whole event matrix in one pass, without temporaries."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_BLOCK = 65536


@njit(cache=True, parallel=True)
def _count_nonfinite_blocks(events, tops, block, out, at_top):
    n, p = events.shape
    nb = out.shape[0]
    for b in prange(nb):  # each block counts into its own row of out / at_top (no shared counter)
        lo = b * block
        hi = min(n, lo + block)
        for j in range(p):  # column by column within the block: contiguous for a column-major matrix, and a
            c = 0          # row-major block (<= 3.4 MB) stays in cache across its columns
            t = 0
            top = tops[j]
            col = events[lo:hi, j]  # (a view: indexing it directly lets the loop vectorise)
            for i in range(col.shape[0]):
                v = col[i]
                c += not np.isfinite(v)
                t += v >= top
            out[b, j] += c
            at_top[b, j] += t


def count_nonfinite(events: np.ndarray, tops: np.ndarray | None = None):
    """Number of NaN / ±inf values in each column of a float32 (n_events, n_channels) C- or F-contiguous matrix.

    Returns an int64 array of shape (n_channels,); with ``tops`` (one value per column, float32-comparable),
    also, from the same pass, the number of values ``>= tops[j]`` in each column (e.g. events at the top of a
    detector's scale): ``(nonfinite, at_top)``. Raises ``ValueError`` for another dtype, shape or layout.
    """
    if not isinstance(events, np.ndarray) or events.ndim != 2 or events.dtype != np.float32 \
            or not (events.flags.c_contiguous or events.flags.f_contiguous):
        raise ValueError("count_nonfinite: events must be a C- or Fortran-contiguous float32 2-D array, found "
                         f"{getattr(events, 'dtype', type(events))} {getattr(events, 'shape', '')}")
    n, p = events.shape
    limits = np.full(p, np.inf, dtype=np.float32) if tops is None else np.asarray(tops, dtype=np.float32)
    if limits.shape != (p,):
        raise ValueError(f"count_nonfinite: tops must hold one value per column ({p}), found shape {limits.shape}")
    out = np.zeros(((n + _BLOCK - 1) // _BLOCK, p), dtype=np.int64)
    at_top = np.zeros_like(out)
    if n:
        _count_nonfinite_blocks(events, limits, _BLOCK, out, at_top)
    return out.sum(axis=0) if tops is None else (out.sum(axis=0), at_top.sum(axis=0))
