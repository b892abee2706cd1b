"""Is the logicle linear width ``W`` wide enough for a file's compensated negative events?

Compensation leaves the cells negative for a marker spread around zero, by the spillover's photon noise; the
wider that spread, the wider the logicle's near-linear region must be. With ``W`` too narrow the negative
half of the spread is compressed logarithmically into a second, false peak below zero, and gates that place
themselves on the density (a negative population's shoulder, the valley to its positive cells) take it for a
population: on DEMO01–03 with Gaussian noise of SD 200–300 (linear units) added to every stain, the CD19, CD56
and CD117 gates fell on that false peak at the panel's W = 0.5 (no B cells, mast cells or myeloid
precursors, NK cells 5×, every marrow ``hemodilution_suspected``), and gave the base results at W = 1.
:func:`mrdflow.tube.prepare_tube` therefore widens the logicle of a tube whose data need it (the panel's
``transforms.widen_logicle``, on by default), with a ``logicle_width_widened`` warning.

Parks, Roederer & Moore (Cytometry A 2006) give the width a channel's data needs: with ``r`` the most negative
value to be displayed — conventionally the 5th percentile of its negative values, as flowCore's
``estimateLogicle`` and cytoflow do — ``W = (M − log10(T / |r|)) / 2``. This module computes that need on a
subsample of the compensated events, before the transform, and the width to use when it exceeds the panel's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

#: events the widths are estimated from: runs of consecutive events spread evenly over the file (a run reads
#: each column's memory in one piece; an even stride over a 5 M-event file touched a cache line per value)
MAX_ROWS = 50_000
#: runs they are read in
RUNS = 25
#: negative values a channel needs for its estimate
MIN_NEGATIVE = 100


@dataclass(frozen=True)
class WidthNeed:
    """One channel's compensated negative spread against its logicle width.

    ``r``: the ``quantile`` of the channel's negative values (linear units, < 0); ``needed``: Parks' ``W`` for it;
    ``used``: the transform's ``W``.
    """

    channel: str
    r: float
    needed: float
    used: float


def parks_width(r: float, T: float, M: float) -> float:
    """Parks et al. (2006) logicle width for the most negative displayed value ``r`` (< 0): ``(M − log10(T/|r|))/2``,
    at least 0."""
    if not r < 0:
        return 0.0
    return max(0.0, (M - math.log10(T / abs(r))) / 2.0)


def logicle_width_needs(events: np.ndarray, channel_names: Sequence[str], spillover, transforms: Mapping[str, object],
                        *, quantile: float = 0.05) -> list[WidthNeed]:
    """Parks' width need of every logicle-transformed channel, from the linear (uncompensated) ``events``.

    Parameters
    ----------
    events : (n_events, n_channels) float32, linear values as read (not modified).
    channel_names : $PnN of each column.
    spillover : the spillover the tube is compensated with, or None.
    transforms : $PnN → transform; channels whose transform has ``kind == "logicle"`` are assessed.
    quantile : which quantile of the negative values is ``r`` (0.05).

    Returns one :class:`WidthNeed` per assessed channel with ≥ :data:`MIN_NEGATIVE` negative values in the
    subsample (≤ :data:`MAX_ROWS` events in :data:`RUNS` runs spread over the file).
    """
    from mrdflow.scaling import inverse_spillover

    names = list(channel_names)
    targets = [c for c, t in transforms.items() if getattr(t, "kind", None) == "logicle" and c in names]
    n = events.shape[0]
    if not targets or n == 0:
        return []
    if n <= MAX_ROWS:
        starts, run = np.array([0]), n
    else:
        run = MAX_ROWS // RUNS
        starts = np.linspace(0, n - run, RUNS).astype(np.int64)

    def sample(cols: list[int]) -> np.ndarray:
        return np.concatenate([events[a:a + run, cols] for a in starts]).astype(np.float64)

    values: dict[str, np.ndarray] = {}
    if spillover is not None:
        comp = sample([names.index(c) for c in spillover.channels]) @ inverse_spillover(spillover)
        values = {c: comp[:, j] for j, c in enumerate(spillover.channels)}
    out: list[WidthNeed] = []
    for c in targets:
        v = values.get(c)
        if v is None:
            v = sample([names.index(c)])[:, 0]
        neg = v[v < 0]
        if neg.size < MIN_NEGATIVE:
            continue
        r = float(np.quantile(neg, quantile))
        t = transforms[c]
        out.append(WidthNeed(channel=c, r=r, needed=parks_width(r, float(t.T), float(t.M)), used=float(t.W)))
    return out


def widened_width(needs: Sequence[WidthNeed], max_excess: float, *, floor: float | None = None,
                  margin: float = 0.1, max_width: float | None = None) -> float | None:
    """The logicle ``W`` a tube should use instead of its panel's, or None to keep the panel's.

    When some channel needs more than ``max_excess`` above the width in use, every logicle channel gets the
    largest need plus ``margin``, rounded up to 0.1 (one W for all of them, so a ratio gate such as κ vs λ still
    compares like with like; at the need itself, 0.93, the CD117 and mast-cell gates still failed on the noise
    probe, at 1.0 not). ``floor``: a width the tube must not go below (another tube of the same sample was
    widened to it, so their plasma cells pool on one scale). ``max_width``: the widest the transforms allow
    (logicle needs ``W ≤ M/2``).
    """
    used = max((w.used for w in needs), default=None)
    target = None
    short = [w.needed for w in needs if w.needed > w.used + max_excess]
    if short:
        target = math.ceil(round((max(short) + margin) * 10, 9)) / 10
    if floor is not None and (used is None or floor > used):
        target = max(target or 0.0, floor)
    if target is not None and max_width is not None:
        target = min(target, max_width)
    return target


def logicle_width_warning(needs: Sequence[WidthNeed], width: float | None, max_excess: float,
                          labels: Mapping[str, str] | None = None, floor_from: str | None = None) -> str:
    """The warning for a tube whose channels need a wider logicle ``W`` (Parks' need more than ``max_excess`` above
    the panel's): ``logicle_width_widened`` saying the ``width`` used instead, or, with ``width`` None (the panel
    keeps its W), ``logicle_width_narrow`` advising one. ``floor_from`` names the tube whose width this one took."""
    short = sorted((w for w in needs if w.needed > w.used + max_excess), key=lambda w: -w.needed)
    labels = labels or {}
    used = max((w.used for w in needs), default=float("nan"))
    listed = ", ".join(f"{w.channel}{f' ({labels[w.channel]})' if w.channel in labels else ''}: {w.r:.0f} → W "
                       f"{w.needed:.2f}" for w in short)
    why = (f"the compensated negative events spread further below zero than W {used:g} displays without piling "
           f"them into a false peak that gates take for a population ({listed}; 5th percentile of the negative "
           f"values and the W it needs, Parks et al. 2006)")
    if width is None:
        advice = widened_width(needs, max_excess)
        return f"logicle_width_narrow: {why}; set the panel's fluorescence transform W to about {advice:g}"
    head = (f"logicle_width_widened: logicle W {width:g} instead of the panel's {used:g} for every fluorescence "
            f"channel")
    if not short:
        return f"{head}, as {floor_from or 'another tube of this sample'} needed, so the tubes' cells pool on one scale"
    return f"{head}: {why}"


__all__ = ["WidthNeed", "parks_width", "logicle_width_needs", "widened_width", "logicle_width_warning", "MAX_ROWS",
           "RUNS", "MIN_NEGATIVE"]
