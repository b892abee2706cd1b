"""Normal vs aberrant plasma cells on generated marrows with known labels.

The generator follows DOMAIN.md §2.2/§2.4: normal PCs CD19+ (≈ 20 % CD19−), CD56− (≈ 15 % CD56+), CD27++,
CD81+, CD117−, CD38 very bright, CD45 heterogeneous; regenerating (post-therapy) PCs are more often CD19− and
CD45−, the two together. Reference populations (T, B, NK cells, mast cells, NRBC, granulocytes, B-cell
precursors) come from the same "sample". Values are in logicle-like transformed units (0–4.5).
"""

import numpy as np
import pytest

from mrdflow.errors import AnalysisError
from mrdflow.gating.phenotype import (
    MarkerReference,
    MarkerRule,
    PhenotypeSettings,
    classify_plasma_cells,
    marker_boundary,
)

MARKERS = ["CD19", "CD56", "CD27", "CD81", "CD117", "CD38", "CD45"]
NEG, POS = 0.6, 2.6  # typical negative and positive levels
SD = 0.3

CLONES = {
    # name: {marker: level}; the rest of the markers as normal PCs
    "CD19-CD56+CD27-": {"CD19": 0.6, "CD56": 2.7, "CD27": 0.8},
    "CD19-CD81-": {"CD19": 0.5, "CD81": 0.7},
    "CD19-CD117+CD38dim": {"CD19": 0.6, "CD117": 2.5, "CD38": 2.1},
    "CD56+CD27dim": {"CD56": 2.6, "CD27": 1.2},
}


def normal_pcs(rng, n, *, regenerating=False):
    x = np.empty((n, len(MARKERS)))
    p19neg, p45neg = (0.45, 0.6) if regenerating else (0.2, 0.3)
    cd45neg = rng.random(n) < p45neg
    # after therapy CD19 loss goes with CD45 loss (correlated heterogeneity)
    p19 = np.where(cd45neg, min(1.0, p19neg * 1.5), p19neg * 0.5) if regenerating else np.full(n, p19neg)
    cd19neg = rng.random(n) < p19
    cd56pos = rng.random(n) < 0.15
    x[:, 0] = np.where(cd19neg, rng.normal(0.8, SD, n), rng.normal(2.4, SD, n))
    x[:, 1] = np.where(cd56pos, rng.normal(2.4, SD, n), rng.normal(NEG, SD, n))
    x[:, 2] = rng.normal(3.0, SD, n) - (0.4 if regenerating else 0.0)
    x[:, 3] = rng.normal(2.5, SD, n)
    x[:, 4] = rng.normal(0.5, SD, n)
    x[:, 5] = rng.normal(3.6, SD, n)
    x[:, 6] = np.where(cd45neg, rng.normal(0.9, SD, n), rng.normal(2.3, SD, n))
    return x


def clone_pcs(rng, n, phenotype):
    x = normal_pcs(rng, n)
    # the clone is uniform: no normal-variant subsets, its own levels on its aberrant markers
    x[:, 0] = rng.normal(2.4, SD, n)
    x[:, 1] = rng.normal(NEG, SD, n)
    x[:, 6] = rng.normal(1.0, SD, n)
    for marker, level in CLONES[phenotype].items():
        x[:, MARKERS.index(marker)] = rng.normal(level, SD * 0.8, n)
    return x


def references(rng, n=2000):
    def pop(level):
        return rng.normal(level, SD, n)

    return {
        "CD19": MarkerReference(pop(0.5), pop(2.4), "T cells", "B cells"),
        "CD56": MarkerReference(pop(0.5), pop(2.6), "T cells", "NK cells"),
        "CD27": MarkerReference(pop(0.6), pop(2.3), "granulocytes", "T cells"),
        "CD81": MarkerReference(pop(0.5), pop(2.4), "granulocytes", "B-cell precursors"),
        "CD117": MarkerReference(pop(0.4), pop(3.2), "lymphocytes", "mast cells"),
        "CD38": MarkerReference(pop(1.0), pop(3.6), "T cells", "normal PC brightness"),
        "CD45": MarkerReference(pop(0.4), pop(3.0), "NRBC", "lymphocytes"),
    }


def sample(seed, n_normal, n_clone=0, phenotype=None, *, regenerating=False):
    rng = np.random.default_rng(seed)
    parts = [normal_pcs(rng, n_normal, regenerating=regenerating)]
    if n_clone:
        parts.append(clone_pcs(rng, n_clone, phenotype))
    x = np.concatenate(parts).astype(np.float32)
    truth = np.r_[np.zeros(n_normal, bool), np.ones(n_clone, bool)]
    perm = rng.permutation(len(x))
    return x[perm], truth[perm], references(rng)


def recall_precision(result, truth):
    tp = np.count_nonzero(result.aberrant & truth)
    recall = tp / max(1, truth.sum())
    precision = tp / max(1, result.aberrant.sum())
    return recall, precision


@pytest.mark.parametrize("phenotype", list(CLONES))
@pytest.mark.parametrize("n_clone", [20, 50, 500, 5000])
def test_clones_of_20_to_5000_events_are_found(phenotype, n_clone):
    seed = list(CLONES).index(phenotype) * 1000 + n_clone
    x, truth, refs = sample(seed, 5000, n_clone, phenotype)
    result = classify_plasma_cells(x, MARKERS, refs)
    recall, precision = recall_precision(result, truth)
    # thresholds: at the LOD (20 events) the call must hold ≥ 80 % of the clone with ≤ 5 normal events;
    # from 50 events on ≥ 90 % recall and precision; a large clone is called with F1 ≥ 0.97
    if n_clone == 20:
        assert recall >= 0.8 and np.count_nonzero(result.aberrant & ~truth) <= 5, (recall, result.n_aberrant)
    else:
        assert recall >= 0.9 and precision >= 0.9, (recall, precision)
    if n_clone >= 500:
        assert 2 * recall * precision / (recall + precision) >= 0.97
    # the description names the clone's aberrancies (the generated clones are also CD45-dim) and nothing else
    described = set().union(*(c.aberrancies for c in result.clusters))
    assert set(CLONES[phenotype]) <= described <= set(CLONES[phenotype]) | {"CD45"}


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n_normal", [2000, 20000])
def test_no_call_in_normal_marrow(seed, n_normal):
    x, _, refs = sample(100 + seed, n_normal)
    result = classify_plasma_cells(x, MARKERS, refs)
    assert result.n_aberrant == 0 and result.clusters == ()


@pytest.mark.parametrize("seed", range(6))
def test_no_call_in_regenerating_marrow(seed):
    # post-therapy PCs: 45 % CD19−, 60 % CD45−, the two correlated, CD27 dimmer
    x, _, refs = sample(200 + seed, 8000, regenerating=True)
    result = classify_plasma_cells(x, MARKERS, refs)
    assert result.n_aberrant == 0


def test_directions_of_the_aberrancies_are_reported():
    x, truth, refs = sample(7, 5000, 500, "CD19-CD56+CD27-")
    result = classify_plasma_cells(x, MARKERS, refs)
    main = max(result.clusters, key=lambda c: c.n_events)
    assert main.aberrancies == {"CD19": "negative", "CD56": "positive", "CD27": "negative", "CD45": "negative"}
    assert main.centre["CD19"] < 0 < main.centre["CD56"] and main.fold > 10 and main.p_value < 1e-10
    assert np.all(result.labels[result.aberrant] >= 0) and np.all(result.labels[~result.aberrant] == -1)


def test_calls_do_not_depend_on_instrument_scale():
    # another instrument / transform: every value (PCs and references alike) scaled and shifted
    x, truth, refs = sample(8, 5000, 50, "CD19-CD81-")
    base = classify_plasma_cells(x, MARKERS, refs)

    def warp(v):
        return (0.55 * v + 1.3).astype(np.float32)

    warped_refs = {m: MarkerReference(warp(r.negative), warp(r.positive)) for m, r in refs.items()}
    other = classify_plasma_cells(warp(x), MARKERS, warped_refs)
    assert np.array_equal(base.aberrant, other.aberrant)
    assert base.boundaries["CD19"].boundary != other.boundaries["CD19"].boundary


def test_a_clone_of_only_normal_variant_deviations_is_called_once_it_outnumbers_them():
    # CD19−CD56+ alone is also a normal subset (~3 % of normal PCs): 20 such clonal events cannot be told
    # apart from it, 1000 can
    rng_phen = {"CD19-CD56+": {"CD19": 0.6, "CD56": 2.6}}
    CLONES.update(rng_phen)
    try:
        x, truth, refs = sample(9, 5000, 1000, "CD19-CD56+")
        result = classify_plasma_cells(x, MARKERS, refs)
        recall, precision = recall_precision(result, truth)
        assert recall >= 0.9 and precision >= 0.8
        # the normal CD19-CD56+ PCs swept into the call are estimated and taken out of the clone size
        assert result.n_aberrant > 1000 and abs(result.n_aberrant_estimate - 1000) <= 30
        x, truth, refs = sample(10, 5000, 20, "CD19-CD56+")
        assert classify_plasma_cells(x, MARKERS, refs).n_aberrant == 0
    finally:
        del CLONES["CD19-CD56+"]


def test_scattered_deviating_events_stay_normal():
    x, _, refs = sample(11, 5000)
    rng = np.random.default_rng(0)
    # 8 scattered events each with a random, different pair of deviations
    odd = x[:8].copy()
    for i in range(8):
        a, b = rng.choice([0, 2, 3], size=2, replace=False)
        odd[i, a] = 0.5
        odd[i, b] = 0.5
    result = classify_plasma_cells(np.concatenate([x, odd]), MARKERS, refs)
    assert result.n_aberrant == 0


def test_tube_without_cd117_and_cd81_still_works():
    x, truth, refs = sample(12, 5000, 50, "CD19-CD56+CD27-")
    keep = [MARKERS.index(m) for m in ("CD19", "CD56", "CD27", "CD38", "CD45")]
    sub_refs = {m: refs[m] for m in ("CD19", "CD56", "CD27", "CD38", "CD45")}
    result = classify_plasma_cells(np.ascontiguousarray(x[:, keep]), [MARKERS[i] for i in keep], sub_refs)
    recall, precision = recall_precision(result, truth)
    assert recall >= 0.9 and precision >= 0.9


def test_overlapping_references_make_a_marker_unusable_with_a_reason():
    rng = np.random.default_rng(13)
    b = marker_boundary("CD19", MarkerRule("pos"), MarkerReference(rng.normal(1, 0.5, 500), rng.normal(1.3, 0.5, 500),
                                                                  "T cells", "B cells"))
    assert not b.usable and "B cells" in b.reason and "T cells" in b.reason
    few = marker_boundary("CD56", MarkerRule("neg"), MarkerReference(np.zeros(5), np.ones(500)))
    assert not few.usable and "5 events" in few.reason
    x, truth, refs = sample(14, 3000, 100, "CD19-CD81-")
    refs["CD81"] = MarkerReference(rng.normal(1, 0.5, 500), rng.normal(1.2, 0.5, 500))
    result = classify_plasma_cells(x, MARKERS, refs)
    assert any("CD81" in w for w in result.warnings) and not result.boundaries["CD81"].usable


def test_bad_inputs_are_clear_errors():
    x, _, refs = sample(15, 100)
    with pytest.raises(AnalysisError, match="marker names for"):
        classify_plasma_cells(x, MARKERS[:-1], refs)
    with pytest.raises(AnalysisError, match="float32"):
        classify_plasma_cells(x.astype(np.int32), MARKERS, refs)
    with pytest.raises(AnalysisError, match="not in the PC matrix"):
        classify_plasma_cells(x[:, :6], MARKERS[:6], refs)
    nan = x.copy()
    nan[3, 2] = np.nan
    with pytest.raises(AnalysisError, match="non-finite values .first at row 3"):
        classify_plasma_cells(nan, MARKERS, refs)
    with pytest.raises(AnalysisError, match="expected"):
        MarkerRule("bright")
    with pytest.raises(AnalysisError, match="alpha"):
        PhenotypeSettings(alpha=2)


def test_no_plasma_cells_gives_an_empty_result():
    _, _, refs = sample(16, 10)
    result = classify_plasma_cells(np.zeros((0, len(MARKERS)), np.float32), MARKERS, refs)
    assert result.n_aberrant == 0 and result.aberrant.shape == (0,)


@pytest.mark.parametrize("phenotype", ["CD19-CD56+CD27-", "CD56+CD27dim"])
def test_a_clone_dominating_the_plasma_cells_is_one_cluster(phenotype):
    # diagnostic-like marrow: 20,000 clonal PCs beside 500 normal ones
    x, truth, refs = sample(20, 500, 20000, phenotype)
    result = classify_plasma_cells(x, MARKERS, refs)
    recall, precision = recall_precision(result, truth)
    assert recall >= 0.97 and precision >= 0.99
    assert len(result.clusters) == 1 and result.clusters[0].n_events == result.n_aberrant


def _mismatch(result):
    return [w for w in result.warnings if w.startswith("pc_reference_mismatch")]


def test_a_boundary_every_normal_pc_crosses_is_judged_against_the_normal_pcs():
    """A compensation error that adds CD56 signal to every PC (they are all CD38 very bright) but not to the T and
    NK cells the CD56 boundary comes from: every normal PC lies above that boundary. Judged against it, no PC
    shows the normal pattern, and a CD56+CD27dim clone deviates beyond that on one marker group only, like the
    normal CD27-dim PCs. Judged against the PCs normal on every other marker, the clone is found as before."""
    x, truth, refs = sample(31, 5000, 300, "CD56+CD27dim")
    shifted = x.copy()
    shifted[:, MARKERS.index("CD56")] += 2.0  # normal PCs 0.6 -> 2.6, all above the 1.55 boundary; the clone 4.6
    without = classify_plasma_cells(shifted, MARKERS, refs, settings=PhenotypeSettings(max_normal_beyond=None))
    assert recall_precision(without, truth)[0] < 0.5  # what the rule is for
    result = classify_plasma_cells(shifted, MARKERS, refs)
    recall, precision = recall_precision(result, truth)
    assert recall >= 0.9 and precision >= 0.9, (recall, precision)
    (w,) = _mismatch(result)
    assert w.startswith("pc_reference_mismatch: CD56:") and "above its reference boundary" in w
    main = max(result.clusters, key=lambda c: c.n_events)
    assert main.aberrancies["CD56"] == "increased" and "CD27" in main.aberrancies


@pytest.mark.parametrize("kind", ["normal", "regenerating", "dominant_clone"])
def test_normal_heterogeneity_and_a_dominant_clone_keep_every_boundary(kind):
    """45 % CD19− and 60 % CD45− regenerating PCs, or a clone of 20 000 CD56+ PCs beside 500 normal ones, are not
    a boundary the normal PCs ignore: no marker is re-judged."""
    if kind == "dominant_clone":
        x, truth, refs = sample(20, 500, 20000, "CD19-CD56+CD27-")
    else:
        x, truth, refs = sample(32, 8000, regenerating=kind == "regenerating")
    assert _mismatch(classify_plasma_cells(x, MARKERS, refs)) == []


def test_two_clones_are_two_clusters():
    x1, t1, refs = sample(21, 5000, 300, "CD19-CD81-")
    x2 = clone_pcs(np.random.default_rng(22), 200, "CD56+CD27dim").astype(np.float32)
    x, truth = np.concatenate([x1, x2]), np.r_[t1, np.ones(200, bool)]
    result = classify_plasma_cells(x, MARKERS, refs)
    recall, precision = recall_precision(result, truth)
    assert recall >= 0.95 and precision >= 0.99
    assert sorted(tuple(sorted(c.aberrancies)) for c in result.clusters) == [
        ("CD19", "CD45", "CD81"), ("CD27", "CD45", "CD56")]
    assert sorted(c.n_events for c in result.clusters) == pytest.approx([200, 300], abs=10)


