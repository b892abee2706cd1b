"""MRD quantification: fraction of evaluable nucleated cells, LOD/LLOQ, status and light-chain clonality.

Pure functions on event counts. The gating engine counts populations by their template *roles*
(``evaluable``, ``plasma_cell``, ``normal_pc``, ``aberrant_pc``, ``kappa``, ``lambda``); this module turns
those counts into the results.csv fields of DESIGN.md §3.2 and never looks at population names.

Conventions (DOMAIN.md §1.3, §2.3, §11)
---------------------------------------
* ``mrd_fraction = n_aberrant_pc / n_events_evaluable`` (a fraction, not a percent).
* ``lod = lod_events / n_events_evaluable`` and ``lloq = lloq_events / n_events_evaluable``: the smallest
  fraction this acquisition could detect (20 events) or quantify (50 events).
* Status, from the aberrant-PC event count ``n``:

  - ``POSITIVE`` when ``n >= lloq_events``;
  - ``POSITIVE_BELOW_LLOQ`` when ``lod_events <= n < lloq_events`` (detected, not quantifiable);
  - ``NEGATIVE`` when ``n < lod_events`` **and** the required sensitivity was reached
    (``lod <= required_sensitivity``, i.e. ``n_events_evaluable >= lod_events / required_sensitivity``);
  - ``NOT_EVALUABLE`` when ``n < lod_events`` but the sensitivity was not reached, or when there are no
    evaluable events at all.
* Clonality (IMWG rule, Kumar 2016 via the CIBMTR manual): κ/λ of the aberrant PCs ``> kappa_ratio_min``
  (4:1) → ``kappa``; ``< lambda_ratio_max`` (1:2) → ``lambda``; in between → ``polyclonal``; judged only on
  ``>= min_cells_for_clonality`` (100) light-chain-typed aberrant cells, else ``indeterminate``. The normal PCs
  are the internal control: when enough of them were typed and their own ratio is restricted, the staining
  (or the normal/aberrant split) cannot be trusted and the call is ``indeterminate``. ``not_assessed`` when
  no tube measured κ/λ or no aberrant PCs were found.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Literal, Sequence

from mrdflow.errors import AnalysisError

POSITIVE = "POSITIVE"
POSITIVE_BELOW_LLOQ = "POSITIVE_BELOW_LLOQ"
NEGATIVE = "NEGATIVE"
NOT_EVALUABLE = "NOT_EVALUABLE"
MRD_STATUSES = (NEGATIVE, POSITIVE, POSITIVE_BELOW_LLOQ, NOT_EVALUABLE)

CLONALITY_CALLS = ("kappa", "lambda", "polyclonal", "indeterminate", "not_assessed")
DENOMINATOR_RULES = ("combined", "per_tube")

MrdStatus = Literal["NEGATIVE", "POSITIVE", "POSITIVE_BELOW_LLOQ", "NOT_EVALUABLE"]
Clonality = Literal["kappa", "lambda", "polyclonal", "indeterminate", "not_assessed"]

#: relative tolerance of the sensitivity comparison, so that e.g. 20 / 2_000_000 counts as exactly 1e-5
_SENSITIVITY_RTOL = 1e-9


@dataclass(frozen=True)
class MrdThresholds:
    """Event-count and ratio thresholds of MRD reporting; all are panel parameters.

    Parameters
    ----------
    lod_events
        Aberrant-PC events needed to call a sample positive (limit of detection). 20: Mayo Clinic test 65218,
        ICCS Q&A, EuroFlow practice (DOMAIN.md §1.3, [V]).
    lloq_events
        Events needed to quantify (lower limit of quantification). 50: ICCS Q&A, 2026 Haematologica abstract
        (DOMAIN.md §1.3, [V]).
    required_sensitivity
        Fraction of evaluable nucleated cells the assay must be able to detect for a negative to count.
        1e-5: IMWG minimum for MRD negativity (Kumar, Lancet Oncol 2016; DOMAIN.md §11).
    kappa_ratio_min, lambda_ratio_max
        κ/λ above ``kappa_ratio_min`` (4:1) is κ-restricted, below ``lambda_ratio_max`` (1:2) λ-restricted
        (IMWG sCR rule, DOMAIN.md §2.3, [V]).
    min_cells_for_clonality
        Light-chain-typed cells needed before a ratio is judged (IMWG: 100 PCs, DOMAIN.md §2.3, [V]).
    """

    lod_events: int = 20
    lloq_events: int = 50
    required_sensitivity: float = 1e-5
    kappa_ratio_min: float = 4.0
    lambda_ratio_max: float = 0.5
    min_cells_for_clonality: int = 100

    def __post_init__(self) -> None:
        if not (isinstance(self.lod_events, int) and self.lod_events >= 1):
            raise AnalysisError(f"MrdThresholds.lod_events: expected an integer >= 1, found {self.lod_events!r}")
        if not (isinstance(self.lloq_events, int) and self.lloq_events >= self.lod_events):
            raise AnalysisError(
                f"MrdThresholds.lloq_events: expected an integer >= lod_events ({self.lod_events}), "
                f"found {self.lloq_events!r}"
            )
        if not (0.0 < float(self.required_sensitivity) < 1.0):
            raise AnalysisError(
                "MrdThresholds.required_sensitivity: expected a fraction in (0, 1) such as 1e-5, "
                f"found {self.required_sensitivity!r}"
            )
        if not (0.0 < self.lambda_ratio_max < 1.0 < self.kappa_ratio_min):
            raise AnalysisError(
                "MrdThresholds: expected 0 < lambda_ratio_max < 1 < kappa_ratio_min, found "
                f"lambda_ratio_max={self.lambda_ratio_max!r}, kappa_ratio_min={self.kappa_ratio_min!r}"
            )
        if not (isinstance(self.min_cells_for_clonality, int) and self.min_cells_for_clonality >= 1):
            raise AnalysisError(
                "MrdThresholds.min_cells_for_clonality: expected an integer >= 1, "
                f"found {self.min_cells_for_clonality!r}"
            )

    @property
    def events_needed(self) -> int:
        """Evaluable events needed to reach ``required_sensitivity`` (``lod_events / required_sensitivity``)."""
        return math.ceil(self.lod_events / self.required_sensitivity * (1.0 - _SENSITIVITY_RTOL))


@dataclass(frozen=True)
class TubeCounts:
    """Role counts of one tube, as produced by the gating engine.

    ``kappa_*``/``lambda_*`` are ``None`` when the tube does not measure cytoplasmic light chains (NGF tube 1).
    """

    tube: str
    n_events_acquired: int
    n_events_evaluable: int
    n_plasma_cells: int
    n_normal_pc: int
    n_aberrant_pc: int
    kappa_aberrant: int | None = None
    lambda_aberrant: int | None = None
    kappa_normal: int | None = None
    lambda_normal: int | None = None

    def __post_init__(self) -> None:
        where = f"tube {self.tube!r}"
        for name in ("n_events_acquired", "n_events_evaluable", "n_plasma_cells", "n_normal_pc", "n_aberrant_pc"):
            _check_count(getattr(self, name), f"{where}: {name}")
        for name in ("kappa_aberrant", "lambda_aberrant", "kappa_normal", "lambda_normal"):
            value = getattr(self, name)
            if value is not None:
                _check_count(value, f"{where}: {name}")
        if self.n_events_evaluable > self.n_events_acquired:
            raise AnalysisError(
                f"{where}: n_events_evaluable ({self.n_events_evaluable}) exceeds n_events_acquired "
                f"({self.n_events_acquired})"
            )
        if self.n_plasma_cells > self.n_events_evaluable:
            raise AnalysisError(
                f"{where}: n_plasma_cells ({self.n_plasma_cells}) exceeds n_events_evaluable "
                f"({self.n_events_evaluable}); plasma cells must be gated inside the evaluable cells"
            )
        if self.n_normal_pc + self.n_aberrant_pc > self.n_plasma_cells:
            raise AnalysisError(
                f"{where}: n_normal_pc + n_aberrant_pc ({self.n_normal_pc} + {self.n_aberrant_pc}) exceeds "
                f"n_plasma_cells ({self.n_plasma_cells})"
            )
        if (self.kappa_aberrant is None) != (self.lambda_aberrant is None):
            raise AnalysisError(f"{where}: kappa_aberrant and lambda_aberrant must both be given or both be None")
        if (self.kappa_normal is None) != (self.lambda_normal is None):
            raise AnalysisError(f"{where}: kappa_normal and lambda_normal must both be given or both be None")
        if self.kappa_aberrant is not None and self.kappa_aberrant + self.lambda_aberrant > self.n_aberrant_pc:
            raise AnalysisError(
                f"{where}: kappa_aberrant + lambda_aberrant ({self.kappa_aberrant} + {self.lambda_aberrant}) "
                f"exceeds n_aberrant_pc ({self.n_aberrant_pc})"
            )
        if self.kappa_normal is not None and self.kappa_normal + self.lambda_normal > self.n_normal_pc:
            raise AnalysisError(
                f"{where}: kappa_normal + lambda_normal ({self.kappa_normal} + {self.lambda_normal}) "
                f"exceeds n_normal_pc ({self.n_normal_pc})"
            )


@dataclass(frozen=True)
class MrdResult:
    """Quantification of one sample (the MRD part of a results.csv row).

    Fractions are of evaluable nucleated cells; ``lod``/``lloq``/``mrd_fraction`` are NaN when there are no
    evaluable events. ``tubes`` holds one result per tube (each with ``denominator="per_tube"``) when the
    sample has several tubes.
    """

    denominator: str
    n_events_acquired: int
    n_events_evaluable: int
    n_plasma_cells: int
    n_normal_pc: int
    n_aberrant_pc: int
    mrd_fraction: float
    lod: float
    lloq: float
    mrd_status: str
    sensitivity_met: bool
    clonality: str
    kappa_lambda_ratio: float | None
    thresholds: MrdThresholds
    tube_names: tuple[str, ...]
    tubes: tuple["MrdResult", ...] = field(default=())

    def to_row(self) -> dict[str, object]:
        """The results.csv columns this module owns (DESIGN.md §3.2), with CSV-ready values."""
        return {
            "n_events_acquired": self.n_events_acquired,
            "n_events_evaluable": self.n_events_evaluable,
            "n_plasma_cells": self.n_plasma_cells,
            "n_normal_pc": self.n_normal_pc,
            "n_aberrant_pc": self.n_aberrant_pc,
            "mrd_fraction": self.mrd_fraction,
            "lod": self.lod,
            "lloq": self.lloq,
            "mrd_status": self.mrd_status,
            "sensitivity_met": "true" if self.sensitivity_met else "false",
            "clonality": self.clonality,
        }


def _check_count(value: object, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise AnalysisError(f"{what}: expected a non-negative integer event count, found {value!r}")


def mrd_fraction(n_aberrant_pc: int, n_evaluable: int) -> float:
    """Aberrant PCs as a fraction of evaluable nucleated cells (NaN when there are no evaluable events)."""
    _check_count(n_aberrant_pc, "n_aberrant_pc")
    _check_count(n_evaluable, "n_evaluable")
    if n_aberrant_pc > n_evaluable:
        raise AnalysisError(f"n_aberrant_pc ({n_aberrant_pc}) exceeds n_evaluable ({n_evaluable})")
    return n_aberrant_pc / n_evaluable if n_evaluable else math.nan


def limit_of_detection(n_evaluable: int, thresholds: MrdThresholds = MrdThresholds()) -> float:
    """``lod_events / n_evaluable``: the smallest detectable fraction (NaN without evaluable events)."""
    _check_count(n_evaluable, "n_evaluable")
    return thresholds.lod_events / n_evaluable if n_evaluable else math.nan


def lower_limit_of_quantification(n_evaluable: int, thresholds: MrdThresholds = MrdThresholds()) -> float:
    """``lloq_events / n_evaluable``: the smallest quantifiable fraction (NaN without evaluable events)."""
    _check_count(n_evaluable, "n_evaluable")
    return thresholds.lloq_events / n_evaluable if n_evaluable else math.nan


def sensitivity_met(n_evaluable: int, thresholds: MrdThresholds = MrdThresholds()) -> bool:
    """True when ``lod <= required_sensitivity``.

    Compared as event counts, ``n_evaluable * required_sensitivity >= lod_events``, with a relative tolerance
    of 1e-9 so that an acquisition exactly at the required sensitivity (e.g. 2,000,000 events for 20 events
    at 1e-5) is not failed by floating-point rounding of ``20 / 2e6`` or of the sensitivity itself.
    """
    _check_count(n_evaluable, "n_evaluable")
    if n_evaluable == 0:
        return False
    return n_evaluable * thresholds.required_sensitivity >= thresholds.lod_events * (1.0 - _SENSITIVITY_RTOL)


def mrd_status(n_aberrant_pc: int, n_evaluable: int, thresholds: MrdThresholds = MrdThresholds()) -> str:
    """``POSITIVE`` / ``POSITIVE_BELOW_LLOQ`` / ``NEGATIVE`` / ``NOT_EVALUABLE`` (rules in the module docstring)."""
    _check_count(n_aberrant_pc, "n_aberrant_pc")
    _check_count(n_evaluable, "n_evaluable")
    if n_aberrant_pc > n_evaluable:
        raise AnalysisError(f"n_aberrant_pc ({n_aberrant_pc}) exceeds n_evaluable ({n_evaluable})")
    if n_evaluable == 0:
        return NOT_EVALUABLE
    if n_aberrant_pc >= thresholds.lloq_events:
        return POSITIVE
    if n_aberrant_pc >= thresholds.lod_events:
        return POSITIVE_BELOW_LLOQ
    return NEGATIVE if sensitivity_met(n_evaluable, thresholds) else NOT_EVALUABLE


def kappa_lambda_ratio(n_kappa: int, n_lambda: int) -> float:
    """κ/λ event ratio; ``inf`` when only κ, NaN when neither was seen."""
    _check_count(n_kappa, "n_kappa")
    _check_count(n_lambda, "n_lambda")
    if n_lambda == 0:
        return math.inf if n_kappa else math.nan
    return n_kappa / n_lambda


def clonality(
    kappa_aberrant: int | None,
    lambda_aberrant: int | None,
    kappa_normal: int | None = None,
    lambda_normal: int | None = None,
    thresholds: MrdThresholds = MrdThresholds(),
) -> str:
    """Light-chain restriction of the aberrant PCs against the polytypic normal PCs.

    Parameters
    ----------
    kappa_aberrant, lambda_aberrant
        cyIgκ+ / cyIgλ+ events among the aberrant PCs; ``None`` when κ/λ was not measured.
    kappa_normal, lambda_normal
        The same among the normal PCs (the internal polytypic control); ``None`` when not available.

    Returns
    -------
    str
        ``kappa``, ``lambda``, ``polyclonal``, ``indeterminate`` or ``not_assessed`` (rules in the module
        docstring).
    """
    if kappa_aberrant is None or lambda_aberrant is None:
        return "not_assessed"
    typed = kappa_aberrant + lambda_aberrant
    if typed == 0:
        return "not_assessed"
    if typed < thresholds.min_cells_for_clonality:
        return "indeterminate"
    if kappa_normal is not None and lambda_normal is not None:
        if kappa_normal + lambda_normal >= thresholds.min_cells_for_clonality:
            control = kappa_lambda_ratio(kappa_normal, lambda_normal)
            if not (thresholds.lambda_ratio_max <= control <= thresholds.kappa_ratio_min):
                return "indeterminate"  # the "normal" PCs are not polytypic: staining or split is suspect
    ratio = kappa_lambda_ratio(kappa_aberrant, lambda_aberrant)
    if ratio > thresholds.kappa_ratio_min:
        return "kappa"
    if ratio < thresholds.lambda_ratio_max:
        return "lambda"
    return "polyclonal"


def _sum_optional(values: Sequence[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _quantify_counts(tubes: Sequence[TubeCounts], thresholds: MrdThresholds, denominator: str) -> MrdResult:
    n_acq = sum(t.n_events_acquired for t in tubes)
    n_eval = sum(t.n_events_evaluable for t in tubes)
    n_pc = sum(t.n_plasma_cells for t in tubes)
    n_norm = sum(t.n_normal_pc for t in tubes)
    n_ab = sum(t.n_aberrant_pc for t in tubes)
    ka, la = _sum_optional([t.kappa_aberrant for t in tubes]), _sum_optional([t.lambda_aberrant for t in tubes])
    kn, ln = _sum_optional([t.kappa_normal for t in tubes]), _sum_optional([t.lambda_normal for t in tubes])
    ratio = kappa_lambda_ratio(ka, la) if ka is not None and ka + la > 0 else None
    return MrdResult(
        denominator=denominator,
        n_events_acquired=n_acq,
        n_events_evaluable=n_eval,
        n_plasma_cells=n_pc,
        n_normal_pc=n_norm,
        n_aberrant_pc=n_ab,
        mrd_fraction=mrd_fraction(n_ab, n_eval),
        lod=limit_of_detection(n_eval, thresholds),
        lloq=lower_limit_of_quantification(n_eval, thresholds),
        mrd_status=mrd_status(n_ab, n_eval, thresholds),
        sensitivity_met=sensitivity_met(n_eval, thresholds),
        clonality=clonality(ka, la, kn, ln, thresholds),
        kappa_lambda_ratio=ratio,
        thresholds=thresholds,
        tube_names=tuple(t.tube for t in tubes),
    )


def quantify(
    tubes: Sequence[TubeCounts],
    thresholds: MrdThresholds = MrdThresholds(),
    denominator: str = "combined",
) -> MrdResult:
    """MRD result of one sample from the role counts of its tubes.

    Parameters
    ----------
    tubes
        One :class:`TubeCounts` per tube of the sample (NGF: tube 1 and tube 2).
    thresholds
        LOD/LLOQ events, required sensitivity and clonality thresholds (from the panel).
    denominator
        ``"combined"`` (default): aberrant PCs and evaluable events are summed over all tubes, as EuroFlow
        compares against the cells of both tubes (DOMAIN.md §1.3). ``"per_tube"``: each tube is its own
        measurement; the sample result is that of the tube with the most evaluable events (the most
        sensitive measurement; ties go to the first tube), with light chains still pooled over the tubes that
        measured them.

    Returns
    -------
    MrdResult
        The sample result, with ``tubes`` holding the per-tube results when there are several tubes.
    """
    if denominator not in DENOMINATOR_RULES:
        raise AnalysisError(f"denominator: expected one of {', '.join(DENOMINATOR_RULES)}, found {denominator!r}")
    if not tubes:
        raise AnalysisError("quantify: expected the counts of at least one tube, found none")
    names = [t.tube for t in tubes]
    if len(set(names)) != len(names):
        raise AnalysisError(f"quantify: tube names must be unique, found {names}")
    per_tube = tuple(_quantify_counts([t], thresholds, "per_tube") for t in tubes)
    if denominator == "combined":
        result = _quantify_counts(tubes, thresholds, "combined")
    else:
        best = max(range(len(tubes)), key=lambda i: (tubes[i].n_events_evaluable, -i))
        chosen = per_tube[best]
        pooled = _quantify_counts(tubes, thresholds, "per_tube")
        result = replace(chosen, clonality=pooled.clonality, kappa_lambda_ratio=pooled.kappa_lambda_ratio)
    if len(tubes) > 1:
        result = replace(result, tubes=per_tube)
    return result


__all__ = [
    "MrdThresholds",
    "TubeCounts",
    "MrdResult",
    "quantify",
    "mrd_fraction",
    "limit_of_detection",
    "lower_limit_of_quantification",
    "sensitivity_met",
    "mrd_status",
    "kappa_lambda_ratio",
    "clonality",
    "POSITIVE",
    "POSITIVE_BELOW_LLOQ",
    "NEGATIVE",
    "NOT_EVALUABLE",
    "MRD_STATUSES",
    "CLONALITY_CALLS",
    "DENOMINATOR_RULES",
]
