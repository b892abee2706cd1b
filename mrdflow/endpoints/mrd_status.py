"""MRD endpoints per patient: negativity at the required sensitivity, evaluability, sustained negativity.

An MRD assessment (one row of mrd.csv or of the results store) is

* **negative** only when ``mrd_status`` is NEGATIVE *and* its LOD reached the required sensitivity
  (``lod ≤ required_sensitivity``; IMWG 2016: 1 in 10⁵ nucleated cells by default) — DOMAIN.md §11;
* **positive** when ``mrd_status`` is POSITIVE or POSITIVE_BELOW_LLOQ (a detected clone counts at any LOD);
* **not evaluable** otherwise (NOT_EVALUABLE, or NEGATIVE with an insufficient LOD).

Only the study's tissue (BM by default) and methods count. A patient is *MRD-evaluable* with at least one
negative or positive assessment. Rates use two denominators (Costa et al., Leukemia 2021): the efficacy
population (intention to treat; patients without an evaluable result count as not MRD-negative) and the
MRD-evaluable patients. **Sustained MRD negativity**: two negative assessments at least ``min_days`` (365)
apart with no positive assessment between them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from mrdflow.endpoints.criteria import SUSTAINED_MRD_MIN_DAYS


def classify_assessment(status: str, lod: float, required_sensitivity: float) -> str:
    """One assessment → "negative", "positive" or "not_evaluable" (see module docstring)."""
    if status in ("POSITIVE", "POSITIVE_BELOW_LLOQ"):
        return "positive"
    if status == "NEGATIVE" and lod == lod and lod <= required_sensitivity * (1 + 1e-9):
        return "negative"
    return "not_evaluable"


@dataclass(frozen=True)
class PatientMrd:
    """MRD summary of one patient (dates of assessments in the study tissue/methods, sorted)."""

    patient_id: str
    n_assessments: int
    evaluable: bool
    negative: bool
    first_negative_date: dt.date | None
    sustained_negative: bool
    sustained_negative_date: dt.date | None  # date of the confirming (≥ 1 year later) negative assessment
    timeline: tuple[tuple[dt.date, str], ...]  # (date, negative | positive | not_evaluable)


def sustained_negativity(timeline: list[tuple[dt.date, str]], min_days: int) -> dt.date | None:
    """Date of the first negative that lies ≥ ``min_days`` after an earlier negative with no positive between."""
    start = None
    for date, result in timeline:
        if result == "positive":
            start = None
        elif result == "negative":
            if start is None:
                start = date
            elif (date - start).days >= min_days:
                return date
    return None


def patient_mrd(patient_id: str, rows: pd.DataFrame, *, required_sensitivity: float, tissue: str = "BM",
                methods: tuple[str, ...] = ("NGF", "NGS"), min_days: int = SUSTAINED_MRD_MIN_DAYS,
                data_cutoff: dt.date | None = None) -> PatientMrd:
    """Summarise one patient's MRD rows (columns of mrd.csv, typed by :mod:`tables`)."""
    sel = rows[(rows["tissue"] == tissue) & (rows["method"].isin(methods))]
    if data_cutoff is not None:
        sel = sel.loc[[d <= data_cutoff for d in sel["date"]]]
    sel = sel.sort_values("date", kind="stable")
    timeline = [(r.date, classify_assessment(r.mrd_status, r.lod, required_sensitivity))
                for r in sel.itertuples(index=False)]
    negatives = [d for d, res in timeline if res == "negative"]
    sustained = sustained_negativity(timeline, min_days)
    return PatientMrd(
        patient_id=patient_id,
        n_assessments=len(timeline),
        evaluable=any(res != "not_evaluable" for _, res in timeline),
        negative=bool(negatives),
        first_negative_date=negatives[0] if negatives else None,
        sustained_negative=sustained is not None,
        sustained_negative_date=sustained,
        timeline=tuple(timeline),
    )
