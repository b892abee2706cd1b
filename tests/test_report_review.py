"""What a reviewing analyst reads in the QC report: the MRD statement at given numbers, QC flags explained with
the sample's own numbers, gate labels that carry the pipeline's counts, a figure (or a stated rule) for every
gating step, the indented population table — and the trial report's abstract-style tables."""

from __future__ import annotations

import base64
import math
import re
from pathlib import Path

import pytest

from mrdflow.report.html import (explain_flags, mrd_level, mrd_statement, population_rows, render_sample_report,
                                 status_label)
from mrdflow.report.plots import Membership, combined_populations, gating_plots
from mrdflow.result import PopulationCount, SampleResult

REPO = Path(__file__).resolve().parents[1]


def _result(status: str, n_eval: int, n_ab: int, *, flags=(), details=None) -> SampleResult:
    lod_events = 20
    return SampleResult(
        sample_id="S", files=["S_T1.fcs"], n_events_acquired=n_eval + 1000, n_events_evaluable=n_eval,
        n_plasma_cells=n_ab + 100, n_normal_pc=100, n_aberrant_pc=n_ab, mrd_fraction=n_ab / n_eval,
        lod=lod_events / n_eval, lloq=50 / n_eval, mrd_status=status, sensitivity_met=n_eval >= 2_000_000,
        qc_flags=list(flags), details={"events_needed": 2_000_000, "events_needed_lloq": 5_000_000,
                                       **(details or {})})


def test_statement_for_each_status_at_given_numbers():
    assert mrd_statement(_result("NEGATIVE", 10_412_530, 0)) == \
        "MRD negative at a limit of detection of 1.9×10⁻⁶, 10 412 530 evaluable cells"
    assert mrd_statement(_result("POSITIVE", 4_000_000, 611)) == (
        "MRD positive: 1.5×10⁻⁴ (0.0153 %) — 611 aberrant plasma cells in 4 000 000 evaluable cells "
        "(limit of detection 5.0×10⁻⁶)")
    assert mrd_statement(_result("POSITIVE_BELOW_LLOQ", 5_000_000, 31)) == (
        "MRD positive below the limit of quantification (1.0×10⁻⁵): 31 aberrant plasma cells in 5 000 000 "
        "evaluable cells (≈ 6.2×10⁻⁶, not quantifiable; limit of detection 4.0×10⁻⁶)")
    # not evaluable says why: too few cells for the required sensitivity (1e-5 = 20 events / 2 000 000 cells)
    assert mrd_statement(_result("NOT_EVALUABLE", 61_698, 0)) == (
        "MRD not evaluable: 0 aberrant plasma cells (fewer than the 20 needed for a positive call) in 61 698 "
        "evaluable cells, and the limit of detection 3.2×10⁻⁴ does not reach the required sensitivity of "
        "1.0×10⁻⁵ (2 000 000 evaluable cells needed)")
    nothing = _result("NOT_EVALUABLE", 1, 0)
    nothing.n_events_evaluable = 0
    assert mrd_statement(nothing) == "MRD not evaluable: no evaluable cells"


def test_level_and_status_words():
    assert mrd_level(_result("NEGATIVE", 10_412_530, 0)) == "< 1.9×10⁻⁶"  # never a bare 0 for a negative
    assert mrd_level(_result("NOT_EVALUABLE", 61_698, 0)) == "not evaluable"
    assert mrd_level(_result("POSITIVE", 4_000_000, 611)) == "1.5×10⁻⁴"
    assert status_label(_result("POSITIVE_BELOW_LLOQ", 4_000_000, 31)) == "MRD positive, below LLOQ"
    assert status_label(SampleResult.failed("S", ["a"], "bad")) == "analysis failed"


def test_flags_are_explained_with_the_samples_numbers():
    r = _result("NOT_EVALUABLE", 61_698, 0,
                flags=["low_events", "hemodilution_suspected", "high_debris_rate", "flow_rate_anomaly",
                       "high_margin_rate", "something_new"],
                details={"qc_removed_pct": {"debris": 23.456, "margin": 45.6},
                         "hemodilution": {"below": ["mast_cell"], "fractions": {"mast_cell": 3.07e-7},
                                          "limits": {"mast_cell": 1.2e-4}},
                         "tubes": {"tube1": {"time_qc": {"fraction_removed": 0.075}}}})
    text = dict(explain_flags(r))
    assert text["low_events"].startswith("61 698 evaluable cells, fewer than the 2 000 000 needed to reach the "
                                         "required sensitivity of 1.0×10⁻⁵")
    assert "mast_cell 3.07e-05 % of evaluable cells (reference ≥ 0.012 %)" in text["hemodilution_suspected"]
    assert "(23.5 % removed at that step)" in text["high_debris_rate"]
    # saturated events leave the denominator (DEMO01 at twice the SSC gain: 45 % of events, evaluable 64 675 ->
    # 35 215): the reviewer is told by how much the fraction may be too high
    assert text["high_margin_rate"].endswith("(45.6 % removed at that step); they are not in the MRD denominator: if "
                                             "they are cells (e.g. granulocytes off the top of SSC), the MRD fraction "
                                             "is overestimated by up to 1.84×")
    assert "tube1: 7.50 % of events removed" in text["flow_rate_anomaly"]
    assert text["something_new"] == ""  # an unknown flag is still listed, as it is
    html = render_sample_report(r, [], roles={})
    assert "fewer than the 2 000 000 needed" in html and "something_new" in html


def test_warning_flags_name_their_marker_or_width_per_tube():
    """The flags raised from tube warnings say, in their one line, what the warning is about: the saturated or
    re-judged marker, the logicle width used."""
    warnings = {
        "tube1": ["pc_off_scale: 530 of the 987 plasma cells (54 %) are at the top of the CD38 scale (channel FITC-A, "
                  "saturated at $PnR); the detector is set too high",
                  "pc_reference_mismatch: CD56: 94 of the 94 plasma cells normal on every other marker lie above",
                  "logicle_width_widened: logicle W 1.1 instead of the panel's 0.5 for every fluorescence channel: "
                  "the compensated negative events spread further"],
        "tube2": ["pc_reference_mismatch: CD45: 60 of the 61 plasma cells normal on every other marker lie below",
                  "logicle_width_narrow: the compensated negative events spread further below zero (PE-A: -500 → W "
                  "0.9); set the panel's fluorescence transform W to about 1"]}
    r = _result("POSITIVE", 4_000_000, 611, flags=["pc_off_scale", "pc_reference_mismatch", "logicle_width_widened",
                                                    "logicle_width_narrow"],
                details={"tubes": {t: {"warnings": w} for t, w in warnings.items()}})
    text = dict(explain_flags(r))
    assert text["pc_off_scale"].endswith("(tube1: CD38, 54 % of the plasma cells)")
    assert text["pc_reference_mismatch"].endswith("(tube1: CD56; tube2: CD45)")
    assert text["logicle_width_widened"].endswith(
        "(tube1: logicle W 1.1 instead of the panel's 0.5 for every fluorescence channel)")
    assert text["logicle_width_narrow"].endswith("(tube2: W about 1 needed)")


def test_population_table_is_indented_by_depth_in_tree_order():
    pops = [PopulationCount("t1", "cells", "", 1000, 90.0, 100.0),
            PopulationCount("t1", "pc", "lymph", 12, 2.0, 1.2),
            PopulationCount("t1", "lymph", "cells", 600, 60.0, 60.0),
            PopulationCount("t1", "debris", "", 100, 9.0, math.nan),
            PopulationCount("t2", "cells", "", 2_000_000, 95.0, 100.0)]
    r = _result("NEGATIVE", 10_412_530, 0)
    r.populations = pops
    rows = population_rows(r)
    assert [(x["tube"], x["population"], x["depth"]) for x in rows] == [
        ("t1", "cells", 0), ("t1", "lymph", 1), ("t1", "pc", 2), ("t1", "debris", 0), ("t2", "cells", 0)]
    assert rows[-1]["events"] == "2 000 000" and rows[3]["pct_evaluable"] == "—" and rows[2]["pct_evaluable"] == "1.20"


# ------------------------------------------------------------------------------------------------------------
# a real demo sample (sample_fcs/DEMO01: 35 000 events per tube, all of them plotted)
# ------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def demo():
    from mrdflow.gating.template import load_template
    from mrdflow.panel import load_panel
    from mrdflow.pipeline import analyze_sample

    panel = load_panel(REPO / "panels" / "demo.yaml")
    files = [REPO / "sample_fcs" / f"DEMO01_{t}.fcs" for t in ("T1", "T2")]
    result = analyze_sample(files, panel, sample_id="DEMO01", plot_data=True)
    roles: dict[str, list[str]] = {}
    for node in load_template(panel.template).nodes.values():
        for role in node.roles:
            roles.setdefault(role, []).append(node.name)
    return result, roles


def test_gates_reevaluated_on_the_plotted_events_reproduce_the_pipeline_counts(demo):
    result, _ = demo
    for tube in result.plots:
        assert tube.events.shape[0] == 35_000  # the whole tube is plotted: counts must match exactly
        m = Membership(tube, evaluate_gates=True)
        assert m.evaluated == set(tube.gates)  # every gate of the NGF template could be re-evaluated
        for p in result.populations:
            if p.tube == tube.tube and p.population in tube.gates:
                assert int(m.mask(p.population).sum()) == p.count, (tube.tube, p.population)


def test_every_gating_step_has_a_labelled_figure_or_a_stated_rule(demo):
    result, _ = demo
    for tube in result.plots:
        counts = {p.population: p for p in result.populations if p.tube == tube.tube}
        images = gating_plots(tube, Membership(tube, evaluate_gates=True), counts=counts)
        assert all(base64.b64decode(im.png)[:8] == b"\x89PNG\r\n\x1a\n" for im in images)
        plotted = {p for im in images for p in im.title.split(": ", 1)[1].split(", ")}
        ruled = {pop for pop, _, _ in combined_populations(tube)}
        assert plotted | ruled == set(tube.gates) and not plotted & ruled
        # gate labels carry the pipeline's whole-tube count and % of parent, e.g. "cd19_pos: 1 205 (7.8 %)"
        cap = next(im.caption for im in images if im.title.endswith(": plasma_cells") or "cd138_pos" in im.title)
        n = counts["cd138_pos"]
        assert f"cd138_pos: {n.count:,} ({n.pct_of_parent:.1f} %)".replace(",", "\u202f") in cap
    rules = dict((pop, rule) for pop, _, rule in combined_populations(result.plots[0]))
    assert rules["plasma_cells"] == "cd138_pos and cd38_pos" and rules["debris"] == "not cells"


def test_demo_report_shows_axes_scales_colour_legend_and_sign_out(demo):
    result, roles = demo
    html = render_sample_report(result, [], roles=roles, provenance={"panel SHA-256": "f" * 64})
    assert result.plots[0].axis_units["CD138"] == "logicle" and result.plots[0].axis_units["FSC-A"] == "linear"
    assert "axes are named by marker, with the scale in brackets (linear, logicle)" in html
    assert "aberrant (MRD) plasma cells" in html and "Light chains: κ vs λ" in html
    assert "Acquisition stability" in html and "panel SHA-256" in html and "f" * 64 in html
    for line in ("Reviewed by", "Date", "Signature", "Result accepted"):
        assert f"<th>{line}</th>" in html
    assert "@media print" in html
    # phenotype figures on the NGF key pairs for both tubes, κ/λ for tube 2, a time trace per tube
    assert len(re.findall(r'alt="tube1: plasma cells, ', html)) == 5
    assert len(re.findall(r'alt="tube2: plasma cells, ', html)) == 4
    assert 'alt="tube2: κ vs λ"' in html and html.count("flow rate over time") == 2
