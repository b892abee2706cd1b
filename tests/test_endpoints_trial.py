"""End to end: `mrdflow endpoints examples/study/study.yaml --out DIR` on the synthetic 9-patient trial, whose
scenarios (scripts/make_example_study.py) fix the expected results by construction."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from mrdflow.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "study"


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    d = tmp_path_factory.mktemp("endpoints")
    assert main(["endpoints", str(EXAMPLE / "study.yaml"), "--out", str(d)]) == 0
    return d


def test_outputs_written(out):
    for name in ("patient_response.csv", "assessment_response.csv", "endpoints.json", "trial_report.html"):
        assert (out / name).stat().st_size > 0
    assert not list(out.glob(".*.tmp"))


def test_patient_level_results_follow_the_scenarios(out):
    p = pd.read_csv(out / "patient_response.csv", dtype=str, keep_default_na=False).set_index("patient_id")
    assert p["best_response"].to_dict() == {
        "P01": "sCR", "P02": "CR", "P03": "VGPR", "P04": "PR", "P05": "CR", "P06": "VGPR", "P07": "sCR",
        "P08": "SD", "P09": "NE"}
    assert p.loc["P03", "pd_criteria"] == "dFLC" and p.loc["P04", "pd_criteria"] == "serum"
    assert p.loc["P05", "pd_date"] == ""  # the day-90 PD was not confirmed (next value fell again)
    assert p.loc["P07", "relapse_from_cr_date"] < p.loc["P07", "pd_date"]  # relapse from CR first, PD later
    assert p.loc["P01", "sustained_mrd_negative"] == "True" and p.loc["P02", "sustained_mrd_negative"] == "False"
    assert p.loc["P09", "infused"] == "False" and p.loc["P09", "in_efficacy_population"] == "False"
    assert p.loc["P08", "auc0_28"] == "" and "not evaluable" in p.loc["P08", "auc0_28_flag"]


def test_summary_numbers(out):
    e = json.loads((out / "endpoints.json").read_text())
    assert (e["n_enrolled"], e["n_infused"]) == (9, 8)
    assert (e["orr"]["n"], e["orr"]["denominator"]) == (7, 8)
    assert (e["crr"]["n"], e["scr_rate"]["n"], e["vgpr_or_better_rate"]["n"]) == (4, 2, 6)
    assert e["orr"]["ci95_low"] == pytest.approx(0.4735, abs=1e-4)  # exact CI for 7/8
    assert (e["mrd_negative_rate_itt"]["n"], e["mrd_negative_rate_itt"]["denominator"]) == (4, 8)
    assert (e["mrd_negative_rate_evaluable"]["n"], e["mrd_negative_rate_evaluable"]["denominator"]) == (4, 7)
    assert e["sustained_mrd_negative_rate_itt"]["n"] == 1
    assert e["pfs"]["n_events"] == 4 and e["os"]["n_events"] == 2 and e["dor"]["n"] == 7
    assert e["median_os_months"] is None and e["median_followup_months"] > 12
    assert e["crs_rate"]["n"] == 7 and e["crs_grade_max"] == 3 and e["icans_rate"]["n"] == 2
    assert e["icans_grade_max"] == 3
    assert e["ae_grade3plus_rate"]["Neutropenia"]["n"] == 8 and "Anaemia" in e["ae_any_grade_rate"]
    assert e["ae_any_grade_rate"]["Anaemia"]["n"] == 1  # P09's pre-infusion anaemia is not a TEAE
    assert e["tmax_median_days"] == 10 and e["n_auc0_28_evaluable"] == 7 and e["cmax_range"][0] > 0
    assert sum(e["frailty_baseline_counts"][c] for c in ("fit", "intermediate", "frail")) == 9
    assert e["rules"]["response_criteria"] == "pcl2013"


def test_report_reads_like_an_abstract(out):
    html = (out / "trial_report.html").read_text()
    e = json.loads((out / "endpoints.json").read_text())
    assert "<h2>Results</h2>" in html and e["results_text"][:60] in html.replace("&amp;", "&")
    text = e["results_text"]
    for phrase in ("Of 9 enrolled patients, 8 received", "overall response rate", "7/8 (88%; 95% CI 47–100%)",
                   "MRD negativity", "Median PFS", "CRS occurred in 7/8", "Cmax"):
        assert phrase in text
    assert html.count("data:image/png;base64,") == 3  # KM, swimmer, kinetics


def test_report_escapes_table_text(tmp_path):
    d = tmp_path / "study"
    shutil.copytree(EXAMPLE, d)
    for f in d.glob("*.csv"):
        f.write_text(f.read_text().replace("\nP02,", "\n<b>P02</b>,"))
    rc = main(["endpoints", str(d / "study.yaml"), "--out", str(tmp_path / "out")])
    assert rc == 0
    html = (tmp_path / "out" / "trial_report.html").read_text()
    assert "&lt;b&gt;P02&lt;/b&gt;" in html and "<b>P02</b>" not in html


def test_bad_table_is_a_clear_cli_error(tmp_path, capsys):
    d = tmp_path / "study"
    shutil.copytree(EXAMPLE, d)
    lines = (d / "mrd.csv").read_text().splitlines()
    fields = lines[3].split(",")
    fields[2] = "CSF"
    lines[3] = ",".join(fields)
    (d / "mrd.csv").write_text("\n".join(lines) + "\n")
    assert main(["endpoints", str(d / "study.yaml"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "table 'mrd'), row 3, column 'tissue': expected one of BM, PB" in err
