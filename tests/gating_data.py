"""Small synthetic NGF-like tubes with known populations, written with our FCS writer (for gating tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrdflow.fcs import Spillover, write_fcs

CHANNELS = ["FSC-A", "FSC-H", "SSC-A", "FITC-A", "PE-A", "PE-Cy7-A", "BV421-A", "Time"]
MARKERS = [None, None, None, "CD38 ME", "CD56", "CD19", "CD138", None]
FLUOR = ["FITC-A", "PE-A", "PE-Cy7-A", "BV421-A"]
SPILL = np.array([[1.00, 0.15, 0.01, 0.00],
                  [0.02, 1.00, 0.05, 0.00],
                  [0.00, 0.03, 1.00, 0.00],
                  [0.01, 0.00, 0.00, 1.00]])

PANEL = """\
name: test panel
files: "*.fcs"
grouping:
  pattern: '^(?P<sample>[A-Za-z0-9]+)_(?P<tube>T1)\\.fcs$'
tubes:
  tube1:
    match: [T1]
    markers: [CD38, CD56, CD19, CD138]
template: template.yaml
"""

TEMPLATE = """\
name: test template
populations:
  no_margins:
    dims: [FSC-A, SSC-A]
    method: margin
    roles: [margin_ok]
  singlets:
    parent: no_margins
    dims: [FSC-A, FSC-H]
    method: singlet
    roles: [singlet]
  cells:
    parent: singlets
    dims: [FSC-A, SSC-A]
    gate: {type: polygon, vertices: [[0.15, 0.0], [1.0, 0.0], [1.0, 0.9], [0.15, 0.9]]}
    roles: [evaluable]
  pc:
    parent: cells
    dims: [CD38]
    method: density_valley
    args: {bounds: [0.2, 1.0]}
  pc_138:
    parent: pc
    dims: [CD138]
    gate: {type: range, min: 0.5}
    roles: [plasma_cell]
  normal:
    parent: pc_138
    dims: [CD19, CD56]
    gate: {type: quadrant, dividers: [0.5, 0.5], quadrant: "+-"}
    roles: [normal_pc_reference]
  aberrant:
    parent: pc_138
    dims: [CD19, CD56]
    method: reference_distance
    args: {reference: normal, quantile: 0.9999}
    roles: [aberrant_pc]
  ab_cluster:
    parent: pc_138
    dims: [CD19, CD56]
    method: cluster
    args: {target: [0.3, 0.75], n_components: 2, quantile: 0.99}
  not_normal:
    parent: pc_138
    boolean: "not normal and (aberrant or ab_cluster)"
"""

#: true counts of the generated populations
TRUTH = {"n": 20_000, "saturated": 40, "doublets": 600, "debris": 1_000, "pc": 600, "normal": 360, "aberrant": 240}


def make_tube(path: Path, seed: int = 0, shift_cd38: float = 1.0) -> Path:
    """Write one tube; ``shift_cd38`` multiplies CD38 intensity (a brighter/dimmer instrument)."""
    rng = np.random.default_rng(seed)
    t = TRUTH
    n = t["n"]
    fsc_h = rng.normal(90_000, 12_000, n)
    fsc_a = fsc_h * rng.normal(1.1, 0.015, n)
    ssc = rng.normal(60_000, 10_000, n)
    kind = np.zeros(n, dtype=int)  # 0 other, 1 debris, 2 doublet, 3 normal PC, 4 aberrant PC, 5 saturated
    i = 0
    for k, size in ((5, t["saturated"]), (1, t["debris"]), (2, t["doublets"]), (3, t["normal"]), (4, t["aberrant"])):
        kind[i:i + size] = k
        i += size
    fsc_h[kind == 1] = rng.normal(12_000, 3_000, t["debris"])
    fsc_a[kind == 1] = fsc_h[kind == 1] * rng.normal(1.1, 0.015, t["debris"])
    fsc_a[kind == 2] *= 1.8
    fsc_a[kind == 5] = 262_143.0
    true = np.empty((n, 4))
    true[:, 0] = rng.lognormal(np.log(300), 0.3, n)  # CD38
    true[:, 1] = rng.lognormal(np.log(200), 0.3, n)  # CD56
    true[:, 2] = rng.lognormal(np.log(250), 0.3, n)  # CD19
    true[:, 3] = rng.lognormal(np.log(150), 0.3, n)  # CD138
    pcs = (kind == 3) | (kind == 4)
    true[pcs, 0] = rng.lognormal(np.log(30_000), 0.2, pcs.sum())
    true[pcs, 3] = rng.lognormal(np.log(8_000), 0.2, pcs.sum())
    true[kind == 3, 2] = rng.lognormal(np.log(6_000), 0.2, t["normal"])
    true[kind == 4, 1] = rng.lognormal(np.log(10_000), 0.2, t["aberrant"])
    true[:, 0] *= shift_cd38
    observed = true @ SPILL
    time = np.arange(n) / 100.0
    events = np.c_[fsc_a, fsc_h, ssc, observed, time].astype(np.float32)
    spill = Spillover(channels=list(FLUOR), matrix=SPILL, source="$SPILLOVER")
    write_fcs(path, events, CHANNELS, markers=MARKERS, spillover=spill,
              ranges=[262144] * 7 + [1024])
    return path


def write_panel(folder: Path, n_files: int = 1) -> Path:
    (folder / "template.yaml").write_text(TEMPLATE)
    for k in range(n_files):
        make_tube(folder / f"P{k + 1}_T1.fcs", seed=k)
    p = folder / "panel.yaml"
    p.write_text(PANEL)
    return p
