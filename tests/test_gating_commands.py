"""`mrdflow validate-panel` and `mrdflow gate` on small generated files."""

from __future__ import annotations

from gating_data import TRUTH, make_tube, write_panel
from mrdflow.cli import main


def test_gate_prints_the_population_tree(tmp_path, capsys):
    panel = write_panel(tmp_path, n_files=1)
    assert main(["gate", str(tmp_path / "P1_T1.fcs"), "--panel", str(panel)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert lines["root"][1] == str(TRUTH["n"])
    assert lines["normal"][1:3] == [str(TRUTH["normal"]), "60.00"]
    assert "aberrant_pc" in lines["aberrant"]
    # nesting is shown by indentation
    assert "      cells" in out and "            normal" in out


def test_validate_panel_checks_every_file(tmp_path, capsys):
    panel = write_panel(tmp_path, n_files=2)
    assert main(["validate-panel", str(panel)]) == 0
    out = capsys.readouterr().out
    assert "2 sample(s), 2 file(s), 0 problem(s)" in out
    assert "ok   P1 tube1 P1_T1.fcs: 4 markers resolved, compensation $SPILLOVER" in out


def test_validate_panel_reports_a_file_lacking_a_marker(tmp_path, capsys):
    panel = write_panel(tmp_path, n_files=1)
    panel.write_text(panel.read_text().replace("markers: [CD38, CD56, CD19, CD138]",
                                               "markers: [CD38, CD56, CD19, CD138, CD81]"))
    assert main(["validate-panel", str(panel)]) == 2
    err = capsys.readouterr().err
    assert "FAIL P1 tube1 P1_T1.fcs" in err and "marker 'CD81' is missing from file" in err


def test_validate_panel_with_a_template_dimension_no_file_has(tmp_path, capsys):
    panel = write_panel(tmp_path, n_files=1)
    t = tmp_path / "template.yaml"
    t.write_text(t.read_text().replace("dims: [CD138]", "dims: [CD27]"))
    assert main(["validate-panel", str(panel)]) == 2
    assert "dimension 'CD27' is neither a marker of the tube" in capsys.readouterr().err


def test_bad_panel_is_exit_code_2_with_the_message(tmp_path, capsys):
    panel = write_panel(tmp_path, n_files=1)
    panel.write_text(panel.read_text() + "mrd: {lod_events: 0}\n")
    assert main(["validate-panel", str(panel)]) == 2
    assert "field 'mrd.lod_events'" in capsys.readouterr().err


def test_gate_with_an_unknown_tube(tmp_path, capsys):
    panel = write_panel(tmp_path, n_files=1)
    assert main(["gate", str(tmp_path / "P1_T1.fcs"), "--panel", str(panel), "--tube", "T9"]) == 2
    assert "--tube 'T9' is not a tube" in capsys.readouterr().err


def test_validate_panel_with_a_spillover_csv_naming_absent_channels(tmp_path, capsys):
    panel = write_panel(tmp_path, n_files=1)
    (tmp_path / "comp.csv").write_text("FITC-A,APC-A\n1,0.1\n0.02,1\n")
    panel.write_text(panel.read_text() + "compensation: {source: csv, csv: comp.csv}\n")
    assert main(["validate-panel", str(panel)]) == 2
    err = capsys.readouterr().err
    assert "FAIL P1 tube1 P1_T1.fcs" in err and "compensation.csv" in err and "APC-A" in err


def test_validate_panel_with_a_usable_spillover_csv(tmp_path, capsys):
    panel = write_panel(tmp_path, n_files=1)
    (tmp_path / "comp.csv").write_text("FITC-A,PE-A\n1,0.1\n0.02,1\n")
    panel.write_text(panel.read_text() + "compensation: {source: csv, csv: comp.csv}\n")
    assert main(["validate-panel", str(panel)]) == 0
    assert "compensation " + str(tmp_path / "comp.csv") in capsys.readouterr().out
