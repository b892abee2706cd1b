"""IMWG frailty (Palumbo et al., Blood 2015): additive score from age, CCI, ADL and IADL (DOMAIN.md §9).

Points (cut-offs are STUDY.yaml parameters, defaults [U] in :class:`criteria.FrailtyCutoffs`): age ≤ 75 → 0,
76–80 → 1, > 80 → 2 (completed years at the CGA date); Charlson index ≥ 2 → 1; Katz ADL ≤ 4 → 1; Lawton IADL
≤ 5 → 1. Total 0 = fit, 1 = intermediate fitness, ≥ 2 = frail.

Scale direction (``frailty.scale_direction``): ``standard`` — ADL 0–6 and IADL 0–8 with higher = more
independent (Katz/Lawton); ``inverted`` — the CRF records "higher = worse", converted first as
ADL_std = 6 − ADL and IADL_std = 8 − IADL. Age comes from ``birth_date`` when given, else from
``age_at_enrollment`` plus the whole years elapsed since enrollment.

Baseline = the latest CGA on or before enrollment; change over time = each later CGA minus baseline.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from mrdflow.endpoints.criteria import FrailtyCutoffs

CATEGORIES = ("fit", "intermediate", "frail")


def age_in_years(on: dt.date, *, birth_date: dt.date | None = None, age_at_enrollment: float | None = None,
                 enrollment_date: dt.date | None = None) -> int:
    """Age in completed years on a date (see module docstring for the fallback)."""
    if birth_date is not None:
        return on.year - birth_date.year - ((on.month, on.day) < (birth_date.month, birth_date.day))
    if age_at_enrollment is None or enrollment_date is None or age_at_enrollment != age_at_enrollment:
        raise ValueError("age needs birth_date or age_at_enrollment with enrollment_date")
    return int(age_at_enrollment) + max(0, int((on - enrollment_date).days // 365.25))


def standardise(adl: float, iadl: float, direction: str, cut: FrailtyCutoffs = FrailtyCutoffs()) -> tuple[float, float]:
    """(ADL, IADL) on the standard higher = better scales."""
    if direction == "standard":
        return adl, iadl
    if direction == "inverted":
        return cut.adl_scale_max - adl, cut.iadl_scale_max - iadl
    raise ValueError(f"unknown scale direction {direction!r}; expected 'standard' or 'inverted'")


@dataclass(frozen=True)
class FrailtyScore:
    """Score components (points), total and category at one CGA."""

    date: dt.date
    age: int
    adl_std: float
    iadl_std: float
    age_points: int
    cci_points: int
    adl_points: int
    iadl_points: int

    @property
    def total(self) -> int:
        return self.age_points + self.cci_points + self.adl_points + self.iadl_points

    @property
    def category(self) -> str:
        return CATEGORIES[min(self.total, 2)]


def frailty_score(date: dt.date, age: int, cci: float, adl: float, iadl: float, *, direction: str = "standard",
                  cut: FrailtyCutoffs = FrailtyCutoffs()) -> FrailtyScore:
    """IMWG additive frailty score at one CGA (ADL/IADL as recorded; converted per ``direction``)."""
    adl_s, iadl_s = standardise(adl, iadl, direction, cut)
    age_pts = 0 if age <= cut.age_1pt_above else (1 if age <= cut.age_2pt_above else 2)
    return FrailtyScore(date, age, adl_s, iadl_s, age_pts, int(cci >= cut.cci_min), int(adl_s <= cut.adl_max),
                        int(iadl_s <= cut.iadl_max))
