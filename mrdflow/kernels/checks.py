"""Data checks over a whole event matrix in one parallel pass, without temporaries."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_BLOCK = 65536


@njit(cache=True, parallel=True)
def _count_nonfinite_blocks(events, block, out):
    n, p = events.shape
    nb = out.shape[0]
    for b in prange(nb):
        lo = b * block
        hi = min(n, lo + block)
        for i in range(lo, hi):
            for j in range(p):
                v = events[i, j]
                if v - v != 0.0:  # NaN - NaN and inf - inf are NaN; finite - itself is 0
                    out[b, j] += 1


def count_nonfinite(events: np.ndarray) -> np.ndarray:
    """Number of NaN / ±inf values in each column of a float32 (n_events, n_channels) C- or F-contiguous matrix.

    Returns an int64 array of shape (n_channels,). Raises ``ValueError`` for another dtype, shape or layout.
    """
    if not isinstance(events, np.ndarray) or events.ndim != 2 or events.dtype != np.float32 \
            or not (events.flags.c_contiguous or events.flags.f_contiguous):
        raise ValueError("count_nonfinite: events must be a C- or Fortran-contiguous float32 2-D array, found "
                         f"{getattr(events, 'dtype', type(events))} {getattr(events, 'shape', '')}")
    n, p = events.shape
    out = np.zeros(((n + _BLOCK - 1) // _BLOCK, p), dtype=np.int64)
    if n:
        _count_nonfinite_blocks(events, _BLOCK, out)
    return out.sum(axis=0)
