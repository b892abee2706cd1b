"""The data model of an imported Gating-ML 2.0 document (see :mod:`mrdflow.gating.gatingml`).

Plain frozen records that keep what the XML said (ids, references, parameters), so a document can be
evaluated, inspected, and written back: :class:`DimensionRef` (channel or ratio, compensation,
transformation), :class:`Ratio` (``fratio``), :class:`ScaleTransform` (a transform with its bounds),
:class:`SpectrumMatrix`, :class:`GmlGate` and :class:`GatingMLDocument`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mrdflow.errors import GateError
from mrdflow.gating.gates import Gate, QuadrantGate
from mrdflow.scaling import inverse_spillover
from mrdflow.transforms import Transform

__all__ = [
    "NS_GATING",
    "NS_TRANSFORMS",
    "NS_DATATYPE",
    "UNCOMPENSATED",
    "FCS_COMPENSATION",
    "DimensionRef",
    "Ratio",
    "ScaleTransform",
    "SpectrumMatrix",
    "GmlGate",
    "GatingMLDocument",
]

NS_GATING = "http://www.isac-net.org/std/Gating-ML/v2.0/gating"
NS_TRANSFORMS = "http://www.isac-net.org/std/Gating-ML/v2.0/transformations"
NS_DATATYPE = "http://www.isac-net.org/std/Gating-ML/v2.0/datatypes"

UNCOMPENSATED = "uncompensated"
FCS_COMPENSATION = "FCS"


@dataclass(frozen=True)
class DimensionRef:
    """One gate dimension: an FCS channel (or a ratio of two) under a compensation and a transformation."""

    name: str | None
    compensation: str = UNCOMPENSATED
    transformation: str | None = None
    ratio: str | None = None  # id of an fratio transformation ("new-dimension"); then name is None

    @property
    def key(self) -> str:
        """Canonical name used as the gate's dimension, e.g. ``FL1-H|FCS|Logicle1`` or ``ratio:R1|...``."""
        base = f"ratio:{self.ratio}" if self.ratio is not None else str(self.name)
        return f"{base}|{self.compensation}|{self.transformation or ''}"


@dataclass(frozen=True)
class Ratio:
    """Gating-ML ``fratio(x, y, A, B, C) = A (x - B) / (y - C)`` of channels ``numerator``, ``denominator``."""

    numerator: str
    denominator: str
    A: float
    B: float
    C: float

    def apply_columns(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return (self.A * ((x.astype(np.float64) - self.B) / (y.astype(np.float64) - self.C))).astype(x.dtype)


@dataclass(frozen=True)
class ScaleTransform:
    """A named transformation of the document: the transform plus optional output bounds (clipping)."""

    id: str
    transform: Transform | Ratio
    bound_min: float | None = None
    bound_max: float | None = None

    def clip(self, values: np.ndarray) -> np.ndarray:
        if self.bound_min is not None or self.bound_max is not None:
            lo = -np.inf if self.bound_min is None else self.bound_min
            hi = np.inf if self.bound_max is None else self.bound_max
            np.clip(values, lo, hi, out=values)
        return values


@dataclass(frozen=True)
class SpectrumMatrix:
    """A ``spectrumMatrix``: rows are fluorochromes' spectra over the detectors (F × D).

    When ``inverted_already`` the coefficients are the D × F compensation matrix itself.
    """

    id: str
    fluorochromes: tuple[str, ...]
    detectors: tuple[str, ...]
    coefficients: np.ndarray
    inverted_already: bool = False

    def unmixing(self) -> np.ndarray:
        """The D × F matrix M with ``fluorochrome values = detector values @ M``."""
        f, dn = len(self.fluorochromes), len(self.detectors)
        c = self.coefficients
        if self.inverted_already:
            if c.shape != (dn, f):
                raise GateError(
                    f"spectrumMatrix {self.id!r} (inverted already): expected {dn}×{f} coefficients "
                    f"(detectors × fluorochromes), found {c.shape[0]}×{c.shape[1]}"
                )
            return np.ascontiguousarray(c)
        if c.shape != (f, dn):
            raise GateError(
                f"spectrumMatrix {self.id!r}: expected {f}×{dn} coefficients (fluorochromes × detectors), "
                f"found {c.shape[0]}×{c.shape[1]}"
            )
        if f == dn:
            return inverse_spillover(c, list(self.fluorochromes))
        if f > dn:
            raise GateError(f"spectrumMatrix {self.id!r}: more fluorochromes ({f}) than detectors ({dn})")
        return np.ascontiguousarray(np.linalg.pinv(c))  # least-squares unmixing


@dataclass(frozen=True)
class GmlGate:
    """A gate of the document with its id, parent id, and the dimensions its geometry refers to."""

    id: str
    gate: Gate
    parent_id: str | None
    dimensions: tuple[DimensionRef, ...]


@dataclass
class GatingMLDocument:
    """Everything a Gating-ML 2.0 document defines (see the module docstring)."""

    path: str
    gates: dict[str, GmlGate] = field(default_factory=dict)
    transforms: dict[str, ScaleTransform] = field(default_factory=dict)
    matrices: dict[str, SpectrumMatrix] = field(default_factory=dict)
    quadrant_of: dict[str, str] = field(default_factory=dict)  # quadrant id -> its QuadrantGate id

    def gate_ids(self) -> list[str]:
        """Ids of everything that has a membership: gates and individual quadrants."""
        ids = []
        for gid, g in self.gates.items():
            if isinstance(g.gate, QuadrantGate):
                ids.extend(g.gate.quadrants)
            else:
                ids.append(gid)
        return ids
