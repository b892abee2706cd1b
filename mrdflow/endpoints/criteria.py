"""Every clinical threshold the endpoint engines use, in one place, each with its source.

Verification tags follow ``DOMAIN.md``: **[V]** read in a source, **[P]** partly verified, **[U]** unverified
(those are exposed as STUDY.yaml parameters with the defaults below, never silent constants).

Units: serum M-protein g/dL, urine M-protein mg/24 h, free light chains mg/L in the tables (converted to mg/dL
= mg/L / 10 where a criterion is written in mg/dL), plasma cells % of nucleated cells, plasmacytoma SPD mm²,
blood counts 10⁹/L, haemoglobin g/dL, times in days.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: days per month for every time-to-event result in months (365.25 / 12) — stated convention.
DAYS_PER_MONTH = 30.4375

# --- IMWG 2016 (Kumar et al., Lancet Oncol 2016;17:e328) -- DOMAIN.md §5 ---------------------------------
#: measurable disease at baseline [V CIBMTR]: serum M ≥ 1 g/dL, urine M ≥ 200 mg/24 h,
#: involved FLC ≥ 10 mg/dL (= 100 mg/L) with an abnormal κ/λ ratio.
MEASURABLE_SERUM_G_DL = 1.0
MEASURABLE_URINE_MG_24H = 200.0
MEASURABLE_IFLC_MG_L = 100.0
#: normal serum FLC κ/λ ratio (sCR; abnormal-ratio test for FLC measurability) [V].
FLC_RATIO_NORMAL_LOW = 0.26
FLC_RATIO_NORMAL_HIGH = 1.65
#: CR: < 5 % plasma cells in the marrow aspirate [V].
CR_BM_PC_LT_PCT = 5.0
#: VGPR: ≥ 90 % serum reduction and urine < 100 mg/24 h [V].
VGPR_SERUM_REDUCTION = 0.90
VGPR_URINE_LT_MG_24H = 100.0
#: PR: ≥ 50 % serum reduction; urine ≥ 90 % reduction or < 200 mg/24 h; dFLC ≥ 50 % (serum+urine unmeasurable);
#: marrow PC ≥ 50 % reduction when all else unmeasurable and baseline marrow PC ≥ 30 %; plasmacytoma SPD ≥ 50 % [V].
PR_SERUM_REDUCTION = 0.50
PR_URINE_REDUCTION = 0.90
PR_URINE_LT_MG_24H = 200.0
PR_DFLC_REDUCTION = 0.50
PR_BM_REDUCTION = 0.50
PR_BM_BASELINE_MIN_PCT = 30.0
PR_SPD_REDUCTION = 0.50
#: MR: serum reduction 25–49 % and urine reduction 50–89 % [V].
MR_SERUM_REDUCTION = 0.25
MR_URINE_REDUCTION = 0.50
#: PD: ≥ 25 % increase from the nadir in a followed parameter, with the absolute minimums below [V].
PD_RELATIVE_INCREASE = 0.25
PD_SERUM_ABS_G_DL = 0.5  # ≥ 0.5 g/dL (Durie 2006 / IMWG text use ≥) [V]
PD_SERUM_HIGH_NADIR_G_DL = 5.0  # if the nadir was ≥ 5 g/dL ...
PD_SERUM_HIGH_NADIR_ABS_G_DL = 1.0  # ... an increase ≥ 1 g/dL is sufficient [V]
PD_URINE_ABS_MG_24H = 200.0  # ≥ 200 mg/24 h [V]
PD_DFLC_ABS_GT_MG_L = 100.0  # dFLC > 10 mg/dL [V]
PD_BM_ABS_PCT = 10.0  # marrow PC absolute increase ≥ 10 % [V]
PD_SPD_INCREASE = 0.50  # ≥ 50 % increase from nadir in plasmacytoma SPD [P]
#: relapse from CR (DFS only): reappearance of M-protein by IFE/electrophoresis or ≥ 5 % marrow PCs [V].
RELAPSE_CR_BM_PCT = 5.0

# --- IMWG 2013 PCL (Fernández de Larrea, Leukemia 2013;27:780) -- DOMAIN.md §6.2 [V] ------------------------
PCL2013_PR_BM_MAX_PCT = 25.0  # PR: marrow PCs 5–25 %
PCL2013_PR_PB_MAX_PCT = 5.0  # PR: blood PCs 1–5 %
PCL2013_PD_BM_RELATIVE = 0.25  # PD: marrow > 25 % increase ...
PCL2013_PD_BM_ABS_PCT = 10.0  # ... or absolute increase ≥ 10 %
PCL2013_PD_PB_ABS_GT_PCT = 5.0  # PD: blood PCs > 5 % absolute increase
PCL2013_RELAPSE_CR_BM_GT_PCT = 10.0  # relapse from CR: marrow > 10 %; blood PCs detectable at any level

# --- van de Donk et al., Blood 2012 (pPCL, Table 5) -- DOMAIN.md §6.3 [V partial] ----------------------------
VDD2012_CR_BM_MAX_PCT = 5.0  # CR: ≤ 5 % marrow PCs (inclusive, unlike IMWG's < 5 %)
VDD2012_PR_PB_REDUCTION = 0.90  # PR: ≥ 90 % reduction of blood PCs ...
VDD2012_PR_PB_MAX_PCT = 5.0  # ... and blood PCs ≤ 5 % of the WBC differential

# --- MRD (IMWG 2016 §5.1; Costa et al., Leukemia 2021) ------------------------------------------------------
#: default required sensitivity: 1 in 10⁵ nucleated cells [V]; a STUDY.yaml parameter.
MRD_REQUIRED_SENSITIVITY = 1e-5
#: sustained MRD negativity: negative assessments at least one year apart [V]; 365 days.
SUSTAINED_MRD_MIN_DAYS = 365

# --- ASTCT consensus grading (Lee et al., BBMT 2019;25:625) -- DOMAIN.md §7.1–7.2 [V] -----------------------
CRS_FEVER_C = 38.0
CRS_HYPOTENSION_GRADE = {"none": 0, "no_vasopressor": 2, "one_vasopressor": 3, "multiple_vasopressors": 4}
CRS_HYPOXIA_GRADE = {"none": 0, "low_flow": 2, "high_flow": 3, "positive_pressure": 4}
#: ICE score (0–10) → ICANS grade: 10 → 0, 7–9 → 1, 3–6 → 2, 0–2 → 3 (grade 4 comes from consciousness).
ICE_GRADE_BANDS = ((10, 0), (7, 1), (3, 2), (0, 3))
ICANS_CONSCIOUSNESS_GRADE = {
    "normal": 0,
    "awakens_spontaneously": 1,
    "awakens_to_voice": 2,
    "awakens_to_tactile": 3,
    "unarousable": 4,
}
ICANS_SEIZURE_GRADE = {"none": 0, "resolving": 3, "eeg_nonconvulsive": 3, "prolonged": 4, "repetitive": 4}
ICANS_MOTOR_GRADE = {"none": 0, "deep_focal_weakness": 4}
ICANS_EDEMA_GRADE = {"none": 0, "focal": 3, "diffuse": 4}


# --- CTCAE haematology -- DOMAIN.md §7.3 --------------------------------------------------------------------
@dataclass(frozen=True)
class CtcaeTerm:
    """Lower bounds of grades 2, 3, 4 for one "decreased" lab term (grade g when bound[g] > value ≥ bound[g+1]).

    ``lower_bounds`` holds the value below which each grade starts: ``(g2, g3, g4)``; ``None`` when the grade is
    not lab-defined. Grade 1 is ``LLN > value ≥ g2`` (LLN from STUDY.yaml) unless ``g1_upper`` is set, which
    replaces the LLN (CTCAE v6.0 ANC: grade 1 starts below 1.5).
    """

    term: str
    column: str
    unit: str
    lower_bounds: tuple[float | None, float | None, float | None]
    g1_upper: float | None = None
    any_below_lln_is_g1_only: bool = False


#: CTCAE v5.0 (NCI, Nov 2017) [V]: "<a–b" means a > value ≥ b.
CTCAE_V5 = (
    CtcaeTerm("White blood cell decreased", "wbc_10e9_l", "10^9/L", (3.0, 2.0, 1.0)),
    CtcaeTerm("Neutrophil count decreased", "anc_10e9_l", "10^9/L", (1.5, 1.0, 0.5)),
    CtcaeTerm("Anemia", "hb_g_dl", "g/dL", (10.0, 8.0, None)),
    CtcaeTerm("Platelet count decreased", "plt_10e9_l", "10^9/L", (75.0, 50.0, 25.0)),
    CtcaeTerm("Lymphocyte count decreased", "alc_10e9_l", "10^9/L", (0.8, 0.5, 0.2)),
)
#: CTCAE v6.0 (NCI, 2025) [P — SACTCheck register citing the NCI v6 PDF]: ANC G1 <1.5–1.0, G2 <1.0–0.5,
#: G3 <0.5–0.1, G4 <0.1; platelets G3 <50–10, G4 <10; lymphocytes "G1 present" only; WBC and anaemia as v5.
CTCAE_V6 = (
    CtcaeTerm("White blood cell decreased", "wbc_10e9_l", "10^9/L", (3.0, 2.0, 1.0)),
    CtcaeTerm("Neutrophil count decreased", "anc_10e9_l", "10^9/L", (1.0, 0.5, 0.1), g1_upper=1.5),
    CtcaeTerm("Anemia", "hb_g_dl", "g/dL", (10.0, 8.0, None)),
    CtcaeTerm("Platelet count decreased", "plt_10e9_l", "10^9/L", (75.0, 50.0, 10.0)),
    CtcaeTerm("Lymphocyte count decreased", "alc_10e9_l", "10^9/L", (None, None, None), any_below_lln_is_g1_only=True),
)
CTCAE = {"5.0": CTCAE_V5, "6.0": CTCAE_V6}


# --- IMWG frailty (Palumbo et al., Blood 2015;125:2068) -- DOMAIN.md §9 [U cut-offs: STUDY.yaml parameters] ---
@dataclass(frozen=True)
class FrailtyCutoffs:
    """IMWG-CGA additive score points; defaults from DOMAIN.md §9 [U], overridable in STUDY.yaml ``frailty:``.

    Age (completed years): ≤ ``age_1pt_above`` → 0, up to ``age_2pt_above`` → 1, above → 2; CCI ≥ ``cci_min`` → 1;
    ADL (Katz 0–6, higher = better) ≤ ``adl_max`` → 1; IADL (Lawton 0–8, higher = better) ≤ ``iadl_max`` → 1.
    Total 0 fit, 1 intermediate, ≥ 2 frail.
    """

    age_1pt_above: int = 75
    age_2pt_above: int = 80
    cci_min: float = 2
    adl_max: float = 4
    iadl_max: float = 5
    adl_scale_max: float = 6
    iadl_scale_max: float = 8


# --- CAR-T kinetics -- DOMAIN.md §8 ------------------------------------------------------------------------
#: BLQ rules: "positional" (PKNCA default, FDA-recommended [V]): before first quantifiable 0, between dropped,
#: after last 0; "zero" (all BLQ → 0); "drop" (all BLQ dropped); "half_lloq" (all BLQ → LLOQ/2).
BLQ_RULES = ("positional", "zero", "drop", "half_lloq")
AUC_END_DAY = 28.0


@dataclass(frozen=True)
class CriteriaSet:
    """One response criteria set: which categories exist and which extra (PCL) blood/marrow rules apply."""

    name: str
    source: str
    has_mr: bool = True
    cr_bm_inclusive_max: float | None = None  # None: IMWG "< 5 %"; number: "≤ number %"
    pr_urine_needs_both: bool = False  # PCL 2013 PR: urine ≥ 90 % AND < 200 mg/24 h
    vgpr_by_dflc: bool = False  # PCL 2013: unmeasurable serum/urine → ≥ 90 % dFLC decrease is VGPR
    blood_rules: str | None = None  # "pcl2013" | "vandedonk2012"
    notes: tuple[str, ...] = field(default_factory=tuple)


CRITERIA_SETS = {
    "imwg2016": CriteriaSet("imwg2016", "Kumar et al., Lancet Oncol 2016;17:e328 (IMWG 2016)"),
    "pcl2013": CriteriaSet(
        "pcl2013",
        "Fernández de Larrea et al., Leukemia 2013;27:780 (IMWG PCL consensus)",
        has_mr=False,
        pr_urine_needs_both=True,
        vgpr_by_dflc=True,
        blood_rules="pcl2013",
    ),
    "pcl_vandedonk2012": CriteriaSet(
        "pcl_vandedonk2012",
        "van de Donk et al., Blood 2012;120:2376 (How I treat PCL, Table 5)",
        cr_bm_inclusive_max=VDD2012_CR_BM_MAX_PCT,
        blood_rules="vandedonk2012",
        notes=("SD/PD rows not available in the source: IMWG 2016 SD/PD rules apply [U]",),
    ),
}
