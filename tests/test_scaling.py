"""Compensation and the fused compensation + transform pass, against flowutils on real spillover matrices."""

from __future__ import annotations

import numpy as np
import pytest
from flowutils import compensate as fu_comp
from flowutils import transforms as fu_tr
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_path
from mrdflow.errors import KernelError, SpilloverError
from mrdflow.fcs import Spillover, read_fcs
from mrdflow.scaling import compensate_events, inverse_spillover, scale_events
from mrdflow.transforms import Asinh, Linear, Logicle

# files of the shared corpus whose spillover keyword differs in size and origin (MANIFEST.tsv has_spill)
SPILL_FILES = [
    "whitews__FlowKit__data__test_comp_example.fcs",  # SPILL, 18 parameters
    "saeyslab__PeacoQC__inst__extdata__091@f8c3e33.fcs",  # SPILL, 22 parameters
    "DavidRach__Luciernaga__inst__extdata__CellCounts4L-NY071-1.fcs",  # $SPILLOVER, spectral, 61 parameters
    "bioc__gatingMLData__inst__extdata__Gml2__FCSFiles__9399_1_3_NKR.fcs",  # SPILL, 5 of 8 channels
]


def _read(name: str):
    fcs = read_fcs(shared_path("fcs_corpus", "files", name))
    assert fcs.spillover is not None, f"{name} should carry a spillover"
    return fcs


def _reference(events: np.ndarray, names: list[str], spill) -> np.ndarray:
    idx = [names.index(c) for c in spill.channels]
    return fu_comp.compensate(events.astype(np.float64), spill.matrix, idx)


def _assert_float32_close(ours: np.ndarray, ref: np.ndarray) -> None:
    # float32 precision of the result: a few ulps of the magnitudes involved
    scale = np.maximum(np.abs(ref), 1.0)
    assert np.max(np.abs(ours.astype(np.float64) - ref) / scale) <= 4 * np.finfo(np.float32).eps


@pytest.mark.parametrize("name", SPILL_FILES)
def test_compensation_matches_flowutils_on_real_spillover(name):
    fcs = _read(name)
    names = [c.name for c in fcs.channels]
    events = fcs.events.copy()
    compensate_events(events, names, fcs.spillover)
    _assert_float32_close(events, _reference(fcs.events, names, fcs.spillover))
    untouched = [i for i, n in enumerate(names) if n not in fcs.spillover.channels]
    assert np.array_equal(events[:, untouched], fcs.events[:, untouched])


@pytest.mark.parametrize("name", SPILL_FILES[:2])
def test_fused_pass_equals_compensation_then_flowutils_transforms(name):
    fcs = _read(name)
    names = [c.name for c in fcs.channels]
    fluo = list(fcs.spillover.channels)
    scatter = [n for n in names if n.upper().startswith(("FSC", "SSC"))]
    transforms = {n: Logicle(262144, 0.5, 4.5, 0) for n in fluo[:-1]}
    transforms[fluo[-1]] = Asinh(262144, 4.5, 0)
    transforms.update({n: Linear(262144, 0) for n in scatter})
    events = fcs.events.copy()
    scale_events(events, names, fcs.spillover, transforms)

    ref = _reference(fcs.events, names, fcs.spillover)
    logicle_cols = [names.index(n) for n in fluo[:-1]]
    ref = fu_tr.logicle(ref, logicle_cols, t=262144, m=4.5, w=0.5, a=0)
    ref = fu_tr.asinh(ref, [names.index(fluo[-1])], 262144, 4.5, 0)
    for n in scatter:
        j = names.index(n)
        ref[:, j] = ref[:, j] / 262144
    done = [names.index(n) for n in transforms]
    assert np.max(np.abs(events[:, done] - ref[:, done])) <= 1e-6  # transformed units
    rest = [i for i in range(len(names)) if i not in done]
    _assert_float32_close(events[:, rest], ref[:, rest])


def test_scale_events_without_spillover_only_transforms_listed_channels():
    rng = np.random.default_rng(1)
    events = rng.uniform(-1000, 262144, size=(5000, 4)).astype(np.float32)
    before = events.copy()
    scale_events(events, ["FSC-A", "A", "B", "Time"], None, {"A": Logicle(), "FSC-A": Linear(262144, 0)})
    assert np.array_equal(events[:, [2, 3]], before[:, [2, 3]])
    assert np.allclose(events[:, 1], Logicle().apply(before[:, 1]), atol=1e-7)
    assert np.allclose(events[:, 0], before[:, 0] / 262144, rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), k=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_compensation_inverts_spillover_mixing(n, k, seed):
    # mixing true signals with S then compensating returns the true signals (any event count/matrix size)
    rng = np.random.default_rng(seed)
    S = np.eye(k) + rng.uniform(0, 0.3, size=(k, k)) * (1 - np.eye(k))
    true = rng.uniform(0, 1e5, size=(n, k))
    observed = np.ascontiguousarray(np.c_[true @ S, rng.uniform(size=n)].astype(np.float32))
    names = [f"c{i}" for i in range(k)] + ["Time"]
    spill = Spillover([f"c{i}" for i in range(k)], S, "test")
    compensate_events(observed, names, spill)
    assert np.allclose(observed[:, :k], true, rtol=1e-4, atol=0.5)


def test_singular_or_non_square_matrix_is_a_clear_error_naming_channels():
    with pytest.raises(SpilloverError, match=r"channels \['FL1', 'FL2'\] is singular"):
        inverse_spillover(np.array([[1.0, 1.0], [1.0, 1.0]]), ["FL1", "FL2"])
    with pytest.raises(SpilloverError, match=r"channels \['FL1', 'FL2'\] must be square, found shape \(2, 3\)"):
        inverse_spillover(np.ones((2, 3)), ["FL1", "FL2"])


def test_bad_event_arrays_and_unknown_channels_are_rejected():
    spill = Spillover(["A", "B"], np.eye(2), "test")
    with pytest.raises(KernelError, match="float32"):
        scale_events(np.zeros((3, 2), dtype=np.int32), ["A", "B"], spill, {})
    with pytest.raises(KernelError, match="C-contiguous"):
        scale_events(np.zeros((3, 4), dtype=np.float32)[:, ::2], ["A", "B"], spill, {})
    with pytest.raises(KernelError, match=r"spillover \(test\) names channel\(s\) \['B'\]"):
        scale_events(np.zeros((3, 2), dtype=np.float32), ["A", "C"], spill, {})
    with pytest.raises(KernelError, match=r"transforms names channel\(s\) \['Z'\]"):
        scale_events(np.zeros((3, 2), dtype=np.float32), ["A", "B"], None, {"Z": Logicle()})
