"""Safety grading: CTCAE cytopenias from labs, ASTCT CRS and ICANS from daily tables, TEAE incidence.

* **CTCAE** (version from STUDY.yaml, thresholds in :mod:`criteria`): "<a–b" means a > value ≥ b, so ANC exactly
  1.0 ×10⁹/L is grade 2 in v5.0. Grade 1 needs the value below the LLN from STUDY.yaml. Anaemia has no lab-defined
  grade 4. Per patient the worst grade from infusion (day 0) to the data cut-off.
* **CRS** (ASTCT, Lee 2019) per day: fever = temperature ≥ 38.0 °C; grade = the more severe of hypotension
  (no vasopressor 2, one vasopressor 3, several 4) and hypoxia (low-flow 2, high-flow 3, positive pressure 4),
  grade 1 for fever alone; without fever the day is not CRS — unless anticytokine therapy was given on or before
  that day (fever then no longer required). Grade 5 (death from CRS) is not derivable from these tables.
* **ICANS** (ASTCT) per day: grade = worst domain — ICE 7–9 → 1, 3–6 → 2, 0–2 → 3 (an empty ICE = not done,
  e.g. unarousable, distinct from 0); consciousness 1–4; seizure 3–4; motor weakness 4; cerebral oedema 3–4.
* **Episodes**: consecutive calendar days with grade ≥ 1; onset = days since infusion of the first such day;
  duration = days from onset to the last day of that first episode, inclusive.
* **TEAE**: adverse events with onset on/after infusion and on/before the cut-off, in infused patients; incidence
  per term (any grade, grade ≥ 3) over all infused patients. A TEAE without a source grade takes the derived grade
  (CRS/ICANS from the daily tables, cytopenias from labs) when its term is one of :data:`DERIVED_TERMS`.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Mapping

import pandas as pd

from mrdflow.endpoints import criteria as C


def ctcae_grade(column: str, value: float, version: str, lln: float) -> int:
    """CTCAE grade (0–4) of a "decreased" haematology lab value; ``column`` as in labs.csv."""
    terms = {t.column: t for t in C.CTCAE[version]}
    term = terms[column]
    if value is None or math.isnan(value) or value >= lln and term.g1_upper is None:
        return 0
    if term.any_below_lln_is_g1_only:
        return 1 if value < lln else 0
    grade = 0
    g1_upper = lln if term.g1_upper is None else term.g1_upper
    if value < g1_upper:
        grade = 1
    for g, bound in zip((2, 3, 4), term.lower_bounds):
        if bound is not None and value < bound:
            grade = g
    return grade


def worst_cytopenias(labs: pd.DataFrame, version: str, lln: Mapping[str, float],
                     windows: Mapping[str, tuple[dt.date, dt.date]]) -> pd.DataFrame:
    """Worst grade per patient and term over each patient's window (infusion → cut-off).

    Returns a frame with columns patient_id, term, column, worst_grade, date_of_worst (patients of ``windows``
    only; a patient without labs in the window gets no rows).
    """
    rows = []
    for r in labs.itertuples(index=False):
        win = windows.get(r.patient_id)
        if win is None or not (win[0] <= r.date <= win[1]):
            continue
        for term in C.CTCAE[version]:
            rows.append((r.patient_id, term.term, term.column,
                         ctcae_grade(term.column, getattr(r, term.column), version, lln[term.column]), r.date))
    df = pd.DataFrame(rows, columns=["patient_id", "term", "column", "grade", "date"])
    if df.empty:
        return pd.DataFrame(columns=["patient_id", "term", "column", "worst_grade", "date_of_worst"])
    df = df.sort_values(["patient_id", "term", "grade", "date"], ascending=[True, True, False, True])
    worst = df.groupby(["patient_id", "term"], as_index=False).first()
    return worst.rename(columns={"grade": "worst_grade", "date": "date_of_worst"})


def crs_day_grade(temp_c: float, hypotension: str, hypoxia: str, anticytokine_so_far: bool) -> int:
    """ASTCT CRS grade (0–4) of one day (see module docstring)."""
    fever = temp_c is not None and not math.isnan(temp_c) and temp_c >= C.CRS_FEVER_C
    organ = max(C.CRS_HYPOTENSION_GRADE[hypotension or "none"], C.CRS_HYPOXIA_GRADE[hypoxia or "none"])
    if fever:
        return max(1, organ)
    return organ if anticytokine_so_far else 0


def ice_grade(ice_score: float | None) -> int:
    """ICANS grade from the ICE score alone (None/NaN = not performed → 0 here; graded by consciousness)."""
    if ice_score is None or math.isnan(ice_score):
        return 0
    for lowest, grade in C.ICE_GRADE_BANDS:
        if ice_score >= lowest:
            return grade
    raise ValueError(f"ICE score {ice_score} outside 0–10")


def icans_day_grade(ice_score: float | None, consciousness: str | None, seizure: str | None, motor: str | None,
                    cerebral_edema: str | None) -> int:
    """ASTCT ICANS grade (0–4) of one day = the worst domain."""
    return max(
        ice_grade(ice_score),
        C.ICANS_CONSCIOUSNESS_GRADE[consciousness or "normal"],
        C.ICANS_SEIZURE_GRADE[seizure or "none"],
        C.ICANS_MOTOR_GRADE[motor or "none"],
        C.ICANS_EDEMA_GRADE[cerebral_edema or "none"],
    )


@dataclass(frozen=True)
class Episode:
    """CRS or ICANS in one patient: any grade ≥ 1, worst grade, onset (days since infusion) and duration (days)."""

    patient_id: str
    occurred: bool
    max_grade: int
    onset_day: int | None
    duration_days: int | None
    n_episodes: int


def summarise_daily(patient_id: str, infusion: dt.date, days: list[tuple[dt.date, int]]) -> Episode:
    """Worst grade, onset and first-episode duration from (date, grade) pairs of one patient."""
    days = sorted(days)
    positive = [(d, g) for d, g in days if g >= 1]
    if not positive:
        return Episode(patient_id, False, 0, None, None, 0)
    episodes: list[list[dt.date]] = []
    prev_date, prev_pos = None, False
    for d, g in days:
        if g >= 1:
            if prev_pos and prev_date is not None and (d - prev_date).days == 1:
                episodes[-1].append(d)
            else:
                episodes.append([d])
        prev_date, prev_pos = d, g >= 1
    first = episodes[0]
    return Episode(patient_id, True, max(g for _, g in positive), (first[0] - infusion).days,
                   (first[-1] - first[0]).days + 1, len(episodes))


def crs_episodes(crs: pd.DataFrame, infusions: Mapping[str, dt.date], cutoff: dt.date) -> list[Episode]:
    """CRS summary per infused patient (patients without CRS rows count as no CRS)."""
    out = []
    for pid, inf in infusions.items():
        rows = crs[crs["patient_id"] == pid].sort_values("date", kind="stable")
        graded, anticytokine = [], False
        for r in rows.itertuples(index=False):
            if r.date < inf or r.date > cutoff:
                continue
            anticytokine = anticytokine or r.anticytokine == "yes"
            graded.append((r.date, crs_day_grade(r.temp_c, r.hypotension, r.hypoxia, anticytokine)))
        out.append(summarise_daily(pid, inf, graded))
    return out


def icans_episodes(icans: pd.DataFrame, infusions: Mapping[str, dt.date], cutoff: dt.date) -> list[Episode]:
    """ICANS summary per infused patient."""
    out = []
    for pid, inf in infusions.items():
        rows = icans[icans["patient_id"] == pid]
        graded = [(r.date, icans_day_grade(r.ice_score, r.consciousness, r.seizure, r.motor, r.cerebral_edema))
                  for r in rows.itertuples(index=False) if inf <= r.date <= cutoff]
        out.append(summarise_daily(pid, inf, graded))
    return out


#: AE terms (lower case) whose missing source grade is derived from the daily CRS/ICANS tables or from labs
DERIVED_TERMS = {
    "cytokine release syndrome": "crs", "crs": "crs",
    "icans": "icans", "immune effector cell-associated neurotoxicity syndrome": "icans",
    "neutrophil count decreased": "anc_10e9_l", "neutropenia": "anc_10e9_l",
    "white blood cell decreased": "wbc_10e9_l", "leukopenia": "wbc_10e9_l",
    "platelet count decreased": "plt_10e9_l", "thrombocytopenia": "plt_10e9_l",
    "anemia": "hb_g_dl", "anaemia": "hb_g_dl",
    "lymphocyte count decreased": "alc_10e9_l", "lymphopenia": "alc_10e9_l",
}


def treatment_emergent(ae: pd.DataFrame, infusions: Mapping[str, dt.date], cutoff: dt.date,
                       derived: Mapping[tuple[str, str], int] | None = None) -> pd.DataFrame:
    """TEAEs (onset from infusion to cut-off, infused patients) with a grade for every row where one is known.

    An empty source grade is filled from ``derived`` — (patient_id, key) → worst derived grade, keys as in
    :data:`DERIVED_TERMS` — and otherwise stays missing (counted in "any grade", never in "grade ≥ 3").
    Columns: patient_id, term, onset_date, grade (float, NaN = unknown), grade_source, serious.
    """
    derived = derived or {}
    rows = []
    for r in ae.itertuples(index=False):
        if r.patient_id not in infusions or not (infusions[r.patient_id] <= r.onset_date <= cutoff):
            continue
        grade, source = r.grade, "source"
        if grade != grade:  # NaN: not graded at source
            key = DERIVED_TERMS.get(r.term.strip().lower())
            got = derived.get((r.patient_id, key)) if key else None
            grade, source = (float(got), "derived") if got else (math.nan, "unknown")
        rows.append((r.patient_id, r.term.strip(), r.onset_date, grade, source, getattr(r, "serious", None)))
    return pd.DataFrame(rows, columns=["patient_id", "term", "onset_date", "grade", "grade_source", "serious"])


def teae_table(teae: pd.DataFrame, n_infused: int) -> pd.DataFrame:
    """TEAE incidence per term over the infused patients: patients with any grade and with grade ≥ 3 (worst grade
    per patient and term). Columns: term, n_any, n_grade3plus, n_infused."""
    if teae.empty:
        return pd.DataFrame(columns=["term", "n_any", "n_grade3plus", "n_infused"])
    worst = teae.groupby(["term", "patient_id"], as_index=False)["grade"].max()
    table = worst.groupby("term").agg(n_any=("patient_id", "nunique"),
                                      n_grade3plus=("grade", lambda g: int((g >= 3).sum()))).reset_index()
    table["n_infused"] = n_infused
    return table.sort_values(["n_any", "term"], ascending=[False, True], kind="stable").reset_index(drop=True)
