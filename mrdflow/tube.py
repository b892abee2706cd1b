"""One tube made ready for gating: a panel + a read FCS data set → compensated, transformed events and the
column of every template dimension.

:func:`check_tube` does everything except touching the events (what ``validate-panel`` runs on every file);
:func:`prepare_tube` also runs the fused compensation + transform pass (:func:`mrdflow.scaling.scale_events`)
**in place** on ``fcs.events`` — no copy of the event matrix is made. The events must be linear, $PnG-scaled
values (``read_fcs(path, linearize=True)``), which is what the GatingML 2.0 transforms (and the exported
GatingML) assume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mrdflow.errors import MrdflowError, PanelError, TemplateError
from mrdflow.gating.template import Template
from mrdflow.panel import Panel
from mrdflow.panel_files import channel_transforms, has_dimension, linear_value, resolve_dims, resolve_markers
from mrdflow.transforms import Transform, transform_from_dict

__all__ = ["TubeSetup", "check_tube", "prepare_tube"]


@dataclass
class TubeSetup:
    """How one file of one tube is read by the panel.

    Attributes
    ----------
    tube : panel tube name.
    markers : panel marker → column.
    index : template dimension → column (what :func:`mrdflow.gating.engine.gate_events` takes).
    transforms : $PnN → transform applied.
    spillover : the spillover used (None = uncompensated; see ``warnings``).
    upper_limits : template dimension → top of its scale in transformed units ($PnR − 1, linearized and
        transformed).
    warnings : e.g. ``spillover_missing``.
    template : the template restricted to this tube's markers (see :func:`tube_template`); gate with it.
    dropped : template populations this tube cannot evaluate (their markers belong to another tube).
    at_top : marker column → sorted rows whose raw (uncompensated) value is at the top of that detector's
        scale (≥ $PnR − 1, saturated); only columns with such rows. Filled by :func:`prepare_tube`.
    logicle_w : the linear width every logicle channel was widened to by :func:`prepare_tube` (None: the
        panel's).
    """

    tube: str
    markers: dict[str, int]
    index: dict[str, int]
    transforms: dict[str, Transform]
    spillover: Any
    upper_limits: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    template: Template | None = None
    dropped: list[str] = field(default_factory=list)
    at_top: dict[int, np.ndarray] = field(default_factory=dict)
    logicle_w: float | None = None


def check_tube(panel: Panel, tube: str, fcs: Any, template: Template) -> TubeSetup:
    """Resolve markers, template dimensions, transforms and the spillover of one file; touch no events.

    Raises
    ------
    PanelError
        A marker or dimension does not resolve, a transform parameter is invalid, or the spillover is unusable.
    """
    src = panel.source or "<panel>"
    file = getattr(fcs, "path", "<file>")
    channels = fcs.channels
    markers = resolve_markers(panel, tube, channels, file=file)
    warnings: list[str] = []
    template, dropped = tube_template(panel, tube, template, markers, channels, warnings)
    try:
        index = resolve_dims(template.dims(), markers, channels, where=f"{template.source or '<template>'}",
                             file=file, dimensions=panel.dimensions)
    except PanelError as exc:
        raise TemplateError(str(exc)) from None
    transforms: dict[str, Transform] = {}
    for name, (kind, params) in channel_transforms(panel, tube, channels, markers).items():
        try:
            transforms[name] = transform_from_dict({"kind": kind, **params})
        except MrdflowError as exc:
            raise PanelError(f"{src}: transform of channel {name} (tube {tube}, file {file}): {exc}") from None
    spill = _spillover(panel, fcs, channels, warnings)
    upper: dict[str, float] = {}
    for dim, col in index.items():
        ch = channels[col]
        top = np.array([raw_top(ch)], dtype=np.float32)
        t = transforms.get(ch.name)
        upper[dim] = float((t.apply(top) if t is not None else top)[0])
    return TubeSetup(tube=tube, markers=markers, index=index, transforms=transforms, spillover=spill,
                     upper_limits=upper, warnings=warnings, template=template, dropped=dropped)


def raw_top(ch: Any) -> float:
    """The top of a channel's linear scale: the linearized value of $PnR − 1 (a saturated event sits there)."""
    return linear_value(ch, max(float(ch.range) - 1.0, 0.0))


def tube_template(panel: Panel, tube: str, template: Template, markers, channels,
                  warnings: list[str] | None = None) -> tuple[Template, list[str]]:
    """The part of ``template`` this tube can evaluate.

    Populations whose dimensions are markers the panel lists for *another* tube only (e.g. CD117 in NGF tube 1,
    cyIgKappa in tube 2) are dropped with their descendants. An ``optional`` population (a QC step such as the
    FSC-A/FSC-H singlet gate) needing a dimension the file lacks passes its parent's events on, with a message
    added to ``warnings``. Any other unresolvable dimension stays and is reported as an error by the dimension
    check (a typo is never silently dropped).
    """
    from mrdflow.panel import normalize_marker

    here = {normalize_marker(m) for m in markers} | {normalize_marker(c.name) for c in channels}
    elsewhere = {normalize_marker(m.name) for t, spec in panel.tubes.items() if t != tube for m in spec.markers}
    missing = {d for d in template.dims() if normalize_marker(d) not in here and normalize_marker(d) in elsewhere}
    template, dropped = template.without_dims(missing)
    optional_dims = {d for node in template.nodes.values() if node.optional for d in node.dims}
    absent = {d for d in optional_dims if not has_dimension(d, markers, channels, panel.dimensions)}
    before = template
    template, passed = template.passing_through(absent)
    if warnings is not None:
        for name in passed:
            node = before.nodes[name]
            lacking = " / ".join(d for d in node.dims if d in absent)
            warnings.append(f"step_skipped: population {name!r} keeps every event of {node.parent!r}: the file "
                            f"has no {lacking} channel")
    return template, dropped


def spillover_errors(panel: Panel) -> str:
    """``read_fcs(spillover_errors=...)`` for this panel: a malformed or mismatched spillover keyword is an error when
    the panel compensates with the file's own matrix, and is ignored (the reader notes it) when the panel gives a
    CSV matrix or none — e.g. a FlowJo export whose channels are already compensated."""
    return "raise" if panel.compensation.source == "file" else "warn"


def _spillover(panel: Panel, fcs: Any, channels, warnings: list[str]):
    from mrdflow.scaling import inverse_spillover

    src = panel.source or "<panel>"
    file = getattr(fcs, "path", "<file>")
    comp = panel.compensation
    if comp.source == "none":
        return None
    if comp.source == "csv":
        from mrdflow.fcs import read_spillover_csv
        try:
            spill = read_spillover_csv(comp.csv, channels=[c.name for c in channels])
        except MrdflowError as exc:
            raise PanelError(f"{src}: field 'compensation.csv': {exc}") from None
    else:
        spill = fcs.spillover
        if spill is None:
            warnings.append("spillover_missing")
            return None
    names = {c.name for c in channels}
    absent = [c for c in spill.channels if c not in names]
    if absent:
        raise PanelError(f"{src}: field 'compensation': spillover ({spill.source}) names channel(s) "
                         f"{', '.join(absent)} that file {file} lacks")
    spill = _unit_diagonal(spill, src, file, warnings)
    try:
        inverse_spillover(spill)
    except MrdflowError as exc:
        raise PanelError(f"{src}: field 'compensation': spillover of file {file} is not usable: {exc}") from None
    return spill


def _unit_diagonal(spill: Any, src: str, file: Any, warnings: list[str]) -> Any:
    """The spillover with each row divided by its diagonal entry, when that is not 1.

    A spillover coefficient is a fluorochrome's signal in a detector as a fraction of its signal in its own
    detector, so the diagonal is 1 by definition; some software writes percentages (diagonal 100). Compensating
    with such a matrix as it stands would divide every compensated value by 100 — wrong numbers, silently (DEMO01:
    418 aberrant plasma cells for 611). Dividing each row by its diagonal keeps the compensated values in each
    fluorochrome's own detector units, whatever the matrix's scale; a ``spillover_rescaled`` warning says so."""
    from dataclasses import replace

    matrix = np.asarray(spill.matrix, dtype=np.float64)
    diag = np.diag(matrix)
    if np.any(diag <= 0):
        j = int(np.argmax(diag <= 0))
        raise PanelError(f"{src}: field 'compensation': spillover ({spill.source}) of file {file} has "
                         f"{diag[j]:g} on its diagonal for {spill.channels[j]}; expected 1 (a fluorochrome's signal "
                         "in its own detector)")
    if np.all(np.abs(diag - 1.0) <= 1e-6):
        return spill
    shown = f"{diag[0]:g}" if np.allclose(diag, diag[0]) else f"{diag.min():g} to {diag.max():g}"
    warnings.append(f"spillover_rescaled: the spillover matrix ({spill.source}) has {shown} on its diagonal instead "
                    "of 1 (percentages?); each row was divided by its diagonal entry before compensating")
    return replace(spill, matrix=matrix / diag[:, None])


def prepare_tube(panel: Panel, tube: str, fcs: Any, template: Template, *, min_logicle_w: float | None = None,
                 floor_from: str | None = None) -> TubeSetup:
    """:func:`check_tube`, then compensate and transform ``fcs.events`` in place (one fused pass).

    Before the pass, the raw values give the saturated events (``at_top``) and, on a subsample, whether the
    compensated negative events need a wider logicle ``W`` than the panel's (:mod:`mrdflow.qc.logicle_width`):
    if so, every logicle channel gets the wider W (``setup.logicle_w``; a ``logicle_width_widened`` warning), or
    only a ``logicle_width_narrow`` warning with the panel's ``transforms.widen_logicle: false``.
    ``min_logicle_w``: widen to at least this W (another tube of the sample, ``floor_from``, was widened to it)."""
    from mrdflow.qc.adequacy import AdequacySettings
    from mrdflow.qc.logicle_width import logicle_width_needs, logicle_width_warning, widened_width
    from mrdflow.scaling import scale_events

    setup = check_tube(panel, tube, fcs, template)
    # the raw top of each marker's scale: saturated events are found before compensation moves them off it
    tops = np.full(len(fcs.channels), np.inf)
    for col in setup.markers.values():
        tops[col] = raw_top(fcs.channels[col])
    setup.at_top = require_finite(fcs, tops=tops)
    names = [c.name for c in fcs.channels]
    needs = logicle_width_needs(fcs.events, names, setup.spillover, setup.transforms)
    excess = AdequacySettings().max_logicle_width_excess
    labels = {names[col]: m for m, col in setup.markers.items()}
    if panel.transforms.widen_logicle:
        widest = min((t.M / 2 for t in setup.transforms.values() if t.kind == "logicle"), default=None)
        width = widened_width(needs, excess, floor=min_logicle_w, max_width=widest)
        if width is not None:
            _widen_logicle(setup, fcs.channels, width)
            setup.warnings.append(logicle_width_warning(needs, width, excess, labels, floor_from=floor_from))
    elif widened_width(needs, excess) is not None:
        setup.warnings.append(logicle_width_warning(needs, None, excess, labels))
    scale_events(fcs.events, names, setup.spillover, setup.transforms)
    return setup


def _widen_logicle(setup: TubeSetup, channels, width: float) -> None:
    """Every logicle transform of ``setup`` at linear width ``width`` (one the panel set wider keeps its own), and the
    dimension limits recomputed."""
    from dataclasses import replace

    for name, t in list(setup.transforms.items()):
        if t.kind == "logicle" and t.W < width:
            setup.transforms[name] = replace(t, W=float(width))
    for dim, col in setup.index.items():
        ch = channels[col]
        t = setup.transforms.get(ch.name)
        if t is not None and t.kind == "logicle":
            setup.upper_limits[dim] = float(t.apply(np.array([raw_top(ch)], dtype=np.float32))[0])
    setup.logicle_w = float(width)


def require_finite(fcs: Any, tops: np.ndarray | None = None) -> dict[int, np.ndarray]:
    """Raise :class:`~mrdflow.errors.FcsError` when the events hold NaN or ±inf (corrupt DATA): compensation
    would spread them to every channel and gates would silently drop the events.

    One pass over the events without temporaries (:func:`mrdflow.kernels.checks.count_nonfinite`); the first bad
    event is searched only in a column that has one. With ``tops`` (one value per column), the same pass counts
    the values at or above them; returns column → sorted rows of those values, for the columns that have any.
    """
    from mrdflow.errors import FcsError
    from mrdflow.kernels.checks import count_nonfinite

    events = fcs.events
    if events.size == 0:
        return {}
    at_top: dict[int, np.ndarray] = {}
    if tops is None:
        nonfinite = count_nonfinite(events)
    else:
        nonfinite, n_top = count_nonfinite(events, tops)
        limits = np.asarray(tops, dtype=np.float32)
        for j in np.flatnonzero(n_top):
            at_top[int(j)] = np.flatnonzero(events[:, j] >= limits[j])
    for j in np.flatnonzero(nonfinite):
        bad = np.flatnonzero(~np.isfinite(events[:, j]))
        if bad.size:
            ch = fcs.channels[j]
            name = f"{ch.name} ({ch.marker})" if getattr(ch, "marker", None) else ch.name
            raise FcsError(getattr(fcs, "path", "<file>"),
                           f"DATA holds {bad.size} non-finite value(s) (NaN or ±inf) in channel {name}, first at "
                           f"event {int(bad[0]) + 1}; expected finite numbers in every event (corrupt file?)")
    return at_top
