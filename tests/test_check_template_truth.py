"""scripts/check_template_truth.py: the template's populations against the simulator's per-event truth."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_tube_populations_against_truth():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_template_truth.py"),
                           str(ROOT / "panels" / "demo.yaml"), str(ROOT / "sample_fcs" / "DEMO01_T1.fcs")],
                          capture_output=True, text=True, timeout=300)
    rows = {line.split()[1]: line for line in proc.stdout.splitlines() if line.startswith("DEMO01_T1.fcs")}
    assert {"plasma_cell", "mast_cell", "myeloid_precursor", "nrbc", "bcp", "t_cell", "nk_cell"} <= set(rows)
    # the counted populations of this marrow are found: plasma cells, and the hemodilution mast cells and
    # myeloid precursors (called, truth, true positives)
    for role in ("plasma_cell", "mast_cell", "myeloid_precursor"):
        called, truth, tp = map(int, rows[role].split()[2:5])
        assert tp >= 0.98 * truth and tp >= 0.98 * called and "<--" not in rows[role], rows[role]
    # the exit code says whether any row was flagged
    assert proc.returncode == (1 if "<--" in proc.stdout else 0), proc.stderr
