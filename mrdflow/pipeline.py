"""One sample, end to end: FCS files → :class:`~mrdflow.result.SampleResult`.

:func:`analyze_sample` is the only place that strings the steps together (DESIGN.md §1), steps 1–3 tube by
tube, then the phenotype call over the sample:

1. read the file (linear, $PnG-scaled values) and resolve the panel's markers (:func:`mrdflow.tube.prepare_tube`:
   one fused compensation + transform pass, in place on the float32 events);
2. time/flow-rate QC (:func:`mrdflow.qc.time.time_qc`): events of unstable stretches never enter the tree;
3. gate with the panel's template restricted to the tube's markers (:func:`mrdflow.gating.engine.gate_events`):
   margins → singlets → debris → evaluable nucleated cells → plasma cells, κ/λ and the reference populations;
4. normal vs aberrant plasma cells over the sample (:func:`mrdflow.gating.sample_phenotype.classify_sample`):
   each tube alone on all its markers, both tubes pooled on their shared backbone markers (a clone too small
   to stand out in one tube), plus light-chain restriction in a κ/λ tube; every marker's boundary derived from
   the tube's own reference populations (found by template *role*, see :data:`REFERENCE_ROLES`); counts stay
   per tube;
5. quantification over the tubes (:func:`mrdflow.mrd.quantify`), acquisition adequacy, hemodilution and, for a
   blood panel, circulating plasma cells as % of leukocytes and the plasma-cell-leukaemia criterion.

Pure: reads only the given files and the panel/template; writes nothing. Any problem is a
:class:`~mrdflow.errors.MrdflowError` naming the file, which the batch layer turns into a failed row.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from mrdflow.errors import AnalysisError, FcsError, MrdflowError, PanelError
from mrdflow.gating.light_chain import KAPPA, LAMBDA, NO_CHAIN
from mrdflow.gating.pc_markers import NORMAL_PC_PATTERN, MarkerReference
from mrdflow.gating.phenotype import PhenotypeResult
from mrdflow.gating.sample_phenotype import TubePlasmaCells, classify_sample
from mrdflow.gating.engine import gather_rows
from mrdflow.kernels.bins import sorted_distinct
from mrdflow.kernels.select import rows_at_ranks, sorted_choice_from
from mrdflow.mrd import MrdThresholds, TubeCounts, quantify
from mrdflow.panel import Panel, load_panel
from mrdflow.panel_files import SampleFiles, SpecimenCall
from mrdflow.result import PopulationCount, SampleResult, TubePlotData

__all__ = ["analyze_sample", "analyze_sample_tubes", "REFERENCE_ROLES", "TubeAnalysis", "PLOT_EVENTS"]

#: marker → (negative reference roles, positive reference roles); the first role of each list with enough
#: events in the tube is used. ``plasma_cell_bright`` is the brightest quarter of the tube's plasma cells
#: (normal-PC CD38 brightness). DOMAIN.md §2.4; the issue's examples (CD19 from T vs B, CD56 from T vs NK,
#: CD117 from lymphocytes vs mast cells, CD45 from NRBC vs lymphocytes, CD27/CD81 from their expressers).
REFERENCE_ROLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "CD19": (("t_cell",), ("b_cell",)),
    "CD56": (("t_cell",), ("nk_cell",)),
    "CD27": (("granulocyte",), ("t_cell",)),
    "CD81": (("granulocyte",), ("bcp", "lymphocyte")),
    "CD117": (("lymphocyte",), ("mast_cell", "myeloid_precursor")),
    "CD45": (("nrbc",), ("lymphocyte",)),
    "CD38": (("t_cell",), ("plasma_cell_bright",)),
}
#: the bone-marrow-restricted roles judged for hemodilution
HEMODILUTION_ROLES = ("mast_cell", "bcp", "nrbc", "myeloid_precursor")
#: reference roles not used in a blood specimen: normal blood has no CD117+ mast cells or myeloid precursors, so
#: what a gate finds there (the CD117-dim edge of the granulocytes) is no CD117-positive reference — CD117 is then
#: not judged (a warning says so)
NOT_BLOOD_REFERENCES = ("mast_cell", "myeloid_precursor")
#: events per tube kept for the report's plots
PLOT_EVENTS = 100_000
#: events of a reference population used for its median/spread (a seeded subsample beyond this)
_REFERENCE_EVENTS = 50_000
_MIN_REFERENCE_EVENTS = 20


@dataclass
class TubeAnalysis:
    """What one tube contributed (kept in ``SampleResult.details["tubes"]`` as plain values)."""

    tube: str
    file: Path
    counts: TubeCounts
    role_counts: dict[str, int]
    steps: dict[str, int]
    details: dict[str, Any]
    populations: list[PopulationCount]
    plot: TubePlotData | None
    plasma_cell_index: np.ndarray  # event indices (file order) of the plasma cells
    aberrant_index: np.ndarray  # event indices (file order) of the PCs called aberrant
    time_kept: np.ndarray  # bool per event: kept by time/flow-rate QC


def analyze_sample(files: Sequence[str | Path], panel: Panel | str | Path, *, sample_id: str | None = None,
                   plot_data: bool = False, specimen: str | None = None,
                   hashes: dict[str, str] | None = None) -> SampleResult:
    """Analyse one sample (its one or two tube files) with a panel; see :func:`analyze_sample_tubes`."""
    return analyze_sample_tubes(files, panel, sample_id=sample_id, plot_data=plot_data, specimen=specimen,
                                hashes=hashes)[0]


def analyze_sample_tubes(files: Sequence[str | Path], panel: Panel | str | Path, *, sample_id: str | None = None,
                         plot_data: bool = False, specimen: str | None = None,
                         hashes: dict[str, str] | None = None) -> tuple[SampleResult, list[TubeAnalysis]]:
    """Analyse one sample (its one or two tube files) with a panel.

    Parameters
    ----------
    files : the FCS files of the sample, one per panel tube (which file is which tube comes from the panel's
        grouping rule: file-name pattern or FCS keyword).
    panel : a validated :class:`~mrdflow.panel.Panel` or the path of its YAML file.
    sample_id : overrides the id the grouping rule gives.
    plot_data : also fill ``SampleResult.plots`` (≤ 100 k scaled events per tube with labels, gate geometry,
        parents and the time-QC trace) for the QC report.
    specimen : ``"bone_marrow"`` or ``"peripheral_blood"``, overriding the panel's per-sample rule
        (:func:`mrdflow.panel_files.resolve_specimen`: ``samples`` table, ``specimen_by``, ``specimen``).
        Blood: circulating plasma cells and the PCL criterion, hemodilution ``not_assessed``.
    hashes : when a dict is given, the SHA-256 of each file read (``str(path)`` → hex digest) is added to it,
        computed while the file is read (no second pass; what the batch records as the input hashes). A file
        not reached because an earlier one failed is not in it.

    Returns
    -------
    SampleResult
        ``status="ok"``; the results.csv fields, ``populations`` rows per tube (with ``aberrant_pc`` and
        ``normal_pc`` under the plasma-cell population) and named ``details``.
    list[TubeAnalysis]
        Per tube, its counts and the event indices of its plasma cells and aberrant calls (for validation).

    Raises
    ------
    MrdflowError
        A file cannot be read, does not fit the panel, a gate cannot be placed, or the files do not form one
        sample — the message names the file.
    """
    from mrdflow.panel import SPECIMENS
    from mrdflow.panel_files import group_files, resolve_specimen

    if not isinstance(panel, Panel):
        panel = load_panel(panel)
    if specimen is not None and specimen not in SPECIMENS:
        raise AnalysisError(f"analyze_sample: specimen {specimen!r} is not known (expected one of "
                            f"{', '.join(SPECIMENS)})")
    paths = [Path(f) for f in files]
    if not paths:
        raise AnalysisError("analyze_sample: no files given")
    template = _template(panel.template)
    groups = _group(panel, paths, group_files)
    if len(groups) != 1:
        raise AnalysisError(f"files {', '.join(p.name for p in paths)} form {len(groups)} samples "
                            f"({', '.join(g.sample_id for g in groups)}), expected one")
    group = groups[0]
    sid = sample_id or group.sample_id
    specimen_call = (SpecimenCall(specimen, "given by the caller") if specimen is not None
            else resolve_specimen(panel, SampleFiles(sid, group.tubes)))
    thresholds = MrdThresholds(
        lod_events=panel.mrd.lod_events, lloq_events=panel.mrd.lloq_events,
        required_sensitivity=panel.mrd.required_sensitivity, kappa_ratio_min=panel.mrd.kappa_lambda_kappa_above,
        lambda_ratio_max=panel.mrd.kappa_lambda_lambda_below, min_cells_for_clonality=panel.mrd.clonality_min_cells)

    stages: list[_TubeStage] = []
    for tube, path in group.tubes.items():
        # a logicle widened for an earlier tube's data is this tube's floor (the tubes' PCs pool on one scale)
        widest = max((st for st in stages if st.logicle_w is not None), key=lambda st: st.logicle_w, default=None)
        try:
            stages.append(_gate_tube(panel, template, tube, path, plot_data=plot_data, seed=_seed(sid, tube),
                                     blood=specimen_call.specimen == "peripheral_blood",
                                     hashes=hashes, min_logicle_w=None if widest is None else widest.logicle_w,
                                     floor_from=None if widest is None else widest.tube))
        except FcsError:
            raise
        except MrdflowError as exc:
            raise _with_file(exc, path) from None
    _common_logicle_width(stages)
    # normal vs aberrant over the whole sample: each tube alone, both tubes pooled on their shared backbone
    # markers, and light-chain restriction (mrdflow.gating.sample_phenotype)
    try:
        calls = classify_sample([TubePlasmaCells(name=st.tube, events=st.pcs, markers=st.judged,
                                                 references=st.references, light_chain=st.chain)
                                 for st in stages])
    except MrdflowError as exc:
        raise _with_file(exc, Path(" + ".join(str(st.path) for st in stages))) from None
    tubes = [_finish_tube(st, calls[st.tube]) for st in stages]
    return _sample_result(panel, sid, paths, tubes, thresholds, specimen_call), tubes


# ------------------------------------------------------------------------------------------------ one tube


@dataclass
class _TubeStage:
    """One tube gated, its plasma cells and references extracted — waiting for the sample-level phenotype call.

    Holds no full event matrix: only the PCs' judged columns and, for plots, a subsample plus every PC.
    """

    tube: str
    path: Path
    n_events: int
    n_eval: int
    steps: dict[str, int]
    role_counts: dict[str, int]
    pc_idx: np.ndarray
    pcs: np.ndarray
    judged: list[str]
    references: dict[str, MarkerReference]
    ref_sources: dict[str, tuple[str, str]]
    chain: np.ndarray | None
    pc_name: str
    gate_rows: list[dict[str, Any]]
    tq: Any
    keep: np.ndarray
    warnings: list[str]
    dropped: Any
    spillover: str | None
    plot: Any = None  # (TubePlotData with every PC drawn, rows of the subsample, rows of the PCs) or None
    logicle_w: float | None = None  # the logicle width the tube was widened to (None: the panel's)
    marker_transforms: dict[str, Any] = field(default_factory=dict)  # judged marker → its channel's transform


def _gate_tube(panel: Panel, template, tube: str, path: Path, *, plot_data: bool, seed: int, blood: bool = False,
               hashes: dict[str, str] | None = None, min_logicle_w: float | None = None,
               floor_from: str | None = None) -> _TubeStage:
    from mrdflow.fcs import read_fcs
    from mrdflow.gating.engine import gate_events
    from mrdflow.panel_files import time_channel
    from mrdflow.tube import prepare_tube, spillover_errors
    from numba import get_num_threads

    # column-major events: every gate / QC pass reads only its own channels' memory; read on as many threads
    # as the numba kernels may use (a batch worker's share of the cores)
    fcs = read_fcs(path, linearize=True, order="F", sha256=hashes is not None, threads=get_num_threads(),
                   spillover_errors=spillover_errors(panel))
    if hashes is not None:
        hashes[str(path)] = fcs.sha256
    setup = prepare_tube(panel, tube, fcs, template, min_logicle_w=min_logicle_w, floor_from=floor_from)
    ev = fcs.events
    n = ev.shape[0]
    tmpl = setup.template
    marker_cols = {m: c for m, c in setup.markers.items()}

    # time / flow-rate QC before any gate
    time_col = time_channel([c.name for c in fcs.channels])
    tq = None
    warnings = list(setup.warnings)
    if panel.qc.time.enabled and time_col is not None and n > 0:
        from mrdflow.qc.time import TimeQcSettings, time_qc

        s = panel.qc.time
        tq = time_qc(ev, time_col, sorted(set(marker_cols.values())),
                     TimeQcSettings(min_events_per_bin=s.min_cells, max_bins=s.max_bins, mad_threshold=s.mad,
                                    consecutive_bins=s.consecutive_bins, max_order_correlation=s.max_order_correlation,
                                    events_per_bin=_time_bin_size(ev[:, time_col], s.min_cells, s.max_bins)))
        keep = tq.keep
        warnings.extend(tq.warnings)
    else:
        keep = np.ones(n, dtype=bool)
        if panel.qc.time.enabled:
            warnings.append("time_qc_not_done: the file has no Time channel")

    res = gate_events(ev, setup.index, tmpl, upper_limits=setup.upper_limits, root_mask=keep)

    def role_mask(role: str) -> np.ndarray | None:
        names = tmpl.by_role(role)
        if not names:
            return None
        m = res.mask(names[0])
        for other in names[1:]:
            m |= res.mask(other)
        return m

    def role_count(role: str) -> int | None:
        names = tmpl.by_role(role)
        return sum(res.counts[x] for x in names) if names else None

    for role in ("evaluable", "plasma_cell"):
        if not tmpl.by_role(role):
            raise PanelError(f"template {template.source}: no population has the role {role!r} in tube {tube} "
                             "(the pipeline needs it)")
    n_kept = int(np.count_nonzero(keep))
    n_eval = role_count("evaluable")
    steps = {"acquired": n, "time_removed": n - n_kept}
    def step_count(role: str) -> int | None:
        """Events left after a QC step: the deepest population with that role (steps may be gated in stages)."""
        names = tmpl.by_role(role)
        return res.counts[max(names, key=lambda x: tmpl.nodes[x].depth)] if names else None

    n_margin_ok = step_count("margin_ok")
    n_singlet = step_count("singlet")
    after_margin = n_kept if n_margin_ok is None else n_margin_ok
    after_singlet = after_margin if n_singlet is None else n_singlet
    steps["margin"] = n_kept - after_margin
    steps["doublets"] = after_margin - after_singlet
    steps["debris"] = max(after_singlet - n_eval, 0)
    steps["evaluable"] = n_eval

    # plasma cells and the phenotype call
    pc_mask = role_mask("plasma_cell") & role_mask("evaluable")
    pc_idx = np.flatnonzero(pc_mask)
    judged = [m for m in NORMAL_PC_PATTERN if _find_marker(marker_cols, m) is not None
              and NORMAL_PC_PATTERN[m].expected != "any"]
    cols = [marker_cols[_find_marker(marker_cols, m)] for m in judged]
    pcs = gather_rows(ev, pc_idx, cols) if cols else np.empty((pc_idx.size, 0), np.float32)
    references, ref_sources = _references(ev, judged, cols, pcs, role_mask, seed,
                                          skip_roles=NOT_BLOOD_REFERENCES if blood else ())
    ref_warnings = [f"{m}: no reference population with {_MIN_REFERENCE_EVENTS}+ events "
                    f"({' / '.join(REFERENCE_ROLES[m][0])} vs {' / '.join(REFERENCE_ROLES[m][1])}); marker not used"
                    for m in judged if m in REFERENCE_ROLES and m not in references]
    kappa_m, lambda_m = role_mask("kappa"), role_mask("lambda")
    chain = None
    if kappa_m is not None and lambda_m is not None:
        chain = np.full(pc_idx.size, NO_CHAIN, dtype=np.int8)
        chain[kappa_m[pc_idx]] = KAPPA
        chain[lambda_m[pc_idx] & ~kappa_m[pc_idx]] = LAMBDA
    warnings.extend(_off_scale_warnings(pc_idx, setup.at_top, marker_cols, fcs.channels))
    plot = None
    if plot_data:
        plot = _plot_data(tube, fcs, res, pc_idx, tq, seed, names={**setup.markers, **setup.index})
        plot[0].axis_units = {c.marker or c.name: setup.transforms[c.name].kind for c in fcs.channels
                              if c.name in setup.transforms}
    return _TubeStage(tube=tube, path=path, n_events=n, n_eval=n_eval, steps=steps,
                      role_counts={r: role_count(r) for r in HEMODILUTION_ROLES if role_count(r) is not None},
                      pc_idx=pc_idx, pcs=pcs, judged=judged, references=references, ref_sources=ref_sources,
                      chain=chain, pc_name=tmpl.by_role("plasma_cell")[0], gate_rows=res.rows(), tq=tq, keep=keep,
                      warnings=warnings + list(res.warnings) + ref_warnings, dropped=setup.dropped,
                      spillover=None if setup.spillover is None else setup.spillover.source, plot=plot,
                      logicle_w=setup.logicle_w,
                      marker_transforms={m: setup.transforms.get(fcs.channels[c].name) for m, c in zip(judged, cols)})


#: tube warnings (``"<key>: ..."``) whose key also becomes a QC flag of the sample's result
WARNING_FLAGS = ("spillover_missing", "spillover_rescaled", "time_qc_not_done", "step_skipped", "pc_off_scale",
                 "pc_reference_mismatch", "logicle_width_narrow", "logicle_width_widened")


def _common_logicle_width(stages: list[_TubeStage]) -> None:
    """Put the plasma cells and references of tubes transformed at a narrower logicle width than the sample's
    widest (a later tube's data needed a wider one) on that width, so both tubes pool on one scale: the kept
    values are mapped back to linear by their transform's inverse and forward again at the wider ``W``."""
    from dataclasses import replace

    widest = max((st.logicle_w for st in stages if st.logicle_w is not None), default=None)
    if widest is None:
        return
    for st in stages:
        if st.logicle_w == widest:
            continue
        new_t = {}
        for m, t in st.marker_transforms.items():
            if t is not None and t.kind == "logicle" and t.W < widest:
                new_t[m] = (t, replace(t, W=widest))

        def remap(values: np.ndarray, marker: str) -> np.ndarray:
            old, new = new_t[marker]
            return new.apply(old.inverse(np.asarray(values, dtype=np.float64))).astype(np.float32)

        for j, m in enumerate(st.judged):
            if m in new_t:
                st.pcs[:, j] = remap(st.pcs[:, j], m)
        for m, ref in list(st.references.items()):
            if m in new_t:
                st.references[m] = MarkerReference(remap(ref.negative, m), remap(ref.positive, m),
                                                   ref.negative_name, ref.positive_name)
        st.marker_transforms.update({m: pair[1] for m, pair in new_t.items()})
        st.warnings.append(f"logicle_width_widened: this tube's plasma cells and references re-scaled to logicle W "
                           f"{widest:g} for the sample-level call, as another tube of this sample needed")
        st.logicle_w = widest


def _chain_counts(pheno: PhenotypeResult, chain: np.ndarray, n_pc: int, n_ab: int) -> dict[str, int]:
    """κ/λ counts of a tube's aberrant and normal PCs (events; ``chain`` per PC: 0 untyped, 1 κ, 2 λ).

    Marked aberrant events count by their chain. A light-chain-restricted subset that is counted but not
    marked per event (:class:`~mrdflow.gating.light_chain.LightChainSettings` ``mark_min_share``) moves its
    excess from the normal to the aberrant count of its chain. When ``n_ab`` (the estimate, which removes the
    normal PCs expected inside restricted subsets) is below the chain total, both chains are scaled down to it.
    """
    aberrant = pheno.aberrant
    ka = int(np.count_nonzero(aberrant & (chain == KAPPA)))
    la = int(np.count_nonzero(aberrant & (chain == LAMBDA)))
    kn = int(np.count_nonzero(~aberrant & (chain == KAPPA)))
    ln = int(np.count_nonzero(~aberrant & (chain == LAMBDA)))
    for c in pheno.clusters:
        if c.light_chain is not None and not np.any(pheno.labels == c.label):
            excess = int(round(max(0.0, c.n_events - c.expected_normal_events)))
            if c.light_chain == "kappa":
                excess = min(excess, kn)
                ka, kn = ka + excess, kn - excess
            else:
                excess = min(excess, ln)
                la, ln = la + excess, ln - excess
    if ka + la > n_ab:  # the estimate removed expected normal PCs of restricted subsets
        scale = n_ab / (ka + la)
        ka, la = int(math.floor(ka * scale)), int(math.floor(la * scale))
    return dict(kappa_aberrant=ka, lambda_aberrant=la, kappa_normal=min(kn, n_pc - n_ab),
                lambda_normal=min(ln, max(n_pc - n_ab - min(kn, n_pc - n_ab), 0)))


def _finish_tube(st: _TubeStage, pheno: PhenotypeResult) -> TubeAnalysis:
    """Counts, populations and details of one tube from its sample-level phenotype call."""
    chain = st.chain
    aberrant = pheno.aberrant
    n_pc = int(st.pc_idx.size)
    n_ab = min(int(round(pheno.n_aberrant_estimate)), n_pc)
    counts_kw = _chain_counts(pheno, chain, n_pc, n_ab) if chain is not None else {}
    counts = TubeCounts(tube=st.tube, n_events_acquired=st.n_events, n_events_evaluable=st.n_eval,
                        n_plasma_cells=n_pc, n_normal_pc=n_pc - n_ab, n_aberrant_pc=n_ab, **counts_kw)
    populations = _population_rows(st.tube, st.gate_rows, st.pc_name, n_ab, n_pc, st.n_eval)
    details = {
        "file": str(st.path),
        "n_events_acquired": st.n_events,
        "n_events_evaluable": st.n_eval,
        "steps": st.steps,
        "n_plasma_cells": n_pc,
        "n_aberrant_pc_called": int(pheno.n_aberrant),
        "n_aberrant_pc": n_ab,
        "n_normal_pc": n_pc - n_ab,
        **{k: v for k, v in counts_kw.items()},
        "time_qc": _time_details(st.tq),
        "phenotype": _phenotype_details(pheno, st.ref_sources),
        "dropped_populations": st.dropped,
        "warnings": st.warnings + list(pheno.warnings),
        "spillover": st.spillover,
    }
    plot = _plot_labels(st.plot, aberrant) if st.plot is not None else None
    return TubeAnalysis(tube=st.tube, file=st.path, counts=counts, role_counts=st.role_counts, steps=st.steps,
                        details=details, populations=populations, plot=plot, plasma_cell_index=st.pc_idx,
                        aberrant_index=st.pc_idx[aberrant], time_kept=st.keep)


#: a time bin spans at least this many ticks of the Time channel, so that its rate is not dominated by the
#: rounding of event times to the clock tick (short acquisitions with a coarse $TIMESTEP)
_MIN_TICKS_PER_BIN = 20


def _time_bin_size(times: np.ndarray, min_cells: int, max_bins: int) -> int | None:
    """Events per time-QC bin: PeacoQC's automatic size, enlarged so a bin spans ≥ 20 clock ticks; None = auto."""
    n = times.size
    n_ticks = _n_distinct(times)
    if n == 0 or n_ticks < 2:
        return None
    auto = max(min_cells, math.ceil(n / max_bins))
    per_tick = n / n_ticks
    wanted = math.ceil(_MIN_TICKS_PER_BIN * per_tick)
    return wanted if wanted > auto else None


def _n_distinct(values: np.ndarray) -> int:
    """Number of distinct values; without a sorted copy when they are already in order (a Time column)."""
    if values.size < 2:
        return int(values.size)
    found = sorted_distinct(values)  # one pass, -1 when not in order
    return found if found >= 0 else int(np.unique(values).size)


def _find_marker(marker_cols: Mapping[str, int], name: str) -> str | None:
    from mrdflow.panel import normalize_marker

    key = normalize_marker(name)
    return next((m for m in marker_cols if normalize_marker(m) == key), None)


def _references(ev: np.ndarray, judged: list[str], cols: list[int], pcs: np.ndarray, role_mask, seed: int,
                skip_roles: Sequence[str] = ()):
    """Per judged marker, its negative/positive reference values from the tube's reference populations (not
    from ``skip_roles``)."""
    rng = np.random.default_rng(seed)
    cache: dict[str, np.ndarray | None] = {}

    def rows(role: str) -> np.ndarray | None:
        if role not in cache:
            m = role_mask(role)
            idx = None
            if m is not None:
                k = int(np.count_nonzero(m))
                if k > _REFERENCE_EVENTS:
                    # = np.sort(rng.choice(np.flatnonzero(m), ...)): the same draws (choice of an array picks
                    # positions; replayed without numpy's arange(k)), mapped to rows without the index array of
                    # the whole population
                    idx = rows_at_ranks(m, sorted_choice_from(rng, k, _REFERENCE_EVENTS))
                else:
                    idx = np.flatnonzero(m)
            cache[role] = idx
        return cache[role]

    refs: dict[str, MarkerReference] = {}
    sources: dict[str, tuple[str, str]] = {}
    for j, (marker, col) in enumerate(zip(judged, cols)):
        if marker not in REFERENCE_ROLES:
            continue
        neg_roles, pos_roles = REFERENCE_ROLES[marker]
        picked = []
        for roles in (neg_roles, pos_roles):
            found = None
            for role in roles:
                if role in skip_roles:
                    continue
                if role == "plasma_cell_bright":
                    v = pcs[:, j]
                    if v.size >= 4 * _MIN_REFERENCE_EVENTS:
                        found = (v[v >= np.quantile(v, 0.75)], "brightest quarter of the plasma cells")
                        break
                    continue
                idx = rows(role)
                if idx is not None and idx.size >= _MIN_REFERENCE_EVENTS:
                    found = (ev[idx, col], role)
                    break
            picked.append(found)
        if picked[0] is None or picked[1] is None:
            continue
        refs[marker] = MarkerReference(picked[0][0], picked[1][0], picked[0][1], picked[1][1])
        sources[marker] = (picked[0][1], picked[1][1])
    return refs, sources


def _population_rows(tube: str, gate_rows: list[dict[str, Any]], pc_name: str, n_ab: int, n_pc: int,
                     n_eval: int) -> list[PopulationCount]:
    out = []
    for row in gate_rows:
        out.append(PopulationCount(tube=tube, population=row["population"],
                                   parent="" if row["parent"] == "root" else row["parent"], count=int(row["count"]),
                                   pct_of_parent=float(row["pct_of_parent"]),
                                   pct_of_evaluable=100.0 * row["count"] / n_eval if n_eval else math.nan))
    for name, c in (("aberrant_pc", n_ab), ("normal_pc", n_pc - n_ab)):
        out.append(PopulationCount(tube=tube, population=name, parent=pc_name, count=int(c),
                                   pct_of_parent=100.0 * c / n_pc if n_pc else math.nan,
                                   pct_of_evaluable=100.0 * c / n_eval if n_eval else math.nan))
    return out


def _time_details(tq) -> dict[str, Any]:
    if tq is None:
        return {"done": False}
    return {"done": True, "fraction_removed": float(tq.fraction_removed), "flags": list(tq.flags),
            "excluded_ranges": [[float(a), float(b)] for a, b in tq.excluded_ranges],
            "n_bins": int(tq.bin_rate.size), "n_removed_bins": int(np.count_nonzero(tq.removed_bins))}


def _phenotype_details(pheno: PhenotypeResult, sources: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
    # marked_per_event False: a light-chain-restricted subset counted (its excess over the expected normal PCs)
    # but not marked event by event, because most of its events are normal PCs of the same chain
    clusters = [{"n_events": c.n_events, "aberrancies": dict(c.aberrancies), "light_chain": c.light_chain,
                 "expected_normal_events": float(c.expected_normal_events), "fold": float(c.fold),
                 "p_value": float(c.p_value), "marked_per_event": bool(np.any(pheno.labels == c.label))}
                for c in pheno.clusters]
    bounds = {m: {"negative_reference": sources.get(m, ("", ""))[0],
                  "positive_reference": sources.get(m, ("", ""))[1],
                  "negative_centre": b.negative_centre, "positive_centre": b.positive_centre,
                  "boundary": b.boundary, "usable": b.usable, "reason": b.reason}
              for m, b in pheno.boundaries.items()}
    return {"clusters": clusters, "boundaries": bounds}


def _plot_data(tube: str, fcs, res, pc_idx: np.ndarray, tq, seed: int,
               names: Mapping[str, int] | None = None) -> tuple[TubePlotData, np.ndarray, np.ndarray]:
    """Plot data of a tube before the phenotype call: a random subsample plus every plasma cell (the clone's
    events are rare: every called aberrant PC must be drawn); :func:`_plot_labels` keeps the subsample and the
    aberrant PCs once the call is made. Returns the data and, per drawn row, whether it is in the subsample and
    its position among the PCs (-1 if not a PC)."""
    n = fcs.events.shape[0]
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, PLOT_EVENTS, replace=False)) if n > PLOT_EVENTS else np.arange(n)
    in_sample = np.isin(np.union1d(idx, pc_idx), idx)
    idx = np.union1d(idx, pc_idx)
    pc_pos = np.full(idx.size, -1, dtype=np.int64)
    where = np.searchsorted(pc_idx, idx)
    hit = where < pc_idx.size
    hit[hit] = pc_idx[where[hit]] == idx[hit]
    pc_pos[hit] = where[hit]
    labels = res.labels.astype(np.uint16)
    label_names = [*res.label_names, "aberrant_pc", "normal_pc"]
    # each column named as the panel and template call it (a stain "CD38 FITC" is the marker CD38, a Navios
    # "FS INT LIN" the dimension FSC-A), so the plots find it; other columns by $PnS, else $PnN
    columns = [c.marker or c.name for c in fcs.channels]
    for name, col in (names or {}).items():
        columns[col] = name
    trace: dict[str, Any] = {}
    if tq is not None:
        trace = {"bin_start": tq.bin_start.tolist(), "bin_end": tq.bin_end.tolist(), "rate": tq.bin_rate.tolist(),
                 "kept": (~tq.removed_bins).tolist(), "excluded_ranges": [list(r) for r in tq.excluded_ranges]}
    tmpl = res.template
    data = TubePlotData(tube=tube, columns=columns, events=np.ascontiguousarray(fcs.events[idx]), labels=labels[idx],
                        label_names=label_names, gates=res.geometry(),
                        gate_dims={k: list(v.dims) for k, v in tmpl.nodes.items()},
                        parents={k: v.parent for k, v in tmpl.nodes.items()}, time_trace=trace)
    return data, in_sample, pc_pos


def _plot_labels(staged: tuple[TubePlotData, np.ndarray, np.ndarray], aberrant: np.ndarray) -> TubePlotData:
    """Label the plasma cells of staged plot data normal/aberrant; keep the subsample and every aberrant PC."""
    data, in_sample, pc_pos = staged
    ab_label, norm_label = len(data.label_names) - 2, len(data.label_names) - 1
    is_pc = pc_pos >= 0
    is_ab = np.zeros(pc_pos.size, dtype=bool)
    is_ab[is_pc] = aberrant[pc_pos[is_pc]]
    labels = data.labels.copy()
    labels[is_pc] = norm_label
    labels[is_ab] = ab_label
    rows = in_sample | is_ab
    data.events = np.ascontiguousarray(data.events[rows])
    data.labels = labels[rows]
    return data


# ------------------------------------------------------------------------------------------------ the sample


#: fewest plasma cells for judging how many sit at the top of a marker's scale
_MIN_PCS_OFF_SCALE = 20


def _off_scale_warnings(pc_idx: np.ndarray, at_top: Mapping[int, np.ndarray], marker_cols: Mapping[str, int],
                        channels) -> list[str]:
    """``pc_off_scale`` warnings: markers for which more than ``AdequacySettings.max_pc_off_scale_rate`` of the
    plasma cells had a raw value at the top of the detector's scale (≥ $PnR − 1, before compensation) — a
    detector set too high for the PCs, which compresses that marker's PC references and phenotype calls."""
    from mrdflow.qc.adequacy import AdequacySettings

    rate = AdequacySettings().max_pc_off_scale_rate
    out = []
    if pc_idx.size < _MIN_PCS_OFF_SCALE:
        return out
    for marker, col in marker_cols.items():
        rows = at_top.get(col)
        if rows is None:
            continue
        k = int(np.intersect1d(pc_idx, rows, assume_unique=True).size)
        if k > rate * pc_idx.size:
            out.append(f"pc_off_scale: {k} of the {pc_idx.size} plasma cells ({100 * k / pc_idx.size:.0f} %) are at "
                       f"the top of the {marker} scale (channel {channels[col].name}, saturated at $PnR); the "
                       f"detector is set too high for them, so {marker}-based calls and the MRD count are "
                       f"unreliable")
    return out


def _sample_result(panel: Panel, sid: str, paths: list[Path], tubes: list[TubeAnalysis],
                   thresholds: MrdThresholds, specimen: SpecimenCall) -> SampleResult:
    from mrdflow.qc.adequacy import assess_adequacy

    mrd = quantify([t.counts for t in tubes], thresholds, panel.mrd.denominator)
    steps = {k: sum(t.steps[k] for t in tubes) for k in ("acquired", "time_removed", "margin", "doublets",
                                                         "debris", "evaluable")}
    adequacy = assess_adequacy(steps["acquired"], steps["time_removed"], steps["margin"], steps["doublets"],
                               steps["debris"], steps["evaluable"], thresholds)
    flags: list[str] = list(adequacy.flags)
    for t in tubes:
        for f in t.details["time_qc"].get("flags", []):
            if f not in flags:
                flags.append(f)
        for w in t.details["warnings"]:
            key = w.split(":")[0]
            if key in WARNING_FLAGS and key not in flags:
                flags.append(key)

    details: dict[str, Any] = {
        "specimen": specimen.specimen,
        "specimen_source": specimen.source,
        "denominator": mrd.denominator,
        "denominator_rule": ("evaluable nucleated cells (NRBC included) after time QC, margin events, doublets and "
                             "debris, " + ("summed over the tubes" if mrd.denominator == "combined"
                                           else "of the tube with most evaluable events")),
        "kappa_lambda_ratio": mrd.kappa_lambda_ratio,
        "qc_removed_pct": {"time": 100 * adequacy.time_removed_rate, "margin": 100 * adequacy.margin_rate,
                           "doublets": 100 * adequacy.doublet_rate, "debris": 100 * adequacy.debris_rate},
        "events_needed": adequacy.events_needed,
        "events_needed_lloq": adequacy.events_needed_lloq,
        "tubes": {t.tube: t.details for t in tubes},
    }
    if len(mrd.tubes) > 1:
        for t, r in zip(tubes, mrd.tubes):
            details["tubes"][t.tube].update(mrd_fraction=r.mrd_fraction, mrd_status=r.mrd_status,
                                            lod=r.lod, lloq=r.lloq)

    hemodilution = "not_assessed"
    if specimen.specimen == "peripheral_blood":
        n_eval = mrd.n_events_evaluable
        pct = 100.0 * mrd.n_plasma_cells / n_eval if n_eval else math.nan
        pct_clonal = 100.0 * mrd.n_aberrant_pc / n_eval if n_eval else math.nan
        details.update(pct_circulating_pc=pct, pct_circulating_clonal_pc=pct_clonal,
                       pcl_min_pct=panel.mrd.pcl_min_pct,
                       ppcl=bool(n_eval) and pct >= panel.mrd.pcl_min_pct)
        if details["ppcl"]:
            flags.append("pcl_criterion_met")
    else:
        hemo = _hemodilution(panel, tubes)
        if hemo is not None:
            hemodilution = hemo.status
            details["hemodilution"] = {"fractions": hemo.fractions, "limits": hemo.limits, "below": list(hemo.below),
                                       "relative_to_typical": hemo.relative_to_typical, "reasons": list(hemo.reasons)}
            if hemo.status == "suspected":
                flags.append("hemodilution_suspected")

    return SampleResult(
        sample_id=sid, files=[str(p) for p in paths], status="ok", error="",
        n_events_acquired=mrd.n_events_acquired, n_events_evaluable=mrd.n_events_evaluable,
        n_plasma_cells=mrd.n_plasma_cells, n_normal_pc=mrd.n_normal_pc, n_aberrant_pc=mrd.n_aberrant_pc,
        mrd_fraction=mrd.mrd_fraction, lod=mrd.lod, lloq=mrd.lloq, mrd_status=mrd.mrd_status,
        sensitivity_met=mrd.sensitivity_met, clonality=mrd.clonality, hemodilution=hemodilution, qc_flags=flags,
        populations=[p for t in tubes for p in t.populations], details=_plain(details),
        plots=[t.plot for t in tubes if t.plot is not None],
    )


def _hemodilution(panel: Panel, tubes: list[TubeAnalysis]):
    """Hemodilution from the BM-restricted roles; each role's fraction over the tubes that measured it."""
    from mrdflow.qc.hemodilution import HemodilutionReference, assess_hemodilution

    limits_pct = dict(panel.qc.hemodilution.reference_min_pct)
    if not limits_pct:
        return None
    bad = [r for r in limits_pct if r not in HEMODILUTION_ROLES]
    if bad:
        raise PanelError(f"{panel.source}: field 'qc.hemodilution.reference_min_pct': unknown role(s) "
                         f"{', '.join(bad)}; expected some of {', '.join(HEMODILUTION_ROLES)}")
    default_typical = HemodilutionReference().typical or {}
    reference = HemodilutionReference(
        limits={r: v / 100.0 for r, v in limits_pct.items()},
        min_populations_below=panel.qc.hemodilution.min_populations_below,
        typical={r: default_typical[r] for r in limits_pct if r in default_typical} or None)
    n_total = sum(t.counts.n_events_evaluable for t in tubes)
    counts: dict[str, int | None] = {}
    for role in limits_pct:
        measured = [t for t in tubes if role in t.role_counts]
        n_eval = sum(t.counts.n_events_evaluable for t in measured)
        if not measured or n_eval == 0:
            counts[role] = None
            continue
        frac = sum(t.role_counts[role] for t in measured) / n_eval
        counts[role] = int(round(frac * n_total))
    return assess_hemodilution(counts, n_total, reference)


# ------------------------------------------------------------------------------------------------ helpers

#: parsed templates by (path, mtime, size): a batch worker parses its template once, not once per sample
_TEMPLATES: dict[tuple[str, int, int], Any] = {}


def _template(path: str | Path):
    """:func:`mrdflow.gating.template.load_template`, cached while the file is unchanged (templates are frozen)."""
    from mrdflow.gating.template import load_template

    try:
        st = Path(path).stat()
    except OSError:
        return load_template(path)  # its own error names the file
    key = (str(Path(path).resolve()), st.st_mtime_ns, st.st_size)
    if key not in _TEMPLATES:
        if len(_TEMPLATES) >= 8:
            _TEMPLATES.clear()
        _TEMPLATES[key] = load_template(path)
    return _TEMPLATES[key]


def _group(panel: Panel, paths: list[Path], group_files):
    # a keyword rule reads HEADER and TEXT only (panel_files.text_keywords); the DATA is read once, by the analysis
    return group_files(panel, paths)


def _plain(v: Any) -> Any:
    """Details as plain JSON-ready values: numpy scalars → Python, non-finite floats → None, tuples → lists."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _seed(sample_id: str, tube: str) -> int:
    return zlib.crc32(f"{sample_id}/{tube}".encode())


def _with_file(exc: MrdflowError, path: Path) -> MrdflowError:
    msg = str(exc)
    if str(path) in msg or path.name in msg:
        return exc
    try:
        return type(exc)(f"{path}: {msg}")
    except TypeError:
        return AnalysisError(f"{path}: {msg}")
