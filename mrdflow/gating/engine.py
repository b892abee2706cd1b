"""The gating engine: a template's population tree evaluated on one tube's scaled events.

:func:`gate_events` walks the tree top-down (parents and referenced populations first). Fixed gates are built
from the template; adaptive ones are fitted on a seeded subsample of their parent's events (≤ ``max_events``
of the method) and turned into the fixed geometry they chose. Every gate is then evaluated by the numba
kernels of :mod:`mrdflow.gating.gates` on its parent's events only — the event matrix is never copied; a node's
membership is one bool mask, kept bit-packed (n/8 bytes) once its dependants are done.

Labels: every event gets one small integer, the id of the **deepest** population containing it (0 = root:
in no population). When populations of equal depth overlap (siblings, or a boolean population beside a gated
one) the one that comes **first in template order** wins. ``GatingResult.label_names[i]`` names label ``i``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from mrdflow.errors import GateError, TemplateError
from mrdflow.gating.adaptive import METHODS, AdaptiveGate, subsample_indices
from mrdflow.gating.gates import (BooleanGate, EllipsoidGate, Gate, PolygonGate, RangeGate, RectangleGate)
from mrdflow.gating.template import ROOT, Node, Template
from mrdflow.kernels.select import gather_rows_into, paint_packed, rows_at_ranks

__all__ = ["GatingResult", "gate_events", "build_gate", "boolean_gate", "gather_rows"]


def build_gate(geometry: Mapping[str, Any], dims: tuple[str, ...]) -> Gate:
    """A :mod:`mrdflow.gating.gates` object from a template/adaptive geometry description on ``dims``.

    Quadrants become the rectangle of the chosen quadrant (``+`` = at or above the divider); ``not_<type>``
    becomes a boolean ``not`` of that gate.
    """
    kind = geometry["type"]
    if kind.startswith("not_"):
        return BooleanGate("not", (build_gate({**geometry, "type": kind[4:]}, dims),))
    if kind == "range":
        return RangeGate.on(dims[0], geometry.get("min"), geometry.get("max"))
    if kind == "rectangle":
        return RectangleGate(tuple(dims), tuple(geometry["min"]), tuple(geometry["max"]))
    if kind == "polygon":
        return PolygonGate(tuple(dims), tuple(tuple(v) for v in geometry["vertices"]))
    if kind == "ellipse":
        return EllipsoidGate(tuple(dims), tuple(geometry["mean"]), tuple(tuple(r) for r in geometry["covariance"]),
                             geometry["distance_square"])
    if kind == "quadrant":
        lo, hi = [], []
        for div, sign in zip(geometry["dividers"], geometry["quadrant"]):
            lo.append(div if sign == "+" else None)
            hi.append(div if sign == "-" else None)
        return RectangleGate(tuple(dims), tuple(lo), tuple(hi))
    raise GateError(f"unknown gate geometry type {kind!r}")


def boolean_gate(tree: Any) -> BooleanGate:
    """A :class:`BooleanGate` over population names from a parsed template expression."""
    def operand(t):
        if t[0] == "ref":
            return t[1], False
        if t[0] == "not":
            inner, comp = operand(t[1])
            return inner, not comp
        return boolean_gate(t), False

    if tree[0] == "ref":
        return BooleanGate("and", (tree[1], tree[1]))
    if tree[0] == "not":
        inner, comp = operand(tree[1])
        return BooleanGate("and", (inner, inner), (not comp, not comp))
    ops = [operand(t) for t in tree[1]]
    return BooleanGate(tree[0], tuple(o for o, _ in ops), tuple(c for _, c in ops))


@dataclass
class GatingResult:
    """What gating one tube produced.

    Attributes
    ----------
    template : the template evaluated.
    n_events : events in the tube.
    labels : ndarray (n_events,), uint8 (uint16 beyond 255 populations) — deepest population of each event,
        0 = root only; see the module docstring for overlaps. Painted from the packed masks on first access
        (an analysis that never reads it does not hold the n-byte array).
    label_names : population name of each label value (``label_names[0] == "root"``).
    counts : events in each population.
    gates : the fixed gate (mrdflow.gating.gates) each population was evaluated with — for adaptive nodes,
        the geometry they chose on this sample.
    fitted : the fitted adaptive estimators by population (their ``*_`` attributes tell what they chose).
    warnings : adaptive populations left empty because their parent had fewer than ``MIN_FIT_EVENTS`` events.
    """

    template: Template
    n_events: int
    label_names: tuple[str, ...]
    counts: dict[str, int]
    gates: dict[str, Gate]
    fitted: dict[str, AdaptiveGate] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    _packed: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    #: (packed rows, label of each row painted, rows in paint order, label dtype) for :attr:`labels`
    _paint: tuple | None = field(default=None, repr=False)
    _labels: np.ndarray | None = field(default=None, repr=False)

    @property
    def labels(self) -> np.ndarray:
        """Deepest population of each event (see the class docstring)."""
        if self._labels is None:
            rows, ids, order, dtype = self._paint
            labels = np.zeros(self.n_events, dtype=dtype)
            if order.size and self.n_events:
                # straight from the packed masks, in paint order (a later population overwrites an earlier one)
                paint_packed(rows, ids, labels, order=order)
            self._labels = labels
        return self._labels

    def mask(self, name: str) -> np.ndarray:
        """Bool membership of population ``name`` (all True for ``root``)."""
        if name == ROOT:
            return np.ones(self.n_events, dtype=bool)
        if name not in self._packed:
            raise KeyError(f"no population {name!r}; populations: {', '.join(self.counts)}")
        return np.unpackbits(self._packed[name], count=self.n_events).view(bool)

    def parent_count(self, name: str) -> int:
        parent = self.template.nodes[name].parent
        return self.n_events if parent == ROOT else self.counts[parent]

    def geometry(self) -> dict[str, dict]:
        """Plain description (``to_dict()``) of every population's resolved gate."""
        return {name: g.to_dict() for name, g in self.gates.items()}

    def rows(self) -> list[dict[str, Any]]:
        """One row per population (template order): population, parent, depth, count, pct_of_parent,
        pct_of_total and pct_of_evaluable (NaN unless exactly one population has the ``evaluable`` role)."""
        evaluable = self.template.by_role("evaluable")
        n_eval = self.counts[evaluable[0]] if len(evaluable) == 1 else 0
        out = []
        for name, node in self.template.nodes.items():
            c, pc = self.counts[name], self.parent_count(name)
            out.append({"population": name, "parent": node.parent, "depth": node.depth, "count": c,
                        "pct_of_parent": 100.0 * c / pc if pc else float("nan"),
                        "pct_of_total": 100.0 * c / self.n_events if self.n_events else float("nan"),
                        "pct_of_evaluable": 100.0 * c / n_eval if n_eval else float("nan")})
        return out


def gate_events(events: np.ndarray, index: Mapping[str, int], template: Template, *,
                upper_limits: Mapping[str, float] | None = None,
                root_mask: np.ndarray | None = None) -> GatingResult:
    """Evaluate ``template`` on one tube's compensated, transformed events.

    Parameters
    ----------
    events : ndarray (n_events, n_channels), float32, C-contiguous — scaled events (not modified).
    index : template dimension name → column of ``events`` (see :func:`mrdflow.panel_files.resolve_dims`).
    template : the validated template.
    upper_limits : dimension → top of its scale in transformed units (the transformed $PnR − 1), used by
        ``margin`` gates whose ``upper`` is not given.
    root_mask : optional bool mask (n_events,) of the events the tree starts from (e.g. the events kept by
        time/flow-rate QC): top-level populations are evaluated, and fitted, on these events only. Events
        outside it belong to no population (label 0).

    Raises
    ------
    TemplateError
        A dimension is missing from ``index`` or an adaptive gate cannot be fitted on this sample (naming the
        population and why).
    """
    events = np.asarray(events)
    if events.ndim != 2:
        raise GateError(f"events must be a 2-D (events × channels) array, found shape {events.shape}")
    n = events.shape[0]
    if root_mask is not None:
        root_mask = np.asarray(root_mask)
        if root_mask.dtype != np.bool_ or root_mask.shape != (n,):
            raise GateError(f"root_mask must be a bool array of shape ({n},), found {root_mask.dtype} "
                            f"{root_mask.shape}")
    src = template.source or "<template>"
    missing = [d for d in template.dims() if d not in index]
    if missing:
        raise TemplateError(f"{src}: dimension(s) {', '.join(missing)} have no column "
                            f"(resolved dimensions: {', '.join(index)})")
    names = list(template.nodes)
    # the deepest population wins; at equal depth the earlier one in template order (written last)
    paint = sorted(range(len(names)), key=lambda i: (template.nodes[names[i]].depth, -i))
    last_use: dict[str, int] = {}
    for i, node in enumerate(template.nodes.values()):
        for dep in ([node.parent] if node.parent != ROOT else []) + node.references():
            last_use[dep] = i

    packed: dict[str, np.ndarray] = {}
    # every population's packed mask is a row of one buffer (painted from in place, no stacking)
    rows = np.zeros((len(names), (n + 7) // 8), dtype=np.uint8)
    live = _MaskStore(n, packed, rows, {name: j for j, name in enumerate(names)})
    warnings: list[str] = []
    counts: dict[str, int] = {}
    gates: dict[str, Gate] = {}
    fitted: dict[str, AdaptiveGate] = {}
    col_index = {d: int(index[d]) for d in template.dims()}
    # subsample rows by (population, its size, max_events, seed): sibling gates fitted on the same parent with
    # the same seed (e.g. every marker gate under low_ssc) draw the same rows, so they are drawn once
    draws: dict[tuple, np.ndarray] = {}

    root_packed = None if root_mask is None else np.packbits(root_mask)
    n_root = n if root_mask is None else int(np.count_nonzero(root_mask))
    for i, (name, node) in enumerate(template.nodes.items()):
        if node.kind == "boolean":
            # boolean populations straight from the bit-packed masks of their operands (n/8 bytes each)
            gate = boolean_gate(node.boolean)
            bits = _packed_boolean(gate, packed, root_packed if node.parent == ROOT else packed.get(node.parent), n)
            if bits is not None:
                gates[name] = gate
                counts[name] = int(np.bitwise_count(bits).sum())
                live.put_packed(name, bits)
                for dep in [d for d in live.unpacked() if last_use.get(d, -1) <= i]:
                    live.release(dep)
                continue
        parent = root_mask if node.parent == ROOT else live[node.parent]
        if node.kind == "gate":
            gate = build_gate(node.gate, node.dims)
        elif node.kind == "method":
            n_parent = n_root if node.parent == ROOT else counts[node.parent]
            if n_parent < MIN_FIT_EVENTS and node.method != "margin":
                # nothing to place a gate on (e.g. no CD117+ cells in blood): the population is empty
                gate = _empty_gate(node.dims)
                warnings.append(f"population {name!r}: parent {node.parent!r} has {n_parent} event(s), fewer than "
                                f"{MIN_FIT_EVENTS} needed to place the {node.method} gate; population left empty")
            else:
                est, gate = _fit_adaptive(node, events, col_index, parent, live, upper_limits, src, draws,
                                          counts, n_parent)
                fitted[name] = est
        else:
            gate = boolean_gate(node.boolean)
        gates[name] = gate
        m = gate.mask(events, col_index, parent, resolved=live) if node.kind == "boolean" \
            else gate.mask(events, col_index, parent)
        counts[name] = int(np.count_nonzero(m))
        live.put(name, m, needed=last_use.get(name, -1) > i)
        # masks nobody needs any more are kept packed only
        for dep in [d for d in live.unpacked() if last_use.get(d, -1) <= i and d != name]:
            live.release(dep)

    dtype = np.uint8 if len(names) < 255 else np.uint16
    painted = [i for i in paint if counts[names[i]]]
    return GatingResult(template=template, n_events=n, label_names=(ROOT, *names), counts=counts, gates=gates,
                        fitted=fitted, warnings=warnings, _packed=packed,
                        _paint=(rows, np.array([i + 1 for i in painted], dtype=dtype),
                                np.array(painted, dtype=np.int64), dtype))


def _packed_boolean(gate: BooleanGate, packed: Mapping[str, np.ndarray], parent: np.ndarray | None,
                    n: int) -> np.ndarray | None:
    """:meth:`BooleanGate.mask` on ``np.packbits`` masks: the same operations on 8 flags per byte, the result
    packed; ``parent`` packed or None (all events). None when an operand is not a population name or a
    boolean of names (the caller then evaluates the gate itself, which also reports a missing operand)."""
    masks = []
    for operand in gate.operands:
        if isinstance(operand, str):
            if operand not in packed:
                return None
            m = packed[operand]
        elif isinstance(operand, BooleanGate):
            m = _packed_boolean(operand, packed, parent, n)
            if m is None:
                return None
        else:
            return None
        masks.append(m)
    result = gate.combine(masks)
    if parent is not None:
        result &= parent
    if n % 8 and result.size:  # complements set the padding bits after the last event: clear them
        result[-1] &= np.uint8((0xFF << (8 - n % 8)) & 0xFF)
    return result


#: fewest parent events an adaptive gate is fitted on; below, the population is left empty (with a warning)
MIN_FIT_EVENTS = 10


def _empty_gate(dims: tuple[str, ...]) -> Gate:
    """A gate no event satisfies (the range [+inf, +inf) on the first dimension: finite values never reach it)."""
    return RangeGate.on(dims[0], float(np.finfo(np.float32).max), None)


def _fit_adaptive(node: Node, events: np.ndarray, index: Mapping[str, int], parent: np.ndarray | None,
                  live: Mapping[str, np.ndarray], upper_limits, src,
                  draws: dict[tuple, np.ndarray], counts: Mapping[str, int],
                  n_rows: int) -> tuple[AdaptiveGate, Gate]:
    """Fit ``node``'s method on a subsample of its parent's ``n_rows`` events (``counts``: population sizes so
    far, so no mask is counted again; ``draws``: subsamples shared by populations fitted on the same parent)."""
    est = METHODS[node.method](**node.args)
    cols = [index[d] for d in node.dims]
    # the subsample's rows straight from the mask (no index array of the whole parent)

    def rows_of(population: str, mask: np.ndarray | None, n: int) -> np.ndarray:
        key = (population, n, est.max_events, est.seed)
        if key not in draws:
            draws[key] = _subsample_rows(mask, n, est.max_events, est.seed)
        return draws[key]

    sub = rows_of(node.parent, parent, n_rows)
    # C order whatever the event matrix's layout (a fit's arithmetic must not depend on it)
    X = gather_rows(events, sub, cols)
    try:
        if node.method == "margin":
            ul = [None if upper_limits is None else upper_limits.get(d) for d in node.dims]
            est.fit(X, channel_upper=ul)
        elif node.method == "reference_distance" and node.args.get("reference"):
            ref = live[node.args["reference"]]
            ref_sub = rows_of(node.args["reference"], ref, counts[node.args["reference"]])
            est.fit(X, reference=gather_rows(events, ref_sub, cols))
        else:
            est.fit(X)
        gate = build_gate(est.geometry_, node.dims)
    except (ValueError, GateError, np.linalg.LinAlgError) as exc:
        raise TemplateError(f"{src}: population {node.name!r}, method {node.method}: cannot place the gate on "
                            f"this sample ({exc}; the parent {node.parent!r} has {n_rows} events)") from None
    return est, gate


def gather_rows(events: np.ndarray, rows: np.ndarray, cols: list[int]) -> np.ndarray:
    """``events[np.ix_(rows, cols)]`` as a C-ordered array (a fit's arithmetic must not depend on the event
    matrix's layout), by a parallel numba gather (:func:`mrdflow.kernels.select.gather_rows_into`; ~2.4× numpy's
    ``take`` on two cores for a 200 k-row subsample of a 5 M-event column)."""
    rows = np.asarray(rows, dtype=np.int64)
    out = np.empty((rows.size, len(cols)), dtype=events.dtype)
    if rows.size and len(cols):
        if rows.ndim != 1 or rows.min() < 0 or rows.max() >= events.shape[0]:
            raise IndexError(f"gather_rows: rows must be a 1-D array within [0, {events.shape[0]})")
        gather_rows_into(events, rows, np.asarray(cols, dtype=np.int64), out)
    return out


def _subsample_rows(mask: np.ndarray | None, n_rows: int, max_events: int, seed: int) -> np.ndarray:
    """``np.flatnonzero(mask)[subsample_indices(n_rows, max_events, seed)]`` (all rows for ``mask=None``),
    without the index array of every True row."""
    ranks = subsample_indices(n_rows, max_events, seed)
    return ranks if mask is None else rows_at_ranks(mask, ranks)


class _MaskStore:
    """Population masks during gating: every mask kept bit-packed (n/8 bytes, into ``packed``), and at most
    :attr:`KEEP` of those still needed also as bool arrays (a parent and the node just evaluated; the least
    recently used is dropped and unpacked again on demand, ~1 ms per 5 M events), so a tree of many
    populations holds a few n-byte masks at a time."""

    KEEP = 2

    def __init__(self, n: int, packed: dict[str, np.ndarray], rows: np.ndarray, slot: Mapping[str, int]):
        self.n = n
        self.packed = packed
        self.rows = rows  # (populations, ceil(n / 8)) uint8: row slot[name] holds that population's packed mask
        self.slot = slot
        self._bool: dict[str, np.ndarray] = {}  # insertion order = recency

    def put(self, name: str, mask: np.ndarray, needed: bool) -> None:
        row = self.rows[self.slot[name]]
        row[:] = np.packbits(mask)
        self.packed[name] = row
        if needed:
            self._bool[name] = mask
            while len(self._bool) > self.KEEP:
                self._bool.pop(next(iter(self._bool)))

    def put_packed(self, name: str, bits: np.ndarray) -> None:
        """Store a mask that is already packed (unpacked on demand by ``[]``)."""
        row = self.rows[self.slot[name]]
        row[:] = bits
        self.packed[name] = row

    def unpacked(self) -> list[str]:
        return list(self._bool)

    def release(self, name: str) -> None:
        self._bool.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self.packed

    def __getitem__(self, name: str) -> np.ndarray:
        m = self._bool.pop(name, None)
        if m is None:
            if name not in self.packed:
                raise KeyError(name)
            m = np.unpackbits(self.packed[name], count=self.n).view(bool)
        self._bool[name] = m  # most recently used
        while len(self._bool) > self.KEEP:
            self._bool.pop(next(iter(self._bool)))
        return m
