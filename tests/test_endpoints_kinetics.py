"""CAR-T kinetics: BLQ rules, AUC0–28 by the linear trapezoid with day-28 interpolation, Cmax/Tmax/Tlast."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrdflow.endpoints.kinetics import apply_blq_rule, auc_linear, nca

DAYS = [0, 7, 14, 21, 28, 56]
#           BLQ   q    BLQ  q     q    BLQ
VALUES = [np.nan, 100, np.nan, 300, 200, np.nan]
BLQ = [True, False, True, False, False, True]
LLOQ = [50.0] * 6


def test_positional_rule_zero_before_first_drop_between_zero_after_last():
    d, v = apply_blq_rule(DAYS, VALUES, BLQ, LLOQ, "positional")
    assert d.tolist() == [0, 7, 21, 28, 56] and v.tolist() == [0, 100, 300, 200, 0]


@pytest.mark.parametrize("rule, days, values", [
    ("zero", [0, 7, 14, 21, 28, 56], [0, 100, 0, 300, 200, 0]),
    ("drop", [7, 21, 28], [100, 300, 200]),
    ("half_lloq", [0, 7, 14, 21, 28, 56], [25, 100, 25, 300, 200, 25]),
])
def test_other_blq_rules(rule, days, values):
    d, v = apply_blq_rule(DAYS, VALUES, BLQ, LLOQ, rule)
    assert d.tolist() == days and v.tolist() == values


def test_auc_linear_trapezoid_by_hand():
    r = nca("P", DAYS, VALUES, BLQ, LLOQ)
    # positional: (0,0) (7,100) (21,300) (28,200): 7*50 + 14*200 + 7*250
    assert r.auc0_28 == pytest.approx(7 * 50 + 14 * 200 + 7 * 250) and r.auc_flag == ""
    assert (r.cmax, r.tmax_days, r.clast, r.tlast_days) == (300, 21, 200, 28)


def test_day28_interpolated_when_bracketed():
    d, v = np.array([0.0, 14, 42]), np.array([0.0, 1000, 300])
    auc, flag = auc_linear(d, v, 28)
    c28 = 1000 + (300 - 1000) * 14 / 28   # 650
    assert flag == "" and auc == pytest.approx(14 * 500 + 14 * (1000 + c28) / 2)


def test_auc_flagged_when_no_sample_reaches_day28():
    r = nca("P", [0, 7, 14, 21], [np.nan, 100, 400, 200], [True, False, False, False], [50] * 4)
    assert r.auc0_28 is None and "day 21" in r.auc_flag
    assert r.cmax == 400 and r.tmax_days == 14


def test_day0_assumed_zero_unless_disabled():
    auc, _ = auc_linear(np.array([7.0, 28]), np.array([100.0, 100]), 28, assume_zero_at_day0=True)
    assert auc == pytest.approx(7 * 50 + 21 * 100)
    auc, flag = auc_linear(np.array([7.0, 28]), np.array([100.0, 100]), 28, assume_zero_at_day0=False)
    assert auc is None and "day 0" in flag


def test_value_below_lloq_counts_as_blq_and_tmax_takes_first_of_ties():
    r = nca("P", [0, 7, 10, 14, 28], [0, 30, 500, 500, 100], [False] * 5, [50] * 5)
    assert r.tmax_days == 10 and r.cmax == 500
    # day 7 (30 < LLOQ 50) is BLQ before the first quantifiable: kept as 0
    assert r.values[1] == 0 and r.days[1] == 7


def test_cmax_window():
    r = nca("P", [7, 14, 28, 60], [100, 200, 150, 900], [False] * 4, [50] * 4, cmax_window_days=28)
    assert (r.cmax, r.tmax_days) == (200, 14)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=1, max_value=1e6), min_size=2, max_size=12))
def test_all_quantifiable_auc_equals_numpy_trapezoid(vals):
    days = np.linspace(0, 28, len(vals))
    r = nca("P", days, vals, [False] * len(vals), [0.5] * len(vals))
    assert r.auc0_28 == pytest.approx(float(np.trapezoid(vals, days)), rel=1e-9)
    assert r.cmax == max(vals)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=15))
def test_positional_rule_keeps_every_quantifiable_and_outer_blq(blq):
    n = len(blq)
    days, vals = np.arange(n, dtype=float), np.where(blq, np.nan, 100.0)
    d, v = apply_blq_rule(days, vals, blq, [1.0] * n, "positional")
    quant = [i for i in range(n) if not blq[i]]
    if quant:
        inner_blq = [i for i in range(quant[0] + 1, quant[-1]) if blq[i]]
        assert len(d) == n - len(inner_blq)
        assert set(quant) <= set(d.astype(int).tolist())
    else:
        assert len(d) == n and (v == 0).all()
    assert not np.isnan(v).any()
