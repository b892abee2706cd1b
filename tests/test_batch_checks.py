"""The non-finite check run before scaling: the kernel agrees with numpy, and a tube with NaN is refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mrdflow.errors import FcsError
from mrdflow.kernels.checks import count_nonfinite
from mrdflow.tube import require_finite

values = st.one_of(st.floats(width=32, allow_nan=True, allow_infinity=True),
                   st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 3.4e38, -3.4e38]))


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(0, 300), st.integers(1, 6)), elements=values))
def test_count_nonfinite_matches_numpy(events):
    np.testing.assert_array_equal(count_nonfinite(np.ascontiguousarray(events)), (~np.isfinite(events)).sum(axis=0))


@settings(max_examples=60, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(0, 300), st.integers(1, 6)), elements=values),
       st.lists(st.floats(-1e3, 1e3, width=32), min_size=6, max_size=6), st.booleans())
def test_count_at_top_matches_numpy(events, tops, fortran):
    """The same pass counts the values at or above each column's top (saturated events), as numpy does."""
    events = np.asfortranarray(events) if fortran else np.ascontiguousarray(events)
    tops = np.array(tops[: events.shape[1]], dtype=np.float32)
    nonfinite, at_top = count_nonfinite(events, tops)
    np.testing.assert_array_equal(nonfinite, (~np.isfinite(events)).sum(axis=0))
    np.testing.assert_array_equal(at_top, (events >= tops).sum(axis=0))
    with pytest.raises(ValueError, match="one value per column"):
        count_nonfinite(events, np.zeros(events.shape[1] + 1))


def test_count_nonfinite_crosses_block_boundaries_and_rejects_bad_input():
    events = np.zeros((200_001, 3), dtype=np.float32)
    events[[0, 65535, 65536, 200_000], 1] = [np.nan, np.inf, -np.inf, np.nan]
    assert count_nonfinite(events).tolist() == [0, 4, 0]
    with pytest.raises(ValueError, match="float32"):
        count_nonfinite(events.astype(np.float64))
    # column-major (how the pipeline reads events) counts the same; a strided view is refused
    assert count_nonfinite(np.asfortranarray(events)).tolist() == [0, 4, 0]
    with pytest.raises(ValueError, match="contiguous"):
        count_nonfinite(events[::2])


def test_require_finite_names_file_channel_and_first_event():
    class Ch:
        def __init__(self, name, marker=None):
            self.name, self.marker = name, marker

    class Fcs:
        path = "/data/P1_T1.fcs"
        channels = [Ch("FSC-A"), Ch("FITC-A", "CD38")]
        events = np.ones((1000, 2), dtype=np.float32)

    require_finite(Fcs)  # finite: nothing happens
    Fcs.events[[500, 700], 1] = np.nan
    with pytest.raises(FcsError, match=r"P1_T1.fcs: DATA holds 2 non-finite .* channel FITC-A \(CD38\), first at "
                                       r"event 501"):
        require_finite(Fcs)
