"""Benchmark: read a 5 M-event × 13-channel float32 FCS file (not a test; run by hand).

Prints, in one run on the same file (page cache warm for all readers): our ``read_fcs`` time,
``np.fromfile`` of the DATA segment (the floor), flowio's and FlowKit's times and the ratios, and the
peak RSS of our read measured in a fresh subprocess.

Targets: ours ≤ 1.5 × np.fromfile; peak RSS ≤ 1.2 × DATA size + 150 MB.

    python scripts/bench_read.py [--events 5000000] [--channels 13] [--skip-slow]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mrdflow.fcs import read_fcs  # noqa: E402

WRITE_CHILD = """
import sys
sys.path.insert(0, {repo!r})
import numpy as np
from mrdflow.fcs import write_fcs
rng = np.random.default_rng(0)
events = rng.standard_normal(({events}, {channels}), dtype=np.float32)
events *= 1000.0
write_fcs({path!r}, events, [f"FL{{j}}-A" for j in range({channels})], byteorder={byteorder!r})
"""

# ru_maxrss is inherited across fork, so both children are started while this process is still small
RSS_CHILD = """
import resource, sys
sys.path.insert(0, {repo!r})
from mrdflow.fcs import read_fcs
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
data = read_fcs({path!r})
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before, after, data.n_events)
"""


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        del result
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--channels", type=int, default=13)
    parser.add_argument("--repeat", type=int, default=3, help="repeats for ours and np.fromfile (best is kept)")
    parser.add_argument("--byteorder", choices=["<", ">"], default="<",
                        help="DATA byte order: '<' little-endian (default), '>' big-endian as BD FACSDiva writes")
    parser.add_argument("--skip-slow", action="store_true", help="skip flowio and FlowKit")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.fcs"
        subprocess.run([sys.executable, "-c", WRITE_CHILD.format(repo=str(REPO), path=str(path), events=args.events,
                                                                 channels=args.channels, byteorder=args.byteorder)],
                       check=True)
        data_bytes = args.events * args.channels * 4
        print(f"file: {args.events:,} events × {args.channels} channels float32 ({args.byteorder}), "
              f"DATA {data_bytes / 1e6:.1f} MB")
        out = subprocess.run([sys.executable, "-c", RSS_CHILD.format(repo=str(REPO), path=str(path))],
                             capture_output=True, text=True, check=True).stdout.split()
        before_kb, peak_kb = int(out[0]), int(out[1])

        probe = read_fcs(path)
        start, count = probe.data_start, probe.n_events * probe.n_channels
        del probe
        path.read_bytes()  # warm the page cache so every reader sees the same conditions

        def ours():
            return read_fcs(path).events

        def fromfile():
            return np.fromfile(path, dtype=args.byteorder + "f4", count=count, offset=start).reshape(-1, args.channels)

        t_floor = best_of(fromfile, args.repeat)
        t_ours = best_of(ours, args.repeat)
        print(f"np.fromfile(DATA)   {t_floor:8.3f} s   (baseline)")
        print(f"mrdflow read_fcs    {t_ours:8.3f} s   ratio {t_ours / t_floor:5.2f}× np.fromfile   (target ≤ 1.5×)")

        if not args.skip_slow:
            try:
                import flowio

                t = best_of(lambda: np.reshape(np.asarray(flowio.FlowData(str(path)).events, dtype=np.float32),
                                               (-1, args.channels)), 1)
                print(f"flowio FlowData     {t:8.3f} s   ratio {t / t_floor:5.2f}× np.fromfile, {t / t_ours:5.2f}× ours")
            except ImportError:
                print("flowio not installed; skipped")
            try:
                import flowkit

                t = best_of(lambda: flowkit.Sample(str(path)).get_events(source="raw"), 1)
                print(f"FlowKit Sample      {t:8.3f} s   ratio {t / t_floor:5.2f}× np.fromfile, {t / t_ours:5.2f}× ours")
            except ImportError:
                print("flowkit not installed; skipped")

        limit = 1.2 * data_bytes + 150e6
        peak = peak_kb * 1024
        print(f"peak RSS of read_fcs in a fresh process: {peak / 1e6:.1f} MB (after imports {before_kb * 1024 / 1e6:.1f} MB); "
              f"target ≤ 1.2×DATA + 150 MB = {limit / 1e6:.1f} MB -> {'OK' if peak <= limit else 'OVER'}")
        ok = t_ours <= 1.5 * t_floor and peak <= limit
        print("targets met" if ok else "TARGET MISSED")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
