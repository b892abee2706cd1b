"""A real LSR II file from the shared corpus: adaptive gates place themselves, and FlowKit applying our
GatingML export to the same file finds exactly the same events in every population."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from conftest import shared_path
from mrdflow.fcs import read_fcs
from mrdflow.gating.engine import gate_events
from mrdflow.gating.export import export_gatingml
from mrdflow.gating.template import template_from_dict
from mrdflow.panel import load_panel
from mrdflow.tube import prepare_tube

fk = pytest.importorskip("flowkit")

FILE = "DillonHammill__CytoExploreRData__inst__extdata__Compensation-Controls__7AAD@8b98b04.fcs"

TEMPLATE = {
    "name": "7AAD control",
    "populations": {
        "no_margins": {"dims": ["FSC-A", "SSC-A"], "method": "margin"},
        "singlets": {"parent": "no_margins", "dims": ["FSC-A", "FSC-H"], "method": "singlet"},
        "cells": {"parent": "singlets", "dims": ["FSC-A", "SSC-A"], "method": "cluster",
                  "args": {"target": [0.4, 0.2], "n_components": 3, "quantile": 0.99}},
        "aad_pos": {"parent": "cells", "dims": ["7AAD"], "method": "density_valley"},
        "aad_neg": {"parent": "cells", "boolean": "not aad_pos"},
        "bright": {"parent": "aad_pos", "dims": ["7AAD"], "method": "tail", "args": {"side": "above", "k": 2}},
        "far": {"parent": "cells", "dims": ["7AAD", "PE"], "method": "reference_distance",
                "args": {"reference": "aad_neg", "quantile": 0.999}},
        "pe_q": {"parent": "cells", "dims": ["7AAD", "PE"],
                 "gate": {"type": "quadrant", "dividers": [0.5, 0.3], "quadrant": "+-"}},
    },
}


def test_real_file_gates_and_flowkit_agrees(tmp_path):
    src = shared_path("fcs_corpus", "files", FILE)
    (tmp_path / "t.yaml").write_text("populations: {x: {dims: [FSC-A], gate: {type: range, min: 0}}}\n")
    (tmp_path / "panel.yaml").write_text(textwrap.dedent("""\
        name: real
        tubes:
          t:
            markers: [{name: 7AAD, channel: 7-AAD-A}, {name: PE, channel: PE-A}]
        template: t.yaml
        """))
    panel = load_panel(tmp_path / "panel.yaml")
    template = template_from_dict(TEMPLATE)
    fcs = read_fcs(src, linearize=True)
    setup = prepare_tube(panel, "t", fcs, template)
    # a real instrument's compensated negatives: the 5th percentile of the negative values reaches -1 022 in the
    # 7-AAD channel (-643 in PE-Cy7), which needs logicle W 1.05 (Parks 2006): the tube is transformed at 1.2
    (warning,) = setup.warnings
    assert setup.spillover is not None and warning.startswith("logicle_width_widened: logicle W 1.2")
    assert setup.logicle_w == 1.2 and setup.transforms["7-AAD-A"].W == 1.2
    result = gate_events(fcs.events, setup.index, template, upper_limits=setup.upper_limits)
    c = result.counts
    assert c["no_margins"] < fcs.n_events and c["singlets"] < c["no_margins"]
    # a 7-AAD compensation control: one dominant dim peak and a small bright tail (below the 5 % prominence
    # of a second mode), so density_valley takes its documented fallback: the shoulder above the peak
    valley = result.fitted["aad_pos"]
    assert valley.used_fallback_ and valley.threshold_ > valley.modes_[0] + 0.1
    assert 0 < c["aad_pos"] < 0.1 * c["cells"]
    assert c["aad_neg"] == c["cells"] - c["aad_pos"]

    out = tmp_path / "real.xml"
    export_gatingml(result, setup, [ch.name for ch in fcs.channels], out)
    fk_result = fk.parse_gating_xml(str(out)).gate_sample(fk.Sample(str(src)))
    for name in template.nodes:
        assert np.array_equal(fk_result.get_gate_membership(name), result.mask(name)), name


CALIBUR = "RGLab__flowCore__inst__extdata__0877408774.B08"


def test_log_amplified_facscalibur_file_gates_on_linearized_scale_and_flowkit_agrees(tmp_path):
    """FCS 2.0, 4-decade log amplifiers ($PnE = 4,0): logicle T defaults to 10^4 (the linearized top), margins
    come from $PnR − 1 linearized, and FlowKit (which linearizes the same way) agrees event for event."""
    src = shared_path("fcs_corpus", "files", CALIBUR)
    (tmp_path / "t.yaml").write_text("populations: {x: {dims: [FSC-H], gate: {type: range, min: 0}}}\n")
    (tmp_path / "panel.yaml").write_text(textwrap.dedent("""\
        name: calibur
        tubes:
          t:
            markers: [{name: FL1, channel: FL1-H}, {name: FL2, channel: FL2-H}]
        template: t.yaml
        compensation: {source: none}
        """))
    template = template_from_dict({"populations": {
        "no_margins": {"dims": ["FSC-H", "SSC-H"], "method": "margin"},
        "cells": {"parent": "no_margins", "dims": ["FSC-H", "SSC-H"], "method": "cluster",
                  "args": {"target": [0.4, 0.2], "n_components": 3}},
        "fl1_pos": {"parent": "cells", "dims": ["FL1"], "method": "density_valley"},
        "fl2_tail": {"parent": "cells", "dims": ["FL2"], "method": "tail"},
        "dp": {"parent": "cells", "dims": ["FL1", "FL2"],
               "gate": {"type": "quadrant", "dividers": [0.5, 0.5], "quadrant": "++"}},
    }})
    panel = load_panel(tmp_path / "panel.yaml")
    fcs = read_fcs(src, linearize=True)
    setup = prepare_tube(panel, "t", fcs, template)
    assert setup.transforms["FL1-H"].T == pytest.approx(1e4) and setup.transforms["FSC-H"].T == 1024
    raw_top = read_fcs(src).events[:, 0] >= 1023  # saturated forward scatter
    result = gate_events(fcs.events, setup.index, template, upper_limits=setup.upper_limits)
    assert raw_top.any() and not (result.mask("no_margins") & raw_top).any()
    out = tmp_path / "calibur.xml"
    export_gatingml(result, setup, [ch.name for ch in fcs.channels], out)
    fk_result = fk.parse_gating_xml(str(out)).gate_sample(fk.Sample(str(src)))
    for name in template.nodes:
        assert np.array_equal(fk_result.get_gate_membership(name), result.mask(name)), name
