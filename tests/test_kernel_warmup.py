"""The kernel warm-up a batch runs on its workers before the first sample (mrdflow.kernels.warmup): its parts
cover every listed kernel once and are balanced, every listed signature builds, and after it analysing samples
and rendering their reports needs no kernel the warm-up did not build (so a first run compiles each once)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrdflow.kernels.warmup import SIGNATURES, partition, warm_kernels

REPO = Path(__file__).resolve().parents[1]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 20), st.booleans())
def test_parts_cover_each_kernel_once_and_are_balanced(parts, report):
    split = partition(parts, report=report)
    assert len(split) == parts
    flat = sorted(i for part in split for i in part)
    wanted = [i for i, entry in enumerate(SIGNATURES) if report or not entry[2]]
    assert flat == wanted
    loads = [sum(SIGNATURES[i][3] for i in part) for part in split]
    # greedy longest-first: no part exceeds another by more than one kernel's cost
    assert max(loads) - min(loads) <= max(SIGNATURES[i][3] for i in wanted) + 1e-9


def test_bad_part_numbers_are_refused():
    for part, parts in ((2, 2), (-1, 2), (0, 0)):
        with pytest.raises(ValueError, match="part"):
            warm_kernels(part, parts)


def test_every_listed_signature_builds():
    assert warm_kernels(0, 1) == []


CHILD = r"""
import json, sys
from pathlib import Path
import mrdflow.kernels.warmup as w
from mrdflow.kernels import bins, checks, compensate, gates, select, transforms
from numba.core.registry import CPUDispatcher
from mrdflow.batch import plan_batch
from mrdflow.pipeline import analyze_sample_tubes
from mrdflow.report.html import render_sample_report

problems = w.warm_kernels(0, 1)
kernels = {f"{m.__name__}.{k}": v for m in (bins, checks, compensate, gates, select, transforms)
           for k, v in vars(m).items() if isinstance(v, CPUDispatcher) and v.py_func.__module__ == m.__name__}
before = {k: len(v.signatures) for k, v in kernels.items()}
plan = plan_batch(sys.argv[1], sys.argv[2])
for s in plan.samples:
    if s.sample_id in ("DEMO01", "DEMO05"):  # a marrow and a leukaemic blood, each with its report
        result, _ = analyze_sample_tubes([str(p) for p in s.tubes.values()], plan.panel, sample_id=s.sample_id,
                                         plot_data=True)
        render_sample_report(result, [], roles={})
after = {k: len(v.signatures) for k, v in kernels.items()}
print(json.dumps({"problems": problems, "new": {k: [str(s) for s in kernels[k].signatures]
                                                 for k in kernels if after[k] != before[k]}}))
"""


def test_after_the_warm_up_a_sample_and_its_report_need_no_other_kernel(tmp_path):
    """In a fresh process: a kernel the analysis or the report calls that the warm-up did not build would gain a
    signature (compiled, or loaded from the cache) while the samples are analysed."""
    out = subprocess.run([sys.executable, "-c", CHILD, str(REPO / "panels" / "demo.yaml"), str(tmp_path)],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["problems"] == []
    assert got["new"] == {}, f"kernels the warm-up should list in mrdflow/kernels/warmup.py: {got['new']}"
