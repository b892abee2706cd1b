"""Acquisition adequacy: per-step removal rates and whether enough evaluable cells were acquired.

Pure functions on event counts of the pre-analytical gating steps, in pipeline order (DOMAIN.md §2.1):
time/flow-rate QC → margin events → doublets → debris → evaluable nucleated cells. Each rate is a fraction
of the events *entering* that step, so a bad step is not hidden by an earlier one.

The flag thresholds are laboratory choices, not published constants: the defaults below are conservative
engineering values **[U]** (unverified) and are panel parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mrdflow.errors import AnalysisError
from mrdflow.mrd import MrdThresholds, sensitivity_met


@dataclass(frozen=True)
class AdequacySettings:
    """Flag thresholds (fractions of the events entering each step); all [U] defaults.

    Parameters
    ----------
    max_time_removed_rate
        Flag ``high_time_removal`` above this fraction removed by time/flow-rate QC (0.2; PeacoQC reports
        files losing a large share as suspicious, its plot threshold is user-set).
    max_margin_rate
        Flag ``high_margin_rate`` above this fraction of events on a detector limit (0.05).
    max_doublet_rate
        Flag ``high_doublet_rate`` above this fraction of doublets (0.15; bulk-lysed marrow typically 2–10 %).
    max_debris_rate
        Flag ``high_debris_rate`` above this fraction of debris / non-nucleated events (0.5).
    max_pc_off_scale_rate
        Flag ``pc_off_scale`` (per tube and marker, by the pipeline) above this fraction of the plasma cells
        whose raw value is at the top of the marker's scale (0.05): a detector set too high for the PCs.
    max_logicle_width_excess
        Warn ``logicle_width_narrow`` (per tube, by :func:`mrdflow.tube.prepare_tube`) when a channel's compensated
        negative events need a logicle ``W`` (Parks et al. 2006, :mod:`mrdflow.qc.logicle_width`) more than this
        above the one in use (0.3, in decades: added noise of SD 100 needed 0.74 with the demo's W = 0.5 and left
        the results unchanged; SD 200 needed 0.85 and broke the CD19, CD56 and CD117 gates).
    """

    max_time_removed_rate: float = 0.2
    max_margin_rate: float = 0.05
    max_doublet_rate: float = 0.15
    max_debris_rate: float = 0.5
    max_pc_off_scale_rate: float = 0.05
    max_logicle_width_excess: float = 0.3

    def __post_init__(self) -> None:
        for name in ("max_time_removed_rate", "max_margin_rate", "max_doublet_rate", "max_debris_rate",
                     "max_pc_off_scale_rate"):
            value = getattr(self, name)
            if not (0.0 <= float(value) <= 1.0):
                raise AnalysisError(f"AdequacySettings.{name}: expected a fraction in [0, 1], found {value!r}")
        if not float(self.max_logicle_width_excess) >= 0.0:
            raise AnalysisError("AdequacySettings.max_logicle_width_excess: expected a width in decades >= 0, "
                                f"found {self.max_logicle_width_excess!r}")


@dataclass(frozen=True)
class AdequacyResult:
    """Removal rates (fractions of the events entering each step), events needed and QC flags."""

    n_events_acquired: int
    n_events_evaluable: int
    time_removed_rate: float
    margin_rate: float
    doublet_rate: float
    debris_rate: float
    events_needed: int
    events_needed_lloq: int
    sensitivity_met: bool
    flags: tuple[str, ...]


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AnalysisError(f"{name}: expected a non-negative integer event count, found {value!r}")
    return value


def _rate(removed: int, entering: int) -> float:
    return removed / entering if entering else math.nan


def assess_adequacy(
    n_events_acquired: int,
    n_time_removed: int,
    n_margin: int,
    n_doublets: int,
    n_debris: int,
    n_events_evaluable: int,
    thresholds: MrdThresholds = MrdThresholds(),
    settings: AdequacySettings = AdequacySettings(),
) -> AdequacyResult:
    """Removal rates and adequacy of one sample (or tube) from its pre-analytical step counts.

    Parameters
    ----------
    n_events_acquired
        Events read from the file(s).
    n_time_removed, n_margin, n_doublets, n_debris
        Events removed by each step, in this pipeline order.
    n_events_evaluable
        Evaluable nucleated cells (the MRD denominator); at most what survives the four steps (the template
        may exclude more, e.g. unclassifiable events).
    thresholds
        Gives ``lod_events``/``lloq_events`` and ``required_sensitivity``: the acquisition is adequate when
        ``n_events_evaluable >= lod_events / required_sensitivity`` (2×10⁶ for 20 events at 10⁻⁵).
    settings
        Flag thresholds for the removal rates.

    Returns
    -------
    AdequacyResult
        Flags among ``low_events`` (sensitivity not reached), ``high_time_removal``, ``high_margin_rate``,
        ``high_doublet_rate``, ``high_debris_rate``, ``no_events``.
    """
    n_acq = _count(n_events_acquired, "n_events_acquired")
    steps = [("n_time_removed", n_time_removed), ("n_margin", n_margin), ("n_doublets", n_doublets),
             ("n_debris", n_debris)]
    remaining = n_acq
    rates = []
    for name, removed in steps:
        removed = _count(removed, name)
        if removed > remaining:
            raise AnalysisError(
                f"{name} ({removed}) exceeds the events left before that step ({remaining} of {n_acq} acquired)"
            )
        rates.append(_rate(removed, remaining))
        remaining -= removed
    n_eval = _count(n_events_evaluable, "n_events_evaluable")
    if n_eval > remaining:
        raise AnalysisError(
            f"n_events_evaluable ({n_eval}) exceeds the events left after time QC, margins, doublets and debris "
            f"({remaining})"
        )
    time_rate, margin_rate, doublet_rate, debris_rate = rates
    flags = []
    if n_acq == 0:
        flags.append("no_events")
    met = sensitivity_met(n_eval, thresholds)
    if not met:
        flags.append("low_events")
    for flag, rate, limit in (
        ("high_time_removal", time_rate, settings.max_time_removed_rate),
        ("high_margin_rate", margin_rate, settings.max_margin_rate),
        ("high_doublet_rate", doublet_rate, settings.max_doublet_rate),
        ("high_debris_rate", debris_rate, settings.max_debris_rate),
    ):
        if not math.isnan(rate) and rate > limit:
            flags.append(flag)
    lloq_needed = math.ceil(thresholds.lloq_events / thresholds.required_sensitivity * (1.0 - 1e-9))
    return AdequacyResult(
        n_events_acquired=n_acq,
        n_events_evaluable=n_eval,
        time_removed_rate=time_rate,
        margin_rate=margin_rate,
        doublet_rate=doublet_rate,
        debris_rate=debris_rate,
        events_needed=thresholds.events_needed,
        events_needed_lloq=lloq_needed,
        sensitivity_met=met,
        flags=tuple(flags),
    )


__all__ = ["AdequacySettings", "AdequacyResult", "assess_adequacy"]
