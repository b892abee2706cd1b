"""Per-sample marker boundaries of the plasma-cell phenotype, from internal reference populations.

Each marker's negative/positive boundary is placed, in every sample, between an internal negative and an
internal positive reference population of that same sample, so no cut-off is fixed in transformed units. The
normal bone-marrow PC pattern (DOMAIN.md §2.2, §2.4) says on which side normal PCs lie.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mrdflow.errors import AnalysisError
from mrdflow.quantiles import median

Expectation = Literal["pos", "neg", "any"]


@dataclass(frozen=True)
class MarkerRule:
    """How a normal PC expresses a marker, and where its boundary sits between the references.

    ``expected`` is ``pos`` (normal PCs above the boundary), ``neg`` (below) or ``any`` (not judged);
    ``position`` is the boundary as a fraction of the way from the negative to the positive reference centre.
    Markers sharing a ``group`` vary *together* in normal PCs (CD19 and CD45 are both lost by mature normal
    PCs): their joint deviations are counted from the data instead of assumed independent, and they count
    as one aberrancy.
    """

    expected: Expectation
    position: float = 0.5
    group: str | None = None

    def __post_init__(self) -> None:
        if self.expected not in ("pos", "neg", "any"):
            raise AnalysisError(f"MarkerRule.expected: expected 'pos', 'neg' or 'any', found {self.expected!r}")
        if not 0.0 < self.position < 1.0:
            raise AnalysisError(f"MarkerRule.position: expected a fraction in (0, 1), found {self.position!r}")


#: the normal bone-marrow PC pattern (DOMAIN.md §2.2, §2.4)
NORMAL_PC_PATTERN: dict[str, MarkerRule] = {
    "CD19": MarkerRule("pos", group="maturation"),
    "CD56": MarkerRule("neg"),
    "CD27": MarkerRule("pos"),
    "CD81": MarkerRule("pos"),
    "CD117": MarkerRule("neg"),
    "CD38": MarkerRule("pos", position=0.7),
    "CD45": MarkerRule("pos", group="maturation"),
    "CD138": MarkerRule("any"),
}


@dataclass(frozen=True)
class MarkerReference:
    """Values of one marker on an internal negative and an internal positive population of the same sample."""

    negative: np.ndarray
    positive: np.ndarray
    negative_name: str = "negative reference"
    positive_name: str = "positive reference"


@dataclass(frozen=True)
class MarkerBoundary:
    """The per-sample boundary of one marker (transformed units) and whether it could be used."""

    marker: str
    expected: str
    negative_centre: float
    positive_centre: float
    boundary: float
    separation: float
    usable: bool
    reason: str = ""


def _robust_sd(values: np.ndarray) -> float:
    med = median(values)
    return float(1.4826 * median(np.abs(values - med)))


def marker_boundary(
    marker: str,
    rule: MarkerRule,
    reference: MarkerReference,
    *,
    min_events: int = 20,
    min_separation: float = 2.0,
) -> MarkerBoundary:
    """Place one marker's boundary between its negative and positive reference populations.

    The boundary is ``neg_centre + rule.position × (pos_centre − neg_centre)`` (reference medians, transformed
    units). The marker is unusable (``usable=False`` with a ``reason``) when a reference has fewer than
    ``min_events`` events or the centres are not ``min_separation`` pooled robust SDs apart.
    """
    neg = np.asarray(reference.negative, dtype=np.float64).ravel()
    pos = np.asarray(reference.positive, dtype=np.float64).ravel()
    neg, pos = neg[np.isfinite(neg)], pos[np.isfinite(pos)]
    for values, name in ((neg, reference.negative_name), (pos, reference.positive_name)):
        if values.size < min_events:
            return MarkerBoundary(marker, rule.expected, math.nan, math.nan, math.nan, math.nan, False,
                                  f"{marker}: {name} has {values.size} events, "
                                  f"{min_events} needed")
    nc, pc = float(median(neg)), float(median(pos))
    separation = pc - nc
    pooled = math.sqrt((_robust_sd(neg) ** 2 + _robust_sd(pos) ** 2) / 2.0)
    boundary = nc + rule.position * separation
    if separation <= 0 or separation < min_separation * pooled:
        return MarkerBoundary(
            marker, rule.expected, nc, pc, boundary, separation, False,
            f"{marker}: {reference.positive_name} (median {pc:.3g}) is not above {reference.negative_name} "
            f"(median {nc:.3g}) by {min_separation} pooled robust SDs ({pooled:.3g} each); "
            "marker not used",
        )
    return MarkerBoundary(marker, rule.expected, nc, pc, boundary, separation, True)


__all__ = ["Expectation", "MarkerRule", "NORMAL_PC_PATTERN", "MarkerReference", "MarkerBoundary", "marker_boundary"]
