"""IMWG 2016 response (and the PCL variants) as a two-pass state machine (DOMAIN.md §5.2–5.3).

Pass 1 — :func:`classify_visit`: each assessment gets its *unconfirmed* category (sCR, CR, VGPR, PR, MR, SD, PD)
from its values, the baseline and the running nadir of every followed parameter.
Pass 2 — :func:`derive_response`: confirmation. A response at one assessment is confirmed by the next assessment
(before new therapy) at the lower of the two levels; PD from serum, urine, dFLC or blood needs a second consecutive
PD (an unconfirmed PD followed by a non-PD value is ignored); PD from marrow or imaging (new lesion, plasmacytoma)
needs no confirmation. The PD date is the date of the first of the PD assessments.

Rules chosen here (stated, because the criteria leave them open):

* **Baseline** = the latest assessment dated on or before enrollment; without one the response is NE.
* Response assessments are those after the baseline, on/before the data cut-off and before ``new_therapy_date``.
* **Measurable disease** at baseline decides which parameters are followed: serum M ≥ 1 g/dL and/or urine M
  ≥ 200 mg/24 h; only when neither, the involved FLC (≥ 100 mg/L with an abnormal ratio) via dFLC; only when
  none of these, marrow PCs (PR needs baseline ≥ 30 %).
* **Nadir** = the lowest value of a parameter over the baseline and all earlier post-baseline assessments.
* **Marrow results need no confirmation**: the latest post-baseline marrow (PC %, IHC clonality) is carried
  forward to later assessments for CR/sCR; marrow PD is judged only where a marrow was done.
* VGPR and CR need serum and urine results at that assessment; a missing value never satisfies a criterion.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from mrdflow.endpoints import criteria as C
from mrdflow.endpoints import pcl

#: response levels, worst to best; "NE" = not evaluable
LEVELS = ("PD", "SD", "MR", "PR", "VGPR", "CR", "sCR")
RANK = {name: i for i, name in enumerate(LEVELS)}
RANK["NE"] = -1
_CONFIRM_NEEDED = frozenset({"serum", "urine", "dFLC", "blood PC"})


def _ok(x: float | None) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def _ge(a: float, b: float) -> bool:
    """a ≥ b with a relative tolerance so that e.g. an exact 50 % reduction computed in floats counts."""
    return a >= b - 1e-9 * max(1.0, abs(b))


def _reduction(base: float, now: float) -> float:
    return (base - now) / base


@dataclass(frozen=True)
class Assessment:
    """One disease assessment (units as in assessments.csv; None/NaN = not done)."""

    date: dt.date
    serum_m_g_dl: float | None = None
    urine_m_mg_24h: float | None = None
    serum_ife: str | None = None
    urine_ife: str | None = None
    flc_kappa_mg_l: float | None = None
    flc_lambda_mg_l: float | None = None
    bm_pc_pct: float | None = None
    bm_clonal_ihc: str | None = None
    pb_pc_pct: float | None = None
    plasmacytoma_spd_mm2: float | None = None
    new_lesion: str | None = None

    @property
    def flc_ratio(self) -> float | None:
        k, lam = self.flc_kappa_mg_l, self.flc_lambda_mg_l
        if not (_ok(k) and _ok(lam)) or lam == 0:
            return None
        return k / lam


@dataclass(frozen=True)
class Measurability:
    """Which parameters are followed, decided at baseline (see module docstring)."""

    serum: bool
    urine: bool
    flc: bool
    marrow: bool
    involved_chain: str | None  # "kappa" | "lambda" | None

    def describe(self) -> str:
        names = [n for n, on in (("serum", self.serum), ("urine", self.urine), ("FLC", self.flc),
                                 ("marrow", self.marrow)) if on]
        return "+".join(names) or "none"


def measurability(baseline: Assessment) -> Measurability:
    """Measurable disease at baseline (IMWG): serum ≥ 1 g/dL, urine ≥ 200 mg/24 h, iFLC ≥ 100 mg/L + abnormal ratio."""
    serum = _ok(baseline.serum_m_g_dl) and baseline.serum_m_g_dl >= C.MEASURABLE_SERUM_G_DL
    urine = _ok(baseline.urine_m_mg_24h) and baseline.urine_m_mg_24h >= C.MEASURABLE_URINE_MG_24H
    ratio = baseline.flc_ratio
    chain = None
    if ratio is not None and ratio > C.FLC_RATIO_NORMAL_HIGH:
        chain = "kappa"
    elif ratio is not None and ratio < C.FLC_RATIO_NORMAL_LOW:
        chain = "lambda"
    involved = None if chain is None else (baseline.flc_kappa_mg_l if chain == "kappa" else baseline.flc_lambda_mg_l)
    flc = not serum and not urine and involved is not None and involved >= C.MEASURABLE_IFLC_MG_L
    marrow = (not serum and not urine and not flc and _ok(baseline.bm_pc_pct)
              and baseline.bm_pc_pct >= C.PR_BM_BASELINE_MIN_PCT)
    return Measurability(serum, urine, flc, marrow, chain)


def dflc(a: Assessment, chain: str | None) -> float | None:
    """Involved minus uninvolved free light chain, mg/L (None without both values or an involved chain)."""
    if chain is None or not (_ok(a.flc_kappa_mg_l) and _ok(a.flc_lambda_mg_l)):
        return None
    d = a.flc_kappa_mg_l - a.flc_lambda_mg_l
    return d if chain == "kappa" else -d


@dataclass
class _Nadir:
    values: dict[str, float] = field(default_factory=dict)

    def get(self, key: str) -> float | None:
        return self.values.get(key)

    def update(self, key: str, value: float | None) -> None:
        if _ok(value):
            self.values[key] = min(value, self.values.get(key, value))


@dataclass(frozen=True)
class VisitResult:
    """Pass-1 category of one assessment, the reasons for it, and (after pass 2) its confirmed level."""

    date: dt.date
    category: str
    reasons: tuple[str, ...]
    needs_confirmation: bool
    confirmed: str | None = None


def progression_reasons(a: Assessment, m: Measurability, nadir: _Nadir, cs: C.CriteriaSet,
                        marrow_measured: bool) -> list[str]:
    """Which PD criteria this assessment meets against the nadirs (empty list: no PD)."""
    reasons = []
    s, u = a.serum_m_g_dl, a.urine_m_mg_24h
    strict = cs.blood_rules == "pcl2013"  # PCL 2013 writes "> 25 %"

    def rel(inc: float, nad: float, frac: float) -> bool:
        return inc > nad * frac if strict else _ge(inc, nad * frac)

    if m.serum and _ok(s) and nadir.get("serum") is not None:
        nad = nadir.get("serum")
        inc = s - nad
        if (rel(inc, nad, C.PD_RELATIVE_INCREASE) and _ge(inc, C.PD_SERUM_ABS_G_DL)) or (
            nad >= C.PD_SERUM_HIGH_NADIR_G_DL and _ge(inc, C.PD_SERUM_HIGH_NADIR_ABS_G_DL)
        ):
            reasons.append("serum")
    if m.urine and _ok(u) and nadir.get("urine") is not None:
        nad = nadir.get("urine")
        inc = u - nad
        if rel(inc, nad, C.PD_RELATIVE_INCREASE) and _ge(inc, C.PD_URINE_ABS_MG_24H):
            reasons.append("urine")
    d = dflc(a, m.involved_chain)
    if m.flc and d is not None and nadir.get("dflc") is not None:
        nad = nadir.get("dflc")
        inc = d - nad
        if rel(inc, max(nad, 0.0), C.PD_RELATIVE_INCREASE) and inc > C.PD_DFLC_ABS_GT_MG_L:
            reasons.append("dFLC")
    if marrow_measured and nadir.get("marrow") is not None:
        nad = nadir.get("marrow")
        inc = a.bm_pc_pct - nad
        if cs.blood_rules == "pcl2013":
            if (nad > 0 and inc > nad * C.PCL2013_PD_BM_RELATIVE) or _ge(inc, C.PCL2013_PD_BM_ABS_PCT):
                reasons.append("marrow")
        elif not (m.serum or m.urine or m.flc):
            if _ge(inc, nad * C.PD_RELATIVE_INCREASE) and _ge(inc, C.PD_BM_ABS_PCT):
                reasons.append("marrow")
    if a.new_lesion == "yes":
        reasons.append("new lesion")
    spd, nad_spd = a.plasmacytoma_spd_mm2, nadir.get("spd")
    if _ok(spd) and nad_spd is not None and spd > 0:
        if nad_spd == 0:
            reasons.append("new lesion")
        elif _ge(spd - nad_spd, nad_spd * C.PD_SPD_INCREASE):
            reasons.append("plasmacytoma")
    if pcl.blood_progression(cs.blood_rules, a.pb_pc_pct, nadir.get("pb")):
        reasons.append("blood PC")
    return list(dict.fromkeys(reasons))


def serology_levels(a: Assessment, base: Assessment, m: Measurability, cs: C.CriteriaSet,
                    bm_pct: float | None, bm_ihc: str | None) -> dict[str, bool]:
    """For each level, whether its M-protein / FLC / marrow / plasmacytoma criteria hold (monotone: a level
    met implies every lower level met)."""
    s, u = a.serum_m_g_dl, a.urine_m_mg_24h
    red_s = _reduction(base.serum_m_g_dl, s) if m.serum and _ok(s) else None
    red_u = _reduction(base.urine_m_mg_24h, u) if m.urine and _ok(u) else None
    d0, d = dflc(base, m.involved_chain), dflc(a, m.involved_chain)
    red_d = _reduction(d0, d) if m.flc and d is not None and d0 else None

    spd0 = base.plasmacytoma_spd_mm2
    had_spd = _ok(spd0) and spd0 > 0
    spd = a.plasmacytoma_spd_mm2
    spd_gone = not had_spd or (_ok(spd) and spd == 0)
    spd_half = not had_spd or (_ok(spd) and spd <= spd0 * (1 - C.PR_SPD_REDUCTION) + 1e-9)

    ratio = a.flc_ratio
    ratio_normal = ratio is not None and C.FLC_RATIO_NORMAL_LOW <= ratio <= C.FLC_RATIO_NORMAL_HIGH
    ife_neg = a.serum_ife == "neg" and a.urine_ife == "neg"
    if cs.cr_bm_inclusive_max is None:
        bm_cr = _ok(bm_pct) and bm_pct < C.CR_BM_PC_LT_PCT
    else:
        bm_cr = _ok(bm_pct) and bm_pct <= cs.cr_bm_inclusive_max
    cr = ife_neg and bm_cr and spd_gone
    if cr and cs.blood_rules == "pcl2013" and not (m.serum or m.urine):
        cr = ratio_normal  # PCL 2013: unmeasurable serum/urine → normal κ/λ ratio also required for CR
    scr = cr and ratio_normal and bm_ihc == "no"

    sm = m.serum or m.urine
    if sm:
        epg_negative = _ok(s) and s == 0 and _ok(u) and u == 0
        serum_90 = not m.serum or (red_s is not None and _ge(red_s, C.VGPR_SERUM_REDUCTION))
        urine_lt100 = _ok(u) and u < C.VGPR_URINE_LT_MG_24H and (not m.serum or _ok(s))
        vgpr = (epg_negative or (serum_90 and urine_lt100)) and spd_half
    else:
        vgpr = cs.vgpr_by_dflc and red_d is not None and _ge(red_d, C.VGPR_SERUM_REDUCTION) and spd_half

    if sm:
        ok = True
        if m.serum:
            ok = ok and red_s is not None and _ge(red_s, C.PR_SERUM_REDUCTION)
        if m.urine:
            if red_u is None:
                ok = False
            else:
                by_red = _ge(red_u, C.PR_URINE_REDUCTION)
                by_abs = u < C.PR_URINE_LT_MG_24H
                ok = ok and ((by_red and by_abs) if cs.pr_urine_needs_both else (by_red or by_abs))
        pr = ok
    elif m.flc:
        pr = red_d is not None and _ge(red_d, C.PR_DFLC_REDUCTION)
    elif m.marrow:
        pr = _ok(bm_pct) and _ge(_reduction(base.bm_pc_pct, bm_pct), C.PR_BM_REDUCTION)
    else:
        pr = False
    pr = pr and spd_half

    mr = False
    if cs.has_mr and m.serum and red_s is not None and _ge(red_s, C.MR_SERUM_REDUCTION):
        mr = (not m.urine or (red_u is not None and _ge(red_u, C.MR_URINE_REDUCTION))) and spd_half

    met = {"sCR": scr, "CR": cr, "VGPR": vgpr, "PR": pr, "MR": mr}
    running = False
    for level in ("sCR", "CR", "VGPR", "PR", "MR"):
        running = running or met[level]
        met[level] = running
    if not cs.has_mr:
        met["MR"] = False
    return met


def classify_visits(baseline: Assessment, visits: list[Assessment], cs: C.CriteriaSet) -> list[VisitResult]:
    """Pass 1: the unconfirmed category of each post-baseline assessment (sorted by date)."""
    m = measurability(baseline)
    nadir = _Nadir()
    nadir.update("serum", baseline.serum_m_g_dl)
    nadir.update("urine", baseline.urine_m_mg_24h)
    nadir.update("dflc", dflc(baseline, m.involved_chain))
    nadir.update("marrow", baseline.bm_pc_pct)
    nadir.update("spd", baseline.plasmacytoma_spd_mm2 if _ok(baseline.plasmacytoma_spd_mm2) else 0.0)
    nadir.update("pb", baseline.pb_pc_pct)
    bm_pct, bm_ihc = None, None
    out = []
    for a in visits:
        marrow_measured = _ok(a.bm_pc_pct)
        if marrow_measured:
            bm_pct, bm_ihc = a.bm_pc_pct, a.bm_clonal_ihc
        reasons = progression_reasons(a, m, nadir, cs, marrow_measured)
        if reasons:
            out.append(VisitResult(a.date, "PD", tuple(reasons), all(r in _CONFIRM_NEEDED for r in reasons)))
        else:
            met = serology_levels(a, baseline, m, cs, bm_pct, bm_ihc)
            category, limits = "SD", []
            for level in ("sCR", "CR", "VGPR", "PR", "MR"):
                if not met[level]:
                    continue
                if pcl.blood_condition_met(cs.blood_rules, level, a.pb_pc_pct, baseline.pb_pc_pct, bm_pct):
                    category = level
                    break
                limits.append(f"{level} not met: blood/marrow condition ({cs.name})")
            # marrow-only disease: a marrow-based response needs no confirmation
            out.append(VisitResult(a.date, category, tuple(limits), needs_confirmation=not (m.marrow and marrow_measured)))
        for key, value in (("serum", a.serum_m_g_dl), ("urine", a.urine_m_mg_24h), ("dflc", dflc(a, m.involved_chain)),
                           ("spd", a.plasmacytoma_spd_mm2), ("pb", a.pb_pc_pct)):
            nadir.update(key, value)
        if marrow_measured:
            nadir.update("marrow", a.bm_pc_pct)
    return out


@dataclass(frozen=True)
class PatientResponse:
    """Result of the response engine for one patient (dates None when the event did not happen)."""

    patient_id: str
    baseline_date: dt.date | None
    measurable: str
    visits: tuple[VisitResult, ...]
    best_response: str
    best_response_date: dt.date | None
    first_pr_date: dt.date | None
    cr_date: dt.date | None
    pd_date: dt.date | None
    pd_reasons: tuple[str, ...]
    pd_unconfirmed_final: bool
    relapse_from_cr_date: dt.date | None
    last_assessment_date: dt.date | None


def confirm(visits: list[VisitResult], accept_unconfirmed_final_pd: bool = True
            ) -> tuple[list[VisitResult], int | None, bool]:
    """Pass 2: confirmed level per visit; returns (visits, index of the PD visit or None, PD-was-unconfirmed-final)."""
    out: list[VisitResult] = []
    pd_index, final_unconfirmed = None, False
    for i, v in enumerate(visits):
        nxt = visits[i + 1] if i + 1 < len(visits) else None
        if v.category == "PD":
            if not v.needs_confirmation or (nxt is not None and nxt.category == "PD"):
                pd_index = i
            elif nxt is None and accept_unconfirmed_final_pd:
                pd_index, final_unconfirmed = i, True
            out.append(_with(v, "PD" if pd_index == i else None))
            if pd_index is not None:
                break
            continue
        if not v.needs_confirmation:
            level = v.category
        elif nxt is None or nxt.category == "PD":
            level = None
        else:
            level = min(v.category, nxt.category, key=RANK.__getitem__)
        out.append(_with(v, level))
    return out, pd_index, final_unconfirmed


def _with(v: VisitResult, level: str | None) -> VisitResult:
    return VisitResult(v.date, v.category, v.reasons, v.needs_confirmation, level)


def derive_response(
    patient_id: str,
    assessments: list[Assessment],
    *,
    enrollment_date: dt.date,
    new_therapy_date: dt.date | None,
    data_cutoff: dt.date,
    criteria: C.CriteriaSet,
    accept_unconfirmed_final_pd: bool = True,
) -> PatientResponse:
    """Both passes for one patient, plus best confirmed response, response/CR/PD dates and relapse from CR."""
    assessments = sorted(assessments, key=lambda a: a.date)
    pre = [a for a in assessments if a.date <= enrollment_date]
    if not pre:
        return PatientResponse(patient_id, None, "none", (), "NE", None, None, None, None, (), False, None, None)
    baseline = pre[-1]
    post = [a for a in assessments if baseline.date < a.date <= data_cutoff
            and (new_therapy_date is None or a.date < new_therapy_date)]
    m = measurability(baseline)
    visits, pd_index, final_unconfirmed = confirm(classify_visits(baseline, post, criteria), accept_unconfirmed_final_pd)

    best, best_date, first_pr, cr_date = "NE", None, None, None
    for v in visits:
        if v.confirmed is None:
            continue
        if RANK[v.confirmed] > RANK[best]:
            best, best_date = v.confirmed, v.date
        if first_pr is None and RANK[v.confirmed] >= RANK["PR"]:
            first_pr = v.date
        if cr_date is None and RANK[v.confirmed] >= RANK["CR"]:
            cr_date = v.date
    pd_date = visits[pd_index].date if pd_index is not None else None
    if best == "NE" and post:
        # no confirmed level at all: SD when some assessment was not PD, otherwise (only PD) PD
        non_pd = [v for v in visits if v.category != "PD"]
        best, best_date = ("SD", non_pd[0].date) if non_pd else ("PD", pd_date)
    relapse = None
    if cr_date is not None:
        relapse = _relapse_from_cr(post, cr_date, pd_date, criteria)
    return PatientResponse(
        patient_id=patient_id,
        baseline_date=baseline.date,
        measurable=m.describe(),
        visits=tuple(visits),
        best_response=best,
        best_response_date=best_date,
        first_pr_date=first_pr,
        cr_date=cr_date,
        pd_date=pd_date,
        pd_reasons=visits[pd_index].reasons if pd_index is not None else (),
        pd_unconfirmed_final=final_unconfirmed,
        relapse_from_cr_date=relapse,
        last_assessment_date=post[-1].date if post else None,
    )


def _relapse_from_cr(post: list[Assessment], cr_date: dt.date, pd_date: dt.date | None,
                     cs: C.CriteriaSet) -> dt.date | None:
    """First assessment after the CR date with M-protein back (IFE or electrophoresis), marrow PCs ≥ 5 %
    (PCL 2013: > 10 %), blood PCs detectable (PCL 2013), or PD — whichever comes first."""
    for a in post:
        if a.date <= cr_date:
            continue
        if pd_date is not None and a.date >= pd_date:
            return pd_date
        back = (a.serum_ife == "pos" or a.urine_ife == "pos" or (_ok(a.serum_m_g_dl) and a.serum_m_g_dl > 0)
                or (_ok(a.urine_m_mg_24h) and a.urine_m_mg_24h > 0))
        if _ok(a.bm_pc_pct):
            if cs.blood_rules == "pcl2013":
                back = back or a.bm_pc_pct > C.PCL2013_RELAPSE_CR_BM_GT_PCT
            else:
                back = back or a.bm_pc_pct >= C.RELAPSE_CR_BM_PCT
        back = back or pcl.blood_relapse_from_cr(cs.blood_rules, a.pb_pc_pct)
        if back:
            return a.date
    return pd_date
