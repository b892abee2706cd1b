"""GatingML 2.0 compliance FCS files read with ``linearize=True`` equal FlowKit's preprocessed events.

FlowKit's ``Sample(path)`` preprocesses by default (log decoding of ``$PnE``, division by ``$PnG``,
Time × ``$TIMESTEP``); ``get_events(source="raw")`` returns those preprocessed, uncompensated values.
FlowKit works in float64; ours are float32, so FlowKit's values are rounded once to float32.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from conftest import shared_path
from mrdflow.fcs import read_fcs

fk = pytest.importorskip("flowkit")


@pytest.mark.parametrize("name", ["data1.fcs", "data2.fcs", "9399_1_3_NKR.fcs"])
def test_linearized_events_equal_flowkit_preprocessing(name):
    path = shared_path("gatingml", "Gml2", "FCSFiles", name)
    ours = read_fcs(path, linearize=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sample = fk.Sample(str(path))
    assert sample.is_preprocessed
    theirs = sample.get_events(source="raw")
    assert ours.linearized
    assert [c.name for c in ours.channels] == list(sample.pnn_labels)
    np.testing.assert_array_equal(ours.events, theirs.astype(np.float32))


def test_data1_log_channels_are_decoded_and_gain_divided():
    """data1.fcs: FL channels are $PnE 4,0 over $PnR 1024; FSC-H has $PnG 3.67 (the set_1 traps)."""
    path = shared_path("gatingml", "Gml2", "FCSFiles", "data1.fcs")
    raw, lin = read_fcs(path), read_fcs(path, linearize=True)
    fl1 = raw.channel_index("FL1-H")
    expected = (10 ** (4.0 * raw.events[:, fl1].astype(np.float64) / 1024.0)).astype(np.float32)
    np.testing.assert_array_equal(lin.events[:, fl1], expected)
    fsc = raw.channel_index("FSC-H")
    np.testing.assert_array_equal(lin.events[:, fsc], (raw.events[:, fsc].astype(np.float64) / 3.67).astype(np.float32))
