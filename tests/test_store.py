"""The results store: exact round trip of results, resume lookup, copying into a new run, atomic writes."""

from __future__ import annotations

import csv
import math
import sqlite3

import pytest

from mrdflow.result import POPULATION_COLUMNS, RESULTS_COLUMNS, PopulationCount, SampleResult
from mrdflow.store import ResultStore, StoreError, write_populations_csv, write_results_csv
from tests.batch_data import sample_result

TEMPLATE = {"path": "/t.yaml", "sha256": "t" * 64}


def _store(tmp_path, runs=("r1",)) -> ResultStore:
    store = ResultStore(tmp_path / "sub" / "store.sqlite")
    for r in runs:
        store.begin_run(r, started=f"2026-01-01T00:00:0{len(r)}Z", panel={"path": "/p.yaml", "sha256": "p" * 64},
                        template=TEMPLATE, output_dir=str(tmp_path), mrdflow_version="0.1.0")
    return store


def _record(store, run, result, key="k1", at="2026-01-01T00:00:01Z"):
    store.record(run, result, tubes={"tube1": result.files[0], "tube2": result.files[1]},
                 file_sha256={"tube1": "a" * 64, "tube2": "b" * 64}, input_key=key, seconds=1.5, analysed_at=at,
                 worker="w1", report_path="/r.html")


def test_results_round_trip_exactly_including_nan_and_float_digits(tmp_path):
    original = sample_result("S1", status="POSITIVE")
    failed = SampleResult.failed("S0", ["/data/x.fcs", "/data/y.fcs"], "x.fcs: not an FCS file")
    with _store(tmp_path) as store:
        _record(store, "r1", original)
        _record(store, "r1", failed)
        back = {r.sample_id: r for r in store.results("r1")}
    assert list(back) == ["S0", "S1"]  # sorted by sample id
    s1 = back["S1"]
    assert s1.to_row() == original.to_row()
    assert s1.population_rows()[:2] == original.population_rows()[:2]
    assert math.isnan(s1.populations[1].pct_of_evaluable) and math.isnan(s1.populations[2].pct_of_parent)
    assert s1.details["ratio"] == 0.1 + 0.2 and s1.details["nan_value"] is None
    assert back["S0"].to_row() == failed.to_row()


def test_csv_exports_have_the_contract_columns_and_reread_identically(tmp_path):
    results = [sample_result("S1", status="POSITIVE"), sample_result("S2")]
    write_results_csv(tmp_path / "results.csv", results)
    write_populations_csv(tmp_path / "populations.csv", results)
    with open(tmp_path / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == RESULTS_COLUMNS
    assert rows[0]["files"] == "S1_T1.fcs;S1_T2.fcs" and rows[0]["qc_flags"] == "flow_rate_anomaly;spillover_missing"
    assert float(rows[0]["mrd_fraction"]) == results[0].mrd_fraction  # repr keeps every digit
    with open(tmp_path / "populations.csv", newline="") as fh:
        pops = list(csv.DictReader(fh))
    assert tuple(pops[0]) == POPULATION_COLUMNS and len(pops) == 6
    assert pops[1]["pct_of_evaluable"] == ""  # NaN is an empty cell
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_resume_lookup_matches_the_input_key_and_ignores_failed_results(tmp_path):
    with _store(tmp_path, runs=("r1", "r2")) as store:
        _record(store, "r1", sample_result("S1"), key="k1", at="2026-01-01T00:00:01Z")
        _record(store, "r2", sample_result("S1"), key="k1", at="2026-01-01T00:00:05Z")
        _record(store, "r2", SampleResult.failed("S2", ["a", "b"], "boom"), key="k2")
        assert store.find_reusable("S1", "k-other") is None
        hit = store.find_reusable("S1", "k1")
        assert hit.run_id == "r2" and hit.origin_run == "r2"  # the most recent
        assert store.find_reusable("S2", "k2") is None and not store.has_candidate("S2")


def test_copy_sample_into_a_new_run_keeps_rows_populations_flags_and_origin(tmp_path):
    with _store(tmp_path, runs=("r1", "r2", "r3")) as store:
        _record(store, "r1", sample_result("S1", status="POSITIVE"))
        store.copy_sample(store.find_reusable("S1", "k1"), "r2", report_path="/new.html")
        store.copy_sample(store.find_reusable("S1", "k1"), "r3", report_path=None)
        assert store.results("r3")[0].to_row() == store.results("r1")[0].to_row()
        assert store.results("r3")[0].population_rows() == store.results("r1")[0].population_rows()
        info = store.sample_info("r3")["S1"]
        assert info["reused_from"] == "r1" and info["file_sha256"]["tube2"] == "b" * 64  # origin, not r2
        assert store.flagged("spillover_missing") == [("r1", "S1"), ("r2", "S1"), ("r3", "S1")]


def test_a_failed_write_leaves_no_partial_sample(tmp_path):
    with _store(tmp_path) as store:
        bad = sample_result("S1")
        # the sample row is inserted first, then this population fails: the whole sample must roll back
        bad.populations.append(PopulationCount("tube2", "broken", "pc", "not a count", 0.0, 0.0))
        with pytest.raises(ValueError):
            _record(store, "r1", bad)
        assert store.results("r1") == []
        conn = sqlite3.connect(store.path)
        assert conn.execute("SELECT COUNT(*) FROM samples").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM populations").fetchone() == (0,)


def test_record_replaces_a_sample_of_the_same_run(tmp_path):
    with _store(tmp_path) as store:
        _record(store, "r1", SampleResult.failed("S1", ["a", "b"], "first try"))
        _record(store, "r1", sample_result("S1"))
        (only,) = store.results("r1")
        assert only.ok and len(only.populations) == 3


def test_finish_run_keeps_the_provenance(tmp_path):
    with _store(tmp_path) as store:
        store.finish_run("r1", finished="2026-01-01T01:00:00Z", provenance={"run_id": "r1", "x": [1, 2]})
        (run,) = store.runs()
    assert run["finished"] == "2026-01-01T01:00:00Z" and '"x": [1, 2]' in run["provenance_json"]


def test_a_file_that_is_not_a_store_is_a_clear_error(tmp_path):
    bad = tmp_path / "notes.sqlite"
    bad.write_text("these are my notes, not a database\n" * 100)
    with pytest.raises(StoreError, match="notes.sqlite.*cannot open the results store"):
        ResultStore(bad)
