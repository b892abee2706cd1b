"""IMWG frailty score: component cut-offs, categories, and the scale direction both ways."""

import datetime as dt

import pytest

from mrdflow.endpoints.criteria import FrailtyCutoffs
from mrdflow.endpoints.frailty import age_in_years, frailty_score

D = dt.date(2025, 1, 1)


@pytest.mark.parametrize("age, points", [(75, 0), (76, 1), (80, 1), (81, 2)])
def test_age_points(age, points):
    assert frailty_score(D, age, 0, 6, 8).age_points == points


def test_components_and_categories_standard_scale():
    fit = frailty_score(D, 70, 1, 5, 6)
    assert (fit.total, fit.category) == (0, "fit")
    inter = frailty_score(D, 70, 2, 5, 6)   # CCI ≥ 2
    assert (inter.cci_points, inter.category) == (1, "intermediate")
    frail = frailty_score(D, 70, 0, 4, 5)   # ADL ≤ 4 and IADL ≤ 5
    assert (frail.adl_points, frail.iadl_points, frail.category) == (1, 1, "frail")
    worst = frailty_score(D, 85, 3, 0, 0)
    assert (worst.total, worst.category) == (5, "frail")


def test_inverted_scale_is_converted_before_scoring():
    # CRF "higher = worse": ADL 2 means 4 on the standard scale (impaired), IADL 2 means 6 (not impaired)
    inv = frailty_score(D, 70, 0, 2, 2, direction="inverted")
    assert (inv.adl_std, inv.iadl_std, inv.adl_points, inv.iadl_points) == (4, 6, 1, 0)
    # the same raw numbers read as standard give the opposite picture
    std = frailty_score(D, 70, 0, 2, 2, direction="standard")
    assert (std.adl_points, std.iadl_points) == (1, 1)
    assert frailty_score(D, 70, 0, 0, 0, direction="inverted").category == "fit"
    assert frailty_score(D, 70, 0, 0, 0, direction="standard").category == "frail"


def test_cutoffs_are_parameters():
    cut = FrailtyCutoffs(age_1pt_above=70)
    assert frailty_score(D, 71, 0, 6, 8, cut=cut).age_points == 1


def test_age_in_completed_years():
    assert age_in_years(dt.date(2025, 3, 1), birth_date=dt.date(1950, 3, 2)) == 74
    assert age_in_years(dt.date(2025, 3, 2), birth_date=dt.date(1950, 3, 2)) == 75
    assert age_in_years(dt.date(2026, 1, 2), age_at_enrollment=75, enrollment_date=dt.date(2025, 1, 1)) == 76
