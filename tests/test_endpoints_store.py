"""Endpoints reading MRD results from the results store (or results.csv) through a sample map.

The example trial's mrd.csv is turned into a store of hand-made SampleResults: the endpoints derived from the
store must equal those derived from mrd.csv, and the mrd_source.csv view fed back through --mrd-csv must too.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mrdflow.cli import main
from mrdflow.endpoints.mrd_source import StoredResult, mrd_view, read_results_csv, read_store, select_latest
from mrdflow.endpoints.study import load_study
from mrdflow.endpoints.tables import parse_patients, read_csv_text
from mrdflow.endpoints.trial import run_study
from mrdflow.errors import StudyError
from mrdflow.result import SampleResult
from mrdflow.store import ResultStore, write_results_csv

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "study"
TEMPLATE = {"path": "/t.yaml", "sha256": "t" * 64}
#: keys of endpoints.json that describe the MRD source rather than results
SOURCE_KEYS = ("mrd_source", "warnings")


def _result(sid: str, status: str = "NEGATIVE", fraction: float = 0.0, lod: float = 4e-6,
            specimen: str | None = "bone_marrow") -> SampleResult:
    details = {"specimen": specimen} if specimen else {}
    return SampleResult(sample_id=sid, files=[f"/lab/{sid}_T1.fcs", f"/lab/{sid}_T2.fcs"], n_events_acquired=10,
                        n_events_evaluable=10, mrd_fraction=fraction, lod=lod, lloq=lod * 2.5, mrd_status=status,
                        details=details)


def _record(store: ResultStore, run: str, result: SampleResult) -> None:
    store.record(run, result, tubes={"tube1": result.files[0]}, file_sha256={"tube1": "a" * 64}, input_key="k",
                 analysed_at=f"{run}-at")


def _begin(store: ResultStore, run: str, started: str) -> None:
    store.begin_run(run, started=started, panel=None, template=TEMPLATE, output_dir="/out", mrdflow_version="0")


def _sid(row) -> str:
    return f"{row.patient_id}-{row.date}-{row.tissue}"


@pytest.fixture()
def study_dir(tmp_path) -> Path:
    """The example study with its mrd.csv moved into a store (run R1) + a sample map, mrd table removed."""
    d = tmp_path / "study"
    shutil.copytree(EXAMPLE, d)
    mrd = pd.read_csv(d / "mrd.csv", dtype=str, keep_default_na=False)
    with ResultStore(d / "lab" / "mrdflow.sqlite") as store:
        _begin(store, "R1", "2026-01-01T00:00:00Z")
        for r in mrd.itertuples(index=False):
            specimen = {"BM": "bone_marrow", "PB": "peripheral_blood"}[r.tissue]
            _record(store, "R1", _result(_sid(r), r.mrd_status, float(r.mrd_fraction or "nan"),
                                         float(r.lod or "nan"), specimen))
    samples = mrd.assign(sample_id=[_sid(r) for r in mrd.itertuples(index=False)])
    samples[["sample_id", "patient_id", "date", "tissue", "method"]].to_csv(d / "mrd_samples.csv", index=False)
    (d / "mrd.csv").rename(d / "mrd_table.csv")
    _set_source(d, {"store": "lab/mrdflow.sqlite", "samples": "mrd_samples.csv"})
    return d


def _set_source(d: Path, source: dict | None, *, mrd_table: str | None = None) -> None:
    cfg = yaml.safe_load((d / "study.yaml").read_text())
    cfg["tables"].pop("mrd", None)
    if mrd_table:
        cfg["tables"]["mrd"] = mrd_table
    cfg.pop("mrd_source", None)
    if source is not None:
        cfg["mrd_source"] = source
    (d / "study.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def _endpoints(out: Path) -> dict:
    e = json.loads((out / "endpoints.json").read_text())
    return {k: v for k, v in e.items() if k not in SOURCE_KEYS}


def _patients(d: Path) -> pd.DataFrame:
    return parse_patients(read_csv_text(d / "patients.csv", "patients"), source="patients.csv")


# -- equality with the table paths --------------------------------------------------------------------------------

def test_endpoints_from_store_equal_those_from_mrd_csv_and_from_the_view(study_dir, tmp_path):
    assert main(["endpoints", str(study_dir / "study.yaml"), "--out", str(tmp_path / "store")]) == 0
    assert main(["endpoints", str(EXAMPLE / "study.yaml"), "--out", str(tmp_path / "table"), "--no-html"]) == 0
    # the view written by the store run, fed back as --mrd-csv
    view = tmp_path / "store" / "mrd_source.csv"
    assert main(["endpoints", str(study_dir / "study.yaml"), "--out", str(tmp_path / "csv"), "--mrd-csv", str(view),
                 "--no-html"]) == 0
    from_store, from_table, from_view = (_endpoints(tmp_path / n) for n in ("store", "table", "csv"))
    assert from_store["mrd_negative_rate_itt"]["n"] == 4  # the example's scenario, now from the store
    assert from_store == from_table == from_view
    for name in ("patient_response.csv", "assessment_response.csv"):
        assert (tmp_path / "store" / name).read_text() == (tmp_path / "table" / name).read_text()
    e = json.loads((tmp_path / "store" / "endpoints.json").read_text())
    assert e["mrd_source"]["kind"] == "store" and e["mrd_source"]["n_rows"] == 21 and e["warnings"] == []
    assert json.loads((tmp_path / "csv" / "endpoints.json").read_text())["mrd_source"]["override"] is True
    v = pd.read_csv(view, dtype=str, keep_default_na=False)
    assert list(v.columns[:7]) == ["patient_id", "date", "tissue", "method", "mrd_fraction", "lod", "mrd_status"]
    assert set(v["run_id"]) == {"R1"} and v["sample_id"].iloc[0] == "P01-2024-02-12-BM"


def test_store_is_opened_read_only(study_dir, tmp_path):
    db = study_dir / "lab" / "mrdflow.sqlite"
    before = db.read_bytes()
    db.chmod(0o444)
    try:
        run_study(study_dir / "study.yaml", tmp_path / "out", html=False)
    finally:
        db.chmod(0o644)
    assert db.read_bytes() == before


# -- selection rules ----------------------------------------------------------------------------------------------

def test_latest_ok_run_is_used_and_said_failures_reported(study_dir, tmp_path):
    db = study_dir / "lab" / "mrdflow.sqlite"
    with ResultStore(db) as store:
        # R2 re-analyses P02's last marrow (now positive); R3 fails on it again and fails a new sample
        _begin(store, "R2", "2026-02-01T00:00:00Z")
        _record(store, "R2", _result("P02-2025-02-18-BM", "POSITIVE", 2.5e-4, 3e-6))
        _begin(store, "R3", "2026-03-01T00:00:00Z")
        _record(store, "R3", SampleResult.failed("P02-2025-02-18-BM", ["/lab/x.fcs"], "x.fcs: truncated DATA"))
        _record(store, "R3", SampleResult.failed("P03-2025-06-01-BM", ["/lab/y.fcs"], "y.fcs: not an FCS file"))
    with (study_dir / "mrd_samples.csv").open("a") as f:
        f.write("P03-2025-06-01-BM,P03,2025-06-01,BM,NGF\n")
    mrd = pd.read_csv(study_dir / "mrd_table.csv", dtype=str, keep_default_na=False)
    assert "2025-02-18" in set(mrd.loc[mrd["patient_id"] == "P02", "date"])  # the sample exists in the example
    res = run_study(study_dir / "study.yaml", tmp_path / "out", html=False)
    used = res.mrd_view.set_index("sample_id")
    assert used.loc["P02-2025-02-18-BM", "run_id"] == "R2"
    assert used.loc["P02-2025-02-18-BM", "mrd_status"] == "POSITIVE"
    assert "P03-2025-06-01-BM" not in used.index
    w = json.loads((tmp_path / "out" / "endpoints.json").read_text())["warnings"]
    assert any("'P02-2025-02-18-BM': ok analyses in 2 runs (R1, R2); using run R2 (latest)" in x for x in w)
    assert any("'P02-2025-02-18-BM': failed in the later run R3 (x.fcs: truncated DATA)" in x for x in w)
    assert any("'P03-2025-06-01-BM' (P03, 2025-06-01): analysis failed (latest run R3: y.fcs: not an FCS file); "
               "excluded" in x for x in w)
    assert res.endpoints["mrd_source"]["failed_excluded"] == ["P03-2025-06-01-BM"]
    assert res.mrd["P02"].timeline[-1][1] == "positive"  # the newer analysis changed the patient's MRD


def test_resume_copy_is_the_same_analysis_not_a_second_run():
    a = StoredResult("S", "R1", 0, "ok", "", 0.0, 1e-6, "NEGATIVE", "BM", "R1")
    b = StoredResult("S", "R2", 1, "ok", "", 0.0, 1e-6, "NEGATIVE", "BM", "R1")  # --resume copy of R1's analysis
    chosen, failed, notes = select_latest([b, a])
    assert chosen["S"] is b and not failed and notes == []
    c = StoredResult("S", "R3", 2, "ok", "", 1e-3, 1e-6, "POSITIVE", "BM", "R3")
    chosen, _, notes = select_latest([a, c, b])
    assert chosen["S"] is c and notes == ["sample 'S': ok analyses in 2 runs (R1, R3); using run R3 (latest)"]


def test_unmapped_sample_is_an_error_naming_sample_and_map(study_dir, tmp_path):
    with ResultStore(study_dir / "lab" / "mrdflow.sqlite") as store:
        _record(store, "R1", _result("QC-BEADS-01"))
    with pytest.raises(StudyError) as exc:
        run_study(study_dir / "study.yaml", tmp_path / "out", html=False)
    msg = str(exc.value)
    assert "'QC-BEADS-01' (run R1)" in msg and "mrd_samples.csv (table 'mrd_samples', column 'sample_id')" in msg
    assert "ignore_unmapped" in msg
    _set_source(study_dir, {"store": "lab/mrdflow.sqlite", "samples": "mrd_samples.csv", "ignore_unmapped": True})
    res = run_study(study_dir / "study.yaml", tmp_path / "out", html=False)
    assert "QC-BEADS-01" not in set(res.mrd_view["sample_id"]) and len(res.mrd_view) == 21
    assert res.endpoints["mrd_source"]["unmapped_excluded"] == ["QC-BEADS-01"]
    assert any("'QC-BEADS-01' (run R1): not in the sample map" in w for w in res.endpoints["warnings"])


def test_mapped_sample_without_result_is_reported(study_dir, tmp_path):
    with (study_dir / "mrd_samples.csv").open("a") as f:
        f.write("P04-LOST,P04,2024-09-01,BM,\n")
    res = run_study(study_dir / "study.yaml", tmp_path / "out", html=False)
    assert any(w.startswith("sample 'P04-LOST' (") and "row 22): no result in" in w for w in res.endpoints["warnings"])


# -- sample maps --------------------------------------------------------------------------------------------------

def test_pattern_map_with_compact_dates_and_tissue_from_the_store(tmp_path):
    d = tmp_path / "study"
    shutil.copytree(EXAMPLE, d)
    with ResultStore(d / "store.sqlite") as store:
        _begin(store, "R1", "2026-01-01T00:00:00Z")
        _record(store, "R1", _result("P01_20240414_BM", "NEGATIVE", 0.0, 4.5e-6))
        _record(store, "R1", _result("P01_20240414", "NEGATIVE", 0.0, 5e-6, specimen="peripheral_blood"))
        _record(store, "R1", _result("P02_20240601_PB", "POSITIVE", 1e-3, 2e-6, specimen="bone_marrow"))
    pattern = r"(?P<patient_id>P\d\d)_(?P<date>\d{8})(_(?P<tissue>BM|PB))?"
    _set_source(d, {"store": "store.sqlite", "sample_id_pattern": pattern, "date_format": "%Y%m%d"})
    src = load_study(d / "study.yaml").mrd_source
    view = mrd_view(src, _patients(d))
    got = view.frame.set_index("sample_id")[["patient_id", "date", "tissue", "method", "lod"]]
    assert got.to_dict("index") == {
        "P01_20240414": {"patient_id": "P01", "date": "2024-04-14", "tissue": "PB", "method": "NGF", "lod": "5e-06"},
        "P01_20240414_BM": {"patient_id": "P01", "date": "2024-04-14", "tissue": "BM", "method": "NGF",
                            "lod": "4.5e-06"},
        "P02_20240601_PB": {"patient_id": "P02", "date": "2024-06-01", "tissue": "PB", "method": "NGF",
                            "lod": "2e-06"},
    }
    assert view.warnings == ["sample 'P02_20240601_PB': the map says PB but run R1 analysed it as BM; using PB"]


def test_pattern_errors_name_sample_and_pattern(tmp_path):
    d = tmp_path / "study"
    shutil.copytree(EXAMPLE, d)
    pattern = r"(?P<patient_id>P\d\d)_(?P<date>\d{8})"
    for sid, expected in (("P77_20240101", "unknown patient 'P77'"),
                          ("P01_20241399", "group 'date' is '20241399', expected a date in the format '%Y%m%d'"),
                          ("P01_19990101", "is before the diagnosis date")):
        db = d / f"{sid}.sqlite"
        with ResultStore(db) as store:
            _begin(store, "R1", "2026-01-01T00:00:00Z")
            _record(store, "R1", _result(sid))
        _set_source(d, {"store": db.name, "sample_id_pattern": pattern, "date_format": "%Y%m%d"})
        with pytest.raises(StudyError) as exc:
            run_study(d / "study.yaml", tmp_path / "out", html=False)
        assert f"sample '{sid}' (field 'mrd_source.sample_id_pattern'" in str(exc.value)
        assert expected in str(exc.value)


@pytest.mark.parametrize("line, expected", [
    ("P01-2024-02-12-BM,P01,2024-02-12,BM,NGF", "row 22, column 'sample_id': duplicate sample 'P01-2024-02-12-BM' "
                                                "(first at row 1)"),
    ("X1,P99,2024-02-12,BM,NGF", "row 22, column 'patient_id': unknown patient 'P99'"),
    ("X1,P01,2024-02-30,BM,NGF", "row 22, column 'date': expected an ISO date YYYY-MM-DD, found '2024-02-30'"),
    ("X1,P01,2024-02-12,blood,NGF", "row 22, column 'tissue': expected one of BM, PB"),
    ("X1,P01,2000-01-01,BM,NGF", "row 22, column 'date': date 2000-01-01 is before the diagnosis date"),
])
def test_bad_sample_map_rows_name_table_row_and_column(study_dir, tmp_path, line, expected):
    with (study_dir / "mrd_samples.csv").open("a") as f:
        f.write(line + "\n")
    with pytest.raises(StudyError) as exc:
        run_study(study_dir / "study.yaml", tmp_path / "out", html=False)
    assert "mrd_samples.csv (table 'mrd_samples'), " + expected in str(exc.value)


def test_empty_tissue_needs_a_recorded_specimen(study_dir, tmp_path):
    text = (study_dir / "mrd_samples.csv").read_text().replace("P01-2024-02-12-BM,P01,2024-02-12,BM,NGF",
                                                                "P01-2024-02-12-BM,P01,2024-02-12,,")
    (study_dir / "mrd_samples.csv").write_text(text)
    res = run_study(study_dir / "study.yaml", tmp_path / "out", html=False)  # the store says bone_marrow
    assert res.mrd_view.set_index("sample_id").loc["P01-2024-02-12-BM", "tissue"] == "BM"
    # results.csv has no specimen: the map must give the tissue
    csv = study_dir / "run1" / "results.csv"
    write_results_csv(csv, [_result("P01-2024-02-12-BM", "POSITIVE", 3.1e-3, 4e-6)])
    _set_source(study_dir, {"results_csv": "run1/results.csv", "samples": "mrd_samples.csv"})
    with pytest.raises(StudyError, match=r"mrd_samples'\), row 1, column 'tissue': expected BM or PB for sample "
                                         r"'P01-2024-02-12-BM', found an empty cell"):
        run_study(study_dir / "study.yaml", tmp_path / "out", html=False)


# -- results.csv --------------------------------------------------------------------------------------------------

def test_results_csv_runs_ordered_by_run_json(tmp_path):
    new, old = tmp_path / "b" / "results.csv", tmp_path / "a" / "results.csv"
    write_results_csv(new, [_result("S1", "POSITIVE", 1e-3, 1e-6)])
    write_results_csv(old, [_result("S1", "NEGATIVE", 0.0, 1e-6), _result("S2")])
    (new.parent / "run.json").write_text(json.dumps({"run_id": "NEW", "started": "2026-05-01T00:00:00Z"}))
    (old.parent / "run.json").write_text(json.dumps({"run_id": "OLD", "started": "2026-04-01T00:00:00Z"}))
    records = read_results_csv([new, old])  # listed newest first: run.json decides
    chosen, _, notes = select_latest(records)
    assert chosen["S1"].run_id == "NEW" and chosen["S1"].mrd_status == "POSITIVE" and chosen["S2"].run_id == "OLD"
    assert chosen["S1"].mrd_fraction == 1e-3 and math.isnan(_result("x", lod=math.nan).lod)
    assert notes == ["sample 'S1': ok analyses in 2 runs (OLD, NEW); using run NEW (latest)"]
    (old.parent / "run.json").unlink()  # without every run.json: list order (oldest first)
    chosen, _, _ = select_latest(read_results_csv([new, old]))
    assert chosen["S1"].run_id == str(old)


def test_bad_results_csv_names_file_row_and_column(tmp_path):
    p = tmp_path / "results.csv"
    write_results_csv(p, [_result("S1"), _result("S2")])
    p.write_text(p.read_text().replace(",NEGATIVE,", ",NEGATIV,", 1))
    with pytest.raises(StudyError, match=r"results.csv \(table 'results'\), row 1, column 'mrd_status': "
                                         r"expected one of NEGATIVE"):
        read_results_csv([p])
    p.write_text("sample_id,status\nS1,ok\n")
    with pytest.raises(StudyError, match=r"missing required column\(s\) 'mrd_fraction', 'lod', 'mrd_status'"):
        read_results_csv([p])


# -- STUDY.yaml and sources ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("source, expected", [
    ({"store": "lab/mrdflow.sqlite", "results_csv": "r.csv", "samples": "mrd_samples.csv"}, "exactly one of 'store'"),
    ({"store": "lab/mrdflow.sqlite"}, "exactly one of 'samples'"),
    ({"store": "lab/mrdflow.sqlite", "sample_id_pattern": "(?P<patient_id>P..)"}, "lacks the named group(s) ['date']"),
    ({"store": "lab/mrdflow.sqlite", "sample_id_pattern": "(?P<date>x"}, "not a valid regular expression"),
    ({"store": "lab/missing.sqlite", "samples": "mrd_samples.csv"}, "field 'mrd_source.store': file"),
    ({"store": "lab/mrdflow.sqlite", "samples": "mrd_samples.csv", "runs": "latest"}, "mrd_source.runs"),
])
def test_invalid_mrd_source_fields(study_dir, source, expected):
    _set_source(study_dir, source)
    with pytest.raises(StudyError) as exc:
        load_study(study_dir / "study.yaml")
    assert expected in str(exc.value)


def test_a_file_that_is_not_a_store(study_dir, tmp_path):
    (study_dir / "lab" / "other.sqlite").write_text("not a database")
    _set_source(study_dir, {"store": "lab/other.sqlite", "samples": "mrd_samples.csv"})
    with pytest.raises(StudyError, match=r"field 'mrd_source.store': .*other.sqlite: cannot read the results store"):
        run_study(study_dir / "study.yaml", tmp_path / "out", html=False)


def test_store_rows_add_to_the_mrd_table_but_never_twice(study_dir, tmp_path):
    # NGS results from a central lab in the mrd table, NGF from the store
    (study_dir / "ngs.csv").write_text("patient_id,date,tissue,method,mrd_fraction,lod,mrd_status\n"
                                       "P08,2024-09-01,BM,NGS,0,1e-6,NEGATIVE\n")
    _set_source(study_dir, {"store": "lab/mrdflow.sqlite", "samples": "mrd_samples.csv"}, mrd_table="ngs.csv")
    res = run_study(study_dir / "study.yaml", tmp_path / "out", html=False)
    assert len(res.tables.mrd) == 22 and res.mrd["P08"].negative
    assert res.endpoints["mrd_source"]["table"].endswith("ngs.csv")
    (study_dir / "ngs.csv").write_text((study_dir / "mrd_table.csv").read_text())
    with pytest.raises(StudyError) as exc:
        run_study(study_dir / "study.yaml", tmp_path / "out", html=False)
    assert "(sample 'P01-2024-02-12-BM'): the MRD assessment of patient 'P01' on 2024-02-12 (BM, NGF) is also in" in \
        str(exc.value) and "ngs.csv (table 'mrd'), row 1" in str(exc.value)


# -- a real `mrdflow run` -----------------------------------------------------------------------------------------

def test_a_real_run_store_and_its_results_csv_give_the_same_mrd_rows(tmp_path):
    """`mrdflow run` on two demo samples named <patient>_<yyyymmdd>_<tissue> and one truncated sample; the study
    maps them by a pattern on the sample id."""
    from tests.batch_data import SAMPLE_FCS, copy_sample, write_panel

    fcs = tmp_path / "lab" / "fcs"
    copy_sample("DEMO01", "P01_20240414_BM", fcs)
    copy_sample("DEMO05", "P05_20250228_BM", fcs)
    copy_sample("DEMO02", "P02_20240519_BM", fcs)
    data = (SAMPLE_FCS / "DEMO02_T1.fcs").read_bytes()
    (fcs / "P02_20240519_BM_T1.fcs").write_bytes(data[: len(data) // 2])
    out = tmp_path / "lab" / "out"
    assert main(["run", str(write_panel(tmp_path / "lab")), "--out", str(out), "--workers", "0", "--no-reports"]) == 1
    results = pd.read_csv(out / "results.csv", dtype=str, keep_default_na=False).set_index("sample_id")

    d = tmp_path / "study"
    shutil.copytree(EXAMPLE, d)
    pattern = {"sample_id_pattern": r"(?P<patient_id>P\d\d)_(?P<date>\d{8})_(?P<tissue>BM|PB)", "date_format": "%Y%m%d"}
    views = {}
    for kind, where in (("store", out / "mrdflow.sqlite"), ("results_csv", out / "results.csv")):
        _set_source(d, {kind: str(where), **pattern})
        res = run_study(d / "study.yaml", tmp_path / kind, html=False)
        views[kind] = res.mrd_view
        assert res.endpoints["mrd_source"]["failed_excluded"] == ["P02_20240519_BM"]
        assert any(w.startswith("sample 'P02_20240519_BM' (P02, 2024-05-19): analysis failed") and
                   "DATA truncated" in w for w in res.endpoints["warnings"])
    pd.testing.assert_frame_equal(views["store"], views["results_csv"])
    view = views["store"].set_index("sample_id")
    assert sorted(view.index) == ["P01_20240414_BM", "P05_20250228_BM"]
    for sid, row in view.iterrows():
        assert row["mrd_status"] == results.loc[sid, "mrd_status"]
        assert float(row["mrd_fraction"]) == float(results.loc[sid, "mrd_fraction"])  # full precision kept
        assert float(row["lod"]) == float(results.loc[sid, "lod"])
    assert view.loc["P05_20250228_BM", ["patient_id", "date", "tissue"]].tolist() == ["P05", "2025-02-28", "BM"]


def test_cli_and_report_show_the_source_and_its_notes(study_dir, tmp_path, capsys):
    with ResultStore(study_dir / "lab" / "mrdflow.sqlite") as store:
        _begin(store, "R2", "2026-02-01T00:00:00Z")
        _record(store, "R2", SampleResult.failed("<b>S9</b>", ["/lab/s9.fcs"], "s9.fcs: not an FCS file"))
    assert main(["endpoints", str(study_dir / "study.yaml"), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "MRD from the results store" in printed and "21 assessment(s) from 22 sample(s), 1 failed" in printed
    assert "warning: sample '<b>S9</b>': analysis failed (latest run R2: s9.fcs: not an FCS file); excluded" in printed
    assert "mrd_source.csv" in printed
    html = (tmp_path / "out" / "trial_report.html").read_text()
    assert "MRD results from the results store" in html and "mapped by" in html and "mrd_samples.csv" in html
    assert "&lt;b&gt;S9&lt;/b&gt;" in html and "<b>S9</b>" not in html


def test_two_samples_mapped_to_one_assessment_is_an_error(study_dir, tmp_path):
    with ResultStore(study_dir / "lab" / "mrdflow.sqlite") as store:
        _record(store, "R1", _result("P01-REPEAT", "POSITIVE", 1e-4, 4e-6))
    with (study_dir / "mrd_samples.csv").open("a") as f:
        f.write("P01-REPEAT,P01,2024-04-14,BM,NGF\n")
    with pytest.raises(StudyError) as exc:
        run_study(study_dir / "study.yaml", tmp_path / "out", html=False)
    msg = str(exc.value)
    assert "samples 'P01-2024-04-14-BM' (" in msg and "row 2) and 'P01-REPEAT' (" in msg and "row 22)" in msg
    assert "both mapped to the MRD assessment of patient 'P01' on 2024-04-14 (BM, NGF)" in msg


_fraction = st.one_of(st.just(math.nan), st.floats(0.0, 1.0, allow_subnormal=True))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.sampled_from(["NEGATIVE", "POSITIVE", "POSITIVE_BELOW_LLOQ", "NOT_EVALUABLE"]),
                               _fraction, _fraction, st.booleans()), min_size=1, max_size=6))
def test_store_and_results_csv_read_back_every_value_exactly(tmp_path_factory, rows):
    """Whatever a run records — any fraction and LOD to the last bit, NaN, failures — both readers give it back."""
    d = tmp_path_factory.mktemp("rt")
    results = [_result(f"S{i}", status, frac, lod) if ok else SampleResult.failed(f"S{i}", ["/x.fcs"], f"error {i}")
               for i, (status, frac, lod, ok) in enumerate(rows)]
    with ResultStore(d / "s.sqlite") as store:
        _begin(store, "R1", "2026-01-01T00:00:00Z")
        for r in results:
            _record(store, "R1", r)
    write_results_csv(d / "results.csv", results)
    for records in (read_store(d / "s.sqlite"), read_results_csv([d / "results.csv"])):
        got = {r.sample_id: r for r in records}
        assert sorted(got) == sorted(r.sample_id for r in results)
        for want in results:
            r = got[want.sample_id]
            assert (r.status, r.error, r.mrd_status) == (want.status, want.error, want.mrd_status)
            for a, b in ((r.mrd_fraction, want.mrd_fraction), (r.lod, want.lod)):
                assert (math.isnan(a) and math.isnan(b)) or a == b
