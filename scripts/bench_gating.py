#!/usr/bin/env python
"""Benchmark: gate a 5 M-event NGF-like tube with a 20-node template (fixed + adaptive + boolean gates).

Prints, measured in the same run on the same tube:

* the fused compensation + transform pass (``mrdflow.scaling.scale_events``) — the baseline;
* the gating engine (``mrdflow.gating.engine.gate_events``) on the scaled events, and its ratio to the
  baseline (target ≤ 3×);
* FlowKit's ``GatingStrategy.gate_sample`` on the fixed part of the template (the populations whose gate and
  ancestors are all fixed), exported from our resolved gates, and the engine's time on that same part.

Each mrdflow timing is the best of ``--repeat`` runs after one warm-up (numba compilation excluded);
FlowKit runs once. Usage::

    python scripts/bench_gating.py [--events 5000000] [--repeat 3] [--no-flowkit] [--keep FILE.fcs]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mrdflow.fcs import Spillover, read_fcs, write_fcs  # noqa: E402
from mrdflow.gating.engine import gate_events  # noqa: E402
from mrdflow.gating.template import template_from_dict  # noqa: E402
from mrdflow.panel import panel_from_dict  # noqa: E402
from mrdflow.scaling import scale_events  # noqa: E402
from mrdflow.tube import check_tube  # noqa: E402

CHANNELS = ["FSC-A", "FSC-H", "SSC-A", "FITC-A", "PE-A", "PerCP-Cy5-5-A", "PE-Cy7-A", "APC-A", "APC-H7-A",
            "BV421-A", "BV510-A", "Time"]
MARKERS = [None, None, None, "CD38", "CD56", "CD45", "CD19", "CD117", "CD81", "CD138", "CD27", None]
FLUOR = CHANNELS[3:11]

#: population: (fraction, FSC, SSC, CD38, CD56, CD45, CD19, CD117, CD81, CD138, CD27) — linear-scale medians
POPULATIONS = {
    "granulocytes": (0.55, 110e3, 150e3, 300, 150, 2_000, 150, 200, 150, 100, 150),
    "lymphocytes": (0.20, 60e3, 25e3, 400, 200, 20_000, 150, 100, 3_000, 100, 2_500),
    "b_cells": (0.04, 60e3, 25e3, 500, 150, 15_000, 8_000, 100, 4_000, 100, 1_500),
    "nk": (0.02, 65e3, 30e3, 2_000, 6_000, 18_000, 150, 100, 1_500, 100, 150),
    "monocytes": (0.06, 120e3, 70e3, 3_000, 300, 12_000, 150, 150, 2_000, 100, 150),
    "nrbc": (0.08, 50e3, 15e3, 500, 150, 150, 150, 150, 150, 100, 150),
    "bcp": (0.01, 55e3, 20e3, 20_000, 150, 1_500, 6_000, 100, 20_000, 100, 150),
    "mast": (0.001, 90e3, 60e3, 400, 150, 8_000, 150, 40_000, 500, 100, 150),
    "normal_pc": (0.003, 100e3, 40e3, 60_000, 150, 3_000, 5_000, 100, 5_000, 9_000, 8_000),
    "aberrant_pc": (0.002, 110e3, 45e3, 30_000, 9_000, 600, 150, 3_000, 600, 9_000, 300),
    "debris": (0.05, 12e3, 10e3, 200, 150, 300, 150, 150, 150, 100, 150),
}

SPILL = np.eye(8)
for i, j, v in [(0, 1, 0.12), (1, 2, 0.08), (1, 3, 0.03), (2, 3, 0.05), (4, 5, 0.1), (6, 7, 0.04), (0, 7, 0.01)]:
    SPILL[i, j] = v

TEMPLATE = {
    "name": "bench (20 nodes)",
    "populations": {
        "no_margins": {"dims": ["FSC-A", "SSC-A"], "method": "margin"},
        "singlets": {"parent": "no_margins", "dims": ["FSC-A", "FSC-H"], "method": "singlet"},
        "cells": {"parent": "singlets", "dims": ["FSC-A", "SSC-A"],
                  "gate": {"type": "polygon", "vertices": [[0.12, 0.0], [0.9, 0.0], [0.9, 0.95], [0.12, 0.95]]},
                  "roles": ["evaluable"]},
        "debris": {"parent": "singlets", "boolean": "not cells", "roles": ["debris"]},
        "cd45_pos": {"parent": "cells", "dims": ["CD45"], "method": "density_valley",
                     "args": {"bounds": [0.2, 0.9]}},
        "nrbc": {"parent": "cells", "dims": ["CD45", "SSC-A"],
                 "gate": {"type": "rectangle", "min": [None, None], "max": [0.35, 0.2]}, "roles": ["nrbc"]},
        "granulocytes": {"parent": "cells", "dims": ["CD45", "SSC-A"],
                         "gate": {"type": "rectangle", "min": [0.35, 0.35], "max": [0.62, None]}},
        "lymphocytes": {"parent": "cd45_pos", "dims": ["CD45", "SSC-A"],
                        "gate": {"type": "rectangle", "min": [0.68, None], "max": [None, 0.18]},
                        "roles": ["lymphocyte"]},
        "monocytes": {"parent": "cells", "dims": ["CD45", "SSC-A"],
                      "gate": {"type": "ellipse", "mean": [0.70, 0.27], "covariance": [[0.002, 0], [0, 0.002]],
                               "distance_square": 9.0}, "roles": ["monocyte"]},
        "mast": {"parent": "cells", "dims": ["CD117"], "gate": {"type": "range", "min": 0.75},
                 "roles": ["mast_cell"]},
        "bcp": {"parent": "cells", "dims": ["CD19", "CD38"],
                "gate": {"type": "quadrant", "dividers": [0.55, 0.7], "quadrant": "++"}, "roles": ["bcp"]},
        "nk": {"parent": "lymphocytes", "dims": ["CD56", "CD19"],
               "gate": {"type": "quadrant", "dividers": [0.5, 0.45], "quadrant": "+-"}},
        "pc": {"parent": "cells", "dims": ["CD138"], "method": "density_valley"},
        "pc_38": {"parent": "pc", "dims": ["CD38"], "gate": {"type": "range", "min": 0.65},
                  "roles": ["plasma_cell"]},
        "normal_ref": {"parent": "pc_38", "dims": ["CD19", "CD56"],
                       "gate": {"type": "quadrant", "dividers": [0.45, 0.45], "quadrant": "+-"},
                       "roles": ["normal_pc_reference"]},
        "aberrant": {"parent": "pc_38", "dims": ["CD19", "CD56", "CD45", "CD81", "CD27"],
                     "method": "reference_distance", "args": {"reference": "normal_ref", "quantile": 0.9999},
                     "roles": ["aberrant_pc"]},
        "normal": {"parent": "pc_38", "boolean": "not aberrant", "roles": ["normal_pc"]},
        "aberrant_cluster": {"parent": "pc_38", "dims": ["CD19", "CD56"], "method": "cluster",
                             "args": {"target": [0.25, 0.67], "n_components": 2, "quantile": 0.99}},
        "cd27_dim": {"parent": "pc_38", "dims": ["CD27"], "method": "tail",
                     "args": {"side": "below", "k": 3}},
        "cd117_pos_pc": {"parent": "aberrant", "dims": ["CD117"], "gate": {"type": "range", "min": 0.5}},
    },
}

PANEL = {"name": "bench", "tubes": {"tube1": {"markers": [m for m in MARKERS if m]}}, "template": "bench.yaml"}


def make_events(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    names = list(POPULATIONS)
    frac = np.array([POPULATIONS[p][0] for p in names])
    labels = rng.choice(len(names), size=n, p=frac / frac.sum())
    medians = np.array([POPULATIONS[p][1:] for p in names], dtype=np.float64)
    events = np.empty((n, len(CHANNELS)), dtype=np.float32)
    for j, col in enumerate([0, 2]):
        events[:, col] = medians[labels, j] * rng.normal(1.0, 0.12, n)
    events[:, 1] = events[:, 0] / rng.normal(1.1, 0.015, n)
    doublets = rng.random(n) < 0.03
    events[doublets, 0] *= 1.8
    true = medians[labels, 2:] * rng.lognormal(0.0, 0.25, (n, 8))
    events[:, 3:11] = true @ SPILL
    events[:, [0, 2]] = np.minimum(events[:, [0, 2]], 262143.0)
    events[:, 11] = np.arange(n, dtype=np.float32) / 1000.0
    return events


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-flowkit", action="store_true", help="skip the FlowKit comparison")
    ap.add_argument("--keep", type=Path, help="write the generated tube here (default: a temporary file)")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    path = args.keep or Path(tmp.name) / "bench_T1.fcs"
    spill = Spillover(channels=FLUOR, matrix=SPILL, source="$SPILLOVER")
    write_fcs(path, make_events(args.events), CHANNELS, markers=MARKERS, spillover=spill,
              ranges=[262144] * 11 + [args.events / 1000 + 1])
    fcs = read_fcs(path, order="F")  # column-major, as the pipeline reads a tube
    raw = fcs.events.copy(order="F")
    template = template_from_dict(TEMPLATE)
    panel = panel_from_dict(PANEL)
    setup = check_tube(panel, "tube1", fcs, template)
    names = [c.name for c in fcs.channels]
    print(f"tube: {fcs.n_events:,} events × {fcs.n_channels} channels (float32, {raw.nbytes / 1e6:.0f} MB); "
          f"template: {len(template.nodes)} populations "
          f"({sum(n.kind == 'method' for n in template.nodes.values())} adaptive, "
          f"{sum(n.kind == 'gate' for n in template.nodes.values())} fixed, "
          f"{sum(n.kind == 'boolean' for n in template.nodes.values())} boolean)")

    def fused():
        np.copyto(fcs.events, raw)  # not timed separately; a memcpy of the tube
        t0 = time.perf_counter()
        scale_events(fcs.events, names, setup.spillover, setup.transforms)
        return time.perf_counter() - t0

    fused()  # warm-up (numba compile / cache load)
    t_fused = min(fused() for _ in range(args.repeat))
    events = fcs.events
    gate = lambda: gate_events(events, setup.index, template, upper_limits=setup.upper_limits)  # noqa: E731
    result = gate()  # warm-up
    t_engine = best_of(gate, args.repeat)
    print(f"fused compensation+transform pass : {t_fused:8.3f} s   (baseline)")
    print(f"gating engine, {len(template.nodes)} populations      : {t_engine:8.3f} s   "
          f"= {t_engine / t_fused:.2f}× the fused pass (target ≤ 3×)")
    expected = {"cells": 1 - POPULATIONS["debris"][0], "lymphocytes": POPULATIONS["lymphocytes"][0] + POPULATIONS[
        "b_cells"][0] + POPULATIONS["nk"][0], "pc_38": POPULATIONS["normal_pc"][0] + POPULATIONS["aberrant_pc"][0],
        "normal": POPULATIONS["normal_pc"][0], "aberrant": POPULATIONS["aberrant_pc"][0],
        "mast": POPULATIONS["mast"][0]}
    for name, f in expected.items():
        print(f"    {name:<12} {result.counts[name]:>10,}   (generated ≈ {f * 0.97 * args.events:,.0f} singlets)")

    # FlowKit cannot place adaptive gates: give it every gate as the fixed geometry the engine resolved on
    # this tube (the "fixed part" is then the whole tree), and time our engine evaluating that same fixed tree
    fixed_template = _fixed_part(result)
    t_engine_fixed = best_of(lambda: gate_events(events, setup.index, fixed_template), args.repeat)
    print(f"gating engine, same tree as fixed gates ({len(fixed_template.nodes)} populations) : "
          f"{t_engine_fixed:8.3f} s   = {t_engine_fixed / t_fused:.2f}× the fused pass")
    if not args.no_flowkit:
        import flowkit as fk
        from mrdflow.gating.export import to_gating_strategy

        gs = to_gating_strategy(result, setup, names)
        sample = fk.Sample(str(path))
        t0 = time.perf_counter()
        fk_res = gs.gate_sample(sample)
        t_fk = time.perf_counter() - t0
        same = all(fk_res.get_gate_count(n) == result.counts[n] for n in template.nodes)
        print(f"FlowKit GatingStrategy.gate_sample, same fixed gates : {t_fk:8.3f} s   "
              f"= {t_fk / t_engine_fixed:.1f}× our engine on them; all {len(template.nodes)} counts identical: "
              f"{same}")
    return 0


def _fixed_part(result):
    """The template's fixed-gate populations with every adaptive ancestor replaced by the fixed geometry it
    chose on this tube (so FlowKit and the engine evaluate the very same gates)."""
    t = result.template
    pops = {}
    for name, node in t.nodes.items():
        geo = result.gates[name].to_dict()
        if node.kind == "boolean":
            pops[name] = {"parent": node.parent, "boolean": _expr(node.boolean)}
            continue
        if geo["type"] == "polygon":
            gate = {"type": "polygon", "vertices": geo["vertices"]}
        elif geo["type"] in ("range", "rectangle"):
            gate = {"type": "rectangle", "min": geo["min"], "max": geo["max"]}
        elif geo["type"] == "ellipsoid":
            gate = {"type": "ellipse", "mean": geo["mean"], "covariance": geo["covariance"],
                    "distance_square": geo["distance_square"]}
        else:  # a complemented geometry (reference_distance outside): keep it as the boolean it is
            inner = geo["operands"][0]
            pops[name + "_inside"] = {"parent": node.parent, "dims": list(node.dims),
                                      "gate": {"type": "ellipse", "mean": inner["mean"],
                                               "covariance": inner["covariance"],
                                               "distance_square": inner["distance_square"]}}
            pops[name] = {"parent": node.parent, "boolean": f"not {name}_inside"}
            continue
        pops[name] = {"parent": node.parent, "dims": list(node.dims), "gate": gate}
    return template_from_dict({"name": "fixed part", "populations": pops})


def _expr(tree) -> str:
    if tree[0] == "ref":
        return tree[1]
    if tree[0] == "not":
        return f"not ({_expr(tree[1])})"
    return "(" + f" {tree[0]} ".join(_expr(t) for t in tree[1]) + ")"


if __name__ == "__main__":
    raise SystemExit(main())
