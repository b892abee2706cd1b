"""Accuracy of the whole MRD pipeline on `mrdflow.simulate` files: expected vs observed, pass/fail per target.

Each sample is generated with :mod:`mrdflow.simulate` (the same code as ``mrdflow simulate``), analysed with
:func:`mrdflow.pipeline.analyze_sample_tubes` exactly as ``mrdflow analyze`` does (panel
``panels/euroflow_ngf_2tube.yaml``, or ``panels/pb_ppcl.yaml`` for blood), compared with its truth side-cars, and
deleted again (``--keep`` keeps the files). The pipeline never sees the truth.

Targets (issue 6, "Done when"):

* dilution — detected (≥ LOD events, POSITIVE or POSITIVE_BELOW_LLOQ) in ≥ 95 % of replicates at 2×10⁻⁶;
  log-log linearity R² ≥ 0.99 over 10⁻²…10⁻⁵ with slope 0.95–1.05; |bias| ≤ 15 % at ≥ 10⁻⁴; per-event F1
  of the aberrant-PC call ≥ 0.95 at ≥ 10⁻³; (and the 0 level negative);
* normal — no POSITIVE / POSITIVE_BELOW_LLOQ call in any normal marrow;
* hard — every hard phenotype detected at 10⁻⁴ (the `hard` clones re-planned at 10⁻⁴);
* instrument — the same status on all three set-ups of a specimen, MRD fraction within 20 %;
* hemodilution — `suspected` at ≥ 50 % blood, `adequate` at 0 %;
* time_anomaly — clogs flagged (and the clean file not), ≥ 90 % of the clogged events excluded, evaluable
  count within 3 % of the truth (which excludes the clog);
* pb — circulating PC % within 10 % (relative) of truth from 0.5 to 20 %, PCL flag right on both sides of 5 %.

The 2×10⁻⁶ detection target is judged on extra replicates acquired at ``--lod-events`` (10 M) events per tube,
EuroFlow's acquisition for that sensitivity (DOMAIN.md §1.3): at 5 M events/tube a file holds ~18 clonal events
on average, i.e. sits *at* the 20-event LOD, where detection is a coin toss for any method; those 5 M rows are
printed as ``[info]``. The ``pb`` scenario places files at 4 % and 6 %, either side of the 5 % PPCL line.

Bias and linearity use the *realised* truth fraction of each file (Poisson sampling of a rare clone makes the
nominal level a poor reference at 10⁻⁵); the nominal level is printed too. At 2×10⁻⁶ the detection target is
also shown for the truth itself (how often the file holds ≥ 20 clonal events at all).

Usage::

    python scripts/validate_accuracy.py                                   # full: 5 M events/tube (2e-6 also at 10 M), seeds 1 2 3
    python scripts/validate_accuracy.py --events 1000000 --seeds 1 --scenarios dilution normal
    python scripts/validate_accuracy.py --out /tmp/val --keep              # keep the generated files
    python scripts/validate_accuracy.py --seeds 1 --out /tmp/v1; python scripts/validate_accuracy.py --seeds 2 \
        --out /tmp/v2; python scripts/validate_accuracy.py --combine /tmp/v1 /tmp/v2   # one run per seed, judged together
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mrdflow.errors import MrdflowError  # noqa: E402
from mrdflow.panel import load_panel  # noqa: E402
from mrdflow.result import SampleResult  # noqa: E402
from mrdflow.pipeline import analyze_sample_tubes  # noqa: E402
from mrdflow.simulate import build_scenario, simulate_sample, truth_mask, truth_path  # noqa: E402

SCENARIOS = ("dilution", "normal", "hard", "instrument", "hemodilution", "time_anomaly", "pb")
DETECTED = ("POSITIVE", "POSITIVE_BELOW_LLOQ")


def plans_for(scenario: str, events: int, lod_events: int = 0):
    """The scenario's sample plans; ``lod_events`` > 0 adds the 2×10⁻⁶ dilution acquired at that many
    events per tube."""
    plans = build_scenario(scenario, events=events, replicates=1)
    if scenario == "hard":  # the issue's target is at 1e-4; the scenario's default level is 1e-3
        plans = [replace(p, mrd=1e-4, sample_id=p.sample_id.replace("HARD_", "HARD1e-4_")) for p in plans]
    if scenario == "dilution" and lod_events and lod_events != events:
        low = [p for p in plans if math.isclose(p.mrd, 2e-6)]
        plans += [replace(p, events=lod_events, sample_id=p.sample_id.replace("_R", f"_{lod_events // 10**6}M_R"))
                  for p in low]
    return plans


def truth_of(out: Path, sample_id: str, tubes) -> dict:
    t = json.loads((out / f"{sample_id}.truth.json").read_text())
    res = {"n_evaluable": t["n_evaluable"], "n_aberrant": t["n_aberrant_pc"], "mrd": t["mrd_fraction"],
           "n_pc": t["n_plasma_cells"], "n_time_excluded": t.get("n_time_excluded", 0)}
    tp = fp = fn = clog_hit = clog_total = 0
    for ta in tubes:
        is_ab = truth_mask(ta.file, "aberrant_pc")
        called = np.zeros(is_ab.size, dtype=bool)
        called[ta.aberrant_index] = True
        tp += int(np.count_nonzero(called & is_ab))
        fp += int(np.count_nonzero(called & ~is_ab))
        fn += int(np.count_nonzero(~called & is_ab))
        with np.load(truth_path(ta.file)) as npz:
            clog = npz["time_excluded"].astype(bool)
        clog_total += int(clog.sum())
        clog_hit += int(np.count_nonzero(clog & ~ta.time_kept))
    res["f1"] = 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else math.nan
    res["tp"], res["fp"], res["fn"] = tp, fp, fn
    res["clog_removed"] = clog_hit / clog_total if clog_total else math.nan
    return res


def run_sample(plan, out: Path, seed: int, scenario: str, panel, keep: bool) -> dict:
    files = sorted(out.glob(f"{plan.sample_id}_T[12].fcs"))
    t0 = time.perf_counter()
    if len(files) != 2 or not (out / f"{plan.sample_id}.truth.json").is_file():
        files = simulate_sample(plan, out, seed, scenario)
        files = sorted(Path(f) for f in files if str(f).endswith(".fcs"))
    t1 = time.perf_counter()
    try:
        result, tubes = analyze_sample_tubes(files, panel, sample_id=plan.sample_id)
    except MrdflowError as exc:  # a failed sample is a failed row, as in a batch run
        result, tubes = SampleResult.failed(plan.sample_id, [str(f) for f in files], str(exc)), []
        print(f"    {plan.sample_id}: FAILED: {exc}", flush=True)
    t2 = time.perf_counter()
    truth = truth_of(out, plan.sample_id, tubes)
    if not result.ok:
        truth["f1"] = math.nan
    row = {"scenario": scenario, "seed": seed, "sample": plan.sample_id, "nominal": plan.mrd,
           "events_per_tube": plan.events,
           "hemodilution_plan": plan.hemodilution, "truth": truth,
           "status": result.mrd_status if result.ok else "FAILED",
           "mrd": result.mrd_fraction, "n_aberrant": result.n_aberrant_pc, "n_evaluable": result.n_events_evaluable,
           "n_pc": result.n_plasma_cells, "hemodilution": result.hemodilution, "flags": result.qc_flags,
           "clonality": result.clonality, "details": {k: result.details.get(k) for k in
                                                       ("pct_circulating_pc", "ppcl", "hemodilution")},
           "seconds": {"simulate": t1 - t0, "analyze": t2 - t1},
           "clusters": {k: v["phenotype"]["clusters"] for k, v in result.details.get("tubes", {}).items()},
           "error": result.error}
    if not keep:
        for f in out.glob(f"{plan.sample_id}*"):
            f.unlink()
    return row


def fmt(x, spec=".3g"):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def print_rows(rows):
    print(f"  {'sample':28s} {'seed':>4s} {'nominal':>8s} {'truth':>9s} {'observed':>9s} {'ratio':>6s} "
          f"{'truth n':>7s} {'called':>6s} {'F1':>5s} {'evaluable':>10s} {'truth ev':>10s} {'status':20s} "
          f"{'hemodil.':9s} flags")
    for r in rows:
        t = r["truth"]
        ratio = r["mrd"] / t["mrd"] if t["mrd"] else math.nan
        print(f"  {r['sample']:28s} {r['seed']:4d} {fmt(r['nominal']):>8s} {fmt(t['mrd']):>9s} {fmt(r['mrd']):>9s} "
              f"{fmt(ratio, '.3f'):>6s} {t['n_aberrant']:7d} {r['n_aberrant']:6d} {fmt(t['f1'], '.3f'):>5s} "
              f"{r['n_evaluable']:10d} {t['n_evaluable']:10d} {r['status']:20s} {r['hemodilution']:9s} "
              f"{';'.join(r['flags']) or '-'}")


def check(name: str, ok: bool, text: str, verdicts: list) -> None:
    verdicts.append((name, ok, text))
    print(f"  [{'PASS' if ok else 'FAIL'}] {name}: {text}")


def judge(scenario: str, rows: list[dict], verdicts: list) -> None:
    if scenario == "dilution":
        at = lambda lvl: [r for r in rows if math.isclose(r["nominal"], lvl)]  # noqa: E731
        # 2e-6 is judged at the acquisition it needs: EuroFlow's ~10⁷ cells per tube (DOMAIN.md §1.3). With
        # 5 M events/tube both tubes hold ~9 M evaluable cells, ~18 clonal events on average — the LOD itself
        # (20 events), which no method detects in 95 % of files; those rows are shown, not judged.
        low = at(2e-6)
        sizes = sorted({r.get("events_per_tube", 0) for r in low})
        for size in sizes:
            group = [r for r in low if r.get("events_per_tube", 0) == size]
            det = sum(r["status"] in DETECTED for r in group) / len(group)
            truth_det = sum(r["truth"]["n_aberrant"] >= 20 for r in group) / len(group)
            text = (f"{det:.0%} of {len(group)} replicates at {size:,} events/tube detected (files holding >= 20 "
                    f"clonal events: {truth_det:.0%}); target >= 95 %")
            if size == max(sizes):  # the largest acquisition (--lod-events) is judged
                check("dilution 2e-6 detection", det >= 0.95, text, verdicts)
            else:
                print(f"  [info] dilution 2e-6 at the LOD: {text.replace('; target >= 95 %', '')}")
        lin = [r for r in rows if 1e-5 <= r["nominal"] <= 1e-2 and r["mrd"] > 0 and r["truth"]["mrd"] > 0]
        if len(lin) >= 3:
            x = np.log10([r["truth"]["mrd"] for r in lin])
            y = np.log10([r["mrd"] for r in lin])
            slope, icpt = np.polyfit(x, y, 1)
            r2 = 1 - np.sum((y - (slope * x + icpt)) ** 2) / np.sum((y - y.mean()) ** 2)
            check("dilution linearity 1e-2..1e-5", r2 >= 0.99 and 0.95 <= slope <= 1.05,
                  f"R² {r2:.4f} (>= 0.99), slope {slope:.3f} (0.95-1.05) over {len(lin)} samples", verdicts)
        hi = [r for r in rows if r["nominal"] >= 1e-4]
        if hi:
            biases = [(r["mrd"] / r["truth"]["mrd"] - 1) for r in hi if r["truth"]["mrd"] > 0]
            worst = max(biases, key=abs)
            check("dilution |bias| at >= 1e-4", abs(worst) <= 0.15,
                  f"worst {100 * worst:+.1f} %, mean {100 * np.mean(biases):+.1f} % (target within ±15 %)", verdicts)
        f1 = [r for r in rows if r["nominal"] >= 1e-3]
        if f1:
            worst = min(r["truth"]["f1"] for r in f1)
            check("dilution per-event F1 at >= 1e-3", worst >= 0.95, f"lowest F1 {worst:.3f} (target >= 0.95)",
                  verdicts)
        zero = at(0.0)
        if zero:
            bad = [r["sample"] for r in zero if r["status"] in DETECTED]
            check("dilution level 0 negative", not bad, f"{len(zero) - len(bad)}/{len(zero)} not detected", verdicts)
    elif scenario == "normal":
        bad = [f"{r['sample']}/{r['seed']}" for r in rows if r["status"] in DETECTED]
        check("normal marrows: no positive call", not bad,
              f"{len(rows) - len(bad)}/{len(rows)} negative" + (f"; positive: {', '.join(bad)}" if bad else ""),
              verdicts)
    elif scenario == "hard":
        bad = [f"{r['sample']}/{r['seed']}" for r in rows if r["status"] not in DETECTED]
        check("hard phenotypes detected at 1e-4", not bad,
              f"{len(rows) - len(bad)}/{len(rows)} detected" + (f"; missed: {', '.join(bad)}" if bad else ""),
              verdicts)
    elif scenario == "instrument":
        for seed in sorted({r["seed"] for r in rows}):
            group = [r for r in rows if r["seed"] == seed]
            statuses = {r["status"] for r in group}
            m = [r["mrd"] for r in group]
            spread = (max(m) - min(m)) / min(m) if min(m) > 0 else math.inf
            check(f"instrument seed {seed}: same status, MRD within 20 %", len(statuses) == 1 and spread <= 0.20,
                  f"statuses {sorted(statuses)}, MRD {', '.join(fmt(x) for x in m)} (max/min − 1 = "
                  f"{100 * spread:.1f} %)", verdicts)
    elif scenario == "hemodilution":
        bad = []
        for r in rows:
            h = r["hemodilution_plan"]
            want = "suspected" if h >= 0.5 else ("adequate" if h == 0 else None)
            if want is not None and r["hemodilution"] != want:
                bad.append(f"{r['sample']}/{r['seed']}: {r['hemodilution']} (want {want})")
        n_judged = sum(1 for r in rows if r["hemodilution_plan"] >= 0.5 or r["hemodilution_plan"] == 0)
        check("hemodilution suspected at >= 50 %, adequate at 0 %", not bad,
              f"{n_judged - len(bad)}/{n_judged} right" + (f"; wrong: {'; '.join(bad)}" if bad else ""), verdicts)
    elif scenario == "time_anomaly":
        bad = []
        for r in rows:
            clogged = r["truth"]["n_time_excluded"] > 0
            flagged = any(f in r["flags"] for f in ("flow_rate_anomaly", "signal_shift"))
            if clogged != flagged:
                bad.append(f"{r['sample']}/{r['seed']}: {'not ' if not flagged else ''}flagged")
            if clogged:
                rel = abs(r["n_evaluable"] / r["truth"]["n_evaluable"] - 1)
                if not (r["truth"]["clog_removed"] >= 0.9 and rel <= 0.03):
                    bad.append(f"{r['sample']}/{r['seed']}: clog removed {100 * r['truth']['clog_removed']:.0f} %, "
                               f"evaluable off by {100 * rel:.1f} %")
        check("time anomalies flagged and excluded", not bad,
              f"{len(rows)} samples" + (f"; problems: {'; '.join(bad)}" if bad else ""), verdicts)
    elif scenario == "pb":
        bad = []
        for r in rows:
            truth_pct = 100 * r["truth"]["n_pc"] / r["truth"]["n_evaluable"]
            obs = r["details"]["pct_circulating_pc"]
            if obs is None:
                bad.append(f"{r['sample']}/{r['seed']}: failed ({r['error']})")
                continue
            if 0.5 * 0.95 <= truth_pct <= 21 and abs(obs / truth_pct - 1) > 0.10:
                bad.append(f"{r['sample']}/{r['seed']}: {obs:.3g} % vs truth {truth_pct:.3g} %")
            if bool(r["details"]["ppcl"]) != (truth_pct >= 5.0):
                bad.append(f"{r['sample']}/{r['seed']}: PCL flag {r['details']['ppcl']} at truth {truth_pct:.3g} %")
        check("pb circulating PC % within 10 %, PCL flag", not bad,
              f"{len(rows)} samples" + (f"; problems: {'; '.join(bad)}" if bad else ""), verdicts)


def combine(dirs: list[Path]) -> int:
    rows = [r for d in dirs for r in json.loads((d / "results.json").read_text())]
    verdicts: list = []
    for scenario in SCENARIOS:
        group = [r for r in rows if r["scenario"] == scenario]
        if not group:
            continue
        seeds = sorted({r["seed"] for r in group})
        print(f"\n=== {scenario} (seeds {' '.join(map(str, seeds))}, from {len(dirs)} run(s))")
        print_rows(group)
        judge(scenario, group, verdicts)
    print(f"\n=== summary ({len(rows)} samples from {', '.join(str(d) for d in dirs)})")
    for name, ok, text in verdicts:
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}: {text}")
    return 0 if all(ok for _, ok, _ in verdicts) else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=5_000_000, help="events per tube (default 5 000 000)")
    ap.add_argument("--lod-events", type=int, default=10_000_000,
                    help="events per tube of the extra 2e-6 dilution replicates (default 10 000 000, EuroFlow's "
                         "acquisition for a 2e-6 LOD; 0: none)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="specimen seeds (default 1 2 3)")
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    ap.add_argument("--out", type=Path, default=Path("/tmp/mrdflow_validate_accuracy"),
                    help="working folder for the generated files and results.json")
    ap.add_argument("--keep", action="store_true", help="keep the generated FCS files")
    ap.add_argument("--combine", type=Path, nargs="+", metavar="DIR",
                    help="do not generate: judge the results.json of earlier runs (e.g. one run per seed) together")
    args = ap.parse_args()
    if args.combine:
        return combine(args.combine)

    bm_panel = load_panel(ROOT / "panels" / "euroflow_ngf_2tube.yaml")
    pb_panel = load_panel(ROOT / "panels" / "pb_ppcl.yaml")
    all_rows: list[dict] = []
    verdicts: list = []
    t_start = time.perf_counter()
    for scenario in args.scenarios:
        rows = []
        print(f"\n=== {scenario} ({args.events:,} events/tube, seeds {' '.join(map(str, args.seeds))})", flush=True)
        for seed in args.seeds:
            out = args.out / f"{scenario}_{args.events}_{seed}"
            out.mkdir(parents=True, exist_ok=True)
            for plan in plans_for(scenario, args.events, args.lod_events):
                panel = pb_panel if scenario == "pb" else bm_panel
                rows.append(run_sample(plan, out, seed, scenario, panel, args.keep))
                r = rows[-1]
                print(f"    {r['sample']} seed {seed}: {r['status']} mrd {fmt(r['mrd'])} (truth {fmt(r['truth']['mrd'])})"
                      f" [{r['seconds']['simulate']:.0f}+{r['seconds']['analyze']:.0f} s]", flush=True)
            if not args.keep:
                shutil.rmtree(out, ignore_errors=True)
        print_rows(rows)
        judge(scenario, rows, verdicts)
        all_rows.extend(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(all_rows, indent=1, default=float))
    print(f"\n=== summary ({args.events:,} events/tube, seeds {' '.join(map(str, args.seeds))}, "
          f"{time.perf_counter() - t_start:.0f} s)")
    for name, ok, text in verdicts:
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}: {text}")
    return 0 if all(ok for _, ok, _ in verdicts) else 1


if __name__ == "__main__":
    raise SystemExit(main())
