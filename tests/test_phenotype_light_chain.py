"""Light-chain-restricted PC subsets: a clone hidden in a normal subset is found by its single light chain."""

import numpy as np
import pytest

from mrdflow.errors import AnalysisError
from mrdflow.gating.light_chain import KAPPA, LAMBDA, LightChainSettings, light_chain_restricted
from mrdflow.gating.phenotype import classify_plasma_cells

from test_phenotype import MARKERS, SD, normal_pcs, references

TUBE2 = ["CD19", "CD56", "CD27", "CD38", "CD45"]  # NGF tube 2 has no CD81/CD117


def tube2_sample(seed, n_normal, n_clone, *, kappa_share=0.62):
    """Normal PCs (polytypic) plus a lambda clone that in tube 2 differs from normal PCs by CD19 loss only."""
    rng = np.random.default_rng(seed)
    normal = normal_pcs(rng, n_normal)
    clone = normal_pcs(rng, n_clone)
    clone[:, MARKERS.index("CD19")] = rng.normal(0.7, SD, n_clone)
    clone[:, MARKERS.index("CD45")] = rng.normal(2.3, SD, n_clone)  # CD45-positive clone
    x = np.concatenate([normal, clone])[:, [MARKERS.index(m) for m in TUBE2]].astype(np.float32)
    chain = np.r_[np.where(rng.random(n_normal) < kappa_share, KAPPA, LAMBDA), np.full(n_clone, LAMBDA)]
    truth = np.r_[np.zeros(n_normal, bool), np.ones(n_clone, bool)]
    refs = {m: r for m, r in references(rng).items() if m in TUBE2}
    return x, chain, truth, refs


@pytest.mark.parametrize("n_clone", [300, 1000])
def test_a_clone_with_one_aberrancy_is_found_by_its_light_chain(n_clone):
    x, chain, truth, refs = tube2_sample(1, 5000, n_clone)
    phen = classify_plasma_cells(x, TUBE2, refs)
    assert phen.n_aberrant == 0  # CD19 loss alone is a normal variant
    result = light_chain_restricted(phen, chain)
    recall = np.count_nonzero(result.aberrant & truth) / truth.sum()
    assert recall >= 0.95
    # the clone's own CD56+ events (it inherits the normal 15 %) form a second lambda subset
    assert {c.light_chain for c in result.clusters} == {"lambda"}
    assert all(c.aberrancies["CD19"] == "negative" for c in result.clusters)
    assert max(result.clusters, key=lambda c: c.n_events).aberrancies == {"CD19": "negative"}
    # the called set also holds the normal lambda CD19- PCs; the estimate removes them
    assert abs(result.n_aberrant_estimate - n_clone) <= 0.15 * n_clone
    assert result.n_aberrant > n_clone


@pytest.mark.parametrize("seed", range(5))
def test_polytypic_normal_marrow_gets_no_call(seed):
    x, chain, _, refs = tube2_sample(10 + seed, 8000, 0)
    result = light_chain_restricted(classify_plasma_cells(x, TUBE2, refs), chain)
    assert result.n_aberrant == 0 and result.clusters == ()


def test_too_small_polytypic_reference_is_a_warning():
    x, chain, _, refs = tube2_sample(20, 60, 30)
    result = light_chain_restricted(classify_plasma_cells(x, TUBE2, refs), chain)
    assert result.n_aberrant == 0 and any("polytypic reference" in w for w in result.warnings)


def test_bad_light_chain_codes_are_errors():
    x, chain, _, refs = tube2_sample(21, 200, 0)
    phen = classify_plasma_cells(x, TUBE2, refs)
    with pytest.raises(AnalysisError, match="one code per PC event"):
        light_chain_restricted(phen, chain[:-1])
    with pytest.raises(AnalysisError, match="integer codes"):
        light_chain_restricted(phen, np.full(len(chain), 3))
    with pytest.raises(AnalysisError, match="min_reference_cells"):
        LightChainSettings(min_reference_cells=1)


def kappa_majority_sample(seed, n_normal=20000, n_clone=250):
    """κ the majority chain (67 %), a κ clone that looks like the normal CD19−CD56+ subset (≈ 3 % of the PCs)."""
    rng = np.random.default_rng(seed)
    normal = normal_pcs(rng, n_normal)
    clone = normal_pcs(rng, n_clone)
    clone[:, MARKERS.index("CD19")] = rng.normal(0.8, SD, n_clone)
    clone[:, MARKERS.index("CD56")] = rng.normal(2.4, SD, n_clone)
    clone[:, MARKERS.index("CD45")] = rng.normal(2.3, SD, n_clone)  # CD45-positive clone
    x = np.concatenate([normal, clone])[:, [MARKERS.index(m) for m in TUBE2]].astype(np.float32)
    chain = np.r_[np.where(rng.random(n_normal) < 0.67, KAPPA, LAMBDA), np.full(n_clone, KAPPA)]
    truth = np.r_[np.zeros(n_normal, bool), np.ones(n_clone, bool)]
    refs = {m: r for m, r in references(rng).items() if m in TUBE2}
    return x, chain, truth, refs


@pytest.mark.parametrize("seed", range(3))
def test_a_kappa_clone_hidden_in_a_kappa_majority_subset_is_found(seed):
    # 250 clonal κ PCs beside as many normal CD19−CD56+ PCs: only the light chain tells them apart
    x, chain, truth, refs = kappa_majority_sample(40 + seed)
    phen = classify_plasma_cells(x, TUBE2, refs)
    assert phen.n_aberrant == 0  # CD19−CD56+ at this size is within normal heterogeneity
    result = light_chain_restricted(phen, chain)
    assert [(c.light_chain, set(c.aberrancies)) for c in result.clusters] == [("kappa", {"CD19", "CD56"})]
    # the subset's κ PCs are about half clone, half normal: always counted (the estimate removes the expected
    # normal κ PCs), marked one by one only where the clone is at least half of them (seeds 1 and 2 are not)
    assert 125 <= result.n_aberrant_estimate <= 400
    cluster = result.clusters[0]
    share = (cluster.n_events - cluster.expected_normal_events) / cluster.n_events
    assert (result.n_aberrant > 0) == (share >= 0.5)
    assert seed == 0 or result.n_aberrant == 0
    # a lab that wants them marked anyway says so
    marked = light_chain_restricted(phen, chain, LightChainSettings(mark_min_share=0.0))
    assert np.count_nonzero(marked.aberrant & truth) >= 0.9 * 250
    assert marked.n_aberrant_estimate == result.n_aberrant_estimate


def test_a_counted_but_unmarked_subset_still_gives_the_clonality():
    # seed 1 of the κ-majority case: the restricted κ subset is counted, not marked; the tube's κ/λ counts
    # (what results.csv's clonality is computed from) must still carry its excess as κ aberrant PCs
    from mrdflow.pipeline import _chain_counts

    x, chain, _, refs = kappa_majority_sample(41)
    result = light_chain_restricted(classify_plasma_cells(x, TUBE2, refs), chain)
    assert result.n_aberrant == 0 and len(result.clusters) == 1
    n_ab = round(result.n_aberrant_estimate)
    counts = _chain_counts(result, chain, x.shape[0], n_ab)
    assert counts["lambda_aberrant"] == 0 and counts["kappa_aberrant"] == n_ab
    assert counts["kappa_normal"] + counts["lambda_normal"] == x.shape[0] - n_ab


def test_analyze_prints_a_counted_subset_as_counted_not_marked():
    from mrdflow.commands.analyze import _cluster_text

    marked = {"aberrancies": {"CD19": "negative", "CD56": "positive"}, "light_chain": None, "n_events": 412,
              "expected_normal_events": 0.3, "marked_per_event": True}
    counted = {"aberrancies": {"CD19": "negative", "CD56": "positive"}, "light_chain": "kappa", "n_events": 565,
               "expected_normal_events": 330.6, "marked_per_event": False}
    assert _cluster_text(marked) == "CD19 negative,CD56 positive (412)"
    assert _cluster_text(counted) == ("CD19 negative,CD56 positive kappa "
                                      "(565, ~234 clonal: counted, not marked per event)")
