#!/usr/bin/env python
"""Benchmark: the whole per-tube analysis and the batch, against named baselines measured in the same run.

On one synthetic 5 M-event NGF tube 1 (``mrdflow.simulate``, written to a temporary folder) it prints:

* ``np.fromfile`` of the DATA segment — the floor (target: our analysis ≤ 6× it);
* our whole per-tube analysis, no report (``mrdflow.pipeline.analyze_sample``: read → compensate + transform →
  time QC → gate → phenotype → quantify);
* FlowKit reading the same file, compensating, logicle-transforming and gating it with an equivalent fixed-gate
  strategy: the gates our analysis resolved on this tube, exported with ``mrdflow.gating.export`` (target: ours
  ≥ 25× faster), and whether every population count agrees;
* the peak RSS of our analysis in a fresh process (``VmHWM``), total and above the process's size after imports,
  against the DATA size (target ≤ 1.5×); and the same after one small warm-up sample, i.e. without the one-off
  ~45 MB of numba machine code and the parsed template a batch worker loads for its first sample;
* batch throughput: 8 samples (hard links to the benchmark tube, or to one ``--batch-events`` tube) with
  ``mrdflow run`` on a LocalCluster of 1 and of 2 workers, no reports (target ≥ 1.8×); each run starts its own
  cluster, whose start-up is in the wall time and not in the analysis span. Two pairs of lines:

  - **default sizing** — what ``mrdflow run`` does: each worker gets ``cores // workers`` numba threads, so a lone
    worker's parallel kernels already use every core of this machine and 2 workers gain only what those
    kernels leave idle (the serial Python steps, I/O); this is the throughput a user sees;
  - **1 numba thread per worker** — both runs with ``NUMBA_NUM_THREADS=1`` in every worker: Dask's scaling over
    samples alone, with the kernels' own threading taken out of the comparison.

  Each line also gives the mean seconds per sample on a worker (``run.json``), to tell the two effects apart,
  and the CPU seconds the worker processes used (this process's children): a lone worker that keeps more than
  one core busy (its numba threads, and the SHA-256 of each input, computed on a second thread while the file
  is read) leaves less for a second worker to gain, at most ``cores / busy``. Under each pair, the steady state:
  the mean seconds per sample without each worker's first sample (which also pays the worker's imports and the
  load of numba's cached machine code), and the ratio those give.

  Then the machine's own baseline for the same ratio, without Dask: two plain processes (1 numba thread each)
  running the same analysis side by side against one alone, and the same for a pure-Python loop that touches
  no memory. On a virtual machine whose two vCPUs share a physical core or a busy host, even the loop does not
  reach 2×; the batch's ratio is to be read against these, measured in the same run.

numba caches are warmed before anything is timed; our timings are the best of ``--repeat`` runs, ``np.fromfile``
the best of at least 5 (it takes ~0.07 s, and on a shared machine one read in a few takes 3-7x longer); FlowKit
runs once. The CPU may be shared with other work: the ratios, measured side by side, are what to read.

Usage::

    python scripts/bench_pipeline.py [--events 5000000] [--batch-events 0] [--repeat 2] [--no-flowkit]
                                     [--no-batch] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mrdflow.fcs import read_fcs  # noqa: E402
from mrdflow.panel import load_panel  # noqa: E402
from mrdflow.provenance import sha256_file  # noqa: E402

RSS_CHILD = """
import sys
sys.path.insert(0, {repo!r})
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
from mrdflow.pipeline import analyze_sample
from mrdflow.panel import load_panel
panel = load_panel({panel!r})
import mrdflow.kernels, mrdflow.gating.engine, mrdflow.qc.time, mrdflow.mrd  # imports count as baseline
import scipy.stats  # so does the one the analysis imports lazily (Fisher's exact test on a light-chain excess, ~45 MB)
if {warm!r}:
    analyze_sample([{warm!r}], panel)  # a worker's steady state: numba code loaded, template parsed
before = hwm()
result = analyze_sample([{path!r}], panel)
print(before, hwm(), result.n_events_acquired)
"""


# One plain process (no Dask) for the machine's own two-process scaling: it gets ready (imports, numba code, a
# warm-up sample), says so, waits for "go" on stdin, then times `repeat` units of work and prints seconds per unit.
PAIR_CHILD = """
import sys, time
sys.path.insert(0, {repo!r})
if {mode!r} == "analysis":
    from mrdflow.pipeline import analyze_sample
    from mrdflow.panel import load_panel
    panel = load_panel({panel!r})
    analyze_sample([{warm!r}], panel, hashes={{}})
    def work():
        analyze_sample([{path!r}], panel, hashes={{}})  # as a batch worker does: the input hashed while read
else:
    def work():
        s = 0
        for i in range(6_000_000):
            s += i * i
work()
print("ready", flush=True)
sys.stdin.readline()
t0 = time.perf_counter()
for _ in range({repeat}):
    work()
print((time.perf_counter() - t0) / {repeat}, flush=True)
"""


def best_of(fn, repeat: int) -> tuple[float, object, float]:
    """(best wall seconds, the last result, this process's CPU seconds — every thread — in the best run)."""
    best, out, cpu = float("inf"), None, float("nan")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall = time.perf_counter() - t0
        if wall < best:
            best, cpu = wall, time.process_time() - c0
    return best, out, cpu


def simulate_tube(folder: Path, sample_id: str, events: int, seed: int) -> Path:
    from mrdflow.simulate import SamplePlan, SpecimenPlan, simulate_sample

    plan = SamplePlan(sample_id, SpecimenPlan(key="bench"), mrd=1e-4, events=events, tubes=(1,))
    written = simulate_sample(plan, folder, seed)
    return next(p for p in written if p.suffix == ".fcs")


def write_panel(folder: Path, fcs_glob: str) -> Path:
    doc = yaml.safe_load((REPO / "panels" / "demo.yaml").read_text())
    # both tubes stay listed (the template drops tube 2's light-chain populations from tube 1 by that); the
    # benchmark files are tube 1 only
    doc.update(files=fcs_glob, template=str(REPO / "gating_templates" / "euroflow_ngf.yaml"), output_dir="out")
    path = folder / "panel.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def flowkit_baseline(panel_path: Path, fcs_path: Path) -> tuple[float, bool, int]:
    """FlowKit read + compensate + logicle + gate with our resolved gates; (seconds, counts equal, populations)."""
    import flowkit as fk

    from mrdflow.gating.engine import gate_events
    from mrdflow.gating.export import to_gating_strategy
    from mrdflow.gating.template import load_template
    from mrdflow.tube import prepare_tube

    panel = load_panel(panel_path)
    fcs = read_fcs(fcs_path, linearize=True)
    setup = prepare_tube(panel, "tube1", fcs, load_template(panel.template))
    tmpl = getattr(setup, "template", None) or load_template(panel.template)
    # the resolved gates of this tube, evaluated from the root (FlowKit has no time-QC mask)
    result = gate_events(fcs.events, setup.index, tmpl, upper_limits=setup.upper_limits)
    gs = to_gating_strategy(result, setup, [c.name for c in fcs.channels])
    del fcs
    t0 = time.perf_counter()
    sample = fk.Sample(str(fcs_path))
    fk_res = gs.gate_sample(sample)
    seconds = time.perf_counter() - t0
    same = all(fk_res.get_gate_count(n) == result.counts[n] for n in tmpl.nodes)
    return seconds, same, len(tmpl.nodes)


def plain_processes(code: str, n: int) -> list[float]:
    """Seconds per unit of work in each of ``n`` plain processes running ``code`` (PAIR_CHILD) side by side, 1 numba
    thread each, their timed parts started together once all are ready."""
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=env) for _ in range(n)]
    try:
        for proc in procs:
            if proc.stdout.readline().strip() != "ready":
                raise SystemExit(f"plain-process baseline: a child failed (exit code {proc.wait()})")
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        return [float(proc.stdout.readline()) for proc in procs]
    finally:
        for proc in procs:
            proc.stdin.close()
            proc.wait()


def pair_scaling(code: str) -> tuple[float, float, float]:
    """(seconds per unit alone, mean seconds per unit with two side by side, throughput ratio 2 * alone / pair)."""
    alone = plain_processes(code, 1)[0]
    pair = plain_processes(code, 2)
    mean = sum(pair) / 2
    return alone, mean, 2 * alone / mean


def batch_seconds(panel_path: Path, out: Path, workers: int,
                  numba_threads: int | None = None) -> tuple[float, float, float, float, float, float]:
    """(wall seconds of ``run_batch`` incl. cluster start-up, seconds from the first sample's start to the last
    sample's end on the workers, mean seconds per sample on a worker, CPU seconds the worker processes used in
    all — start-up included; they are this process's children, reaped when the cluster closes —, mean seconds of
    each worker's first sample (its imports and numba's cached machine code load then), mean seconds of the
    other samples: the steady state)."""
    import json
    from datetime import datetime

    from mrdflow.batch import run_batch

    t0 = time.perf_counter()
    before = os.times()
    summary = run_batch(panel_path, out, workers=workers, reports=False, echo=lambda s: None,
                        numba_threads=numba_threads)
    after = os.times()
    seconds = time.perf_counter() - t0
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    if summary.n_failed:
        raise SystemExit(f"batch with {workers} worker(s): {summary.n_failed} sample(s) failed: "
                         f"{[r.error for r in summary.results if not r.ok][:1]}")
    samples = json.loads((out / "run.json").read_text())["samples"]
    starts = [datetime.strptime(s["analysed_at"], "%Y-%m-%dT%H:%M:%S.%fZ").timestamp() for s in samples]
    span = max(t + s["seconds"] for t, s in zip(starts, samples)) - min(starts)
    first, rest, seen = [], [], set()
    for _, s in sorted(zip(starts, samples), key=lambda ts: ts[0]):
        (rest if s["worker"] in seen else first).append(s["seconds"])
        seen.add(s["worker"])
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    return seconds, span, sum(s["seconds"] for s in samples) / len(samples), cpu, mean(first), mean(rest)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=5_000_000, help="events in the benchmark tube (5 M)")
    ap.add_argument("--batch-events", type=int, default=0,
                    help="events per tube of the 8-sample batch (default 0: hard links to the benchmark tube)")
    ap.add_argument("--repeat", type=int, default=2, help="best of this many runs of ours (2)")
    ap.add_argument("--no-flowkit", action="store_true", help="skip the FlowKit baseline")
    ap.add_argument("--no-batch", action="store_true", help="skip the batch throughput")
    ap.add_argument("--keep", type=Path, default=None, help="work in this folder and keep the files")
    args = ap.parse_args()

    tmp = None
    if args.keep is None:
        tmp = tempfile.TemporaryDirectory(prefix="mrdflow-bench-")
        work = Path(tmp.name)
    else:
        work = args.keep
        work.mkdir(parents=True, exist_ok=True)
    try:
        big_dir = work / "big"
        big = big_dir / "BENCH_T1.fcs"
        big_dir.mkdir(parents=True, exist_ok=True)
        panel_path = write_panel(big_dir, "BENCH_T1.fcs")
        if not big.exists():
            t0 = time.perf_counter()
            big = simulate_tube(big_dir, "BENCH", args.events, seed=1)
            print(f"simulated {args.events:,} events in {time.perf_counter() - t0:.1f} s -> {big}")
        fcs = read_fcs(big)
        n, p = fcs.events.shape
        start, length = fcs.data_start, fcs.data_length
        del fcs
        data_mb = length / 1e6
        print(f"tube: {n:,} events × {p} parameters, DATA {data_mb:.0f} MB (float32); "
              f"CPU: {os.cpu_count()} core(s), shared with other work — read the ratios")

        from mrdflow.pipeline import analyze_sample

        panel = load_panel(panel_path)
        warm = big_dir / "warm" / "WARM_T1.fcs"
        if not warm.exists():
            warm = simulate_tube(warm.parent, "WARM", 50_000, seed=2)
        analyze_sample([warm], panel)  # numba compilation / cache load, imports

        # the floor is cheap and easily disturbed on a shared machine (one read in a few takes 3-7x longer): best of 5+
        t_floor, _, _ = best_of(lambda: np.fromfile(big, dtype="<f4", count=length // 4, offset=start),
                                max(args.repeat, 5))
        t_ours, result, cpu_ours = best_of(lambda: analyze_sample([big], panel), args.repeat)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        print(f"np.fromfile of DATA (floor)                : {t_floor:8.3f} s")
        print(f"mrdflow analyze_sample, whole tube         : {t_ours:8.3f} s   = {t_ours / t_floor:.1f}× np.fromfile "
              f"(target ≤ 6×); status {result.status}, {result.mrd_status}, "
              f"{result.n_events_evaluable:,} evaluable")
        # the ratio's floor on this machine for the analysis as it is: its CPU work spread over every core
        print(f"  its CPU work: {cpu_ours:.3f} core-s; spread perfectly over the {cores} core(s) ≥ "
              f"{cpu_ours / cores:.3f} s = {cpu_ours / cores / t_floor:.1f}× np.fromfile (each step on every core)")
        if not args.no_flowkit:
            t_fk, same, n_pops = flowkit_baseline(panel_path, big)
            print(f"FlowKit read+comp+logicle+gate (fixed)     : {t_fk:8.3f} s   ours is {t_fk / t_ours:.1f}× faster "
                  f"(target ≥ 25×); all {n_pops} population counts identical: {same}")

        for label, warm_path, base in (("fresh process", "", "after imports"),
                                       ("after a 50 k warm-up sample", str(warm), "after the warm-up")):
            code = RSS_CHILD.format(repo=str(REPO), panel=str(panel_path), path=str(big), warm=warm_path)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            before, peak, _ = (int(x) for x in out.stdout.split()[-3:])
            print(f"peak RSS, {label:33s}: {peak / 1e6:8.0f} MB total = {peak / length:.2f}× DATA; "
                  f"{(peak - before) / 1e6:.0f} MB above the {before / 1e6:.0f} MB {base} = "
                  f"{(peak - before) / length:.2f}× DATA (target ≤ 1.5×)")

        if not args.no_batch:
            bdir = work / "batch"
            fdir = bdir / "fcs"
            fdir.mkdir(parents=True, exist_ok=True)
            src = fdir / "B00_T1.fcs"
            if not src.exists():
                if args.batch_events:
                    src = simulate_tube(fdir, "B00", args.batch_events, seed=3)
                    for f in [*fdir.glob("*.json"), *fdir.glob("*.npz")]:
                        f.unlink()
                else:
                    os.link(big, src)
            for k in range(1, 8):
                dst = fdir / f"B{k:02d}_T1.fcs"
                if not dst.exists():
                    os.link(src, dst)
            bpanel = write_panel(bdir, "fcs/*.fcs")
            label = f"batch of 8 × {args.batch_events or n:,}-event tubes"
            for sizing, threads in (("default sizing", None), ("1 numba thread per worker", 1)):
                (w1, s1, m1, c1, f1, r1) = batch_seconds(bpanel, bdir / f"w1-{threads}", 1, threads)
                (w2, s2, m2, c2, f2, r2) = batch_seconds(bpanel, bdir / f"w2-{threads}", 2, threads)
                t1, t2 = threads or max(1, cores), threads or max(1, cores // 2)
                busy = c1 / w1  # cores the lone worker kept busy (its numba threads, the SHA-256 thread, start-up)
                print(f"{label}, {sizing}, 1 worker  ({t1} numba thread(s)): {w1:8.3f} s wall "
                      f"(analysis {s1:.3f} s, {m1:.2f} s per sample; worker CPU {c1:.1f} s = {busy:.2f} cores busy)")
                print(f"{label}, {sizing}, 2 workers ({t2} numba thread(s) each): {w2:8.3f} s wall "
                      f"(analysis {s2:.3f} s, {m2:.2f} s per sample; worker CPU {c2:.1f} s = {c2 / w2:.2f} cores "
                      f"busy)   = {w1 / w2:.2f}× throughput wall, {s1 / s2:.2f}× without cluster start-up "
                      f"(target ≥ 1.8×; with the lone worker already keeping {busy:.2f} of the {cores} cores busy, "
                      f"2 workers can give at most {min(2.0, cores / busy):.2f}×)")
                print(f"  steady state, each worker's first sample left out: {r1:.2f} s per sample alone, {r2:.2f} s "
                      f"side by side = {2 * r1 / r2:.2f}× throughput; a worker's first sample took {f1:.2f} s alone, "
                      f"{f2:.2f} s with two starting together (imports, numba's cached machine code)")
            sha_s, _, _ = best_of(lambda: sha256_file(big), 3)
            print(f"  each sample's input is also hashed (SHA-256, run.json provenance and the --resume key): "
                  f"{sha_s:.3f} s of one core per {length / 1e6:.0f} MB file here, which a lone worker runs on another "
                  f"core while it reads, and 2 workers on 2 cores must fit beside their analyses")
            # what this machine gives two processes without Dask, measured now: the batch's ratio is read against it
            for what, mode in (("the same analysis", "analysis"), ("a pure-Python loop (no memory traffic)", "compute")):
                code = PAIR_CHILD.format(repo=str(REPO), mode=mode, panel=str(panel_path), warm=str(warm),
                                         path=str(big), repeat=4)
                alone, pair, ratio = pair_scaling(code)
                print(f"machine baseline, 2 plain processes (no Dask, 1 numba thread each), {what}: {alone:.3f} s "
                      f"alone, {pair:.3f} s side by side = {ratio:.2f}× throughput")
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
