"""Time / flow-rate stability QC, PeacoQC/flowAI-like, in numpy.

A clog, a bubble or a pressure drop shows as a stretch of the acquisition where the event rate changes and the
signals shift. Following PeacoQC (Emmaneel et al., Cytometry A 2022) and flowAI (Monaco et al.,
Bioinformatics 2016), DOMAIN.md §3.3:

1. events are put in time order and cut into bins of equal event count (PeacoQC's automatic size: at least
   ``min_events_per_bin`` = 150 events and at most ``max_bins`` = 500 bins);
2. per bin: the event rate (events per time unit, from the bin's time span) and the level of each signal
   channel (compensated and transformed values, as PeacoQC requires). The level is the mean of the values
   winsorised at the channel's 1st/99th percentiles over all events — not the median flowAI uses: on a
   bimodal marker the median of a bin jumps between the modes whenever the bin's population mix wobbles,
   whereas the winsorised mean moves smoothly and is still robust to a few extreme events;
3. each trace is detrended by a running median over ``trend_window`` of the bins (with odd reflection at the
   ends, so a linear drift is followed exactly) — a slow drift of a tube emptying or a laser warming is not
   an anomaly; a stretch shorter than about half the window is;
4. a bin is bad when its residual is more than ``mad_threshold`` (6, PeacoQC's ``MAD``) robust standard
   deviations (1.4826·MAD) from the median residual **and** larger than a minimal effect size
   (``min_rate_change`` relative rate change, ``min_signal_shift`` × the channel's robust SD over events), so
   that huge bins do not turn negligible wobbles into removals;
5. stretches of fewer than ``consecutive_bins`` (5, PeacoQC) good bins between bad bins are removed too.

The result keeps a per-bin trace for the report's plot, the excluded time ranges and the kept-event mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.ndimage import median_filter

from mrdflow.errors import AnalysisError
from mrdflow.kernels.bins import clipped_bin_means
from mrdflow.quantiles import sorted_quantile

_MAD_TO_SD = 1.4826


@dataclass(frozen=True)
class TimeQcSettings:
    """Settings of :func:`time_qc`; defaults from PeacoQC where it has one (DOMAIN.md §3.3).

    Parameters
    ----------
    min_events_per_bin
        Smallest bin (PeacoQC ``min_cells`` = 150).
    max_bins
        Most bins (PeacoQC ``max_bins`` = 500); the automatic bin size is
        ``max(min_events_per_bin, ceil(n_events / max_bins))``.
    events_per_bin
        Fixed bin size instead of the automatic one.
    mad_threshold
        Outlier distance in robust SDs of the detrended bin trace (PeacoQC ``MAD`` = 6).
    consecutive_bins
        Good stretches shorter than this between bad bins are removed (PeacoQC ``consecutive_bins`` = 5).
    trend_window
        Running-median window as a fraction of the number of bins (0.5, ours): anomalies lasting less than
        about half of it are found; slower changes count as drift.
    min_rate_change
        Smallest relative flow-rate change that can flag a bin (0.25 = ±25 %, ours).
    min_signal_shift
        Smallest shift of a bin median, in robust SDs of the channel over all events, that can flag a bin
        (0.15, ours).
    max_order_correlation
        Time QC compares stretches of the acquisition, which assumes that consecutive events are independent
        cells (in a real acquisition the correlation of consecutive events' signals is ~0, |r| ≤ 0.04 even
        through a severe clog on the simulator's files). When the median over the signal channels of that lag-1
        correlation (in Time order) is above this (0.3, ours), the events are not in acquisition order — e.g.
        written population by population (r ≈ 0.8–0.95) — and nothing is removed, with a ``time_qc_not_done``
        warning: on such a file every stretch would look like a signal shift.
    """

    min_events_per_bin: int = 150
    max_bins: int = 500
    events_per_bin: int | None = None
    mad_threshold: float = 6.0
    consecutive_bins: int = 5
    trend_window: float = 0.5
    min_rate_change: float = 0.25
    min_signal_shift: float = 0.15
    max_order_correlation: float = 0.3

    def __post_init__(self) -> None:
        checks = [
            ("min_events_per_bin", isinstance(self.min_events_per_bin, int) and self.min_events_per_bin >= 10,
             "an integer >= 10"),
            ("max_bins", isinstance(self.max_bins, int) and self.max_bins >= 1, "an integer >= 1"),
            ("events_per_bin", self.events_per_bin is None
             or (isinstance(self.events_per_bin, int) and self.events_per_bin >= 10), "None or an integer >= 10"),
            ("mad_threshold", self.mad_threshold > 0, "a positive number"),
            ("consecutive_bins", isinstance(self.consecutive_bins, int) and self.consecutive_bins >= 0,
             "an integer >= 0"),
            ("trend_window", 0 < self.trend_window <= 1, "a fraction in (0, 1]"),
            ("min_rate_change", self.min_rate_change >= 0, "a number >= 0"),
            ("min_signal_shift", self.min_signal_shift >= 0, "a number >= 0"),
            ("max_order_correlation", 0 < self.max_order_correlation <= 1, "a number in (0, 1]"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise AnalysisError(f"TimeQcSettings.{name}: expected {expected}, found {getattr(self, name)!r}")


@dataclass(frozen=True)
class TimeQcResult:
    """Outcome of :func:`time_qc`.

    Attributes
    ----------
    keep
        Boolean mask over the input events (input order): True for events outside excluded stretches.
    bin_edges
        Event positions (in time order) where bins start, plus ``n_events`` at the end; shape (n_bins + 1,).
    bin_start, bin_end
        Time of each bin's first event and of the next bin's first event (Time-channel units).
    bin_rate
        Events per Time unit in each bin.
    bin_levels
        Winsorised mean of each signal channel per bin, shape (n_bins, n_signal_channels).
    signal_columns
        The event-matrix columns of ``bin_levels``.
    bad_rate, bad_signal
        Per-bin flags from the rate trace and (n_bins, n_channels) flags from the level traces.
    removed_bins
        Bins removed (bad, or a short good stretch between bad bins).
    excluded_ranges
        ``(start, end)`` Time ranges removed, in Time-channel units.
    fraction_removed
        Fraction of events removed.
    flags
        ``flow_rate_anomaly`` and/or ``signal_shift`` when any bin was bad for that reason.
    warnings
        Readable notes (e.g. coarse Time resolution).
    """

    keep: np.ndarray
    bin_edges: np.ndarray
    bin_start: np.ndarray
    bin_end: np.ndarray
    bin_rate: np.ndarray
    bin_levels: np.ndarray
    signal_columns: tuple[int, ...]
    bad_rate: np.ndarray
    bad_signal: np.ndarray
    removed_bins: np.ndarray
    excluded_ranges: tuple[tuple[float, float], ...]
    fraction_removed: float
    flags: tuple[str, ...]
    warnings: tuple[str, ...]


def _running_median(values: np.ndarray, window: int) -> np.ndarray:
    """Centred running median with odd reflection at both ends (exact on linear trends)."""
    n = values.size
    half = min(window // 2, n - 1)
    if half <= 0:
        return values.copy()
    left = 2.0 * values[0] - values[half:0:-1]
    right = 2.0 * values[-1] - values[-2:-2 - half:-1]
    padded = np.concatenate([left, values, right])
    # = np.median(sliding_window_view(padded, 2 * half + 1), axis=1): an odd window's median is one of its
    # values, so scipy's running selection gives the same numbers (~50x faster on a few hundred bins)
    return median_filter(padded, size=2 * half + 1, mode="nearest")[half:half + n]


def _outliers(trace: np.ndarray, window: int, mad_threshold: float, min_effect: float) -> np.ndarray:
    """Bins whose detrended value is a robust outlier and exceeds ``min_effect``."""
    residual = trace - _running_median(trace, window)
    centre = np.median(residual)
    spread = _MAD_TO_SD * np.median(np.abs(residual - centre))
    deviation = np.abs(residual - centre)
    return (deviation > mad_threshold * spread) & (deviation > min_effect)


def _fill_short_good_runs(bad: np.ndarray, max_len: int) -> np.ndarray:
    """Mark as bad every run of < ``max_len`` good bins that has bad bins on both sides."""
    out = bad.copy()
    bad_idx = np.flatnonzero(bad)
    for a, b in zip(bad_idx[:-1], bad_idx[1:]):
        if 1 < b - a <= max_len:  # b - a - 1 good bins in between
            out[a + 1:b] = True
    return out


def _nothing_removed(n: int, columns: tuple[int, ...], warnings: list[str]) -> TimeQcResult:
    empty = np.zeros(0)
    return TimeQcResult(
        keep=np.ones(n, dtype=bool), bin_edges=np.array([0, n], dtype=np.int64), bin_start=empty,
        bin_end=empty, bin_rate=empty, bin_levels=np.zeros((0, len(columns))),
        signal_columns=columns, bad_rate=np.zeros(0, bool), bad_signal=np.zeros((0, len(columns)), bool),
        removed_bins=np.zeros(0, bool), excluded_ranges=(), fraction_removed=0.0, flags=(),
        warnings=tuple(warnings),
    )


#: consecutive-event pairs the order check looks at: _ORDER_RUNS stretches of consecutive events spread evenly
#: over the acquisition (contiguous memory; the correlation to ±0.01, ~2 ms for 8 channels)
_ORDER_PAIRS = 20_000
_ORDER_RUNS = 50


def _order_correlation(events: np.ndarray, columns: tuple[int, ...], order: np.ndarray | None) -> float:
    """Median over ``columns`` of the Pearson correlation between consecutive events (in Time order), on
    ≤ _ORDER_PAIRS pairs from _ORDER_RUNS evenly spread stretches; 0.0 without columns or pairs."""
    n = events.shape[0]
    if n < 3 or not columns:
        return 0.0
    if n - 1 <= _ORDER_PAIRS:
        first = np.arange(n - 1)
    else:
        run = _ORDER_PAIRS // _ORDER_RUNS
        starts = np.linspace(0, n - 1 - run, _ORDER_RUNS).astype(np.int64)
        first = (starts[:, None] + np.arange(run)[None, :]).ravel()
    a, b = (first, first + 1) if order is None else (order[first], order[first + 1])
    rs = []
    for c in columns:
        col = events[:, c]
        x = col.take(a).astype(np.float64)
        y = col.take(b).astype(np.float64)
        sx, sy = x.std(), y.std()
        if sx > 0 and sy > 0:
            rs.append(float(np.mean((x - x.mean()) * (y - y.mean())) / (sx * sy)))
    return float(np.median(rs)) if rs else 0.0


def _clip_quantiles(rows: np.ndarray, cols: list[int]) -> np.ndarray:
    """(4, len(cols)) float64: ``np.percentile(rows[:, cols], [1, 25, 75, 99], axis=0)``, read off one sort
    of each column (:func:`mrdflow.quantiles.sorted_quantile`, same numbers, several times faster)."""
    out = np.empty((4, len(cols)))
    for j, c in enumerate(cols):
        out[:, j] = sorted_quantile(np.sort(rows[:, c]), [0.01, 0.25, 0.75, 0.99])
    return out


#: most clock restarts per million events that are read as a wrapping clock (more: events out of Time order)
MAX_RESETS_PER_MILLION = 100


def _unwrap_clock(time: np.ndarray) -> tuple[np.ndarray, int] | None:
    """Time of a clock that wraps around (a 16-bit counter) or is reset during the acquisition, made increasing:
    ``(time, restarts)``, or None when the decreases are not such restarts.

    A restart is a drop of more than half the channel's observed range between two consecutive events; the events
    count as a wrapping clock when every decrease is one and there are few (≤ :data:`MAX_RESETS_PER_MILLION` per
    million events, at least 1). After each restart the clock continues from the value before it plus the median
    step between events. Returns float64 (unwrapped values may exceed what float32 holds exactly).
    """
    t = np.asarray(time, dtype=np.float64)
    step = np.diff(t)
    drops = np.flatnonzero(step < 0)
    span = float(t.max() - t.min())
    if not drops.size or drops.size > max(1, t.size * MAX_RESETS_PER_MILLION // 1_000_000) \
            or np.any(-step[drops] <= 0.5 * span):
        return None
    rising = step[step > 0]
    tick = float(np.median(rising)) if rising.size else 0.0
    offset = np.zeros(t.size)
    offset[drops + 1] = -step[drops] + tick
    return t + np.cumsum(offset), int(drops.size)


def time_qc(
    events: np.ndarray,
    time_column: int,
    signal_columns: Sequence[int],
    settings: TimeQcSettings = TimeQcSettings(),
) -> TimeQcResult:
    """Find and exclude unstable stretches of an acquisition.

    Parameters
    ----------
    events
        (n_events, n_channels) event matrix, compensated and transformed (float32; not modified, not copied).
    time_column
        Column of the Time parameter (any unit; rates are per that unit).
    signal_columns
        Columns whose per-bin medians are checked (fluorescence and, if wanted, scatter).
    settings
        Binning and outlier settings.

    Returns
    -------
    TimeQcResult
        Kept-event mask, per-bin trace and excluded time ranges.
    """
    if not isinstance(events, np.ndarray) or events.ndim != 2:
        raise AnalysisError(f"time_qc: expected a 2-D event matrix, found {type(events).__name__} "
                            f"with shape {getattr(events, 'shape', None)}")
    if events.dtype.kind != "f":
        raise AnalysisError(f"time_qc: expected floating-point events (float32), found dtype {events.dtype}")
    n, n_channels = events.shape
    columns = tuple(int(c) for c in signal_columns)
    for c in (time_column, *columns):
        if not 0 <= c < n_channels:
            raise AnalysisError(f"time_qc: column {c} is outside the event matrix's {n_channels} columns")
    if time_column in columns:
        raise AnalysisError(f"time_qc: the Time column ({time_column}) cannot also be a signal column")
    warnings: list[str] = []

    time = events[:, time_column]
    if n and not np.all(np.isfinite(time)):
        bad = int(np.count_nonzero(~np.isfinite(time)))
        raise AnalysisError(f"time_qc: the Time column ({time_column}) has {bad} non-finite values")
    order = None
    if n > 1 and np.any(time[1:] < time[:-1]):
        unwrapped = _unwrap_clock(time)
        if unwrapped is not None:
            time, resets = unwrapped
            warnings.append(f"the Time channel restarts {resets} time(s) (a clock that wraps around or is reset): "
                            "unwrapped, each restart continuing from the value before it")
        else:
            order = np.argsort(time, kind="stable")
            warnings.append("events were not in Time order; they were sorted for binning")
    per_bin = settings.events_per_bin or max(settings.min_events_per_bin, math.ceil(n / settings.max_bins))
    n_bins = n // per_bin

    if n_bins < 3:
        warnings.append(f"only {n} events ({n_bins} bins of {per_bin}): too few for time QC, nothing removed")
        return _nothing_removed(n, columns, warnings)
    r = _order_correlation(events, columns, order)
    if r > settings.max_order_correlation:
        warnings.append(f"time_qc_not_done: consecutive events are alike (median lag-1 correlation of the signals "
                        f"r = {r:.2f}, above {settings.max_order_correlation}): the events are not in acquisition "
                        "order (written population by population?), so stretches of the acquisition cannot be "
                        "compared; nothing removed")
        return _nothing_removed(n, columns, warnings)

    edges = np.linspace(0, n, n_bins + 1).round().astype(np.int64)
    sorted_time = time if order is None else time[order]
    bin_start = sorted_time[edges[:-1]].astype(np.float64)
    bin_end = np.append(sorted_time[edges[1:-1]], sorted_time[-1]).astype(np.float64)
    counts = np.diff(edges).astype(np.float64)
    counts[-1] -= 1  # the last span runs from its first to its last event
    span = bin_end - bin_start
    if np.any(span <= 0):
        positive = span[span > 0]
        floor = positive.min() / 2 if positive.size else 1.0
        warnings.append(f"{int(np.count_nonzero(span <= 0))} bins span no Time (coarse Time resolution); "
                        "their rate is capped")
        span = np.maximum(span, floor)
    bin_rate = counts / span

    # per-channel clip limits and robust SD from a systematic subsample of events
    stride = max(1, n // 200_000)
    cols = list(columns)
    lo, q25, q75, hi = _clip_quantiles(events[::stride], cols)
    channel_sd = (q75 - q25) / 1.349
    # per bin: np.clip(block, lo, hi).mean(axis=0, dtype=np.float64), in one parallel pass over the events
    levels = clipped_bin_means(events, np.array(cols, dtype=np.int64), edges, order, lo, hi)

    window = max(5, int(round(settings.trend_window * n_bins)) | 1)
    bad_rate = _outliers(np.log(bin_rate), window, settings.mad_threshold, math.log1p(settings.min_rate_change))
    bad_signal = np.zeros((n_bins, len(columns)), dtype=bool)
    for j in range(len(columns)):
        bad_signal[:, j] = _outliers(levels[:, j], window, settings.mad_threshold,
                                     settings.min_signal_shift * channel_sd[j])
    bad = bad_rate | bad_signal.any(axis=1)
    removed = _fill_short_good_runs(bad, settings.consecutive_bins)

    keep = np.ones(n, dtype=bool)
    ranges: list[tuple[float, float]] = []
    removed_idx = np.flatnonzero(removed)
    if removed_idx.size:
        run_starts = removed_idx[np.r_[True, np.diff(removed_idx) > 1]]
        run_ends = removed_idx[np.r_[np.diff(removed_idx) > 1, True]]
        for s, e in zip(run_starts, run_ends):
            a, b = edges[s], edges[e + 1]
            if order is None:
                keep[a:b] = False
            else:
                keep[order[a:b]] = False
            ranges.append((float(bin_start[s]), float(bin_end[e])))
    flags = []
    if bad_rate.any():
        flags.append("flow_rate_anomaly")
    if bad_signal.any():
        flags.append("signal_shift")
    return TimeQcResult(
        keep=keep,
        bin_edges=edges,
        bin_start=bin_start,
        bin_end=bin_end,
        bin_rate=bin_rate,
        bin_levels=levels,
        signal_columns=columns,
        bad_rate=bad_rate,
        bad_signal=bad_signal,
        removed_bins=removed,
        excluded_ranges=tuple(ranges),
        fraction_removed=float(n - np.count_nonzero(keep)) / n if n else 0.0,
        flags=tuple(flags),
        warnings=tuple(warnings),
    )


__all__ = ["TimeQcSettings", "TimeQcResult", "time_qc"]
