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

from .transforms import HYPERLOG, IDENTITY, LINEAR, LOGICLE, hyperlog_value, logicle_value, table_block, transform_value

#: events per parallel work item
BLOCK = 4096
#: events per block of the fused pass (its float64 scratch block stays in L1/L2 cache)
FUSED_BLOCK = 1024


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


@njit(cache=True)
def _transform_rows(src, src_col, events, dst_col, start, stop, code, p):
    # one column of one block (src is (columns, rows) scratch); the code is fixed inside the loop so the branch
    # is hoisted out of it
    # 1-D views (indexing a view from 0 lets the loops vectorise)
    x = src[src_col, : stop - start]
    dst = events[start:stop, dst_col]
    if code == LOGICLE or code == HYPERLOG:
        # logicle_fast / hyperlog_fast in two passes: the branch-free table lookup over the block, then the
        # exact solve for the few values outside the table
        y = np.empty(stop - start)
        miss = np.empty(stop - start, dtype=np.uint8)
        if table_block(x, y, miss, p):
            for i in range(stop - start):
                if miss[i]:
                    y[i] = logicle_value(x[i], p) if code == LOGICLE else hyperlog_value(x[i], p)
        for i in range(stop - start):
            dst[i] = y[i]
    elif code == LINEAR:  # transform_value's (x + A) / (T + A), written out so the loop vectorises
        shift, scale = p[1], p[0]
        for i in range(stop - start):
            dst[i] = (x[i] + shift) / scale
    elif code == IDENTITY:
        for i in range(stop - start):
            dst[i] = x[i]
    else:
        for i in range(stop - start):
            dst[i] = transform_value(code, x[i], p)


@njit(cache=True, parallel=True)
def compensate_transform_inplace(events, cols, inverse, codes, pidx, plain_cols, plain_codes, plain_pidx, params):
    """One sweep over the events: compensate and transform ``cols``, transform ``plain_cols``.

    The events are processed in blocks of :data:`FUSED_BLOCK` rows that stay in cache: the block's compensated
    columns are gathered once into a float64 scratch block (one row per column, so the products below run
    over contiguous values and vectorise), compensated into a second scratch block — each output accumulated
    as ``0.0 + x_0 inv[0, j] + x_1 inv[1, j] + ...`` in that order, exactly as a per-event loop does — then
    each column is transformed and written back, so the event matrix is read and written once and each value
    is rounded to float32 once.

    Parameters
    ----------
    events : (n, p) float32 C- or Fortran-contiguous array, modified in place
    cols : (k,) int64 compensated columns, in the matrix's order (k may be 0: no compensation)
    inverse : (k, k) float64 inverse spillover
    codes, pidx : (k,) int64 transform code of each compensated column (0 = compensate only) and the row
        of ``params`` holding its parameters
    plain_cols, plain_codes, plain_pidx : the same for columns transformed without compensation
    params : (m, N_PARAMS) float64, one row per distinct transform (shared by columns, so its lookup
        table is cached once)
    """
    n = events.shape[0]
    k = cols.shape[0]
    r = plain_cols.shape[0]
    n_blocks = (n + FUSED_BLOCK - 1) // FUSED_BLOCK
    for blk in prange(n_blocks):
        start = blk * FUSED_BLOCK
        stop = min(start + FUSED_BLOCK, n)
        b = stop - start
        raw = np.empty((k, b))
        comp = np.empty((k, b))
        plain = np.empty((r, b))
        for m in range(k):
            col = events[start:stop, cols[m]]
            for i in range(b):
                raw[m, i] = np.float64(col[i])
        for j in range(k):
            for i in range(b):
                comp[j, i] = 0.0
            for m in range(k):
                w = inverse[m, j]
                for i in range(b):
                    comp[j, i] += raw[m, i] * w
        for j in range(r):
            col = events[start:stop, plain_cols[j]]
            for i in range(b):
                plain[j, i] = col[i]
        for j in range(k):
            _transform_rows(comp, j, events, cols[j], start, stop, codes[j], params[pidx[j]])
        for j in range(r):
            _transform_rows(plain, j, events, plain_cols[j], start, stop, plain_codes[j], params[plain_pidx[j]])
