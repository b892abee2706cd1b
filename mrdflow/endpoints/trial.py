"""The whole trial: validated tables + rules → per-patient results and the named summary numbers.

:func:`analyse` is pure (tables in, :class:`TrialResults` out); :func:`run_study` reads STUDY.yaml and the
tables, analyses, and writes ``patient_response.csv``, ``assessment_response.csv``, ``endpoints.json`` and
``trial_report.html`` into the output folder (each written to a temporary name, then renamed).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from mrdflow import __version__
from mrdflow.endpoints import criteria as C
from mrdflow.endpoints import frailty as F
from mrdflow.endpoints import imwg, kinetics, safety, survival
from mrdflow.endpoints.mrd_status import PatientMrd, patient_mrd
from mrdflow.endpoints.rates import Rate, rate, summarise
from mrdflow.endpoints.study import Study, load_study
from mrdflow.endpoints.tables import Tables, load_tables

_ASSESSMENT_FIELDS = ("serum_m_g_dl", "urine_m_mg_24h", "serum_ife", "urine_ife", "flc_kappa_mg_l",
                      "flc_lambda_mg_l", "bm_pc_pct", "bm_clonal_ihc", "pb_pc_pct", "plasmacytoma_spd_mm2",
                      "new_lesion")


def assessments_of(frame: pd.DataFrame, pid: str) -> list[imwg.Assessment]:
    """The typed assessments of one patient (rows of the validated assessments table)."""
    rows = frame[frame["patient_id"] == pid]
    return [imwg.Assessment(r.date, **{f: getattr(r, f) for f in _ASSESSMENT_FIELDS})
            for r in rows.itertuples(index=False)]


@dataclass
class TrialResults:
    """Everything the outputs are made from."""

    study: Study
    patients: pd.DataFrame  # one row per enrolled patient (patient_response.csv)
    visits: pd.DataFrame  # one row per post-baseline assessment (assessment_response.csv)
    endpoints: dict
    responses: dict[str, imwg.PatientResponse]
    mrd: dict[str, PatientMrd]
    km: dict[str, survival.KmEstimate]
    pk: list[kinetics.PkResult]
    teae: pd.DataFrame
    cytopenias: pd.DataFrame
    frailty: pd.DataFrame
    results_text: str = ""
    tables: Tables | None = field(default=None, repr=False)
    teae_rows: pd.DataFrame | None = field(default=None, repr=False)  # one row per TEAE, grades filled
    #: the mrd rows derived from the results store / results.csv (mrd_source.csv), when the study has mrd_source
    mrd_view: pd.DataFrame | None = field(default=None, repr=False)


def _iso(d: dt.date | None) -> str:
    return "" if d is None else d.isoformat()


def _origin(study: Study, p) -> dt.date | None:
    return {"diagnosis": p.diagnosis_date, "enrollment": p.enrollment_date, "infusion": p.infusion_date}[study.time_origin]


def analyse(study: Study, t: Tables) -> TrialResults:
    """Derive every endpoint from validated tables (see each engine module for its rules)."""
    cs = C.CRITERIA_SETS[study.response_criteria]
    cutoff = study.data_cutoff
    pats = t.patients.loc[[d <= cutoff for d in t.patients["enrollment_date"]]]
    infusions = {p.patient_id: p.infusion_date for p in pats.itertuples(index=False)
                 if p.infusion_date is not None and p.infusion_date <= cutoff}
    efficacy = [p.patient_id for p in pats.itertuples(index=False)
                if study.efficacy_population == "enrolled" or p.patient_id in infusions]

    responses, mrds, rows, visit_rows = {}, {}, {}, []
    os_data, pfs_data, dor_data = [], [], []
    for p in pats.itertuples(index=False):
        pid = p.patient_id
        resp = imwg.derive_response(
            pid, assessments_of(t.assessments, pid), enrollment_date=p.enrollment_date,
            new_therapy_date=p.new_therapy_date, data_cutoff=cutoff, criteria=cs,
            accept_unconfirmed_final_pd=study.response.accept_unconfirmed_final_pd)
        responses[pid] = resp
        for v in resp.visits:
            visit_rows.append({"patient_id": pid, "date": _iso(v.date), "category_unconfirmed": v.category,
                               "confirmed_level": v.confirmed or "", "needs_confirmation": v.needs_confirmation,
                               "reasons": "; ".join(v.reasons)})
        m = patient_mrd(pid, t.mrd[t.mrd["patient_id"] == pid], required_sensitivity=study.mrd.required_sensitivity,
                        tissue=study.mrd.tissue, methods=study.mrd.methods,
                        min_days=study.mrd.sustained_min_days, data_cutoff=cutoff)
        mrds[pid] = m
        row = {
            "patient_id": pid, "infused": pid in infusions, "in_efficacy_population": pid in efficacy,
            "baseline_date": _iso(resp.baseline_date), "measurable_disease": resp.measurable,
            "best_response": resp.best_response, "best_response_date": _iso(resp.best_response_date),
            "first_response_date": _iso(resp.first_pr_date), "cr_date": _iso(resp.cr_date),
            "pd_date": _iso(resp.pd_date), "pd_criteria": "; ".join(resp.pd_reasons),
            "pd_unconfirmed_final": resp.pd_unconfirmed_final,
            "relapse_from_cr_date": _iso(resp.relapse_from_cr_date),
            "mrd_assessments": m.n_assessments, "mrd_evaluable": m.evaluable, "mrd_negative": m.negative,
            "first_mrd_negative_date": _iso(m.first_negative_date),
            "mrd_negative_cr": m.negative and imwg.RANK[resp.best_response] >= imwg.RANK["CR"],
            "sustained_mrd_negative": m.sustained_negative,
        }
        origin = _origin(study, p)
        if pid in efficacy and origin is not None:
            o = survival.overall_survival(pid, origin, death_date=p.death_date, last_contact=p.last_contact_date,
                                          cutoff=cutoff)
            f = survival.progression_free_survival(
                pid, origin, pd_date=resp.pd_date, death_date=p.death_date,
                last_assessment=resp.last_assessment_date, new_therapy_date=p.new_therapy_date, cutoff=cutoff,
                censor_at_new_therapy=study.survival.censor_at_new_therapy)
            os_data.append(o)
            pfs_data.append(f)
            row.update(os_months=round(o.months, 3), os_event=o.event, os_reason=o.reason,
                       pfs_months=round(f.months, 3), pfs_event=f.event, pfs_reason=f.reason)
        if pid in efficacy and resp.first_pr_date is not None:
            d = survival.duration_of_response(
                pid, resp.first_pr_date, pd_date=resp.pd_date, death_date=p.death_date, death_cause=p.death_cause,
                last_assessment=resp.last_assessment_date, new_therapy_date=p.new_therapy_date, cutoff=cutoff,
                death_events=study.survival.dor_death_events,
                censor_at_new_therapy=study.survival.censor_at_new_therapy)
            dor_data.append(d)
            row.update(dor_months=round(d.months, 3), dor_event=d.event, dor_reason=d.reason)
        rows[pid] = row

    marks = study.survival.landmarks_months
    km = {
        "pfs": survival.kaplan_meier("PFS", [x.months for x in pfs_data], [x.event for x in pfs_data], marks),
        "os": survival.kaplan_meier("OS", [x.months for x in os_data], [x.event for x in os_data], marks),
        "dor": survival.kaplan_meier("DOR", [x.months for x in dor_data], [x.event for x in dor_data], marks),
        "followup": survival.median_followup(os_data),
    }

    # kinetics
    pk = []
    kin = study.kinetics
    for pid in infusions:
        s = t.cart_pk[t.cart_pk["patient_id"] == pid]
        if s.empty:
            continue
        r = kinetics.nca(pid, s["day"].to_numpy(float), s["copies_per_ug_gdna"].to_numpy(float),
                         (s["blq"] == "yes").to_numpy(), s["lloq"].to_numpy(float), blq_rule=kin.blq_rule,
                         auc_end_day=kin.auc_end_day, assume_zero_at_day0=kin.assume_zero_at_day0,
                         cmax_window_days=kin.cmax_window_days)
        pk.append(r)
        rows[pid].update(cmax=r.cmax, tmax_days=r.tmax_days, auc0_28=r.auc0_28, auc0_28_flag=r.auc_flag,
                         clast=r.clast, tlast_days=r.tlast_days)

    # safety
    crs = safety.crs_episodes(t.crs, infusions, cutoff) if "crs" in t.present else []
    icans = safety.icans_episodes(t.icans, infusions, cutoff) if "icans" in t.present else []
    for e, name in [(e, "crs") for e in crs] + [(e, "icans") for e in icans]:
        rows[e.patient_id].update({f"{name}_max_grade": e.max_grade, f"{name}_onset_day": e.onset_day,
                                   f"{name}_duration_days": e.duration_days})
    cyto = pd.DataFrame()
    if "labs" in t.present and study.lln is not None:
        windows = {pid: (inf, cutoff) for pid, inf in infusions.items()}
        cyto = safety.worst_cytopenias(t.labs, study.ctcae_version, study.lln.model_dump(), windows)
    derived = {(e.patient_id, "crs"): e.max_grade for e in crs} | {(e.patient_id, "icans"): e.max_grade for e in icans}
    for r in cyto.itertuples(index=False):
        derived[(r.patient_id, r.column)] = int(r.worst_grade)
    teae_rows = safety.treatment_emergent(t.adverse_events, infusions, cutoff, derived)
    teae = safety.teae_table(teae_rows, len(infusions))

    # frailty
    frail_rows = []
    cut = study.frailty.cutoffs()
    for p in pats.itertuples(index=False):
        cga = t.cga[t.cga["patient_id"] == p.patient_id].sort_values("date", kind="stable")
        for r in cga.itertuples(index=False):
            if r.date > cutoff:
                continue
            age = F.age_in_years(r.date, birth_date=p.birth_date, age_at_enrollment=p.age_at_enrollment,
                                 enrollment_date=p.enrollment_date)
            sc = F.frailty_score(r.date, age, r.cci, r.adl, r.iadl, direction=study.frailty.scale_direction, cut=cut)
            frail_rows.append({"patient_id": p.patient_id, "date": r.date, "baseline": r.date <= p.enrollment_date,
                               "age": age, "adl_std": sc.adl_std, "iadl_std": sc.iadl_std, "cci": r.cci,
                               "score": sc.total, "category": sc.category})
    frail = pd.DataFrame(frail_rows, columns=["patient_id", "date", "baseline", "age", "adl_std", "iadl_std", "cci",
                                              "score", "category"])
    for pid, g in frail.groupby("patient_id"):
        base = g[g["baseline"]]
        if base.empty:
            continue
        b = base.iloc[-1]
        last = g.iloc[-1]
        rows[pid].update(frailty_baseline_score=int(b.score), frailty_baseline_category=b.category,
                         frailty_last_date=_iso(last.date), frailty_last_score=int(last.score),
                         frailty_score_change=int(last.score - b.score),
                         adl_change=float(last.adl_std - b.adl_std), iadl_change=float(last.iadl_std - b.iadl_std))

    patient_df = pd.DataFrame(list(rows.values()))
    visit_df = pd.DataFrame(visit_rows, columns=["patient_id", "date", "category_unconfirmed", "confirmed_level",
                                                 "needs_confirmation", "reasons"])
    res = TrialResults(study, patient_df, visit_df, {}, responses, mrds, km, pk, teae, cyto, frail, tables=t,
                       teae_rows=teae_rows)
    res.endpoints = summary_numbers(res, efficacy, infusions, crs, icans, cut)
    from mrdflow.endpoints.report import results_paragraph  # late import: report imports this module's types
    res.results_text = results_paragraph(res)
    res.endpoints["results_text"] = res.results_text
    return res


def _r(r: Rate) -> dict:
    return r.to_dict()


def _range(s) -> list | None:
    return None if s.n == 0 else [s.minimum, s.maximum]


def summary_numbers(res: TrialResults, efficacy: list[str], infusions: Mapping[str, dt.date], crs, icans,
                    cut: C.FrailtyCutoffs) -> dict:
    """The named numbers of endpoints.json (rates carry k, denominator and the exact 95 % CI)."""
    st = res.study
    n_eff = len(efficacy)
    best = [res.responses[p].best_response for p in efficacy]

    def at_least(level: str) -> Rate:
        return rate(sum(imwg.RANK[b] >= imwg.RANK[level] for b in best), n_eff)

    mrd = [res.mrd[p] for p in efficacy]
    n_eval = sum(m.evaluable for m in mrd)
    n_neg = sum(m.negative for m in mrd)
    neg_cr = sum(m.negative and imwg.RANK[res.responses[m.patient_id].best_response] >= imwg.RANK["CR"] for m in mrd)
    km = res.km
    pk_c = summarise(r.cmax for r in res.pk)
    pk_t = summarise(r.tmax_days for r in res.pk)
    pk_a = summarise(r.auc0_28 for r in res.pk)
    pk_l = summarise(r.tlast_days for r in res.pk)
    n_inf = len(infusions)
    out: dict = {
        "study_id": st.study_id, "title": st.title, "data_cutoff": st.data_cutoff.isoformat(),
        "mrdflow_version": __version__,
        "rules": {
            "response_criteria": st.response_criteria, "response_criteria_source": C.CRITERIA_SETS[st.response_criteria].source,
            "ctcae_version": st.ctcae_version, "time_origin": st.time_origin,
            "efficacy_population": st.efficacy_population, "mrd": st.mrd.model_dump(),
            "survival": st.survival.model_dump(), "kinetics": st.kinetics.model_dump(),
            "frailty": st.frailty.model_dump(), "days_per_month": C.DAYS_PER_MONTH,
        },
        "tables_present": sorted(res.tables.present) if res.tables is not None else [],
        "n_enrolled": int(len(res.patients)), "n_infused": n_inf, "n_efficacy_population": n_eff,
        "best_response_counts": {lvl: best.count(lvl) for lvl in ("sCR", "CR", "VGPR", "PR", "MR", "SD", "PD", "NE")},
        "orr": _r(at_least("PR")), "crr": _r(at_least("CR")), "scr_rate": _r(at_least("sCR")),
        "vgpr_or_better_rate": _r(at_least("VGPR")),
        "n_mrd_evaluable": n_eval,
        "mrd_negative_rate_itt": _r(rate(n_neg, n_eff)),
        "mrd_negative_rate_evaluable": _r(rate(n_neg, n_eval)),
        "mrd_negative_cr_rate_itt": _r(rate(neg_cr, n_eff)),
        "sustained_mrd_negative_rate_itt": _r(rate(sum(m.sustained_negative for m in mrd), n_eff)),
        "median_pfs_months": km["pfs"].median_months, "median_os_months": km["os"].median_months,
        "median_dor_months": km["dor"].median_months, "median_followup_months": km["followup"].median_months,
        "pfs": km["pfs"].to_dict(), "os": km["os"].to_dict(), "dor": km["dor"].to_dict(),
        "followup": km["followup"].to_dict(),
        "n_pk": len(res.pk),
        "cmax_median": pk_c.median, "cmax_range": _range(pk_c),
        "tmax_median_days": pk_t.median, "tmax_range_days": _range(pk_t),
        "auc0_28_median": pk_a.median, "auc0_28_range": _range(pk_a), "n_auc0_28_evaluable": pk_a.n,
        "tlast_median_days": pk_l.median, "tlast_range_days": _range(pk_l),
        "pk_units": {"cmax": "copies/ug gDNA", "auc0_28": "day*copies/ug gDNA", "tmax": "days since infusion"},
    }
    present = set(out["tables_present"])
    for name, eps in (("crs", crs), ("icans", icans)):
        if name not in present:
            continue
        occurred = [e for e in eps if e.occurred]
        onset, dur = summarise(e.onset_day for e in occurred), summarise(e.duration_days for e in occurred)
        out.update({
            f"{name}_rate": _r(rate(len(occurred), n_inf)),
            f"{name}_grade3plus_rate": _r(rate(sum(e.max_grade >= 3 for e in eps), n_inf)),
            f"{name}_grade_max": max((e.max_grade for e in eps), default=0),
            f"{name}_grade_counts": {str(g): sum(e.max_grade == g for e in occurred) for g in (1, 2, 3, 4)},
            f"{name}_onset_median_days": onset.median, f"{name}_onset_range_days": _range(onset),
            f"{name}_duration_median_days": dur.median, f"{name}_duration_range_days": _range(dur),
        })
    out["ae_any_grade_rate"] = {r.term: _r(rate(int(r.n_any), n_inf)) for r in res.teae.itertuples(index=False)}
    out["ae_grade3plus_rate"] = {r.term: _r(rate(int(r.n_grade3plus), n_inf)) for r in res.teae.itertuples(index=False)}
    te = res.teae_rows if res.teae_rows is not None else pd.DataFrame(columns=["patient_id", "grade", "serious"])
    out["teae_any_rate"] = _r(rate(te["patient_id"].nunique(), n_inf))
    out["teae_grade3plus_any_term_rate"] = _r(rate(te.loc[te["grade"] >= 3, "patient_id"].nunique(), n_inf))
    out["serious_teae_rate"] = _r(rate(te.loc[te["serious"] == "yes", "patient_id"].nunique(), n_inf))
    out["teae_ungraded_n"] = int(te["grade"].isna().sum())
    if not res.cytopenias.empty:
        g = res.cytopenias
        out["cytopenia_grade3plus_rate"] = {
            term: _r(rate(int((sub["worst_grade"] >= 3).sum()), n_inf)) for term, sub in g.groupby("term")}
    fr = res.frailty
    base = fr[fr["baseline"]].groupby("patient_id").tail(1) if not fr.empty else fr
    out["frailty_baseline_counts"] = {c: int((base["category"] == c).sum()) for c in F.CATEGORIES}
    out["frailty_baseline_counts"]["not_assessed"] = int(len(res.patients) - len(base))
    if "frailty_score_change" in res.patients:
        ch = summarise(res.patients["frailty_score_change"].tolist())
        out["frailty_score_change_median"] = ch.median
        out["frailty_score_change_range"] = _range(ch)
        cat_change = res.patients.dropna(subset=["frailty_score_change"])
        out["frailty_worsened_n"] = int((cat_change["frailty_score_change"] > 0).sum())
        out["frailty_improved_n"] = int((cat_change["frailty_score_change"] < 0).sum())
    return out


def _json_default(o):
    if isinstance(o, (dt.date,)):
        return o.isoformat()
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if math.isnan(o) else float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean(o):
    if isinstance(o, float) and math.isnan(o):
        return None
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_outputs(res: TrialResults, out_dir: Path, *, html: bool = True) -> dict[str, Path]:
    """Write the output files; returns name → path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "patient_response": out_dir / "patient_response.csv",
        "assessment_response": out_dir / "assessment_response.csv",
        "endpoints": out_dir / "endpoints.json",
    }
    _write_atomic(paths["patient_response"], res.patients.to_csv(index=False))
    _write_atomic(paths["assessment_response"], res.visits.to_csv(index=False))
    text = json.dumps(_clean(res.endpoints), indent=2, default=_json_default, allow_nan=False, ensure_ascii=False)
    _write_atomic(paths["endpoints"], text + "\n")
    if res.mrd_view is not None:
        paths["mrd_source"] = out_dir / "mrd_source.csv"
        _write_atomic(paths["mrd_source"], res.mrd_view.to_csv(index=False))
    if html:
        from mrdflow.endpoints.report import render_report
        paths["report"] = out_dir / "trial_report.html"
        _write_atomic(paths["report"], render_report(res))
    return paths


def run_study(study_path: str | Path, out_dir: str | Path, *,
              overrides: Mapping[str, pd.DataFrame] | None = None, html: bool = True) -> TrialResults:
    """Load STUDY.yaml and its tables, derive every endpoint and write the outputs to ``out_dir``.

    MRD rows come from the ``mrd`` table and/or the study's ``mrd_source`` (results store or results.csv through
    a sample map, :mod:`mrdflow.endpoints.mrd_source`); ``overrides`` swaps a table source (``{"mrd": frame}``
    replaces both). endpoints.json records the MRD source (``mrd_source``) and what was left out (``warnings``).
    """
    study = load_study(study_path)
    overrides = dict(overrides or {})
    loader = None
    if study.mrd_source is not None and "mrd" not in overrides:
        from mrdflow.endpoints.mrd_source import MrdSourceLoader
        loader = MrdSourceLoader(study.mrd_source)
    tables = load_tables(study.tables, overrides, derived={"mrd": loader} if loader is not None else None)
    res = analyse(study, tables)
    source: dict = {"table": str(study.tables["mrd"]) if "mrd" in study.tables and "mrd" not in overrides else None,
                    "override": "mrd" in overrides}
    warnings: list[str] = []
    if loader is not None and loader.view is not None:
        source.update(loader.view.summary)
        warnings = list(loader.view.warnings)
        res.mrd_view = loader.view.frame
    res.endpoints["mrd_source"] = source
    res.endpoints["warnings"] = warnings
    write_outputs(res, Path(out_dir), html=html)
    return res
