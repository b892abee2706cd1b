"""Normal vs aberrant plasma cells of a whole sample (one or two NGF tubes).

The two NGF tubes share a backbone (CD138, CD27, CD38, CD56, CD45, CD19; DOMAIN.md §1.1). Near the limit of
detection a clone has only ~10 events per tube — too few to stand out in either tube alone — but ~20 over
both. So the PCs of a sample are judged three ways and the calls united per event:

1. each tube alone, on all its markers (:func:`classify_plasma_cells`: CD81 and CD117 only exist in tube 1);
2. all tubes pooled on the backbone markers they share (transformed values of one acquisition session are
   comparable across its tubes; the reference populations are pooled the same way);
3. in tubes with cytoplasmic light chains, the light-chain-restricted subsets (:func:`light_chain_restricted`)
   among the PCs not yet called.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np

from mrdflow.errors import AnalysisError
from mrdflow.gating.light_chain import LightChainSettings, light_chain_restricted
from mrdflow.gating.pc_markers import NORMAL_PC_PATTERN, MarkerReference, MarkerRule
from mrdflow.gating.phenotype import AberrantCluster, PhenotypeResult, PhenotypeSettings, classify_plasma_cells

#: markers both NGF tubes carry and that the PC phenotype judges
BACKBONE = ("CD19", "CD56", "CD27", "CD38", "CD45")


@dataclass(frozen=True)
class TubePlasmaCells:
    """The plasma cells of one tube and that tube's reference populations.

    ``events`` is (n_pc, n_markers) float32 in transformed units, ``markers`` names its columns,
    ``references`` maps marker → :class:`MarkerReference`, ``light_chain`` (optional) holds 0/1/2 codes
    (untyped/κ/λ) per PC.
    """

    name: str
    events: np.ndarray
    markers: Sequence[str]
    references: Mapping[str, MarkerReference]
    light_chain: np.ndarray | None = None


def _add_clusters(base: PhenotypeResult, extra: PhenotypeResult, rows: slice) -> PhenotypeResult:
    """Unite the calls of ``extra`` (on a slice of a pooled matrix) into ``base``."""
    labels = base.labels.copy()
    extra_labels = extra.labels[rows]
    offset = max((c.label for c in base.clusters), default=-1) + 1
    clusters = list(base.clusters)
    for cluster in extra.clusters:
        here = extra_labels == cluster.label
        take = here & (labels < 0)
        n = int(np.count_nonzero(take))
        if n == 0 or 2 * (np.count_nonzero(here) - n) >= np.count_nonzero(here):
            # the tube's own analysis, with all its markers, already holds most of this cluster: the rest
            # are PCs it judged normal with more information than the backbone has
            continue
        labels[take] = offset
        share = np.count_nonzero(here) / max(1, cluster.n_events)
        clusters.append(AberrantCluster(
            label=offset, n_events=n, n_core_events=cluster.n_core_events, aberrancies=dict(cluster.aberrancies),
            centre=dict(cluster.centre), expected_normal_events=cluster.expected_normal_events * share,
            fold=cluster.fold, p_value=cluster.p_value, light_chain=cluster.light_chain,
        ))
        offset += 1
    return replace(base, aberrant=labels >= 0, labels=labels, clusters=tuple(clusters))


def classify_sample(
    tubes: Sequence[TubePlasmaCells],
    rules: Mapping[str, MarkerRule] = NORMAL_PC_PATTERN,
    settings: PhenotypeSettings = PhenotypeSettings(),
    light_chain_settings: LightChainSettings = LightChainSettings(),
    backbone: Sequence[str] = BACKBONE,
) -> dict[str, PhenotypeResult]:
    """Aberrant-PC calls for every tube of one sample.

    Returns
    -------
    dict
        Tube name → :class:`PhenotypeResult` over that tube's PC events (input order), uniting the per-tube,
        pooled-backbone and light-chain calls. A pooled-backbone cluster is added to a tube unless that tube's
        own analysis already called most of its events there (the rest are then PCs the tube's extra markers
        showed to be normal); its expected normal contamination is shared among the tubes by event count.
    """
    if not tubes:
        raise AnalysisError("classify_sample: expected at least one tube, found none")
    names = [t.name for t in tubes]
    if len(set(names)) != len(names):
        raise AnalysisError(f"classify_sample: tube names must be unique, found {names}")
    results = {t.name: classify_plasma_cells(t.events, t.markers, t.references, rules, settings) for t in tubes}

    shared = [m for m in backbone if all(m in t.markers and m in t.references for t in tubes)]
    if len(tubes) > 1 and shared:
        pooled = np.concatenate(
            [t.events[:, [list(t.markers).index(m) for m in shared]] for t in tubes]
        ).astype(np.float32, copy=False)
        pooled_refs = {
            m: MarkerReference(
                np.concatenate([np.asarray(t.references[m].negative) for t in tubes]),
                np.concatenate([np.asarray(t.references[m].positive) for t in tubes]),
                tubes[0].references[m].negative_name, tubes[0].references[m].positive_name,
            )
            for m in shared
        }
        together = classify_plasma_cells(pooled, shared, pooled_refs, rules, settings)
        start = 0
        for t in tubes:
            rows = slice(start, start + t.events.shape[0])
            results[t.name] = _add_clusters(results[t.name], together, rows)
            start = rows.stop

    for t in tubes:
        if t.light_chain is not None:
            results[t.name] = light_chain_restricted(results[t.name], t.light_chain, light_chain_settings)
    return results


__all__ = ["BACKBONE", "TubePlasmaCells", "classify_sample"]
