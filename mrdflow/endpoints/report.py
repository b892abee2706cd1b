"""trial_report.html: a self-contained page (figures as base64 PNG) and the generated "Results" paragraph.

Figures: Kaplan–Meier curves (PFS, OS, DOR), a swimmer plot of responses and MRD over time, and CAR-T kinetics
curves. The template is rendered by jinja2 with autoescaping on, so table text cannot inject markup.
"""

from __future__ import annotations

import base64
import io

import numpy as np
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from jinja2 import Environment, PackageLoader, select_autoescape  # noqa: E402

from mrdflow.endpoints.criteria import DAYS_PER_MONTH  # noqa: E402
from mrdflow.endpoints.rates import summarise  # noqa: E402

if TYPE_CHECKING:
    from mrdflow.endpoints.trial import TrialResults

_RESPONSE_COLOURS = {"sCR": "#1a9850", "CR": "#66bd63", "VGPR": "#a6d96a", "PR": "#fee08b", "MR": "#fdae61",
                     "SD": "#bdbdbd", "PD": "#d73027"}
_CRITERIA_LABEL = {"imwg2016": "IMWG 2016", "pcl2013": "IMWG 2013 PCL", "pcl_vandedonk2012": "van de Donk 2012 PCL"}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


_KM_PANELS = (("pfs", "Progression-free survival", "#1f77b4"), ("os", "Overall survival", "#2ca02c"),
              ("dor", "Duration of response", "#9467bd"))


def _km_data(res: "TrialResults", key: str):
    """(months, event) of one endpoint per patient, from the patient table the estimates were computed from."""
    cols = (f"{key}_months", f"{key}_event")
    if res.patients.empty or not all(c in res.patients.columns for c in cols):
        return None
    d = res.patients[list(cols)].dropna()
    return d[cols[0]].astype(float).to_numpy(), d[cols[1]].astype(bool).to_numpy()


def km_figure(res: "TrialResults") -> str | None:
    """PFS, OS and DOR Kaplan–Meier curves side by side: 95 % CI band, censoring ticks, the median marked, and
    the numbers at risk under each panel (lifelines ``add_at_risk_counts``)."""
    from lifelines import KaplanMeierFitter
    from lifelines.plotting import add_at_risk_counts

    panels = []
    for key, title, colour in _KM_PANELS:
        km = res.km[key]
        data = _km_data(res, key)
        if km.n == 0 or data is None or data[0].size != km.n:
            continue
        panels.append((key, title, colour, km, data))
    if not panels:
        return None
    horizon = max(float(d[0].max()) for *_, d in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.1), squeeze=False)
    for ax, (key, title, colour, km, (t, e)) in zip(axes[0], panels):
        kmf = KaplanMeierFitter(alpha=0.05, label=key.upper()).fit(t, e)
        kmf.plot_survival_function(ax=ax, ci_show=True, show_censors=True, color=colour, legend=False,
                                   censor_styles={"ms": 8, "marker": "|"})
        if km.median_months is not None:
            ax.plot([0, km.median_months, km.median_months], [0.5, 0.5, 0], ls=":", color="grey", lw=1)
        ax.set_title(f"{title}\nmedian {km.median_text()}", fontsize=9)
        ax.set_xlim(0, horizon * 1.03)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("months", fontsize=9)
        ax.set_ylabel("probability" if ax is axes[0][0] else "", fontsize=9)
        ax.grid(alpha=0.25)
        ax.text(0.97, 0.05, f"n={km.n}, events={km.n_events}\n| censored", transform=ax.transAxes, ha="right",
                va="bottom", fontsize=8)
        add_at_risk_counts(kmf, ax=ax, rows_to_show=["At risk"], fig=fig)
    fig.tight_layout()
    return _png(fig)


def _s_at(km, t: float) -> float:
    s = 1.0
    for ti, si in zip(km.times, km.survival):
        if ti <= t:
            s = si
    return s


def swimmer_figure(res: "TrialResults") -> str | None:
    pats = res.patients
    if pats.empty or res.tables is None:
        return None
    st = res.study
    t = res.tables.patients.set_index("patient_id")
    ids = list(pats["patient_id"])
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(ids) + 1.5))
    for y, pid in enumerate(reversed(ids)):
        p = t.loc[pid]
        origin = p.infusion_date or p.enrollment_date
        end = min(p.death_date or p.last_contact_date, st.data_cutoff)
        months = lambda d: (d - origin).days / DAYS_PER_MONTH  # noqa: E731
        ax.barh(y, months(end), left=0, color="#deebf7", edgecolor="#6baed6", height=0.6)
        for v in res.responses[pid].visits:
            if v.confirmed:
                ax.plot(months(v.date), y, "s", ms=6, color=_RESPONSE_COLOURS.get(v.confirmed, "k"))
        for d, r in res.mrd[pid].timeline:
            mk = {"negative": ("v", "#08519c"), "positive": ("^", "#a50f15"), "not_evaluable": ("x", "#737373")}[r]
            ax.plot(months(d), y + 0.32, mk[0], ms=5, color=mk[1])
        if p.death_date is not None and p.death_date <= st.data_cutoff:
            ax.plot(months(p.death_date), y, "X", ms=9, color="black")
        elif end < st.data_cutoff or end == st.data_cutoff:
            ax.annotate("", xy=(months(end) + 0.6, y), xytext=(months(end), y),
                        arrowprops={"arrowstyle": "->", "color": "#6baed6"})
        if p.infusion_date is None:
            ax.text(0.1, y, "not infused", va="center", fontsize=7)
    ax.set_yticks(range(len(ids)))
    ax.set_yticklabels(list(reversed(ids)), fontsize=8)
    ax.set_xlabel("months since infusion (enrollment if not infused)")
    handles = [plt.Line2D([], [], marker="s", ls="", color=c, label=k) for k, c in _RESPONSE_COLOURS.items()]
    handles += [plt.Line2D([], [], marker="v", ls="", color="#08519c", label="MRD−"),
                plt.Line2D([], [], marker="^", ls="", color="#a50f15", label="MRD+"),
                plt.Line2D([], [], marker="x", ls="", color="#737373", label="MRD NE"),
                plt.Line2D([], [], marker="X", ls="", color="black", label="death"),
                plt.Line2D([], [], marker=">", ls="", color="#6baed6", label="alive at cut-off")]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title("Confirmed response and bone-marrow MRD over time")
    return _png(fig)


def kinetics_figure(res: "TrialResults") -> str | None:
    if not res.pk:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in res.pk:
        days = [d for d, v in zip(r.days, r.values) if v > 0]
        vals = [v for v in r.values if v > 0]
        if days:
            ax.plot(days, vals, "o-", ms=3, lw=1, label=r.patient_id)
    ax.set_yscale("log")
    ax.set_xlabel("days since infusion")
    ax.set_ylabel("transgene copies/µg gDNA")
    ax.axvline(res.study.kinetics.auc_end_day, ls=":", color="grey")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("CAR-T expansion and persistence (BLQ values not shown)")
    return _png(fig)


def _power_of_ten(x: float) -> str:
    """``10⁻⁵`` for 1e-5, ``2×10⁻⁶`` for 2e-6 (how sensitivities are written in MRD papers)."""
    mantissa, exp = f"{x:.1e}".split("e")
    sup = str(int(exp)).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"10{sup}" if mantissa == "1" else f"{mantissa}×10{sup}"


def _pct(r: dict) -> str:
    if not r or r["denominator"] == 0:
        return "not estimable"
    return (f"{r['n']}/{r['denominator']} ({100 * r['rate']:.0f}%; 95% CI {100 * r['ci95_low']:.0f}–"
            f"{100 * r['ci95_high']:.0f}%)")


def _median_text(km) -> str:
    return km.median_text()


def results_paragraph(res: "TrialResults") -> str:
    """A trial-abstract-style "Results" paragraph generated from the numbers (no number typed by hand)."""
    e = res.endpoints
    st = res.study
    crit = _CRITERIA_LABEL[st.response_criteria]
    pop = "infused" if st.efficacy_population == "infused" else "enrolled"
    parts = [f"Of {e['n_enrolled']} enrolled patients, {e['n_infused']} received the CAR-T infusion; "
             f"efficacy is reported for the {e['n_efficacy_population']} {pop} patients and safety for the "
             f"{e['n_infused']} infused patients (data cut-off {e['data_cutoff']})."]
    fu = res.km["followup"]
    if fu.n:
        parts.append(f"Median follow-up (reverse Kaplan–Meier) was {_median_text(fu).replace(' (95% CI', ' (95% CI')}.")
    parts.append(f"The overall response rate (≥PR, {crit}, confirmed) was {_pct(e['orr'])}, with ≥VGPR in "
                 f"{_pct(e['vgpr_or_better_rate'])}, ≥CR in {_pct(e['crr'])} and sCR in {_pct(e['scr_rate'])}.")
    sens = _power_of_ten(st.mrd.required_sensitivity)
    present = set(e.get("tables_present", ()))
    if "mrd" not in present:
        parts.append("MRD was not assessed (no MRD table).")
    else:
        parts.append(f"MRD negativity in {'bone marrow' if st.mrd.tissue == 'BM' else 'blood'} at a sensitivity of "
                     f"{sens} was reached by {_pct(e['mrd_negative_rate_itt'])} (intention to treat) and "
                     f"{_pct(e['mrd_negative_rate_evaluable'])} of MRD-evaluable patients; "
                     f"{e['sustained_mrd_negative_rate_itt']['n']} had sustained MRD negativity (≥1 year).")
    pfs, os_ = res.km["pfs"], res.km["os"]
    land = []
    for key, km in (("PFS", pfs), ("OS", os_)):
        for m, (r, lo, hi) in km.landmarks.items():
            land.append(f"{m:g}-month {key} {100 * r:.0f}% (95% CI {100 * lo:.0f}–{100 * hi:.0f}%)")
    parts.append(f"Median PFS was {_median_text(pfs)} and median OS {_median_text(os_)}"
                 + (f"; {', '.join(land)}" if land else "") + ".")
    if res.km["dor"].n:
        parts.append(f"Median duration of response was {_median_text(res.km['dor'])}.")
    if "crs_rate" in e and "icans_rate" in e and e["n_infused"]:
        crs_txt = (f"CRS occurred in {_pct(e['crs_rate'])} (grade ≥3: {e['crs_grade3plus_rate']['n']}; "
                   f"maximum grade {e['crs_grade_max']})")
        if e["crs_onset_median_days"] is not None:
            crs_txt += (f", with median onset on day {e['crs_onset_median_days']:g} (range "
                        f"{e['crs_onset_range_days'][0]:g}–{e['crs_onset_range_days'][1]:g}) and median duration "
                        f"{e['crs_duration_median_days']:g} days")
        parts.append(crs_txt + f"; ICANS occurred in {_pct(e['icans_rate'])} (grade ≥3: "
                     f"{e['icans_grade3plus_rate']['n']}).")
    g3 = sorted(((v["n"], k) for k, v in e.get("ae_grade3plus_rate", {}).items() if v["n"] > 0), reverse=True)[:3]
    cy = sorted(((v["n"], k) for k, v in e.get("cytopenia_grade3plus_rate", {}).items() if v["n"] > 0), reverse=True)
    if cy:
        parts.append("Grade ≥3 cytopenias (CTCAE v" + st.ctcae_version + ") after infusion: "
                     + ", ".join(f"{k.lower()} {n}/{e['n_infused']}" for n, k in cy) + ".")
    if g3:
        parts.append("The most frequent grade ≥3 adverse events were "
                     + ", ".join(f"{k.lower()} ({n}/{e['n_infused']})" for n, k in g3) + ".")
    if e["n_pk"]:
        parts.append(f"CAR-T transgene expansion peaked at a median of day {e['tmax_median_days']:g} (range "
                     f"{e['tmax_range_days'][0]:g}–{e['tmax_range_days'][1]:g}) with median Cmax "
                     f"{e['cmax_median']:,.0f} copies/µg gDNA (range {e['cmax_range'][0]:,.0f}–{e['cmax_range'][1]:,.0f})"
                     + (f" and median AUC0–28 {e['auc0_28_median']:,.0f} day·copies/µg (n={e['n_auc0_28_evaluable']})"
                        if e["auc0_28_median"] is not None else "") + ".")
    fc = e["frailty_baseline_counts"]
    if sum(fc[c] for c in ("fit", "intermediate", "frail")):
        txt = (f"At baseline, {fc['fit']} patients were fit, {fc['intermediate']} intermediate-fit and {fc['frail']} "
               f"frail by the IMWG frailty score")
        if e.get("frailty_score_change_median") is not None:
            txt += (f"; at the last assessment the score had worsened in {e['frailty_worsened_n']} and improved in "
                    f"{e['frailty_improved_n']} patients")
        parts.append(txt + ".")
    return " ".join(parts)


def render_report(res: "TrialResults") -> str:
    """The full HTML page."""
    env = Environment(loader=PackageLoader("mrdflow.endpoints", "templates"),
                      autoescape=select_autoescape(["html", "xml"]))
    tpl = env.get_template("trial_report.html")
    e = res.endpoints
    rate_rows = [(label, _pct(e[key])) for label, key in (
        ("Overall response (≥PR)", "orr"), ("≥VGPR", "vgpr_or_better_rate"), ("≥CR", "crr"), ("sCR", "scr_rate"),
        ("MRD-negative (ITT)", "mrd_negative_rate_itt"), ("MRD-negative (evaluable)", "mrd_negative_rate_evaluable"),
        ("MRD-negative CR (ITT)", "mrd_negative_cr_rate_itt"),
        ("Sustained MRD-negative (ITT)", "sustained_mrd_negative_rate_itt"),
        ("CRS (any grade)", "crs_rate"), ("CRS grade ≥3", "crs_grade3plus_rate"),
        ("ICANS (any grade)", "icans_rate"), ("ICANS grade ≥3", "icans_grade3plus_rate"),
    ) if key in e]
    names = {"pfs": "PFS", "os": "OS", "dor": "DOR", "followup": "Follow-up (reverse KM)"}
    km_rows = [(names[k], res.km[k].n, res.km[k].n_events, res.km[k].median_text(),
                "; ".join(f"{m:g} mo {100 * r:.0f}% ({100 * lo:.0f}–{100 * hi:.0f})"
                          for m, (r, lo, hi) in res.km[k].landmarks.items()))
               for k in ("pfs", "os", "dor", "followup")]
    pk_rows = [(r.patient_id, _fmt(r.cmax, "{:,.0f}"), _fmt(r.tmax_days), _fmt(r.auc0_28, "{:,.0f}"),
                _fmt(r.tlast_days), r.auc_flag) for r in res.pk]
    pk_sum = [("Cmax (copies/µg)", summarise(r.cmax for r in res.pk).text("{:,.0f}")),
              ("Tmax (days)", summarise(r.tmax_days for r in res.pk).text("{:g}")),
              ("AUC0–28 (day·copies/µg)", summarise(r.auc0_28 for r in res.pk).text("{:,.0f}")),
              ("Tlast (days)", summarise(r.tlast_days for r in res.pk).text("{:g}"))]
    cols = [c for c in ("patient_id", "infused", "measurable_disease", "best_response", "first_response_date",
                        "cr_date", "pd_date", "relapse_from_cr_date", "mrd_negative", "sustained_mrd_negative",
                        "pfs_months", "pfs_event", "os_months", "os_event", "crs_max_grade", "icans_max_grade",
                        "frailty_baseline_category") if c in res.patients.columns]
    patient_rows = [[_cell(v, integer=c.endswith("_grade")) for c, v in zip(cols, row)]
                    for row in res.patients[cols].itertuples(index=False)]
    n_eff = e["n_efficacy_population"]
    best_pct = {k: (f"{100 * v / n_eff:.0f}%" if n_eff else "—") for k, v in e["best_response_counts"].items()}
    teae = [{**r, "any_text": _n_pct(r["n_any"], r["n_infused"]), "g3_text": _n_pct(r["n_grade3plus"], r["n_infused"])}
            for r in res.teae.to_dict("records")]
    cyto = {term: _n_pct(r["n"], r["denominator"]) for term, r in (e.get("cytopenia_grade3plus_rate") or {}).items()}
    return tpl.render(
        study=res.study, e=e, results_text=res.results_text, rate_rows=rate_rows, km_rows=km_rows,
        best=e["best_response_counts"], best_pct=best_pct, pk_rows=pk_rows, pk_sum=pk_sum, teae=teae,
        cyto=cyto, patient_cols=cols, patient_headers=[_PATIENT_HEADERS.get(c, c) for c in cols],
        patient_rows=patient_rows,
        km_png=km_figure(res), swimmer_png=swimmer_figure(res), pk_png=kinetics_figure(res),
        criteria_label=_CRITERIA_LABEL[res.study.response_criteria],
        sensitivity=_power_of_ten(res.study.mrd.required_sensitivity),
    )


_PATIENT_HEADERS = {
    "patient_id": "Patient", "infused": "Infused", "measurable_disease": "Measurable disease",
    "best_response": "Best response", "first_response_date": "First ≥PR", "cr_date": "CR", "pd_date": "PD",
    "relapse_from_cr_date": "Relapse from CR", "mrd_negative": "MRD−", "sustained_mrd_negative": "Sustained MRD−",
    "pfs_months": "PFS (mo)", "pfs_event": "PFS event", "os_months": "OS (mo)", "os_event": "Death",
    "crs_max_grade": "CRS grade", "icans_max_grade": "ICANS grade", "frailty_baseline_category": "Frailty (baseline)",
}


def _n_pct(n, denominator) -> str:
    """``7 (88%)`` — a count with its percentage of the denominator."""
    if not denominator:
        return f"{n}"
    return f"{n} ({100 * n / denominator:.0f}%)"


def _fmt(v, fmt: str = "{:g}") -> str:
    return "—" if v is None else fmt.format(v)


def _cell(v, integer: bool = False) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    if integer and isinstance(v, (int, float, np.integer, np.floating)):
        return f"{int(v)}"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)
