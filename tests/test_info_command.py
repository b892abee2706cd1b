"""`mrdflow info`: a summary per file, errors reported per file, exit code 1 when any file failed."""

from __future__ import annotations

import json

import numpy as np

from mrdflow.cli import main
from mrdflow.fcs import Spillover, write_fcs


def _good(tmp_path):
    sp = Spillover(["FL1-A", "FL2-A"], np.array([[1.0, 0.1], [0.2, 1.0]]), "$SPILLOVER")
    return write_fcs(tmp_path / "good.fcs", np.ones((5, 3), np.float32), ["FSC-A", "FL1-A", "FL2-A"],
                     markers=[None, "CD38", "CD45\x1b[31m"], spillover=sp, keywords={"$CYT": "FACSCanto"})


def test_text_summary_lists_channels_spillover_and_goes_on_after_a_bad_file(tmp_path, capsys):
    good = _good(tmp_path)
    bad = tmp_path / "bad.fcs"
    bad.write_bytes(b"not an fcs file at all" * 4)
    assert main(["info", str(bad), str(good)]) == 1
    out = capsys.readouterr().out
    assert f"== {bad}\n  ERROR: not an FCS file" in out
    assert "FCS3.1 · $DATATYPE F · $BYTEORD 1,2,3,4 · 5 events × 3 channels · 1 data set" in out
    assert "spillover: $SPILLOVER (2 channels)" in out
    assert "CD38" in out and "262144" in out
    assert "\x1b" not in out  # control characters from a file never reach the terminal raw


def test_json_output_and_exit_zero_when_all_files_read(tmp_path, capsys):
    good = _good(tmp_path)
    assert main(["info", "--json", str(good)]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["ok"] and record["n_events"] == 5 and record["n_datasets"] == 1
    assert [c["marker"] for c in record["channels"]] == [None, "CD38", "CD45\x1b[31m"]
    assert record["spillover"] == {"keyword": "$SPILLOVER", "channels": ["FL1-A", "FL2-A"]}
    assert record["warnings"] == []


def test_dataset_beyond_the_last_is_a_per_file_error(tmp_path, capsys):
    good = _good(tmp_path)
    assert main(["info", "--json", "--dataset", "3", str(good)]) == 1
    (record,) = json.loads(capsys.readouterr().out)
    assert not record["ok"] and "data set 3 requested" in record["error"]
