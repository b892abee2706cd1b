"""MRD quantification: status boundaries, sensitivity, clonality and the denominator rule."""

import math

import pytest
from hypothesis import given, strategies as st

from mrdflow.errors import AnalysisError, MrdflowError
from mrdflow.mrd import (
    NEGATIVE,
    NOT_EVALUABLE,
    POSITIVE,
    POSITIVE_BELOW_LLOQ,
    MrdThresholds,
    TubeCounts,
    clonality,
    limit_of_detection,
    lower_limit_of_quantification,
    mrd_status,
    quantify,
    sensitivity_met,
)

TEN_MILLION = 10_000_000


@pytest.mark.parametrize(
    "n_aberrant, expected",
    [(0, NEGATIVE), (19, NEGATIVE), (20, POSITIVE_BELOW_LLOQ), (49, POSITIVE_BELOW_LLOQ), (50, POSITIVE), (51, POSITIVE)],
)
def test_status_boundaries_at_20_and_50_events(n_aberrant, expected):
    assert mrd_status(n_aberrant, TEN_MILLION) == expected


def test_negative_needs_the_required_sensitivity():
    # 2e6 evaluable events give lod = 20 / 2e6 = 1e-5 exactly: negative allowed; one event fewer is not
    assert mrd_status(19, 2_000_000) == NEGATIVE
    assert mrd_status(19, 1_999_999) == NOT_EVALUABLE
    assert sensitivity_met(2_000_000) and not sensitivity_met(1_999_999)
    assert limit_of_detection(2_000_000) == pytest.approx(1e-5)


def test_positive_calls_do_not_need_the_sensitivity():
    # 50 clonal events among 100,000 cells is a positive sample even though lod = 2e-4 > 1e-5
    assert mrd_status(50, 100_000) == POSITIVE
    assert mrd_status(20, 100_000) == POSITIVE_BELOW_LLOQ
    assert mrd_status(0, 100_000) == NOT_EVALUABLE


def test_sensitivity_exactly_at_the_required_value_survives_float_rounding():
    # mathematically 100,000 * 3e-4 == 30, but in binary floating point it is 29.999999999999996
    thresholds = MrdThresholds(lod_events=30, lloq_events=60, required_sensitivity=3e-4)
    assert 100_000 * 3e-4 < 30  # the trap this test guards against
    assert sensitivity_met(100_000, thresholds)
    assert not sensitivity_met(99_999, thresholds)
    assert mrd_status(0, 100_000, thresholds) == NEGATIVE
    assert thresholds.events_needed == 100_000
    assert MrdThresholds().events_needed == 2_000_000


def test_zero_evaluable_events_is_not_evaluable():
    assert mrd_status(0, 0) == NOT_EVALUABLE
    assert math.isnan(limit_of_detection(0)) and math.isnan(lower_limit_of_quantification(0))
    result = quantify([TubeCounts("T1", 1000, 0, 0, 0, 0)])
    assert result.mrd_status == NOT_EVALUABLE and not result.sensitivity_met and math.isnan(result.mrd_fraction)


@given(
    n_eval=st.integers(min_value=1, max_value=10**9),
    lod=st.integers(min_value=1, max_value=200),
    extra=st.integers(min_value=0, max_value=200),
    frac=st.floats(min_value=0.0, max_value=1.0),
)
def test_status_is_consistent_with_the_formulas(n_eval, lod, extra, frac):
    thresholds = MrdThresholds(lod_events=lod, lloq_events=lod + extra)
    n_ab = int(frac * min(n_eval, 3 * (lod + extra) + 5))
    status = mrd_status(n_ab, n_eval, thresholds)
    if n_ab >= lod + extra:
        assert status == POSITIVE
    elif n_ab >= lod:
        assert status == POSITIVE_BELOW_LLOQ
    else:
        assert status == (NEGATIVE if lod / n_eval <= 1e-5 * (1 + 1e-9) else NOT_EVALUABLE)


def test_quantify_combined_sums_both_tubes():
    t1 = TubeCounts("tube1", 6_000_000, 5_000_000, 12_000, 11_970, 30)
    t2 = TubeCounts("tube2", 5_500_000, 4_000_000, 9_000, 8_975, 25, kappa_aberrant=1, lambda_aberrant=24,
                    kappa_normal=5_000, lambda_normal=3_900)
    result = quantify([t1, t2])
    assert result.denominator == "combined"
    assert result.n_events_evaluable == 9_000_000 and result.n_aberrant_pc == 55
    assert result.mrd_fraction == pytest.approx(55 / 9e6)
    assert result.lod == pytest.approx(20 / 9e6) and result.lloq == pytest.approx(50 / 9e6)
    assert result.mrd_status == POSITIVE and result.sensitivity_met
    assert result.clonality == "indeterminate"  # 25 typed aberrant cells < 100
    assert [r.mrd_status for r in result.tubes] == [POSITIVE_BELOW_LLOQ, POSITIVE_BELOW_LLOQ]
    row = result.to_row()
    assert row["mrd_status"] == "POSITIVE" and row["sensitivity_met"] == "true" and row["n_plasma_cells"] == 21_000


def test_quantify_per_tube_reports_the_most_sensitive_tube():
    t1 = TubeCounts("tube1", 3_000_000, 1_500_000, 4_000, 3_990, 10)
    t2 = TubeCounts("tube2", 3_000_000, 2_500_000, 6_000, 5_985, 15, kappa_aberrant=0, lambda_aberrant=15)
    result = quantify([t1, t2], denominator="per_tube")
    assert result.denominator == "per_tube" and result.tube_names == ("tube2",)
    assert result.n_events_evaluable == 2_500_000 and result.mrd_status == NEGATIVE
    combined = quantify([t1, t2])
    assert combined.n_aberrant_pc == 25 and combined.mrd_status == POSITIVE_BELOW_LLOQ


@pytest.mark.parametrize(
    "k, l, expected",
    [(450, 100, "kappa"), (400, 100, "polyclonal"), (100, 200, "polyclonal"), (99, 200, "lambda"),
     (60, 39, "indeterminate"), (0, 0, "not_assessed"), (None, None, "not_assessed"), (150, 0, "kappa")],
)
def test_clonality_imwg_ratios_and_minimum_cells(k, l, expected):
    assert clonality(k, l) == expected


def test_clonality_needs_a_polytypic_normal_control():
    assert clonality(0, 300, kappa_normal=600, lambda_normal=400) == "lambda"
    # the "normal" PCs are themselves lambda-restricted: do not trust the call
    assert clonality(0, 300, kappa_normal=10, lambda_normal=400) == "indeterminate"
    # too few normal PCs to judge the control: the aberrant ratio alone decides
    assert clonality(0, 300, kappa_normal=1, lambda_normal=40) == "lambda"


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(n_events_evaluable=11), "exceeds n_events_acquired"),
        (dict(n_plasma_cells=9), "plasma cells must be gated inside"),
        (dict(n_aberrant_pc=-1), "non-negative integer"),
        (dict(n_normal_pc=4, n_aberrant_pc=4), "exceeds n_plasma_cells"),
        (dict(kappa_aberrant=3), "both be given"),
        (dict(kappa_aberrant=3, lambda_aberrant=3), "exceeds n_aberrant_pc"),
    ],
)
def test_inconsistent_counts_are_clear_errors(kwargs, fragment):
    base = dict(tube="T1", n_events_acquired=10, n_events_evaluable=8, n_plasma_cells=6, n_normal_pc=3,
                n_aberrant_pc=2)
    base.update(kwargs)
    with pytest.raises(AnalysisError, match=fragment) as info:
        TubeCounts(**base)
    assert "tube 'T1'" in str(info.value) and isinstance(info.value, MrdflowError)


def test_invalid_thresholds_and_rules_are_rejected():
    with pytest.raises(AnalysisError, match="lloq_events"):
        MrdThresholds(lod_events=20, lloq_events=10)
    with pytest.raises(AnalysisError, match="required_sensitivity"):
        MrdThresholds(required_sensitivity=0)
    with pytest.raises(AnalysisError, match="denominator"):
        quantify([TubeCounts("T", 1, 1, 0, 0, 0)], denominator="merged")
    with pytest.raises(AnalysisError, match="unique"):
        quantify([TubeCounts("T", 1, 1, 0, 0, 0), TubeCounts("T", 1, 1, 0, 0, 0)])
