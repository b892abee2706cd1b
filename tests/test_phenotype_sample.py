"""A sample's plasma cells over both NGF tubes: pooling the backbone finds a clone too small for either tube."""

import numpy as np
import pytest

from mrdflow.errors import AnalysisError
from mrdflow.gating.light_chain import KAPPA, LAMBDA
from mrdflow.gating.sample_phenotype import BACKBONE, TubePlasmaCells, classify_sample

from test_phenotype import MARKERS, clone_pcs, normal_pcs, references

TUBE1 = MARKERS  # CD19 CD56 CD27 CD81 CD117 CD38 CD45
TUBE2 = list(BACKBONE)


def tube(rng, name, markers, n_normal, n_clone, phenotype, *, chains=False):
    x = np.concatenate([normal_pcs(rng, n_normal), clone_pcs(rng, n_clone, phenotype)])
    cols = [MARKERS.index(m) for m in markers]
    refs = {m: r for m, r in references(rng).items() if m in markers}
    chain = None
    if chains:
        chain = np.r_[np.where(rng.random(n_normal) < 0.62, KAPPA, LAMBDA), np.full(n_clone, LAMBDA)]
    truth = np.r_[np.zeros(n_normal, bool), np.ones(n_clone, bool)]
    return TubePlasmaCells(name, np.ascontiguousarray(x[:, cols]).astype(np.float32), markers, refs, chain), truth


@pytest.mark.parametrize("seed", range(4))
def test_pooled_backbone_finds_a_clone_split_over_two_tubes(seed):
    rng = np.random.default_rng(seed)
    # 4 clonal PCs per tube among 10,000 normal ones: below min_cluster_events (5) in each tube
    t1, truth1 = tube(rng, "T1", TUBE1, 10_000, 4, "CD19-CD56+CD27-")
    t2, truth2 = tube(rng, "T2", TUBE2, 10_000, 4, "CD19-CD56+CD27-")
    alone = classify_sample([t1])["T1"].aberrant, classify_sample([t2])["T2"].aberrant
    both = classify_sample([t1, t2])
    found_alone = np.count_nonzero(alone[0] & truth1) + np.count_nonzero(alone[1] & truth2)
    found_both = 0
    for name, truth in (("T1", truth1), ("T2", truth2)):
        called = both[name].aberrant
        found_both += np.count_nonzero(called & truth)
        assert np.count_nonzero(called & ~truth) <= 2
    assert found_both >= 7 and found_alone < found_both


@pytest.mark.parametrize("seed", range(4))
def test_normal_sample_stays_normal_over_both_tubes(seed):
    rng = np.random.default_rng(100 + seed)
    t1, _ = tube(rng, "T1", TUBE1, 20_000, 0, "CD19-CD81-")
    t2, _ = tube(rng, "T2", TUBE2, 20_000, 0, "CD19-CD81-", chains=True)
    results = classify_sample([t1, t2])
    assert results["T1"].n_aberrant == 0 and results["T2"].n_aberrant == 0


def test_tube_specific_markers_and_light_chains_still_count():
    rng = np.random.default_rng(7)
    # CD19-CD81- clone: tube 1 sees both aberrancies; tube 2 (no CD81) only CD19 loss, but a single light chain
    t1, truth1 = tube(rng, "T1", TUBE1, 5_000, 300, "CD19-CD81-")
    t2, truth2 = tube(rng, "T2", TUBE2, 5_000, 300, "CD19-CD81-", chains=True)
    results = classify_sample([t1, t2])
    assert np.count_nonzero(results["T1"].aberrant & truth1) >= 0.95 * 300
    assert np.count_nonzero(results["T2"].aberrant & truth2) >= 0.9 * 300
    assert any(c.light_chain == "lambda" for c in results["T2"].clusters)


def test_duplicate_or_missing_tubes_are_errors():
    rng = np.random.default_rng(8)
    t1, _ = tube(rng, "T1", TUBE1, 100, 0, "CD19-CD81-")
    with pytest.raises(AnalysisError, match="unique"):
        classify_sample([t1, t1])
    with pytest.raises(AnalysisError, match="at least one tube"):
        classify_sample([])
