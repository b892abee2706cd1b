"""The results.csv row contract (DESIGN.md §3.2): columns, order and formatting users' tools rely on."""

import json
import math

from mrdflow.result import RESULTS_COLUMNS, PopulationCount, SampleResult


def test_results_columns_are_the_public_contract_in_order():
    assert RESULTS_COLUMNS == (
        "sample_id", "files", "status", "error", "n_events_acquired", "n_events_evaluable", "n_plasma_cells",
        "n_normal_pc", "n_aberrant_pc", "mrd_fraction", "lod", "lloq", "mrd_status", "sensitivity_met",
        "clonality", "hemodilution", "qc_flags",
    )


def test_row_joins_file_names_and_flags_and_writes_booleans_as_words():
    r = SampleResult(
        sample_id="S1", files=["/data/run/S1_T1.fcs", "/data/run/S1_T2.fcs"], n_events_evaluable=2_000_000,
        n_aberrant_pc=60, mrd_fraction=3e-5, lod=1e-5, lloq=2.5e-5, mrd_status="POSITIVE", sensitivity_met=True,
        qc_flags=["flow_rate_anomaly", "low_events"],
    )
    row = r.to_row()
    assert list(row) == list(RESULTS_COLUMNS)
    assert row["files"] == "S1_T1.fcs;S1_T2.fcs"
    assert row["qc_flags"] == "flow_rate_anomaly;low_events"
    assert row["sensitivity_met"] == "true"


def test_failed_row_keeps_the_error_and_leaves_numbers_empty():
    r = SampleResult.failed("S2", ["x.fcs"], "x.fcs: truncated DATA segment")
    row = r.to_row()
    assert row["status"] == "failed" and "truncated" in row["error"]
    assert row["mrd_fraction"] == "" and row["mrd_status"] == "NOT_EVALUABLE"


def test_json_dict_has_no_nan_and_round_trips_through_json():
    r = SampleResult(sample_id="S3", files=["a.fcs"], populations=[
        PopulationCount("T1", "plasma_cells", "evaluable", 0, 0.0, math.nan)])
    d = json.loads(json.dumps(r.to_json_dict(), allow_nan=False))
    assert d["mrd_fraction"] is None and d["populations"][0]["pct_of_evaluable"] is None
