"""CAR-T cellular kinetics by non-compartmental analysis (DOMAIN.md §8): Cmax, Tmax, AUC0–28, Tlast, Clast.

Units: transgene copies/µg genomic DNA (as in cart_pk.csv); times in days since infusion (infusion = day 0);
AUC in day·copies/µg.

* A sample is **BLQ** when flagged ``blq = yes`` or its value is below its LLOQ.
* **BLQ rule** (``kinetics.blq_rule``): ``positional`` (PKNCA default, the FDA-recommended approach): BLQ before
  the first quantifiable sample = 0, between quantifiable samples = dropped, after the last = 0; ``zero``: all
  BLQ = 0; ``drop``: all BLQ dropped; ``half_lloq``: all BLQ = LLOQ/2.
* **Cmax/Tmax** from the quantifiable samples (within ``cmax_window_days`` when set); Tmax = first day of Cmax.
* **Tlast/Clast**: last quantifiable sample.
* **AUC0–28** by the linear trapezoidal rule over the handled samples in [0, 28]. C(0) is the last sample at
  day ≤ 0, else 0 when ``assume_zero_at_day0`` (pre-infusion transgene is BLQ). Without a sample on day 28 the
  curve is interpolated linearly to day 28 when samples bracket it; otherwise AUC0–28 is not reported and flagged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mrdflow.endpoints.criteria import AUC_END_DAY, BLQ_RULES


@dataclass(frozen=True)
class PkResult:
    """Kinetics of one patient; values None when not estimable (``auc_flag`` says why for AUC)."""

    patient_id: str
    n_samples: int
    cmax: float | None
    tmax_days: float | None
    clast: float | None
    tlast_days: float | None
    auc0_28: float | None
    auc_flag: str  # "" when AUC0–28 is reported
    days: tuple[float, ...]  # handled profile (after the BLQ rule), for plots
    values: tuple[float, ...]


def is_blq(values: np.ndarray, blq_flags: np.ndarray, lloq: np.ndarray) -> np.ndarray:
    """BLQ mask: flagged, or a value below its LLOQ (a missing value counts as BLQ only when flagged)."""
    below = np.where(np.isnan(values) | np.isnan(lloq), False, values < np.nan_to_num(lloq, nan=-np.inf))
    return blq_flags.astype(bool) | below


def apply_blq_rule(days: Sequence[float], values: Sequence[float], blq: Sequence[bool], lloq: Sequence[float],
                   rule: str = "positional") -> tuple[np.ndarray, np.ndarray]:
    """Sorted (days, values) after replacing/dropping BLQ samples by ``rule`` (see module docstring)."""
    if rule not in BLQ_RULES:
        raise ValueError(f"unknown BLQ rule {rule!r}; expected one of {BLQ_RULES}")
    d = np.asarray(days, float)
    v = np.asarray(values, float)
    b = np.asarray(blq, bool)
    q = np.asarray(lloq, float)
    order = np.argsort(d, kind="stable")
    d, v, b, q = d[order], v[order], b[order], q[order]
    keep = np.ones(d.size, bool)
    out = v.copy()
    if rule == "zero":
        out[b] = 0.0
    elif rule == "drop":
        keep = ~b
    elif rule == "half_lloq":
        out[b] = q[b] / 2
    else:
        quant = np.flatnonzero(~b)
        if quant.size == 0:
            out[:] = 0.0
        else:
            first, last = quant[0], quant[-1]
            idx = np.arange(d.size)
            out[b] = 0.0
            keep = ~(b & (idx > first) & (idx < last))
    return d[keep], out[keep]


def auc_linear(days: np.ndarray, values: np.ndarray, end_day: float = AUC_END_DAY,
               assume_zero_at_day0: bool = True) -> tuple[float | None, str]:
    """Linear-trapezoid AUC from day 0 to ``end_day`` of a handled profile; returns (auc, flag)."""
    pre = days <= 0
    if pre.any():
        c0 = float(values[np.flatnonzero(pre)[-1]])
    elif assume_zero_at_day0:
        c0 = 0.0
    else:
        return None, "not evaluable: no sample at day 0"
    inside = (days > 0) & (days <= end_day)
    t = np.concatenate([[0.0], days[inside]])
    c = np.concatenate([[c0], values[inside]])
    if t[-1] < end_day:
        after = np.flatnonzero(days > end_day)
        if after.size == 0:
            return None, f"not evaluable: no sample after day {t[-1]:g} to reach day {end_day:g}"
        t1, c1 = days[after[0]], values[after[0]]
        c_end = c[-1] + (c1 - c[-1]) * (end_day - t[-1]) / (t1 - t[-1])
        t = np.append(t, end_day)
        c = np.append(c, c_end)
    return float(np.trapezoid(c, t)), ""


def nca(patient_id: str, days: Sequence[float], values: Sequence[float], blq: Sequence[bool],
        lloq: Sequence[float], *, blq_rule: str = "positional", auc_end_day: float = AUC_END_DAY,
        assume_zero_at_day0: bool = True, cmax_window_days: float | None = None) -> PkResult:
    """Non-compartmental kinetics of one patient (see module docstring for every rule)."""
    d = np.asarray(days, float)
    v = np.asarray(values, float)
    q = np.asarray(lloq, float)
    b = is_blq(v, np.asarray(blq, bool), q)
    quant = ~b & ~np.isnan(v)
    window = quant & ((d <= cmax_window_days) if cmax_window_days is not None else True)
    cmax = tmax = clast = tlast = None
    if window.any():
        order = np.argsort(d[window], kind="stable")
        dw, vw = d[window][order], v[window][order]
        i = int(np.argmax(vw))  # first occurrence of the maximum
        cmax, tmax = float(vw[i]), float(dw[i])
    if quant.any():
        j = np.flatnonzero(quant)[np.argmax(d[quant])]
        clast, tlast = float(v[j]), float(d[j])
    hd, hv = apply_blq_rule(d, v, b, q, blq_rule)
    if hd.size == 0 and not assume_zero_at_day0:
        auc, flag = None, "not evaluable: no samples"
    else:
        auc, flag = auc_linear(hd, hv, auc_end_day, assume_zero_at_day0)
    return PkResult(patient_id, int(d.size), cmax, tmax, clast, tlast, auc, flag,
                    tuple(float(x) for x in hd), tuple(float(x) for x in hv))
