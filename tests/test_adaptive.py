"""Adaptive gates on generated mixtures with known answers, and on shifted copies (the gate follows)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mrdflow.gating.adaptive import (Cluster, DensityValley, Margin, ReferenceDistance, Singlet, Tail,
                                     subsample_indices)


def bimodal(seed=0, n=100_000, lo=1.0, hi=3.0, sd=0.3, frac_hi=0.3):
    rng = np.random.default_rng(seed)
    k = int(n * frac_hi)
    return np.r_[rng.normal(lo, sd, n - k), rng.normal(hi, sd, k)].astype(np.float32)


def true_valley(lo=1.0, hi=3.0, sd=0.3, frac_hi=0.3):
    x = np.linspace(lo, hi, 20001)
    dens = (1 - frac_hi) * stats.norm.pdf(x, lo, sd) + frac_hi * stats.norm.pdf(x, hi, sd)
    return x[np.argmin(dens)]


@pytest.mark.parametrize("shift", [0.0, 0.8, -1.5])
def test_density_valley_finds_the_true_valley_and_follows_a_shift(shift):
    x = bimodal() + np.float32(shift)
    g = DensityValley(keep="above").fit(x)
    assert abs(g.threshold_ - (true_valley() + shift)) < 0.05
    assert not g.used_fallback_
    assert abs(g.modes_[0] - (1 + shift)) < 0.05 and abs(g.modes_[1] - (3 + shift)) < 0.05
    kept = g.apply(x)
    assert abs(kept.mean() - 0.3) < 0.01


def test_density_valley_respects_bounds():
    rng = np.random.default_rng(1)
    x = np.r_[bimodal(), rng.normal(6.0, 0.3, 50_000).astype(np.float32)]
    # three modes; searching within [2, 8] must split the 3 and 6 modes
    g = DensityValley(bounds=[2.0, 8.0]).fit(x)
    assert 4.0 < g.threshold_ < 5.0


def test_density_valley_single_mode_falls_back_to_shoulder_or_value():
    x = np.random.default_rng(2).normal(2.0, 0.3, 100_000).astype(np.float32)
    g = DensityValley().fit(x)
    assert g.used_fallback_ and abs(g.threshold_ - (2.0 + 3 * 0.3)) < 0.08
    assert DensityValley(fallback=1.7).fit(x).threshold_ == 1.7


def test_two_point_masses_give_a_valley_between_them_not_an_index_error():
    """A few tied values (e.g. 100 events piled on two levels by very noisy, clipped data) make the Silverman
    bandwidth wider than the histogram's range; the density must still have one value per bin (the kernel used to
    be longer than the histogram, and a peak index fell outside it)."""
    x = np.r_[np.zeros(50), np.ones(50)].astype(np.float32)
    g = DensityValley(keep="above").fit(x)
    assert 0.25 < g.threshold_ < 0.75 and g.apply(x).sum() == 50
    assert 0.0 < Tail(side="above", k=1).fit(x).threshold_ < 1.0


@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_tail_sits_on_the_shoulder_of_the_dominant_peak(shift):
    rng = np.random.default_rng(3)
    x = (np.r_[rng.normal(2.0, 0.3, 95_000), rng.normal(4.0, 0.4, 5_000)] + shift).astype(np.float32)
    g = Tail(side="above", k=3).fit(x)
    assert abs(g.mode_ - (2.0 + shift)) < 0.05 and abs(g.sigma_ - 0.3) < 0.03
    assert abs(g.threshold_ - (2.9 + shift)) < 0.1
    below = Tail(side="below", k=2).fit(x)
    assert abs(below.threshold_ - (1.4 + shift)) < 0.1 and below.geometry_["max"] == below.threshold_


def mixture2d(shift=(0.0, 0.0), seed=4):
    rng = np.random.default_rng(seed)
    a = rng.multivariate_normal([1.0, 1.0], [[0.05, 0.0], [0.0, 0.05]], 60_000)
    b = rng.multivariate_normal([3.0, 2.0], [[0.10, 0.03], [0.03, 0.10]], 20_000)
    c = rng.multivariate_normal([1.0, 3.0], [[0.04, 0.0], [0.0, 0.04]], 20_000)
    X = np.r_[a, b, c] + np.asarray(shift)
    truth = np.r_[np.zeros(60_000), np.ones(20_000), np.full(20_000, 2)]
    return X.astype(np.float32), truth


@pytest.mark.parametrize("shift", [(0.0, 0.0), (0.5, -0.4)])
def test_cluster_recovers_the_target_component(shift):
    X, truth = mixture2d(shift)
    g = Cluster(target=[2.8, 2.1], n_components=3, quantile=0.95, seed=0).fit(X)
    assert np.allclose(g.mean_, np.array([3.0, 2.0]) + shift, atol=0.03)
    assert np.allclose(g.covariance_, [[0.10, 0.03], [0.03, 0.10]], atol=0.01)
    kept = g.apply(X)
    # the 95 % contour of the right component, hardly anything of the others
    assert abs(kept[truth == 1].mean() - 0.95) < 0.01
    assert kept[truth != 1].mean() < 0.001
    assert g.geometry_["type"] == "ellipse" and g.distance_square_ == pytest.approx(stats.chi2.ppf(0.95, 2))


def test_cluster_is_deterministic_by_seed():
    X, _ = mixture2d()
    a = Cluster(target=[1, 3], n_components=3, seed=7, max_events=5_000).fit(X)
    b = Cluster(target=[1, 3], n_components=3, seed=7, max_events=5_000).fit(X)
    assert a.geometry_ == b.geometry_ and a.n_fit_events_ == 5_000


@pytest.mark.parametrize("scale", [1.0, 1.3])
def test_singlet_band_is_median_plus_k_mad(scale):
    rng = np.random.default_rng(5)
    h = rng.normal(80_000, 15_000, 50_000) * scale
    ratio = rng.normal(1.10, 0.02, 50_000)
    area = h * ratio
    area[:2_500] *= 1.8  # doublets: much larger area for their height
    X = np.c_[area, h].astype(np.float32)
    g = Singlet(k=4).fit(X)
    r = X[:, 0].astype(float) / X[:, 1]
    assert g.median_ == pytest.approx(np.median(r), rel=1e-6)
    assert g.upper_ == pytest.approx(np.median(r) + 4 * stats.median_abs_deviation(r, scale="normal"), rel=1e-6)
    kept = g.apply(X)
    assert kept[:2_500].sum() == 0
    assert kept[2_500:].mean() > 0.999
    # the wedge geometry is the ratio rule itself
    assert np.array_equal(kept, (r < g.upper_) & (r >= g.lower_) & (X[:, 1] > 0))
    # exactly numpy's median and scipy's MAD (the fast median is a replay, not an approximation)
    assert g.median_ == float(np.median(r))
    assert g.mad_ == float(stats.median_abs_deviation(r, scale="normal"))


def test_singlet_without_any_positive_height_says_so():
    X = np.c_[np.ones(100), np.zeros(100)].astype(np.float32)
    with pytest.raises(ValueError, match="positive height"):
        Singlet().fit(X)


def test_margin_removes_saturated_and_minimum_piles():
    rng = np.random.default_rng(6)
    x = rng.uniform(0.1, 0.9, (10_000, 2)).astype(np.float32)
    x[:30, 0] = 1.0  # saturated in dim 0
    x[30:50, 1] = 0.0  # piled at the minimum in dim 1
    x[50:55, 1] = 0.95  # only 5 at the top: not a pile (min_pile = 10)
    g = Margin().fit(x)
    assert g.upper_ == [1.0, None] and g.lower_[1] == 0.0 and g.lower_[0] is None
    kept = g.apply(x)
    assert kept[:50].sum() == 0 and kept[50:].all()
    # limits from $PnR (channel_upper) win over the data
    g2 = Margin().fit(x, channel_upper=[0.85, None])
    assert g2.upper_[0] == 0.85 and not g2.apply(x)[(x[:, 0] >= 0.85)].any()


def test_margin_finds_a_detector_saturating_below_its_pnr():
    """An instrument whose signals pile up below $PnR - 1 (or a file rescaled after acquisition): the pile is the
    limit, not the $PnR-derived one, which would keep every saturated event; a template's own limit still wins."""
    rng = np.random.default_rng(7)
    x = rng.uniform(0.1, 0.9, (10_000, 2)).astype(np.float32)
    x[:30, 0] = np.float32(0.95)  # the detector's real top, under the $PnR limit 0.99
    g = Margin().fit(x, channel_upper=[0.99, 0.99])
    assert g.upper_ == [np.float32(0.95), 0.99]
    assert not g.apply(x)[:30].any() and g.apply(x)[30:].all()
    x[:30, 0] = np.float32(0.99)  # a pile exactly at the $PnR limit: that limit
    assert Margin().fit(x, channel_upper=[0.99, 0.99]).upper_ == [0.99, 0.99]
    x[:30, 0] = np.float32(0.95)
    x[30:35, 1] = np.float32(0.97)  # 5 events at the top: not a pile, the $PnR limit stays
    assert Margin().fit(x, channel_upper=[0.99, 0.99]).upper_[1] == 0.99
    assert Margin(upper=[0.98, None]).fit(x, channel_upper=[0.99, 0.99]).upper_[0] == 0.98


@pytest.mark.parametrize("shift", [0.0, 0.7])
def test_reference_distance_flags_events_away_from_the_reference(shift):
    rng = np.random.default_rng(8)
    ref = rng.multivariate_normal([2.0 + shift, 2.0], [[0.04, 0.01], [0.01, 0.04]], 5_000).astype(np.float32)
    aberrant = rng.multivariate_normal([1.0 + shift, 3.0], [[0.02, 0], [0, 0.02]], 500).astype(np.float32)
    X = np.r_[ref, aberrant]
    g = ReferenceDistance(reference="normal", quantile=0.999).fit(X, reference=ref)
    out = g.apply(X)
    assert out[:5_000].mean() < 0.003  # ≈ 1 − 0.999 of the reference itself
    assert out[5_000:].mean() > 0.99
    assert np.allclose(g.mean_, [2.0 + shift, 2.0], atol=0.02)


def test_reference_distance_from_stored_model_and_inside_side():
    model = {"mean": [0.0, 0.0], "covariance": [[1.0, 0.0], [0.0, 1.0]]}
    X = np.array([[0.5, 0.5], [4.0, 0.0], [0.0, -3.2]], dtype=np.float32)
    inside = ReferenceDistance(model=model, quantile=0.99, side="inside").fit(X)
    assert inside.apply(X).tolist() == [True, False, False]  # χ²(0.99, 2) = 9.21
    assert ReferenceDistance(model=model, quantile=0.99).fit(X).apply(X).tolist() == [False, True, True]


def test_subsample_is_bounded_and_deterministic():
    a = subsample_indices(1_000_000, 200_000, seed=3)
    assert a.size == 200_000 and np.array_equal(a, subsample_indices(1_000_000, 200_000, seed=3))
    assert np.all(np.diff(a) > 0)
    assert np.array_equal(subsample_indices(10, 200_000, 0), np.arange(10))


def test_apply_before_fit_is_an_error():
    with pytest.raises(RuntimeError, match="not fitted"):
        Tail().apply(np.zeros(3))


def _cd117_like(seed: int, n_rare: int) -> tuple[np.ndarray, np.ndarray]:
    """A CD117-like axis: a large dim bulk, a smaller precursor bump merged into its flank, and (``n_rare``)
    mast-cell-like events far brighter, beyond an empty gap. Returns values and the rare-population truth."""
    rng = np.random.default_rng(seed)
    x = np.r_[rng.normal(0.50, 0.04, 80_000), rng.normal(0.60, 0.04, 40_000), rng.normal(0.88, 0.03, n_rare)]
    return x.astype(np.float32)[:, None], np.r_[np.zeros(120_000, bool), np.ones(n_rare, bool)]


@pytest.mark.parametrize("seed", range(3))
def test_tail_gap_finds_a_rare_bright_population_the_shoulder_misses(seed):
    x, rare = _cd117_like(seed, 700)
    args = dict(side="above", k=4, peak="last", min_prominence=0.25, adjust=0.5)
    shoulder = Tail(**args).fit(x)
    gap = Tail(**args, gap_depth=0.2).fit(x)
    kept = x[:, 0] >= gap.threshold_
    assert gap.gap_ and 0.72 < gap.threshold_ < 0.82
    assert np.count_nonzero(kept & rare) >= 0.98 * 700 and np.count_nonzero(kept & ~rare) <= 20
    # the precursor bump widens the shoulder's sigma: its threshold lands in (or beyond) the rare population
    assert np.count_nonzero((x[:, 0] >= shoulder.threshold_) & rare) < 0.9 * 700


def test_tail_gap_without_a_rare_population_keeps_the_shoulder():
    x, _ = _cd117_like(7, 0)
    args = dict(side="above", k=4, peak="last", min_prominence=0.25, adjust=0.5)
    with_gap = Tail(**args, gap_depth=0.2).fit(x)
    assert not with_gap.gap_ and with_gap.threshold_ == Tail(**args).fit(x).threshold_


def test_tail_gap_needs_side_above():
    with pytest.raises(ValueError, match="gap_depth"):
        Tail(side="below", gap_depth=0.2).validate(1)
    with pytest.raises(ValueError, match="gap_depth"):
        Tail(side="above", gap_depth=1.5).validate(1)


def test_tail_gap_pick_first_keeps_a_dim_population_between_two_gaps():
    """CD138-like: negative cells, a dim clone, bright normal PCs, each separated by an empty stretch. The
    deepest gap may be the one above the clone (dropping it); gap_pick="first" takes the gap right above the
    negatives, so the clone stays in; both ignore a 'gap' with too few events beyond it."""
    rng = np.random.default_rng(3)
    neg = rng.normal(0.15, 0.05, 190_000)
    clone = rng.normal(0.50, 0.02, 3_000)
    pcs = rng.normal(0.80, 0.03, 7_000)
    x = np.concatenate([neg, clone, pcs]).astype(np.float32)[:, None]
    first = Tail(side="above", k=5, peak="first", gap_depth=0.2, gap_min_events=20, gap_pick="first").fit(x)
    assert first.gap_ and 0.3 < first.threshold_ < 0.44  # below the clone, above the negatives
    deepest = Tail(side="above", k=5, peak="first", gap_depth=0.2, gap_min_events=20).fit(x)
    assert deepest.gap_ and deepest.threshold_ >= first.threshold_
    kept = first.apply(x)
    assert kept[190_000:193_000].mean() > 0.999 and kept[:190_000].mean() < 1e-4
    few = np.concatenate([neg, rng.normal(0.8, 0.01, 10)]).astype(np.float32)[:, None]  # 10 < gap_min_events
    assert not Tail(side="above", k=5, peak="first", gap_depth=0.2, gap_min_events=20, gap_pick="first").fit(few).gap_
    with pytest.raises(ValueError, match="gap_pick"):
        Tail(gap_depth=0.2, gap_pick="widest").validate(1)
