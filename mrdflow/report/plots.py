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
from matplotlib.patches import Ellipse, Polygon, Rectangle

from mrdflow.panel import normalize_marker
from mrdflow.result import TubePlotData

__all__ = ["Image", "gating_plots", "phenotype_plots", "light_chain_plot", "time_plot", "KEY_MARKER_PAIRS",
           "Membership"]

#: marker pairs on which the plasma-cell phenotype (normal vs aberrant) is shown — the EuroFlow NGF views
#: (Flores-Montero et al., Leukemia 2017); pairs whose markers a tube lacks are skipped. Display only.
KEY_MARKER_PAIRS: tuple[tuple[str, str], ...] = (
    ("CD38", "CD138"), ("CD45", "CD19"), ("CD56", "CD27"), ("CD81", "CD117"), ("CD27", "CD38"),
)
KAPPA, LAMBDA = "cyIgKappa", "cyIgLambda"

_FIGSIZE = (3.4, 3.0)
_DPI = 80
_BINS = 128
_GATE_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")
NORMAL_COLOUR, ABERRANT_COLOUR, BACKGROUND_COLOUR = "#2ca02c", "#d62728", "#c7c7c7"


@dataclass(frozen=True)
class Image:
    """One embedded figure: ``png`` is base64 PNG data; ``title`` and ``caption`` are plain text."""

    title: str
    caption: str
    png: str


def _png(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _figure() -> tuple[Figure, Any]:
    # fixed margins: a layout engine would draw every figure twice
    fig = Figure(figsize=_FIGSIZE)
    fig.subplots_adjust(left=0.2, bottom=0.16, right=0.96, top=0.9)
    return fig, fig.add_subplot()


class Membership:
    """Population membership of a tube's subsampled events, from the deepest-population labels."""

    def __init__(self, tube: TubePlotData):
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
               xlim, ylim, dashed: bool = False) -> bool:
    """Draw a gate description on 1-D (histogram) or 2-D axes; False when its geometry cannot be drawn."""
    kind = gate.get("type", "")
    style = {"fill": False, "edgecolor": colour, "linewidth": 1.4, "linestyle": "--" if dashed else "-"}
    if kind == "boolean":
        ops = gate.get("operands", [])
        if gate.get("op") == "not" and len(ops) == 1 and isinstance(ops[0], Mapping):
            return _draw_gate(ax, ops[0], dims, f"not {label}", colour, xlim, ylim, dashed=True)
        if gate.get("op") == "and" and ops and all(isinstance(o, Mapping) for o in ops) \
                and any(gate.get("complement", [])):
            drew = False
            for o, comp in zip(ops, gate.get("complement", [False] * len(ops))):
                drew |= _draw_gate(ax, o, dims, label, colour, xlim, ylim, dashed=bool(comp))
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
        ax.text(x_mid, ax.get_ylim()[1] * 0.92, label, color=colour, ha="center", va="top", fontsize=7,
                clip_on=True)
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
    # the label goes inside the visible area even when the gate reaches far beyond it (open-ended gates)
    cx = min(max(float(cx), xlim[0]), xlim[1])
    cy = min(max(float(cy), ylim[0]), ylim[1])
    ax.text(cx, cy, label, color=colour, fontsize=7, ha="center", va="center",
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7}, clip_on=True)
    return True


def gating_plots(tube: TubePlotData, membership: Membership | None = None, *, max_plots: int = 40) -> list[Image]:
    """One density plot per gating step: the parent's events in the gate's dimensions, with every gate
    defined on that parent and those dimensions drawn (siblings share a plot)."""
    membership = membership or Membership(tube)
    steps: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for pop, gate in tube.gates.items():
        dims = tuple(tube.gate_dims.get(pop) or gate.get("dims") or ())
        if not dims or len(dims) > 2 or any(_column(tube, d) is None for d in dims):
            continue
        steps.setdefault((tube.parents.get(pop, ""), dims), []).append(pop)
    images = []
    for (parent, dims), pops in list(steps.items())[:max_plots]:
        try:
            images.append(_gating_step(tube, membership, parent, dims, pops))
        except Exception as exc:  # noqa: BLE001 - one figure that cannot be drawn must not cost the report
            images.append(Image(f"{tube.tube}: {', '.join(pops)}", f"figure could not be drawn "
                                f"({type(exc).__name__}: {exc})", ""))
    return images


def _gating_step(tube: TubePlotData, membership: Membership, parent: str, dims: tuple[str, ...],
                 pops: list[str]) -> Image:
    m = membership.mask(parent)
    fig, ax = _figure()
    x = tube.events[m, _column(tube, dims[0])]
    xlim = _limits(x)
    if len(dims) == 1:
        ax.hist(x[np.isfinite(x)], bins=_BINS, range=xlim, color="#555555", histtype="stepfilled")
        ax.set_xlim(*xlim)
        ylim = ax.get_ylim()
        ax.set_ylabel("events")
    else:
        y = tube.events[m, _column(tube, dims[1])]
        ylim = _limits(y)
        _density(ax, x, y, xlim, ylim)
        ax.set_ylabel(dims[1])
    ax.set_xlabel(dims[0])
    drawn = [p for i, p in enumerate(pops)
             if _draw_gate(ax, tube.gates[p], dims, p, _GATE_COLOURS[i % len(_GATE_COLOURS)], xlim, ylim)]
    parent_name = parent or "all events"
    ax.set_title(f"{parent_name} ({int(m.sum())})", fontsize=8)
    counts = ", ".join(f"{p}: {int(membership.mask(p).sum())}" for p in pops)
    not_drawn = [p for p in pops if p not in drawn]
    caption = f"Gate(s) on {parent_name}, {' vs '.join(dims)}; plotted events per population: {counts}"
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
                       label=f"{lab} ({m.sum()})", rasterized=True)


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
        xlim, ylim = _limits(tube.events[:, ca]), _limits(tube.events[:, cb])
        # the other cells as a grey density (fast, and the coloured plasma cells stay visible on top)
        h, xe, ye = np.histogram2d(tube.events[background, ca], tube.events[background, cb], bins=_BINS,
                                   range=[xlim, ylim])
        h = np.ma.masked_equal(h.T, 0)
        if h.count():
            ax.pcolormesh(xe, ye, h, cmap="Greys", norm=LogNorm(vmin=0.5, vmax=max(float(h.max()) * 4, 2.0)),
                          rasterized=True)
        _scatter_groups(ax, tube, (ca, cb), (normal, aberrant), ("normal PC", "aberrant PC"),
                        (NORMAL_COLOUR, ABERRANT_COLOUR), (4, 4))
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_xlabel(a)
        ax.set_ylabel(b)
        ax.legend(fontsize=6, loc="upper left", markerscale=3, framealpha=0.7)
        images.append(Image(f"{tube.tube}: plasma cells, {a} vs {b}",
                            f"Normal ({int(normal.sum())}) and aberrant ({int(aberrant.sum())}) plasma cells among "
                            "the plotted events", _png(fig)))
    return images


def light_chain_plot(tube: TubePlotData, roles: Mapping[str, Sequence[str]],
                     membership: Membership | None = None) -> Image | None:
    """Plasma cells on cyIgκ vs cyIgλ, normal vs aberrant coloured (tubes with both light chains only)."""
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
                    ("#7f7f7f", NORMAL_COLOUR, ABERRANT_COLOUR), (5, 5, 5))
    sel = membership.any_of(pcs) | normal | aberrant
    ax.set_xlim(*_limits(tube.events[sel, ck] if sel.any() else tube.events[:, ck]))
    ax.set_ylim(*_limits(tube.events[sel, cl] if sel.any() else tube.events[:, cl]))
    ax.set_xlabel(KAPPA)
    ax.set_ylabel(LAMBDA)
    ax.legend(fontsize=6, loc="upper left", markerscale=2, framealpha=0.7)
    return Image(f"{tube.tube}: κ vs λ", "Cytoplasmic light chains of the plasma cells (a clonal population sits "
                 "on one axis)", _png(fig))


def _trace_array(trace: Mapping[str, Any], *names: str) -> np.ndarray | None:
    for n in names:
        if n in trace and trace[n] is not None:
            return np.asarray(trace[n], dtype=float)
    return None


def time_plot(tube: TubePlotData) -> Image | None:
    """Flow rate (events per time unit) per acquisition bin, excluded stretches shaded red."""
    trace = tube.time_trace or {}
    start = _trace_array(trace, "bin_start", "bin_starts", "start", "time")
    rate = _trace_array(trace, "bin_rate", "rate", "rates", "flow_rate")
    if start is None or rate is None or start.size == 0 or start.size != rate.size:
        return None
    fig = Figure(figsize=(7.0, 2.4))
    fig.subplots_adjust(left=0.1, bottom=0.2, right=0.98, top=0.95)
    ax = fig.add_subplot()
    ax.step(start, rate, where="post", color="#1f77b4", linewidth=1)
    excluded = trace.get("excluded_ranges") or trace.get("excluded") or []
    total = 0.0
    for rng in excluded:
        a, b = float(rng[0]), float(rng[1])
        ax.axvspan(a, b, color=ABERRANT_COLOUR, alpha=0.25, lw=0)
        total += b - a
    ax.set_xlabel("Time")
    ax.set_ylabel("events / time unit")
    frac = trace.get("fraction_removed")
    caption = f"{len(excluded)} excluded stretch(es)"
    if isinstance(frac, (int, float)) and math.isfinite(frac):
        caption += f", {100 * frac:.2f} % of events removed"
    return Image(f"{tube.tube}: flow rate over time", caption, _png(fig))
