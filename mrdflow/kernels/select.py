"""Row selection within a bool mask without materialising the mask's full index set."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _rows_at_ranks(mask, ranks, out):
    k = ranks.shape[0]
    if k == 0:
        return 0
    j = 0
    seen = 0
    for i in range(mask.shape[0]):
        if mask[i]:
            while j < k and ranks[j] == seen:
                out[j] = i
                j += 1
            if j == k:
                break
            seen += 1
    return j


def rows_at_ranks(mask: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """``np.flatnonzero(mask)[ranks]`` for sorted ``ranks``, in one pass and without the full index array.

    Parameters
    ----------
    mask : (n,) bool array.
    ranks : (k,) int64, non-decreasing, each in ``[0, count_nonzero(mask))``.

    Returns
    -------
    (k,) int64 row indices (0-based) of the ``ranks``-th True entries of ``mask``.

    Raises
    ------
    ValueError
        Wrong dtype/shape, unsorted ranks, or a rank beyond the number of True entries.
    """
    mask = np.ascontiguousarray(mask)
    ranks = np.ascontiguousarray(ranks, dtype=np.int64)
    if mask.dtype != np.bool_ or mask.ndim != 1 or ranks.ndim != 1:
        raise ValueError(f"rows_at_ranks: need a 1-D bool mask and 1-D ranks, found {mask.dtype} {mask.shape} "
                         f"and {ranks.shape}")
    if ranks.size and (ranks[0] < 0 or np.any(np.diff(ranks) < 0)):
        raise ValueError("rows_at_ranks: ranks must be non-negative and sorted")
    out = np.empty(ranks.size, dtype=np.int64)
    found = _rows_at_ranks(mask, ranks, out)
    if found != ranks.size:
        raise ValueError(f"rows_at_ranks: rank {int(ranks[found])} is beyond the {int(np.count_nonzero(mask))} "
                         "True entries of the mask")
    return out
