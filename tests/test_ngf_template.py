"""The EuroFlow NGF template and the gating pieces it relies on (per-tube restriction, density valley options,
time-QC root mask, empty populations), checked against simulated truth where it matters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mrdflow.errors import TemplateError
from mrdflow.fcs import read_fcs
from mrdflow.gating.adaptive import DensityValley
from mrdflow.gating.engine import gate_events
from mrdflow.gating.template import load_template, template_from_dict
from mrdflow.simulate import LABELS, truth_mask, truth_path
from mrdflow.panel import load_panel
from mrdflow.pipeline import analyze_sample_tubes
from mrdflow.tube import check_tube, prepare_tube

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "gating_templates" / "euroflow_ngf.yaml"
PANELS = REPO / "panels"
DEMO = REPO / "sample_fcs"
REFERENCE_ROLES = {"evaluable", "plasma_cell", "kappa", "lambda", "t_cell", "nk_cell", "b_cell", "granulocyte",
                   "lymphocyte", "nrbc", "bcp", "mast_cell", "myeloid_precursor", "debris", "singlet", "margin_ok"}


def test_template_loads_with_every_role_the_pipeline_reads():
    t = load_template(TEMPLATE)
    roles = {r for n in t.nodes.values() for r in n.roles}
    assert REFERENCE_ROLES <= roles
    assert len(t.by_role("evaluable")) == 1 and len(t.by_role("plasma_cell")) == 1
    # no fixed cut-off in transformed units except the kappa/lambda diagonal
    fixed = [n.name for n in t.nodes.values() if n.kind == "gate"]
    assert fixed == ["kappa"]


@pytest.mark.parametrize("panel_name", ["demo.yaml", "euroflow_ngf_2tube.yaml", "pb_ppcl.yaml"])
def test_panels_load(panel_name):
    panel = load_panel(PANELS / panel_name)
    assert set(panel.tubes) == {"tube1", "tube2"}
    assert panel.template.resolve() == TEMPLATE.resolve()


def test_tube_restriction_drops_populations_of_the_other_tubes_markers():
    panel = load_panel(PANELS / "demo.yaml")
    template = load_template(TEMPLATE)
    t1 = check_tube(panel, "tube1", read_fcs(DEMO / "DEMO03_T1.fcs"), template)
    t2 = check_tube(panel, "tube2", read_fcs(DEMO / "DEMO03_T2.fcs"), template)
    assert {"kappa", "lambda"} <= set(t1.dropped) and "mast_cells" in t1.template.nodes
    assert {"cd117_pos", "mast_cells", "myeloid_precursors"} <= set(t2.dropped)
    assert "kappa" in t2.template.nodes and "plasma_cells" in t2.template.nodes


def test_unknown_dimension_is_still_an_error():
    panel = load_panel(PANELS / "demo.yaml")
    bad = template_from_dict({"name": "x", "populations": {"a": {"dims": ["CD99"], "method": "tail"}}})
    with pytest.raises(TemplateError, match="CD99"):
        check_tube(panel, "tube1", read_fcs(DEMO / "DEMO03_T1.fcs"), bad)


def test_without_dims_drops_descendants_and_boolean_users():
    t = template_from_dict({"name": "x", "populations": {
        "a": {"dims": ["X"], "gate": {"type": "range", "min": 0, "max": 1}},
        "b": {"parent": "a", "dims": ["Y"], "gate": {"type": "range", "min": 0, "max": 1}},
        "c": {"parent": "b", "dims": ["X"], "gate": {"type": "range", "min": 0, "max": 0.5}},
        "d": {"parent": "a", "boolean": "not b"},
        "e": {"parent": "a", "dims": ["X"], "gate": {"type": "range", "min": 0.5, "max": 1}},
    }})
    reduced, dropped = t.without_dims({"Y"})
    assert dropped == ["b", "c", "d"] and list(reduced.nodes) == ["a", "e"]
    assert t.without_dims(set()) == (t, [])


def test_tail_on_the_first_or_last_peak():
    from mrdflow.gating.adaptive import Tail

    rng = np.random.default_rng(3)
    # a negative bulk at 0.2 and a dominating positive population at 0.7 (leukaemic blood)
    x = np.r_[rng.normal(0.2, 0.04, 30_000), rng.normal(0.7, 0.03, 60_000)]
    assert abs(Tail(k=4, peak="first").fit(x).threshold_ - (0.2 + 4 * 0.04)) < 0.03
    assert Tail(k=4).fit(x).threshold_ > 0.75  # the dominant peak is the positive one
    assert abs(Tail(k=4, peak="last").fit(x).threshold_ - (0.7 + 4 * 0.03)) < 0.03
    with pytest.raises(ValueError, match="peak"):
        Tail(peak="middle").validate(1)


def test_density_valley_lowest_pair_and_shoulder_below():
    rng = np.random.default_rng(0)
    # a small low mode (debris) below two big ones: "lowest" splits the first two, "highest" the big ones
    x = np.r_[rng.normal(0.05, 0.02, 8_000), rng.normal(0.2, 0.03, 50_000), rng.normal(0.45, 0.05, 60_000)]
    low = DensityValley(pick="lowest", min_prominence=0.02).fit(x)
    high = DensityValley().fit(x)
    assert 0.08 < low.threshold_ < 0.15
    assert 0.27 < high.threshold_ < 0.38
    # one mode, and it is the positive population: the threshold goes below it
    one = rng.normal(0.7, 0.05, 20_000)
    below = DensityValley(fallback="shoulder_below", shoulder_k=3).fit(one)
    assert below.used_fallback_ and abs(below.threshold_ - (0.7 - 3 * 0.05)) < 0.03
    with pytest.raises(ValueError, match="pick"):
        DensityValley(pick="middle").validate(1)


def test_density_valley_deepest_gap_between_a_rare_negative_mode_and_a_dim_bump():
    rng = np.random.default_rng(4)
    # CD45 in a blood-rich marrow: few CD45-negative NRBC (0.13), a taller CD45-dim bump (precursors,
    # basophils, 0.52) and the CD45-bright lymphocytes (0.75); the empty gap is NRBC | dim, at ~0.33
    x = np.r_[rng.normal(0.13, 0.06, 420), rng.normal(0.52, 0.035, 480), rng.normal(0.75, 0.04, 8_000)]
    deep = DensityValley(pick="deepest", min_prominence=0.02).fit(x)
    assert 0.27 < deep.threshold_ < 0.40
    assert deep.modes_[0] < 0.2 and 0.45 < deep.modes_[1] < 0.6
    # the two tallest modes are the dim bump and the bright cells: "highest" cuts between them instead
    assert DensityValley(min_prominence=0.02).fit(x).threshold_ > 0.55


def test_root_mask_and_empty_populations():
    rng = np.random.default_rng(1)
    ev = np.ascontiguousarray(rng.normal(0, 1, (5_000, 2)).astype(np.float32))
    t = template_from_dict({"name": "x", "populations": {
        "pos": {"dims": ["A"], "gate": {"type": "range", "min": 0, "max": None}},
        "far": {"parent": "pos", "dims": ["A"], "gate": {"type": "range", "min": 50, "max": None}},
        "tail": {"parent": "far", "dims": ["B"], "method": "tail"},
    }})
    keep = np.zeros(5_000, dtype=bool)
    keep[:1000] = True
    res = gate_events(ev, {"A": 0, "B": 1}, t, root_mask=keep)
    assert not res.mask("pos")[1000:].any()
    assert res.counts["pos"] == int(np.count_nonzero(ev[:1000, 0] >= 0))
    assert (res.labels[1000:] == 0).all()
    # an adaptive gate under an empty parent: empty, with a warning instead of an error
    assert res.counts["tail"] == 0 and any("tail" in w for w in res.warnings)


@pytest.mark.parametrize("sample", ["DEMO01", "DEMO03"])
def test_gates_against_truth_on_demo_marrow(sample):
    """Plasma cells, the evaluable denominator and the reference populations agree with the simulated truth."""
    panel = load_panel(PANELS / "demo.yaml")
    template = load_template(TEMPLATE)
    fcs = read_fcs(DEMO / f"{sample}_T1.fcs", linearize=True)
    setup = prepare_tube(panel, "tube1", fcs, template)
    res = gate_events(fcs.events, setup.index, setup.template, upper_limits=setup.upper_limits)

    def share(pop: str, *truth: str) -> tuple[float, float]:
        """(recall of the truth labels, purity of the population)."""
        m = res.mask(pop)
        t = truth_mask(DEMO / f"{sample}_T1.fcs", *truth)
        return np.count_nonzero(m & t) / max(np.count_nonzero(t), 1), np.count_nonzero(m & t) / max(m.sum(), 1)

    rec, pur = share("plasma_cells", "normal_pc", "aberrant_pc")
    assert rec > 0.97 and pur > 0.95
    nucleated = [n for n in LABELS if n not in ("debris", "doublet")]
    rec, pur = share("cells", *nucleated)
    assert rec > 0.97 and pur > 0.95
    for pop, label in (("t_cells", "t_cell"), ("b_cells", "mature_b"), ("nk_cells", "nk_cell"),
                       ("nrbc", "nrbc"), ("bcp", "b_cell_precursor")):
        rec, pur = share(pop, label)
        assert pur > 0.5 and rec > 0.5, (pop, rec, pur)  # CD56+ T (NKT-like) cells share the NK gate


def test_time_anomaly_is_excluded_from_the_denominator(tmp_path):
    from dataclasses import replace

    from mrdflow.simulate import build_scenario, simulate_sample

    plan = next(p for p in build_scenario("time_anomaly", events=150_000, replicates=1)
                if p.sample_id == "TIME_mid_severe_R1")
    files = sorted(f for f in simulate_sample(replace(plan, mrd=0.0, specimen=replace(plan.specimen,
                                                                                     clone_style=None)),
                                              tmp_path, 3, "time_anomaly") if str(f).endswith(".fcs"))
    result, tubes = analyze_sample_tubes(files, PANELS / "demo.yaml")
    truth = json.loads(next(tmp_path.glob("*R1.truth.json")).read_text())
    assert truth["n_time_excluded"] > 0
    assert "flow_rate_anomaly" in result.qc_flags or "signal_shift" in result.qc_flags
    # the clog's events are (nearly all) removed, and the denominator follows the truth, which excludes them
    for ta in tubes:
        clog = np.load(truth_path(ta.file))["time_excluded"].astype(bool)
        assert np.count_nonzero(clog & ~ta.time_kept) >= 0.9 * clog.sum()
    assert abs(result.n_events_evaluable / truth["n_evaluable"] - 1) < 0.04
    assert result.details["tubes"]["tube1"]["time_qc"]["excluded_ranges"]
