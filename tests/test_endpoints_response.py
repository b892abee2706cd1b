"""IMWG 2016 / PCL response engine: every category boundary, PD against the nadir, confirmation, PCL blood rules."""

import datetime as dt

import pytest

from mrdflow.endpoints import criteria as C
from mrdflow.endpoints.imwg import Assessment, classify_visits, derive_response, measurability

IMWG = C.CRITERIA_SETS["imwg2016"]
PCL13 = C.CRITERIA_SETS["pcl2013"]
VDD = C.CRITERIA_SETS["pcl_vandedonk2012"]
D0 = dt.date(2024, 1, 1)


def a(day, serum=None, urine=0.0, sife="pos", uife="neg", kappa=None, lam=None, bm=None, ihc=None, pb=None,
      spd=None, new="no"):
    return Assessment(D0 + dt.timedelta(days=day), serum, urine, sife, uife, kappa, lam, bm, ihc, pb, spd, new)


def cat(baseline, visit, cs=IMWG, history=()):
    """Unconfirmed category of ``visit`` after optional earlier visits."""
    return classify_visits(baseline, [*history, visit], cs)[-1].category


BASE = a(0, serum=2.0, urine=0.0, bm=60)


@pytest.mark.parametrize("serum, expected", [
    (1.0, "PR"),      # exactly 50 % reduction
    (1.002, "MR"),    # 49.9 %
    (1.5, "MR"),      # exactly 25 %
    (1.52, "SD"),     # 24 %
    (0.2, "VGPR"),    # exactly 90 % (urine 0 < 100 mg)
    (0.202, "PR"),    # 89.9 %
])
def test_serum_reduction_boundaries(serum, expected):
    assert cat(BASE, a(30, serum=serum)) == expected


def test_vgpr_needs_urine_below_100_mg():
    base = a(0, serum=2.0, urine=150.0)
    assert cat(base, a(30, serum=0.1, urine=99.0)) == "VGPR"
    assert cat(base, a(30, serum=0.1, urine=100.0)) == "PR"
    assert cat(base, a(30, serum=0.1, urine=None)) == "PR"  # urine not done: VGPR cannot be called


def test_electrophoresis_negative_but_ife_positive_is_vgpr():
    assert cat(BASE, a(30, serum=0.0, urine=0.0, sife="pos")) == "VGPR"


def test_urine_only_disease_pr_by_90pct_or_below_200():
    base = a(0, serum=0.5, urine=1000.0)
    m = measurability(base)
    assert (m.serum, m.urine) == (False, True)
    assert cat(base, a(30, serum=0.5, urine=199.0)) == "PR"   # < 200 mg/24 h
    assert cat(base, a(30, serum=0.5, urine=200.0)) == "SD"   # 80 %, not < 200
    assert cat(base, a(30, serum=0.5, urine=99.0)) == "VGPR"


def test_measurable_disease_thresholds():
    assert measurability(a(0, serum=1.0)).serum and not measurability(a(0, serum=0.99)).serum
    assert measurability(a(0, serum=0, urine=200.0)).urine and not measurability(a(0, serum=0, urine=199.0)).urine
    flc = measurability(a(0, serum=0, urine=0, kappa=100.0, lam=10.0))
    assert flc.flc and flc.involved_chain == "kappa"
    assert not measurability(a(0, serum=0, urine=0, kappa=99.0, lam=10.0)).flc
    # serum measurable: FLC is not followed even if high
    assert not measurability(a(0, serum=2.0, kappa=500.0, lam=10.0)).flc


def test_flc_only_pr_at_exactly_50pct_dflc_reduction():
    base = a(0, serum=0, urine=0, kappa=210.0, lam=10.0)  # dFLC 200 mg/L
    assert cat(base, a(30, serum=0, urine=0, kappa=110.0, lam=10.0)) == "PR"   # dFLC 100 = 50 %
    assert cat(base, a(30, serum=0, urine=0, kappa=111.0, lam=10.0)) == "SD"


def test_marrow_only_disease_pr_needs_baseline_30pct():
    base = a(0, serum=0, urine=0, bm=40)
    assert measurability(base).marrow
    assert cat(base, a(30, serum=0, urine=0, bm=20)) == "PR"
    assert not measurability(a(0, serum=0, urine=0, bm=29)).marrow


def test_cr_needs_negative_ife_both_and_marrow_below_5pct():
    assert cat(BASE, a(30, serum=0, urine=0, sife="neg", uife="neg", bm=4.9)) == "CR"
    assert cat(BASE, a(30, serum=0, urine=0, sife="neg", uife="neg", bm=5.0)) == "VGPR"   # IMWG: < 5 %
    assert cat(BASE, a(30, serum=0, urine=0, sife="neg", uife="pos", bm=1.0)) == "VGPR"
    # van de Donk 2012: ≤ 5 % (no blood PCs)
    assert cat(BASE, a(30, serum=0, urine=0, sife="neg", uife="neg", bm=5.0, pb=0), VDD) == "CR"


def test_cr_marrow_is_carried_forward_and_needs_no_repeat():
    hist = [a(30, serum=0.1, bm=2.0)]
    assert cat(BASE, a(60, serum=0, urine=0, sife="neg", uife="neg"), history=hist) == "CR"


def test_scr_needs_normal_flc_ratio_and_no_clonal_cells_by_ihc():
    kw = dict(serum=0, urine=0, sife="neg", uife="neg", bm=1.0)
    assert cat(BASE, a(30, **kw, ihc="no", kappa=12.0, lam=12.0)) == "sCR"
    assert cat(BASE, a(30, **kw, ihc="yes", kappa=12.0, lam=12.0)) == "CR"
    assert cat(BASE, a(30, **kw, ihc="no", kappa=12.0, lam=7.0)) == "CR"   # ratio 1.71 > 1.65
    assert cat(BASE, a(30, **kw, ihc="no", kappa=16.5, lam=10.0)) == "sCR"  # ratio exactly 1.65


def test_plasmacytoma_must_halve_for_pr_and_vanish_for_cr():
    base = a(0, serum=2.0, spd=400.0)
    assert cat(base, a(30, serum=0.9, spd=200.0)) == "PR"
    assert cat(base, a(30, serum=0.9, spd=201.0)) == "SD"
    assert cat(base, a(30, serum=0, urine=0, sife="neg", uife="neg", bm=1, spd=10.0)) == "VGPR"


@pytest.mark.parametrize("nadir, value, is_pd", [
    (2.0, 2.5, True),     # +25 % and +0.5 g/dL exactly
    (2.0, 2.49, False),
    (1.0, 1.49, False),   # +49 % but only +0.49 g/dL
    (1.0, 1.5, True),
    (0.4, 0.85, False),   # +112 % but < 0.5 g/dL
    (4.0, 4.9, False),    # +0.9 g/dL is only 22.5 %
    (4.0, 5.0, True),
    (5.0, 6.0, True),     # nadir ≥ 5 g/dL: +1 g/dL suffices (20 %)
    (5.0, 5.99, False),
])
def test_serum_pd_from_nadir(nadir, value, is_pd):
    base = a(0, serum=nadir * 2 if nadir * 2 >= 1 else 1.0)
    hist = [a(10, serum=nadir)]
    got = classify_visits(base, [*hist, a(40, serum=value)], IMWG)[-1]
    assert (got.category == "PD") is is_pd
    if is_pd:
        assert got.reasons == ("serum",) and got.needs_confirmation


def test_pd_is_measured_from_the_nadir_not_the_baseline():
    base = a(0, serum=3.0)
    visits = classify_visits(base, [a(30, serum=1.0), a(60, serum=1.5)], IMWG)
    assert visits[-1].category == "PD"   # +0.5 and +50 % from the nadir 1.0, still 50 % below baseline


def test_urine_and_marrow_and_lesion_pd():
    base = a(0, serum=0.5, urine=800.0)
    assert cat(base, a(60, serum=0.5, urine=400.0), history=[a(30, serum=0.5, urine=200.0)]) == "PD"   # +200, +100 %
    assert cat(base, a(60, serum=0.5, urine=399.0), history=[a(30, serum=0.5, urine=200.0)]) != "PD"
    marrow = a(0, serum=0, urine=0, bm=40)
    v = classify_visits(marrow, [a(30, serum=0, urine=0, bm=10), a(60, serum=0, urine=0, bm=20)], IMWG)[-1]
    assert v.category == "PD" and not v.needs_confirmation
    assert cat(marrow, a(60, serum=0, urine=0, bm=19.9), history=[a(30, serum=0, urine=0, bm=10)]) != "PD"
    lesion = classify_visits(BASE, [a(30, serum=0.5, new="yes")], IMWG)[-1]
    assert lesion.category == "PD" and lesion.reasons == ("new lesion",) and not lesion.needs_confirmation


def _resp(visits, base=BASE, cs=IMWG, **kw):
    return derive_response("X", [base, *visits], enrollment_date=base.date, new_therapy_date=kw.pop("new_therapy", None),
                           data_cutoff=dt.date(2030, 1, 1), criteria=cs, **kw)


def test_unconfirmed_pd_followed_by_non_pd_is_ignored():
    r = _resp([a(30, serum=0.8), a(60, serum=0.8), a(90, serum=1.4), a(120, serum=0.9), a(150, serum=0.8)])
    assert r.pd_date is None
    assert r.best_response == "PR"
    assert [v.category for v in r.visits][2] == "PD" and r.visits[2].confirmed is None


def test_confirmed_pd_dated_at_first_pd_assessment():
    r = _resp([a(30, serum=0.8), a(60, serum=0.8), a(90, serum=1.4), a(120, serum=1.6)])
    assert r.pd_date == D0 + dt.timedelta(days=90) and r.pd_reasons == ("serum",)
    assert r.best_response == "PR" and r.first_pr_date == D0 + dt.timedelta(days=30)


def test_final_unconfirmed_pd_is_a_parameter():
    visits = [a(30, serum=0.8), a(60, serum=0.8), a(90, serum=1.4)]
    assert _resp(visits).pd_date == D0 + dt.timedelta(days=90) and _resp(visits).pd_unconfirmed_final
    assert _resp(visits, accept_unconfirmed_final_pd=False).pd_date is None


def test_response_confirmed_at_lower_of_two_consecutive_levels():
    r = _resp([a(30, serum=0.9), a(60, serum=0.1), a(90, serum=0.1)])
    assert [v.confirmed for v in r.visits] == ["PR", "VGPR", None]
    assert r.best_response == "VGPR" and r.best_response_date == D0 + dt.timedelta(days=60)
    single = _resp([a(30, serum=0.9)])
    assert single.best_response == "SD" and single.first_pr_date is None


def test_assessments_from_new_therapy_on_are_not_used():
    r = _resp([a(30, serum=0.9), a(60, serum=0.9), a(90, serum=0.1), a(120, serum=0.1)],
              new_therapy=D0 + dt.timedelta(days=90))
    assert r.best_response == "PR" and r.last_assessment_date == D0 + dt.timedelta(days=60)


def test_no_baseline_is_not_evaluable():
    r = derive_response("X", [a(30, serum=1.0)], enrollment_date=D0, new_therapy_date=None,
                        data_cutoff=dt.date(2030, 1, 1), criteria=IMWG)
    assert r.best_response == "NE" and r.baseline_date is None


def test_relapse_from_cr_is_not_pd():
    cr = dict(serum=0, urine=0, sife="neg", uife="neg", bm=1)
    r = _resp([a(30, **cr), a(60, **cr), a(90, serum=0.1), a(120, serum=0.2)])
    assert r.best_response == "CR" and r.cr_date == D0 + dt.timedelta(days=30)
    assert r.relapse_from_cr_date == D0 + dt.timedelta(days=90) and r.pd_date is None


# --- PCL criteria sets -------------------------------------------------------------------------------------
PCL_BASE = a(0, serum=2.0, bm=60, pb=30)
CR_SEROLOGY = dict(serum=0, urine=0, sife="neg", uife="neg", bm=1, kappa=12.0, lam=12.0, ihc="no")


def test_pcl2013_blood_plasma_cells_gate_each_level():
    assert cat(PCL_BASE, a(30, **CR_SEROLOGY, pb=0), PCL13) == "sCR"
    assert cat(PCL_BASE, a(30, **CR_SEROLOGY, pb=1), PCL13) == "PR"     # CR/VGPR need 0 % blood PCs
    assert cat(PCL_BASE, a(30, **CR_SEROLOGY, pb=5), PCL13) == "PR"     # PR: blood PCs ≤ 5 %
    assert cat(PCL_BASE, a(30, **CR_SEROLOGY, pb=5.1), PCL13) == "SD"
    assert cat(PCL_BASE, a(30, **CR_SEROLOGY, pb=None), PCL13) == "SD"  # blood not examined


def test_pcl2013_marrow_limits_vgpr_and_pr():
    assert cat(PCL_BASE, a(30, serum=0.1, bm=4.9, pb=0), PCL13) == "VGPR"
    assert cat(PCL_BASE, a(30, serum=0.1, bm=5.0, pb=0), PCL13) == "PR"
    assert cat(PCL_BASE, a(30, serum=0.9, bm=25.0, pb=2), PCL13) == "PR"
    assert cat(PCL_BASE, a(30, serum=0.9, bm=25.1, pb=2), PCL13) == "SD"


def test_pcl2013_has_no_mr_and_pr_needs_urine_90pct_and_below_200():
    assert cat(PCL_BASE, a(30, serum=1.4, pb=0), PCL13) == "SD"   # 30 %: MR in IMWG
    assert cat(PCL_BASE, a(30, serum=1.4, pb=0), IMWG) == "MR"
    base = a(0, serum=2.0, urine=1000.0, pb=30)
    assert cat(base, a(30, serum=0.9, urine=150.0, pb=1), IMWG) == "PR"
    assert cat(base, a(30, serum=0.9, urine=150.0, pb=1), PCL13) == "SD"   # 85 % < 90 %
    assert cat(base, a(30, serum=0.9, urine=100.0, pb=1), PCL13) == "PR"


def test_pcl2013_blood_pd_needs_more_than_5pct_absolute_rise():
    hist = [a(30, serum=0.9, pb=0)]
    assert cat(PCL_BASE, a(60, serum=0.9, pb=5.0), PCL13, hist) != "PD"
    v = classify_visits(PCL_BASE, [*hist, a(60, serum=0.9, pb=5.1)], PCL13)[-1]
    assert v.category == "PD" and v.reasons == ("blood PC",) and v.needs_confirmation
    assert cat(PCL_BASE, a(60, serum=0.9, pb=5.1), IMWG, hist) != "PD"


def test_pcl2013_vgpr_by_dflc_for_unmeasurable_serum_and_urine():
    base = a(0, serum=0, urine=0, kappa=1010.0, lam=10.0, pb=20)
    kw = dict(serum=0, urine=0, lam=10.0, bm=2, pb=0)
    assert cat(base, a(30, kappa=110.0, **kw), PCL13) == "VGPR"   # dFLC 100 = 90 % reduction
    assert cat(base, a(30, kappa=111.0, **kw), PCL13) == "PR"
    assert cat(base, a(30, kappa=110.0, **kw), IMWG) == "PR"      # IMWG 2016 has no dFLC VGPR


def test_vandedonk_pr_needs_90pct_blood_reduction_and_at_most_5pct():
    assert cat(PCL_BASE, a(30, serum=0.9, pb=3.0), VDD) == "PR"    # 30 → 3: exactly 90 %
    assert cat(PCL_BASE, a(30, serum=0.9, pb=3.1), VDD) == "MR"  # PR blood condition fails → next level
    base = a(0, serum=2.0, pb=4.0)
    assert cat(base, a(30, serum=0.9, pb=0.4), VDD) == "PR"
    assert cat(base, a(30, serum=0.9, pb=0.5), VDD) != "PR"
    assert cat(PCL_BASE, a(30, serum=0.1, bm=10, pb=1), VDD) != "VGPR"   # VGPR: no blood PCs
    assert cat(PCL_BASE, a(30, serum=0.1, bm=10, pb=0), VDD) == "VGPR"
