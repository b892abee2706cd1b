"""Time-to-event endpoints: per-patient (time, event) derivation and Kaplan–Meier estimates (lifelines).

Time origin: STUDY.yaml ``time_origin`` — ``diagnosis``, ``enrollment`` or ``infusion`` (patients without an
origin date, e.g. never infused with origin ``infusion``, are left out of that analysis and counted).
Months = days / 30.4375. Events after the data cut-off are ignored; every censoring date is capped at the cut-off.

Censoring rules (IMWG / Rajkumar 2011 uniform reporting, DOMAIN.md §5.4):

* **OS** — event: death from any cause. Censored at the last date known alive (``last_contact_date``).
* **PFS** — event: the first IMWG PD (the date of the first of the confirming PD assessments, from the response
  engine; relapse from CR is *not* PD) or death from any cause, whichever comes first. Censored at the last
  response assessment without PD (at the origin, time 0, when there is none). With ``censor_at_new_therapy``
  (default), assessments and deaths on/after a new anti-myeloma therapy do not count: censored at the last
  assessment before it.
* **DOR** — responders only (confirmed ≥ PR): from the first ≥ PR assessment to PD or death from disease
  (``dor_death_events: all`` counts every death); other deaths censored at the last assessment; otherwise as PFS.
* **Median follow-up** — reverse Kaplan–Meier on the OS data (death censors, being alive is the "event").
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from lifelines import KaplanMeierFitter

from mrdflow.endpoints.criteria import DAYS_PER_MONTH


@dataclass(frozen=True)
class TimeToEvent:
    """One patient's time to event: from ``start`` to ``end`` (days, months) and whether the event happened."""

    patient_id: str
    start: dt.date
    end: dt.date
    event: bool
    reason: str  # what ended the follow-up: "PD", "death", "censored: last assessment", ...

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def months(self) -> float:
        return self.days / DAYS_PER_MONTH


def _cap(d: dt.date, start: dt.date, cutoff: dt.date) -> dt.date:
    return max(start, min(d, cutoff))


def _before(d: dt.date | None, limit: dt.date | None) -> bool:
    return d is not None and (limit is None or d < limit)


def overall_survival(pid: str, origin: dt.date, *, death_date: dt.date | None, last_contact: dt.date,
                     cutoff: dt.date) -> TimeToEvent:
    """OS: death from any cause; alive patients censored at the last date known alive (capped at the cut-off)."""
    if death_date is not None and death_date <= cutoff:
        return TimeToEvent(pid, origin, max(origin, death_date), True, "death")
    return TimeToEvent(pid, origin, _cap(last_contact, origin, cutoff), False, "censored: last known alive")


def progression_free_survival(pid: str, origin: dt.date, *, pd_date: dt.date | None, death_date: dt.date | None,
                              last_assessment: dt.date | None, new_therapy_date: dt.date | None, cutoff: dt.date,
                              censor_at_new_therapy: bool = True) -> TimeToEvent:
    """PFS: first PD or death from any cause; censored at the last assessment without PD (see module docstring)."""
    limit = new_therapy_date if censor_at_new_therapy else None
    death = death_date if death_date is not None and death_date <= cutoff and _before(death_date, limit) else None
    pd = pd_date if pd_date is not None and pd_date <= cutoff else None
    events = [(d, why) for d, why in ((pd, "PD"), (death, "death")) if d is not None]
    if events:
        d, why = min(events, key=lambda e: e[0])
        return TimeToEvent(pid, origin, max(origin, d), True, why)
    if last_assessment is None:
        return TimeToEvent(pid, origin, origin, False, "censored: no assessment after baseline")
    why = "censored: last assessment before new therapy" if _before(new_therapy_date, None) and limit else \
        "censored: last assessment"
    return TimeToEvent(pid, origin, _cap(last_assessment, origin, cutoff), False, why)


def duration_of_response(pid: str, response_date: dt.date, *, pd_date: dt.date | None, death_date: dt.date | None,
                         death_cause: str | None, last_assessment: dt.date | None, new_therapy_date: dt.date | None,
                         cutoff: dt.date, death_events: str = "disease",
                         censor_at_new_therapy: bool = True) -> TimeToEvent:
    """DOR: first ≥ PR → PD or death from disease (``death_events="all"``: any death)."""
    counts = death_date is not None and (death_events == "all" or death_cause == "disease")
    tte = progression_free_survival(
        pid, response_date, pd_date=pd_date, death_date=death_date if counts else None,
        last_assessment=last_assessment, new_therapy_date=new_therapy_date, cutoff=cutoff,
        censor_at_new_therapy=censor_at_new_therapy)
    return tte


@dataclass(frozen=True)
class KmEstimate:
    """Kaplan–Meier summary in months; ``median_months`` None = not reached; CI bounds None = not estimable."""

    name: str
    n: int
    n_events: int
    median_months: float | None
    median_ci_low: float | None
    median_ci_high: float | None
    landmarks: dict[float, tuple[float, float, float]] = field(default_factory=dict)
    times: tuple[float, ...] = ()
    survival: tuple[float, ...] = ()
    censor_times: tuple[float, ...] = ()

    def to_dict(self) -> dict:
        return {
            "n": self.n, "n_events": self.n_events, "median_months": self.median_months,
            "median_reached": self.median_months is not None,
            "median_ci95_low_months": self.median_ci_low, "median_ci95_high_months": self.median_ci_high,
            "landmarks": {f"{m:g}_months": {"rate": r, "ci95_low": lo, "ci95_high": hi}
                          for m, (r, lo, hi) in self.landmarks.items()},
            "method": "Kaplan-Meier (lifelines); median CI from the pointwise exponential-Greenwood band",
        }

    def median_text(self) -> str:
        if self.n == 0:
            return "not estimable (no patients)"
        if self.median_months is None:
            return "not reached"
        lo = "NE" if self.median_ci_low is None else f"{self.median_ci_low:.1f}"
        hi = "NR" if self.median_ci_high is None else f"{self.median_ci_high:.1f}"
        return f"{self.median_months:.1f} months (95% CI {lo}–{hi})"


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def quantile_time(times: np.ndarray, surv: np.ndarray, q: float = 0.5) -> float:
    """First time at which a step survival curve is ≤ q (inf if never) — lifelines' rule, but with a 1e-12
    tolerance: a product-limit value that is exactly q in exact arithmetic (e.g. 7/8·6/7·5/6·4/5·3/4·2/3 = 1/3
    ... = 0.5) can come out as 0.5000000000000001 in floats, and lifelines would then call the median not reached."""
    hit = np.flatnonzero(surv <= q + 1e-12)
    return float(times[hit[0]]) if hit.size else math.inf


def kaplan_meier(name: str, months: Sequence[float], events: Sequence[bool],
                 landmarks_months: Sequence[float] = ()) -> KmEstimate:
    """Kaplan–Meier fit (lifelines) → median with 95 % CI and landmark survival rates with 95 % CI."""
    t = np.asarray(months, float)
    e = np.asarray(events, bool)
    if t.size == 0:
        return KmEstimate(name, 0, 0, None, None, None)
    kmf = KaplanMeierFitter(alpha=0.05).fit(t, e)
    grid = kmf.survival_function_.index.to_numpy(float)
    band = kmf.confidence_interval_survival_function_
    median = quantile_time(grid, kmf.survival_function_.iloc[:, 0].to_numpy(float))
    ci_low = quantile_time(grid, band.iloc[:, 0].to_numpy(float))
    ci_high = quantile_time(grid, band.iloc[:, 1].to_numpy(float))
    marks = {}
    for m in landmarks_months:
        if m > t.max():
            continue  # beyond follow-up: not estimable
        s = float(kmf.survival_function_at_times([m]).iloc[0])
        row = band[band.index <= m].iloc[-1]
        marks[float(m)] = (s, float(row.iloc[0]), float(row.iloc[1]))
    sf = kmf.survival_function_
    return KmEstimate(
        name=name, n=int(t.size), n_events=int(e.sum()),
        median_months=_finite(median), median_ci_low=_finite(ci_low), median_ci_high=_finite(ci_high),
        landmarks=marks,
        times=tuple(float(x) for x in sf.index), survival=tuple(float(x) for x in sf.iloc[:, 0]),
        censor_times=tuple(float(x) for x in t[~e]),
    )


def median_followup(os_data: Sequence[TimeToEvent]) -> KmEstimate:
    """Median follow-up by reverse Kaplan–Meier: death is censoring, being censored alive is the event."""
    return kaplan_meier("follow-up (reverse KM)", [x.months for x in os_data], [not x.event for x in os_data])
