"""HTML QC reports: one self-contained page per sample (``report/<sample_id>.html``) and a batch summary
(``report/index.html``). Images are base64-embedded PNGs, the CSS is inline, nothing is fetched: the files open
offline and can be archived with the results. Templates are rendered by jinja2 with **autoescaping on**, so
every string that comes from an FCS file (sample names, ``$SRC``, ``$CYT``, file names) is escaped.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import jinja2

from mrdflow import __version__
from mrdflow.result import SampleResult

__all__ = ["render_sample_report", "render_batch_report", "mrd_statement", "sci", "status_class",
           "FLAG_DESCRIPTIONS"]

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")

#: plain-language meaning of QC flags shown in the report (unknown flags are shown as they are)
FLAG_DESCRIPTIONS = {
    "flow_rate_anomaly": "unstable flow rate or signal during acquisition; the affected stretches were excluded",
    "low_events": "fewer evaluable cells than the required sensitivity needs",
    "spillover_missing": "the file has no spillover matrix; events were analysed uncompensated",
    "hemodilution_suspected": "bone-marrow-restricted populations are below their reference (hemodilution)",
    "report_failed": "the report's figures could not be drawn (see details)",
}


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


def pct(x: Any, digits: int = 2) -> str:
    return "—" if x is None or not isinstance(x, (int, float)) or not math.isfinite(x) else f"{x:.{digits}f}"


def mrd_statement(result: SampleResult) -> str:
    """The report's one-sentence MRD conclusion, e.g. "MRD negative at a limit of detection of 1.9×10⁻⁶,
    10 412 530 evaluable cells"."""
    if not result.ok:
        return f"Not analysed: {result.error}"
    n = count(result.n_events_evaluable)
    if result.mrd_status == "NEGATIVE":
        return f"MRD negative at a limit of detection of {sci(result.lod)}, {n} evaluable cells"
    if result.mrd_status == "POSITIVE":
        return (f"MRD positive: {sci(result.mrd_fraction)} ({pct(100 * result.mrd_fraction, 4)} %) — "
                f"{count(result.n_aberrant_pc)} aberrant plasma cells in {n} evaluable cells")
    if result.mrd_status == "POSITIVE_BELOW_LLOQ":
        return (f"MRD positive below the limit of quantification ({sci(result.lloq)}): "
                f"{count(result.n_aberrant_pc)} aberrant plasma cells in {n} evaluable cells "
                f"(≈ {sci(result.mrd_fraction)}, not quantifiable)")
    return f"MRD not evaluable ({n} evaluable cells; see the QC flags)"


def status_class(result: SampleResult) -> str:
    """CSS class of a sample's status colour."""
    if not result.ok:
        return "failed"
    return {"NEGATIVE": "negative", "POSITIVE": "positive", "POSITIVE_BELOW_LLOQ": "below-lloq"}.get(
        result.mrd_status, "not-evaluable")


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
        if role in tube.label_names and role not in tube.parents:
            roles.setdefault(role, [])
            if role not in roles[role]:
                roles[role].append(role)
            if pcs:
                tube.parents[role] = pcs[0]


def render_sample_report(result: SampleResult, files: Sequence[Mapping[str, Any]], *,
                         roles: Mapping[str, Sequence[str]] | None = None, input_key: str | None = None,
                         generated: str | None = None) -> str:
    """The per-sample QC report as a complete HTML document.

    Parameters
    ----------
    result : the sample's result, with ``plots`` (per-tube plot data) when figures are wanted.
    files : per tube ``{"tube", "name", "path", "sha256", "size", "keywords": {...}}`` (identity section).
    roles : template role → population names (which populations are normal/aberrant/all plasma cells).
    input_key : the resume key, embedded as ``<meta name="mrdflow-input-key">``.
    """
    from mrdflow.report.plots import Membership, gating_plots, light_chain_plot, phenotype_plots, time_plot

    roles = {k: list(v) for k, v in (roles or {}).items()}
    tubes = []
    for tube in result.plots:
        _attach_pc_labels(tube, roles)
        membership = Membership(tube)
        images = {"gating": gating_plots(tube, membership),
                  "phenotype": phenotype_plots(tube, roles, membership)}
        lc = light_chain_plot(tube, roles, membership)
        images["light_chain"] = [lc] if lc else []
        tp = time_plot(tube)
        images["time"] = [tp] if tp else []
        tubes.append({"name": tube.tube, "n_plotted": int(tube.events.shape[0]), **images})
    template = _ENV.get_template("sample.html")
    return template.render(
        r=result, files=files, tubes=tubes, statement=mrd_statement(result), status_class=status_class(result),
        flags=[(f, FLAG_DESCRIPTIONS.get(f, "")) for f in result.qc_flags], details=_details_rows(result.details),
        traceback=result.details.get("traceback"), sci=sci, count=count, pct=pct, input_key=input_key or "",
        version=__version__, generated=generated or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


def render_batch_report(results: Sequence[SampleResult], links: Mapping[str, str], *, run_id: str,
                        panel_name: str, started: str) -> str:
    """The batch summary ``report/index.html``: one row per sample, status colour, key numbers, links."""
    rows = [{"r": r, "link": links.get(r.sample_id), "status_class": status_class(r),
             "statement": mrd_statement(r)} for r in results]
    totals = {"samples": len(results), "ok": sum(r.ok for r in results), "failed": sum(not r.ok for r in results)}
    for status in ("NEGATIVE", "POSITIVE", "POSITIVE_BELOW_LLOQ", "NOT_EVALUABLE"):
        totals[status] = sum(1 for r in results if r.ok and r.mrd_status == status)
    return _ENV.get_template("index.html").render(
        rows=rows, totals=totals, run_id=run_id, panel_name=panel_name, started=started, sci=sci, count=count,
        version=__version__)
