"""Hemodilution from BM-restricted populations: blood admixture is caught, a clean marrow is not flagged."""

import numpy as np
import pytest

from mrdflow.errors import AnalysisError
from mrdflow.qc.hemodilution import BM_RESTRICTED_ROLES, HemodilutionReference, assess_hemodilution

# a mid-normal adult marrow (DOMAIN.md §2.5): fractions of nucleated cells; blood contains none of these
MARROW = {"mast_cell": 2e-4, "bcp": 3e-3, "nrbc": 0.135, "myeloid_precursor": 0.015}
N_EVALUABLE = 5_000_000


def diluted_counts(blood_fraction: float, seed: int) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    return {role: int(rng.binomial(N_EVALUABLE, f * (1.0 - blood_fraction))) for role, f in MARROW.items()}


@pytest.mark.parametrize("seed", range(5))
def test_undiluted_and_lightly_diluted_marrow_is_adequate(seed):
    for blood in (0.0, 0.2):
        result = assess_hemodilution(diluted_counts(blood, seed), N_EVALUABLE)
        assert result.status == "adequate", (blood, result.reasons)
        assert result.below == ()


@pytest.mark.parametrize("seed", range(5))
def test_half_or_more_blood_is_suspected(seed):
    for blood in (0.5, 0.8, 0.95):
        result = assess_hemodilution(diluted_counts(blood, seed), N_EVALUABLE)
        assert result.status == "suspected", (blood, result.fractions)
        assert len(result.below) >= 2 and all("< limit" in r for r in result.reasons)


def test_one_low_population_alone_is_not_enough():
    counts = diluted_counts(0.0, 1)
    counts["mast_cell"] = 0
    result = assess_hemodilution(counts, N_EVALUABLE)
    assert result.status == "adequate" and result.below == ("mast_cell",)
    strict = assess_hemodilution(counts, N_EVALUABLE, HemodilutionReference(min_populations_below=1))
    assert strict.status == "suspected"


def test_not_measured_populations_are_not_assessed():
    assert assess_hemodilution({role: None for role in BM_RESTRICTED_ROLES}, N_EVALUABLE).status == "not_assessed"
    # tube without CD117: BCP and NRBC still measured, two are enough to judge
    counts = diluted_counts(0.6, 2)
    result = assess_hemodilution({"bcp": counts["bcp"], "nrbc": counts["nrbc"]}, N_EVALUABLE)
    assert result.status == "suspected" and set(result.fractions) == {"bcp", "nrbc"}
    # one population measured cannot reach the two needed
    assert assess_hemodilution({"nrbc": counts["nrbc"]}, N_EVALUABLE).status == "not_assessed"
    assert assess_hemodilution({role: 0 for role in BM_RESTRICTED_ROLES}, 0).status == "not_assessed"


def test_igra_to_neutrophil_ratio_is_an_independent_sign():
    counts = diluted_counts(0.0, 3)
    pure = assess_hemodilution(counts, N_EVALUABLE, n_immature_granulocytes=2_000_000, n_neutrophils=1_000_000)
    assert pure.status == "adequate" and pure.igra_n == pytest.approx(2.0)
    diluted = assess_hemodilution(counts, N_EVALUABLE, n_immature_granulocytes=300_000, n_neutrophils=1_000_000)
    assert diluted.status == "suspected" and any("IGRA/N" in r for r in diluted.reasons)
    off = HemodilutionReference(igra_n_min=None)
    assert assess_hemodilution(counts, N_EVALUABLE, off, n_immature_granulocytes=3, n_neutrophils=10).status == "adequate"
    # only IGRA/N available is enough to judge
    only_igra = assess_hemodilution({}, N_EVALUABLE, n_immature_granulocytes=300_000, n_neutrophils=1_000_000)
    assert only_igra.status == "suspected"


def test_bad_inputs_are_clear_errors():
    with pytest.raises(AnalysisError, match="'eosinophil' has no reference limit"):
        assess_hemodilution({"eosinophil": 5}, 100)
    with pytest.raises(AnalysisError, match="exceeds the evaluable events"):
        assess_hemodilution({"bcp": 101}, 100)
    with pytest.raises(AnalysisError, match="needs both"):
        assess_hemodilution({}, 100, n_neutrophils=5)
    with pytest.raises(AnalysisError, match=r"limits\['bcp'\]"):
        HemodilutionReference(limits={"bcp": 5.0})


def test_expanded_precursors_are_not_hemodilution():
    # a regenerating marrow: B-cell precursors and mast cells expanded, so NRBC and myeloid precursors are
    # relatively low — two populations under their limits, but the BM-restricted cells as a whole are not depleted
    counts = {"mast_cell": 2_000, "bcp": 150_000, "nrbc": 370_000, "myeloid_precursor": 40_000}
    result = assess_hemodilution(counts, N_EVALUABLE)
    assert set(result.below) == {"nrbc", "myeloid_precursor"}
    assert result.relative_to_typical > 1 and result.status == "adequate"
    assert any("not counted" in r for r in result.reasons)
    # the same marrow with 75 % blood admixture (every BM-restricted count quartered)
    diluted = assess_hemodilution({k: v // 4 for k, v in counts.items()}, N_EVALUABLE)
    assert diluted.status == "suspected"
    # without the overall-depletion check the population rule alone decides
    plain = assess_hemodilution(counts, N_EVALUABLE, HemodilutionReference(typical=None))
    assert plain.status == "suspected"
