"""Benchmark the numba kernels against flowutils on one synthetic NGF-sized tube.

Prints, in one run on a float32 tube of ``--events`` x 13 channels (default 10 million):

* the fused compensation + logicle pass over 8 fluorescence channels (``mrdflow.scaling.scale_events``)
  vs ``flowutils.compensate.compensate`` + ``flowutils.transforms.logicle`` (target: >= 20x faster);
* polygon membership (``PolygonGate.mask``) vs ``flowutils.gating.points_in_polygon`` (target: >= 3x);
* ``np.copy`` of the event matrix, the memory-bandwidth floor of any full pass;
* the peak RSS of our pass measured in a fresh subprocess (target: <= 1.3 x array size + 150 MB).

Kernels are compiled (warmed up) before timing; each of our timings is the best of ``--repeat`` runs,
flowutils runs once (it takes tens of seconds). Usage::

    python scripts/bench_kernels.py                # 10 M events
    python scripts/bench_kernels.py --events 2000000 --repeat 5
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from mrdflow.gating.gates import PolygonGate  # noqa: E402
from mrdflow.scaling import scale_events  # noqa: E402
from mrdflow.transforms import Logicle  # noqa: E402

CHANNELS = ["FSC-A", "FSC-H", "SSC-A"] + [f"FL{i}-A" for i in range(1, 9)] + ["SSC-H", "Time"]
FLUO = CHANNELS[3:11]
SCATTER = ["FSC-A", "FSC-H", "SSC-A", "SSC-H"]
T = 262144.0
# a non-convex 8-vertex gate drawn on FL1-A x FL2-A in logicle units (gates live in transformed space)
POLYGON = [(0.30, 0.25), (0.55, 0.22), (0.80, 0.45), (0.85, 0.80),
           (0.60, 0.90), (0.35, 0.70), (0.42, 0.50), (0.28, 0.40)]


class _Spill:
    """A spillover matrix as mrdflow.fcs.Spillover presents it (channels, matrix, cached inverse)."""

    def __init__(self, channels: list[str], matrix: np.ndarray):
        self.channels, self.matrix, self.source = channels, matrix, "synthetic"
        self._inv = np.linalg.inv(matrix)

    def inverse(self) -> np.ndarray:
        return self._inv


def make_spillover(seed: int = 7) -> _Spill:
    rng = np.random.default_rng(seed)
    k = len(FLUO)
    m = np.eye(k) + rng.uniform(0.0, 0.15, size=(k, k)) * (rng.random((k, k)) < 0.5) * (1 - np.eye(k))
    return _Spill(list(FLUO), m)


def make_tube(n: int, spill: _Spill, seed: int = 1, chunk: int = 250_000) -> np.ndarray:
    """A float32 tube: scatter uniform-ish, fluorescence lognormal (with negatives) mixed by the spillover."""
    rng = np.random.default_rng(seed)
    events = np.empty((n, len(CHANNELS)), dtype=np.float32)
    fl = [CHANNELS.index(c) for c in FLUO]
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        m = stop - start
        events[start:stop, 0:3] = rng.uniform(0, T, size=(m, 3))
        true = rng.lognormal(6.0, 2.0, size=(m, len(fl))) - 300.0
        events[start:stop, fl] = true @ spill.matrix
        events[start:stop, 11] = rng.uniform(0, T, size=m)
        events[start:stop, 12] = np.arange(start, stop) * 1e-3
    return events


def transforms() -> dict:
    tr = {c: Logicle(T, 0.5, 4.5, 0.0) for c in FLUO}
    return tr


def best_of(repeat: int, setup, run) -> float:
    best = float("inf")
    for _ in range(repeat):
        arg = setup()
        t0 = time.perf_counter()
        run(arg)
        best = min(best, time.perf_counter() - t0)
    return best


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM; unlike ru_maxrss it is not inherited across fork/exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_child(n: int) -> None:
    """Subprocess body: build the tube, run our fused pass and polygon in place, print peak RSS (MB)."""
    spill = make_spillover()
    tr = transforms()
    gate = PolygonGate(("FL1-A", "FL2-A"), POLYGON)
    small = make_tube(1000, spill)
    scale_events(small, CHANNELS, spill, tr)  # load the compiled kernels before measuring
    gate.mask(small, {c: i for i, c in enumerate(CHANNELS)})
    base = peak_rss_mb()
    events = make_tube(n, spill)
    after_alloc = peak_rss_mb()
    scale_events(events, CHANNELS, spill, tr)
    mask = gate.mask(events, {c: i for i, c in enumerate(CHANNELS)})
    peak = peak_rss_mb()
    print(f"{base:.1f} {after_alloc:.1f} {peak:.1f} {events.nbytes / 2**20:.1f} {int(mask.sum())}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rss_child:
        rss_child(args.events)
        return 0

    from flowutils import compensate as fu_comp
    from flowutils import gating as fu_gating
    from flowutils import transforms as fu_tr
    import numba

    n = args.events
    spill = make_spillover()
    fl_idx = [CHANNELS.index(c) for c in FLUO]
    index = {c: i for i, c in enumerate(CHANNELS)}
    gate = PolygonGate(("FL1-A", "FL2-A"), POLYGON)

    print(f"machine: {os.cpu_count()} CPUs, numba threads {numba.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.2f} (shared machine: timings are noisy)")
    small = make_tube(20_000, spill)
    scale_events(small.copy(), CHANNELS, spill, transforms())  # compile / load the cached kernels
    gate.mask(small, index)
    fu_gating.points_in_polygon(np.array(POLYGON), small[:, [3, 4]].astype(np.float64))
    out = subprocess.run([sys.executable, __file__, "--rss-child", "--events", str(n)],
                         capture_output=True, text=True, check=True)  # before this process grows
    base, after_alloc, peak, array_mb, _ = (float(v) for v in out.stdout.split())
    rss_target = 1.3 * array_mb + 150

    t0 = time.perf_counter()
    events = make_tube(n, spill)
    print(f"tube: {n:,} events x {len(CHANNELS)} channels float32 = {events.nbytes / 2**20:.0f} MB "
          f"(generated in {time.perf_counter() - t0:.1f} s)")

    t_copy = best_of(args.repeat, lambda: None, lambda _: np.copy(events))
    work = np.empty_like(events)

    def fresh():
        np.copyto(work, events)
        return work

    t_ours = best_of(args.repeat, fresh, lambda w: scale_events(w, CHANNELS, spill, transforms()))
    ours = work  # holds the last run's result

    t0 = time.perf_counter()
    ref = fu_comp.compensate(events, spill.matrix, fl_idx)
    ref = fu_tr.logicle(ref, fl_idx, t=T, m=4.5, w=0.5, a=0.0)
    t_fu = time.perf_counter() - t0
    max_diff = float(np.max(np.abs(ours[:, fl_idx] - ref[:, fl_idx])))
    del ref

    scaled = ours  # polygon gates apply to the compensated, logicle-scaled events
    t_poly = best_of(args.repeat, lambda: None, lambda _: gate.mask(scaled, index))
    ours_mask = gate.mask(scaled, index)
    t0 = time.perf_counter()
    pts = np.ascontiguousarray(scaled[:, [index["FL1-A"], index["FL2-A"]]], dtype=np.float64)
    t_extract = time.perf_counter() - t0
    t0 = time.perf_counter()
    fu_mask = fu_gating.points_in_polygon(np.array(POLYGON, dtype=np.float64), pts)
    t_fu_poly = time.perf_counter() - t0
    poly_diff = int((ours_mask != fu_mask).sum())
    del pts

    def line(name, value, extra=""):
        print(f"  {name:<58} {value:>12} {extra}")

    print("results")
    line("np.copy of the event matrix (memory floor)", f"{t_copy:.3f} s")
    line("ours: fused compensation + logicle, 8 channels", f"{t_ours:.3f} s",
         f"= {t_ours / t_copy:.1f}x the copy")
    line("flowutils: compensate + transforms.logicle", f"{t_fu:.3f} s")
    line("  speed-up (target >= 20x)", f"{t_fu / t_ours:.1f}x",
         "PASS" if t_fu / t_ours >= 20 else "MISS")
    line("  max |ours - flowutils| on the 8 channels (scale units)", f"{max_diff:.2e}")
    line("ours: polygon (8 vertices, logicle units) on the event matrix", f"{t_poly:.3f} s",
         f"({ours_mask.mean():.1%} inside)")
    line("flowutils: points_in_polygon on an (n, 2) float64 array", f"{t_fu_poly:.3f} s",
         f"(+ {t_extract:.3f} s to extract that array)")
    line("  speed-up, call only (target >= 3x)", f"{t_fu_poly / t_poly:.1f}x",
         "PASS" if t_fu_poly / t_poly >= 3 else "MISS")
    line("  speed-up, including the column extraction", f"{(t_fu_poly + t_extract) / t_poly:.1f}x")
    line("  events classified differently (points exactly on an edge)", f"{poly_diff}")
    line("peak RSS of our pass in a subprocess", f"{peak:.0f} MB",
         f"(interpreter + imports + compiled kernels {base:.0f} MB, with the tube {after_alloc:.0f} MB, "
         f"tube {array_mb:.0f} MB)")
    line("  target <= 1.3 x array + 150 MB", f"{rss_target:.0f} MB", "PASS" if peak <= rss_target else "MISS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
