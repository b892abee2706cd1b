"""Data checks over a whole event matrix in one pass, without temporaries."""

from __future__ import annotations

import numpy as np
from numba import njit

_BLOCK = 65536


@njit(cache=True)
def _count_nonfinite_blocks(events, block, out):
    n, p = events.shape
    nb = out.shape[0]
    for b in range(nb):  # serial: a vectorised pass runs at memory speed; a thread team only adds wake-ups
        lo = b * block
        hi = min(n, lo + block)
        for j in range(p):  # column by column within the block: contiguous for a column-major matrix, and a
            c = 0          # row-major block (<= 3.4 MB) stays in cache across its columns
            col = events[lo:hi, j]  # (a view: indexing it directly lets the loop vectorise)
            for i in range(col.shape[0]):
                if not np.isfinite(col[i]):
                    c += 1
            out[b, j] += c


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
