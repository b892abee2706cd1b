"""``exp`` and ``log`` of the simulator's float64 parameters through the C library (``math``), not numpy's loops.

numpy's float64 ``exp``/``log`` use their own SIMD code on CPUs with AVX-512 and the C library elsewhere, and the
two differ in the last bit for some arguments. The parameters they produce (a specimen's jittered phenotypes and
composition, an instrument's drifted spillover, which is written into ``$SPILLOVER``) must be the same on every
machine, so that the same seed gives the same file bytes. Only for small parameter arrays: the per-event float32
arithmetic stays in numpy.
"""

from __future__ import annotations

import math

import numpy as np


def exp(x: float | np.ndarray) -> float | np.ndarray:
    """``e**x`` of a float (a float) or of an array (a float64 array of the same shape), by ``math.exp``."""
    if np.ndim(x) == 0:
        return math.exp(float(x))
    arr = np.asarray(x, dtype=np.float64)
    return np.array([math.exp(v) for v in arr.ravel().tolist()], dtype=np.float64).reshape(arr.shape)


def log(x: float) -> float:
    """Natural logarithm of a positive float, by ``math.log``."""
    return math.log(float(x))
