"""Time-to-event derivation and censoring on hand-built patients; Kaplan–Meier vs lifelines and vs a hand-written
product-limit estimator; exact binomial CIs; MRD negativity and sustained negativity."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from lifelines.utils import median_survival_times
from scipy.stats import beta

from mrdflow.endpoints.mrd_status import classify_assessment, patient_mrd, sustained_negativity
from mrdflow.endpoints.rates import rate
from mrdflow.endpoints.survival import (duration_of_response, kaplan_meier, median_followup, overall_survival,
                                        progression_free_survival)

O = dt.date(2024, 1, 1)
CUT = dt.date(2025, 1, 1)


def day(n):
    return O + dt.timedelta(days=n)


def test_os_death_is_event_alive_censored_at_last_contact_and_cutoff():
    assert overall_survival("a", O, death_date=day(100), last_contact=day(100), cutoff=CUT).event
    alive = overall_survival("b", O, death_date=None, last_contact=day(200), cutoff=CUT)
    assert (alive.event, alive.days) == (False, 200)
    after_cut = overall_survival("c", O, death_date=day(500), last_contact=day(500), cutoff=CUT)
    assert (after_cut.event, after_cut.end) == (False, CUT)
    assert alive.months == pytest.approx(200 / 30.4375)


def test_pfs_first_of_pd_or_death_else_last_assessment():
    kw = dict(last_assessment=day(150), new_therapy_date=None, cutoff=CUT)
    pd_first = progression_free_survival("a", O, pd_date=day(120), death_date=day(130), **kw)
    assert (pd_first.event, pd_first.days, pd_first.reason) == (True, 120, "PD")
    death = progression_free_survival("b", O, pd_date=None, death_date=day(90), **kw)
    assert (death.event, death.days, death.reason) == (True, 90, "death")
    cens = progression_free_survival("c", O, pd_date=None, death_date=None, **kw)
    assert (cens.event, cens.days) == (False, 150)
    none = progression_free_survival("d", O, pd_date=None, death_date=None, last_assessment=None,
                                     new_therapy_date=None, cutoff=CUT)
    assert (none.event, none.days) == (False, 0)


def test_pfs_death_after_new_therapy_is_censored_by_default():
    kw = dict(pd_date=None, death_date=day(300), last_assessment=day(150), new_therapy_date=day(200), cutoff=CUT)
    t = progression_free_survival("a", O, **kw)
    assert (t.event, t.days) == (False, 150)
    assert progression_free_survival("a", O, censor_at_new_therapy=False, **kw).event


def test_dor_counts_disease_deaths_only_by_default():
    kw = dict(pd_date=None, death_date=day(300), last_assessment=day(250), new_therapy_date=None, cutoff=CUT)
    other = duration_of_response("a", day(30), death_cause="other", **kw)
    assert (other.event, other.days) == (False, 220)
    disease = duration_of_response("a", day(30), death_cause="disease", **kw)
    assert (disease.event, disease.days) == (True, 270)
    assert duration_of_response("a", day(30), death_cause="other", death_events="all", **kw).event


def _km_by_hand(t, e):
    """Independent product-limit estimator: S(t) after each distinct event time."""
    times = np.unique(t[e])
    s, out = 1.0, []
    for u in times:
        at_risk = np.sum(t >= u)
        d = np.sum((t == u) & e)
        s *= 1 - d / at_risk
        out.append((u, s))
    return out


@pytest.mark.parametrize("seed", range(8))
def test_km_median_and_ci_match_lifelines_and_hand_estimator(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(15, 60))
    t = np.round(rng.exponential(12, n), 1) + 0.1
    e = rng.random(n) < 0.7
    km = kaplan_meier("x", t, e, landmarks_months=(6,))
    ref = KaplanMeierFitter().fit(t, e)
    ci = median_survival_times(ref.confidence_interval_)
    med = ref.median_survival_time_
    assert (km.median_months is None) == (not np.isfinite(med))
    if km.median_months is not None:
        assert km.median_months == pytest.approx(med)
        # independent: first event time where the product-limit estimate is ≤ 0.5
        hand = next(u for u, s in _km_by_hand(t, e) if s <= 0.5 + 1e-12)
        assert km.median_months == pytest.approx(hand)
    for ours, theirs in ((km.median_ci_low, ci.iloc[0, 0]), (km.median_ci_high, ci.iloc[0, 1])):
        assert (ours is None and not np.isfinite(theirs)) or ours == pytest.approx(theirs)
    if 6 in km.landmarks:
        s6 = [s for u, s in _km_by_hand(t, e) if u <= 6]
        assert km.landmarks[6][0] == pytest.approx(s6[-1] if s6 else 1.0)


def test_median_exactly_half_is_reached_despite_float_rounding():
    # 8 patients, events at 1..4 months then censored: S = 7/8·6/7·5/6·4/5... product reaches exactly 0.5 at 4
    t = np.array([1, 2, 3, 4, 5, 6, 7, 8], float)
    e = np.array([1, 1, 1, 1, 0, 0, 0, 0], bool)
    assert kaplan_meier("x", t, e).median_months == pytest.approx(4.0)


def test_median_not_reached_and_reverse_km_followup():
    km = kaplan_meier("x", [5, 6, 7, 8], [True, False, False, False])
    assert km.median_months is None and km.median_text() == "not reached"
    from mrdflow.endpoints.survival import TimeToEvent
    os_data = [TimeToEvent(str(i), O, day(d), ev, "") for i, (d, ev) in enumerate(
        [(100, True), (300, False), (400, False), (500, False)])]
    fu = median_followup(os_data)
    # reverse KM: the death at 100 is censored; "events" (censored alive) at 300, 400, 500 → median at 400 days
    assert fu.median_months == pytest.approx(400 / 30.4375)


@pytest.mark.parametrize("k, n", [(0, 8), (3, 8), (8, 8), (7, 9), (1, 1)])
def test_clopper_pearson_matches_beta_quantiles(k, n):
    r = rate(k, n)
    lo = 0.0 if k == 0 else beta.ppf(0.025, k, n - k + 1)
    hi = 1.0 if k == n else beta.ppf(0.975, k + 1, n - k)
    assert r.value == k / n and r.ci_low == pytest.approx(lo) and r.ci_high == pytest.approx(hi)
    assert rate(0, 0).value is None


# --- MRD ---------------------------------------------------------------------------------------------------
def test_negative_only_when_lod_reaches_required_sensitivity():
    assert classify_assessment("NEGATIVE", 1e-5, 1e-5) == "negative"
    assert classify_assessment("NEGATIVE", 1.1e-5, 1e-5) == "not_evaluable"
    assert classify_assessment("POSITIVE_BELOW_LLOQ", 5e-5, 1e-5) == "positive"
    assert classify_assessment("NOT_EVALUABLE", 1e-6, 1e-5) == "not_evaluable"


def test_sustained_negativity_one_year_apart_without_positive_between():
    d = lambda n: day(n)  # noqa: E731
    assert sustained_negativity([(d(0), "negative"), (d(365), "negative")], 365) == d(365)
    assert sustained_negativity([(d(0), "negative"), (d(364), "negative")], 365) is None
    assert sustained_negativity([(d(0), "negative"), (d(200), "positive"), (d(400), "negative")], 365) is None
    assert sustained_negativity([(d(0), "negative"), (d(200), "not_evaluable"), (d(400), "negative")], 365) == d(400)


def test_patient_mrd_uses_study_tissue_and_cutoff():
    rows = pd.DataFrame({"patient_id": ["A"] * 3, "date": [day(0), day(10), day(400)],
                         "tissue": ["PB", "BM", "BM"], "method": ["NGF"] * 3,
                         "mrd_fraction": [0.0, 0.0, 0.0], "lod": [1e-6, 2e-5, 5e-6],
                         "mrd_status": ["NEGATIVE", "NEGATIVE", "NEGATIVE"]})
    m = patient_mrd("A", rows, required_sensitivity=1e-5)
    assert (m.n_assessments, m.evaluable, m.negative, m.first_negative_date) == (2, True, True, day(400))
    cut = patient_mrd("A", rows, required_sensitivity=1e-5, data_cutoff=day(100))
    assert (cut.evaluable, cut.negative) == (False, False)
