"""Compensation (inverse spillover) and the fused compensation + transform pass, as numba kernels.

Convention (as in FCS ``$SPILLOVER`` and ``flowutils.compensate``): with ``S`` the spillover matrix whose
row i is how fluorochrome i spills into each detector, observed = true @ S, so
``compensated = observed @ inv(S)``. The callers compute ``inv(S)`` once per matrix and pass it in
(float64); events stay float32 and each element is computed in float64 then rounded once.

The kernels walk the events in blocks so that each parallel worker allocates its small float64 scratch
row once per block, not once per event.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .transforms import transform_value

#: events per parallel work item
BLOCK = 4096


@njit(cache=True, parallel=True)
def compensate_inplace(events, cols, inverse):
    """Replace ``events[:, cols]`` by ``events[:, cols] @ inverse`` for every event.

    Parameters
    ----------
    events : (n, p) float32/float64 C-contiguous array, modified in place
    cols : (k,) int64, the event columns in the matrix's order
    inverse : (k, k) float64, the inverse spillover matrix
    """
    n = events.shape[0]
    k = cols.shape[0]
    n_blocks = (n + BLOCK - 1) // BLOCK
    for blk in prange(n_blocks):
        raw = np.empty(k)
        start = blk * BLOCK
        stop = min(start + BLOCK, n)
        for i in range(start, stop):
            for j in range(k):
                raw[j] = events[i, cols[j]]
            for j in range(k):
                acc = 0.0
                for m in range(k):
                    acc += raw[m] * inverse[m, j]
                events[i, cols[j]] = acc


@njit(cache=True, parallel=True)
def unmix_into(events, cols, unmixing, out):
    """``out[i, :] = events[i, cols] @ unmixing`` — compensated/unmixed values into a separate array.

    ``unmixing`` is (k, q) float64 (q may differ from k: spectral unmixing); ``out`` is (n, q).
    """
    n = events.shape[0]
    k = cols.shape[0]
    q = unmixing.shape[1]
    n_blocks = (n + BLOCK - 1) // BLOCK
    for blk in prange(n_blocks):
        raw = np.empty(k)
        start = blk * BLOCK
        stop = min(start + BLOCK, n)
        for i in range(start, stop):
            for j in range(k):
                raw[j] = events[i, cols[j]]
            for j in range(q):
                acc = 0.0
                for m in range(k):
                    acc += raw[m] * unmixing[m, j]
                out[i, j] = acc


@njit(cache=True, parallel=True)
def compensate_transform_inplace(events, cols, inverse, codes, params, plain_cols, plain_codes, plain_params):
    """One sweep over the events: compensate and transform ``cols``, transform ``plain_cols``.

    Parameters
    ----------
    events : (n, p) float32 C-contiguous array, modified in place
    cols : (k,) int64 compensated columns, in the matrix's order (k may be 0: no compensation)
    inverse : (k, k) float64 inverse spillover
    codes, params : (k,) int64 transform code and (k, N_PARAMS) float64 parameters of each compensated
        column (code 0 = compensate only)
    plain_cols, plain_codes, plain_params : the same for columns transformed without compensation
    """
    n = events.shape[0]
    k = cols.shape[0]
    r = plain_cols.shape[0]
    n_blocks = (n + BLOCK - 1) // BLOCK
    for blk in prange(n_blocks):
        raw = np.empty(k)
        start = blk * BLOCK
        stop = min(start + BLOCK, n)
        for i in range(start, stop):
            for j in range(k):
                raw[j] = events[i, cols[j]]
            for j in range(k):
                acc = 0.0
                for m in range(k):
                    acc += raw[m] * inverse[m, j]
                events[i, cols[j]] = transform_value(codes[j], acc, params[j])
            for j in range(r):
                c = plain_cols[j]
                events[i, c] = transform_value(plain_codes[j], np.float64(events[i, c]), plain_params[j])
