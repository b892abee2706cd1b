"""Validate the array-level MRD core on `mrdflow simulate` files, with truth labels standing in for gating.

Until the gating template lands, the plasma cells and the internal reference populations of each tube are
taken from the simulator's per-event truth (``*.truth.npz``); everything else is the real code path:
FCS reading, compensation with the file's $SPILLOVER, an arcsinh transform (cofactor 150 — any monotone
transform will do, the calls are reference-relative), :func:`mrdflow.gating.phenotype.classify_plasma_cells`,
:func:`mrdflow.mrd.quantify`, :func:`mrdflow.qc.time.time_qc` and :func:`mrdflow.qc.hemodilution.assess_hemodilution`.

The CD38 "normal PC brightness" reference is the brightest quarter of the tube's plasma cells (no truth).

Usage::

    python scripts/validate_phenotype_truth.py [--events N] [--workdir DIR] [--scenarios normal hard dilution ...]

Prints, per tube, the truth vs called aberrant PCs with per-event recall/precision/F1, the clone-size estimate
used for quantification (called events minus the normal PCs expected in light-chain-restricted subsets), the
time-QC outcome and the clusters; per sample, the MRD fraction/status (combined denominator) and hemodilution.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mrdflow.fcs import read_fcs  # noqa: E402
from mrdflow.gating.light_chain import KAPPA, LAMBDA, light_chain_restricted  # noqa: E402
from mrdflow.gating.phenotype import MarkerReference, classify_plasma_cells  # noqa: E402
from mrdflow.mrd import TubeCounts, quantify  # noqa: E402
from mrdflow.qc.hemodilution import assess_hemodilution  # noqa: E402
from mrdflow.qc.time import time_qc  # noqa: E402

PC_MARKERS = ["CD19", "CD56", "CD27", "CD81", "CD117", "CD38", "CD45"]
#: marker -> (negative reference population, positive reference population) by truth label
REFERENCES = {
    "CD19": ("t_cell", "mature_b"),
    "CD56": ("t_cell", "nk_cell"),
    "CD27": ("neutrophil", "t_cell"),
    "CD81": ("neutrophil", "b_cell_precursor"),
    "CD117": ("t_cell", "mast_cell"),
    "CD45": ("nrbc", "t_cell"),
    "CD38": ("t_cell", None),  # positive: normal PC brightness (brightest quarter of the PCs)
}
COFACTOR = 150.0


def scaled_tube(path: Path):
    data = read_fcs(path)
    ev = data.events
    sp = data.spillover
    idx = [data.channel_index(name) for name in sp.channels]
    ev[:, idx] = (ev[:, idx] @ sp.inverse().astype(np.float32)).astype(np.float32)
    fl = [c.index for c in data.channels if c.marker]
    ev[:, fl] = np.arcsinh(ev[:, fl] / COFACTOR)
    return data, ev


def analyse_tube(path: Path):
    data, ev = scaled_tube(path)
    truth = np.load(path.with_suffix("").as_posix() + ".truth.npz")
    names = [str(n) for n in truth["label_names"]]
    labels = truth["labels"]
    code = {n: i for i, n in enumerate(names)}
    clean = ~truth["time_excluded"].astype(bool)
    is_pc = np.isin(labels, [code["normal_pc"], code["aberrant_pc"]]) & clean
    markers = [m for m in PC_MARKERS if _has(data, m)]
    cols = [data.channel_index(m) for m in markers]
    pcs = np.ascontiguousarray(ev[is_pc][:, cols])
    refs = {}
    for m in markers:
        neg_name, pos_name = REFERENCES[m]
        col = data.channel_index(m)
        neg = ev[(labels == code[neg_name]) & clean, col]
        if pos_name is None:
            values = pcs[:, markers.index(m)]
            pos = values[values >= np.quantile(values, 0.75)] if values.size else values
            pos_name = "brightest quarter of PCs"
        else:
            pos = ev[(labels == code[pos_name]) & clean, col]
        refs[m] = MarkerReference(neg, pos, neg_name, pos_name)
    result = classify_plasma_cells(pcs, markers, refs)
    if _has(data, "cyIgKappa") and _has(data, "cyIgLambda"):
        # stand-in for the template's kappa/lambda gates: the brighter light chain of each PC
        kappa = ev[is_pc, data.channel_index("cyIgKappa")]
        lam = ev[is_pc, data.channel_index("cyIgLambda")]
        result = light_chain_restricted(result, np.where(kappa > lam, KAPPA, LAMBDA))
    true_ab = labels[is_pc] == code["aberrant_pc"]
    tp = int(np.count_nonzero(result.aberrant & true_ab))
    meta = json.loads(Path(path.as_posix()[:-4] + ".truth.json").read_text())
    n_eval = int(meta["n_evaluable"])
    n_ab = int(round(result.n_aberrant_estimate))  # light-chain subsets: minus their expected normal PCs
    counts = TubeCounts(path.stem, data.n_events, n_eval, int(is_pc.sum()), int(is_pc.sum()) - n_ab, n_ab)
    tq = time_qc(ev, data.channel_index("Time"), [data.channel_index(m) for m in markers])
    clog = ~clean
    time_overlap = (int(np.count_nonzero(~tq.keep & clog)), int(np.count_nonzero(~tq.keep & ~clog)))
    hemo_counts = {role: int(np.count_nonzero((labels == code[lab]) & clean))
                   for role, lab in (("mast_cell", "mast_cell"), ("bcp", "b_cell_precursor"),
                                     ("nrbc", "nrbc"), ("myeloid_precursor", "myeloid_precursor"))}
    return dict(file=path.name, n_pc=int(is_pc.sum()), truth_ab=int(true_ab.sum()), called=result.n_aberrant,
                tp=tp, clusters=[dict(c.aberrancies, **({"LC": c.light_chain} if c.light_chain else {})) for c in result.clusters], warnings=result.warnings, counts=counts,
                time=tq, truth_clog=int(meta.get("n_time_excluded", 0)), time_overlap=time_overlap, hemo_counts=hemo_counts, n_eval=n_eval)


def _has(data, marker: str) -> bool:
    try:
        data.channel_index(marker)
        return True
    except KeyError:
        return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/mrdflow_validate_mrd"))
    ap.add_argument("--scenarios", nargs="+", default=["normal", "hard", "dilution", "time_anomaly", "hemodilution"])
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    for scenario in args.scenarios:
        out = args.workdir / f"{scenario}_{args.events}_{args.seed}"
        if not out.exists():
            cmd = [sys.executable, "-m", "mrdflow", "simulate", scenario, "--out", str(out), "--events",
                   str(args.events), "--seed", str(args.seed)]
            if scenario == "dilution":
                cmd += ["--replicates", "1"]
            subprocess.run(cmd, check=True, cwd=ROOT)
        print(f"\n=== {scenario} ({args.events} events/tube, seed {args.seed})")
        print(f"{'file':28s} {'PCs':>7s} {'truth':>6s} {'called':>6s} {'recall':>6s} {'prec':>6s} {'F1':>5s} "
              f"{'estim.':>6s}  {'time QC (removed; clog events removed/true, + good removed)':40s} clusters")
        samples: dict[str, list] = {}
        for path in sorted(out.glob("*_T[12].fcs")):
            r = analyse_tube(path)
            samples.setdefault(path.stem[:-3], []).append(r)
            rec = r["tp"] / r["truth_ab"] if r["truth_ab"] else float("nan")
            prec = r["tp"] / r["called"] if r["called"] else float("nan")
            f1 = 2 * r["tp"] / (r["truth_ab"] + r["called"]) if r["truth_ab"] + r["called"] else float("nan")
            tq = r["time"]
            hit, extra = r["time_overlap"]
            tinfo = (f"{100 * tq.fraction_removed:.1f}% {','.join(tq.flags) or '-'} "
                     f"(clog {hit}/{r['truth_clog']}, +{extra})")
            print(f"{r['file']:28s} {r['n_pc']:7d} {r['truth_ab']:6d} {r['called']:6d} {rec:6.2f} {prec:6.2f} "
                  f"{f1:5.2f} {r['counts'].n_aberrant_pc:6d}  {tinfo:40s} {r['clusters']}")
            for w in r["warnings"]:
                print(f"    warning: {w}")
        for sid, tubes in samples.items():
            res = quantify([t["counts"] for t in tubes])
            hemo = {}
            for t in tubes:
                for k, v in t["hemo_counts"].items():
                    hemo[k] = hemo.get(k, 0) + v
            h = assess_hemodilution(hemo, sum(t["n_eval"] for t in tubes))
            truth_n = sum(t["truth_ab"] for t in tubes)
            print(f"  {sid:24s} truth aberrant {truth_n:6d}  called {res.n_aberrant_pc:6d}  "
                  f"mrd {res.mrd_fraction:.2e}  status {res.mrd_status:20s} hemodilution {h.status}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
