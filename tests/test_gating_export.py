"""GatingML 2.0 export: FlowKit reads our resolved gates and, on the same file, finds the same populations."""

from __future__ import annotations

import numpy as np
import pytest

from gating_data import TRUTH, make_tube, write_panel
from mrdflow.fcs import read_fcs
from mrdflow.gating.engine import gate_events
from mrdflow.gating.export import export_gatingml
from mrdflow.gating.template import load_template
from mrdflow.panel import load_panel
from mrdflow.tube import prepare_tube

fk = pytest.importorskip("flowkit")


def gate_file(panel_path, fcs_path):
    panel = load_panel(panel_path)
    template = load_template(panel.template)
    fcs = read_fcs(fcs_path, linearize=True)
    setup = prepare_tube(panel, "tube1", fcs, template)
    return template, setup, [c.name for c in fcs.channels], gate_events(fcs.events, setup.index, template,
                                                                        upper_limits=setup.upper_limits)


@pytest.mark.parametrize("shift_cd38", [1.0, 0.4])
def test_flowkit_applying_our_export_gives_the_same_populations(tmp_path, shift_cd38):
    panel_path = write_panel(tmp_path, n_files=0)
    fcs_path = make_tube(tmp_path / "P1_T1.fcs", seed=3, shift_cd38=shift_cd38)
    template, setup, names, result = gate_file(panel_path, fcs_path)
    # the synthetic truth is recovered (adaptive gates placed themselves on this file)
    assert result.counts["pc_138"] == TRUTH["pc"]
    assert result.counts["normal"] == TRUTH["normal"] and result.counts["aberrant"] == TRUTH["aberrant"]
    assert result.counts["no_margins"] == TRUTH["n"] - TRUTH["saturated"]

    out = tmp_path / "gates.xml"
    export_gatingml(result, setup, names, out)
    strategy = fk.parse_gating_xml(str(out))
    fk_result = strategy.gate_sample(fk.Sample(str(fcs_path)))
    for name in template.nodes:
        assert fk_result.get_gate_count(name) == result.counts[name], name
        assert np.array_equal(fk_result.get_gate_membership(name), result.mask(name)), name


def test_our_own_gatingml_reader_agrees_with_the_export(tmp_path):
    from mrdflow.gating.gatingml import evaluate_gatingml

    panel_path = write_panel(tmp_path, n_files=0)
    fcs_path = make_tube(tmp_path / "P1_T1.fcs", seed=5)
    template, setup, names, result = gate_file(panel_path, fcs_path)
    out = tmp_path / "gates.xml"
    export_gatingml(result, setup, names, out)
    members = evaluate_gatingml(out, read_fcs(fcs_path, linearize=True))
    for name in template.nodes:
        assert np.array_equal(members[name], result.mask(name)), name
