"""HTML QC reports: one self-contained page per sample (``report/<sample_id>.html``) and a batch summary
(``report/index.html``). Images are base64-embedded PNGs, the CSS is inline, nothing is fetched: the files open
offline and can be archived with the results. Templates are rendered by jinja2 with **autoescaping on**, so
every string that comes from an FCS file (sample names, ``$SRC``, ``$CYT``, file names) is escaped.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import jinja2

from mrdflow import __version__
from mrdflow.result import SampleResult

__all__ = ["render_sample_report", "render_batch_report", "mrd_statement", "sci", "status_class", "status_label",
           "explain_flags", "population_rows", "mrd_level", "FLAG_DESCRIPTIONS", "STATUS_LABELS"]

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")

#: plain-language meaning of QC flags shown in the report (unknown flags are shown as they are); the report adds
#: the sample's own numbers where it has them (see :func:`explain_flags`)
FLAG_DESCRIPTIONS = {
    "no_events": "the file(s) hold no events",
    "low_events": "fewer evaluable cells than the required sensitivity needs: a negative result cannot be "
                  "reported at that sensitivity",
    "high_time_removal": "time/flow-rate QC removed an unusually large share of the events",
    "high_margin_rate": "an unusually large share of events sat on the scale margins (saturated signals)",
    "high_doublet_rate": "an unusually large share of events were doublets",
    "high_debris_rate": "an unusually large share of events were debris",
    "flow_rate_anomaly": "unstable flow rate during acquisition; the affected stretches were excluded",
    "signal_shift": "a fluorescence signal drifted during acquisition; the affected stretches were excluded",
    "spillover_missing": "the file has no spillover matrix; events were analysed uncompensated",
    "spillover_rescaled": "the spillover matrix (the file's, or the panel's CSV) did not have 1 on its diagonal "
                          "(percentages, e.g. 100): each row was divided by its diagonal entry before compensating; "
                          "check the matrix",
    "time_qc_not_done": "acquisition stability could not be checked (no Time channel, or the events are not in "
                        "acquisition order); see the tube's warnings",
    "pc_off_scale": "many plasma cells sit at the top of a marker's scale (the detector is set too high for "
                    "them): that marker's calls and the MRD count are unreliable; see the tube's warnings",
    "pc_reference_mismatch": "the normal plasma cells all lie beyond a marker's reference boundary (a compensation "
                             "error into that marker's channel, or reference cells that do not represent the "
                             "sample): that marker was judged against the normal plasma cells instead; see the "
                             "tube's warnings",
    "logicle_width_widened": "the compensated negative cells spread further below zero than the panel's logicle "
                             "width displays (they would pile up into a false peak that gates take for a "
                             "population): the tube was transformed with a wider logicle W, as its warning says",
    "logicle_width_narrow": "the compensated negative cells spread further below zero than the panel's logicle "
                            "width displays: they pile up into a false peak that gates can take for a population; "
                            "widen the panel's logicle W as the tube's warning says and re-run",
    "step_skipped": "an optional gating step could not run because the file lacks its channel (e.g. no FSC-H: "
                    "doublets were not removed by the FSC-A/FSC-H singlet gate); see the tube's warnings",
    "hemodilution_suspected": "bone-marrow-restricted populations are below their reference (hemodilution): "
                              "a negative result may under-estimate the marrow's disease",
    "pcl_criterion_met": "circulating plasma cells reach the plasma-cell-leukaemia threshold",
    "report_failed": "the report's figures could not be drawn (see details)",
}

#: the status words a reviewer reads (results.csv keeps the codes)
STATUS_LABELS = {"NEGATIVE": "MRD negative", "POSITIVE": "MRD positive",
                 "POSITIVE_BELOW_LLOQ": "MRD positive, below LLOQ", "NOT_EVALUABLE": "MRD not evaluable"}


def sci(x: float | None, digits: int = 2) -> str:
    """``1.9×10⁻⁶`` style; an em dash for missing values."""
    if x is None or not isinstance(x, (int, float)) or not math.isfinite(x):
        return "—"
    if x == 0:
        return "0"
    mantissa, exp = f"{x:.{digits - 1}e}".split("e")
    return f"{mantissa}×10{str(int(exp)).translate(_SUPERSCRIPT)}"


def count(n: Any) -> str:
    """Thousands separated by spaces (``10 412 530``)."""
    try:
        return f"{int(n):,}".replace(",", " ")
    except (TypeError, ValueError):
        return "—"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def pct(x: Any, digits: int = 2) -> str:
    return "—" if x is None or not isinstance(x, (int, float)) or not math.isfinite(x) else f"{x:.{digits}f}"


def _lod_events(result: SampleResult) -> int | None:
    """Aberrant events needed for a positive call (the LOD in events), from ``lod × evaluable cells``."""
    if _finite(result.lod) and result.n_events_evaluable:
        return int(round(result.lod * result.n_events_evaluable))
    return None


def _required_sensitivity(result: SampleResult) -> float | None:
    """The panel's required sensitivity, from the LOD in events and the evaluable cells it needs."""
    needed = result.details.get("events_needed")
    lod_events = _lod_events(result)
    if lod_events and _finite(needed) and needed > 0:
        return lod_events / needed
    return None


def mrd_statement(result: SampleResult) -> str:
    """The report's one-sentence MRD conclusion, e.g. "MRD negative at a limit of detection of 1.9×10⁻⁶,
    10 412 530 evaluable cells"; positive results give the level, the aberrant/evaluable counts and the LOD;
    not-evaluable ones say why."""
    if not result.ok:
        return f"Not analysed: {result.error}"
    n = count(result.n_events_evaluable)
    if result.mrd_status == "NEGATIVE":
        return f"MRD negative at a limit of detection of {sci(result.lod)}, {n} evaluable cells"
    if result.mrd_status == "POSITIVE":
        return (f"MRD positive: {sci(result.mrd_fraction)} ({pct(100 * result.mrd_fraction, 4)} %) — "
                f"{count(result.n_aberrant_pc)} aberrant plasma cells in {n} evaluable cells "
                f"(limit of detection {sci(result.lod)})")
    if result.mrd_status == "POSITIVE_BELOW_LLOQ":
        return (f"MRD positive below the limit of quantification ({sci(result.lloq)}): "
                f"{count(result.n_aberrant_pc)} aberrant plasma cells in {n} evaluable cells "
                f"(≈ {sci(result.mrd_fraction)}, not quantifiable; limit of detection {sci(result.lod)})")
    if not result.n_events_evaluable:
        return "MRD not evaluable: no evaluable cells"
    req = _required_sensitivity(result)
    needed = result.details.get("events_needed")
    lod_events = _lod_events(result)
    why = f"the limit of detection {sci(result.lod)} does not reach the required sensitivity"
    if req is not None:
        why += f" of {sci(req)} ({count(needed)} evaluable cells needed)"
    found = (f"{count(result.n_aberrant_pc)} aberrant plasma cells"
             + (f" (fewer than the {lod_events} needed for a positive call)" if lod_events else ""))
    return f"MRD not evaluable: {found} in {n} evaluable cells, and {why}"


def mrd_level(result: SampleResult) -> str:
    """The MRD level as a reviewer should read it: the fraction when positive, ``< LOD`` when negative,
    ``not evaluable`` when the sensitivity was not reached, an em dash when not analysed."""
    if not result.ok:
        return "—"
    if result.mrd_status == "NEGATIVE":
        return f"< {sci(result.lod)}"
    if result.mrd_status == "NOT_EVALUABLE":
        return "not evaluable"
    return sci(result.mrd_fraction)


def status_class(result: SampleResult) -> str:
    """CSS class of a sample's status colour."""
    if not result.ok:
        return "failed"
    return {"NEGATIVE": "negative", "POSITIVE": "positive", "POSITIVE_BELOW_LLOQ": "below-lloq"}.get(
        result.mrd_status, "not-evaluable")


def status_label(result: SampleResult) -> str:
    """The status in words: ``MRD negative`` … or ``analysis failed``."""
    if not result.ok:
        return "analysis failed"
    return STATUS_LABELS.get(result.mrd_status, result.mrd_status)


def explain_flags(result: SampleResult) -> list[tuple[str, str]]:
    """``(flag, what it means for this sample)`` for every QC flag, with the sample's numbers where known."""
    d = result.details
    out = []
    for flag in result.qc_flags:
        text = FLAG_DESCRIPTIONS.get(flag, "")
        if flag == "low_events" and _finite(d.get("events_needed")):
            req = _required_sensitivity(result)
            text = (f"{count(result.n_events_evaluable)} evaluable cells, fewer than the {count(d['events_needed'])} "
                    f"needed to reach the required sensitivity" + (f" of {sci(req)}" if req else "")
                    + f" (limit of detection reached: {sci(result.lod)}); a negative result cannot be reported "
                    "at that sensitivity")
        elif flag in ("high_time_removal", "high_margin_rate", "high_doublet_rate", "high_debris_rate"):
            key = {"high_time_removal": "time", "high_margin_rate": "margin", "high_doublet_rate": "doublets",
                   "high_debris_rate": "debris"}[flag]
            rate = (d.get("qc_removed_pct") or {}).get(key)
            if _finite(rate):
                text += f" ({rate:.1f} % removed at that step)"
                if key == "margin" and rate < 100:
                    # saturated events leave the denominator; nucleated ones (granulocytes off the top of SSC at
                    # too high a gain) would have been evaluable, so the fraction is biased up by up to this much
                    text += (f"; they are not in the MRD denominator: if they are cells (e.g. granulocytes off the "
                             f"top of SSC), the MRD fraction is overestimated by up to {100 / (100 - rate):.2f}×")
        elif flag in ("flow_rate_anomaly", "signal_shift"):
            parts = []
            for tube, td in (d.get("tubes") or {}).items():
                frac = (td.get("time_qc") or {}).get("fraction_removed") if isinstance(td, Mapping) else None
                if _finite(frac):
                    parts.append(f"{tube}: {100 * frac:.2f} % of events removed")
            if parts:
                text += f" ({'; '.join(parts)})"
        elif flag == "hemodilution_suspected":
            hemo = d.get("hemodilution") or {}
            below = hemo.get("below") or []
            fr, lim = hemo.get("fractions") or {}, hemo.get("limits") or {}
            if below:
                text += " — below reference: " + ", ".join(
                    f"{b} {100 * fr[b]:.3g} % of evaluable cells (reference ≥ {100 * lim[b]:.3g} %)"
                    if _finite(fr.get(b)) and _finite(lim.get(b))
                    else str(b) for b in below)
        elif flag in ("pc_off_scale", "pc_reference_mismatch", "logicle_width_widened", "logicle_width_narrow"):
            parts = [f"{tube}: {subject}" for tube, subject in _warning_subjects(d, flag)]
            if parts:
                text += f" ({'; '.join(parts)})"
        elif flag == "pcl_criterion_met" and _finite(d.get("pct_circulating_pc")):
            text += (f": {d['pct_circulating_pc']:.2f} % of evaluable cells are plasma cells "
                     f"(threshold {d.get('pcl_min_pct')} %)")
        out.append((flag, text))
    return out


def _warning_subjects(details: Mapping[str, Any], key: str) -> list[tuple[str, str]]:
    """``(tube, subject)`` of each tube warning ``"<key>: <subject>: ..."`` — the marker a phenotype or saturation
    warning names, the width a logicle warning used — for the flag's one-line explanation."""
    out = []
    for tube, td in (details.get("tubes") or {}).items():
        if not isinstance(td, Mapping):
            continue
        for w in td.get("warnings") or []:
            if not isinstance(w, str) or not w.startswith(f"{key}: "):
                continue
            rest = w[len(key) + 2:]
            if key == "pc_off_scale":  # "k of the n plasma cells (x %) are at the top of the CD38 scale (...)"
                m = re.search(r"\(([^()]*%)\) are at the top of the (\S+) scale", rest)
                subject = f"{m.group(2)}, {m.group(1)} of the plasma cells" if m else rest.split(";")[0]
            elif key == "logicle_width_narrow":
                m = re.search(r"W to about (\S+)$", rest)
                subject = f"W about {m.group(1)} needed" if m else rest.split(":")[0]
            else:
                subject = rest.split(":")[0]
            out.append((str(tube), subject))
    return out


def population_rows(result: SampleResult) -> list[dict[str, Any]]:
    """The population table in tree order per tube: each row with its ``depth`` (0 = top level) for indentation
    and formatted ``events``, ``pct_parent`` and ``pct_evaluable``."""
    by_tube: dict[str, list] = {}
    for p in result.populations:
        by_tube.setdefault(p.tube, []).append(p)
    rows = []
    for tube, pops in by_tube.items():
        children: dict[str, list] = {}
        names = {p.population for p in pops}
        for p in pops:
            children.setdefault(p.parent if p.parent in names else "", []).append(p)

        def walk(parent: str, depth: int, seen: set[str]) -> None:
            for p in children.get(parent, []):
                if p.population in seen:
                    continue
                seen.add(p.population)
                rows.append({"tube": tube, "population": p.population, "parent": p.parent, "depth": depth,
                             "events": count(p.count),
                             "pct_parent": f"{p.pct_of_parent:.2f}" if _finite(p.pct_of_parent) else "—",
                             "pct_evaluable": (f"{p.pct_of_evaluable:.4f}" if _finite(p.pct_of_evaluable)
                                               and p.pct_of_evaluable < 1 else f"{p.pct_of_evaluable:.2f}"
                                               if _finite(p.pct_of_evaluable) else "—")})
                walk(p.population, depth + 1, seen)

        seen: set[str] = set()
        walk("", 0, seen)
        for p in pops:  # anything unreachable (a cycle in bad input) still shows
            if p.population not in seen:
                rows.append({"tube": tube, "population": p.population, "parent": p.parent, "depth": 0,
                             "events": count(p.count), "pct_parent": "—", "pct_evaluable": "—"})
    return rows


def _details_rows(details: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key, value in details.items():
        if key == "traceback":
            continue
        if isinstance(value, float):
            text = "—" if not math.isfinite(value) else f"{value:.6g}"
        elif isinstance(value, (dict, list)):
            text = json.dumps(value, indent=1, default=str, allow_nan=True)
            if len(text) > 4000:
                text = text[:4000] + " …"
        else:
            text = str(value)
        rows.append((str(key), text))
    return rows


def _attach_pc_labels(tube, roles: dict[str, list[str]]) -> None:
    """The pipeline labels plasma cells ``normal_pc`` / ``aberrant_pc`` (not template populations): give those
    labels their role and hang them under the plasma-cell population so membership and colours follow."""
    pcs = roles.get("plasma_cell", [])
    for role in ("normal_pc", "aberrant_pc"):
        if role in tube.label_names and (role not in tube.gates):
            roles.setdefault(role, [])
            if role not in roles[role]:
                roles[role].append(role)
            if pcs and role not in tube.parents:
                tube.parents[role] = pcs[0]


def render_sample_report(result: SampleResult, files: Sequence[Mapping[str, Any]], *,
                         roles: Mapping[str, Sequence[str]] | None = None, input_key: str | None = None,
                         generated: str | None = None, provenance: Mapping[str, Any] | None = None) -> str:
    """The per-sample QC report as a complete HTML document.

    Parameters
    ----------
    result : the sample's result, with ``plots`` (per-tube plot data) when figures are wanted.
    files : per tube ``{"tube", "name", "path", "sha256", "size", "keywords": {...}}`` (identity section).
    roles : template role → population names (which populations are normal/aberrant/all plasma cells).
    input_key : the resume key, embedded as ``<meta name="mrdflow-input-key">``.
    provenance : further label → value lines for the provenance table (panel path, its SHA-256, run id, ...).
    """
    from mrdflow.report.plots import (Membership, combined_populations, gating_plots, light_chain_plot,
                                      phenotype_plots, time_plot)

    roles = {k: list(v) for k, v in (roles or {}).items()}
    tubes = []
    for tube in result.plots:
        _attach_pc_labels(tube, roles)
        membership = Membership(tube, evaluate_gates=True)
        counts = {p.population: p for p in result.populations if p.tube == tube.tube}
        tqc = ((result.details.get("tubes") or {}).get(tube.tube) or {}).get("time_qc") or {}
        if tube.time_trace and "fraction_removed" not in tube.time_trace and "fraction_removed" in tqc:
            tube.time_trace = {**tube.time_trace, "fraction_removed": tqc["fraction_removed"]}
        images = {"gating": gating_plots(tube, membership, counts=counts),
                  "phenotype": phenotype_plots(tube, roles, membership)}
        lc = light_chain_plot(tube, roles, membership)
        images["light_chain"] = [lc] if lc else []
        tp = time_plot(tube)
        images["time"] = [tp] if tp else []
        units = sorted({u for u in (tube.axis_units or {}).values()})
        tubes.append({"name": tube.tube, "n_plotted": int(tube.events.shape[0]), "units": units,
                      "combined": combined_populations(tube), **images})
    template = _ENV.get_template("sample.html")
    prov = [("mrdflow version", __version__)]
    prov += [(str(k), str(v)) for k, v in (provenance or {}).items()]
    if input_key:
        prov.append(("input key (SHA-256 of inputs, panel and template)", input_key))
    return template.render(
        r=result, files=files, tubes=tubes, statement=mrd_statement(result), status_class=status_class(result),
        status_label=status_label(result), flags=explain_flags(result), details=_details_rows(result.details),
        traceback=result.details.get("traceback"), sci=sci, count=count, pct=pct, input_key=input_key or "",
        populations=population_rows(result), provenance=prov, mrd_level=mrd_level(result), required=_required_sensitivity(result),
        version=__version__, generated=generated or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


def render_batch_report(results: Sequence[SampleResult], links: Mapping[str, str], *, run_id: str,
                        panel_name: str, started: str) -> str:
    """The batch summary ``report/index.html``: one row per sample, status colour, key numbers, links."""
    rows = [{"r": r, "link": links.get(r.sample_id), "status_class": status_class(r),
             "status_label": status_label(r), "statement": mrd_statement(r)} for r in results]
    totals = {"samples": len(results), "ok": sum(r.ok for r in results), "failed": sum(not r.ok for r in results)}
    for status in ("NEGATIVE", "POSITIVE", "POSITIVE_BELOW_LLOQ", "NOT_EVALUABLE"):
        totals[status] = sum(1 for r in results if r.ok and r.mrd_status == status)
    return _ENV.get_template("index.html").render(
        rows=rows, totals=totals, run_id=run_id, panel_name=panel_name, started=started, sci=sci, count=count,
        version=__version__, flag_descriptions=FLAG_DESCRIPTIONS, mrd_level=mrd_level)
