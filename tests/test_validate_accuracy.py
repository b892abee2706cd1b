"""scripts/validate_accuracy.py end to end on small files: the script an auditor runs must run and judge."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_time_anomaly_scenario_runs_and_judges(tmp_path: Path) -> None:
    out = tmp_path / "val"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "validate_accuracy.py"), "--events", "50000",
                           "--seeds", "1", "--scenarios", "time_anomaly", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr
    rows = json.loads((out / "results.json").read_text())
    assert {r["scenario"] for r in rows} == {"time_anomaly"} and len(rows) >= 2
    clogged = [r for r in rows if r["truth"]["n_time_excluded"] > 0]
    clean = [r for r in rows if r["truth"]["n_time_excluded"] == 0]
    assert clogged and clean
    # the truth side-car's clog mask was read and compared with the events the pipeline kept
    assert all(0.0 <= r["truth"]["clog_removed"] <= 1.0 for r in clogged)
    assert "time anomalies flagged and excluded" in proc.stdout
    # a combined judgement of earlier runs reads the same results
    again = subprocess.run([sys.executable, str(ROOT / "scripts" / "validate_accuracy.py"), "--combine", str(out)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == proc.returncode
    assert "time anomalies flagged and excluded" in again.stdout
