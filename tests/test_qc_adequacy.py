"""Acquisition adequacy: step rates, events needed for the required sensitivity, flags."""

import pytest

from mrdflow.errors import AnalysisError
from mrdflow.mrd import MrdThresholds
from mrdflow.qc.adequacy import AdequacySettings, assess_adequacy


def test_rates_are_fractions_of_the_events_entering_each_step():
    r = assess_adequacy(10_000_000, 1_000_000, 90_000, 891_000, 801_900, 7_000_000)
    assert r.time_removed_rate == pytest.approx(0.1)
    assert r.margin_rate == pytest.approx(0.01)
    assert r.doublet_rate == pytest.approx(0.1)
    assert r.debris_rate == pytest.approx(0.1)
    assert r.flags == () and r.sensitivity_met
    assert r.events_needed == 2_000_000 and r.events_needed_lloq == 5_000_000


def test_low_events_when_the_sensitivity_cannot_be_reached():
    ok = assess_adequacy(2_500_000, 0, 0, 0, 500_000, 2_000_000)
    low = assess_adequacy(2_500_000, 0, 0, 0, 500_001, 1_999_999)
    assert "low_events" not in ok.flags and "low_events" in low.flags
    # a laxer required sensitivity (1e-4) needs only 200,000 events
    lax = assess_adequacy(300_000, 0, 0, 0, 0, 200_000, MrdThresholds(required_sensitivity=1e-4))
    assert lax.sensitivity_met and lax.events_needed == 200_000


def test_each_rate_flag_fires_just_above_its_threshold():
    s = AdequacySettings(max_time_removed_rate=0.2, max_margin_rate=0.05, max_doublet_rate=0.15, max_debris_rate=0.5)
    at = assess_adequacy(4_000_000, 800_000, 160_000, 456_000, 1_292_000, 1_292_000, settings=s)
    assert [f for f in at.flags if f != "low_events"] == []
    above = assess_adequacy(4_000_000, 800_001, 160_000, 456_000, 1_292_000, 1_200_000, settings=s)
    assert "high_time_removal" in above.flags
    doublets = assess_adequacy(1_000_000, 0, 0, 150_001, 0, 800_000, settings=s)
    assert "high_doublet_rate" in doublets.flags
    margins = assess_adequacy(1_000_000, 0, 50_001, 0, 0, 900_000, settings=s)
    assert "high_margin_rate" in margins.flags
    debris = assess_adequacy(1_000_000, 0, 0, 0, 500_001, 400_000, settings=s)
    assert "high_debris_rate" in debris.flags


def test_empty_file_is_flagged_not_crashed():
    r = assess_adequacy(0, 0, 0, 0, 0, 0)
    assert set(r.flags) == {"no_events", "low_events"}


@pytest.mark.parametrize(
    "args, fragment",
    [
        ((100, 101, 0, 0, 0, 0), "n_time_removed"),
        ((100, 50, 51, 0, 0, 0), "n_margin .51. exceeds the events left before that step .50"),
        ((100, 0, 0, 0, 0, 101), "n_events_evaluable"),
        ((100, -1, 0, 0, 0, 0), "non-negative"),
    ],
)
def test_inconsistent_counts_are_clear_errors(args, fragment):
    with pytest.raises(AnalysisError, match=fragment):
        assess_adequacy(*args)


def test_settings_must_be_fractions():
    with pytest.raises(AnalysisError, match="max_doublet_rate"):
        AdequacySettings(max_doublet_rate=15)
