"""Gate membership kernels: rectangle (n-D, half-open), polygon (crossing rule), ellipsoid (n-D).

Each kernel reads only the event columns it is given (no column copies), evaluates only the events
whose ``parent`` flag is set (an empty ``parent`` array means "all events") and writes a bool mask
(False outside the parent). Coordinates are compared in float64.

Boundary conventions are those of GatingML 2.0 and its reference implementations:

* rectangle: ``min <= x < max`` per dimension (use ±inf for an open side);
* polygon: the crossing-number (even-odd) rule — an edge counts when ``min(ya, yb) <= y < max(ya, yb)``
  and it crosses the horizontal ray strictly to the right of the point — so a self-intersecting
  polygon's doubly covered regions are outside; points exactly on an edge or vertex are inside, as the
  official GatingML 2.0 results require (set 2 ``Poly1u`` has 13 events on its edges; flowutils' winding
  test drops 3 of them, R flowCore's ``inPolygon`` 10). Each polygon gets a 256 × 256 lookup grid over
  its bounding box (:func:`polygon_grid`) so that most events are decided by one cell lookup and only
  those in cells an edge passes near get the exact test;
* ellipsoid: ``(x - mean)ᵀ inv(cov) (x - mean) <= distance²``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def rectangle_mask(events, cols, lo, hi, parent, out):
    """``out[i] = parent[i] and all(lo[j] <= events[i, cols[j]] < hi[j])``."""
    n = events.shape[0]
    k = cols.shape[0]
    use_parent = parent.shape[0] > 0
    for i in prange(n):
        if use_parent and not parent[i]:
            out[i] = False
            continue
        inside = True
        for j in range(k):
            v = np.float64(events[i, cols[j]])
            if not (v >= lo[j] and v < hi[j]):
                inside = False
                break
        out[i] = inside


@njit(cache=True, parallel=True)
def rectangle_mask_dense(events, cols, lo, hi, parent, out):
    """:func:`rectangle_mask` without branches, for a parent holding most events (or none: all events).

    Every row is read and tested; ``out[i] = parent[i] & all(lo <= x < hi)``. Same result as
    :func:`rectangle_mask`; faster when the parent flag does not let most rows be skipped.
    """
    n = events.shape[0]
    k = cols.shape[0]
    use_parent = parent.shape[0] > 0
    n_blocks = (n + 16383) // 16384
    for blk in prange(n_blocks):
        for i in range(blk * 16384, min(n, blk * 16384 + 16384)):
            inside = parent[i] if use_parent else True
            for j in range(k):
                v = np.float64(events[i, cols[j]])
                inside &= (v >= lo[j]) & (v < hi[j])
            out[i] = inside


@njit(cache=True)
def _rectangle_block(events, cols, lo, hi, parent, out, start, stop, use_parent):
    # rows [start, stop): one branch-free pass per dimension over that column's contiguous values (the loops
    # index 1-D views from 0, so they vectorise)
    o = out[start:stop]
    if cols.shape[0] == 0:
        for i in range(o.shape[0]):
            o[i] = parent[start + i] if use_parent else True
    for j in range(cols.shape[0]):
        x = events[start:stop, cols[j]]
        a, b = lo[j], hi[j]
        if j == 0:
            if use_parent:
                p = parent[start:stop]
                for i in range(x.shape[0]):
                    v = np.float64(x[i])
                    o[i] = p[i] & (v >= a) & (v < b)
            else:
                for i in range(x.shape[0]):
                    v = np.float64(x[i])
                    o[i] = (v >= a) & (v < b)
        else:
            for i in range(x.shape[0]):
                v = np.float64(x[i])
                o[i] &= (v >= a) & (v < b)


#: rows per parallel work item of the column-major kernels
_COLUMN_BLOCK = 1 << 16


@njit(cache=True, parallel=True)
def rectangle_mask_columns(events, cols, lo, hi, parent, out):
    """:func:`rectangle_mask` for a column-major (Fortran-ordered) matrix: per block of 65 536 rows, one
    vectorised branch-free pass per dimension over that column's contiguous values; blocks in parallel (the
    per-block function keeps the loops simple enough to vectorise: 2.2 → 1.2 ms per 5 M-event, 2-D gate on
    two cores). Same result as :func:`rectangle_mask`."""
    n = events.shape[0]
    use_parent = parent.shape[0] > 0
    n_blocks = (n + _COLUMN_BLOCK - 1) // _COLUMN_BLOCK
    for blk in prange(n_blocks):
        start = blk * _COLUMN_BLOCK
        _rectangle_block(events, cols, lo, hi, parent, out, start, min(n, start + _COLUMN_BLOCK), use_parent)


#: cells per side of a polygon's lookup grid
POLYGON_GRID = 256


@njit(cache=True)
def _inside_polygon(x, y, vx, vy):
    # exact test: boundary points inside, otherwise the even-odd crossing rule
    nv = vx.shape[0]
    inside = False
    for e in range(nv):
        ay = vy[e]
        by = vy[e + 1] if e + 1 < nv else vy[0]
        if (y < ay and y < by) or (y > ay and y > by):
            continue  # the edge neither spans y nor touches the point
        ax = vx[e]
        bx = vx[e + 1] if e + 1 < nv else vx[0]
        cross = (bx - ax) * (y - ay) - (x - ax) * (by - ay)
        if cross == 0.0 and min(ax, bx) <= x <= max(ax, bx):
            return True
        if ay <= y:
            if y < by and cross > 0.0:  # upward edge spanning y, crossing right of the point
                inside = not inside
        elif by <= y and cross < 0.0:  # downward edge spanning y, crossing right of the point
            inside = not inside
    return inside


@njit(cache=True)
def polygon_grid(vx, vy, size):
    """Lookup grid over the polygon's bounding box: 0 = cell outside, 1 = inside, 2 = near an edge.

    Every cell an edge passes through, and its 8 neighbours (a margin for rounding), is marked 2; no edge
    touches any other cell, so membership is the same everywhere in it and is taken from its centre by
    the exact test. Returns ``(grid, x0, y0, sx, sy)`` with cell ``(int((y - y0) sy), int((x - x0) sx))``.
    """
    x0, x1, y0, y1 = vx.min(), vx.max(), vy.min(), vy.max()
    grid = np.zeros((size, size), dtype=np.uint8)
    if not (x1 > x0 and y1 > y0):
        grid[:, :] = 2  # degenerate (zero-area) polygon: always use the exact test
        return grid, x0, y0, 0.0, 0.0
    sx = size / (x1 - x0)
    sy = size / (y1 - y0)
    nv = vx.shape[0]
    for e in range(nv):
        ax, ay = vx[e], vy[e]
        bx = vx[e + 1] if e + 1 < nv else vx[0]
        by = vy[e + 1] if e + 1 < nv else vy[0]
        length = max(abs(bx - ax) * sx, abs(by - ay) * sy)
        steps = int(2.0 * length) + 1  # samples at most half a cell apart
        for k in range(steps + 1):
            t = k / steps
            cx = min(max(int((ax + t * (bx - ax) - x0) * sx), 0), size - 1)
            cy = min(max(int((ay + t * (by - ay) - y0) * sy), 0), size - 1)
            for dy in range(-1, 2):
                for dx in range(-1, 2):
                    jy, jx = cy + dy, cx + dx
                    if 0 <= jy < size and 0 <= jx < size:
                        grid[jy, jx] = 2
    for jy in range(size):
        for jx in range(size):
            if grid[jy, jx] == 0:
                if _inside_polygon(x0 + (jx + 0.5) / sx, y0 + (jy + 0.5) / sy, vx, vy):
                    grid[jy, jx] = 1
    return grid, x0, y0, sx, sy


@njit(cache=True, parallel=True)
def polygon_mask(events, cx, cy, vx, vy, grid, x0, y0, sx, sy, parent, out):
    """``out[i] = parent[i] and (events[i, cx], events[i, cy])`` inside the polygon (vx, vy).

    ``grid, x0, y0, sx, sy`` come from :func:`polygon_grid`: most events are decided by one cell lookup,
    those in cells near an edge by the exact test.
    """
    n = events.shape[0]
    size = grid.shape[0]
    use_parent = parent.shape[0] > 0
    xmin, xmax, ymin, ymax = vx.min(), vx.max(), vy.min(), vy.max()
    for i in prange(n):
        if use_parent and not parent[i]:
            out[i] = False
            continue
        x = np.float64(events[i, cx])
        y = np.float64(events[i, cy])
        if not (x >= xmin and x <= xmax and y >= ymin and y <= ymax):  # also False for NaN
            out[i] = False
            continue
        jx = min(int((x - x0) * sx), size - 1)
        jy = min(int((y - y0) * sy), size - 1)
        cell = grid[jy, jx]
        if cell == 2:
            out[i] = _inside_polygon(x, y, vx, vy)
        else:
            out[i] = cell == 1


_POLY_BLOCK = 4096


@njit(cache=True, parallel=True)
def polygon_mask_columns(events, cx, cy, vx, vy, parent, out):
    """:func:`polygon_mask` for a column-major (Fortran-ordered) matrix, without the lookup grid: the exact test
    of :func:`_inside_polygon` written branch-free, one edge at a time over a block of events (their two
    columns contiguous), so the loops vectorise; groups of blocks in parallel. Per event: inside the polygon's
    bounding box and (on an edge, or an odd number of the edges spanning its y cross to its right) — the same
    comparisons and the same cross products as :func:`_inside_polygon`, so the same result."""
    n = events.shape[0]
    nv = vx.shape[0]
    use_parent = parent.shape[0] > 0
    xmin, xmax, ymin, ymax = vx.min(), vx.max(), vy.min(), vy.max()
    per_group = _COLUMN_BLOCK // _POLY_BLOCK
    n_groups = (n + _COLUMN_BLOCK - 1) // _COLUMN_BLOCK
    for g in prange(n_groups):
        inside = np.empty(_POLY_BLOCK, dtype=np.uint8)
        on_edge = np.empty(_POLY_BLOCK, dtype=np.uint8)
        for b in range(per_group):
            start = g * _COLUMN_BLOCK + b * _POLY_BLOCK
            if start >= n:
                break
            stop = min(n, start + _POLY_BLOCK)
            m = stop - start
            xs = events[start:stop, cx]
            ys = events[start:stop, cy]
            for i in range(m):
                inside[i] = 0
                on_edge[i] = 0
            for e in range(nv):
                ay, ax = vy[e], vx[e]
                by = vy[e + 1] if e + 1 < nv else vy[0]
                bx = vx[e + 1] if e + 1 < nv else vx[0]
                lo_x, hi_x = min(ax, bx), max(ax, bx)
                for i in range(m):
                    x = np.float64(xs[i])
                    y = np.float64(ys[i])
                    spans = not ((y < ay and y < by) or (y > ay and y > by))
                    cross = (bx - ax) * (y - ay) - (x - ax) * (by - ay)
                    on = spans & (cross == 0.0) & (lo_x <= x) & (x <= hi_x)
                    flip = spans & (((ay <= y) & (y < by) & (cross > 0.0)) | ((ay > y) & (by <= y) & (cross < 0.0)))
                    on_edge[i] |= on
                    inside[i] ^= flip
            for i in range(m):
                x = np.float64(xs[i])
                y = np.float64(ys[i])
                in_box = (x >= xmin) & (x <= xmax) & (y >= ymin) & (y <= ymax)
                keep = parent[start + i] if use_parent else True
                out[start + i] = keep & in_box & ((on_edge[i] | inside[i]) != 0)


@njit(cache=True, parallel=True)
def ellipsoid_mask(events, cols, mean, inv_cov, distance_square, parent, out):
    """``out[i] = parent[i] and (x - mean)ᵀ inv_cov (x - mean) <= distance_square``."""
    n = events.shape[0]
    k = cols.shape[0]
    use_parent = parent.shape[0] > 0
    n_blocks = (n + 4095) // 4096
    for blk in prange(n_blocks):
        d = np.empty(k)
        for i in range(blk * 4096, min(blk * 4096 + 4096, n)):
            if use_parent and not parent[i]:
                out[i] = False
                continue
            for j in range(k):
                d[j] = np.float64(events[i, cols[j]]) - mean[j]
            q = 0.0
            for a in range(k):
                row = 0.0
                for b in range(k):
                    row += d[b] * inv_cov[b, a]
                q += row * d[a]
            out[i] = q <= distance_square
