"""Property tests: the table parser round-trips values and always names the offending row; the response engine is
monotone in the M-protein and never confirms a level above either of the two assessments it rests on."""

import datetime as dt

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrdflow.endpoints import criteria as C
from mrdflow.endpoints.imwg import RANK, Assessment, classify_visits, confirm
from mrdflow.endpoints.tables import parse_table
from mrdflow.errors import StudyError

D0 = dt.date(2024, 1, 1)
PATIENTS = pd.DataFrame({"patient_id": ["A"], "diagnosis_date": [dt.date(2020, 1, 1)]})


def _cga(rows):
    return pd.DataFrame({"patient_id": ["A"] * len(rows), "date": ["2024-01-01"] * len(rows),
                         "adl": [r[0] for r in rows], "iadl": [r[1] for r in rows], "cci": [r[2] for r in rows]})


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.floats(0, 8, allow_nan=False), st.integers(0, 30)),
                min_size=1, max_size=20))
def test_valid_numbers_round_trip(rows):
    df = parse_table(_cga([(str(a), repr(b), str(c)) for a, b, c in rows]), "cga", source="x.csv", patients=PATIENTS)
    assert df["adl"].tolist() == [float(r[0]) for r in rows]
    assert df["iadl"].tolist() == [r[1] for r in rows]
    assert df["source_row"].tolist() == list(range(1, len(rows) + 1))


@settings(max_examples=80, deadline=None)
@given(n=st.integers(1, 15), bad_row=st.data(), bad=st.sampled_from(["-1", "x", "6.5", "nan", "inf", "1e9", "--"]))
def test_a_bad_cell_is_reported_with_its_row(n, bad_row, bad):
    k = bad_row.draw(st.integers(1, n))
    rows = [("5", "7", "1")] * n
    rows[k - 1] = (bad, "7", "1")
    with pytest.raises(StudyError) as err:
        parse_table(_cga(rows), "cga", source="x.csv", patients=PATIENTS)
    assert f"row {k}, column 'adl'" in str(err.value)


M_PROTEIN = st.floats(0, 10, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(base=st.floats(1, 10), v1=M_PROTEIN, v2=M_PROTEIN, cs=st.sampled_from(sorted(C.CRITERIA_SETS)))
def test_lower_m_protein_never_gives_a_worse_category(base, v1, v2, cs):
    lo, hi = sorted((v1, v2))
    baseline = Assessment(D0, base, 0.0, "pos", "neg", pb_pc_pct=10.0)

    def rank(v):
        visit = Assessment(D0 + dt.timedelta(days=30), v, 0.0, "pos", "neg", pb_pc_pct=0.0, bm_pc_pct=3.0)
        return RANK[classify_visits(baseline, [visit], C.CRITERIA_SETS[cs])[0].category]

    assert rank(lo) >= rank(hi)


@settings(max_examples=150, deadline=None)
@given(st.lists(M_PROTEIN, min_size=1, max_size=10))
def test_confirmed_level_never_exceeds_either_assessment(values):
    baseline = Assessment(D0, 4.0, 0.0, "pos", "neg")
    visits = [Assessment(D0 + dt.timedelta(days=30 * (i + 1)), v, 0.0, "pos", "neg") for i, v in enumerate(values)]
    confirmed, pd_index, _ = confirm(classify_visits(baseline, visits, C.CRITERIA_SETS["imwg2016"]))
    for i, v in enumerate(confirmed):
        if v.confirmed not in (None, "PD"):
            assert RANK[v.confirmed] <= RANK[v.category]
            assert RANK[v.confirmed] <= RANK[confirmed[i + 1].category]
    if pd_index is not None:
        assert confirmed[pd_index].category == "PD" and len(confirmed) == pd_index + 1
