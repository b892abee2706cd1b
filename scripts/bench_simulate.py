#!/usr/bin/env python
"""Benchmark: time and peak memory to simulate and write one large NGF tube.

    python scripts/bench_simulate.py [--events 5000000]

Baseline measured in the same run: drawing the same number of float32 normal deviates (n × 13) with numpy
and writing them with ``ndarray.tofile`` — the floor for "make n×13 random numbers and put them on disk".
Peak memory is the process's maximum RSS, printed as a multiple of the event matrix (n × 13 × 4 bytes).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mrdflow.simulate.generate import simulate_sample  # noqa: E402
from mrdflow.simulate.scenarios import SamplePlan, SpecimenPlan  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5_000_000)
    args = parser.parse_args()
    n = args.events
    matrix_mb = n * 13 * 4 / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        rng = np.random.default_rng(0)
        base = rng.standard_normal((n, 13), dtype=np.float32)
        base.tofile(Path(tmp) / "baseline.bin")
        t_base = time.perf_counter() - t0
        del base
        rss_base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3

        plan = SamplePlan("BENCH", SpecimenPlan("BENCH"), mrd=1e-4, events=n, tubes=(1,))
        t0 = time.perf_counter()
        simulate_sample(plan, Path(tmp), seed=1, scenario="bench")
        t_sim = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    print(f"events per tube            : {n:,} (event matrix {matrix_mb:.0f} MB)")
    print(f"baseline numpy randn+tofile: {t_base:6.2f} s")
    print(f"mrdflow simulate one tube  : {t_sim:6.2f} s   ratio {t_sim / t_base:.1f}x baseline, "
          f"{n / t_sim / 1e6:.2f} M events/s")
    print(f"peak RSS                   : {rss:6.0f} MB = {rss / matrix_mb:.1f}x the event matrix "
          f"(baseline step peak {rss_base:.0f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
