"""Panels: defaults, marker resolution with aliases, file grouping, and one clear error per mistake."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from mrdflow.errors import PanelError
from mrdflow.panel import load_panel
from mrdflow.panel_files import (channel_transforms, find_files, group_files, has_dimension, is_scatter, is_time,
                                 resolve_dims, resolve_markers, scatter_dimension, time_channel)

TEMPLATE = "populations:\n  cells:\n    dims: [FSC-A]\n    gate: {type: range, min: 0.1}\n"

BASE = """\
name: demo
files: "data/*.fcs"
grouping:
  pattern: '^(?P<sample>[A-Za-z0-9]+)_(?P<tube>T[12])\\.fcs$'
tubes:
  tube1:
    match: [T1]
    markers: [CD38, CD138, CD45]
  tube2:
    match: [T2]
    markers: [CD38, cyIgKappa, {name: cyIgLambda, channel: APC-H7-A}]
template: template.yaml
"""


@dataclass
class Ch:
    name: str
    marker: str | None
    range: float = 262144.0


def write(tmp_path: Path, text: str, files=("P1_T1.fcs", "P1_T2.fcs")) -> Path:
    (tmp_path / "template.yaml").write_text(TEMPLATE)
    (tmp_path / "data").mkdir(exist_ok=True)
    for f in files:
        (tmp_path / "data" / f).write_bytes(b"")
    p = tmp_path / "panel.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_defaults_are_documented_values(tmp_path):
    panel = load_panel(write(tmp_path, BASE))
    assert panel.mrd.lod_events == 20 and panel.mrd.lloq_events == 50
    assert panel.mrd.required_sensitivity == 1e-5 and panel.mrd.denominator == "combined"
    assert panel.mrd.kappa_lambda_kappa_above == 4.0 and panel.mrd.kappa_lambda_lambda_below == 0.5
    assert panel.mrd.clonality_min_cells == 100
    assert panel.compensation.source == "file"
    assert panel.transforms.fluorescence.type == "logicle" and panel.transforms.scatter.type == "linear"
    assert panel.qc.time.mad == 6.0 and panel.qc.time.consecutive_bins == 5
    assert panel.template == tmp_path / "template.yaml"
    assert panel.output_dir == tmp_path / "results"


def test_markers_resolve_by_stain_then_name_with_aliases(tmp_path):
    panel = load_panel(write(tmp_path, BASE))
    chans = [Ch("FSC-A", None), Ch("FITC-A", "CD38 ME"), Ch("APC-A", "Kappa"), Ch("APC-H7-A", "lambda"),
             Ch("Time", None)]
    got = resolve_markers(panel, "tube2", chans, file="x.fcs")
    assert got == {"CD38": 1, "cyIgKappa": 2, "cyIgLambda": 3}
    # $PnN fallback when $PnS is absent
    got1 = resolve_markers(panel, "tube1", [Ch("CD38", None), Ch("cd138", None), Ch("V500-A", "CD45")])
    assert got1 == {"CD38": 0, "CD138": 1, "CD45": 2}
    assert resolve_dims(["CD38", "fsc-a", "Time"], got, chans, where="t") == {"CD38": 1, "fsc-a": 0, "Time": 4}


def test_stains_written_with_their_fluorochrome_or_metal_tag_name_their_marker(tmp_path):
    panel = load_panel(write(tmp_path, BASE))
    # real files: "CD38 FITC" (BD), "CD138_Nd142" (mass cytometry), "BV510.CD45" (exported columns)
    tagged = [Ch("FSC-A", None), Ch("FITC-A", "CD38 FITC"), Ch("BV421-A", "CD138_Nd142"), Ch("V500-A", "BV510.CD45"),
              Ch("PE-A", "CD45RA PE")]
    assert resolve_markers(panel, "tube1", tagged) == {"CD38": 1, "CD138": 2, "CD45": 3}  # CD45RA is not CD45
    # multi-word names and aliases inside a tagged stain; the marker in $PnN when there is no $PnS
    got = resolve_markers(panel, "tube2", [Ch("FITC-A", "CD38 ME FITC"), Ch("APC-A", "cy Ig Kappa (APC)"),
                                           Ch("APC-H7-A", "lambda")])
    assert got == {"CD38": 0, "cyIgKappa": 1, "cyIgLambda": 2}
    assert resolve_markers(panel, "tube1", [Ch("CD38 FITC-A", None), Ch("CD138 BV421-A", None),
                                            Ch("CD45 V500-A", None)]) == {"CD38": 0, "CD138": 1, "CD45": 2}
    # an exact stain wins over a tagged one; two tagged matches are ambiguous, as two exact ones are
    assert resolve_markers(panel, "tube1", [Ch("a", "CD38 FITC"), Ch("b", "CD38"), Ch("c", "CD138"),
                                            Ch("d", "CD45")])["CD38"] == 1
    cd19 = load_panel(write(tmp_path, BASE.replace("[CD38, CD138, CD45]", "[CD19]")))
    with pytest.raises(PanelError, match="matches several channels .*CD3_CD19, CD19_Nd142"):
        resolve_markers(cd19, "tube1", [Ch("CD3_CD19", "CD3_CD19_Pr141"), Ch("CD19_Nd142", "CD19_Nd142")])


@pytest.mark.parametrize("name, dim", [
    ("FSC-A", ("FSC-A", False)), ("FSCA", ("FSC-A", False)), ("FSC-Area", ("FSC-A", False)),
    ("FS INT LIN", ("FSC-A", False)), ("FS Lin", ("FSC-A", False)), ("FS", ("FSC-A", False)),
    ("FSC LinA", ("FSC-A", False)), ("FSC LogA", ("FSC-A", True)), ("FSC.HLin", ("FSC-H", False)),
    ("FS PEAK LIN", ("FSC-H", False)), ("FSC-Height", ("FSC-H", False)), ("FS TOF LIN", ("FSC-W", False)),
    ("SS INT LIN", ("SSC-A", False)), ("SS Log", ("SSC-A", True)), ("SSC-H", ("SSC-H", False)),
    ("SSC-B-A", None), ("SSC6-Area", None), ("405nm SSC LogH", None), ("FITC-A", None), ("SSEA4", None),
    ("Time", None),
])
def test_scatter_channel_names_of_every_instrument(name, dim):
    assert scatter_dimension(name) == dim
    assert is_scatter(name) == (dim is not None or name in ("SSC-B-A", "SSC6-Area"))


def test_scatter_dimensions_resolve_to_the_instruments_channel_or_ask(tmp_path):
    navios = [Ch("FS INT LIN", None), Ch("FS PEAK LIN", None), Ch("SS INT LIN", None), Ch("HDR-T", None)]
    assert resolve_dims(["FSC-A", "FSC-H", "SSC-A"], {}, navios, where="t") == {"FSC-A": 0, "FSC-H": 1, "SSC-A": 2}
    # a linear and a log copy of the same signal: the linear one
    moflo = [Ch("FSC LogA", None), Ch("FSC LinA", None)]
    assert resolve_dims(["FSC-A"], {}, moflo, where="t") == {"FSC-A": 1}
    # two linear candidates: an error that says how to choose, and the panel's choice
    two = [Ch("FS Lin", None), Ch("FS INT LIN", None)]
    with pytest.raises(PanelError, match=r"several scatter channels .*FS Lin, FS INT LIN.*dimensions: \{FSC-A: NAME\}"):
        resolve_dims(["FSC-A"], {}, two, where="t")
    mapped = load_panel(write(tmp_path, BASE + "dimensions: {FSC-A: fs int lin}\n")).dimensions
    assert resolve_dims(["FSC-A"], {}, two, where="t", dimensions=mapped) == {"FSC-A": 1}
    with pytest.raises(PanelError, match="mapped to channel 'FSC-A'.*lacks"):
        resolve_dims(["FSC-A"], {}, two, where="t", dimensions={"FSC-A": "FSC-A"})
    # the time channel: Time first, else Beckman Coulter's HDR-T
    assert is_time("HDR-T") and is_time("TIME") and not is_time("TIME2")
    assert time_channel(["HDR-T", "FSC-A", "Time"]) == 2 and time_channel(["HDR-T", "FSC-A"]) == 0
    assert time_channel(["FSC-A"]) is None


def test_an_optional_step_is_skipped_only_when_its_channel_is_absent_not_when_ambiguous(tmp_path):
    from mrdflow.gating.template import template_from_dict
    from mrdflow.tube import tube_template

    panel = load_panel(write(tmp_path, BASE))
    tmpl = template_from_dict({"populations": {
        "all": {"dims": ["FSC-A"], "gate": {"type": "range", "min": 0}},
        "singlets": {"parent": "all", "dims": ["FSC-A", "FSC-H"], "method": "singlet", "optional": True}}})
    base = [Ch("FSC-A", None), Ch("FITC-A", "CD38"), Ch("BV421-A", "CD138"), Ch("V500-A", "CD45")]
    markers = {"CD38": 1, "CD138": 2, "CD45": 3}
    warnings: list[str] = []
    t, _ = tube_template(panel, "tube1", tmpl, markers, base, warnings)
    assert t.nodes["singlets"].kind == "boolean" and warnings == [
        "step_skipped: population 'singlets' keeps every event of 'all': the file has no FSC-H channel"]
    # two channels that could be FSC-H: not skipped — the dimension check asks which one
    two = [*base, Ch("FS PEAK LIN", None), Ch("FSC-Height", None)]
    assert not has_dimension("FSC-H", markers, base) and has_dimension("FSC-H", markers, two)
    warnings.clear()
    t, _ = tube_template(panel, "tube1", tmpl, markers, two, warnings)
    assert t.nodes["singlets"].kind == "method" and warnings == []
    with pytest.raises(PanelError, match="several scatter channels"):
        resolve_dims(["FSC-H"], markers, two, where="t")


def test_transform_defaults_and_overrides(tmp_path):
    text = BASE.replace("    markers: [CD38, CD138, CD45]",
                        "    markers: [CD38, CD138, CD45]\n    transforms: {CD45: {type: logicle, W: 1.0}}")
    panel = load_panel(write(tmp_path, text))
    chans = [Ch("FSC-A", None, 1000.0), Ch("FITC-A", "CD38"), Ch("BV421-A", "CD138"), Ch("V500-A", "CD45"),
             Ch("Time", None)]
    tr = channel_transforms(panel, "tube1", chans, resolve_markers(panel, "tube1", chans))
    assert tr["FSC-A"] == ("linear", {"T": 1000.0, "A": 0.0})
    assert tr["FITC-A"] == ("logicle", {"T": 262144.0, "W": 0.5, "M": 4.5, "A": 0.0})
    assert tr["V500-A"][1]["W"] == 1.0
    assert "Time" not in tr


def test_files_group_into_samples_and_tubes(tmp_path):
    panel = load_panel(write(tmp_path, BASE, files=("P1_T1.fcs", "P1_T2.fcs", "P2_T1.fcs")))
    groups = group_files(panel, find_files(panel))
    assert [(g.sample_id, sorted(g.tubes)) for g in groups] == [("P1", ["tube1", "tube2"]), ("P2", ["tube1"])]


def test_grouping_by_keyword(tmp_path):
    text = BASE.replace("grouping:\n  pattern: '^(?P<sample>[A-Za-z0-9]+)_(?P<tube>T[12])\\.fcs$'",
                        "grouping: {by: keyword}")
    panel = load_panel(write(tmp_path, text, files=("a.fcs", "b.fcs")))
    kw = {"a.fcs": {"$SRC": "S9", "TUBE NAME": "T2"}, "b.fcs": {"$src": "S9", "tube name": "tube1"}}
    groups = group_files(panel, find_files(panel), keywords_of=lambda p: kw[p.name])
    assert groups[0].sample_id == "S9" and groups[0].tubes["tube2"].name == "a.fcs"


# (mistake, how to make it, fragments the one error message must contain)
PANEL_MISTAKES = [
    ("bad YAML", lambda t: t.replace("tubes:", "tubes: [\n"), ["invalid YAML", "line"]),
    ("duplicate key", lambda t: t + "name: again\n", ["duplicate key 'name'", "line"]),
    ("unknown field", lambda t: t + "outptu_dir: x\n", ["outptu_dir", "unknown field"]),
    ("missing template", lambda t: t.replace("template: template.yaml\n", ""), ["'template'", "required"]),
    ("template file absent", lambda t: t.replace("template.yaml", "nope.yaml"), ["'template'", "does not exist"]),
    ("lloq below lod", lambda t: t + "mrd: {lod_events: 60}\n", ["'mrd'", "lloq_events (50) must be ≥ lod_events (60)"]),
    ("bad denominator", lambda t: t + "mrd: {denominator: both}\n", ["mrd.denominator", "'combined'", "both"]),
    ("negative sensitivity", lambda t: t + "mrd: {required_sensitivity: -1}\n", ["mrd.required_sensitivity", "greater than 0"]),
    ("csv without path", lambda t: t + "compensation: {source: csv}\n", ["'compensation'", "needs 'csv"]),
    ("csv missing", lambda t: t + "compensation: {source: csv, csv: none.csv}\n", ["compensation.csv", "does not exist"]),
    ("bad transform type", lambda t: t + "transforms: {fluorescence: {type: biex}}\n",
     ["transforms.fluorescence.type", "'logicle'", "biex"]),
    ("parameter not of transform", lambda t: t + "transforms: {scatter: {type: linear, W: 1}}\n",
     ["transforms.scatter", "W do not apply to a linear transform"]),
    ("bad regex", lambda t: t.replace("(?P<sample>[A-Za-z0-9]+)", "(?P<sample[A-Z]+)"), ["grouping.pattern", "regular expression"]),
    ("regex without sample group", lambda t: t.replace("(?P<sample>[A-Za-z0-9]+)", "([A-Za-z0-9]+)"),
     ["grouping.pattern", "(?P<sample>"]),
    ("no tube group with two tubes", lambda t: t.replace("(?P<tube>T[12])", "T[12]"), ["grouping.pattern", "(?P<tube>", "several tubes"]),
    ("empty marker list", lambda t: t.replace("markers: [CD38, CD138, CD45]", "markers: []"),
     ["tubes.tube1.markers", "at least 1"]),
    ("marker listed twice", lambda t: t.replace("[CD38, CD138, CD45]", "[CD38, CD138, cd38]"),
     ["tubes.tube1.markers", "listed twice"]),
    ("no tubes", lambda t: t.split("tubes:")[0] + "tubes: {}\ntemplate: template.yaml\n", ["'tubes'", "at least 1"]),
    ("tube label claimed twice", lambda t: t.replace("match: [T2]", "match: [T1]"), ["tubes.tube2.match", "'T1'", "claimed by tubes"]),
    ("panel is a list", lambda t: "- a\n- b\n", ["expected the panel to be a YAML mapping", "found a list"]),
]


@pytest.mark.parametrize("mistake,edit,fragments", PANEL_MISTAKES, ids=[m[0] for m in PANEL_MISTAKES])
def test_panel_mistake_gives_one_clear_error(tmp_path, mistake, edit, fragments):
    path = write(tmp_path, edit(BASE))
    with pytest.raises(PanelError) as info:
        load_panel(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    for frag in fragments:
        assert frag in msg, f"{mistake}: {frag!r} not in {msg!r}"


def test_missing_panel_file(tmp_path):
    with pytest.raises(PanelError, match="panel file not found"):
        load_panel(tmp_path / "absent.yaml")


FILE_MISTAKES = [
    ("glob matches nothing", ("X.fcs",), lambda t: t.replace("data/*.fcs", "data/*.lmd"),
     None, ["field 'files'", "matches no file"]),
    ("file name does not match", ("P1_T1.fcs", "odd.fcs"), lambda t: t, None,
     ["grouping.pattern", "odd.fcs", "does not match"]),
    ("unknown tube label", ("P1_T1.fcs",), lambda t: t.replace("T[12]", "T[13]"), "P1_T3.fcs",
     ["'T3'", "not a panel tube", "tube1 (or T1)"]),
    ("two files same sample and tube", ("P1_T1.fcs",), lambda t: t.replace("T[12]", "(?:tube|T)[12]").replace(
        "match: [T1]", "match: [T1, tube1]"), "P1_tube1.fcs", ["both claim sample 'P1' tube 'tube1'"]),
]


@pytest.mark.parametrize("mistake,files,edit,extra,fragments", FILE_MISTAKES, ids=[m[0] for m in FILE_MISTAKES])
def test_file_grouping_mistakes(tmp_path, mistake, files, edit, extra, fragments):
    path = write(tmp_path, edit(BASE), files=files + ((extra,) if extra else ()))
    panel = load_panel(path)
    with pytest.raises(PanelError) as info:
        group_files(panel, find_files(panel))
    msg = str(info.value)
    assert str(path) in msg
    for frag in fragments:
        assert frag in msg, f"{mistake}: {frag!r} not in {msg!r}"


def test_marker_missing_from_file_names_marker_file_and_channels(tmp_path):
    panel = load_panel(write(tmp_path, BASE))
    with pytest.raises(PanelError) as info:
        resolve_markers(panel, "tube1", [Ch("FITC-A", "CD38"), Ch("PE-A", "CD56")], file="P1_T1.fcs")
    msg = str(info.value)
    for frag in ("tubes.tube1.markers[1]", "'CD138'", "missing from file P1_T1.fcs", "PE-A=CD56"):
        assert frag in msg


def test_marker_matching_two_channels_is_ambiguous(tmp_path):
    panel = load_panel(write(tmp_path, BASE))
    with pytest.raises(PanelError, match="matches several channels .*FITC-A, PE-A"):
        resolve_markers(panel, "tube1", [Ch("FITC-A", "CD38"), Ch("PE-A", "CD38ME"), Ch("x", "CD138"),
                                         Ch("y", "CD45")])


def test_channel_override_naming_absent_channel(tmp_path):
    panel = load_panel(write(tmp_path, BASE))
    with pytest.raises(PanelError, match=r"tubes.tube2.markers\[2\].channel.*no channel named 'APC-H7-A'"):
        resolve_markers(panel, "tube2", [Ch("FITC-A", "CD38"), Ch("APC-A", "IgK")])


def test_transform_override_for_unknown_marker(tmp_path):
    text = BASE.replace("    markers: [CD38, CD138, CD45]",
                        "    markers: [CD38, CD138, CD45]\n    transforms: {CD99: {type: asinh}}")
    panel = load_panel(write(tmp_path, text))
    chans = [Ch("FITC-A", "CD38"), Ch("BV421-A", "CD138"), Ch("V500-A", "CD45")]
    with pytest.raises(PanelError, match="tubes.tube1.transforms.CD99"):
        channel_transforms(panel, "tube1", chans, resolve_markers(panel, "tube1", chans))


def test_default_transform_top_is_the_linearized_scale(tmp_path):
    @dataclass
    class LogCh:
        name: str
        marker: str | None
        range: float
        log_decades: float = 0.0
        log_offset: float = 0.0
        gain: float = 1.0

    panel = load_panel(write(tmp_path, BASE))
    chans = [LogCh("FL1-H", "CD38", 1024.0, 4.0, 0.0), LogCh("FL2-H", "CD138", 1024.0, 4.0, 2.0),
             LogCh("FL3-A", "CD45", 262144.0, gain=2.0)]
    tr = channel_transforms(panel, "tube1", chans, resolve_markers(panel, "tube1", chans))
    assert tr["FL1-H"][1]["T"] == pytest.approx(1e4)   # $PnE = 4,0 → 10^4
    assert tr["FL2-H"][1]["T"] == pytest.approx(2e4)   # $PnE = 4,2 → 2·10^4
    assert tr["FL3-A"][1]["T"] == pytest.approx(131072.0)  # $PnR / $PnG
