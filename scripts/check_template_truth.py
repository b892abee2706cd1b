#!/usr/bin/env python
"""A gating template's populations against the per-event truth of simulated files (``mrdflow simulate``).

For every file (its tube found by the panel's grouping rule) it gates the events exactly as the pipeline does
(linearized, column-major, compensated and transformed, time QC not applied) and prints, for each template role
that has a truth counterpart, the events called, the truth count and the true positives — e.g. whether the mast
cells and CD117+ myeloid precursors used for hemodilution are the right cells. A row is flagged ``<--`` when a
counted population's recall, or any population's precision, is below ``--min`` (default 0.9); reference
populations (T and NK cells) need only be pure. Exit code 1 when any row is flagged.

Usage::

    python scripts/check_template_truth.py panels/euroflow_ngf_2tube.yaml /tmp/sim/*_T1.fcs [--min 0.9]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mrdflow.fcs import read_fcs  # noqa: E402
from mrdflow.gating.engine import gate_events  # noqa: E402
from mrdflow.gating.template import load_template  # noqa: E402
from mrdflow.panel import load_panel  # noqa: E402
from mrdflow.panel_files import group_files  # noqa: E402
from mrdflow.simulate import truth_mask  # noqa: E402
from mrdflow.tube import prepare_tube  # noqa: E402

#: template role -> (simulator truth labels of the same cells, counted): a counted population (plasma cells, the
#: hemodilution populations) must be complete and pure; a reference population (T, NK cells: boundaries of the
#: phenotype call) need only be pure
ROLE_TRUTH = {
    "plasma_cell": (("normal_pc", "aberrant_pc"), True),
    "mast_cell": (("mast_cell",), True),
    "myeloid_precursor": (("myeloid_precursor",), True),
    "nrbc": (("nrbc",), True),
    "bcp": (("b_cell_precursor",), True),
    "t_cell": (("t_cell",), False),
    "nk_cell": (("nk_cell",), False),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("panel", type=Path)
    ap.add_argument("files", type=Path, nargs="+", help="simulated FCS files with .truth.npz side-cars")
    ap.add_argument("--min", type=float, default=0.9, help="flag recall or precision below this (default 0.9)")
    args = ap.parse_args()
    panel = load_panel(args.panel)
    template = load_template(panel.template)
    flagged = 0
    print(f"{'file':36s} {'role':18s} {'called':>9s} {'truth':>9s} {'tp':>9s} {'recall':>7s} {'precision':>9s}")
    for path in args.files:
        fcs = read_fcs(path, linearize=True, order="F")
        (group,) = group_files(panel, [path], keywords_of=lambda _: fcs.keywords)  # one file at a time: the same
        (tube,) = group.tubes                                                       # name may recur in folders
        setup = prepare_tube(panel, tube, fcs, template)
        res = gate_events(fcs.events, setup.index, setup.template, upper_limits=setup.upper_limits)
        for role, (labels, counted) in ROLE_TRUTH.items():
            names = setup.template.by_role(role)
            if not names:
                continue
            called = np.zeros(fcs.n_events, dtype=bool)
            for name in names:
                called |= res.mask(name)
            truth = truth_mask(path, *labels)
            tp = int(np.count_nonzero(called & truth))
            n_called, n_truth = int(called.sum()), int(truth.sum())
            recall = tp / n_truth if n_truth else float("nan")
            precision = tp / n_called if n_called else float("nan")
            bad = (counted and n_truth and recall < args.min) or (n_called and precision < args.min)
            flagged += bool(bad)
            print(f"{path.name:36s} {role:18s} {n_called:9d} {n_truth:9d} {tp:9d} {recall:7.3f} {precision:9.3f}"
                  + ("  <--" if bad else ""))
    print(f"{flagged} population(s) below {args.min:g} recall or precision")
    return 1 if flagged else 0


if __name__ == "__main__":
    raise SystemExit(main())
