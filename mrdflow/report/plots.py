"""QC report figures (matplotlib, Agg, no pyplot state): PNG images as base64 strings for embedding.

Every function takes a :class:`~mrdflow.result.TubePlotData` (a subsample of one tube's scaled events with each
event's deepest population, the resolved gates and the time/flow-rate trace) and returns :class:`Image`\\ s.
Membership in a population is derived from the labels: an event belongs to population P when its deepest
population is P or a descendant of P (``TubePlotData.parents``). Axes are in transformed units (logicle etc.).
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.patches import Ellipse, Polygon, Rectangle

from mrdflow.panel import normalize_marker
from mrdflow.result import TubePlotData

__all__ = ["Image", "gating_plots", "phenotype_plots", "light_chain_plot", "time_plot", "KEY_MARKER_PAIRS",
           "Membership", "axis_label", "combined_populations"]

#: marker pairs on which the plasma-cell phenotype (normal vs aberrant) is shown — the EuroFlow NGF views
#: (Flores-Montero et al., Leukemia 2017); pairs whose markers a tube lacks are skipped. Display only.
KEY_MARKER_PAIRS: tuple[tuple[str, str], ...] = (
    ("CD38", "CD138"), ("CD45", "CD19"), ("CD56", "CD27"), ("CD81", "CD117"), ("CD27", "CD38"),
)
KAPPA, LAMBDA = "cyIgKappa", "cyIgLambda"

_FIGSIZE = (3.6, 3.3)
_DPI = 90
_BINS = 128
#: font sizes (points) — readable on screen and on paper at the figure's printed width (~9 cm)
_LABEL_PT, _TICK_PT, _TITLE_PT, _GATE_PT, _LEGEND_PT = 9, 7.5, 8.5, 8, 7
_GATE_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
NORMAL_COLOUR, ABERRANT_COLOUR, BACKGROUND_COLOUR = "#1a9850", "#d62728", "#c7c7c7"
_NNBSP = "\u202f"  # narrow no-break space: thousands separator that never wraps ("5 400", not "5 / 400")
_LABEL_BOX = {"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8}


@dataclass(frozen=True)
class Image:
    """One embedded figure: ``png`` is base64 PNG data; ``title`` and ``caption`` are plain text."""

    title: str
    caption: str
    png: str


#: the title's height (axes fraction) given explicitly: where matplotlib would put it anyway when no ticks, label or
#: offset text sit on top of the axes, but without the ~25 ms per figure it spends measuring the y tick labels to
#: check (a sixth of a report's rendering). Not for the time trace, whose rate axis may carry an offset text.
_TITLE_Y = 1.0


def _png(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    # a low zlib level: encoding is a large part of a small figure's cost, the files stay small (flat colours)
    fig.savefig(buf, format="png", dpi=_DPI, pil_kwargs={"compress_level": 2})
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure() -> tuple[Figure, Any]:
    # fixed margins: a layout engine would draw every figure twice
    fig = Figure(figsize=_FIGSIZE)
    fig.subplots_adjust(left=0.2, bottom=0.16, right=0.96, top=0.9)
    ax = fig.add_subplot()
    _ticks(ax)
    return fig, ax


def _ticks(ax) -> None:
    # few ticks: readable, and tick drawing is most of a small figure's rendering time
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.yaxis.set_major_locator(MaxNLocator(5))
    ax.tick_params(labelsize=_TICK_PT)


def axis_label(tube: TubePlotData, dim: str) -> str:
    """Axis title: the marker (or channel) name and the scale it is drawn on, e.g. ``CD138 (logicle)``."""
    col = _column(tube, dim)
    name = tube.columns[col] if col is not None else dim
    unit = (tube.axis_units or {}).get(name)
    return f"{name} ({unit})" if unit else name


class Membership:
    """Population membership of a tube's subsampled events.

    From the deepest-population labels by default: an event belongs to P when its label is P or a descendant of P.
    Labels are exact only for a strict tree — an event in two sibling populations (e.g. ``cd38_pos`` and
    ``plasma_cells``) carries one label. With ``evaluate_gates=True`` every population whose gate geometry is
    known (``tube.gates``) is re-evaluated on the plotted events within its parent (top-level populations within
    the events that are in any population, i.e. those kept by time QC), which reproduces the pipeline's masks on
    those events; populations without usable geometry (and the pipeline's ``normal_pc``/``aberrant_pc`` labels)
    keep the label rule.
    """

    def __init__(self, tube: TubePlotData, *, evaluate_gates: bool = False):
        self.tube = tube
        self.labels = np.asarray(tube.labels)
        names = list(tube.label_names)
        self._ancestors: list[set[str]] = []
        for name in names:
            seen, node = set(), name
            while node and node not in seen:
                seen.add(node)
                node = tube.parents.get(node, "")
            self._ancestors.append(seen)
        self._cache: dict[str, np.ndarray] = {}
        self.evaluated: set[str] = set()
        if evaluate_gates:
            self._evaluate_gates()

    def _evaluate_gates(self) -> None:
        from mrdflow.gating.gates import BooleanGate, gate_from_dict

        tube = self.tube
        events = np.ascontiguousarray(tube.events, dtype=np.float32)
        in_tree = self.labels != 0
        live: dict[str, np.ndarray] = {}
        for pop, spec in tube.gates.items():  # template order: parents and referenced populations first
            parent = tube.parents.get(pop, "")
            if parent in ("", "root"):
                parent_mask = in_tree
            elif parent in live:
                parent_mask = live[parent]
            else:
                continue
            try:
                gate = gate_from_dict(spec)
                index = {d: _column(tube, d) for d in gate.dims}
                if any(v is None for v in index.values()):
                    continue
                if isinstance(gate, BooleanGate):
                    m = gate.mask(events, index, parent_mask, resolved=live)
                else:
                    m = gate.mask(events, index, parent_mask)
            except Exception:  # noqa: BLE001 - geometry the gates module cannot rebuild: keep the label rule
                continue
            live[pop] = np.asarray(m, dtype=bool)
        self._cache.update(live)
        self.evaluated = set(live)

    def mask(self, population: str | None) -> np.ndarray:
        """Events in ``population`` (all events for None, ``""`` or ``root``)."""
        if not population or population == "root":
            return np.ones(self.labels.shape[0], dtype=bool)
        if population not in self._cache:
            ids = [i for i, anc in enumerate(self._ancestors) if population in anc]
            self._cache[population] = np.isin(self.labels, ids)
        return self._cache[population]

    def any_of(self, populations: Sequence[str]) -> np.ndarray:
        out = np.zeros(self.labels.shape[0], dtype=bool)
        for p in populations:
            out |= self.mask(p)
        return out


def _column(tube: TubePlotData, dim: str) -> int | None:
    key = normalize_marker(dim)
    for i, c in enumerate(tube.columns):
        if normalize_marker(c) == key:
            return i
    return None


def _limits(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(finite, [0.2, 99.8])
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.06 * (hi - lo)
    return float(lo - pad), float(hi + pad)


def _with_gate_bounds(lim: tuple[float, float], values: np.ndarray, gates: Sequence[Mapping[str, Any]],
                      dims: Sequence[str], axis: int) -> tuple[float, float]:
    """Widen axis limits to show the range/rectangle gate boundaries that lie within the data's full extent (a
    gate placed on a few bright events sits beyond the percentile limits and would otherwise be invisible)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return lim
    lo_data, hi_data = float(finite.min()), float(finite.max())
    bounds = []
    for g in gates:
        gdims = list(g.get("dims", dims))
        if g.get("type") in ("range", "rectangle") and dims[axis] in gdims:
            k = gdims.index(dims[axis])
            bounds += [v for v in (g["min"][k], g["max"][k]) if v is not None and lo_data <= float(v) <= hi_data]
    if not bounds:
        return lim
    lo, hi = min(lim[0], min(bounds)), max(lim[1], max(bounds))
    pad = 0.04 * (hi - lo)
    return (lo - pad if lo < lim[0] else lo), (hi + pad if hi > lim[1] else hi)


def _union(lim: tuple[float, float], values: np.ndarray) -> tuple[float, float]:
    """Widen axis limits so that ``values`` (e.g. the plasma cells, which may be the brightest events) show."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return lim
    lo, hi = float(values.min()), float(values.max())
    pad = 0.04 * (max(hi, lim[1]) - min(lo, lim[0]))
    return min(lim[0], lo - pad), max(lim[1], hi + pad)


def _density(ax, x: np.ndarray, y: np.ndarray, xlim, ylim) -> None:
    h, xe, ye = np.histogram2d(x, y, bins=_BINS, range=[xlim, ylim])
    h = np.ma.masked_equal(h.T, 0)
    if h.count():
        ax.pcolormesh(xe, ye, h, cmap="turbo", norm=LogNorm(vmin=1, vmax=max(float(h.max()), 2.0)),
                      rasterized=True)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)


def _bound(v, default: float) -> float:
    return default if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


def _draw_gate(ax, gate: Mapping[str, Any], dims: Sequence[str], label: str, colour: str,
               xlim, ylim, dashed: bool = False, slot: int = 0, anchor: tuple[float, float] | None = None) -> bool:
    """Draw a gate description on 1-D (histogram) or 2-D axes; False when its geometry cannot be drawn."""
    kind = gate.get("type", "")
    style = {"fill": False, "edgecolor": colour, "linewidth": 1.4, "linestyle": "--" if dashed else "-"}
    if kind == "boolean":
        ops = gate.get("operands", [])
        if gate.get("op") == "not" and len(ops) == 1 and isinstance(ops[0], Mapping):
            return _draw_gate(ax, ops[0], dims, f"not {label}", colour, xlim, ylim, dashed=True, slot=slot,
                              anchor=anchor)
        if gate.get("op") == "and" and ops and all(isinstance(o, Mapping) for o in ops) \
                and any(gate.get("complement", [])):
            drew = False
            for o, comp in zip(ops, gate.get("complement", [False] * len(ops))):
                drew |= _draw_gate(ax, o, dims, label, colour, xlim, ylim, dashed=bool(comp), slot=slot,
                                   anchor=anchor)
            return drew
        return False
    gdims = list(gate.get("dims", dims))
    if kind in ("range", "rectangle") and len(gdims) == 1:
        lo, hi = _bound(gate["min"][0], xlim[0]), _bound(gate["max"][0], xlim[1])
        ax.axvspan(lo, hi, color=colour, alpha=0.12)
        for v in (gate["min"][0], gate["max"][0]):
            if v is not None:
                ax.axvline(float(v), color=colour, linewidth=1.4, linestyle=style["linestyle"])
        x_mid = (min(max(lo, xlim[0]), xlim[1]) + max(min(hi, xlim[1]), xlim[0])) / 2
        w = xlim[1] - xlim[0]
        x_mid = min(max(x_mid, xlim[0] + 0.16 * w), xlim[1] - 0.16 * w)  # the whole label stays on the axes
        y0, y1 = ax.get_ylim()
        # siblings on one histogram: labels one under the other, never on top of each other
        ax.text(x_mid, y1 - (0.04 + 0.17 * slot) * (y1 - y0), label, color=colour, ha="center", va="top",
                fontsize=_GATE_PT, fontweight="bold", clip_on=True, bbox=_LABEL_BOX)
        return True
    if len(dims) != 2:
        return False
    if kind == "rectangle" and len(gdims) == 2:
        x0, x1 = _bound(gate["min"][0], xlim[0] - 1e3), _bound(gate["max"][0], xlim[1] + 1e3)
        y0, y1 = _bound(gate["min"][1], ylim[0] - 1e3), _bound(gate["max"][1], ylim[1] + 1e3)
        if gdims != list(dims):
            x0, x1, y0, y1 = y0, y1, x0, x1
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, **style))
        cx, cy = (max(x0, xlim[0]) + min(x1, xlim[1])) / 2, (max(y0, ylim[0]) + min(y1, ylim[1])) / 2
    elif kind == "polygon":
        v = np.asarray(gate["vertices"], dtype=float)
        if gdims != list(dims):
            v = v[:, ::-1]
        ax.add_patch(Polygon(v, closed=True, **style))
        cx, cy = v.mean(axis=0)
    elif kind == "ellipsoid" and len(gdims) == 2:
        mean = np.asarray(gate["mean"], dtype=float)
        cov = np.asarray(gate["covariance"], dtype=float)
        if gdims != list(dims):
            mean, cov = mean[::-1], cov[::-1, ::-1]
        vals, vecs = np.linalg.eigh(cov)
        vals = np.clip(vals, 0, None)
        d2 = float(gate["distance_square"])
        angle = math.degrees(math.atan2(vecs[1, 1], vecs[0, 1]))
        ax.add_patch(Ellipse(tuple(mean), 2 * math.sqrt(d2 * vals[1]), 2 * math.sqrt(d2 * vals[0]), angle=angle,
                             **style))
        cx, cy = mean
    elif kind == "quadrant":
        for d, values in gate.get("dividers", []):
            for v in values:
                if d == dims[0]:
                    ax.axvline(float(v), color=colour, linewidth=1.2, linestyle=style["linestyle"])
                elif d == dims[1]:
                    ax.axhline(float(v), color=colour, linewidth=1.2, linestyle=style["linestyle"])
        return True
    else:
        return False
    # the label sits on the population's own events when there are some (an open-ended gate's geometric centre
    # can be far off the axes), and always inside the visible area
    if anchor is not None:
        cx, cy = anchor
    w, h = xlim[1] - xlim[0], ylim[1] - ylim[0]
    cx = min(max(float(cx), xlim[0] + 0.16 * w), xlim[1] - 0.16 * w)
    cy = min(max(float(cy), ylim[0] + 0.08 * h), ylim[1] - 0.08 * h)
    cy = cy - 0.12 * slot * (ylim[1] - ylim[0]) if slot else cy
    ax.text(cx, cy, label, color=colour, fontsize=_GATE_PT, fontweight="bold", ha="center", va="center",
            bbox=_LABEL_BOX, clip_on=True)
    return True


def _count_text(pop: str, counts: Mapping[str, Any] | None, membership: Membership) -> str:
    """``503 (3.3 % of parent)`` from the full-data population table, else the plotted events."""
    c = (counts or {}).get(pop)
    if c is not None:
        pct = getattr(c, "pct_of_parent", math.nan)
        n = f"{int(c.count):,}".replace(",", _NNBSP)
        return f"{n} ({pct:.1f} %)" if isinstance(pct, (int, float)) and math.isfinite(pct) else n
    return f"{int(membership.mask(pop).sum()):,} plotted".replace(",", _NNBSP)


def gating_plots(tube: TubePlotData, membership: Membership | None = None, *,
                 counts: Mapping[str, Any] | None = None, max_plots: int = 40) -> list[Image]:
    """One density plot per gating step: the parent's events in the gate's dimensions, with every gate
    defined on that parent and those dimensions drawn and labelled (siblings share a plot).

    ``counts`` maps population → its row of the population table (``count``, ``pct_of_parent`` over all the
    tube's events); without it the labels give the plotted (subsampled) events. Gates on more than two
    dimensions and combinations of other populations (boolean) have no plot: see :func:`combined_populations`.
    """
    membership = membership or Membership(tube)
    steps: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for pop, gate in tube.gates.items():
        if gate.get("type") == "boolean" and any(isinstance(o, str) for o in gate.get("operands", [])):
            continue
        dims = tuple(tube.gate_dims.get(pop) or gate.get("dims") or ())
        if not dims or len(dims) > 2 or any(_column(tube, d) is None for d in dims):
            continue
        steps.setdefault((tube.parents.get(pop, ""), dims), []).append(pop)
    images = []
    for (parent, dims), pops in list(steps.items())[:max_plots]:
        try:
            images.append(_gating_step(tube, membership, parent, dims, pops, counts))
        except Exception as exc:  # noqa: BLE001 - one figure that cannot be drawn must not cost the report
            images.append(Image(f"{tube.tube}: {', '.join(pops)}", f"figure could not be drawn "
                                f"({type(exc).__name__}: {exc})", ""))
    return images


def _operand_text(o: Any) -> str:
    if isinstance(o, str):
        return o
    if isinstance(o, Mapping):
        return f"{o.get('type', 'gate')} gate on {' × '.join(o.get('dims', []))}"
    return str(o)


def combined_populations(tube: TubePlotData) -> list[tuple[str, str, str]]:
    """Populations defined from other populations (boolean gates), as ``(population, parent, rule)`` in words,
    e.g. ``("plasma_cells", "low_ssc", "cd138_pos and cd38_pos")``; and gates on more than two dimensions."""
    out = []
    for pop, gate in tube.gates.items():
        parent = tube.parents.get(pop, "") or "all events"
        if gate.get("type") == "boolean":
            ops = gate.get("operands", [])
            comp = list(gate.get("complement") or [False] * len(ops))
            words = list(dict.fromkeys(("not " if c else "") + _operand_text(o) for o, c in zip(ops, comp)))
            rule = f"not {words[0]}" if gate.get("op") == "not" and words else f" {gate.get('op')} ".join(words)
            if any(isinstance(o, str) for o in ops):
                out.append((pop, parent, rule))
        else:
            dims = tuple(tube.gate_dims.get(pop) or gate.get("dims") or ())
            if len(dims) > 2:
                out.append((pop, parent, f"{gate.get('type', 'gate')} gate on {len(dims)} dimensions "
                                         f"({', '.join(dims)})"))
    return out


def _gating_step(tube: TubePlotData, membership: Membership, parent: str, dims: tuple[str, ...],
                 pops: list[str], counts: Mapping[str, Any] | None = None) -> Image:
    m = membership.mask(parent)
    fig, ax = _figure()
    x = tube.events[m, _column(tube, dims[0])]
    xlim = _with_gate_bounds(_limits(x), x, [tube.gates[p] for p in pops], dims, 0)
    if len(dims) == 1:
        h, edges = np.histogram(x[np.isfinite(x)], bins=_BINS, range=xlim)
        ax.stairs(h, edges, fill=True, color="#555555")  # one cheap path (ax.hist builds a costly patch)
        ax.set_xlim(*xlim)
        ax.set_ylim(0, max(float(h.max()), 1.0) * 1.05)
        y0, y1 = ax.get_ylim()
        ax.set_ylim(y0, y1 * (1.1 + 0.17 * len(pops)))  # head room for the gate labels
        ylim = ax.get_ylim()
        ax.set_ylabel("events (plotted)", fontsize=_LABEL_PT)
    else:
        y = tube.events[m, _column(tube, dims[1])]
        ylim = _with_gate_bounds(_limits(y), y, [tube.gates[p] for p in pops], dims, 1)
        _density(ax, x, y, xlim, ylim)
        ax.set_ylabel(axis_label(tube, dims[1]), fontsize=_LABEL_PT)
    ax.set_xlabel(axis_label(tube, dims[0]), fontsize=_LABEL_PT)
    def anchor(pop: str) -> tuple[float, float] | None:
        if len(dims) != 2:
            return None
        inside = membership.mask(pop) & m
        if inside.sum() < 5:
            return None
        return (float(np.median(tube.events[inside, _column(tube, dims[0])])),
                float(np.median(tube.events[inside, _column(tube, dims[1])])))

    drawn = [p for i, p in enumerate(pops)
             if _draw_gate(ax, tube.gates[p], dims, f"{p}\n{_count_text(p, counts, membership)}",
                           _GATE_COLOURS[i % len(_GATE_COLOURS)], xlim, ylim, slot=i if len(dims) == 1 else 0,
                           anchor=anchor(p))]
    parent_name = parent or "all events"
    n_parent = (counts or {}).get(parent)
    parent_txt = f"{int(n_parent.count):,}".replace(",", _NNBSP) if n_parent is not None else \
        f"{int(m.sum()):,} plotted".replace(",", _NNBSP)
    ax.set_title(f"{parent_name} ({parent_txt}) → {', '.join(pops)}", fontsize=_TITLE_PT, y=_TITLE_Y)
    not_drawn = [p for p in pops if p not in drawn]
    caption = (f"Parent {parent_name}; gate{'s' if len(pops) > 1 else ''} "
               + "; ".join(f"{p}: {_count_text(p, counts, membership)}" for p in pops)
               + (" — events (% of parent)" if counts else ""))
    if not_drawn:
        caption += f" (not drawable here: {', '.join(not_drawn)})"
    return Image(f"{tube.tube}: {', '.join(pops)}", caption, _png(fig))


def _pc_groups(membership: Membership, roles: Mapping[str, Sequence[str]]) -> tuple[np.ndarray, np.ndarray,
                                                                                      np.ndarray]:
    normal = membership.any_of(roles.get("normal_pc", []))
    aberrant = membership.any_of(roles.get("aberrant_pc", []))
    background = membership.any_of(roles.get("evaluable", [])) if roles.get("evaluable") else \
        np.ones_like(normal)
    return background & ~normal & ~aberrant, normal & ~aberrant, aberrant


def _scatter_groups(ax, tube, cols, groups, labels, colours, sizes) -> None:
    for m, lab, colour, s in zip(groups, labels, colours, sizes):
        if m.any():
            ax.scatter(tube.events[m, cols[0]], tube.events[m, cols[1]], s=s, c=colour, lw=0,
                       label=f"{lab} ({int(m.sum()):,} plotted)".replace(",", _NNBSP), rasterized=True)


def _legend(ax, extra: Sequence[Any] = (), loc: str = "best") -> None:
    handles, labels = ax.get_legend_handles_labels()
    for h in extra:
        handles.append(h)
        labels.append(h.get_label())
    if handles:
        ax.legend(handles, labels, fontsize=_LEGEND_PT, loc=loc, markerscale=2.5, framealpha=0.85,
                  borderpad=0.3, handletextpad=0.2)


def phenotype_plots(tube: TubePlotData, roles: Mapping[str, Sequence[str]], membership: Membership | None = None,
                    pairs: Sequence[tuple[str, str]] = KEY_MARKER_PAIRS) -> list[Image]:
    """Plasma cells coloured normal (green) vs aberrant (red) over the other evaluable cells (grey density) on
    the key marker pairs."""
    if not roles.get("normal_pc") and not roles.get("aberrant_pc"):
        return []
    membership = membership or Membership(tube)
    background, normal, aberrant = _pc_groups(membership, roles)
    images = []
    for a, b in pairs:
        ca, cb = _column(tube, a), _column(tube, b)
        if ca is None or cb is None:
            continue
        fig, ax = _figure()
        pcs = normal | aberrant
        xlim = _union(_limits(tube.events[:, ca]), tube.events[pcs, ca])
        ylim = _union(_limits(tube.events[:, cb]), tube.events[pcs, cb])
        # the other cells as a grey density (fast, and the coloured plasma cells stay visible on top)
        h, xe, ye = np.histogram2d(tube.events[background, ca], tube.events[background, cb], bins=_BINS,
                                   range=[xlim, ylim])
        h = np.ma.masked_equal(h.T, 0)
        if h.count():
            ax.pcolormesh(xe, ye, h, cmap="Greys", norm=LogNorm(vmin=0.5, vmax=max(float(h.max()) * 4, 2.0)),
                          rasterized=True)
        # aberrant last: the rare clone is never hidden under the normal plasma cells
        _scatter_groups(ax, tube, (ca, cb), (normal, aberrant), ("normal PC", "aberrant PC"),
                        (NORMAL_COLOUR, ABERRANT_COLOUR), (5, 5))
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_xlabel(axis_label(tube, a), fontsize=_LABEL_PT)
        ax.set_ylabel(axis_label(tube, b), fontsize=_LABEL_PT)
        ax.set_title(f"Plasma cells: {a} vs {b}", fontsize=_TITLE_PT, y=_TITLE_Y)
        images.append(Image(f"{tube.tube}: plasma cells, {a} vs {b}",
                            f"Normal (green, {int(normal.sum())}) and aberrant (red, {int(aberrant.sum())}) plasma "
                            "cells among the plotted events, over the other evaluable cells (grey density)",
                            _png(fig)))
    return images


def light_chain_plot(tube: TubePlotData, roles: Mapping[str, Sequence[str]],
                     membership: Membership | None = None) -> Image | None:
    """Plasma cells on cyIgκ vs cyIgλ, normal vs aberrant coloured, with the κ/λ gate (tubes with both light
    chains only)."""
    ck, cl = _column(tube, KAPPA), _column(tube, LAMBDA)
    if ck is None or cl is None:
        return None
    membership = membership or Membership(tube)
    pcs = roles.get("plasma_cell") or [*roles.get("normal_pc", []), *roles.get("aberrant_pc", [])]
    if not pcs:
        return None
    _, normal, aberrant = _pc_groups(membership, roles)
    other_pc = membership.any_of(pcs) & ~normal & ~aberrant
    fig, ax = _figure()
    _scatter_groups(ax, tube, (ck, cl), (other_pc, normal, aberrant), ("plasma cells", "normal PC", "aberrant PC"),
                    ("#7f7f7f", NORMAL_COLOUR, ABERRANT_COLOUR), (6, 6, 6))
    sel = membership.any_of(pcs) | normal | aberrant
    xlim = _limits(tube.events[sel, ck] if sel.any() else tube.events[:, ck])
    ylim = _limits(tube.events[sel, cl] if sel.any() else tube.events[:, cl])
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    key = {normalize_marker(KAPPA), normalize_marker(LAMBDA)}
    for i, (pop, gate) in enumerate(tube.gates.items()):
        dims = list(tube.gate_dims.get(pop) or gate.get("dims") or ())
        if len(dims) == 2 and {normalize_marker(d) for d in dims} == key:
            _draw_gate(ax, gate, (KAPPA, LAMBDA) if normalize_marker(dims[0]) == normalize_marker(KAPPA)
                       else (LAMBDA, KAPPA), pop, "#444444", xlim, ylim, dashed=True)
    ax.set_xlabel(axis_label(tube, KAPPA), fontsize=_LABEL_PT)
    ax.set_ylabel(axis_label(tube, LAMBDA), fontsize=_LABEL_PT)
    ax.set_title("Plasma cells: cyIgκ vs cyIgλ", fontsize=_TITLE_PT, y=_TITLE_Y)
    _legend(ax)
    return Image(f"{tube.tube}: κ vs λ", "Cytoplasmic light chains of the plasma cells: a clonal population sits "
                 "on one side of the κ/λ gate (dashed); normal plasma cells split between both", _png(fig))


def _trace_array(trace: Mapping[str, Any], *names: str) -> np.ndarray | None:
    for n in names:
        if n in trace and trace[n] is not None:
            return np.asarray(trace[n], dtype=float)
    return None


def time_plot(tube: TubePlotData) -> Image | None:
    """Flow rate (events per time unit) per acquisition bin, excluded stretches shaded red."""
    from matplotlib.patches import Patch

    trace = tube.time_trace or {}
    start = _trace_array(trace, "bin_start", "bin_starts", "start", "time")
    rate = _trace_array(trace, "bin_rate", "rate", "rates", "flow_rate")
    if start is None or rate is None or start.size == 0 or start.size != rate.size:
        return None
    fig = Figure(figsize=(7.2, 2.4))
    fig.subplots_adjust(left=0.1, bottom=0.22, right=0.98, top=0.88)
    ax = fig.add_subplot()
    _ticks(ax)
    ax.step(start, rate, where="post", color="#1f77b4", linewidth=1, label="flow rate per bin")
    excluded = trace.get("excluded_ranges") or trace.get("excluded") or []
    for rng in excluded:
        ax.axvspan(float(rng[0]), float(rng[1]), color=ABERRANT_COLOUR, alpha=0.25, lw=0)
    lo, hi = float(np.nanmin(rate)), float(np.nanmax(rate))
    pad = max(0.1 * (hi - lo), 0.05 * abs(hi), 1.0)
    ax.set_ylim(max(0.0, lo - pad), hi + 3 * pad)  # room for the legend
    ax.set_xlabel("acquisition time (Time channel units)", fontsize=_LABEL_PT)
    ax.set_ylabel("events / time unit", fontsize=_LABEL_PT)
    frac = trace.get("fraction_removed")
    caption = f"{len(excluded)} excluded stretch(es)"
    if isinstance(frac, (int, float)) and math.isfinite(frac):
        caption += f", {100 * frac:.2f} % of events removed"
    ax.set_title(f"Flow rate over time — {caption}", fontsize=_TITLE_PT)
    handles = [ax.lines[0], Patch(color=ABERRANT_COLOUR, alpha=0.25, label="excluded by time QC")]
    ax.legend(handles=handles, fontsize=_LEGEND_PT, loc="upper right", ncol=2, framealpha=0.85)
    caption += ("; shaded stretches were removed before gating" if excluded
                else "; no stretch removed (stable acquisition)")
    return Image(f"{tube.tube}: flow rate over time", caption, _png(fig))
