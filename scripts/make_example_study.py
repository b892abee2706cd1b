"""Write examples/study/: a synthetic 9-patient primary-PCL CAR-T trial (8 infused) with every table.

Each patient follows a written scenario (below) so the expected endpoints are known by construction; labs, CRS,
PK values get small seeded jitter. Re-running rewrites the same files (seed fixed).

    python scripts/make_example_study.py [OUT_DIR]
"""

from __future__ import annotations

import csv
import datetime as dt
import sys
from pathlib import Path

import numpy as np

RNG = np.random.default_rng(20251231)
CUTOFF = dt.date(2025, 12, 31)
D = dt.timedelta

# (id, sex, birth, infusion or None, enrollment offset from infusion, death day, cause, new-therapy day, scenario)
PATIENTS = [
    ("P01", "f", dt.date(1958, 4, 2), dt.date(2024, 1, 15), None, None, None, "sCR, sustained MRD-negative"),
    ("P02", "m", dt.date(1951, 9, 20), dt.date(2024, 2, 19), None, None, None, "CR (clonal IHC), MRD-negative once"),
    ("P03", "m", dt.date(1960, 1, 11), dt.date(2024, 3, 25), None, None, 300, "light-chain; VGPR by dFLC, PD by dFLC"),
    ("P04", "f", dt.date(1947, 6, 5), dt.date(2024, 4, 29), 300, "disease", 220, "PR, confirmed serum PD, died"),
    ("P05", "m", dt.date(1955, 12, 30), dt.date(2024, 6, 3), None, None, None, "unconfirmed PD, later CR"),
    ("P06", "f", dt.date(1963, 3, 14), dt.date(2024, 7, 8), None, None, None, "urine-measurable; VGPR"),
    ("P07", "m", dt.date(1949, 8, 8), dt.date(2024, 8, 12), None, None, 500, "sCR, relapse from CR, then PD"),
    ("P08", "f", dt.date(1944, 2, 27), dt.date(2024, 9, 16), 50, "other", None, "early death (sepsis)"),
    ("P09", "m", dt.date(1957, 5, 17), None, None, None, None, "not infused: progression during bridging"),
]

# assessment rows: (day since infusion, serum g/dL, urine mg/24h, sIFE, uIFE, kappa mg/L, lambda mg/L,
#                   BM PC % or None, BM clonal IHC or None, PB PC %)
A = {
    "P01": [(-33, 3.0, 120, "pos", "pos", 620, 9, 62, "yes", 28), (28, 0.4, 20, "pos", "pos", 40, 10, 6, "yes", 1),
            (56, 0.1, 0, "pos", "neg", 22, 11, None, None, 0), (90, 0, 0, "neg", "neg", 14, 12, 1, "no", 0),
            (180, 0, 0, "neg", "neg", 13, 12, None, None, 0), (270, 0, 0, "neg", "neg", 12, 13, None, None, 0),
            (365, 0, 0, "neg", "neg", 12, 12, 0.5, "no", 0), (455, 0, 0, "neg", "neg", 13, 12, None, None, 0),
            (545, 0, 0, "neg", "neg", 12, 12, None, None, 0), (635, 0, 0, "neg", "neg", 12, 13, None, None, 0)],
    "P02": [(-33, 2.0, 350, "pos", "pos", 8, 410, 48, "yes", 22), (28, 0.5, 60, "pos", "pos", 9, 60, 8, "yes", 2),
            (56, 0.1, 0, "pos", "pos", 10, 25, None, None, 0), (90, 0, 0, "neg", "neg", 11, 16, 2, "yes", 0),
            (180, 0, 0, "neg", "neg", 11, 15, None, None, 0), (270, 0, 0, "neg", "neg", 12, 15, None, None, 0),
            (365, 0, 0, "neg", "neg", 12, 14, 1, "yes", 0), (455, 0, 0, "neg", "neg", 12, 14, None, None, 0),
            (545, 0, 0, "neg", "neg", 11, 14, None, None, 0)],
    "P03": [(-33, 0, 150, "neg", "pos", 1500, 8, 55, "yes", 35), (28, 0, 20, "neg", "pos", 160, 9, 12, "yes", 3),
            (56, 0, 0, "neg", "pos", 90, 10, None, None, 0), (90, 0, 0, "neg", "pos", 60, 10, 3, "yes", 0),
            (180, 0, 0, "neg", "pos", 95, 10, None, None, 0), (270, 0, 40, "neg", "pos", 240, 9, None, None, 1),
            (290, 0, 60, "neg", "pos", 330, 9, 9, "yes", 2)],
    "P04": [(-33, 4.5, 0, "pos", "neg", 480, 11, 70, "yes", 40), (28, 2.0, 0, "pos", "neg", 120, 11, 18, "yes", 4),
            (56, 1.5, 0, "pos", "neg", 80, 12, None, None, 3), (90, 1.6, 0, "pos", "neg", 85, 12, None, None, 3),
            (180, 2.3, 0, "pos", "neg", 160, 11, None, None, 5), (210, 2.9, 0, "pos", "neg", 240, 10, 30, "yes", 9)],
    "P05": [(-33, 2.5, 0, "pos", "neg", 10, 380, 45, "yes", 24), (28, 0.6, 0, "pos", "neg", 11, 60, 10, "yes", 1),
            (56, 0.3, 0, "pos", "neg", 12, 30, None, None, 0), (90, 0.9, 0, "pos", "neg", 12, 45, None, None, 0),
            (120, 0.35, 0, "pos", "neg", 12, 28, None, None, 0), (180, 0.1, 0, "pos", "neg", 12, 20, None, None, 0),
            (270, 0, 0, "neg", "neg", 12, 16, 3, "yes", 0), (365, 0, 0, "neg", "neg", 12, 15, 2, "yes", 0),
            (455, 0, 0, "neg", "neg", 12, 15, None, None, 0), (545, 0, 0, "neg", "neg", 12, 15, None, None, 0)],
    "P06": [(-33, 0.4, 900, "pos", "pos", 9, 720, 38, "yes", 21), (28, 0.2, 150, "pos", "pos", 9, 90, 7, "yes", 1),
            (56, 0.1, 60, "pos", "pos", 10, 40, None, None, 0), (90, 0.1, 40, "pos", "pos", 10, 30, 4, "yes", 0),
            (180, 0.1, 30, "pos", "pos", 10, 28, None, None, 0), (270, 0.1, 30, "pos", "pos", 10, 29, None, None, 0),
            (365, 0.1, 35, "pos", "pos", 10, 30, 4, "yes", 0), (455, 0.1, 30, "pos", "pos", 10, 30, None, None, 0)],
    "P07": [(-33, 3.5, 200, "pos", "pos", 700, 10, 66, "yes", 31), (28, 0.5, 10, "pos", "pos", 50, 11, 9, "yes", 2),
            (56, 0, 0, "neg", "neg", 15, 12, None, None, 0), (90, 0, 0, "neg", "neg", 13, 12, 1, "no", 0),
            (180, 0, 0, "neg", "neg", 13, 12, None, None, 0), (270, 0, 0, "neg", "neg", 14, 12, None, None, 0),
            (365, 0.1, 0, "pos", "neg", 30, 12, 1, "no", 0), (455, 0.8, 0, "pos", "neg", 150, 11, None, None, 1),
            (480, 1.2, 0, "pos", "neg", 260, 11, 22, "yes", 3)],
    "P08": [(-33, 2.8, 0, "pos", "neg", 540, 10, 58, "yes", 26), (28, 0.9, 0, "pos", "neg", 90, 11, None, None, 2)],
    "P09": [(-33, 3.0, 100, "pos", "pos", 9, 500, 50, "yes", 30)],
}

# MRD rows: (day, tissue, fraction, lod, status)
MRD = {
    "P01": [(28, "BM", 3.1e-3, 4e-6, "POSITIVE"), (90, "BM", 0, 4.5e-6, "NEGATIVE"), (90, "PB", 0, 5e-6, "NEGATIVE"),
            (365, "BM", 0, 3.8e-6, "NEGATIVE"), (545, "BM", 0, 4.1e-6, "NEGATIVE")],
    "P02": [(28, "BM", 8.0e-3, 5e-6, "POSITIVE"), (90, "BM", 0, 5e-6, "NEGATIVE"), (365, "BM", 0, 2e-5, "NEGATIVE")],
    "P03": [(28, "BM", 2.2e-2, 4e-6, "POSITIVE"), (90, "BM", 6.0e-4, 5e-6, "POSITIVE")],
    "P04": [(28, "BM", 9.5e-2, 6e-6, "POSITIVE")],
    "P05": [(28, "BM", 5.1e-3, 5e-6, "POSITIVE"), (270, "BM", 9e-6, 4e-6, "POSITIVE_BELOW_LLOQ"),
            (365, "BM", 0, 8e-6, "NEGATIVE")],
    "P06": [(28, "BM", 4.0e-3, 5e-6, "POSITIVE"), (90, "BM", 2.1e-4, 5e-6, "POSITIVE"),
            (365, "BM", None, 5e-5, "NOT_EVALUABLE")],
    "P07": [(28, "BM", 2.0e-3, 4e-6, "POSITIVE"), (90, "BM", 0, 4e-6, "NEGATIVE"), (365, "BM", 1.2e-5, 5e-6, "POSITIVE_BELOW_LLOQ"),
            (480, "BM", 1.1e-2, 5e-6, "POSITIVE")],
    "P08": [],
    "P09": [],
}

# CRS daily courses: list of (day, temp, hypotension, hypoxia, anticytokine)
CRS = {
    "P01": {2: (38.6, "none", "none", "no"), 3: (39.1, "no_vasopressor", "none", "no"), 4: (38.4, "none", "none", "no"),
            5: (38.1, "none", "none", "no")},
    "P02": {1: (38.3, "none", "none", "no"), 2: (38.5, "none", "none", "no"), 3: (38.0, "none", "none", "no")},
    "P03": {3: (39.4, "no_vasopressor", "low_flow", "yes"), 4: (37.2, "one_vasopressor", "low_flow", "no"),
            5: (37.0, "none", "low_flow", "no"), 6: (36.9, "none", "none", "no")},
    "P04": {5: (38.2, "none", "none", "no"), 6: (38.4, "none", "none", "no")},
    "P05": {},
    "P06": {2: (38.9, "none", "low_flow", "no"), 3: (38.7, "none", "low_flow", "no"), 4: (38.3, "none", "none", "no")},
    "P07": {1: (38.1, "none", "none", "no")},
    "P08": {2: (39.0, "no_vasopressor", "none", "yes"), 3: (37.5, "no_vasopressor", "none", "no")},
}

# ICANS courses: day -> (ice, consciousness, seizure, motor, edema)
ICANS = {
    "P03": {6: (6, "normal", "none", "none", "none"), 7: (5, "awakens_spontaneously", "none", "none", "none"),
            8: (8, "normal", "none", "none", "none")},
    "P04": {7: (5, "normal", "none", "none", "none"), 8: (2, "awakens_to_voice", "none", "none", "none"),
            9: (7, "normal", "none", "none", "none")},
}

# CAR-T PK: Cmax (copies/µg), Tmax day, decline half-life (days), last sampled day
PK = {"P01": (85000, 10, 25, 635), "P02": (52000, 14, 30, 545), "P03": (21000, 10, 15, 290),
      "P04": (12000, 7, 10, 210), "P05": (64000, 14, 22, 545), "P06": (38000, 10, 18, 455),
      "P07": (47000, 10, 20, 480), "P08": (30000, 10, 20, 21)}
PK_DAYS = (-3, 4, 7, 10, 14, 21, 28, 56, 90, 180, 270, 365, 545)
LLOQ = 50.0

AES = [  # (patient, term, onset day, end day, grade, serious)
    ("P01", "Neutropenia", 3, 21, 4, "no"), ("P01", "Cytokine release syndrome", 2, 5, 2, "no"),
    ("P01", "Hypogammaglobulinaemia", 60, None, 2, "no"),
    ("P02", "Neutropenia", 4, 18, 3, "no"), ("P02", "Cytokine release syndrome", 1, 3, 1, "no"),
    ("P03", "Neutropenia", 2, 30, 4, "no"), ("P03", "Thrombocytopenia", 5, 45, 3, "no"),
    ("P03", "Cytokine release syndrome", 3, 6, 3, "yes"), ("P03", "ICANS", 6, 8, 2, "yes"),
    ("P04", "Neutropenia", 3, 25, 4, "no"), ("P04", "ICANS", 7, 9, 3, "yes"),
    ("P04", "Cytokine release syndrome", 5, 6, 1, "no"), ("P04", "Pneumonia", 120, 140, 3, "yes"),
    ("P05", "Neutropenia", 5, 16, 3, "no"), ("P05", "Anaemia", 6, 30, 2, "no"),
    ("P06", "Neutropenia", 3, 20, 4, "no"), ("P06", "Cytokine release syndrome", 2, 4, None, "no"),  # not graded at source: derived
    ("P06", "Upper respiratory tract infection", 80, 90, 2, "no"),
    ("P07", "Neutropenia", 4, 15, 3, "no"), ("P07", "Cytokine release syndrome", 1, 1, 1, "no"),
    ("P08", "Neutropenia", 2, 40, 4, "no"), ("P08", "Cytokine release syndrome", 2, 3, 2, "no"),
    ("P08", "Sepsis", 44, 50, 5, "yes"),
    ("P09", "Anaemia", -20, -5, 2, "no"),  # before (never) infusion: not treatment-emergent
]


def _write(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for r in rows:
            w.writerow(["" if v is None else v for v in r])


def _day(inf: dt.date, d: int) -> str:
    return (inf + D(days=d)).isoformat()


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    prow, arow, mrow, lrow, crow, irow, krow, grow, erow = [], [], [], [], [], [], [], [], []
    for pid, sex, birth, inf, death_day, cause, nt_day, _ in PATIENTS:
        ref = inf or dt.date(2024, 10, 21)  # P09: planned infusion date (never given)
        enroll = ref - D(days=30)
        diag = enroll - D(days=21)
        death = ref + D(days=death_day) if death_day else None
        if pid == "P09":
            death, cause = ref + D(days=120), "disease"
        last = death or CUTOFF - D(days=int(RNG.integers(3, 20)))
        new_tx = ref + D(days=nt_day) if nt_day else (ref + D(days=5) if pid == "P09" else None)
        prow.append([pid, sex, birth.isoformat(), diag.isoformat(), enroll.isoformat(),
                     inf.isoformat() if inf else None, last.isoformat(), death.isoformat() if death else None,
                     cause, new_tx.isoformat() if new_tx else None, "pPCL"])
        for (day, s, u, sife, uife, k, lam, bm, ihc, pb) in A[pid]:
            date = ref + D(days=day)
            if date > last:
                continue
            arow.append([pid, date.isoformat(), s, u, sife, uife, k, lam, bm, ihc, pb, None, "no"])
        for (day, tissue, frac, lod, status) in MRD[pid]:
            mrow.append([pid, _day(ref, day), tissue, "NGF", frac, lod, status])
        grow.append([pid, enroll.isoformat(), *_cga(pid, 0)])
        if inf is None:
            continue
        for day in (180, 365):
            if inf + D(days=day) <= last:
                grow.append([pid, _day(inf, day), *_cga(pid, day)])
        # labs: lymphodepletion nadir around day 7, recovery by day 60
        severity = float(RNG.uniform(0.55, 1.0))
        for day in (-5, 0, 3, 7, 10, 14, 21, 28, 60, 90):
            if inf + D(days=day) > last:
                continue
            depth = np.exp(-((day - 8) / 7.0) ** 2) if day >= 0 else 0.0
            j = lambda: float(RNG.uniform(0.9, 1.1))  # noqa: E731
            lrow.append([pid, _day(inf, day), round(5.5 * (1 - 0.9 * depth) * j(), 2),
                         round(3.4 * (1 - 0.97 * depth) * j(), 2), round(11.8 - 3.6 * severity * depth * j(), 1),
                         round(190 * (1 - 0.8 * severity * depth) * j()), round(1.4 * (1 - 0.92 * depth) * j(), 2)])
        course = CRS[pid]
        for day in range(0, 11):
            if inf + D(days=day) > last:
                continue
            temp, hyp, oxy, ac = course.get(day, (round(float(RNG.uniform(36.4, 37.4)), 1), "none", "none", "no"))
            crow.append([pid, _day(inf, day), temp, hyp, oxy, ac])
        for day in range(0, 15):
            ice, cons, seiz, mot, ed = ICANS.get(pid, {}).get(day, (10, "normal", "none", "none", "none"))
            irow.append([pid, _day(inf, day), ice, cons, seiz, mot, ed])
        cmax, tmax, half, last_day = PK[pid]
        for day in PK_DAYS:
            if day > last_day or inf + D(days=day) > last:
                continue
            if day <= 0:
                val = None
            elif day <= tmax:
                val = cmax * (day / tmax) ** 2.2
            else:
                val = cmax * 0.5 ** ((day - tmax) / half)
            if val is not None:
                val = round(val * float(RNG.uniform(0.85, 1.15)))
            if pid == "P04" and day == 21:  # one BLQ between quantifiable samples (dropped by the positional rule)
                val = None
            blq = val is None or val < LLOQ
            krow.append([pid, day, None if blq else val, "yes" if blq else "no", LLOQ])
    for pid, term, on, end, grade, ser in AES:
        p = next(x for x in PATIENTS if x[0] == pid)
        ref = p[3] or dt.date(2024, 10, 21)
        erow.append([pid, term, _day(ref, on), _day(ref, end) if end is not None else None, grade, ser])

    _write(out / "patients.csv", ["patient_id", "sex", "birth_date", "diagnosis_date", "enrollment_date",
                                  "infusion_date", "last_contact_date", "death_date", "death_cause",
                                  "new_therapy_date", "diagnosis"], prow)
    _write(out / "assessments.csv", ["patient_id", "date", "serum_m_g_dl", "urine_m_mg_24h", "serum_ife", "urine_ife",
                                     "flc_kappa_mg_l", "flc_lambda_mg_l", "bm_pc_pct", "bm_clonal_ihc", "pb_pc_pct",
                                     "plasmacytoma_spd_mm2", "new_lesion"], arow)
    _write(out / "mrd.csv", ["patient_id", "date", "tissue", "method", "mrd_fraction", "lod", "mrd_status"], mrow)
    _write(out / "labs.csv", ["patient_id", "date", "wbc_10e9_l", "anc_10e9_l", "hb_g_dl", "plt_10e9_l",
                              "alc_10e9_l"], lrow)
    _write(out / "adverse_events.csv", ["patient_id", "term", "onset_date", "end_date", "grade", "serious"], erow)
    _write(out / "crs.csv", ["patient_id", "date", "temp_c", "hypotension", "hypoxia", "anticytokine"], crow)
    _write(out / "icans.csv", ["patient_id", "date", "ice_score", "consciousness", "seizure", "motor",
                               "cerebral_edema"], irow)
    _write(out / "cart_pk.csv", ["patient_id", "day", "copies_per_ug_gdna", "blq", "lloq"], krow)
    _write(out / "cga.csv", ["patient_id", "date", "adl", "iadl", "cci"], grow)
    (out / "study.yaml").write_text(STUDY_YAML, encoding="utf-8")


def _cga(pid: str, day: int) -> list:
    base = {"P01": (6, 8, 0), "P02": (5, 6, 1), "P03": (6, 7, 2), "P04": (4, 5, 2), "P05": (6, 8, 1),
            "P06": (6, 8, 0), "P07": (5, 5, 1), "P08": (3, 4, 3), "P09": (5, 6, 2)}[pid]
    adl, iadl, cci = base
    if day and pid in ("P02", "P07"):
        iadl = min(8, iadl + 1)  # recovery after treatment
    if day >= 365 and pid == "P06":
        iadl = 5  # functional decline after an infection
    return [adl, iadl, cci]


STUDY_YAML = """\
# Synthetic example: frontline BCMA CAR-T in transplant-ineligible primary plasma cell leukaemia.
# Generated by scripts/make_example_study.py (9 patients enrolled, 8 infused). Not real patients.
study_id: PCL-CART-EXAMPLE
title: Frontline BCMA CAR-T in transplant-ineligible primary PCL (synthetic example)
data_cutoff: 2025-12-31
response_criteria: pcl2013        # imwg2016 | pcl2013 | pcl_vandedonk2012
ctcae_version: "5.0"              # 5.0 | 6.0
time_origin: infusion             # diagnosis | enrollment | infusion
efficacy_population: infused      # infused | enrolled
tables:
  patients: patients.csv
  assessments: assessments.csv
  mrd: mrd.csv
  labs: labs.csv
  adverse_events: adverse_events.csv
  crs: crs.csv
  icans: icans.csv
  cart_pk: cart_pk.csv
  cga: cga.csv
lln:                              # lower limits of normal (CTCAE grade 1)
  wbc_10e9_l: 4.0
  anc_10e9_l: 1.8
  hb_g_dl: 12.0
  plt_10e9_l: 150
  alc_10e9_l: 1.0
mrd:
  required_sensitivity: 1.0e-5
  tissue: BM
survival:
  landmarks_months: [6, 12]
  dor_death_events: disease
kinetics:
  blq_rule: positional
  auc_end_day: 28
frailty:
  scale_direction: standard       # standard (higher = better) | inverted (CRF records higher = worse)
"""

if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "examples" / "study")
