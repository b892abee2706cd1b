"""Light-chain-restricted plasma-cell subsets (NGF tube 2: cytoplasmic κ and λ).

Normal plasma cells are polytypic (κ:λ ≈ 1–2:1, DOMAIN.md §2.3) in every phenotypic subset; a clone makes one
light chain only. So a subset of PCs sharing a deviation pattern (e.g. CD19−) whose κ:λ departs from that of
the normal-pattern PCs holds a clone, even when the phenotype alone cannot separate it from a normal subset —
typically in tube 2, which lacks CD81/CD117, or for clones with weak aberrancies.

Given a :class:`~mrdflow.gating.phenotype.PhenotypeResult` and each PC's light chain, every deviation pattern
with at least one aberrant marker group, among the PCs not already called aberrant, is tested: the share of
the majority chain against the polytypic reference (the PCs with no deviation), by a one-sided exact (Fisher) test.
When restricted, its PCs of the restricted chain form one cluster per pattern. That set still holds the normal
PCs of the pattern that happen to carry the same chain; their expected number (the pattern's other-chain PCs ×
the reference chain ratio) is reported as ``expected_normal_events``, which
:attr:`PhenotypeResult.n_aberrant_estimate` subtracts. The events are marked aberrant one by one only when the
clone is at least half of them (``mark_min_share``); a small clone in a large normal subset is counted, not
marked — which of those events are its own, the light chain cannot say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from mrdflow.errors import AnalysisError
from mrdflow.gating.phenotype import AberrantCluster, PhenotypeResult

NO_CHAIN, KAPPA, LAMBDA = 0, 1, 2


@dataclass(frozen=True)
class LightChainSettings:
    """Settings of :func:`light_chain_restricted`.

    Parameters
    ----------
    min_reference_cells
        Light-chain-typed normal-pattern PCs needed as the polytypic reference (100, the IMWG minimum for a
        κ/λ judgement, DOMAIN.md §2.3).
    min_excess_events
        Restricted-chain PCs in excess of the polytypic expectation a subset must hold (10).
    mark_min_share
        A restricted subset's events are marked aberrant one by one only when the excess is at least this share
        of its restricted-chain events (0.5: each event is then likelier clone than normal). Below it the
        subset is still a cluster — its excess counts in ``n_aberrant_estimate`` and its chain in the
        clonality — but its events, mostly normal PCs that happen to carry the clone's chain, stay unmarked.
    alpha
        One-sided Fisher exact tail probability a subset must beat (1e-4): Bonferroni for the ≤ 2 × 31 subsets a
        tube has (2 chains × deviation patterns of 5 judged markers) at a family-wise 1 % under the exact
        null. Unlike the phenotype test, this null needs no model of normal heterogeneity — normal
        PCs are polytypic in every subset — so it need not be set far below Bonferroni. [U] Normal subsets
        with a κ:λ ratio of their own would call for a lower value.
    """

    min_reference_cells: int = 100
    min_excess_events: int = 10
    mark_min_share: float = 0.5
    alpha: float = 1e-4

    def __post_init__(self) -> None:
        if not (isinstance(self.min_reference_cells, int) and self.min_reference_cells >= 10):
            raise AnalysisError(f"LightChainSettings.min_reference_cells: expected an integer >= 10, "
                                f"found {self.min_reference_cells!r}")
        if not (isinstance(self.min_excess_events, int) and self.min_excess_events >= 1):
            raise AnalysisError(f"LightChainSettings.min_excess_events: expected an integer >= 1, "
                                f"found {self.min_excess_events!r}")
        if not 0 <= self.mark_min_share <= 1:
            raise AnalysisError(f"LightChainSettings.mark_min_share: expected a share in [0, 1], "
                                f"found {self.mark_min_share!r}")
        if not 0 < self.alpha < 1:
            raise AnalysisError(f"LightChainSettings.alpha: expected a probability in (0, 1), found {self.alpha!r}")


def light_chain_restricted(
    result: PhenotypeResult,
    light_chain: np.ndarray,
    settings: LightChainSettings = LightChainSettings(),
) -> PhenotypeResult:
    """Add the light-chain-restricted PC subsets to a phenotype result.

    Parameters
    ----------
    result
        The phenotype call of the same PC events (from :func:`classify_plasma_cells`).
    light_chain
        Per PC event: 0 untyped, 1 κ, 2 λ (from the template's κ/λ gates), integer array.

    Returns
    -------
    PhenotypeResult
        ``result`` with the restricted subsets added as clusters (``light_chain`` set), their events in the
        aberrant mask; a warning instead when the polytypic reference is too small.
    """
    chain = np.asarray(light_chain)
    if chain.ndim != 1 or chain.shape[0] != result.aberrant.shape[0]:
        raise AnalysisError(f"light_chain: expected one code per PC event ({result.aberrant.shape[0]}), "
                            f"found shape {chain.shape}")
    if chain.dtype.kind not in "iub" or (chain.size and (chain.min() < 0 or chain.max() > 2)):
        raise AnalysisError("light_chain: expected integer codes 0 (untyped), 1 (kappa), 2 (lambda)")
    if result.patterns is None or not result.pattern_groups:
        return result
    code = result.patterns
    free = ~result.aberrant
    reference = free & (code == 0)
    k0 = int(np.count_nonzero(reference & (chain == KAPPA)))
    l0 = int(np.count_nonzero(reference & (chain == LAMBDA)))
    if k0 + l0 < settings.min_reference_cells or k0 == 0 or l0 == 0:
        return replace(result, warnings=result.warnings + (
            f"light chains: {k0} kappa and {l0} lambda normal-pattern PCs, a polytypic reference of "
            f"{settings.min_reference_cells} with both chains is needed; restriction not tested",))

    labels = result.labels.copy()
    clusters = list(result.clusters)
    next_label = max((c.label for c in clusters), default=-1) + 1
    names = result.pattern_markers
    for c in np.unique(code[free]):
        if c == 0:
            continue
        members = free & (code == c)
        nk = int(np.count_nonzero(members & (chain == KAPPA)))
        nl = int(np.count_nonzero(members & (chain == LAMBDA)))
        if nk + nl == 0:
            continue
        for restricted, n_r, n_other, ref_r, ref_other in (
            ("kappa", nk, nl, k0, l0),
            ("lambda", nl, nk, l0, k0),
        ):
            expected_normal = n_other * ref_r / ref_other
            if n_r - expected_normal < settings.min_excess_events:
                continue
            # the reference ratio is itself a count: compare the two 2×2 margins exactly (a binomial test
            # against the estimated ratio would be anti-conservative for subsets about as large as the reference)
            from scipy import stats  # here, not at import: ~0.8 s a process, needed only for a light-chain excess

            p = float(stats.fisher_exact([[n_r, n_other], [ref_r, ref_other]], alternative="greater").pvalue)
            if p >= settings.alpha:
                continue
            chosen = members & (chain == (KAPPA if restricted == "kappa" else LAMBDA))
            if n_r - expected_normal >= settings.mark_min_share * n_r:
                labels[chosen] = next_label  # each event likelier clone than normal: marked one by one
            aberr = {names[j]: result.pattern_directions[j] for j in range(len(names)) if c >> j & 1}
            clusters.append(AberrantCluster(
                label=next_label, n_events=int(np.count_nonzero(chosen)), n_core_events=n_r,
                aberrancies=aberr, centre={}, expected_normal_events=float(expected_normal),
                fold=n_r / expected_normal if expected_normal > 0 else math.inf, p_value=p,
                light_chain=restricted,
            ))
            next_label += 1
    return replace(result, aberrant=labels >= 0, labels=labels, clusters=tuple(clusters))


__all__ = ["LightChainSettings", "light_chain_restricted", "NO_CHAIN", "KAPPA", "LAMBDA"]
