"""Peaks of a 1-D density and their prominence: ``scipy.signal.find_peaks(x, prominence=p)``'s peak indices.

Importing :mod:`scipy.signal` costs ~0.65 s per process (it imports most of :mod:`scipy.stats`), which every
batch worker and every ``mrdflow`` command would pay for this one call on a few hundred histogram bins.
The rules are scipy's (``_local_maxima_1d`` and ``_peak_prominences`` with no window), checked against it
in ``tests/test_peaks_and_distributions.py``:

* a peak is a run of one or more equal samples with a strictly smaller sample on each side; its index is
  the run's middle, rounded down. A run that touches either end of ``x`` is not a peak;
* its prominence is its height minus the higher of the two minima found walking left and right from it,
  each walk stopping before the first sample higher than the peak (or at the end of ``x``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["find_peaks"]


def find_peaks(x: np.ndarray, prominence: float) -> np.ndarray:
    """Indices (ascending, ``intp``) of the peaks of finite 1-D ``x`` whose prominence is ≥ ``prominence``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"find_peaks: x must be 1-D, found shape {x.shape}")
    if x.size < 3:
        return np.empty(0, dtype=np.intp)
    # runs of equal samples: a peak is a run higher than both neighbouring runs, neither run at an end
    starts = np.flatnonzero(np.r_[True, x[1:] != x[:-1]])
    ends = np.r_[starts[1:] - 1, x.size - 1]
    level = x[starts]
    inner = np.arange(1, starts.size - 1)
    is_peak = (level[inner - 1] < level[inner]) & (level[inner + 1] < level[inner])
    runs = inner[is_peak]
    peaks = (starts[runs] + ends[runs]) // 2
    keep = np.zeros(peaks.size, dtype=bool)
    for j, (peak, run) in enumerate(zip(peaks, runs)):
        height = x[peak]
        higher_left = np.flatnonzero(x[:starts[run]] > height)
        higher_right = np.flatnonzero(x[ends[run] + 1:] > height)
        left = higher_left[-1] + 1 if higher_left.size else 0
        right = ends[run] + 1 + higher_right[0] if higher_right.size else x.size
        base = max(x[left:peak + 1].min(), x[peak:right].min())
        keep[j] = prominence <= height - base
    return peaks[keep].astype(np.intp, copy=False)
