"""The specimen type per sample: panel fields ``specimen_by`` / ``samples``, their resolution, and the mixed
marrow + blood demo batch (DEMO05 is a plasma-cell-leukaemia blood sample) against its ground truth."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import textwrap
from pathlib import Path

import pytest

from mrdflow.cli import main
from mrdflow.errors import AnalysisError, PanelError
from mrdflow.panel import load_panel
from mrdflow.panel_files import SampleFiles, resolve_specimen
from mrdflow.pipeline import analyze_sample

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "sample_fcs"

BASE = """\
name: mixed
files: "data/*.fcs"
grouping:
  pattern: '^(?P<sample>[A-Za-z0-9]+)_(?:[A-Za-z]+_)?(?P<tube>T[12])\\.fcs$'
tubes:
  tube1: {match: [T1], markers: [CD38, CD138]}
  tube2: {match: [T2], markers: [CD38, cyIgKappa]}
template: template.yaml
"""


def write(tmp_path: Path, extra: str) -> Path:
    (tmp_path / "template.yaml").write_text("populations:\n  cells:\n    dims: [FSC-A]\n    gate: {type: range, min: 0.1}\n")
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "P1_T1.fcs").write_bytes(b"")
    p = tmp_path / "panel.yaml"
    p.write_text(BASE + textwrap.dedent(extra))
    return p


def sample(*names: str, sid: str = "P1") -> SampleFiles:
    return SampleFiles(sid, {f"tube{i + 1}": Path(n) for i, n in enumerate(names)})


# ------------------------------------------------------------------------------------------ panel validation

# (mistake, panel lines, fragments the one error must contain)
MISTAKES = [
    ("unknown default specimen", "specimen: blood\n", ["field 'specimen'", "'bone_marrow'", "'blood'"]),
    ("rule without source", "specimen_by: {values: {PB: peripheral_blood}}\n",
     ["field 'specimen_by'", "exactly one of 'filename'", "found neither"]),
    ("rule with two sources", "specimen_by: {filename: '_(?P<specimen>PB)_', keyword: SPEC}\n",
     ["field 'specimen_by'", "exactly one of", "found both"]),
    ("regex without specimen group", "specimen_by: {filename: '_(PB|BM)_'}\n",
     ["specimen_by.filename", "(?P<specimen>...)"]),
    ("bad regex", "specimen_by: {filename: '_(?P<specimen>PB'}\n", ["specimen_by.filename", "regular expression"]),
    ("value not a specimen", "specimen_by: {keyword: SPEC, values: {PB: blood}}\n",
     ["specimen_by.values.PB", "'peripheral_blood'", "'blood'"]),
    ("label listed twice", "specimen_by: {keyword: SPEC, values: {PB: peripheral_blood, pb: peripheral_blood}}\n",
     ["specimen_by.values", "'pb' is listed twice"]),
    ("specimen name remapped", "specimen_by: {keyword: SPEC, values: {Bone_Marrow: peripheral_blood}}\n",
     ["specimen_by.values", "'Bone_Marrow' is a specimen name and cannot mean 'peripheral_blood'"]),
    ("bad missing policy", "specimen_by: {keyword: SPEC, missing: ignore}\n",
     ["specimen_by.missing", "'default'", "'error'", "'ignore'"]),
    ("unknown rule field", "specimen_by: {keyword: SPEC, value: {PB: peripheral_blood}}\n",
     ["specimen_by.value", "unknown field"]),
    ("override not a specimen", "samples: {P1: {specimen: PB}}\n", ["samples.P1.specimen", "'PB'"]),
    ("override unknown field", "samples: {P1: {specimen: bone_marrow, tissue: x}}\n",
     ["samples.P1.tissue", "unknown field"]),
    ("override id with spaces", "samples: {' P1': {specimen: bone_marrow}}\n", ["field 'samples'", "' P1'"]),
]


@pytest.mark.parametrize("mistake,extra,fragments", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_specimen_field_mistake_gives_one_clear_error(tmp_path, mistake, extra, fragments):
    path = write(tmp_path, extra)
    with pytest.raises(PanelError) as info:
        load_panel(path)
    msg = str(info.value)
    assert str(path) in msg and len(msg.splitlines()) == 1, msg
    for frag in fragments:
        assert frag in msg, f"{mistake}: {frag!r} not in {msg!r}"


def test_defaults_keep_every_sample_marrow(tmp_path):
    panel = load_panel(write(tmp_path, ""))
    assert panel.specimen == "bone_marrow" and panel.specimen_by is None and panel.samples == {}
    call = resolve_specimen(panel, sample("P1_T1.fcs", "P1_T2.fcs"))
    assert (call.specimen, call.source) == ("bone_marrow", "panel default")


# ------------------------------------------------------------------------------------------ resolution


def test_filename_rule_reads_each_sample(tmp_path):
    panel = load_panel(write(tmp_path, "specimen_by: {filename: '_(?P<specimen>PB|BM)_', "
                                       "values: {PB: peripheral_blood, BM: bone_marrow}}\n"))
    call = resolve_specimen(panel, sample("P1_pb_T1.fcs", "P1_PB_T2.fcs"))
    assert call.specimen == "peripheral_blood" and "'pb'" in call.source.casefold()
    assert resolve_specimen(panel, sample("P2_BM_T1.fcs", "P2_BM_T2.fcs")).specimen == "bone_marrow"
    # no label in the name: the panel default (missing: default)
    assert resolve_specimen(panel, sample("P3_T1.fcs", "P3_T2.fcs")).specimen == "bone_marrow"


def test_keyword_rule_is_case_insensitive_and_knows_the_specimen_names(tmp_path):
    panel = load_panel(write(tmp_path, "specimen: peripheral_blood\n"
                                       "specimen_by: {keyword: Specimen, values: {'Bone  Marrow': bone_marrow}}\n"))
    kw = {"a.fcs": {"SPECIMEN": " bone marrow "}, "b.fcs": {"specimen": "BONE_MARROW"}}
    call = resolve_specimen(panel, sample("a.fcs", "b.fcs"), keywords_of=lambda p: kw[p.name])
    assert call.specimen == "bone_marrow" and "keyword Specimen" in call.source


def test_samples_table_overrides_the_rule_and_the_default(tmp_path):
    panel = load_panel(write(tmp_path, "specimen_by: {keyword: SPEC, missing: error}\n"
                                       "samples: {P7: {specimen: peripheral_blood}}\n"))

    def no_keywords(path):  # the override must not even need the files' keywords
        raise AssertionError(f"read {path}")

    call = resolve_specimen(panel, sample("x.fcs", sid="P7"), keywords_of=no_keywords)
    assert (call.specimen, call.source) == ("peripheral_blood", "samples.P7")


def test_unknown_label_is_a_clear_error(tmp_path):
    path = write(tmp_path, "specimen_by: {keyword: SPEC, values: {PB: peripheral_blood}}\n")
    with pytest.raises(PanelError) as info:
        resolve_specimen(load_panel(path), sample("P1_T1.fcs"), keywords_of=lambda p: {"SPEC": "CSF"})
    msg = str(info.value)
    for frag in (str(path), "specimen_by.values", "'P1'", "P1_T1.fcs", "'CSF'", "PB", "peripheral_blood"):
        assert frag in msg, msg


def test_tubes_that_disagree_are_a_clear_error(tmp_path):
    path = write(tmp_path, "specimen_by: {keyword: SPEC, values: {PB: peripheral_blood, BM: bone_marrow}}\n")
    kw = {"P1_T1.fcs": {"SPEC": "PB"}, "P1_T2.fcs": {"SPEC": "BM"}}
    with pytest.raises(PanelError) as info:
        resolve_specimen(load_panel(path), sample("P1_T1.fcs", "P1_T2.fcs"), keywords_of=lambda p: kw[p.name])
    msg = str(info.value)
    for frag in ("different specimens", "P1_T1.fcs): peripheral_blood", "P1_T2.fcs): bone_marrow",
                 "samples.P1.specimen"):
        assert frag in msg, msg


def test_keyword_rule_reads_only_the_text_of_real_files(tmp_path):
    # the demo files carry $CYT = FACSCanto II; the default reader parses HEADER + TEXT of each tube file
    panel = load_panel(write(tmp_path, "specimen_by: {keyword: $cyt, values: {facscanto ii: peripheral_blood}}\n"))
    call = resolve_specimen(panel, SampleFiles("DEMO01", {"tube1": DEMO / "DEMO01_T1.fcs",
                                                          "tube2": DEMO / "DEMO01_T2.fcs"}))
    assert call.specimen == "peripheral_blood" and call.source == "keyword $cyt = 'FACSCanto II'"


def test_missing_label_is_an_error_only_when_asked(tmp_path):
    path = write(tmp_path, "specimen_by: {keyword: SPEC, missing: error}\n")
    with pytest.raises(PanelError, match=r"file P1_T1.fcs has no keyword 'SPEC'.*'specimen_by.missing' is 'error'"):
        resolve_specimen(load_panel(path), sample("P1_T1.fcs"), keywords_of=lambda p: {"SPEC": "  "})


# ------------------------------------------------------------------------------------------ the demo batch


def _truth(sample_id: str) -> dict:
    return json.loads((DEMO / f"{sample_id}.truth.json").read_text())


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    """``mrdflow run panels/demo.yaml --workers 0``: the bundled mixed marrow + blood batch."""
    out = tmp_path_factory.mktemp("demo")
    assert main(["run", str(REPO / "panels" / "demo.yaml"), "--out", str(out), "--workers", "0"]) == 0
    return out


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "results.csv", newline="") as fh:
        return {r["sample_id"]: r for r in csv.DictReader(fh)}


def test_demo_blood_sample_is_read_as_blood(demo_run):
    rows = _rows(demo_run)
    assert rows["DEMO05"]["hemodilution"] == "not_assessed"
    assert "hemodilution_suspected" not in rows["DEMO05"]["qc_flags"]
    assert "pcl_criterion_met" in rows["DEMO05"]["qc_flags"].split(";")
    with sqlite3.connect(demo_run / "mrdflow.sqlite") as db:
        details = {sid: json.loads(d) for sid, d in db.execute("select sample_id, details_json from samples")}
    blood = details["DEMO05"]
    assert blood["specimen"] == "peripheral_blood" and blood["specimen_source"] == "samples.DEMO05"
    assert blood["ppcl"] is True
    t = _truth("DEMO05")
    true_pct = 100.0 * t["n_plasma_cells"] / t["n_evaluable"]
    assert blood["pct_circulating_pc"] == pytest.approx(true_pct, rel=0.10)
    assert blood["pct_circulating_pc"] >= blood["pcl_min_pct"] == 5.0
    for sid in ("DEMO01", "DEMO02", "DEMO03", "DEMO04"):
        assert details[sid]["specimen"] == "bone_marrow", sid
        assert "pct_circulating_pc" not in details[sid] and rows[sid]["hemodilution"] != "not_assessed", sid
    assert "blood" in (demo_run / "report" / "index.html").read_text()
    assert "not assessed (blood specimen)" in (demo_run / "report" / "DEMO05.html").read_text()
    assert "blood specimen" not in (demo_run / "report" / "DEMO04.html").read_text()


def test_demo_statuses_match_the_truth(demo_run):
    """DEMO01 positive; DEMO02 and DEMO04 clone between LOD and LLOQ (DEMO04 hemodiluted); DEMO03 holds no
    clone but 35 k events per tube cannot reach 10⁻⁵; DEMO05 PCL blood."""
    rows = _rows(demo_run)
    got = {sid: (r["status"], r["mrd_status"], r["hemodilution"]) for sid, r in rows.items()}
    assert got == {
        "DEMO01": ("ok", "POSITIVE", "adequate"),
        "DEMO02": ("ok", "POSITIVE_BELOW_LLOQ", "adequate"),
        "DEMO03": ("ok", "NOT_EVALUABLE", "adequate"),
        "DEMO04": ("ok", "POSITIVE_BELOW_LLOQ", "suspected"),
        "DEMO05": ("ok", "POSITIVE", "not_assessed"),
    }
    assert _truth("DEMO03")["n_aberrant_pc"] == 0 and int(rows["DEMO03"]["n_aberrant_pc"]) == 0
    assert rows["DEMO03"]["sensitivity_met"] == "false"
    for sid in ("DEMO02", "DEMO04"):
        assert 20 <= int(rows[sid]["n_aberrant_pc"]) < 50, sid


def test_caller_specimen_overrides_the_panel():
    files = [DEMO / "DEMO05_T1.fcs", DEMO / "DEMO05_T2.fcs"]
    result = analyze_sample(files, REPO / "panels" / "demo.yaml", specimen="bone_marrow")
    assert result.details["specimen"] == "bone_marrow"
    assert result.details["specimen_source"] == "given by the caller"
    assert "ppcl" not in result.details and result.hemodilution != "not_assessed"
    with pytest.raises(AnalysisError, match="specimen 'blood' is not known"):
        analyze_sample(files, REPO / "panels" / "demo.yaml", specimen="blood")


def test_mixed_batch_by_file_name_fails_only_the_sample_whose_tubes_disagree(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for src, dst in (("DEMO05_T1", "B05_PB_T1"), ("DEMO05_T2", "B05_PB_T2"),
                     ("DEMO03_T1", "M03_BM_T1"), ("DEMO03_T2", "M03_PB_T2")):
        shutil.copy(DEMO / f"{src}.fcs", data / f"{dst}.fcs")
    panel = tmp_path / "panel.yaml"
    panel.write_text((REPO / "panels" / "demo.yaml").read_text()
                     .replace('"../sample_fcs/*.fcs"', '"data/*.fcs"')
                     .replace("(?P<sample>.+)_(?P<tube>T[12])", "(?P<sample>[^_]+)_[A-Z]+_(?P<tube>T[12])")
                     .replace("../gating_templates", str(REPO / "gating_templates"))
                     .split("samples:")[0]
                     + "specimen_by:\n  filename: '_(?P<specimen>PB|BM)_'\n"
                     + "  values: {PB: peripheral_blood, BM: bone_marrow}\n")
    assert main(["run", str(panel), "--out", str(tmp_path / "out"), "--workers", "0", "--no-reports"]) == 1
    rows = _rows(tmp_path / "out")
    assert rows["B05"]["status"] == "ok" and rows["B05"]["hemodilution"] == "not_assessed"
    assert rows["M03"]["status"] == "failed"
    for frag in ("different specimens", "M03_BM_T1.fcs): bone_marrow", "M03_PB_T2.fcs): peripheral_blood"):
        assert frag in rows["M03"]["error"], rows["M03"]["error"]


# ------------------------------------------------------------------------------------------ label matching

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from mrdflow.panel import SpecimenRule  # noqa: E402

_labels = st.text(st.characters(whitelist_categories=("L", "N"), max_codepoint=0x24F), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(label=_labels, spec=st.sampled_from(["bone_marrow", "peripheral_blood"]),
       pad=st.tuples(st.sampled_from(["", " ", "\t"]), st.sampled_from(["", " ", "  "])), upper=st.booleans(),
       other=_labels)
def test_a_label_is_found_whatever_its_case_and_padding(label, spec, pad, upper, other):
    rule = SpecimenRule(keyword="SPEC", values={label: spec})
    written = pad[0] + (label.upper() if upper else label.lower()) + pad[1]
    if written.strip().casefold() == label.casefold():  # some letters change length or identity on upper()
        assert rule.specimen_of(written) == spec
    if other.casefold() not in {label.casefold(), "bone_marrow", "peripheral_blood"}:
        assert rule.specimen_of(other) is None
    assert rule.specimen_of(" Peripheral_Blood ") == "peripheral_blood"
