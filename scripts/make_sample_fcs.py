#!/usr/bin/env python
"""Regenerate ``sample_fcs/`` (the ``demo`` scenario) byte for byte.

    python scripts/make_sample_fcs.py                 # rewrite sample_fcs/
    python scripts/make_sample_fcs.py --out /tmp/x    # elsewhere
    python scripts/make_sample_fcs.py --sample DEMO03 --out /tmp/x   # one sample only

Same code + same seed → identical bytes (FCS keywords carry no wall-clock time; the npz side-cars have fixed
zip timestamps).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mrdflow.simulate.generate import simulate_plans  # noqa: E402
from mrdflow.simulate.scenarios import build_scenario  # noqa: E402

#: the seed of the committed sample files
SAMPLE_SEED = 20261121


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "sample_fcs", help="output directory (default sample_fcs/)")
    parser.add_argument("--sample", action="append", help="only this sample id (repeatable)")
    args = parser.parse_args(argv)
    plans = build_scenario("demo")
    if args.sample:
        unknown = set(args.sample) - {p.sample_id for p in plans}
        if unknown:
            parser.error(f"unknown demo sample(s) {sorted(unknown)}; known: {[p.sample_id for p in plans]}")
        plans = [p for p in plans if p.sample_id in args.sample]
    written = simulate_plans(plans, args.out, SAMPLE_SEED, "demo", lambda p: print(p.sample_id, "-", p.note))
    total = sum(p.stat().st_size for p in written)
    print(f"wrote {len(written)} files, {total / 1e6:.1f} MB, to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
