"""Simulated biology seen the way an analyst sees it: after compensation (file $SPILLOVER) and logicle."""

from __future__ import annotations

import json
from pathlib import Path

import flowio
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrdflow.simulate.generate import simulate_sample
from mrdflow.simulate.instrument import TUBE_MARKERS, acquire, instrument_run
from mrdflow.simulate.populations import KAPPA, LABEL_CODE, LABELS, LAMBDA, draw_clone
from mrdflow.simulate.scenarios import SamplePlan, SpecimenPlan
from mrdflow.simulate.specimen import Cells, draw_specimen, sample_cells

flowutils = pytest.importorskip("flowutils")

ABERRANCY_DIRECTION = {"CD19_neg": ("CD19", -1), "CD56_pos": ("CD56", +1), "CD27_dim": ("CD27", -1),
                       "CD81_dim": ("CD81", -1), "CD117_pos": ("CD117", +1), "CD45_dim": ("CD45", -1),
                       "CD38_dim": ("CD38", -1)}


def _scaled(path: Path) -> tuple[np.ndarray, list[str], dict]:
    """Compensated + logicle (T=262144, W=0.5, M=4.5) fluorescence by marker name, and the truth."""
    fd = flowio.FlowData(str(path))
    ev = np.asarray(fd.as_array(preprocess=False), dtype=np.float64)
    names = [fd.channels[i + 1]["pnn"] for i in range(fd.channel_count)]
    markers = [fd.channels[i + 1].get("pns") or names[i] for i in range(fd.channel_count)]
    parts = fd.text["spillover"].split(",")
    n = int(parts[0])
    idx = [names.index(c) for c in parts[1:1 + n]]
    spill = np.array(parts[1 + n:], dtype=float).reshape(n, n)
    comp = flowutils.compensate.compensate(ev, spill, idx)
    scaled = flowutils.transforms.logicle(comp, idx, t=262144, m=4.5, w=0.5, a=0)
    truth = dict(np.load(str(path).replace(".fcs", ".truth.npz")))
    return scaled, markers, truth


@pytest.fixture(scope="module")
def marrow(tmp_path_factory):
    out = tmp_path_factory.mktemp("bio")
    plan = SamplePlan("BIO", SpecimenPlan("BIO", variant="regenerating"), mrd=4e-3, events=80_000)
    simulate_sample(plan, out, seed=11)
    t1 = _scaled(out / "BIO_T1.fcs")
    t2 = _scaled(out / "BIO_T2.fcs")
    return t1, t2, json.loads((out / "BIO.truth.json").read_text())


def _medians(tube, marker: str) -> dict[str, float]:
    scaled, markers, truth = tube
    col = scaled[:, markers.index(marker)]
    return {name: float(np.median(col[truth["labels"] == code])) for code, name in enumerate(LABELS)
            if name not in ("debris", "doublet") and np.count_nonzero(truth["labels"] == code) >= 5}


def test_normal_plasma_cells_have_the_brightest_cd38(marrow):
    med = _medians(marrow[0], "CD38")
    others = {k: v for k, v in med.items() if k not in ("normal_pc", "aberrant_pc")}
    assert med["normal_pc"] > max(others.values()) + 0.05, med


def test_nk_cells_are_cd56_positive_and_cd38_dim(marrow):
    cd56, cd38 = _medians(marrow[0], "CD56"), _medians(marrow[0], "CD38")
    assert cd56["nk_cell"] > cd56["t_cell"] + 0.3 and cd56["nk_cell"] > cd56["normal_pc"] + 0.3
    assert cd38["t_cell"] < cd38["nk_cell"] < cd38["normal_pc"] - 0.15


def test_mast_cells_have_the_brightest_cd117(marrow):
    med = _medians(marrow[0], "CD117")
    assert med["mast_cell"] == max(med.values())
    assert med["mast_cell"] > med["myeloid_precursor"] + 0.1


def test_nrbc_are_the_cd45_negative_nucleated_cells(marrow):
    med = _medians(marrow[0], "CD45")
    assert med["nrbc"] == min(med.values())
    lymph = min(med["t_cell"], med["nk_cell"], med["mature_b"])
    assert lymph > med["neutrophil"] > med["nrbc"]  # lymphocytes CD45 bright, granulocytes dim


def test_clone_departs_from_normal_pcs_where_its_truth_says(marrow):
    clone = marrow[2]["specimen"]["clone"]
    for ab in clone["aberrancies"]:
        marker, sign = ABERRANCY_DIRECTION[ab]
        med = _medians(marrow[0], marker)
        assert sign * (med["aberrant_pc"] - med["normal_pc"]) > 0.05, (ab, med)


def test_light_chains_clone_restricted_normal_pcs_polytypic(marrow):
    scaled, markers, truth = marrow[1]
    k = scaled[:, markers.index("cyIgKappa")]
    lam = scaled[:, markers.index("cyIgLambda")]
    chain = marrow[2]["specimen"]["clone"]["light_chain"]
    ab = truth["labels"] == LABEL_CODE["aberrant_pc"]
    kappa_share = np.mean(k[ab] > lam[ab])
    assert kappa_share > 0.95 if chain == "kappa" else kappa_share < 0.05
    pc = truth["labels"] == LABEL_CODE["normal_pc"]
    measured = np.mean(k[pc] > lam[pc])
    assert 0.35 < measured < 0.85
    np.testing.assert_allclose(measured, np.mean(truth["light_chain"][pc] == KAPPA), atol=0.02)


def test_compensated_single_stain_negatives_centre_on_zero_with_growing_spread():
    """FITC-only cells at rising brightness: compensated PE centres on 0, its spread grows (spreading error)."""
    rng = np.random.default_rng(0)
    inst = instrument_run("canto_ii", rng, drift=0.0)
    levels = [0.0, 3_000.0, 30_000.0, 120_000.0]
    per = 20_000
    n = per * len(levels)
    stain = np.zeros((n, 8), np.float32)
    stain[:, 2] = np.repeat(levels, per)  # FITC
    cells = Cells(np.full(n, LABEL_CODE["t_cell"], np.uint8), np.zeros(n, np.uint8), stain,
                  np.full(n, 60_000, np.float32), np.full(n, 20_000, np.float32), np.zeros(n, np.float32))
    none = Cells(*(a[:0] for a in (cells.labels, cells.light_chain, cells.stain, cells.fsc, cells.ssc,
                                   cells.autofluorescence)))
    acq = acquire(cells, none, np.zeros(n, bool), inst, rng)
    comp = acq.events[:, 4:12].astype(np.float64) @ np.linalg.inv(inst.spillover)
    raw_pe = acq.events[:, 7]
    spreads = []
    for i, level in enumerate(levels):
        block = slice(i * per, (i + 1) * per)
        pe = comp[block, 3]
        sd = 1.4826 * np.median(np.abs(pe - np.median(pe)))
        assert abs(np.median(pe)) < 0.05 * sd + 5.0, (level, np.median(pe), sd)
        assert np.mean(pe < 0) == pytest.approx(0.5, abs=0.03)  # negatives spread below zero
        if level:
            assert np.median(raw_pe[block]) == pytest.approx(0.2 * level, rel=0.05)  # uncompensated spillover
            assert np.median(comp[block, 2]) == pytest.approx(level, rel=0.02)
        spreads.append(sd)
    assert all(b > a for a, b in zip(spreads, spreads[1:]))
    assert spreads[-1] > 5 * spreads[0]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400), tube=st.sampled_from([1, 2]),
       kind=st.sampled_from(["bm", "pb"]))
def test_sampled_cells_are_well_formed(seed, n, tube, kind):
    rng = np.random.default_rng(seed)
    spec = draw_specimen(rng, kind=kind, clone=draw_clone(rng), mrd=0.01)
    cells = sample_cells(spec, n, TUBE_MARKERS[tube], rng)
    assert len(cells) == n and cells.stain.shape == (n, 8) and cells.stain.dtype == np.float32
    assert np.all(np.isfinite(cells.stain)) and np.all(cells.stain >= 0)
    assert np.all(cells.fsc > 0) and np.all(cells.ssc > 0)
    assert cells.labels.max() < len(LABELS)
    ig = np.isin(cells.labels, [LABEL_CODE[k] for k in ("mature_b", "normal_pc", "aberrant_pc")])
    assert np.all((cells.light_chain > 0) == ig)
    assert np.all(np.isin(cells.light_chain[ig], [KAPPA, LAMBDA]))
    if kind == "pb":
        assert not np.isin(cells.labels, [LABEL_CODE[k] for k in ("b_cell_precursor", "mast_cell", "nrbc")]).any()
