"""The logicle width a file's compensated negative events need (Parks et al. 2006) and the widening it triggers."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrdflow.fcs import Spillover
from mrdflow.qc.logicle_width import WidthNeed, logicle_width_needs, logicle_width_warning, parks_width, widened_width
from mrdflow.transforms import Linear, Logicle

T = 262144.0


def test_parks_width_is_the_published_formula():
    # W = (M - log10(T / |r|)) / 2; r = -T * 10**-M sits at the bottom of a W = 0 display
    assert parks_width(-543.0, T, 4.5) == pytest.approx((4.5 - math.log10(T / 543.0)) / 2)
    assert parks_width(-T * 10 ** -4.5, T, 4.5) == pytest.approx(0.0, abs=1e-12)
    assert parks_width(0.0, T, 4.5) == 0.0 and parks_width(5.0, T, 4.5) == 0.0
    assert parks_width(-1e-3, T, 4.5) == 0.0  # tiny spreads need no width


@settings(max_examples=25, deadline=None)
@given(sigma=st.floats(50.0, 2000.0), seed=st.integers(0, 10_000), n=st.sampled_from([30_000, 230_001]))
def test_the_need_is_read_from_the_compensated_negative_spread(sigma, seed, n):
    """Cells negative for two stains, with noise of SD ``sigma`` after compensation, measured through a 20 %
    spillover: r is the 5th percentile of the compensated negative values (-1.96 SD for Gaussian noise), not of
    the raw ones, which the spillover shifts; a file larger than the subsample is read in runs over its length."""
    rng = np.random.default_rng(seed)
    true = np.column_stack([rng.normal(0, sigma, n), rng.normal(0, sigma, n),
                            rng.normal(50_000, 1000, n)])  # a bright third stain spilling into the first
    spill = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.2, 0.0, 1.0]])
    observed = (true @ spill).astype(np.float32)
    names = ["FITC-A", "PE-A", "APC-A"]
    spillover = Spillover(channels=tuple(names), matrix=spill, source="$SPILLOVER")
    transforms = {c: Logicle(T=T, W=0.5, M=4.5, A=0.0) for c in names}
    needs = {w.channel: w for w in logicle_width_needs(observed, names, spillover, transforms)}
    assert set(needs) == {"FITC-A", "PE-A"}  # APC-A has no negative values to read
    for c in ("FITC-A", "PE-A"):
        assert needs[c].r == pytest.approx(-1.96 * sigma, rel=0.1)
        assert needs[c].needed == pytest.approx(parks_width(needs[c].r, T, 4.5)) and needs[c].used == 0.5
    # uncompensated, the 10 000-unit spill moves FITC-A's values far above zero: nothing negative to read
    raw = {w.channel for w in logicle_width_needs(observed, names, None, transforms)}
    assert "FITC-A" not in raw and "PE-A" in raw


def test_only_logicle_channels_are_assessed():
    ev = np.random.default_rng(1).normal(0, 300, (5000, 2)).astype(np.float32)
    needs = logicle_width_needs(ev, ["FSC-A", "PE-A"], None, {"FSC-A": Linear(T=T, A=0.0),
                                                               "PE-A": Logicle(T=T, W=0.5, M=4.5, A=0.0)})
    assert [w.channel for w in needs] == ["PE-A"]


def need(n, used=0.5, channel="PE-A"):
    return WidthNeed(channel=channel, r=-100.0, needed=n, used=used)


def test_the_width_is_widened_only_beyond_the_allowed_excess():
    assert widened_width([need(0.65), need(0.79)], 0.3) is None  # the simulator's files: 0.6-0.65
    assert widened_width([need(0.85), need(0.6)], 0.3) == pytest.approx(1.0)  # the need + 0.1, rounded up to 0.1
    assert widened_width([need(0.93)], 0.3) == pytest.approx(1.1)
    assert widened_width([need(0.6)], 0.3, floor=1.1) == pytest.approx(1.1)  # the sample's other tube
    assert widened_width([need(0.6)], 0.3, floor=0.5) is None  # a floor no wider than the panel's W
    assert widened_width([], 0.3) is None
    assert widened_width([need(2.3)], 0.3, max_width=2.25) == 2.25  # logicle allows W <= M/2


def test_the_warnings_name_the_channels_and_what_was_done():
    needs = [need(0.93, channel="PE-Cy7-A"), need(0.6, channel="FITC-A")]
    w = logicle_width_warning(needs, 1.1, 0.3, labels={"PE-Cy7-A": "CD19"})
    assert w.startswith("logicle_width_widened: logicle W 1.1 instead of the panel's 0.5")
    assert "PE-Cy7-A (CD19): -100 → W 0.93" in w and "FITC-A" not in w
    narrow = logicle_width_warning(needs, None, 0.3)
    assert narrow.startswith("logicle_width_narrow:") and narrow.endswith("W to about 1.1")
    floor = logicle_width_warning([need(0.6)], 1.1, 0.3, floor_from="tube1")
    assert "as tube1 needed" in floor
