"""Order statistics of 1-D float arrays, faster than numpy's and with numpy's exact results.

``np.quantile`` and ``np.median`` partition around *several* ranks at once (the two neighbours of each virtual
index, plus the first and last element), which numpy does with a slow generic introselect: ~1.6 ms for one
quantile of 200 k float32 values, against ~0.15 ms for its SIMD single-rank ``np.partition`` and ~0.55 ms for
its SIMD sort. The adaptive gates and the time QC take several quantiles, a histogram and a spread of the same
subsample, so they sort it once and read everything off the sorted copy:

* :func:`sorted_quantile` — ``np.quantile(x, q)`` (method ``linear``) from the sorted values: the same
  virtual index, neighbours and interpolation steps as numpy, so the same value and dtype (a Python float ``q``
  gives the input's precision, a list of ``q`` float64, as numpy);
* :func:`sorted_histogram` — ``np.histogram(x, bins, range)`` counts by binary search of the edges;
* :func:`median` — ``np.median`` with one single-rank partition (and a max over the lower half for an even
  count);
* :func:`column_medians` — ``np.median(a, axis=0)`` of a 2-D array, one :func:`median` per column (~7× faster
  for 50 k × 6 float32: numpy partitions the strided columns of a row-major array around two ranks).

Values must be finite (NaN sorts to the end and numpy would return NaN); callers filter them first.
"""

from __future__ import annotations

import numpy as np

__all__ = ["sorted_quantile", "sorted_histogram", "sorted_within", "median", "column_medians"]


def sorted_quantile(xs: np.ndarray, q):
    """``np.quantile(xs, q)`` (linear interpolation, Hyndman & Fan type 7) of an ascending, finite 1-D array.

    Parameters
    ----------
    xs : (n,) sorted ascending, n ≥ 1.
    q : a quantile in [0, 1] or a sequence of them.

    Returns
    -------
    The quantile(s), with numpy's dtype rules: a Python ``float``/``int`` ``q`` keeps ``xs``'s precision
    (a numpy scalar), an array-like ``q`` gives a float64 (for float32 data) array of ``q``'s shape.
    """
    xs = np.asarray(xs)
    if xs.ndim != 1 or xs.size == 0:
        raise ValueError(f"sorted_quantile needs a non-empty 1-D array, found shape {xs.shape}")
    weak = type(q) in (int, float)
    qa = np.asanyarray(q)
    if qa.dtype.kind not in "fiu" or not (np.all(qa >= 0) and np.all(qa <= 1)):
        raise ValueError(f"quantiles must be numbers in [0, 1], found {q!r}")
    n = xs.shape[0]
    virtual = np.asanyarray((n - 1) * qa)
    previous = np.floor(virtual)
    following = previous + 1
    top = virtual >= n - 1
    # as numpy: an index at or past the last value reads the last value (index -1) on both sides
    previous = np.where(top, -1.0, previous)
    following = np.where(top, -1.0, following)
    previous = previous.astype(np.intp)
    following = following.astype(np.intp)
    gamma = np.asanyarray(virtual - previous, dtype=virtual.dtype)
    a, b = xs[previous], xs[following]
    t = float(gamma) if weak else gamma
    diff = b - a
    out = np.add(a, diff * t, out=...)
    np.subtract(b, diff * (1 - t), out=out, where=t >= 0.5, casting="unsafe", dtype=type(out.dtype))
    return out[()] if out.ndim == 0 else out


def sorted_histogram(xs: np.ndarray, bins: int, range: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """``np.histogram(xs, bins=bins, range=range)`` of an ascending, finite 1-D array: the same edges and counts
    (bin ``i`` holds ``edges[i] ≤ x < edges[i + 1]``, the last bin also ``x == edges[-1]``; values outside
    ``range`` are not counted), by binary search instead of one pass over the values."""
    xs = np.asarray(xs)
    edges = np.histogram_bin_edges(xs[:0], bins=bins, range=range)
    inside = sorted_within(xs, *range)
    cuts = np.searchsorted(inside, edges[1:-1], side="left")
    bounds = np.concatenate(([0], cuts, [inside.size]))
    return np.diff(bounds).astype(np.int64), edges


def sorted_within(xs: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The values of ascending ``xs`` with ``lo ≤ x ≤ hi`` — a slice (no copy), by numpy's own comparisons (the
    same operands and promotion as ``(x >= lo) & (x <= hi)``): a prefix and a suffix of the sorted values fail."""
    first = int(np.count_nonzero(~(xs >= lo)))
    last = xs.size - int(np.count_nonzero(~(xs <= hi)))
    return xs[first:max(first, last)]


def median(x: np.ndarray):
    """``np.median(x)`` of a finite 1-D array, with one single-rank partition (numpy partitions around two ranks,
    far slower); an even count averages the two middle values with ``np.mean``, as numpy does."""
    x = np.asarray(x)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"median needs a non-empty 1-D array, found shape {x.shape}")
    n = x.size
    k = n // 2
    part = np.partition(x, k)
    if x.dtype not in (np.float32, np.float64):  # integers (a float64 mean), float16 (a float32 mean): np.mean
        return np.mean(part[k:k + 1]) if n % 2 else np.mean(np.array([part[:k].max(), part[k]], dtype=x.dtype))
    if n % 2:
        return part[k]  # np.mean of one value: the value, in its dtype
    # np.mean of two values of a float dtype: their sum in that dtype, then halved in it — the same arithmetic
    # on numpy scalars, without np.mean's ~10 µs of overhead (the phenotype takes hundreds of medians)
    return (part[:k].max() + part[k]) / x.dtype.type(2)


def column_medians(a: np.ndarray) -> np.ndarray:
    """``np.median(a, axis=0)`` of a 2-D array: each column's :func:`median`, in ``a``'s precision (float32 stays
    float32, as numpy); a column holding a NaN gives NaN, as numpy."""
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"column_medians needs a 2-D array, found shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        return np.median(a, axis=0)  # numpy's NaNs (with its warning) for no rows, an empty array for no columns
    cols = np.asfortranarray(a)
    out = np.array([median(cols[:, j]) for j in range(a.shape[1])])
    if out.dtype.kind == "f":
        out[np.isnan(cols).any(axis=0)] = np.nan
    return out
