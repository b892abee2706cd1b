"""scripts/check_template_truth.py: the template's populations against the simulator's per-event truth."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_tube_populations_against_truth():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_template_truth.py"),
                           str(ROOT / "panels" / "demo.yaml"), str(ROOT / "sample_fcs" / "DEMO01_T1.fcs"),
                           str(ROOT / "sample_fcs" / "DEMO04_T1.fcs")],
                          capture_output=True, text=True, timeout=300)
    rows = {tuple(line.split()[:2]): line for line in proc.stdout.splitlines() if line.startswith("DEMO0")}
    assert {"plasma_cell", "mast_cell", "myeloid_precursor", "nrbc", "bcp", "t_cell", "nk_cell"} \
        <= {role for _, role in rows}

    def found(file, role, share):
        called, truth, tp = map(int, rows[(file, role)].split()[2:5])
        assert tp >= share * truth and tp >= share * called, rows[(file, role)]

    # a typical marrow: plasma cells and every bone-marrow-restricted (hemodilution) population is found whole
    # and pure (called, truth, true positives)
    for role in ("plasma_cell", "mast_cell", "myeloid_precursor", "nrbc", "bcp"):
        found("DEMO01_T1.fcs", role, 0.98)
    # a marrow diluted with 70 % blood: its few NRBC (≈ 440), CD117+ myeloid precursors (≈ 170, CD45-dim, between
    # the NRBC and the lymphocytes on CD45) and B-cell precursors (≈ 50) are still told apart
    for role in ("myeloid_precursor", "nrbc", "bcp"):
        found("DEMO04_T1.fcs", role, 0.9)
    # the exit code says whether any row was flagged
    assert proc.returncode == (1 if "<--" in proc.stdout else 0), proc.stderr
