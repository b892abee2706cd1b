"""Time / flow-rate QC on generated acquisitions with a known clog, a stable run and a slow drift."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from mrdflow.errors import AnalysisError
from mrdflow.qc.time import TimeQcSettings, time_qc

RATE = 2000.0  # events per second


def acquisition(n, seed, *, clogs=(), drift=0.0, rate_decline=0.0):
    """Events [Time, FL1, FL2, FL3] in transformed-like units with Poisson arrivals.

    clogs: (start_s, end_s, rate_factor, shift) stretches of nominal time in which the event rate is
    multiplied by rate_factor and FL1/FL2 are shifted by ``shift`` channel spreads.
    drift: linear shift of all channel levels over the whole run; rate_decline: linear relative rate loss.
    Returns events and the truth mask of events acquired inside a clog.
    """
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0 / RATE, size=n)
    t_nominal = np.cumsum(gaps)
    progress = t_nominal / t_nominal[-1]
    stretch = 1.0 / (1.0 - rate_decline * progress)  # gaps lengthen as the rate falls
    # two-population signals (a bimodal marker, a unimodal one, a scatter-like one)
    pop = rng.random(n) < 0.6
    level = drift * progress
    fl1 = np.where(pop, 2.5, 0.8) + rng.normal(0, 0.35, n) + level
    fl2 = rng.normal(1.5, 0.5, n) + level
    fl3 = np.where(pop, 1.2, 2.0) + rng.normal(0, 0.3, n) + level
    in_clog = np.zeros(n, dtype=bool)
    for start, end, factor, shift in clogs:
        inside = (t_nominal >= start) & (t_nominal < end)
        stretch = np.where(inside, stretch / factor, stretch)
        fl1 = np.where(inside, fl1 + shift * 0.35, fl1)
        fl2 = np.where(inside, fl2 + shift * 0.5, fl2)
        in_clog |= inside
    time = np.cumsum(gaps * stretch)
    events = np.column_stack([time, fl1, fl2, fl3]).astype(np.float32)
    return events, in_clog


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_clog_is_found_and_excluded_within_two_bins(seed):
    events, truth = acquisition(200_000, seed, clogs=[(40.0, 42.0, 0.25, 2.0)])
    result = time_qc(events, 0, [1, 2, 3])
    assert "flow_rate_anomaly" in result.flags and "signal_shift" in result.flags
    per_bin = int(np.diff(result.bin_edges).max())
    removed = ~result.keep
    # every clogged event but those of at most two boundary bins is removed ...
    assert np.count_nonzero(truth & result.keep) <= 2 * per_bin
    # ... and at most two bins' worth of good events beside it go with it
    assert np.count_nonzero(removed & ~truth) <= 2 * per_bin
    assert len(result.excluded_ranges) >= 1
    start, end = result.excluded_ranges[0]
    t = events[:, 0]
    assert abs(start - t[truth].min()) < 2 * per_bin / RATE * 4  # within two (slow) bins of the truth
    assert result.fraction_removed == pytest.approx(removed.mean())


@pytest.mark.parametrize("seed", [4, 5, 6, 7])
def test_a_stable_acquisition_loses_almost_nothing(seed):
    events, _ = acquisition(200_000, seed)
    result = time_qc(events, 0, [1, 2, 3])
    assert result.fraction_removed < 0.01
    assert result.bin_levels.shape == (result.bin_edges.size - 1, 3)
    assert np.all(result.bin_rate > 0.8 * RATE) and np.all(result.bin_rate < 1.2 * RATE)


@pytest.mark.parametrize("seed", [8, 9])
def test_a_slow_monotone_drift_is_not_over_flagged(seed):
    # signals drift by 1.5 units (several channel SDs) and the rate falls by 40 % over the run
    events, _ = acquisition(200_000, seed, drift=1.5, rate_decline=0.4)
    result = time_qc(events, 0, [1, 2, 3])
    assert result.fraction_removed < 0.01


def test_events_out_of_time_order_are_handled():
    events, truth = acquisition(100_000, 11, clogs=[(20.0, 21.5, 0.25, 2.0)])
    perm = np.random.default_rng(0).permutation(len(events))
    result = time_qc(events[perm], 0, [1, 2, 3])
    assert any("sorted" in w for w in result.warnings)
    per_bin = int(np.diff(result.bin_edges).max())
    assert np.count_nonzero(truth[perm] & result.keep) <= 2 * per_bin
    assert np.count_nonzero(~result.keep & ~truth[perm]) <= 2 * per_bin


def test_events_written_population_by_population_are_not_time_qc_material():
    """A file whose events are grouped by population (a generator's artefact, not an acquisition): every
    stretch would look like a signal shift. The lag-1 correlation of consecutive events gives it away, and
    nothing is removed, with a warning that says why; a real acquisition — clog included — is checked as usual."""
    events, _ = acquisition(200_000, 13)
    grouped = events.copy()
    order = np.argsort(events[:, 3], kind="stable")  # grouped by FL3 (the population marker) ...
    grouped[:, 1:] = events[order, 1:]  # ... while Time still runs on
    result = time_qc(grouped, 0, [1, 2, 3])
    assert result.fraction_removed == 0.0 and result.keep.all() and not result.flags
    (w,) = [w for w in result.warnings if w.startswith("time_qc_not_done")]
    assert "not in acquisition order" in w
    clogged, truth = acquisition(200_000, 14, clogs=[(40.0, 42.0, 0.25, 2.0)])
    checked = time_qc(clogged, 0, [1, 2, 3])
    assert not any(w.startswith("time_qc_not_done") for w in checked.warnings)
    assert np.count_nonzero(~checked.keep & truth) > 0.9 * truth.sum()
    with pytest.raises(AnalysisError, match="max_order_correlation"):
        TimeQcSettings(max_order_correlation=0.0)


def test_short_good_stretches_between_bad_bins_are_removed():
    # two clogs 0.4 s (= 4 bins of 200 events) apart: the good bins between them go too
    events, truth = acquisition(100_000, 12, clogs=[(10.0, 10.6, 0.2, 3.0), (11.0, 11.6, 0.2, 3.0)])
    strict = time_qc(events, 0, [1, 2, 3], TimeQcSettings(events_per_bin=200, consecutive_bins=0))
    merged = time_qc(events, 0, [1, 2, 3], TimeQcSettings(events_per_bin=200, consecutive_bins=5))
    assert len(strict.excluded_ranges) == 2
    assert len(merged.excluded_ranges) == 1
    gap = (events[:, 0] >= strict.excluded_ranges[0][1]) & (events[:, 0] < strict.excluded_ranges[1][0])
    assert strict.keep[gap].all() and not merged.keep[gap].any()


def test_automatic_bin_size_follows_peacoqc():
    events, _ = acquisition(20_000, 13)
    assert np.diff(time_qc(events, 0, [1]).bin_edges).min() >= 150  # min_cells floor
    events, _ = acquisition(300_000, 13)
    assert time_qc(events, 0, [1]).bin_edges.size - 1 == 500  # max_bins cap


def test_too_few_events_keep_everything_with_a_warning():
    events, _ = acquisition(200, 14)
    result = time_qc(events, 0, [1, 2])
    assert result.keep.all() and result.fraction_removed == 0.0 and result.warnings


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(time_column=7), "outside the event matrix"),
        (dict(signal_columns=[0, 1]), "cannot also be a signal column"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, fragment):
    events, _ = acquisition(1000, 15)
    args = dict(time_column=0, signal_columns=[1, 2]) | kwargs
    with pytest.raises(AnalysisError, match=fragment):
        time_qc(events, **args)


def test_non_finite_time_and_integer_events_are_rejected():
    events, _ = acquisition(1000, 16)
    events[5, 0] = np.nan
    with pytest.raises(AnalysisError, match="non-finite"):
        time_qc(events, 0, [1])
    with pytest.raises(AnalysisError, match="float32"):
        time_qc(np.zeros((10, 2), dtype=np.int32), 0, [1])
    with pytest.raises(AnalysisError, match="mad_threshold"):
        TimeQcSettings(mad_threshold=0)


@given(
    n=st.integers(min_value=0, max_value=3000),
    seed=st.integers(min_value=0, max_value=2**31),
    per_bin=st.sampled_from([None, 10, 37]),
    consecutive=st.integers(min_value=0, max_value=6),
)
@settings(max_examples=40, deadline=None)
def test_time_qc_bookkeeping_is_consistent(n, seed, per_bin, consecutive):
    rng = np.random.default_rng(seed)
    time = np.sort(rng.exponential(1.0, n).cumsum() if n else np.zeros(0))
    values = rng.normal(size=(n, 2)) + (rng.random((n, 1)) < 0.02) * 5.0
    events = np.column_stack([time, values]).astype(np.float32)
    result = time_qc(events, 0, [1, 2], TimeQcSettings(events_per_bin=per_bin, consecutive_bins=consecutive))
    assert result.keep.shape == (n,) and result.keep.dtype == bool
    assert result.fraction_removed == pytest.approx((~result.keep).mean() if n else 0.0)
    # removed events are exactly those of the removed bins, and the excluded ranges cover them
    removed_events = sum(int(result.bin_edges[i + 1] - result.bin_edges[i]) for i in np.flatnonzero(result.removed_bins))
    assert removed_events == np.count_nonzero(~result.keep)
    starts = [a for a, _ in result.excluded_ranges]
    assert starts == sorted(starts) and all(a <= b for a, b in result.excluded_ranges)
    if result.bin_levels.size:
        assert result.bin_levels.shape == (result.bin_edges.size - 1, 2)


@pytest.mark.parametrize("wraps", [1, 3])
def test_a_clock_that_wraps_around_is_unwrapped_and_the_clog_found(wraps):
    """An older instrument's Time counter wraps (or is reset) during the acquisition: the events are still in
    acquisition order. Sorting them by Time would interleave the laps and hide the clog; unwrapped, the clog is
    found and excluded exactly as with a continuous clock."""
    events, truth = acquisition(200_000, 12, clogs=[(40.0, 42.0, 0.25, 2.0)])
    base = time_qc(events, 0, [1, 2, 3])
    lap = float(events[:, 0].max()) / (wraps + 0.5)
    wrapped = events.copy()
    wrapped[:, 0] = np.mod(events[:, 0].astype(np.float64), lap).astype(np.float32)
    result = time_qc(wrapped, 0, [1, 2, 3])
    assert any(f"restarts {wraps} time(s)" in w for w in result.warnings)
    assert not any("sorted" in w for w in result.warnings)
    assert np.array_equal(result.keep, base.keep) and result.flags == base.flags
    assert np.count_nonzero(truth & result.keep) <= 2 * int(np.diff(result.bin_edges).max())
