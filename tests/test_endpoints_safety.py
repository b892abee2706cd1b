"""CTCAE cytopenia grades at v5.0 and v6.0, ASTCT CRS and ICANS grade rows, episodes and TEAE incidence."""

import datetime as dt

import pandas as pd
import pytest

from mrdflow.endpoints.safety import (crs_day_grade, ctcae_grade, icans_day_grade, summarise_daily, teae_table,
                                      treatment_emergent, worst_cytopenias)

LLN = {"wbc_10e9_l": 4.0, "anc_10e9_l": 1.8, "hb_g_dl": 12.0, "plt_10e9_l": 150.0, "alc_10e9_l": 1.0}


@pytest.mark.parametrize("column, value, grade", [
    ("anc_10e9_l", 1.8, 0), ("anc_10e9_l", 1.79, 1), ("anc_10e9_l", 1.5, 1), ("anc_10e9_l", 1.49, 2),
    ("anc_10e9_l", 1.0, 2), ("anc_10e9_l", 0.99, 3), ("anc_10e9_l", 0.5, 3), ("anc_10e9_l", 0.49, 4),
    ("wbc_10e9_l", 3.0, 1), ("wbc_10e9_l", 2.0, 2), ("wbc_10e9_l", 1.0, 3), ("wbc_10e9_l", 0.99, 4),
    ("hb_g_dl", 10.0, 1), ("hb_g_dl", 9.9, 2), ("hb_g_dl", 8.0, 2), ("hb_g_dl", 7.9, 3), ("hb_g_dl", 4.0, 3),
    ("plt_10e9_l", 75, 1), ("plt_10e9_l", 74, 2), ("plt_10e9_l", 50, 2), ("plt_10e9_l", 25, 3), ("plt_10e9_l", 24, 4),
    ("alc_10e9_l", 0.8, 1), ("alc_10e9_l", 0.5, 2), ("alc_10e9_l", 0.2, 3), ("alc_10e9_l", 0.19, 4),
])
def test_ctcae_v5_boundaries(column, value, grade):
    assert ctcae_grade(column, value, "5.0", LLN[column]) == grade


@pytest.mark.parametrize("column, value, grade", [
    ("anc_10e9_l", 1.6, 0),   # v6 grade 1 starts below 1.5, whatever the LLN
    ("anc_10e9_l", 1.49, 1), ("anc_10e9_l", 1.0, 1), ("anc_10e9_l", 0.99, 2), ("anc_10e9_l", 0.5, 2),
    ("anc_10e9_l", 0.49, 3), ("anc_10e9_l", 0.1, 3), ("anc_10e9_l", 0.09, 4),
    ("plt_10e9_l", 25, 3), ("plt_10e9_l", 10, 3), ("plt_10e9_l", 9, 4),
    ("alc_10e9_l", 0.99, 1), ("alc_10e9_l", 0.05, 1), ("alc_10e9_l", 1.0, 0),
    ("wbc_10e9_l", 0.99, 4), ("hb_g_dl", 7.9, 3),
])
def test_ctcae_v6_boundaries(column, value, grade):
    assert ctcae_grade(column, value, "6.0", LLN[column]) == grade


def test_grade1_needs_value_below_lln():
    assert ctcae_grade("wbc_10e9_l", 3.5, "5.0", 3.5) == 0
    assert ctcae_grade("wbc_10e9_l", 3.49, "5.0", 3.5) == 1


@pytest.mark.parametrize("temp, hypo, oxy, anticytokine, grade", [
    (37.9, "none", "none", False, 0),                 # no fever
    (38.0, "none", "none", False, 1),                 # fever ≥ 38.0 alone
    (38.5, "no_vasopressor", "none", False, 2),
    (38.5, "none", "low_flow", False, 2),
    (38.5, "one_vasopressor", "none", False, 3),
    (38.5, "none", "high_flow", False, 3),
    (38.5, "one_vasopressor", "low_flow", False, 3),  # worse of the two
    (38.5, "multiple_vasopressors", "none", False, 4),
    (38.5, "none", "positive_pressure", False, 4),
    (37.0, "one_vasopressor", "none", False, 0),      # no fever, no anticytokine: not CRS
    (37.0, "one_vasopressor", "none", True, 3),       # fever not required after anticytokine therapy
    (37.0, "none", "none", True, 0),
])
def test_crs_grade_rows(temp, hypo, oxy, anticytokine, grade):
    assert crs_day_grade(temp, hypo, oxy, anticytokine) == grade


@pytest.mark.parametrize("ice, cons, seizure, motor, edema, grade", [
    (10, "normal", "none", "none", "none", 0),
    (9, "normal", "none", "none", "none", 1), (7, "normal", "none", "none", "none", 1),
    (6, "normal", "none", "none", "none", 2), (3, "normal", "none", "none", "none", 2),
    (2, "normal", "none", "none", "none", 3), (0, "normal", "none", "none", "none", 3),
    (10, "awakens_spontaneously", "none", "none", "none", 1),
    (10, "awakens_to_voice", "none", "none", "none", 2),
    (10, "awakens_to_tactile", "none", "none", "none", 3),
    (None, "unarousable", "none", "none", "none", 4),   # ICE not performable ≠ ICE 0
    (10, "normal", "resolving", "none", "none", 3), (10, "normal", "eeg_nonconvulsive", "none", "none", 3),
    (10, "normal", "prolonged", "none", "none", 4), (10, "normal", "repetitive", "none", "none", 4),
    (10, "normal", "none", "deep_focal_weakness", "none", 4),
    (10, "normal", "none", "none", "focal", 3), (10, "normal", "none", "none", "diffuse", 4),
    (3, "normal", "resolving", "none", "none", 3),       # ICE 3 + seizure = grade 3 (worst domain)
])
def test_icans_grade_rows(ice, cons, seizure, motor, edema, grade):
    assert icans_day_grade(ice, cons, seizure, motor, edema) == grade


def test_episode_onset_duration_and_count():
    inf = dt.date(2024, 1, 1)
    days = [(inf + dt.timedelta(days=d), g) for d, g in [(0, 0), (2, 1), (3, 2), (4, 1), (5, 0), (9, 1)]]
    e = summarise_daily("P", inf, days)
    assert (e.occurred, e.max_grade, e.onset_day, e.duration_days, e.n_episodes) == (True, 2, 2, 3, 2)
    assert not summarise_daily("P", inf, [(inf, 0)]).occurred


def test_teae_incidence_counts_patients_once_and_only_after_infusion():
    inf = {"A": dt.date(2024, 1, 10), "B": dt.date(2024, 1, 10), "C": dt.date(2024, 1, 10)}
    ae = pd.DataFrame({
        "patient_id": ["A", "A", "B", "B", "D"],
        "term": ["Neutropenia", "Neutropenia", "Neutropenia", "Anaemia", "Neutropenia"],
        "onset_date": [dt.date(2024, 1, 12), dt.date(2024, 2, 1), dt.date(2024, 1, 5), dt.date(2024, 1, 20),
                       dt.date(2024, 1, 20)],
        "grade": [2.0, 4.0, 4.0, 2.0, 3.0],
        "serious": ["no"] * 5,
    })
    te = treatment_emergent(ae, inf, dt.date(2025, 1, 1))
    assert len(te) == 3  # B's pre-infusion neutropenia and non-infused D are not TEAEs
    t = teae_table(te, 3).set_index("term")
    assert t.loc["Neutropenia", "n_any"] == 1 and t.loc["Neutropenia", "n_grade3plus"] == 1
    assert t.loc["Anaemia", "n_grade3plus"] == 0 and (t["n_infused"] == 3).all()


def test_missing_source_grade_is_derived_for_crs_icans_and_cytopenias():
    inf = {"A": dt.date(2024, 1, 10)}
    ae = pd.DataFrame({"patient_id": ["A"] * 3, "term": ["Cytokine release syndrome", "Neutropenia", "Rash"],
                       "onset_date": [dt.date(2024, 1, 12)] * 3, "grade": [float("nan")] * 3})
    te = treatment_emergent(ae, inf, dt.date(2025, 1, 1), {("A", "crs"): 3, ("A", "anc_10e9_l"): 4})
    assert te["grade"].tolist()[:2] == [3.0, 4.0] and te["grade_source"].tolist() == ["derived", "derived", "unknown"]
    t = teae_table(te, 1).set_index("term")
    assert t.loc["Rash", "n_any"] == 1 and t.loc["Rash", "n_grade3plus"] == 0


def test_worst_cytopenia_per_patient_within_window():
    d = dt.date(2024, 1, 1)
    labs = pd.DataFrame({"patient_id": ["A", "A", "A"], "date": [d, d + dt.timedelta(days=7), d + dt.timedelta(days=400)],
                         "wbc_10e9_l": [5.0, 1.5, 0.5], "anc_10e9_l": [3.0, 0.4, 0.1], "hb_g_dl": [13.0, 9.0, 7.0],
                         "plt_10e9_l": [200.0, 60.0, 5.0], "alc_10e9_l": [1.5, 0.1, 0.1]})
    w = worst_cytopenias(labs, "5.0", LLN, {"A": (d, d + dt.timedelta(days=100))}).set_index("term")
    assert w.loc["Neutrophil count decreased", "worst_grade"] == 4
    assert w.loc["Platelet count decreased", "worst_grade"] == 2   # the day-400 value is outside the window
    assert w.loc["Anemia", "worst_grade"] == 2
