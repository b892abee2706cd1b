"""``mrdflow run``: failure isolation on broken files, exit codes, outputs, and kill + ``--resume``.

The batches are copies of the bundled ``sample_fcs/`` demo files (35–75 k events per tube) and corrupted variants
of them, analysed in-process (``--workers 0``, the same task and recording code as on a cluster) to stay fast;
``tests/test_batch_dask.py`` runs them on real Dask clusters.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mrdflow.atomic import TMP_MARKER
from mrdflow.cli import main
from tests.batch_data import REPO, copy_sample, make_broken_samples, write_panel

GOOD = {"GOOD01": "DEMO01", "GOOD02": "DEMO02", "GOOD04": "DEMO04", "GOOD05": "DEMO01"}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def leftovers(folder: Path) -> list[Path]:
    """Temporaries or SQLite journals a killed run could leave behind."""
    return [p for p in folder.rglob("*") if TMP_MARKER in p.name or p.name.endswith(("-journal", "-wal"))]


@pytest.fixture(scope="module")
def good_batch(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("good")
    for dst, src in GOOD.items():
        copy_sample(src, dst, folder / "fcs")
    return write_panel(folder)


@pytest.fixture(scope="module")
def reference(good_batch) -> Path:
    """An uninterrupted run of the good batch."""
    out = good_batch.parent / "reference"
    assert main(["run", str(good_batch), "--out", str(out), "--workers", "0"]) == 0
    return out


def test_broken_files_fail_alone_with_specific_errors(tmp_path, capsys):
    fcs = tmp_path / "fcs"
    copy_sample("DEMO01", "GOOD01", fcs)
    kinds = make_broken_samples(fcs)
    panel = write_panel(tmp_path)
    out = tmp_path / "out"
    assert main(["run", str(panel), "--out", str(out), "--workers", "0"]) == 1
    rows = {r["sample_id"]: r for r in read_csv(out / "results.csv")}
    assert sorted(rows) == sorted(["GOOD01", *kinds])
    assert rows["GOOD01"]["status"] == "ok" and rows["GOOD01"]["error"] == ""
    expected = {
        "BADTRUNC": "DATA truncated",
        "BADNOTFCS": "not an FCS file",
        "BADMARKER": "marker 'CD19' is missing from file",
        "BADNAN": "non-finite value(s) (NaN or ±inf) in channel FITC-A (CD38)",
        "BADSPILL": "spillover matrix is singular",
    }
    for sid, phrase in expected.items():
        assert rows[sid]["status"] == "failed", sid
        assert phrase in rows[sid]["error"], (sid, rows[sid]["error"])
        assert f"{sid}_T1.fcs" in rows[sid]["error"], "the error names the broken file"
    printed = capsys.readouterr().out
    assert "6/6" in printed and "FAILED" in printed
    # every sample has a report, the batch page links them, run.json records every input's SHA-256
    assert {p.name for p in (out / "report").iterdir()} == {"index.html", *(f"{s}.html" for s in rows)}
    run = json.loads((out / "run.json").read_text())
    assert run["summary"] == {"samples": 6, "ok": 1, "failed": 5, "reused": 0}
    entry = next(s for s in run["samples"] if s["sample_id"] == "BADNAN")
    t1 = next(f for f in entry["files"] if f["tube"] == "tube1")
    assert t1["sha256"] == hashlib.sha256((fcs / "BADNAN_T1.fcs").read_bytes()).hexdigest()
    # every input's hash, whether taken while the pipeline read the file (analysed, or failing after the read)
    # or after a failed read (truncated, not FCS)
    for sample in run["samples"]:
        for f in sample["files"]:
            assert f["sha256"] == hashlib.sha256(Path(f["path"]).read_bytes()).hexdigest(), f["path"]
    assert run["template"]["sha256"] == hashlib.sha256(Path(run["template"]["path"]).read_bytes()).hexdigest()
    assert run["software"]["numpy"] and run["execution"]["mode"] == "in-process"
    # populations.csv holds only analysed samples
    assert {r["sample_id"] for r in read_csv(out / "populations.csv")} == {"GOOD01"}
    assert leftovers(out) == []


def test_panel_and_command_line_errors_exit_2_before_any_work(tmp_path, capsys):
    panel = write_panel(tmp_path)
    out = tmp_path / "out"
    bad = tmp_path / "bad.yaml"
    bad.write_text(panel.read_text().replace("lod_events: 20", "lod_events: -3"))
    assert main(["run", str(bad), "--out", str(out), "--workers", "0"]) == 2
    assert "lod_events" in capsys.readouterr().err
    assert main(["run", str(panel), "--out", str(out), "--workers", "0"]) == 2  # no file matches fcs/*.fcs
    assert "matches no file" in capsys.readouterr().err
    assert main(["run", str(panel), "--workers", "-1"]) == 2
    assert main(["run", str(panel), "--workers", "1", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert not out.exists(), "nothing is written when the panel is wrong"


def test_results_are_the_analysis_of_each_sample(reference):
    rows = {r["sample_id"]: r for r in read_csv(reference / "results.csv")}
    assert list(rows) == sorted(GOOD)
    # identical files give identical results whatever the sample is called
    same = {k: v for k, v in rows["GOOD01"].items() if k not in ("sample_id", "files")}
    assert same == {k: v for k, v in rows["GOOD05"].items() if k not in ("sample_id", "files")}
    pops = read_csv(reference / "populations.csv")
    assert {p["sample_id"] for p in pops} == set(GOOD)
    n_eval = int(rows["GOOD01"]["n_events_evaluable"])
    assert float(rows["GOOD01"]["lod"]) == pytest.approx(20 / n_eval)
    store = sqlite3.connect(reference / "mrdflow.sqlite")
    assert store.execute("SELECT COUNT(*) FROM samples").fetchone() == (4,)


def test_killed_run_resumes_to_identical_results_without_partial_files(good_batch, reference, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "mrdflow", "run", str(good_batch), "--out", str(out),
                             "--workers", "0"], cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        stored = 0
        while stored == 0:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no sample was stored within 180 s"
            time.sleep(0.05)
            try:
                with sqlite3.connect(out / "mrdflow.sqlite", timeout=0.1) as db:
                    stored = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
            except sqlite3.OperationalError:  # not created yet, or being written
                pass
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert stored < len(GOOD) and not (out / "results.csv").exists(), "killed mid-batch"

    assert main(["run", str(good_batch), "--out", str(out), "--workers", "0", "--resume"]) == 0
    for name in ("results.csv", "populations.csv"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    run = json.loads((out / "run.json").read_text())
    assert run["summary"]["reused"] >= stored
    reused = [s for s in run["samples"] if s["reused_from"]]
    assert len(reused) == run["summary"]["reused"]
    assert {p.name for p in (out / "report").iterdir()} == {"index.html", *(f"{s}.html" for s in GOOD)}
    assert leftovers(out) == []
    # a second resume reuses everything and still writes the same results
    assert main(["run", str(good_batch), "--out", str(out), "--workers", "0", "--resume"]) == 0
    assert json.loads((out / "run.json").read_text())["summary"]["reused"] == len(GOOD)
    assert (out / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()


def test_resume_reanalyses_a_sample_whose_file_changed(good_batch, reference, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(reference, out)
    fcs = good_batch.parent / "fcs"
    original = (fcs / "GOOD05_T2.fcs").read_bytes()
    try:
        (fcs / "GOOD05_T2.fcs").write_bytes((fcs / "GOOD02_T2.fcs").read_bytes())
        assert main(["run", str(good_batch), "--out", str(out), "--workers", "0", "--resume", "--no-reports"]) == 0
    finally:
        (fcs / "GOOD05_T2.fcs").write_bytes(original)
    run = json.loads((out / "run.json").read_text())
    fresh = [s["sample_id"] for s in run["samples"] if not s["reused_from"]]
    assert fresh == ["GOOD05"]


def test_a_store_named_in_the_panel_accumulates_runs_and_resumes_into_another_folder(good_batch, reference,
                                                                                     tmp_path):
    store = tmp_path / "lab" / "all.sqlite"
    panel = write_panel(good_batch.parent, store=store, name="shared-store.yaml")
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["run", str(panel), "--out", str(first), "--workers", "0"]) == 0
    assert main(["run", str(panel), "--out", str(second), "--workers", "0", "--resume"]) == 0
    assert not (first / "mrdflow.sqlite").exists() and store.exists()
    runs = sqlite3.connect(store).execute("SELECT COUNT(*), COUNT(finished) FROM runs").fetchone()
    assert runs == (2, 2)
    run = json.loads((second / "run.json").read_text())
    assert run["summary"]["reused"] == len(GOOD) and run["store"] == str(store)
    # the reports of reused samples were copied from where the first run wrote them
    for sid in GOOD:
        assert (second / "report" / f"{sid}.html").read_bytes() == (first / "report" / f"{sid}.html").read_bytes()
    assert (second / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()


def test_keyword_grouping_reads_only_text_and_isolates_an_unreadable_file(tmp_path):
    fcs = tmp_path / "fcs"
    copy_sample("DEMO01", "ANY_NAME", fcs)  # $SRC says DEMO01
    (fcs / "garbage.fcs").write_bytes(b"\x00" * 30)
    panel = write_panel(tmp_path, by_keyword=True)
    out = tmp_path / "out"
    assert main(["run", str(panel), "--out", str(out), "--workers", "0", "--no-reports"]) == 1
    rows = {r["sample_id"]: r for r in read_csv(out / "results.csv")}
    assert rows["DEMO01"]["status"] == "ok" and rows["DEMO01"]["files"] == "ANY_NAME_T1.fcs;ANY_NAME_T2.fcs"
    bad = rows["garbage (unreadable file)"]
    assert bad["status"] == "failed" and "garbage.fcs" in bad["error"] and "not an FCS file" in bad["error"]
