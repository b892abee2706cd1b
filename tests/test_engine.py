"""The engine: counts, parent containment, labels, masks on demand, resolved adaptive geometry."""

from __future__ import annotations

import numpy as np
import pytest

from mrdflow.errors import TemplateError
from mrdflow.gating.engine import gate_events
from mrdflow.gating.gates import gate_from_dict
from mrdflow.gating.template import template_from_dict

INDEX = {"FSC-A": 0, "FSC-H": 1, "CD38": 2, "CD19": 3, "CD56": 4}


def tube(seed=0, n=60_000):
    rng = np.random.default_rng(seed)
    h = rng.normal(80_000, 12_000, n)
    a = h * rng.normal(1.1, 0.02, n)
    a[:1_000] *= 1.8  # doublets
    cd38 = np.r_[rng.normal(0.3, 0.05, n - 6_000), rng.normal(0.8, 0.05, 6_000)]  # last 6000 = PCs
    cd19 = np.r_[rng.normal(0.3, 0.05, n - 6_000), rng.normal(0.7, 0.05, 4_000), rng.normal(0.2, 0.05, 2_000)]
    cd56 = np.r_[rng.normal(0.3, 0.05, n - 2_000), rng.normal(0.8, 0.05, 2_000)]
    return np.ascontiguousarray(np.c_[a, h, cd38, cd19, cd56].astype(np.float32))


TEMPLATE = {
    "populations": {
        "singlets": {"dims": ["FSC-A", "FSC-H"], "method": "singlet", "roles": ["singlet"]},
        "pc": {"parent": "singlets", "dims": ["CD38"], "method": "density_valley", "roles": ["plasma_cell"]},
        "normal": {"parent": "pc", "dims": ["CD19", "CD56"],
                   "gate": {"type": "quadrant", "dividers": [0.5, 0.5], "quadrant": "+-"}},
        "cd19neg": {"parent": "pc", "dims": ["CD19"], "gate": {"type": "range", "max": 0.5}},
        "aberrant": {"parent": "pc", "dims": ["CD19", "CD56"], "method": "reference_distance",
                     "args": {"reference": "normal", "quantile": 0.999}, "roles": ["aberrant_pc"]},
        "aberrant_56": {"parent": "aberrant", "dims": ["CD56"], "gate": {"type": "range", "min": 0.5}},
        "not_normal": {"parent": "pc", "boolean": "not normal"},
    }
}


@pytest.fixture(scope="module")
def result():
    ev = tube()
    before = ev.copy()
    r = gate_events(ev, INDEX, template_from_dict(TEMPLATE))
    assert np.array_equal(ev, before)  # the engine never modifies the events
    return ev, r


def test_counts_match_the_known_populations(result):
    ev, r = result
    assert r.counts["pc"] == 6_000  # doublets are in the non-PC part
    assert r.counts["normal"] == pytest.approx(4_000, abs=5)
    assert r.counts["cd19neg"] == pytest.approx(2_000, abs=5)
    assert r.counts["aberrant"] == pytest.approx(2_000, abs=10)
    # the CD56+ aberrant PCs, plus ~0.1 % of the normal reference beyond its 99.9 % contour
    assert r.counts["aberrant_56"] == pytest.approx(2_000, abs=3)
    assert r.counts["aberrant"] - r.counts["aberrant_56"] <= 12
    assert r.counts["not_normal"] == r.counts["pc"] - r.counts["normal"]


def test_fixed_gate_counts_are_exact(result):
    ev, r = result
    pc = r.mask("pc")
    normal = pc & (ev[:, 3] >= 0.5) & (ev[:, 4] < 0.5)
    assert np.array_equal(r.mask("normal"), normal)
    assert r.counts["cd19neg"] == np.count_nonzero(pc & (ev[:, 3] < 0.5))


def test_every_population_lies_within_its_parent(result):
    _, r = result
    for name, node in r.template.nodes.items():
        m = r.mask(name)
        assert not (m & ~r.mask(node.parent)).any(), name


def test_labels_are_the_deepest_population_first_in_template_order_on_ties(result):
    ev, r = result
    names = r.label_names
    lab = r.labels
    assert lab.dtype == np.uint8 and lab.shape == (ev.shape[0],)
    assert np.array_equal(lab == 0, ~r.mask("singlets"))
    assert np.array_equal(lab == names.index("aberrant_56"), r.mask("aberrant_56"))
    # normal and not_normal tie at depth 3 and never overlap; cd19neg (earlier) beats aberrant/not_normal
    assert np.array_equal(lab == names.index("cd19neg"), r.mask("cd19neg") & ~r.mask("aberrant_56"))
    assert np.array_equal(lab == names.index("normal"), r.mask("normal"))
    assert not np.any((lab == names.index("not_normal")) & r.mask("cd19neg"))


def test_adaptive_geometry_is_recorded_and_reproduces_the_count(result):
    ev, r = result
    geo = r.geometry()
    assert geo["pc"]["type"] == "range" and 0.45 < geo["pc"]["min"][0] < 0.65
    assert r.fitted["pc"].threshold_ == geo["pc"]["min"][0]
    pc_again = gate_from_dict(geo["pc"]).mask(ev, INDEX, r.mask("singlets"))
    assert np.count_nonzero(pc_again) == r.counts["pc"]
    assert geo["aberrant"]["type"] == "boolean" and geo["aberrant"]["op"] == "not"


def test_gating_is_deterministic_and_follows_a_shift():
    ev = tube(seed=1)
    t = template_from_dict(TEMPLATE)
    a, b = gate_events(ev, INDEX, t), gate_events(ev, INDEX, t)
    assert a.counts == b.counts and np.array_equal(a.labels, b.labels)
    shifted = ev.copy()
    shifted[:, 2] += 0.4  # an instrument with brighter CD38
    c = gate_events(shifted, INDEX, t)
    assert c.counts["pc"] == a.counts["pc"]
    assert c.fitted["pc"].threshold_ == pytest.approx(a.fitted["pc"].threshold_ + 0.4, abs=0.02)


def test_rows_give_percentages_of_parent(result):
    _, r = result
    rows = {row["population"]: row for row in r.rows()}
    assert rows["normal"]["pct_of_parent"] == pytest.approx(100 * r.counts["normal"] / r.counts["pc"])
    assert rows["singlets"]["parent"] == "root"
    assert np.isnan(rows["pc"]["pct_of_evaluable"])  # no population has the evaluable role here


def test_pct_of_evaluable_uses_the_evaluable_role():
    spec = {"populations": {**TEMPLATE["populations"]}}
    spec["populations"]["singlets"] = {**spec["populations"]["singlets"], "roles": ["evaluable"]}
    r = gate_events(tube(seed=2, n=20_000), INDEX, template_from_dict(spec))
    rows = {row["population"]: row for row in r.rows()}
    assert rows["pc"]["pct_of_evaluable"] == pytest.approx(100 * r.counts["pc"] / r.counts["singlets"])


def test_missing_dimension_and_unfittable_gate_are_clear_errors():
    t = template_from_dict(TEMPLATE)
    with pytest.raises(TemplateError, match="dimension.*CD56.*no column"):
        gate_events(tube(n=10_000), {k: v for k, v in INDEX.items() if k != "CD56"}, t)
    ev = tube(n=10_000)
    ev[:, 3] = 0.0  # nobody is CD19+ → empty reference population
    with pytest.raises(TemplateError, match="'aberrant', method reference_distance: cannot place the gate"):
        gate_events(ev, INDEX, t)
