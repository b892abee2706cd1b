"""Gate geometry: range/rectangle, polygon, ellipsoid, quadrant and boolean gates.

A gate is an immutable description of a region over named *dimensions* (markers or channels, in the
scaled space the gate was drawn in). ``mask(events, index, parent)`` evaluates it on an event matrix
whose columns are found through ``index`` (dimension name -> column): only the gate's own columns are
read, only events inside ``parent`` are tested, and the result is a new bool array (False outside the
parent). ``to_dict()`` / :func:`gate_from_dict` give a plain description (for templates, JSON, GatingML).

Boundary conventions (GatingML 2.0): rectangle ``min <= x < max`` (None = open side); polygon by the
even-odd crossing rule (self-intersecting polygons: doubly covered areas are outside); ellipsoid
``(x - mean)ᵀ inv(cov) (x - mean) <= distance_square``; a quadrant is the half-open box between the
divider values around each of its locations.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from mrdflow.errors import GateError
from mrdflow.kernels import gates as _kg

__all__ = [
    "Gate",
    "RectangleGate",
    "RangeGate",
    "PolygonGate",
    "EllipsoidGate",
    "QuadrantGate",
    "BooleanGate",
    "gate_from_dict",
]

_NO_PARENT = np.zeros(0, dtype=np.bool_)


def _columns(gate: "Gate", events: np.ndarray, index: Mapping[str, int]) -> np.ndarray:
    if not isinstance(events, np.ndarray) or events.ndim != 2:
        raise GateError(f"{gate.describe()}: events must be a 2-D array (n_events, n_columns)")
    missing = [d for d in gate.dims if d not in index]
    if missing:
        raise GateError(f"{gate.describe()}: dimension(s) {missing} not found; available: {sorted(index)}")
    cols = np.array([index[d] for d in gate.dims], dtype=np.int64)
    bad = [(d, int(c)) for d, c in zip(gate.dims, cols) if not 0 <= c < events.shape[1]]
    if bad:
        raise GateError(f"{gate.describe()}: column index out of range for {bad} ({events.shape[1]} columns)")
    return cols


def _parent(gate: "Gate", events: np.ndarray, parent: np.ndarray | None) -> np.ndarray:
    if parent is None:
        return _NO_PARENT
    parent = np.asarray(parent)
    if parent.dtype != np.bool_ or parent.shape != (events.shape[0],):
        raise GateError(
            f"{gate.describe()}: parent mask must be bool of shape ({events.shape[0]},), "
            f"found {parent.dtype} {parent.shape}"
        )
    return parent


def _events_array(events: np.ndarray) -> np.ndarray:
    if events.dtype not in (np.float32, np.float64):
        raise GateError(f"events must be float32 (or float64), found {events.dtype}")
    return events


def _floats(values: Sequence[Any], what: str, name: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise GateError(f"{name}: {what} must be numbers, found {values!r}") from None
    if not all(math.isfinite(v) for v in out):
        raise GateError(f"{name}: {what} must be finite, found {values!r}")
    return out


@dataclass(frozen=True)
class Gate:
    """Base of the gate geometries; every gate has ``dims`` (a field or a property) and the methods below."""

    def describe(self) -> str:
        return f"{type(self).__name__}{tuple(self.dims)}"

    def mask(
        self,
        events: np.ndarray,
        index: Mapping[str, int],
        parent: np.ndarray | None = None,
        resolved: Mapping[str, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Bool membership of each event (False outside ``parent``); ``resolved`` is for boolean gates."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class RectangleGate(Gate):
    """n-D box ``lo[j] <= x_j < hi[j]``; ``None`` for an open side (at least one bound per dimension)."""

    dims: tuple[str, ...]
    lo: tuple[float | None, ...]
    hi: tuple[float | None, ...]

    def __post_init__(self) -> None:
        name = type(self).__name__
        object.__setattr__(self, "dims", tuple(str(d) for d in self.dims))
        if not self.dims:
            raise GateError(f"{name}: needs at least one dimension")
        if len(self.lo) != len(self.dims) or len(self.hi) != len(self.dims):
            raise GateError(
                f"{name}{self.dims}: need one min and one max per dimension, found {len(self.lo)} mins "
                f"and {len(self.hi)} maxes"
            )
        lo = tuple(None if v is None else _floats([v], "bounds", name)[0] for v in self.lo)
        hi = tuple(None if v is None else _floats([v], "bounds", name)[0] for v in self.hi)
        for d, a, b in zip(self.dims, lo, hi):
            if a is None and b is None:
                raise GateError(f"{name}: dimension {d!r} has neither min nor max")
            if a is not None and b is not None and not a < b:
                raise GateError(f"{name}: dimension {d!r} needs min < max, found min={a}, max={b}")
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)

    def mask(self, events, index, parent=None, resolved=None) -> np.ndarray:
        events = _events_array(events)
        cols = _columns(self, events, index)
        lo = np.array([-np.inf if v is None else v for v in self.lo])
        hi = np.array([np.inf if v is None else v for v in self.hi])
        out = np.empty(events.shape[0], dtype=np.bool_)
        par = _parent(self, events, parent)
        if events.flags.f_contiguous and events.shape[1] > 1:
            # column-major: one vectorised pass per dimension over its contiguous column
            _kg.rectangle_mask_columns(events, cols, lo, hi, par, out)
            return out
        # a sparse parent lets the kernel skip most rows; a dense one is tested without branches
        dense = par.size == 0 or np.count_nonzero(par) > par.size // 4
        (_kg.rectangle_mask_dense if dense else _kg.rectangle_mask)(events, cols, lo, hi, par, out)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"type": "rectangle", "dims": list(self.dims), "min": list(self.lo), "max": list(self.hi)}


@dataclass(frozen=True)
class RangeGate(RectangleGate):
    """One-dimensional rectangle: ``lo <= x < hi``. Build with ``RangeGate.on(dim, lo, hi)``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.dims) != 1:
            raise GateError(f"RangeGate: exactly one dimension expected, found {self.dims}")

    @classmethod
    def on(cls, dim: str, lo: float | None = None, hi: float | None = None) -> "RangeGate":
        return cls((dim,), (lo,), (hi,))

    def to_dict(self) -> dict[str, Any]:
        return {"type": "range", "dims": list(self.dims), "min": list(self.lo), "max": list(self.hi)}


@dataclass(frozen=True)
class PolygonGate(Gate):
    """Polygon on two dimensions (vertices in order; closed implicitly; self-intersection allowed)."""

    dims: tuple[str, str]
    vertices: tuple[tuple[float, float], ...]
    _vx: np.ndarray = field(init=False, repr=False, compare=False)
    _vy: np.ndarray = field(init=False, repr=False, compare=False)
    _grid: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dims", tuple(str(d) for d in self.dims))
        if len(self.dims) != 2:
            raise GateError(f"PolygonGate: exactly two dimensions expected, found {self.dims}")
        verts = []
        for i, v in enumerate(self.vertices):
            if len(v) != 2:
                raise GateError(f"PolygonGate{self.dims}: vertex {i} must have 2 coordinates, found {v!r}")
            verts.append(_floats(v, f"vertex {i}", f"PolygonGate{self.dims}"))
        if len(verts) < 3:
            raise GateError(f"PolygonGate{self.dims}: needs at least 3 vertices, found {len(verts)}")
        object.__setattr__(self, "vertices", tuple(verts))
        arr = np.array(verts, dtype=np.float64)
        object.__setattr__(self, "_vx", np.ascontiguousarray(arr[:, 0]))
        object.__setattr__(self, "_vy", np.ascontiguousarray(arr[:, 1]))
        grid, x0, y0, sx, sy = _kg.polygon_grid(self._vx, self._vy, _kg.POLYGON_GRID)
        grid.setflags(write=False)
        object.__setattr__(self, "_grid", (grid, x0, y0, sx, sy))

    def mask(self, events, index, parent=None, resolved=None) -> np.ndarray:
        events = _events_array(events)
        cols = _columns(self, events, index)
        out = np.empty(events.shape[0], dtype=np.bool_)
        if events.flags.f_contiguous and events.shape[1] > 1:
            # column-major: the exact test, vectorised over the two contiguous columns
            _kg.polygon_mask_columns(events, cols[0], cols[1], self._vx, self._vy, _parent(self, events, parent), out)
            return out
        _kg.polygon_mask(events, cols[0], cols[1], self._vx, self._vy, *self._grid, _parent(self, events, parent), out)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"type": "polygon", "dims": list(self.dims), "vertices": [list(v) for v in self.vertices]}


@dataclass(frozen=True)
class EllipsoidGate(Gate):
    """n-D ellipsoid (n >= 2): Mahalanobis distance² to ``mean`` under ``covariance`` <= ``distance_square``."""

    dims: tuple[str, ...]
    mean: tuple[float, ...]
    covariance: tuple[tuple[float, ...], ...]
    distance_square: float
    _inv: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dims", tuple(str(d) for d in self.dims))
        name = f"EllipsoidGate{self.dims}"
        n = len(self.dims)
        if n < 2:
            raise GateError(f"{name}: needs at least 2 dimensions")
        mean = _floats(self.mean, "mean", name)
        if len(mean) != n:
            raise GateError(f"{name}: mean has {len(mean)} coordinates for {n} dimensions")
        cov = tuple(_floats(row, "covariance entries", name) for row in self.covariance)
        if len(cov) != n or any(len(r) != n for r in cov):
            raise GateError(f"{name}: covariance must be {n}×{n}, found rows of lengths {[len(r) for r in cov]}")
        d2 = _floats([self.distance_square], "distance_square", name)[0]
        if d2 <= 0:
            raise GateError(f"{name}: distance_square must be > 0, found {d2}")
        c = np.array(cov, dtype=np.float64)
        if not np.isfinite(np.linalg.cond(c)) or np.linalg.cond(c) > 1e14:
            raise GateError(f"{name}: covariance matrix is singular")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "covariance", cov)
        object.__setattr__(self, "distance_square", d2)
        object.__setattr__(self, "_inv", np.ascontiguousarray(np.linalg.inv(c)))

    def mask(self, events, index, parent=None, resolved=None) -> np.ndarray:
        events = _events_array(events)
        cols = _columns(self, events, index)
        out = np.empty(events.shape[0], dtype=np.bool_)
        _kg.ellipsoid_mask(
            events, cols, np.array(self.mean), self._inv, self.distance_square, _parent(self, events, parent), out
        )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "ellipsoid",
            "dims": list(self.dims),
            "mean": list(self.mean),
            "covariance": [list(r) for r in self.covariance],
            "distance_square": self.distance_square,
        }


@dataclass(frozen=True)
class QuadrantGate(Gate):
    """Dividers split each dimension at one or more values; each named quadrant picks one interval per divider.

    ``dividers`` is ``((dim, (v1, v2, ...)), ...)``; ``quadrants`` maps a quadrant id to one location per
    divider (a value inside the wanted interval, or None to leave that divider unconstrained).
    """

    dividers: tuple[tuple[str, tuple[float, ...]], ...]
    quadrants: Mapping[str, tuple[float | None, ...]]
    _boxes: Mapping[str, RectangleGate] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        divs = []
        for dim, values in self.dividers:
            vals = tuple(sorted(_floats(values, f"divider values of {dim!r}", "QuadrantGate")))
            if not vals:
                raise GateError(f"QuadrantGate: divider on {dim!r} has no value")
            divs.append((str(dim), vals))
        if not divs:
            raise GateError("QuadrantGate: needs at least one divider")
        object.__setattr__(self, "dividers", tuple(divs))
        if not self.quadrants:
            raise GateError("QuadrantGate: needs at least one quadrant")
        boxes = {}
        quads = {}
        for qid, locations in self.quadrants.items():
            if len(locations) != len(divs):
                raise GateError(
                    f"QuadrantGate: quadrant {qid!r} gives {len(locations)} locations for {len(divs)} dividers"
                )
            dims, lo, hi = [], [], []
            for (dim, vals), loc in zip(divs, locations):
                if loc is None:
                    continue
                loc = _floats([loc], f"location of quadrant {qid!r}", "QuadrantGate")[0]
                k = bisect.bisect_right(vals, loc)  # vals[k-1] <= loc < vals[k]
                dims.append(dim)
                lo.append(vals[k - 1] if k > 0 else None)
                hi.append(vals[k] if k < len(vals) else None)
            if not dims:
                raise GateError(f"QuadrantGate: quadrant {qid!r} constrains no divider")
            boxes[str(qid)] = RectangleGate(tuple(dims), tuple(lo), tuple(hi))
            quads[str(qid)] = tuple(locations)
        object.__setattr__(self, "quadrants", quads)
        object.__setattr__(self, "_boxes", boxes)

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(d for d, _ in self.dividers)

    def quadrant(self, quadrant_id: str) -> RectangleGate:
        """The box of one quadrant as a rectangle gate."""
        try:
            return self._boxes[quadrant_id]
        except KeyError:
            raise GateError(f"QuadrantGate: no quadrant {quadrant_id!r}; have {sorted(self._boxes)}") from None

    def masks(self, events, index, parent=None) -> dict[str, np.ndarray]:
        """Membership of every quadrant, by quadrant id."""
        return {q: box.mask(events, index, parent) for q, box in self._boxes.items()}

    def mask(self, events, index, parent=None, resolved=None, quadrant: str | None = None) -> np.ndarray:
        """One quadrant's membership, or (``quadrant=None``) the union of all quadrants."""
        if quadrant is not None:
            return self.quadrant(quadrant).mask(events, index, parent)
        out = np.zeros(events.shape[0], dtype=np.bool_)
        for m in self.masks(events, index, parent).values():
            out |= m
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "quadrant",
            "dividers": [[d, list(v)] for d, v in self.dividers],
            "quadrants": {q: list(loc) for q, loc in self.quadrants.items()},
        }


_BOOL_OPS = ("and", "or", "not")


@dataclass(frozen=True)
class BooleanGate(Gate):
    """``and`` / ``or`` of two or more operands, or ``not`` of one; each operand optionally complemented.

    Operands are gates (evaluated here, within the parent) or ids of gates whose full membership masks
    are passed to :meth:`mask` as ``resolved`` (how a gating tree or GatingML document refers to gates).
    """

    op: str
    operands: tuple[Any, ...]
    complement: tuple[bool, ...] = ()

    def __post_init__(self) -> None:
        op = str(self.op).lower()
        if op not in _BOOL_OPS:
            raise GateError(f"BooleanGate: op must be one of {_BOOL_OPS}, found {self.op!r}")
        operands = tuple(self.operands)
        if op == "not" and len(operands) != 1:
            raise GateError(f"BooleanGate: 'not' takes exactly one operand, found {len(operands)}")
        if op != "not" and len(operands) < 2:
            raise GateError(f"BooleanGate: {op!r} needs at least two operands, found {len(operands)}")
        for o in operands:
            if not isinstance(o, (str, Gate)):
                raise GateError(f"BooleanGate: operands must be gates or gate ids, found {o!r}")
        comp = tuple(bool(c) for c in self.complement) or (False,) * len(operands)
        if len(comp) != len(operands):
            raise GateError(f"BooleanGate: {len(comp)} complement flags for {len(operands)} operands")
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "operands", operands)
        object.__setattr__(self, "complement", comp)

    @property
    def dims(self) -> tuple[str, ...]:
        seen: list[str] = []
        for o in self.operands:
            if isinstance(o, Gate):
                seen += [d for d in o.dims if d not in seen]
        return tuple(seen)

    def describe(self) -> str:
        return f"BooleanGate({self.op})"

    def combine(self, masks: Sequence[np.ndarray]) -> np.ndarray:
        """Fold the operands' masks, in operand order, with this gate's complements and operator (a new array).

        The masks may be bool arrays or ``np.packbits`` bytes: only element-wise ``~``, ``&`` and ``|`` are used.
        """
        result = None
        for m, comp in zip(masks, self.complement):
            if comp:
                m = ~m
            if result is None:
                result = m.copy()
            elif self.op == "and":
                result &= m
            else:
                result |= m
        if self.op == "not":
            result = ~result
        return result

    def mask(self, events, index, parent=None, resolved=None) -> np.ndarray:
        n = events.shape[0]
        parent_arr = _parent(self, events, parent)
        masks = []
        for operand in self.operands:
            if isinstance(operand, str):
                if resolved is None or operand not in resolved:
                    raise GateError(f"BooleanGate: operand gate {operand!r} has no resolved mask")
                m = np.asarray(resolved[operand], dtype=np.bool_)
                if m.shape != (n,):
                    raise GateError(f"BooleanGate: mask of {operand!r} has shape {m.shape}, expected ({n},)")
            else:
                m = operand.mask(events, index, parent, resolved)
            masks.append(m)
        result = self.combine(masks)
        if parent_arr.size:
            result &= parent_arr
        return result

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "boolean",
            "op": self.op,
            "operands": [o if isinstance(o, str) else o.to_dict() for o in self.operands],
            "complement": list(self.complement),
        }


def gate_from_dict(spec: Mapping[str, Any]) -> Gate:
    """Rebuild a gate from its ``to_dict()`` description."""
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise GateError(f"gate description must be a mapping with a 'type', found {spec!r}")
    kind = spec["type"]
    try:
        if kind == "range":
            return RangeGate(tuple(spec["dims"]), tuple(spec["min"]), tuple(spec["max"]))
        if kind == "rectangle":
            return RectangleGate(tuple(spec["dims"]), tuple(spec["min"]), tuple(spec["max"]))
        if kind == "polygon":
            return PolygonGate(tuple(spec["dims"]), tuple(tuple(v) for v in spec["vertices"]))
        if kind == "ellipsoid":
            return EllipsoidGate(
                tuple(spec["dims"]),
                tuple(spec["mean"]),
                tuple(tuple(r) for r in spec["covariance"]),
                spec["distance_square"],
            )
        if kind == "quadrant":
            return QuadrantGate(
                tuple((d, tuple(v)) for d, v in spec["dividers"]),
                {q: tuple(loc) for q, loc in spec["quadrants"].items()},
            )
        if kind == "boolean":
            operands = tuple(o if isinstance(o, str) else gate_from_dict(o) for o in spec["operands"])
            return BooleanGate(spec["op"], operands, tuple(spec.get("complement", ())))
    except KeyError as exc:
        raise GateError(f"{kind} gate description lacks field {exc.args[0]!r}: {dict(spec)!r}") from None
    raise GateError(
        f"unknown gate type {kind!r}; expected range, rectangle, polygon, ellipsoid, quadrant or boolean"
    )
