"""Peak finding and distribution functions written without scipy.signal / scipy.stats (each import costs a batch
worker ~0.8 s): the same answers as scipy, and the analysis modules really do not import those packages."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import signal, stats

from mrdflow.distributions import chi2_ppf, poisson_sf
from mrdflow.gating.peaks import find_peaks

# small integers make plateaus (runs of equal samples) and ties between peaks common
ints = arrays(np.float64, st.integers(0, 60), elements=st.integers(0, 6).map(float))
floats = arrays(np.float64, st.integers(0, 60), elements=st.floats(0, 1e3, allow_nan=False))


@settings(max_examples=300, deadline=None)
@given(st.one_of(ints, floats), st.floats(0, 8))
def test_find_peaks_matches_scipy(x, prominence):
    want, _ = signal.find_peaks(x, prominence=prominence)
    np.testing.assert_array_equal(find_peaks(x, prominence), want)


def test_find_peaks_on_a_bimodal_density():
    """The use in the adaptive gates: a smoothed two-mode density padded with zeros."""
    grid = np.linspace(0, 10, 400)
    dens = np.exp(-0.5 * ((grid - 3) / 0.5) ** 2) + 0.3 * np.exp(-0.5 * ((grid - 7) / 0.7) ** 2)
    padded = np.r_[0.0, dens, 0.0]
    got = find_peaks(padded, 0.05 * dens.max()) - 1
    np.testing.assert_array_equal(got, signal.find_peaks(padded, prominence=0.05 * dens.max())[0] - 1)
    assert grid[got] == pytest.approx([3.0, 7.0], abs=0.03)
    assert find_peaks(padded, 0.5 * dens.max()).size == 1  # the minor mode is not prominent enough


def test_find_peaks_plateau_is_its_middle():
    x = np.array([0, 1, 3, 3, 3, 3, 1, 0, 2, 2, 0], dtype=float)
    np.testing.assert_array_equal(find_peaks(x, 0.0), [3, 8])
    np.testing.assert_array_equal(find_peaks(np.array([3.0, 3.0, 1.0, 2.0, 2.0]), 0.0), [])  # runs at the ends


@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.975, 0.99, 0.999, 1 - 1e-6])
@pytest.mark.parametrize("df", [1, 2, 3, 5, 8])
def test_chi2_ppf_is_scipy_stats(q, df):
    assert chi2_ppf(q, df) == float(stats.chi2.ppf(q, df))


@settings(max_examples=200, deadline=None)
@given(st.integers(-3, 500), st.floats(0, 400, allow_nan=False))
def test_poisson_sf_is_scipy_stats(k, mu):
    assert poisson_sf(k, mu) == float(stats.poisson.sf(k, mu))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="0 < q < 1"):
        chi2_ppf(1.0, 2)
    with pytest.raises(ValueError, match="mu >= 0"):
        poisson_sf(3, -1.0)
    with pytest.raises(ValueError, match="1-D"):
        find_peaks(np.zeros((3, 3)), 0.1)


def test_the_analysis_does_not_import_scipy_stats_or_signal():
    """A batch worker imports the pipeline once per process: scipy.stats and scipy.signal would add ~0.8 s."""
    code = ("import sys, mrdflow.pipeline, mrdflow.batch, mrdflow.gating.light_chain, mrdflow.gating.sample_phenotype;"
            "print(sorted(m for m in sys.modules if m.split('.')[:2] in (['scipy', 'stats'], ['scipy', 'signal'])))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
