"""Plasma-cell-leukaemia blood (and marrow) conditions added at each response level by the PCL criteria sets.

Two published sets differ (DOMAIN.md §6.2–6.3), so the set is a STUDY.yaml choice:

* ``pcl2013`` — IMWG consensus (Fernández de Larrea, Leukemia 2013): sCR/CR/VGPR need blood PCs negative by
  morphology (0 %), VGPR also < 5 % marrow PCs; PR needs marrow PCs ≤ 25 % and blood PCs ≤ 5 %; there is no MR.
  PD adds a > 5 % absolute rise of blood PCs from the nadir; relapse from CR: blood PCs detectable at any level
  or marrow PCs > 10 %.
* ``pcl_vandedonk2012`` — van de Donk et al., Blood 2012: sCR/CR/VGPR need no PCs on the blood smear; PR needs a
  ≥ 90 % reduction of blood PCs and blood PCs ≤ 5 %; CR allows ≤ 5 % marrow PCs.

"Some but not all criteria met → the next lower level" (CIBMTR PCL manual): the engine takes the highest level
whose serological *and* blood conditions both hold. A blood value that was not measured cannot satisfy a
condition on it.
"""

from __future__ import annotations

import math

from mrdflow.endpoints import criteria as C


def _known(x: float | None) -> bool:
    return x is not None and not math.isnan(x)


def blood_condition_met(rules: str | None, level: str, pb_pct: float | None, pb_baseline: float | None,
                        bm_pct: float | None) -> bool:
    """True when the blood/marrow conditions of ``level`` under ``rules`` hold.

    Parameters
    ----------
    rules : "pcl2013", "vandedonk2012" or None (IMWG: no blood conditions).
    level : response level "sCR", "CR", "VGPR", "PR", "MR".
    pb_pct : circulating plasma cells at this assessment, % of leukocytes (None/NaN = not measured).
    pb_baseline : circulating plasma cells at baseline, %.
    bm_pct : latest post-baseline marrow plasma cells, % (None/NaN = none yet).
    """
    if rules is None:
        return True
    if rules == "pcl2013":
        if level in ("sCR", "CR"):
            return _known(pb_pct) and pb_pct == 0
        if level == "VGPR":
            return _known(pb_pct) and pb_pct == 0 and _known(bm_pct) and bm_pct < C.CR_BM_PC_LT_PCT
        if level == "PR":
            bm_ok = not _known(bm_pct) or bm_pct <= C.PCL2013_PR_BM_MAX_PCT
            return _known(pb_pct) and pb_pct <= C.PCL2013_PR_PB_MAX_PCT and bm_ok
        return True
    if rules == "vandedonk2012":
        if level in ("sCR", "CR", "VGPR"):
            return _known(pb_pct) and pb_pct == 0
        if level == "PR":
            if not _known(pb_pct) or pb_pct > C.VDD2012_PR_PB_MAX_PCT:
                return False
            if _known(pb_baseline) and pb_baseline > 0:
                return pb_pct <= pb_baseline * (1 - C.VDD2012_PR_PB_REDUCTION) + 1e-9
            return True
        return True
    raise ValueError(f"unknown PCL rules {rules!r}")


def blood_progression(rules: str | None, pb_pct: float | None, pb_nadir: float | None) -> bool:
    """PCL 2013 PD by blood: absolute rise of circulating PCs > 5 % from the nadir."""
    if rules != "pcl2013" or not _known(pb_pct) or not _known(pb_nadir):
        return False
    return pb_pct - pb_nadir > C.PCL2013_PD_PB_ABS_GT_PCT


def blood_relapse_from_cr(rules: str | None, pb_pct: float | None) -> bool:
    """PCL 2013 relapse from CR by blood: circulating PCs detectable at any level."""
    return rules == "pcl2013" and _known(pb_pct) and pb_pct > 0
