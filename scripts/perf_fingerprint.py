#!/usr/bin/env python
"""Fingerprint of the per-sample analysis: run before and after a performance change, diff the outputs.

For every sample formed by the given FCS files (grouped by the panel's rule) it runs
:func:`mrdflow.pipeline.analyze_sample_tubes` (with plot data) and writes one JSON document: every results.csv
field, every population row, the full ``details`` (time QC, phenotype boundaries, warnings, ...), SHA-256 digests
of the per-event plasma-cell / aberrant / time-QC arrays and of the report's plot data. Two fingerprints of the
same inputs must be byte-identical when a change does not change any result.

Usage::

    python scripts/perf_fingerprint.py PANEL.yaml FCS... > before.json   # on the old code
    python scripts/perf_fingerprint.py PANEL.yaml FCS... > after.json    # on the new code
    cmp before.json after.json

The code analysed is the ``mrdflow`` package next to this script, or the checkout named by the environment
variable ``MRDFLOW_REPO`` (e.g. ``git archive`` of the commit before the change, unpacked).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np


def _digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return f"{a.dtype}{a.shape}:" + hashlib.sha256(a.tobytes()).hexdigest()[:16]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    sys.path.insert(0, os.environ.get("MRDFLOW_REPO") or str(Path(__file__).resolve().parents[1]))
    from mrdflow.panel import load_panel
    from mrdflow.panel_files import group_files
    from mrdflow.pipeline import analyze_sample_tubes

    panel = load_panel(argv[0])
    files = sorted(Path(f) for f in argv[1:])
    out = {}
    for group in group_files(panel, files):
        paths = list(group.tubes.values())
        res, tubes = analyze_sample_tubes(paths, panel, plot_data=True)
        doc = asdict(res)
        doc.pop("plots")
        doc["plots"] = [{"columns": p.columns, "events": _digest(p.events), "labels": _digest(p.labels),
                         "label_names": p.label_names, "gates": p.gates, "time_trace": p.time_trace}
                        for p in res.plots]
        doc["tubes"] = [{"tube": t.tube, "pc": _digest(t.plasma_cell_index), "aberrant": _digest(t.aberrant_index),
                         "time_kept": _digest(t.time_kept)} for t in tubes]
        out[group.sample_id] = doc
    json.dump(out, sys.stdout, indent=1, sort_keys=True, default=str)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
