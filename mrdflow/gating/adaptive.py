"""Data-driven gates that place themselves on each sample (openCyto-style), scikit-learn shaped.

Every method follows the estimator convention of STYLE.md: parameters are stored untouched by ``__init__`` and
checked by :meth:`validate` (also called by the template loader, so a bad argument fails before any work);
``fit(X) -> self`` works on a bounded, seeded subsample (at most ``max_events`` rows) and records the chosen
geometry in ``geometry_`` (a plain gate description, the same schema a template's fixed ``gate:`` uses, see
:mod:`mrdflow.gating.template`) plus method-specific attributes ending in ``_``; ``apply(X)`` is pure and returns
the boolean mask of the rows inside the chosen gate. ``X`` is ``(n_events, n_dims)`` in the gate's ``dims``
order, in transformed units (whatever the panel's transforms produce).

The engine fits on a subsample of the *parent* population and evaluates the fixed geometry on all parent
events, so the GatingML export reproduces the result exactly.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, Mapping

import numpy as np
from scipy import special

from mrdflow.distributions import chi2_ppf
from mrdflow.gating.peaks import find_peaks
from mrdflow.quantiles import median, sorted_histogram, sorted_quantile, sorted_within

__all__ = [
    "AdaptiveGate", "DensityValley", "Tail", "Cluster", "Singlet", "Margin", "ReferenceDistance",
    "METHODS", "subsample_indices", "systematic_indices", "geometry_mask",
]


def subsample_indices(n: int, max_events: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded systematic subsample of ``min(n, max_events)`` of ``range(n)``.

    Every index has the same probability ``k/n`` of being drawn (``k = max_events``), as in a simple random
    sample, and the sample is spread evenly over the file's event order (acquisition time) — a sample of a
    parent population evenly over that population's events. O(k) (one random start, no sort, no hash table;
    :func:`systematic_indices`), deterministic by seed.
    """
    if n <= max_events:
        return np.arange(n)
    return systematic_indices(n, int(max_events), int(np.random.default_rng(seed).integers(n)))


def systematic_indices(n: int, k: int, start: int) -> np.ndarray:
    """``(j·n + start) // k`` for ``j = 0 … k−1``: ``k`` strictly increasing indices of ``range(n)`` (``k < n``,
    ``0 ≤ start < n``), one every ``n/k``. Over the ``n`` starts each index is drawn exactly ``k`` times (the
    values ``j·n + start`` cover ``[0, k·n)`` once each), so a uniformly random start draws every index with
    probability exactly ``k/n``."""
    return (np.arange(k, dtype=np.int64) * n + start) // k


def geometry_mask(geometry: Mapping[str, Any], X: np.ndarray) -> np.ndarray:
    """Rows of ``X`` inside a plain gate description (range / rectangle / polygon / ellipse, or ``not_`` + one).

    Conventions (GatingML 2.0): range/rectangle include the minimum and exclude the maximum; ellipse keeps
    squared Mahalanobis distance ``≤ distance_square``.
    """
    kind = geometry["type"]
    X = np.asarray(X)
    if kind.startswith("not_"):
        return ~geometry_mask({**geometry, "type": kind[4:]}, X)
    if kind in ("range", "rectangle"):
        lo = np.atleast_1d(np.array(geometry["min"], dtype=object))
        hi = np.atleast_1d(np.array(geometry["max"], dtype=object))
        keep = np.ones(X.shape[0], dtype=bool)
        for j in range(X.shape[1]):
            if lo[j] is not None:
                keep &= X[:, j] >= lo[j]
            if hi[j] is not None:
                keep &= X[:, j] < hi[j]
        return keep
    if kind == "polygon":
        from matplotlib.path import Path as _MplPath  # well-tested point-in-polygon; only for standalone apply
        return _MplPath(np.asarray(geometry["vertices"], float)).contains_points(X[:, :2].astype(float))
    if kind == "ellipse":
        mean = np.asarray(geometry["mean"], float)
        prec = np.linalg.inv(np.asarray(geometry["covariance"], float))
        diff = X.astype(float) - mean
        return np.einsum("ij,jk,ik->i", diff, prec, diff) <= float(geometry["distance_square"])
    raise ValueError(f"unknown geometry type {kind!r}")


class AdaptiveGate:
    """Base class: parameter checking, subsampling and the shared ``apply``."""

    #: allowed number of dimensions: (minimum, maximum or None)
    n_dims: ClassVar[tuple[int, int | None]] = (1, None)

    def __init__(self, *, max_events: int = 200_000, seed: int = 0):
        self.max_events = max_events
        self.seed = seed

    @classmethod
    def param_names(cls) -> list[str]:
        """Arguments accepted by this method (what a template's ``args:`` may contain)."""
        names: list[str] = []
        for klass in cls.__mro__:
            if "__init__" in vars(klass):
                for p in inspect.signature(klass.__init__).parameters.values():
                    if p.name != "self" and p.kind is p.KEYWORD_ONLY and p.name not in names:
                        names.append(p.name)
        return names

    def validate(self, n_dims: int | None = None) -> None:
        """Raise ``ValueError`` naming the argument when a parameter (or the number of dims) is invalid."""
        if not isinstance(self.max_events, int) or isinstance(self.max_events, bool) or self.max_events < 100:
            raise ValueError(f"max_events must be an integer ≥ 100, found {self.max_events!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an integer, found {self.seed!r}")
        lo, hi = self.n_dims
        if n_dims is not None and (n_dims < lo or (hi is not None and n_dims > hi)):
            want = str(lo) if hi == lo else (f"{lo} to {hi}" if hi else f"at least {lo}")
            raise ValueError(f"{type(self).__name__} needs {want} dimension(s), found {n_dims}")

    def _prepare(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim == 1:
            X = X[:, None]
        if X.ndim != 2:
            raise ValueError(f"expected a 2-D (events × dims) array, found shape {X.shape}")
        self.validate(X.shape[1])
        self.n_fit_events_ = min(X.shape[0], self.max_events)
        if X.shape[0] > self.max_events:
            X = X[subsample_indices(X.shape[0], self.max_events, self.seed)]
        finite = np.isfinite(X).all(axis=1)
        if not finite.all():  # (no copy of the usual all-finite subsample)
            X = X[finite]
        if X.shape[0] < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 finite events to fit, found {X.shape[0]}")
        return X

    def apply(self, X: np.ndarray) -> np.ndarray:
        """Boolean mask of the rows of ``X`` inside the fitted gate."""
        if not hasattr(self, "geometry_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(X) first")
        X = np.asarray(X)
        return geometry_mask(self.geometry_, X[:, None] if X.ndim == 1 else X)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.param_names())
        return f"{type(self).__name__}({args})"


def _smoothed_density(x: np.ndarray, bounds, bins: int, adjust: float):
    """Histogram density on ``bins`` points within bounds, smoothed by a Gaussian (Silverman bandwidth × adjust).

    Returns ``(centers, density, bandwidth, sorted x)``: the quantiles, histogram and IQR are read off one sort
    of ``x`` (:mod:`mrdflow.quantiles`; the same numbers as ``np.quantile``/``np.histogram``, several times
    faster), which callers reuse.
    """
    xs = np.sort(x)
    lo, hi = (bounds if bounds is not None else (None, None))
    lo = float(sorted_quantile(xs, 0.001)) if lo is None else float(lo)
    hi = float(sorted_quantile(xs, 0.999)) if hi is None else float(hi)
    if not hi > lo:
        raise ValueError(f"empty density range [{lo}, {hi}]")
    # the values within [lo, hi]: a slice of the sorted ones, and (for the order-dependent sums of np.std)
    # the same values in their original order
    inner = sorted_within(xs, lo, hi)
    hist, edges = sorted_histogram(inner, bins, (lo, hi))
    centers = 0.5 * (edges[:-1] + edges[1:])
    width = edges[1] - edges[0]
    if inner.size > 1:
        x = x[(x >= lo) & (x <= hi)]
        iqr = np.subtract(*sorted_quantile(inner, [0.75, 0.25]))
        sigma = min(np.std(x), iqr / 1.349) or np.std(x) or width
        h = 0.9 * sigma * x.size ** -0.2 * adjust
    else:
        h = width
    hb = max(h / width, 0.5)
    half = int(4 * hb) + 1
    k = np.arange(-half, half + 1)
    kernel = np.exp(-0.5 * (k / hb) ** 2)
    # the bins' own window of the full convolution: what mode="same" gives while the kernel is shorter than the
    # histogram, and still one value per bin when a very wide bandwidth (e.g. two point masses) makes it longer
    dens = np.convolve(hist.astype(float), kernel / kernel.sum(), mode="full")[half:half + hist.size]
    return centers, dens / (dens.sum() * width if dens.sum() else 1.0), hb * width, xs


def _shoulder(centers, dens, mode_i, side: str, k: float, h: float) -> tuple[float, float]:
    """Threshold ``mode ± k·σ`` where σ comes from the half-maximum point on ``side`` of the peak, with the
    smoothing bandwidth ``h`` removed (σ² = σ_observed² − h²)."""
    half = dens[mode_i] / 2.0
    if side == "above":
        rest = np.nonzero(dens[mode_i:] < half)[0]
        x_half = centers[mode_i + rest[0]] if rest.size else centers[-1]
    else:
        rest = np.nonzero(dens[: mode_i + 1][::-1] < half)[0]
        x_half = centers[mode_i - rest[0]] if rest.size else centers[0]
    sigma_obs = abs(x_half - centers[mode_i]) / np.sqrt(2 * np.log(2))
    sigma = np.sqrt(max(sigma_obs ** 2 - h ** 2, (0.25 * sigma_obs) ** 2))
    thr = centers[mode_i] + (k * sigma if side == "above" else -k * sigma)
    return float(thr), float(sigma)


def _gap_above(centers, dens, mode_i: int, xs: np.ndarray, depth: float, min_events: int,
               pick: str = "deepest") -> float | None:
    """A density gap above ``mode_i`` with a population beyond it (see :class:`Tail`), or None.

    Depth of bin ``i``: ``dens[i] / max(dens[i+1:])`` (≥ 1 on a falling flank, near 0 in a gap before a bump).
    Bins with depth ≤ ``depth`` and ≥ ``min_events`` of the values (``xs``, sorted) beyond them qualify.
    ``pick="deepest"``: the deepest qualifying bin anywhere above the peak (the lowest on a tie);
    ``pick="first"``: the deepest bin of the *first* run of qualifying bins above the peak — the gap right
    above the peak's population, so a dimmer population between it and a brighter one stays above the threshold.
    """
    tail = dens[mode_i + 1:]
    if tail.size < 3:
        return None
    ahead = np.maximum.accumulate(tail[::-1])[::-1]  # highest density at or above each bin
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ahead[1:] > 0, tail[:-1] / ahead[1:], np.inf)

    def enough_beyond(i: int) -> bool:
        return xs.size - np.searchsorted(xs, float(centers[mode_i + 1 + i]), side="left") >= min_events

    if pick == "first":
        low = np.flatnonzero(ratio <= depth)
        if not low.size:
            return None
        run_end = low[0]
        while run_end + 1 < ratio.size and ratio[run_end + 1] <= depth:
            run_end += 1
        run = np.arange(low[0], run_end + 1)
        i = int(run[np.argmin(ratio[run])])  # the first minimum on a tie
        return float(centers[mode_i + 1 + i]) if enough_beyond(i) else None
    for i in np.argsort(ratio, kind="stable"):
        if not ratio[i] <= depth:
            return None
        if enough_beyond(int(i)):
            return float(centers[mode_i + 1 + i])
    return None


def _range_geometry(threshold: float, keep: str) -> dict:
    return {"type": "range", "min": threshold if keep == "above" else None,
            "max": threshold if keep == "below" else None}


class _Density1D(AdaptiveGate):
    n_dims = (1, 1)

    def __init__(self, *, keep: str = "above", bounds: list[float] | None = None, bins: int = 512,
                 adjust: float = 1.0, max_events: int = 200_000, seed: int = 0):
        super().__init__(max_events=max_events, seed=seed)
        self.keep = keep
        self.bounds = bounds
        self.bins = bins
        self.adjust = adjust

    def validate(self, n_dims: int | None = None) -> None:
        super().validate(n_dims)
        if self.keep not in ("above", "below"):
            raise ValueError(f"keep must be 'above' or 'below', found {self.keep!r}")
        if self.bounds is not None:
            if not (isinstance(self.bounds, (list, tuple)) and len(self.bounds) == 2
                    and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in self.bounds)
                    and self.bounds[0] < self.bounds[1]):
                raise ValueError(f"bounds must be [low, high] with low < high, found {self.bounds!r}")
        if not isinstance(self.bins, int) or self.bins < 16:
            raise ValueError(f"bins must be an integer ≥ 16, found {self.bins!r}")
        if not isinstance(self.adjust, (int, float)) or not self.adjust > 0:
            raise ValueError(f"adjust must be a positive number, found {self.adjust!r}")


class DensityValley(_Density1D):
    """1-D threshold at the deepest density valley between the two highest modes within ``bounds``.

    Parameters
    ----------
    keep : ``"above"`` keeps events ≥ threshold (positive population), ``"below"`` keeps events < threshold.
    bounds : ``[low, high]`` in transformed units to search in (default: 0.1–99.9 % quantiles of the data).
    min_prominence : a mode counts when its prominence is ≥ this fraction of the highest density.
    pick : which two modes the valley lies between: ``"highest"`` (default, the two highest), ``"lowest"``
        (the two lowest in position, e.g. debris below the first cell population on FSC) or ``"deepest"`` (the
        two neighbouring modes with the lowest density between them, e.g. CD45-negative NRBC below CD45-dim
        precursors and CD45-bright lymphocytes: the emptiest gap wins, whichever modes are the tallest).
    fallback : when fewer than two modes are found — a number is used as the threshold; ``"shoulder"``
        (default) puts it at ``mode + shoulder_k·σ`` above the single mode (σ from its upper half-maximum), i.e.
        the positive population is assumed absent; ``"shoulder_below"`` puts it at ``mode − shoulder_k·σ``
        (σ from the lower half-maximum), i.e. the single mode is the positive population.
    shoulder_k : see ``fallback``.
    bins, adjust : density grid size and bandwidth multiplier (Silverman's rule × adjust).

    Attributes
    ----------
    threshold_, modes_ (the two mode positions), used_fallback_, geometry_.
    """

    def __init__(self, *, keep: str = "above", bounds: list[float] | None = None,
                 min_prominence: float = 0.05, fallback: float | str = "shoulder", shoulder_k: float = 3.0,
                 pick: str = "highest", bins: int = 512, adjust: float = 1.0, max_events: int = 200_000,
                 seed: int = 0):
        super().__init__(keep=keep, bounds=bounds, bins=bins, adjust=adjust, max_events=max_events, seed=seed)
        self.pick = pick
        self.min_prominence = min_prominence
        self.fallback = fallback
        self.shoulder_k = shoulder_k

    def validate(self, n_dims: int | None = None) -> None:
        super().validate(n_dims)
        if not isinstance(self.min_prominence, (int, float)) or not 0 < self.min_prominence < 1:
            raise ValueError(f"min_prominence must be between 0 and 1, found {self.min_prominence!r}")
        if self.fallback not in ("shoulder", "shoulder_below") and not (
                isinstance(self.fallback, (int, float)) and not isinstance(self.fallback, bool)):
            raise ValueError(f"fallback must be 'shoulder', 'shoulder_below' or a threshold number, "
                             f"found {self.fallback!r}")
        if self.pick not in ("highest", "lowest", "deepest"):
            raise ValueError(f"pick must be 'highest', 'lowest' or 'deepest', found {self.pick!r}")
        if not isinstance(self.shoulder_k, (int, float)) or not self.shoulder_k > 0:
            raise ValueError(f"shoulder_k must be a positive number, found {self.shoulder_k!r}")

    def fit(self, X: np.ndarray) -> "DensityValley":
        x = self._prepare(X)[:, 0]
        centers, dens, h, xs = _smoothed_density(x, self.bounds, self.bins, self.adjust)
        peaks = find_peaks(np.r_[0.0, dens, 0.0], prominence=self.min_prominence * dens.max())
        peaks = peaks - 1
        if peaks.size >= 2:
            if self.pick == "lowest":
                top2 = np.sort(peaks)[:2]
            elif self.pick == "deepest":
                ordered = np.sort(peaks)
                floors = [dens[a:b + 1].min() for a, b in zip(ordered[:-1], ordered[1:])]
                i = int(np.argmin(floors))
                top2 = ordered[i:i + 2]
            else:
                top2 = np.sort(peaks[np.argsort(dens[peaks])[-2:]])
            between = slice(top2[0], top2[1] + 1)
            valley = top2[0] + int(np.argmin(dens[between]))
            self.threshold_ = float(centers[valley])
            self.modes_ = (float(centers[top2[0]]), float(centers[top2[1]]))
            self.used_fallback_ = False
        else:
            mode_i = int(np.argmax(dens))
            self.modes_ = (float(centers[mode_i]),)
            self.used_fallback_ = True
            if self.fallback in ("shoulder", "shoulder_below"):
                side = "above" if self.fallback == "shoulder" else "below"
                self.threshold_, _ = _shoulder(centers, dens, mode_i, side, self.shoulder_k, h)
            else:
                self.threshold_ = float(self.fallback)
        self.geometry_ = _range_geometry(self.threshold_, self.keep)
        return self


class Tail(_Density1D):
    """1-D threshold on the shoulder of one peak: ``mode ± k·σ``.

    σ is estimated from the half-maximum crossing on ``side`` of the peak (robust to a minor population in the
    tail). ``side="above"`` puts the threshold right of the peak; ``keep`` says which side of it is kept
    (default: the tail beyond the peak, i.e. ``keep`` = ``side``). ``peak`` chooses the peak: ``"dominant"``
    (default, the highest), ``"first"`` or ``"last"`` (the lowest / highest in position among the peaks with a
    prominence ≥ ``min_prominence`` of the highest density) — e.g. ``first`` for the negative population when a
    positive one may dominate (a leukaemic blood), ``last`` for the brightest population of a positive gate.

    ``gap_depth`` (``side="above"`` only; default None = off) looks for a rare population beyond a density gap
    above the peak — e.g. mast cells, far brighter in CD117 than the myeloid precursors and far fewer: the
    threshold moves to the bin above the peak where the density, relative to the highest density still to come
    above it, is lowest, when that ratio is ≤ ``gap_depth`` and ≥ ``gap_min_events`` events lie beyond it.
    The shoulder alone misplaces such a gate both ways: a minor population merged into the peak's flank widens
    σ past the rare one, and a peak too small to count leaves the threshold inside it. ``gap_pick`` chooses
    among several gaps: ``"deepest"`` (default) the emptiest anywhere above the peak, ``"first"`` the emptiest
    point of the first gap above the peak's population — e.g. CD138: the gap between the CD138-negative cells
    and the plasma cells, so a CD138-dim clone below the bright normal PCs stays in. The gap does not depend on
    how the scale shapes the negative population's spread (a dim instrument or integer DATA clipped at 0 change
    the shoulder's σ 2–3-fold).

    Attributes
    ----------
    threshold_, mode_, sigma_, gap_ (True when the threshold sits in a gap), geometry_.
    """

    def __init__(self, *, side: str = "above", k: float = 3.0, keep: str | None = None, peak: str = "dominant",
                 min_prominence: float = 0.05, bounds: list[float] | None = None, bins: int = 512,
                 adjust: float = 1.0, max_events: int = 200_000, seed: int = 0, gap_depth: float | None = None,
                 gap_min_events: int = 3, gap_pick: str = "deepest"):
        super().__init__(keep=keep if keep is not None else side, bounds=bounds, bins=bins, adjust=adjust,
                         max_events=max_events, seed=seed)
        self.keep = keep
        self.side = side
        self.k = k
        self.peak = peak
        self.min_prominence = min_prominence
        self.gap_depth = gap_depth
        self.gap_min_events = gap_min_events
        self.gap_pick = gap_pick

    def validate(self, n_dims: int | None = None) -> None:
        keep = self.keep
        self.keep = keep if keep is not None else self.side
        try:
            super().validate(n_dims)
        finally:
            self.keep = keep
        if self.side not in ("above", "below"):
            raise ValueError(f"side must be 'above' or 'below', found {self.side!r}")
        if not isinstance(self.k, (int, float)) or not self.k > 0:
            raise ValueError(f"k must be a positive number, found {self.k!r}")
        if self.peak not in ("dominant", "first", "last"):
            raise ValueError(f"peak must be 'dominant', 'first' or 'last', found {self.peak!r}")
        if not isinstance(self.min_prominence, (int, float)) or not 0 < self.min_prominence < 1:
            raise ValueError(f"min_prominence must be between 0 and 1, found {self.min_prominence!r}")
        if self.gap_depth is not None:
            if self.side != "above":
                raise ValueError("gap_depth looks for a population above the peak: it needs side 'above'")
            if isinstance(self.gap_depth, bool) or not isinstance(self.gap_depth, (int, float)) \
                    or not 0 < self.gap_depth < 1:
                raise ValueError(f"gap_depth must be between 0 and 1, found {self.gap_depth!r}")
        if isinstance(self.gap_min_events, bool) or not isinstance(self.gap_min_events, int) \
                or self.gap_min_events < 1:
            raise ValueError(f"gap_min_events must be a positive integer, found {self.gap_min_events!r}")
        if self.gap_pick not in ("deepest", "first"):
            raise ValueError(f"gap_pick must be 'deepest' or 'first', found {self.gap_pick!r}")

    def fit(self, X: np.ndarray) -> "Tail":
        x = self._prepare(X)[:, 0]
        centers, dens, h, xs = _smoothed_density(x, self.bounds, self.bins, self.adjust)
        mode_i = int(np.argmax(dens))
        if self.peak != "dominant":
            peaks = find_peaks(np.r_[0.0, dens, 0.0], prominence=self.min_prominence * dens.max())
            peaks = peaks - 1
            if peaks.size:
                mode_i = int(peaks.min() if self.peak == "first" else peaks.max())
        self.mode_ = float(centers[mode_i])
        self.threshold_, self.sigma_ = _shoulder(centers, dens, mode_i, self.side, self.k, h)
        self.gap_ = False
        if self.gap_depth is not None:
            valley = _gap_above(centers, dens, mode_i, xs, self.gap_depth, self.gap_min_events, self.gap_pick)
            if valley is not None:
                self.threshold_, self.gap_ = valley, True
        self.geometry_ = _range_geometry(self.threshold_, self.keep if self.keep is not None else self.side)
        return self


class Cluster(AdaptiveGate):
    """Gaussian mixture (scikit-learn, full covariances); keep the component whose mean is nearest ``target``.

    The gate is that component's ellipsoid containing ``quantile`` of its mass: squared Mahalanobis distance
    ≤ χ²(quantile, n_dims). One dimension gives a range.

    Attributes
    ----------
    means_, component_ (index picked), mean_, covariance_, distance_square_, geometry_.
    """

    n_dims = (1, None)

    def __init__(self, *, target: list[float] | None = None, n_components: int = 2, quantile: float = 0.95,
                 n_init: int = 1, max_events: int = 50_000, seed: int = 0):
        super().__init__(max_events=max_events, seed=seed)
        self.target = target
        self.n_components = n_components
        self.quantile = quantile
        self.n_init = n_init

    def validate(self, n_dims: int | None = None) -> None:
        super().validate(n_dims)
        if not isinstance(self.target, (list, tuple)) or not all(
                isinstance(t, (int, float)) and not isinstance(t, bool) for t in self.target):
            raise ValueError(f"target must be a list of numbers (one per dimension), found {self.target!r}")
        if n_dims is not None and len(self.target) != n_dims:
            raise ValueError(f"target has {len(self.target)} coordinate(s), expected {n_dims} (one per dimension)")
        if not isinstance(self.n_components, int) or not 1 <= self.n_components <= 20:
            raise ValueError(f"n_components must be an integer 1–20, found {self.n_components!r}")
        if not isinstance(self.quantile, (int, float)) or not 0 < self.quantile < 1:
            raise ValueError(f"quantile must be between 0 and 1, found {self.quantile!r}")
        if not isinstance(self.n_init, int) or self.n_init < 1:
            raise ValueError(f"n_init must be a positive integer, found {self.n_init!r}")

    def fit(self, X: np.ndarray) -> "Cluster":
        from sklearn.mixture import GaussianMixture

        X = self._prepare(X).astype(np.float64)
        gmm = GaussianMixture(n_components=self.n_components, covariance_type="full", n_init=self.n_init,
                              random_state=self.seed, reg_covar=1e-6)
        gmm.fit(X)
        self.means_ = gmm.means_
        self.weights_ = gmm.weights_
        self.component_ = int(np.argmin(np.linalg.norm(gmm.means_ - np.asarray(self.target, float), axis=1)))
        self.mean_ = gmm.means_[self.component_]
        self.covariance_ = gmm.covariances_[self.component_]
        d = X.shape[1]
        self.distance_square_ = chi2_ppf(self.quantile, d)
        self.geometry_ = _ellipse_geometry(self.mean_, self.covariance_, self.distance_square_, inside=True)
        return self


def _ellipse_geometry(mean, cov, d2: float, inside: bool) -> dict:
    mean = np.asarray(mean, float)
    cov = np.atleast_2d(np.asarray(cov, float))
    if mean.size == 1:
        half = float(np.sqrt(d2 * cov[0, 0]))
        if inside:
            return {"type": "range", "min": float(mean[0] - half), "max": float(mean[0] + half)}
    return {"type": "ellipse" if inside else "not_ellipse", "mean": mean.tolist(), "covariance": cov.tolist(),
            "distance_square": float(d2)}


class Singlet(AdaptiveGate):
    """Singlets by the area/height ratio of one scatter signal (PeacoQC ``RemoveDoublets``).

    ``dims`` are ``[area, height]`` (e.g. ``[FSC-A, FSC-H]``, linear scale). With ``r = area/height`` (height
    > 0), events with ``lower_ ≤ r < upper_`` are kept where ``upper_ = median(r) + k·MAD(r)`` (MAD scaled by
    1.4826 as R's ``mad``; PeacoQC default k = 4) and ``lower_ = median(r) − k_low·MAD(r)`` when ``k_low`` is
    given, else 0. The gate is the wedge polygon between those two ratio lines.

    Attributes
    ----------
    median_, mad_, lower_, upper_, geometry_.
    """

    n_dims = (2, 2)

    #: how far out the wedge polygon reaches in height units (far beyond any instrument scale)
    reach = 1e9

    def __init__(self, *, k: float = 4.0, k_low: float | None = None, max_events: int = 200_000, seed: int = 0):
        super().__init__(max_events=max_events, seed=seed)
        self.k = k
        self.k_low = k_low

    def validate(self, n_dims: int | None = None) -> None:
        super().validate(n_dims)
        for name in ("k", "k_low"):
            v = getattr(self, name)
            if (v is not None or name == "k") and (not isinstance(v, (int, float)) or not v > 0):
                raise ValueError(f"{name} must be a positive number, found {v!r}")

    def fit(self, X: np.ndarray) -> "Singlet":
        X = self._prepare(X).astype(np.float64)
        ok = X[:, 1] > 0
        r = X[ok, 0] / X[ok, 1]
        if r.size == 0:
            raise ValueError("no event has a positive height (the second dimension), so there is no "
                             "area/height ratio to place the singlet gate on")
        # = np.median(r) and stats.median_abs_deviation(r, scale="normal"), each median by one single-rank
        # partition (mrdflow.quantiles.median)
        med = median(r)
        self.median_ = float(med)
        self.mad_ = float(median(np.abs(r - med)) / _MAD_NORMAL)
        self.upper_ = self.median_ + self.k * self.mad_
        self.lower_ = max(0.0, self.median_ - self.k_low * self.mad_) if self.k_low is not None else 0.0
        h = self.reach
        self.geometry_ = {"type": "polygon",
                          "vertices": [[0.0, 0.0], [self.upper_ * h, h], [self.lower_ * h, h]]}
        return self


#: scipy's ``median_abs_deviation(scale="normal")`` divisor: the standard normal's 75th percentile
_MAD_NORMAL = float(special.ndtri(0.75))  # = scipy.stats.norm.ppf(0.75)


class Margin(AdaptiveGate):
    """Remove margin events: those at the detector's lower or upper limit in any of ``dims``.

    ``upper``/``lower`` give the limits (one per dim, ``null`` = none) in transformed units; the engine fills
    unset upper limits from each channel's $PnR (the transformed value of $PnR − 1, so values stored as
    $PnR − 1 or $PnR both count as saturated). A limit still unset is taken from the data when at least
    ``min_pile`` events sit exactly at the extreme value (a pile-up is what saturation looks like), otherwise
    that side is open; and a pile-up at the top *below* the $PnR-derived limit (an instrument that saturates
    under its $PnR − 1, or data rescaled after acquisition) lowers that limit to the pile. Kept:
    ``lower_ < x < upper_`` in every dim.

    Attributes
    ----------
    lower_, upper_ (lists, None = open), geometry_.
    """

    def __init__(self, *, lower: list[float | None] | None = None, upper: list[float | None] | None = None,
                 min_pile: int = 10, max_events: int = 200_000, seed: int = 0):
        super().__init__(max_events=max_events, seed=seed)
        self.lower = lower
        self.upper = upper
        self.min_pile = min_pile

    def validate(self, n_dims: int | None = None) -> None:
        super().validate(n_dims)
        for name in ("lower", "upper"):
            v = getattr(self, name)
            if v is None:
                continue
            if not isinstance(v, (list, tuple)) or not all(
                    e is None or (isinstance(e, (int, float)) and not isinstance(e, bool)) for e in v):
                raise ValueError(f"{name} must be a list of numbers or nulls (one per dimension), found {v!r}")
            if n_dims is not None and len(v) != n_dims:
                raise ValueError(f"{name} has {len(v)} value(s), expected {n_dims} (one per dimension)")
        if not isinstance(self.min_pile, int) or self.min_pile < 1:
            raise ValueError(f"min_pile must be a positive integer, found {self.min_pile!r}")

    def fit(self, X: np.ndarray, *, channel_upper: list[float | None] | None = None) -> "Margin":
        """``channel_upper``: the engine's $PnR-derived upper limits, used where ``upper`` is unset."""
        X = np.asarray(X)
        X = X[:, None] if X.ndim == 1 else X
        self.validate(X.shape[1])
        d = X.shape[1]
        lower = list(self.lower) if self.lower is not None else [None] * d
        upper = list(self.upper) if self.upper is not None else [None] * d
        for j in range(d):
            if upper[j] is None and channel_upper is not None and channel_upper[j] is not None:
                upper[j] = float(channel_upper[j])
        # piles are looked for on all rows: saturated events may be rare yet must all be found
        for j in range(d):
            col = X[:, j]
            top = col.max()
            piled = np.count_nonzero(col == top) >= self.min_pile
            if upper[j] is None:
                if piled:
                    upper[j] = float(top)
            elif piled and top < upper[j] and (self.upper is None or self.upper[j] is None):
                # a detector that saturates below $PnR - 1 (its pile-up is what saturation looks like): the
                # limit the engine derived from $PnR would keep those events
                upper[j] = float(top)
            if lower[j] is None:
                bottom = col.min()
                if np.count_nonzero(col == bottom) >= self.min_pile:
                    lower[j] = float(bottom)
        self.lower_ = [None if v is None else float(v) for v in lower]
        self.upper_ = [None if v is None else float(v) for v in upper]
        # GatingML ranges are min-inclusive: the first float above the lower limit
        mins = [None if v is None else float(np.nextafter(np.float32(v), np.float32(np.inf))) for v in self.lower_]
        self.geometry_ = {"type": "rectangle" if d > 1 else "range",
                          "min": mins if d > 1 else mins[0], "max": self.upper_ if d > 1 else self.upper_[0]}
        return self


class ReferenceDistance(AdaptiveGate):
    """Mahalanobis-type distance from a reference population, thresholded at a χ² quantile.

    The reference is either another population of the same sample (``reference: node name``; the engine passes
    its events to ``fit(X, reference=...)``) or a stored model (``model: {mean: [...], covariance: [[...]]}``
    in transformed units). ``side="outside"`` (default) keeps events whose squared distance exceeds
    χ²(quantile, n_dims) — e.g. phenotypically aberrant plasma cells against the normal-PC reference —
    ``"inside"`` keeps the rest. ``robust=True`` estimates the reference with scikit-learn's MinCovDet.

    Attributes
    ----------
    mean_, covariance_, distance_square_, n_reference_, geometry_.
    """

    def __init__(self, *, reference: str | None = None, model: dict | None = None, quantile: float = 0.999,
                 side: str = "outside", robust: bool = False, min_reference_events: int = 20,
                 max_events: int = 200_000, seed: int = 0):
        super().__init__(max_events=max_events, seed=seed)
        self.reference = reference
        self.model = model
        self.quantile = quantile
        self.side = side
        self.robust = robust
        self.min_reference_events = min_reference_events

    def validate(self, n_dims: int | None = None) -> None:
        super().validate(n_dims)
        if (self.reference is None) == (self.model is None):
            raise ValueError("give exactly one of 'reference' (a population name) or 'model' (mean + covariance)")
        if self.reference is not None and not isinstance(self.reference, str):
            raise ValueError(f"reference must be a population name, found {self.reference!r}")
        if self.model is not None:
            if not isinstance(self.model, dict) or set(self.model) != {"mean", "covariance"}:
                raise ValueError(f"model must be a mapping with exactly 'mean' and 'covariance', found {self.model!r}")
            mean = np.asarray(self.model["mean"], float)
            cov = np.asarray(self.model["covariance"], float)
            d = mean.size if n_dims is None else n_dims
            if mean.shape != (d,) or cov.shape != (d, d):
                raise ValueError(f"model needs a mean of {d} values and a {d}×{d} covariance, found shapes "
                                 f"{mean.shape} and {cov.shape}")
            if not np.allclose(cov, cov.T) or np.any(np.linalg.eigvalsh(cov) <= 0):
                raise ValueError("model covariance must be symmetric positive definite")
        if not isinstance(self.quantile, (int, float)) or not 0 < self.quantile < 1:
            raise ValueError(f"quantile must be between 0 and 1, found {self.quantile!r}")
        if self.side not in ("outside", "inside"):
            raise ValueError(f"side must be 'outside' or 'inside', found {self.side!r}")
        if not isinstance(self.robust, bool):
            raise ValueError(f"robust must be true or false, found {self.robust!r}")

    def fit(self, X: np.ndarray | None = None, *, reference: np.ndarray | None = None) -> "ReferenceDistance":
        """``X`` (the parent's events) is only used for its dimension count; the geometry comes from the
        reference events or the stored model."""
        d = None if X is None else (1 if np.asarray(X).ndim == 1 else np.asarray(X).shape[1])
        self.validate(d)
        if self.model is not None:
            self.mean_ = np.asarray(self.model["mean"], float)
            self.covariance_ = np.asarray(self.model["covariance"], float)
            self.n_reference_ = 0
        else:
            if reference is None:
                raise ValueError(f"reference population {self.reference!r} events were not given to fit()")
            R = self._prepare(reference).astype(np.float64)
            if R.shape[0] < max(self.min_reference_events, R.shape[1] + 1):
                raise ValueError(f"reference population {self.reference!r} has {R.shape[0]} events; at least "
                                 f"{max(self.min_reference_events, R.shape[1] + 1)} are needed to estimate it")
            if self.robust:
                from sklearn.covariance import MinCovDet
                mcd = MinCovDet(random_state=self.seed).fit(R)
                self.mean_, self.covariance_ = mcd.location_, mcd.covariance_
            else:
                self.mean_, self.covariance_ = R.mean(axis=0), np.atleast_2d(np.cov(R, rowvar=False))
            self.n_reference_ = R.shape[0]
        d = self.mean_.size
        self.distance_square_ = chi2_ppf(self.quantile, d)
        if d == 1:
            half = float(np.sqrt(self.distance_square_ * self.covariance_.ravel()[0]))
            lo, hi = float(self.mean_[0] - half), float(self.mean_[0] + half)
            self.geometry_ = ({"type": "range", "min": lo, "max": hi} if self.side == "inside"
                              else {"type": "not_range", "min": lo, "max": hi})
        else:
            self.geometry_ = _ellipse_geometry(self.mean_, self.covariance_, self.distance_square_,
                                               inside=self.side == "inside")
        return self


#: template ``method:`` name → class
METHODS: dict[str, type[AdaptiveGate]] = {
    "density_valley": DensityValley,
    "tail": Tail,
    "cluster": Cluster,
    "singlet": Singlet,
    "margin": Margin,
    "reference_distance": ReferenceDistance,
}
