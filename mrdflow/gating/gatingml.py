"""Read an ISAC Gating-ML 2.0 document into our gates, transforms and compensations, and evaluate it.

:func:`read_gatingml` parses the XML (standard library ``xml.etree``) into a :class:`GatingMLDocument`
(records defined in :mod:`mrdflow.gating.gatingml_model`, re-exported here):
gates (:mod:`mrdflow.gating.gates` objects whose dimension names are the canonical keys of
:class:`DimensionRef`), transformations (:mod:`mrdflow.transforms` objects, ``fratio`` as :class:`Ratio`,
with optional ``boundMin``/``boundMax``) and ``spectrumMatrix`` compensations (:class:`SpectrumMatrix`).
:func:`evaluate_gatingml` computes every gate's membership on an ``FcsData``: each distinct
(channel, compensation, transformation) dimension is computed once, with our kernels, into a small working
matrix holding only the dimensions the document uses; gates are evaluated parents first, each only on
its parent's events.

Semantics (Gating-ML 2.0): ``compensation-ref="FCS"`` = the file's spillover (uncompensated if the file
has none), ``"uncompensated"`` = raw values, otherwise the id of a ``spectrumMatrix``; a matrix's
``fluorochromes`` name its outputs (unmixing by least squares when it has more detectors than
fluorochromes; applied as given when ``matrix-inverted-already="true"``); a ratio dimension
(``new-dimension``) is ``A (x - B) / (y - C)`` of two (compensated) channels, optionally transformed; a
transformation's bounds clip its output. This module reads no files besides the XML it is given.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from mrdflow.errors import GateError, MrdflowError
from mrdflow.gating.gatingml_model import (
    FCS_COMPENSATION,
    NS_DATATYPE,
    NS_GATING,
    NS_TRANSFORMS,
    UNCOMPENSATED,
    DimensionRef,
    GatingMLDocument,
    GmlGate,
    Ratio,
    ScaleTransform,
    SpectrumMatrix,
)
from mrdflow.gating.gates import (
    BooleanGate,
    EllipsoidGate,
    Gate,
    PolygonGate,
    QuadrantGate,
    RectangleGate,
)
from mrdflow.kernels import compensate as _kc
from mrdflow.scaling import inverse_spillover
from mrdflow.transforms import Asinh, Hyperlog, Linear, Log, Logicle, Transform

__all__ = [
    "DimensionRef",
    "Ratio",
    "ScaleTransform",
    "SpectrumMatrix",
    "GmlGate",
    "GatingMLDocument",
    "read_gatingml",
    "evaluate_gatingml",
]


def _g(tag: str) -> str:
    return f"{{{NS_GATING}}}{tag}"


def _t(tag: str) -> str:
    return f"{{{NS_TRANSFORMS}}}{tag}"


def _d(tag: str) -> str:
    return f"{{{NS_DATATYPE}}}{tag}"


# ----------------------------------------------------------------------------------------------- parsing


def _attr(el: ET.Element, name: str, *namespaces: str) -> str | None:
    for ns in namespaces:
        v = el.get(f"{{{ns}}}{name}")
        if v is not None:
            return v
    return el.get(name)


def _num(el: ET.Element, name: str, where: str, *namespaces: str, required: bool = True) -> float | None:
    raw = _attr(el, name, *namespaces)
    if raw is None:
        if required:
            raise GateError(f"{where}: missing attribute {name!r}")
        return None
    try:
        return float(raw)
    except ValueError:
        raise GateError(f"{where}: attribute {name!r} must be a number, found {raw!r}") from None


class _Parser:
    def __init__(self, path: str):
        self.path = path

    def err(self, what: str) -> GateError:
        return GateError(f"{self.path}: {what}")

    def dimension(self, el: ET.Element, where: str) -> DimensionRef:
        comp = _attr(el, "compensation-ref", NS_GATING) or UNCOMPENSATED
        xform = _attr(el, "transformation-ref", NS_GATING)
        fcs_dim = el.find(_d("fcs-dimension"))
        new_dim = el.find(_d("new-dimension"))
        if fcs_dim is not None:
            name = _attr(fcs_dim, "name", NS_DATATYPE)
            if not name:
                raise self.err(f"{where}: fcs-dimension without a name")
            return DimensionRef(name, comp, xform)
        if new_dim is not None:
            ratio = _attr(new_dim, "transformation-ref", NS_DATATYPE)
            if not ratio:
                raise self.err(f"{where}: new-dimension without a transformation-ref")
            return DimensionRef(None, comp, xform, ratio)
        raise self.err(f"{where}: dimension has neither fcs-dimension nor new-dimension")

    def values(self, el: ET.Element, tag: str, where: str) -> list[float]:
        out = []
        for c in el.findall(tag):
            v = _num(c, "value", where, NS_DATATYPE, NS_GATING, NS_TRANSFORMS)
            out.append(v)
        return out

    def gate(self, el: ET.Element) -> GmlGate:
        kind = el.tag.split("}")[-1]
        gid = _attr(el, "id", NS_GATING)
        if not gid:
            raise self.err(f"a {kind} has no gating:id")
        parent = _attr(el, "parent_id", NS_GATING)
        where = f"{kind} {gid!r}"
        try:
            if kind == "RectangleGate":
                dims = el.findall(_g("dimension"))
                refs = tuple(self.dimension(d, where) for d in dims)
                lo = tuple(_num(d, "min", where, NS_GATING, required=False) for d in dims)
                hi = tuple(_num(d, "max", where, NS_GATING, required=False) for d in dims)
                gate: Gate = RectangleGate(tuple(r.key for r in refs), lo, hi)
            elif kind == "PolygonGate":
                refs = tuple(self.dimension(d, where) for d in el.findall(_g("dimension")))
                verts = tuple(tuple(self.values(v, _g("coordinate"), where)) for v in el.findall(_g("vertex")))
                gate = PolygonGate(tuple(r.key for r in refs), verts)
            elif kind == "EllipsoidGate":
                refs = tuple(self.dimension(d, where) for d in el.findall(_g("dimension")))
                mean_el = el.find(_g("mean"))
                cov_el = el.find(_g("covarianceMatrix"))
                d2_el = el.find(_g("distanceSquare"))
                if mean_el is None or cov_el is None or d2_el is None:
                    raise self.err(f"{where}: needs mean, covarianceMatrix and distanceSquare")
                mean = tuple(self.values(mean_el, _g("coordinate"), where))
                cov = tuple(tuple(self.values(r, _g("entry"), where)) for r in cov_el.findall(_g("row")))
                d2 = _num(d2_el, "value", where, NS_DATATYPE, NS_GATING)
                gate = EllipsoidGate(tuple(r.key for r in refs), mean, cov, d2)
            elif kind == "QuadrantGate":
                refs_list, dividers, div_ids = [], [], []
                for dv in el.findall(_g("divider")):
                    did = _attr(dv, "id", NS_GATING)
                    ref = self.dimension(dv, where)
                    vals = [float((v.text or "").strip()) for v in dv.findall(_g("value"))]
                    refs_list.append(ref)
                    dividers.append((ref.key, tuple(vals)))
                    div_ids.append(did)
                quadrants = {}
                for q in el.findall(_g("Quadrant")):
                    qid = _attr(q, "id", NS_GATING)
                    locs: list[float | None] = [None] * len(div_ids)
                    for pos in q.findall(_g("position")):
                        dref = _attr(pos, "divider_ref", NS_GATING)
                        if dref not in div_ids:
                            raise self.err(f"{where}: quadrant {qid!r} refers to unknown divider {dref!r}")
                        locs[div_ids.index(dref)] = _num(pos, "location", where, NS_GATING)
                    quadrants[qid] = tuple(locs)
                refs = tuple(refs_list)
                gate = QuadrantGate(tuple(dividers), quadrants)
            elif kind == "BooleanGate":
                ops = [c for c in el if c.tag in (_g("and"), _g("or"), _g("not"))]
                if len(ops) != 1:
                    raise self.err(f"{where}: needs exactly one of and/or/not")
                op = ops[0].tag.split("}")[-1]
                operands, comp = [], []
                for ref in ops[0].findall(_g("gateReference")):
                    operands.append(_attr(ref, "ref", NS_GATING))
                    comp.append((_attr(ref, "use-as-complement", NS_GATING) or "false").lower() == "true")
                refs = ()
                gate = BooleanGate(op, tuple(operands), tuple(comp))
            else:
                raise self.err(f"unsupported gate element {kind!r}")
        except ValueError as exc:
            raise self.err(f"{where}: {exc}") from None
        except GateError as exc:
            if str(exc).startswith(self.path):
                raise
            raise self.err(f"{where}: {exc}") from None
        return GmlGate(gid, gate, parent, refs)

    def transformation(self, el: ET.Element) -> ScaleTransform:
        tid = _attr(el, "id", NS_TRANSFORMS)
        where = f"transformation {tid!r}"
        bmin = _num(el, "boundMin", where, NS_TRANSFORMS, required=False)
        bmax = _num(el, "boundMax", where, NS_TRANSFORMS, required=False)
        kids = [c for c in el if c.tag.startswith(f"{{{NS_TRANSFORMS}}}")]
        if len(kids) != 1:
            raise self.err(f"{where}: expected exactly one transform element")
        k = kids[0]
        kind = k.tag.split("}")[-1]

        def p(name: str) -> float:
            return _num(k, name, where, NS_TRANSFORMS)

        try:
            if kind == "flin":
                t: Transform | Ratio = Linear(p("T"), p("A"))
            elif kind == "flog":
                t = Log(p("T"), p("M"))
            elif kind == "fasinh":
                t = Asinh(p("T"), p("M"), p("A"))
            elif kind == "logicle":
                t = Logicle(p("T"), p("W"), p("M"), p("A"))
            elif kind == "hyperlog":
                t = Hyperlog(p("T"), p("W"), p("M"), p("A"))
            elif kind == "fratio":
                names = [_attr(d, "name", NS_DATATYPE) for d in k.findall(_d("fcs-dimension"))]
                if len(names) != 2:
                    raise self.err(f"{where}: fratio needs exactly two fcs-dimensions, found {len(names)}")
                t = Ratio(names[0], names[1], p("A"), p("B"), p("C"))
            else:
                raise self.err(f"{where}: unsupported transform {kind!r}")
        except MrdflowError as exc:
            if str(exc).startswith(self.path):
                raise
            raise self.err(f"{where}: {exc}") from None
        return ScaleTransform(tid, t, bmin, bmax)

    def matrix(self, el: ET.Element) -> SpectrumMatrix:
        mid = _attr(el, "id", NS_TRANSFORMS)
        where = f"spectrumMatrix {mid!r}"
        inverted = (_attr(el, "matrix-inverted-already", NS_TRANSFORMS) or "false").lower() == "true"

        def names(tag: str) -> tuple[str, ...]:
            holder = el.find(_t(tag))
            if holder is None:
                raise self.err(f"{where}: missing {tag}")
            return tuple(_attr(d, "name", NS_DATATYPE) for d in holder.findall(_d("fcs-dimension")))

        rows = [self.values(s, _t("coefficient"), where) for s in el.findall(_t("spectrum"))]
        if not rows or len({len(r) for r in rows}) != 1:
            raise self.err(f"{where}: spectra must all have the same number of coefficients")
        return SpectrumMatrix(mid, names("fluorochromes"), names("detectors"), np.array(rows), inverted)


def read_gatingml(path: str | Path) -> GatingMLDocument:
    """Parse a Gating-ML 2.0 file; raises :class:`GateError` naming the file and element on bad input."""
    path = str(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise GateError(f"{path}: cannot read Gating-ML XML: {exc}") from None
    parser = _Parser(path)
    doc = GatingMLDocument(path)
    for el in root:
        tag = el.tag
        if tag == _t("transformation"):
            st = parser.transformation(el)
            doc.transforms[st.id] = st
        elif tag == _t("spectrumMatrix"):
            m = parser.matrix(el)
            doc.matrices[m.id] = m
        elif tag.startswith(f"{{{NS_GATING}}}") and tag.endswith("Gate"):
            g = parser.gate(el)
            if g.id in doc.gates or g.id in doc.quadrant_of:
                raise parser.err(f"duplicate gate id {g.id!r}")
            doc.gates[g.id] = g
            if isinstance(g.gate, QuadrantGate):
                for q in g.gate.quadrants:
                    doc.quadrant_of[q] = g.id
    _check_references(doc, parser)
    return doc


def _check_references(doc: GatingMLDocument, parser: _Parser) -> None:
    known = set(doc.gates) | set(doc.quadrant_of)
    for g in doc.gates.values():
        if g.parent_id is not None and g.parent_id not in known:
            raise parser.err(f"gate {g.id!r}: parent {g.parent_id!r} is not defined")
        if isinstance(g.gate, BooleanGate):
            for ref in g.gate.operands:
                if ref not in known:
                    raise parser.err(f"gate {g.id!r}: refers to undefined gate {ref!r}")
        for dim in g.dimensions:
            for ref in (dim.transformation, dim.ratio):
                if ref is not None and ref not in doc.transforms:
                    raise parser.err(f"gate {g.id!r}: transformation {ref!r} is not defined")
            if dim.ratio is not None and not isinstance(doc.transforms[dim.ratio].transform, Ratio):
                raise parser.err(f"gate {g.id!r}: new-dimension {dim.ratio!r} is not an fratio")
            if dim.transformation is not None and isinstance(doc.transforms[dim.transformation].transform, Ratio):
                raise parser.err(f"gate {g.id!r}: fratio {dim.transformation!r} used as a scale transformation")
            if dim.compensation not in (UNCOMPENSATED, FCS_COMPENSATION) and dim.compensation not in doc.matrices:
                raise parser.err(f"gate {g.id!r}: compensation {dim.compensation!r} is not defined")


# -------------------------------------------------------------------------------------------- evaluation


class _Columns:
    """Computes (and caches) each channel under a compensation, as 1-D arrays of ``dtype``."""

    def __init__(self, doc: GatingMLDocument, fcs: Any, dtype: np.dtype):
        self.doc, self.fcs, self.dtype = doc, fcs, dtype
        self.events = fcs.events
        self.names = [c.name for c in fcs.channels]
        self.markers = [getattr(c, "marker", None) for c in fcs.channels]
        self.compensated: dict[str, tuple[list[str], np.ndarray]] = {}

    def where(self) -> str:
        return f"{getattr(self.fcs, 'path', '?')} with {self.doc.path}"

    def channel_index(self, name: str) -> int:
        if name in self.names:
            return self.names.index(name)
        if name in self.markers:
            return self.markers.index(name)
        raise GateError(f"{self.where()}: dimension {name!r} is not a channel ($PnN or $PnS) of the FCS file")

    def raw(self, name: str) -> np.ndarray:
        return self.events[:, self.channel_index(name)].astype(self.dtype)

    def _compensate(self, comp: str) -> tuple[list[str], np.ndarray] | None:
        if comp in self.compensated:
            return self.compensated[comp]
        if comp == FCS_COMPENSATION:
            spill = getattr(self.fcs, "spillover", None)
            if spill is None:  # Gating-ML 2.0: "FCS" without a spillover in the file = uncompensated
                self.compensated[comp] = None
                return None
            detectors, outputs, unmix = list(spill.channels), list(spill.channels), inverse_spillover(spill)
        else:
            m = self.doc.matrices[comp]
            detectors, outputs, unmix = list(m.detectors), list(m.fluorochromes), m.unmixing()
        cols = np.array([self.channel_index(d) for d in detectors], dtype=np.int64)
        out = np.empty((self.events.shape[0], len(outputs)), dtype=self.dtype)
        _kc.unmix_into(self.events, cols, np.ascontiguousarray(unmix, dtype=np.float64), out)
        self.compensated[comp] = (outputs, out)
        return self.compensated[comp]

    def channel(self, name: str, comp: str) -> np.ndarray:
        if comp != UNCOMPENSATED:
            done = self._compensate(comp)
            if done is not None:
                outputs, values = done
                if name in outputs:
                    return np.ascontiguousarray(values[:, outputs.index(name)])
        return self.raw(name)

    def dimension(self, dim: DimensionRef) -> np.ndarray:
        if dim.ratio is not None:
            st = self.doc.transforms[dim.ratio]
            r = st.transform
            values = r.apply_columns(self.channel(r.numerator, dim.compensation),
                                     self.channel(r.denominator, dim.compensation))
            values = st.clip(values)
        else:
            values = self.channel(dim.name, dim.compensation)
        if dim.transformation is not None:
            st = self.doc.transforms[dim.transformation]
            values = st.clip(st.transform.apply(values))
        return values


def _order(doc: GatingMLDocument) -> list[str]:
    """Gate ids with parents and boolean operands before the gates that use them."""
    order: list[str] = []
    state: dict[str, int] = {}

    def owner(ref: str) -> str:
        return doc.quadrant_of.get(ref, ref)

    def visit(gid: str) -> None:
        if state.get(gid) == 2:
            return
        if state.get(gid) == 1:
            raise GateError(f"{doc.path}: gate dependencies form a cycle through {gid!r}")
        state[gid] = 1
        g = doc.gates[gid]
        deps = [g.parent_id] if g.parent_id else []
        if isinstance(g.gate, BooleanGate):
            deps += list(g.gate.operands)
        for dep in deps:
            visit(owner(dep))
        state[gid] = 2
        order.append(gid)

    for gid in doc.gates:
        visit(gid)
    return order


def evaluate_gatingml(
    source: str | Path | GatingMLDocument, fcs: Any, *, dtype: Any = np.float64
) -> dict[str, np.ndarray]:
    """Membership of every gate (and every quadrant) of a Gating-ML document on one FCS data set.

    Parameters
    ----------
    source : path or GatingMLDocument
    fcs : FcsData
        Needs ``events`` (n_events × n_channels; linear values, PnG-scaled as Gating-ML expects, i.e.
        ``read_fcs(path, linearize=True)``), ``channels`` (``.name`` = $PnN, ``.marker`` = $PnS) and
        ``spillover`` (or None).
    dtype : float64 (default) or float32
        Precision of the working columns (only the compensated/transformed dimensions the gates use; the
        event matrix itself is not copied). Double precision, as in the reference implementations, is
        the default because float32 rounding of a transformed value flips events lying within one float32
        step of a gate boundary (one event of the official set 2 ``Ellipseuh`` gate).

    Returns
    -------
    dict of gate id -> bool array (n_events,); quadrant gates contribute one entry per quadrant id.
    """
    doc = source if isinstance(source, GatingMLDocument) else read_gatingml(source)
    cols = _Columns(doc, fcs, np.dtype(dtype))
    # one working matrix holding each distinct dimension once
    dims: dict[str, DimensionRef] = {}
    for g in doc.gates.values():
        for d in g.dimensions:
            dims.setdefault(d.key, d)
    n = fcs.events.shape[0]
    work = np.empty((n, len(dims)), dtype=cols.dtype)
    index: dict[str, int] = {}
    for j, (key, d) in enumerate(dims.items()):
        work[:, j] = cols.dimension(d)
        index[key] = j

    masks: dict[str, np.ndarray] = {}
    for gid in _order(doc):
        g = doc.gates[gid]
        parent = masks[g.parent_id] if g.parent_id else None
        if isinstance(g.gate, QuadrantGate):
            masks.update(g.gate.masks(work, index, parent))
        else:
            masks[gid] = g.gate.mask(work, index, parent, resolved=masks)
    return {gid: masks[gid] for gid in doc.gate_ids()}
