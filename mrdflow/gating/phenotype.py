"""Normal versus aberrant plasma cells, judged against each sample's own reference populations.

Normal bone-marrow plasma cells (PCs) are CD19+ CD56− CD27+ CD81+ CD117− and CD38 very bright; myeloma PCs
deviate on one or more of these markers, usually two or three (Liu, J Clin Pathol 2012: median 3 aberrancies
in neoplastic vs 0 in normal PCs; DOMAIN.md §2.1–2.2). Two facts shape the method:

* **No fixed cut-offs in transformed units.** Each marker's negative/positive boundary is placed in every
  sample between an internal negative and an internal positive reference population of that sample (CD19:
  T vs B cells; CD56: T vs NK cells; CD117: lymphocytes vs mast cells; CD45: NRBC vs lymphocytes; CD27/CD81:
  non-expressers vs normal expressers; CD38: dim cells vs normal PC brightness). All distances are then in
  units of that reference separation, so a different instrument, gain or transform gives the same calls.
* **A clone is a population, not scattered events.** Normal PCs are heterogeneous (≈ 20 % CD19−, up to
  ≈ 15 % CD56+, more CD19−/CD45− after therapy), so single deviating events, and even a whole subset deviating
  on one marker, are normal. A combination of deviations is aberrant only when it holds *more events than
  the normal heterogeneity explains*.

Method
------
1. Boundaries: ``boundary = neg_centre + position × (pos_centre − neg_centre)`` from the reference medians
   (``position`` 0.5, 0.7 for CD38 so that "dimmer than very bright" is caught); ``separation =
   pos_centre − neg_centre``. A marker whose references have too few events, or do not separate by
   ``min_reference_separation`` pooled robust SDs, is not used (and a warning says why).
   A boundary that ≥ ``max_normal_beyond`` (0.9) of the PCs normal on every other marker lie beyond does not fit
   this sample's normal PCs (e.g. the compensation into that marker's channel is off, which shifts every CD38-
   bright PC but not the dim reference cells): that marker is judged against those PCs only (step 2's
   "dim"/"increased"), with a ``pc_reference_mismatch`` warning.
2. Each PC gets an *aberrancy pattern*: the set of markers on which it lies on the wrong side of the boundary
   (CD19, CD27, CD81, CD38, CD45 below; CD56, CD117 above; CD138 is not judged), or — "dim"/"increased"
   aberrancies, reported against a normal-PC reference as in Arroz 2016 — more than ``normal_pc_sd`` robust
   SDs beyond the PCs that show the normal pattern on every marker.
3. Normal heterogeneity model: deviations of different marker *groups* are treated as independent, with
   odds estimated from the PCs deviating in that group only (a clone with ≥ 2 aberrant groups does not enter
   these counts). The expected number of PCs with pattern ``S`` is ``n_none × Π_g n_{S∩g} / n_none``. CD19 and
   CD45 form one group ("maturation"): mature normal PCs lose both, so CD19−CD45− is a normal subset, not
   two aberrancies.
4. A pattern with ≥ ``min_aberrancies`` (2) aberrant groups is a clone *core* when it holds ≥ ``min_cluster_events``
   PCs, ≥ ``min_fold`` times its expected count, with a Poisson tail probability < ``alpha``, and its median
   lies beyond each of its thresholds (by ≥ ``cluster_margin`` separations for a boundary, ≥
   ``cluster_margin_sd`` normal-PC SDs for a dim/increased deviation).
5. Each core is grown to the clone: PCs within ``expand_quantile`` of the core's robust ellipse (in the
   standardised marker space, and within the matching one-marker bound on every marker) that share all but
   at most one of its deviations — the clone events that happen to straddle one boundary — and that are
   likelier (size-weighted diagonal Gaussian densities) to belong to the core than to the PCs of their own
   pattern, so a large normal subset next to a small clone keeps its events. A core whose median lies inside
   a larger clone's region (its straddling fringe, enriched too when the clone is large) joins that clone.

Returns a per-event aberrant mask, a cluster label per event and a description of each aberrant cluster.
The result is honest about its limit: a clone whose *only* deviations are normal variants (e.g. CD19−CD56+)
is indistinguishable from the normal CD19−CD56+ subset until it outnumbers that subset ``min_fold``-fold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from mrdflow.distributions import chi2_ppf, poisson_sf
from mrdflow.errors import AnalysisError
from mrdflow.gating.pc_markers import (
    NORMAL_PC_PATTERN,
    MarkerBoundary,
    MarkerReference,
    MarkerRule,
    marker_boundary,
)
from mrdflow.quantiles import column_medians


@dataclass(frozen=True)
class PhenotypeSettings:
    """Settings of :func:`classify_plasma_cells` (engineering defaults, see the module docstring).

    Parameters
    ----------
    min_reference_events
        Events each reference population needs (20).
    min_reference_separation
        Reference centres must be this many pooled robust SDs apart for the marker to be used (2.0).
    min_aberrancies
        Deviations a clone must show (2; Liu 2012: normal PCs show 0–2, myeloma median 3).
    min_cluster_events
        Smallest clone core (5 events: at the LOD, 20 events over two tubes, a tube may hold ~10 and a
        core only part of them; significance is left to ``alpha``).
    min_fold
        Observed/expected count a core must reach over the normal-heterogeneity model (2.0).
    alpha
        Poisson tail probability a core must beat (1e-6; up to 2⁷ patterns are tested per tube, and the
        normal-heterogeneity model is only approximate, so the bar is set well below 1e-2 / 2⁷).
    cluster_margin
        The core median must lie beyond each of its boundaries by this fraction of the separation (0.1).
    cluster_margin_sd
        For a "dim"/"increased" deviation, the core median must lie beyond its threshold by this many
        normal-PC SDs instead (0.25).
    min_spread
        Floor of the core's robust SD per marker when growing it, in separations (0.1).
    normal_pc_sd
        A PC also deviates on a marker when it lies more than this many robust SDs of the normal-pattern PCs
        beyond their median, toward the aberrant side (3.0): "dim"/"increased" aberrancies that do not cross
        the reference boundary (e.g. CD38 at a third of normal-PC brightness). ``None``: boundaries only.
    min_normal_pc_events
        Normal-pattern PCs needed for that (50); fewer → boundaries only, with a warning.
    min_normal_pc_spread
        Floor of the normal-pattern PCs' robust SD, in separations (0.02).
    max_normal_beyond
        A marker's reference boundary is not used when at least this share (0.9) of the ≥
        ``min_normal_pc_events`` PCs that are normal on every *other* judged marker lie beyond it: it does not
        describe this sample's normal PCs (a compensation error that shifts every PC on that marker, as a 10 %
        under-compensation of CD38 into CD56 does to CD38-bright PCs; or a reference population that does not
        represent the sample, as the few NRBC left in a 90 %-blood marrow for CD45), and were it used, few or no
        PCs would show the normal pattern to tell a clone from. The marker is then judged against those
        PCs only ("dim"/"increased", ``normal_pc_sd``), with a ``pc_reference_mismatch`` warning. Normal
        heterogeneity puts ≤ 0.32 of them beyond a boundary in the validation marrows (CD19). ``None``: never.
    grow_rounds
        Times the grown clone is re-centred and grown again (2).
    expand_quantile
        Quantile of the region the core is grown to (0.999): the χ² quantile (all used markers) bounds the
        squared standardised distance to the core median, and the one-marker quantile bounds each marker.
    """

    min_reference_events: int = 20
    min_reference_separation: float = 2.0
    min_aberrancies: int = 2
    min_cluster_events: int = 5
    min_fold: float = 2.0
    alpha: float = 1e-6
    cluster_margin: float = 0.1
    cluster_margin_sd: float = 0.25
    min_spread: float = 0.1
    expand_quantile: float = 0.999
    normal_pc_sd: float | None = 3.0
    grow_rounds: int = 2
    min_normal_pc_events: int = 50
    min_normal_pc_spread: float = 0.02
    max_normal_beyond: float | None = 0.9

    def __post_init__(self) -> None:
        checks = [
            ("min_reference_events", isinstance(self.min_reference_events, int) and self.min_reference_events >= 3),
            ("min_reference_separation", self.min_reference_separation > 0),
            ("min_aberrancies", isinstance(self.min_aberrancies, int) and self.min_aberrancies >= 1),
            ("min_cluster_events", isinstance(self.min_cluster_events, int) and self.min_cluster_events >= 1),
            ("min_fold", self.min_fold >= 1),
            ("alpha", 0 < self.alpha < 1),
            ("cluster_margin", self.cluster_margin >= 0),
            ("cluster_margin_sd", self.cluster_margin_sd >= 0),
            ("min_spread", self.min_spread > 0),
            ("expand_quantile", 0 < self.expand_quantile < 1),
            ("normal_pc_sd", self.normal_pc_sd is None or self.normal_pc_sd > 0),
            ("min_normal_pc_events", isinstance(self.min_normal_pc_events, int) and self.min_normal_pc_events >= 3),
            ("min_normal_pc_spread", self.min_normal_pc_spread > 0),
            ("grow_rounds", isinstance(self.grow_rounds, int) and self.grow_rounds >= 0),
            ("max_normal_beyond", self.max_normal_beyond is None or 0 < self.max_normal_beyond <= 1),
        ]
        for name, ok in checks:
            if not ok:
                raise AnalysisError(f"PhenotypeSettings.{name}: invalid value {getattr(self, name)!r}")


@dataclass(frozen=True)
class AberrantCluster:
    """One aberrant PC population.

    ``aberrancies`` maps marker → ``"negative"`` (lost a marker normal PCs carry, e.g. CD19), ``"positive"``
    (gained one they lack, e.g. CD56), ``"dim"`` (weaker than normal PCs without crossing the reference
    boundary, e.g. CD38 at a third of normal brightness) or ``"increased"``. ``centre`` is the core median per used marker in
    separations from the boundary (positive = above). ``expected_normal_events`` is what normal heterogeneity
    alone would put in the core's pattern.
    """

    label: int
    n_events: int
    n_core_events: int
    aberrancies: dict[str, str]
    centre: dict[str, float]
    expected_normal_events: float
    fold: float
    p_value: float
    light_chain: str | None = None


@dataclass(frozen=True)
class PhenotypeResult:
    """Per-event calls for one tube's plasma cells.

    ``aberrant`` is a boolean mask over the PC events, ``labels`` the cluster label per event (−1 normal),
    ``clusters`` the aberrant populations, ``boundaries`` the per-marker boundaries used. ``patterns`` is each
    event's deviation pattern (bit ``j`` set = deviates on ``pattern_markers[j]``) and ``pattern_groups`` the
    bit masks of the marker groups, for follow-up tests such as light-chain restriction;
    ``pattern_directions`` says which way each bit deviates (``negative`` or ``positive``).
    """

    aberrant: np.ndarray
    labels: np.ndarray
    clusters: tuple[AberrantCluster, ...]
    boundaries: dict[str, MarkerBoundary]
    warnings: tuple[str, ...] = field(default=())
    patterns: np.ndarray | None = None
    pattern_markers: tuple[str, ...] = ()
    pattern_directions: tuple[str, ...] = ()
    pattern_groups: tuple[int, ...] = ()

    @property
    def n_aberrant(self) -> int:
        """Events called aberrant (the per-event mask)."""
        return int(np.count_nonzero(self.aberrant))

    @property
    def n_aberrant_estimate(self) -> float:
        """Clone size: per cluster, its events minus the normal PCs expected in its pattern (at least 0).

        A clone whose pattern normal PCs can also show (e.g. CD19−CD56+, or a light-chain-restricted CD19−
        subset) is called with those normal PCs; ``expected_normal_events`` estimates them from the normal
        heterogeneity model (≈ 0 for patterns normal PCs do not show).
        """
        return float(sum(max(0.0, c.n_events - c.expected_normal_events) for c in self.clusters))


def _pattern_expectations(counts: np.ndarray, group_masks: Sequence[int]) -> np.ndarray:
    """Expected count of every pattern when marker groups deviate independently of each other.

    Within a group, the frequency of each joint sub-pattern is taken from the data (its count relative to
    the PCs without any deviation); across groups the odds multiply (a log-linear independence model).
    """
    n_none = counts[0] + 0.5
    codes = np.arange(counts.size)
    expected = np.full(counts.size, n_none, dtype=np.float64)
    for mask in group_masks:
        sub = codes & mask
        expected *= np.where(sub == 0, 1.0, (counts[sub] + 0.5) / n_none)
    return expected


#: rows of a pattern's population used for its centre and spread in :func:`_closer_to_core` (an even stride
#: beyond): MRD samples hold far fewer PCs per pattern, a leukaemic blood with 10⁶ PCs would spend minutes on medians
_MAX_GROUP_ROWS = 50_000


def _closer_to_core(
    z: np.ndarray, code: np.ndarray, candidates: np.ndarray, n_core: int, centre: np.ndarray, spread: np.ndarray,
    min_spread: float, iterations: int = 5, cache: dict | None = None,
) -> np.ndarray:
    """Which candidates are likelier clone members than members of the population sharing their own pattern.

    A candidate near a clone but with a different pattern (e.g. a clone event that straddles one boundary, or
    a normal CD19− PC near a CD19−CD81− clone) is compared, as a size-weighted diagonal Gaussian density,
    with the clone core and with the rest of the PCs of its own pattern. The rest is re-estimated without the
    events given to the clone, a few times (a two-component EM with the clone component held fixed), so a
    pattern made mostly of clone straddlers does not pull them back. The clone's weight stays that of the
    clone so far (``n_core``): letting it grow with the events it takes made the EM feed on itself (in the
    dilution series: +9 % at 10⁻³ and +6 % at 10⁻⁴ instead of +6 % and +1 %, and 2.3× instead of 2.0× at
    5×10⁻⁶).
    """
    keep = np.zeros(candidates.size, dtype=bool)
    cand_z = z[candidates]
    core_ll = -0.5 * (((cand_z - centre) / spread) ** 2).sum(axis=1) - np.log(spread).sum()
    for c in np.unique(code[candidates]):
        here = np.flatnonzero(code[candidates] == c)
        group_idx = np.flatnonzero(code == c)
        cand_mask = np.zeros(code.size, dtype=bool)
        cand_mask[candidates[here]] = True
        in_cand = cand_mask[group_idx]
        taken = np.zeros(here.size, dtype=bool)
        for _ in range(iterations):
            whole = not taken.any()  # the whole population: the same in every call, computed once
            if whole and cache is not None and c in cache:
                n_rest, g_centre, g_spread = cache[c]
            else:
                rest_mask = np.ones(group_idx.size, dtype=bool)
                rest_mask[np.flatnonzero(in_cand)[taken]] = False
                rest = z[group_idx[rest_mask]]
                n_rest = rest.shape[0]
                if n_rest > _MAX_GROUP_ROWS:  # a huge pattern (a leukaemic blood): its centre from an even stride
                    rest = rest[:: -(-n_rest // _MAX_GROUP_ROWS)]
                g_centre = g_spread = None
                if n_rest >= 3:
                    g_centre = column_medians(rest)
                    g_spread = np.maximum(1.4826 * column_medians(np.abs(rest - g_centre)), min_spread)
                if whole and cache is not None:
                    cache[c] = (n_rest, g_centre, g_spread)
            if n_rest < 3:
                new_taken = np.ones(here.size, dtype=bool)
            else:
                g_ll = (-0.5 * (((cand_z[here] - g_centre) / g_spread) ** 2).sum(axis=1)
                        - np.log(g_spread).sum() + math.log(n_rest))
                new_taken = core_ll[here] + math.log(n_core) > g_ll
            if np.array_equal(new_taken, taken):
                break
            taken = new_taken
        keep[here] = taken
    return keep


def _boundaries_fitting_normal_pcs(strong: np.ndarray, judged: Sequence[MarkerBoundary],
                                   settings: PhenotypeSettings, warnings: list[str]) -> np.ndarray:
    """Which judged markers' reference boundaries this sample's normal PCs respect (bool per column of ``strong``,
    the PCs' deviations beyond each boundary in separations, > 0 = beyond).

    A boundary fails when ≥ ``settings.max_normal_beyond`` of the PCs that are normal on every other judged
    marker (at least ``settings.min_normal_pc_events`` of them) lie beyond it. Markers are failed one at a time,
    the most violated first, each test counting only the boundaries still in use; a warning names each."""
    k = strong.shape[1]
    ok = np.ones(k, dtype=bool)
    if settings.max_normal_beyond is None or k < 2:
        return ok
    beyond = strong > 0
    while ok.sum() > 1:
        worst, worst_share, worst_n = -1, 0.0, 0
        for j in np.flatnonzero(ok):
            others = ok.copy()
            others[j] = False
            normal_elsewhere = ~beyond[:, others].any(axis=1)
            n_on = int(np.count_nonzero(normal_elsewhere))
            if n_on < settings.min_normal_pc_events:
                continue
            share = np.count_nonzero(beyond[normal_elsewhere, j]) / n_on
            if share >= settings.max_normal_beyond and share > worst_share:
                worst, worst_share, worst_n = int(j), share, n_on
        if worst < 0:
            break
        ok[worst] = False
        b = judged[worst]
        side = "below" if b.expected == "pos" else "above"
        warnings.append(
            f"pc_reference_mismatch: {b.marker}: {round(worst_share * worst_n)} of the {worst_n} plasma cells normal "
            f"on every other marker lie {side} its reference boundary, so it does not fit this sample's normal plasma "
            f"cells (a compensation error into {b.marker}'s channel, or reference cells that do not represent this "
            f"sample, e.g. too few NRBC in a blood-diluted marrow); {b.marker} judged against those plasma cells only")
    return ok


def classify_plasma_cells(
    pc_events: np.ndarray,
    markers: Sequence[str],
    references: Mapping[str, MarkerReference],
    rules: Mapping[str, MarkerRule] = NORMAL_PC_PATTERN,
    settings: PhenotypeSettings = PhenotypeSettings(),
) -> PhenotypeResult:
    """Call the aberrant (clonal) plasma cells of one tube.

    Parameters
    ----------
    pc_events
        (n_pc, n_markers) transformed values of the plasma-cell events (float32; not modified).
    markers
        Marker name of each column (e.g. ``["CD19", "CD56", "CD27", "CD81", "CD117", "CD38", "CD45"]``).
    references
        Marker → its negative/positive reference populations from the same sample. Judged markers without a
        reference are not used (a warning says so).
    rules
        Marker → expected normal-PC expression; markers absent from ``rules`` are not judged.
    settings
        Thresholds of the clone test.

    Returns
    -------
    PhenotypeResult
        Aberrant mask, cluster labels, cluster descriptions, boundaries and warnings.
    """
    if not isinstance(pc_events, np.ndarray) or pc_events.ndim != 2:
        raise AnalysisError(f"classify_plasma_cells: expected a 2-D (events × markers) array, found "
                            f"{type(pc_events).__name__} with shape {getattr(pc_events, 'shape', None)}")
    if pc_events.dtype.kind != "f":
        raise AnalysisError(f"classify_plasma_cells: expected float32 transformed values, found {pc_events.dtype}")
    if not np.all(np.isfinite(pc_events)):
        bad = np.flatnonzero(~np.isfinite(pc_events).all(axis=1))
        raise AnalysisError(f"classify_plasma_cells: {bad.size} PC events have non-finite values "
                            f"(first at row {bad[0]}); expected transformed, finite values")
    markers = [str(m) for m in markers]
    if len(markers) != pc_events.shape[1]:
        raise AnalysisError(f"classify_plasma_cells: {len(markers)} marker names for {pc_events.shape[1]} columns")
    if len(set(m.upper() for m in markers)) != len(markers):
        raise AnalysisError(f"classify_plasma_cells: marker names must be unique, found {markers}")
    unknown = [m for m in references if m not in markers]
    if unknown:
        raise AnalysisError(f"classify_plasma_cells: references given for markers not in the PC matrix: {unknown}")

    n = pc_events.shape[0]
    warnings: list[str] = []
    boundaries: dict[str, MarkerBoundary] = {}
    judged: list[tuple[int, MarkerBoundary]] = []  # (column, boundary) of markers with an expectation
    used: list[tuple[int, MarkerBoundary]] = []  # every usable referenced marker (distance space)
    for col, marker in enumerate(markers):
        rule = rules.get(marker)
        if marker not in references:
            if rule is not None and rule.expected != "any":
                warnings.append(f"{marker}: no reference populations given; marker not judged")
            continue
        b = marker_boundary(marker, rule or MarkerRule("any"), references[marker],
                            min_events=settings.min_reference_events,
                            min_separation=settings.min_reference_separation)
        boundaries[marker] = b
        if not b.usable:
            warnings.append(b.reason)
            continue
        used.append((col, b))
        if b.expected != "any":
            judged.append((col, b))

    aberrant = np.zeros(n, dtype=bool)
    labels = np.full(n, -1, dtype=np.int32)
    if n == 0 or len(judged) < settings.min_aberrancies:
        if n and len(judged) < settings.min_aberrancies:
            warnings.append(f"only {len(judged)} judged markers usable, {settings.min_aberrancies} needed; "
                            "no aberrant call possible")
        return PhenotypeResult(aberrant, labels, (), boundaries, tuple(warnings))

    # standardised coordinates: separations from the boundary, positive = above
    z = np.empty((n, len(used)), dtype=np.float32)
    for j, (col, b) in enumerate(used):
        z[:, j] = (pc_events[:, col] - b.boundary) / b.separation
    used_pos = {b.marker: j for j, (_, b) in enumerate(used)}
    k = len(judged)
    # deviation toward the aberrant side, per judged marker
    dev = np.empty((n, k), dtype=np.float32)
    for j, (_, b) in enumerate(judged):
        zj = z[:, used_pos[b.marker]]
        dev[:, j] = -zj if b.expected == "pos" else zj
    strong = dev
    boundary_ok = _boundaries_fitting_normal_pcs(strong, [b for _, b in judged], settings, warnings)
    # "dim/increased vs the normal PCs": beyond normal_pc_sd robust SDs of the PCs showing the normal pattern,
    # measured in those SDs (weak > 0 means beyond)
    weak = np.full_like(strong, -np.inf)
    normal_like = ~((strong > 0) & boundary_ok).any(axis=1)
    if settings.normal_pc_sd is not None and np.count_nonzero(normal_like) >= settings.min_normal_pc_events:
        ref = strong[normal_like]
        centre = column_medians(ref)
        spread = np.maximum(1.4826 * column_medians(np.abs(ref - centre)), settings.min_normal_pc_spread)
        weak = (strong - centre) / spread - settings.normal_pc_sd
    elif settings.normal_pc_sd is not None:
        warnings.append(f"only {int(np.count_nonzero(normal_like))} PCs show the normal pattern "
                        f"({settings.min_normal_pc_events} needed): deviations judged against the reference "
                        "boundaries only")
    if not boundary_ok.all():  # a boundary the normal PCs do not respect: that marker by `weak` alone
        strong = np.where(boundary_ok, strong, np.float32(-np.inf))
    dev = (strong > 0) | (weak > 0)
    code = (dev.astype(np.int64) << np.arange(k)[None, :]).sum(axis=1)
    counts = np.bincount(code, minlength=1 << k)
    group_of = [(rules.get(b.marker) or MarkerRule("any")).group or f"_{b.marker}" for _, b in judged]
    group_masks = [sum(1 << j for j in range(k) if group_of[j] == g) for g in dict.fromkeys(group_of)]
    expected = _pattern_expectations(counts, group_masks)
    # aberrancies of a pattern = number of marker groups it touches
    popcount = np.array([sum(1 for m in group_masks if c & m) for c in range(1 << k)])

    cores = []
    for c in np.flatnonzero((popcount >= settings.min_aberrancies) & (counts >= settings.min_cluster_events)):
        obs, exp = int(counts[c]), float(expected[c])
        p = poisson_sf(obs - 1, exp)
        if obs < settings.min_fold * exp or p >= settings.alpha:
            continue
        members = np.flatnonzero(code == c)
        pattern = [j for j in range(k) if c >> j & 1]
        beyond = ((column_medians(strong[members][:, pattern]) >= settings.cluster_margin)
                  | (column_medians(weak[members][:, pattern]) >= settings.cluster_margin_sd))
        if not beyond.all():
            continue  # a smear across a threshold, not a population beyond it
        cores.append((c, members, pattern, obs, exp, p))
    pattern_info = dict(patterns=code, pattern_markers=tuple(b.marker for _, b in judged),
                        pattern_directions=tuple("negative" if b.expected == "pos" else "positive"
                                                 for _, b in judged),
                        pattern_groups=tuple(group_masks))
    if not cores:
        return PhenotypeResult(aberrant, labels, (), boundaries, tuple(warnings), **pattern_info)

    # grow each core into its clone; an event joins the core it is closest to
    limit = chi2_ppf(settings.expand_quantile, len(used))
    limit_1d = chi2_ppf(settings.expand_quantile, 1)
    best = np.full(n, np.inf)
    group_stats: dict = {}  # pattern → (events, centre, spread) of its whole population, for _closer_to_core
    regions: list[tuple[np.ndarray, np.ndarray]] = []  # (centre, spread) per cluster label
    clusters: list[dict] = []
    for c, members, pattern, obs, exp, p in sorted(cores, key=lambda t: -t[3]):
        core_z = z[members]
        centre = column_medians(core_z)
        spread = np.maximum(1.4826 * column_medians(np.abs(core_z - centre)), settings.min_spread)
        label = len(regions)
        for existing, (e_centre, e_spread) in enumerate(regions):
            sq_c = ((centre - e_centre) / e_spread) ** 2
            if sq_c.sum() <= limit and sq_c.max() <= limit_1d:
                label = existing  # the straddling fringe of a larger clone, not a clone of its own
                break
        shared = np.zeros(n, dtype=np.int64)  # deviations each PC shares with the core
        for j in pattern:
            shared += (code >> j) & 1
        eligible = shared >= len(pattern) - 1
        grown_centre, grown_spread, n_members = centre, spread, obs
        elig_idx = np.flatnonzero(eligible)
        elig_z = z[elig_idx]
        for _ in range(1 + settings.grow_rounds):
            # the core alone is truncated at its thresholds; re-centring on the grown clone recovers the
            # straddlers of a deviation that only part of the clone crosses (e.g. a CD38-dim clone)
            sq = ((elig_z - grown_centre) / grown_spread) ** 2
            d2 = np.full(n, np.inf, dtype=sq.dtype)
            d2[elig_idx] = sq.sum(axis=1)
            member = np.zeros(n, dtype=bool)
            inside = d2[elig_idx] <= limit
            for j in range(sq.shape[1]):  # column by column: numpy reduces a short row axis slowly
                inside &= sq[:, j] <= limit_1d
            member[elig_idx] = inside
            member[members] = False
            candidates = np.flatnonzero(member)
            member[candidates] = _closer_to_core(z, code, candidates, n_members, grown_centre, grown_spread,
                                                 settings.min_spread, cache=group_stats)
            member[members] = True
            if np.count_nonzero(member) == n_members:
                break
            n_members = int(np.count_nonzero(member))
            grown = z[member]
            grown_centre = column_medians(grown)
            grown_spread = np.maximum(1.4826 * column_medians(np.abs(grown - grown_centre)), settings.min_spread)
        d2[members] = 0.0
        take = member & (d2 < best)
        best[take] = d2[take]
        labels[take] = label
        if label < len(regions):
            clusters[label]["n_core_events"] += obs
            continue
        regions.append((centre, spread))
        crossed = column_medians(strong[members][:, pattern]) > 0
        aberr = {
            judged[j][1].marker: (("negative" if judged[j][1].expected == "pos" else "positive") if crossed[i]
                                  else ("dim" if judged[j][1].expected == "pos" else "increased"))
            for i, j in enumerate(pattern)
        }
        clusters.append(dict(label=label, n_core_events=obs, aberrancies=aberr,
                             centre={b.marker: float(centre[j]) for j, (_, b) in enumerate(used)},
                             expected_normal_events=exp, fold=obs / exp if exp > 0 else math.inf, p_value=p))
    aberrant = labels >= 0
    described = tuple(
        AberrantCluster(n_events=int(np.count_nonzero(labels == d["label"])), **d) for d in clusters
    )
    return PhenotypeResult(aberrant, labels, described, boundaries, tuple(warnings), **pattern_info)


__all__ = [
    "MarkerRule",
    "MarkerReference",
    "MarkerBoundary",
    "PhenotypeSettings",
    "AberrantCluster",
    "PhenotypeResult",
    "NORMAL_PC_PATTERN",
    "marker_boundary",
    "classify_plasma_cells",
]
