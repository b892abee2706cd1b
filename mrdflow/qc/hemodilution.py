"""Hemodilution: is the aspirate marrow, or marrow diluted with peripheral blood?

Populations normally absent from blood — mast cells, B-cell precursors (BCP), nucleated red cells (NRBC) and
CD117+ myeloid precursors — fall in proportion to the blood admixture. NGF quantifies them in the same tubes
(DOMAIN.md §3.1), and a marrow in which **at least** ``min_populations_below`` (default 2) of them are below
their reference limits — while the four together are below their typical level (geometric mean) — is
``suspected`` of hemodilution: a negative MRD result from it may be a false negative.
Optionally, the immature-granulocyte / neutrophil ratio (IGRA/N, Cytometry B 2018: ≥ 1.2 highly pure BM,
0.5–1.2 moderately pure) below ``igra_n_min`` is a further, independent sign.

**The default reference limits are unverified [U].** The published reference values (Cancers, Univ. Navarra;
DOMAIN.md §3.1) were not retrieved and should preferably be *treatment-matched*. The defaults sit near the
lower bound of the normal adult marrow ranges gathered in DOMAIN.md §2.5 — 0.6× a mid-normal value —
so that a typical marrow diluted 1:1 with blood (every BM-restricted fraction halved) falls below them while an
undiluted one stays above; each is a panel parameter and must be confirmed by the laboratory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from mrdflow.errors import AnalysisError

#: the template roles of the BM-restricted populations, in report order
BM_RESTRICTED_ROLES = ("mast_cell", "bcp", "nrbc", "myeloid_precursor")


@dataclass(frozen=True)
class HemodilutionReference:
    """Lower reference limits, as fractions of evaluable nucleated cells; all defaults are [U].

    Parameters
    ----------
    limits
        Role → lower limit, each 0.6× a mid-normal adult marrow value (DOMAIN §2.5) so that a 1:1 blood
        admixture (0.5×) falls below and a 20 % admixture (0.8×) does not. Defaults: ``mast_cell`` 1.2e-4
        (mid-normal 0.02 %; normal BM ~0.01–0.05 % [U]; the often-quoted EuroFlow *severe* warning level
        0.002 % is also unverified), ``bcp`` 1.8e-3 (mid-normal 0.3 %; adults ~0.1–1 % [U]), ``nrbc`` 0.08
        (mid-normal 13.5 %; adult erythroblasts 12.5–15.1 % by flow [V]), ``myeloid_precursor`` 0.009
        (mid-normal 1.5 % CD117+ myeloid precursors, from CD34+ myeloblasts 0.5–1.4 % [V] plus CD117+
        promyelocytes; no published range retrieved [U]).
    min_populations_below
        How many measured populations must be below their limit to suspect hemodilution (2, DOMAIN §3.1 ENG).
    typical
        Role → mid-normal adult marrow fraction (the values the limits are 0.6× of). Blood admixture depletes
        *all* BM-restricted populations together, so the population rule only counts when their geometric
        mean relative to these values is below 1; a regenerating marrow whose precursors are expanded while
        NRBC happen to be low is not hemodilution. ``None`` disables this check.
    igra_n_min
        IGRA/N below this is also a sign of hemodilution (0.5, lower bound of "moderately pure" BM, Cytometry B
        2018 [V]); ``None`` disables the criterion.
    """

    limits: Mapping[str, float] = field(
        default_factory=lambda: {"mast_cell": 1.2e-4, "bcp": 1.8e-3, "nrbc": 0.08, "myeloid_precursor": 0.009}
    )
    min_populations_below: int = 2
    typical: Mapping[str, float] | None = field(
        default_factory=lambda: {"mast_cell": 2e-4, "bcp": 3e-3, "nrbc": 0.135, "myeloid_precursor": 0.015}
    )
    igra_n_min: float | None = 0.5

    def __post_init__(self) -> None:
        if not self.limits:
            raise AnalysisError("HemodilutionReference.limits: expected at least one population limit, found none")
        for role, limit in self.limits.items():
            if not isinstance(limit, (int, float)) or not (0.0 < float(limit) < 1.0):
                raise AnalysisError(
                    f"HemodilutionReference.limits[{role!r}]: expected a fraction of evaluable cells in (0, 1), "
                    f"found {limit!r}"
                )
        for role, value in (self.typical or {}).items():
            if not isinstance(value, (int, float)) or not (0.0 < float(value) < 1.0):
                raise AnalysisError(
                    f"HemodilutionReference.typical[{role!r}]: expected a fraction of evaluable cells in (0, 1), "
                    f"found {value!r}"
                )
        if not (isinstance(self.min_populations_below, int) and self.min_populations_below >= 1):
            raise AnalysisError(
                "HemodilutionReference.min_populations_below: expected an integer >= 1, "
                f"found {self.min_populations_below!r}"
            )
        if self.igra_n_min is not None and not float(self.igra_n_min) > 0:
            raise AnalysisError(
                f"HemodilutionReference.igra_n_min: expected a positive ratio or None, found {self.igra_n_min!r}"
            )


@dataclass(frozen=True)
class HemodilutionResult:
    """``status`` is ``adequate``, ``suspected`` or ``not_assessed``.

    ``fractions`` holds each measured population as a fraction of evaluable cells, ``below`` the roles under
    their limit, ``relative_to_typical`` the geometric mean of fraction / typical value, ``igra_n`` the
    IGRA/N ratio when given, and ``reasons`` a readable sentence per sign found.
    """

    status: str
    fractions: dict[str, float]
    limits: dict[str, float]
    below: tuple[str, ...]
    igra_n: float | None
    reasons: tuple[str, ...]
    relative_to_typical: float | None = None


def assess_hemodilution(
    counts: Mapping[str, int | None],
    n_evaluable: int,
    reference: HemodilutionReference = HemodilutionReference(),
    *,
    n_immature_granulocytes: int | None = None,
    n_neutrophils: int | None = None,
) -> HemodilutionResult:
    """Judge hemodilution from the BM-restricted population counts of one sample.

    Parameters
    ----------
    counts
        Role → event count (``mast_cell``, ``bcp``, ``nrbc``, ``myeloid_precursor``); ``None`` or a missing
        role means the population was not measured (e.g. no CD117 in the tube). Roles without a reference
        limit are an error.
    n_evaluable
        Evaluable nucleated cells of the same tube(s) the counts come from.
    reference
        Limits and the number of populations that must be low.
    n_immature_granulocytes, n_neutrophils
        Optional counts for the IGRA/N criterion.

    Returns
    -------
    HemodilutionResult
        ``suspected`` when ≥ ``min_populations_below`` measured populations are below their limits (and the
        populations are depleted overall, see ``typical``), or IGRA/N is below ``igra_n_min``; ``not_assessed`` when neither criterion can be judged (fewer populations
        measured than ``min_populations_below`` and no IGRA/N) or there are no evaluable events;
        ``adequate`` otherwise.
    """
    if isinstance(n_evaluable, bool) or not isinstance(n_evaluable, int) or n_evaluable < 0:
        raise AnalysisError(f"n_evaluable: expected a non-negative integer event count, found {n_evaluable!r}")
    fractions: dict[str, float] = {}
    for role, count in counts.items():
        if role not in reference.limits:
            raise AnalysisError(
                f"hemodilution: population role {role!r} has no reference limit; expected one of "
                f"{', '.join(sorted(reference.limits))}"
            )
        if count is None:
            continue
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise AnalysisError(f"hemodilution: count of {role!r}: expected a non-negative integer, found {count!r}")
        if count > n_evaluable:
            raise AnalysisError(
                f"hemodilution: count of {role!r} ({count}) exceeds the evaluable events ({n_evaluable})"
            )
        if n_evaluable:
            fractions[role] = count / n_evaluable
    limits = {role: float(reference.limits[role]) for role in fractions}
    below = tuple(role for role in fractions if fractions[role] < limits[role])

    igra_n = None
    if n_immature_granulocytes is not None or n_neutrophils is not None:
        if n_immature_granulocytes is None or n_neutrophils is None:
            raise AnalysisError("hemodilution: IGRA/N needs both n_immature_granulocytes and n_neutrophils")
        for name, value in (("n_immature_granulocytes", n_immature_granulocytes), ("n_neutrophils", n_neutrophils)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise AnalysisError(f"hemodilution: {name}: expected a non-negative integer, found {value!r}")
        if n_neutrophils > 0:
            igra_n = n_immature_granulocytes / n_neutrophils
        elif n_immature_granulocytes > 0:
            igra_n = math.inf

    reasons = [
        f"{role} {fractions[role]:.3g} of evaluable cells < limit {limits[role]:.3g}" for role in below
    ]
    typical = reference.typical or {}
    judged = [role for role in fractions if role in typical]
    relative = None
    if judged:  # geometric mean of fraction / typical, zero counts as half an event
        relative = math.exp(sum(math.log(max(fractions[r], 0.5 / n_evaluable) / typical[r]) for r in judged)
                            / len(judged))
    depleted = relative is None or reference.typical is None or relative < 1.0
    population_sign = len(below) >= reference.min_populations_below and depleted
    if len(below) >= reference.min_populations_below and not depleted:
        reasons.append(f"not counted: the BM-restricted populations are {relative:.2f}× typical overall")
    igra_low = igra_n is not None and reference.igra_n_min is not None and igra_n < reference.igra_n_min
    if igra_low:
        reasons.append(f"IGRA/N {igra_n:.3g} < {reference.igra_n_min:.3g}")
    populations_judgeable = len(fractions) >= reference.min_populations_below
    igra_judgeable = igra_n is not None and reference.igra_n_min is not None
    if population_sign or igra_low:
        status = "suspected"
    elif populations_judgeable or igra_judgeable:
        status = "adequate"
    else:
        status = "not_assessed"
    return HemodilutionResult(
        status=status,
        fractions=fractions,
        limits=limits,
        below=below,
        igra_n=igra_n,
        reasons=tuple(reasons),
        relative_to_typical=relative,
    )


__all__ = ["BM_RESTRICTED_ROLES", "HemodilutionReference", "HemodilutionResult", "assess_hemodilution"]
