"""Validated scale transforms (GatingML 2.0 parametrisations) wrapping the numba kernels.

Each transform is a frozen dataclass whose parameters are checked on construction (invalid values raise
:class:`~mrdflow.errors.TransformError` naming the parameter, the rule and the value found). ``apply``
maps data values to scale values, ``inverse`` maps back; both accept float32 or float64 arrays and return
a new array of the same dtype (float32 in, float32 out, computed per element in float64), or work in place
with ``out=``. ``code`` and ``params`` are what the fused kernel of :mod:`mrdflow.scaling` consumes.

=========  ======================================  ====================================================
transform  parameters                              scale value
=========  ======================================  ====================================================
Linear     T > 0 (top), A > -T (offset)            (x + A) / (T + A): [-A, T] -> [0, 1]
Log        T > 0 (top), M > 0 (decades)            log10(x / T) / M + 1: [T 10^-M, T] -> [0, 1]
Asinh      T > 0, M > 0, A >= 0                    (asinh(x sinh(M ln10) / T) + A ln10) / ((M + A) ln10)
Logicle    T > 0, M > 0, 0 <= W <= M/2,            root of a e^(by) - c e^(-dy) - f = x (Moore & Parks
           -W <= A <= M - 2W                       2012); data 0 -> (W + A) / (M + A), T -> 1
Hyperlog   T > 0, M > 0, 0 < W <= M/2,             root of a e^(by) + c y - f = x; data 0 ->
           -W <= A <= M - 2W                       (W + A) / (M + A), T -> 1
=========  ======================================  ====================================================

T is in data units (e.g. 262144 for an 18-bit channel), M and W in decades, A in additional negative
decades (GatingML 2.0, section "Transformations").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

from mrdflow.errors import TransformError
from mrdflow.kernels import transforms as _k

__all__ = ["Transform", "Linear", "Log", "Asinh", "Logicle", "Hyperlog", "transform_from_dict"]


def _finite(name: str, kind: str, **values: float) -> None:
    for key, value in values.items():
        if not isinstance(value, (int, float, np.floating, np.integer)) or isinstance(value, bool):
            raise TransformError(f"{name}: parameter {key} must be a number, found {value!r}")
        if not math.isfinite(value):
            raise TransformError(f"{name}: parameter {key} must be finite, found {value!r}")


def _require(ok: bool, name: str, rule: str, **found: float) -> None:
    if not ok:
        shown = ", ".join(f"{k}={v!r}" for k, v in found.items())
        raise TransformError(f"{name}: invalid parameters, expected {rule}; found {shown}")


@dataclass(frozen=True)
class Transform:
    """Base of the scale transforms: ``apply``/``inverse`` over arrays, ``to_dict`` for a plain description."""

    code: ClassVar[int] = _k.IDENTITY
    kind: ClassVar[str] = "identity"
    params: np.ndarray = field(init=False, repr=False, compare=False)

    def _build_params(self) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def __post_init__(self) -> None:
        self._validate()
        params = self._build_params()
        if not np.all(np.isfinite(params)):
            raise TransformError(f"{type(self).__name__}{self._args()}: parameters give a degenerate scale")
        # the kernels get a private writable copy: numba compiles a kernel once per argument type, read-only
        # flag included, and the fused scaling pass (mrdflow.scaling) passes writable parameter rows — one
        # specialisation of each transform kernel instead of two (~4 s less compilation on a first run)
        object.__setattr__(self, "_kernel_params", params.copy())
        params.setflags(write=False)
        object.__setattr__(self, "params", params)

    def _validate(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _args(self) -> tuple[float, ...]:
        return tuple(getattr(self, f) for f in self._fields())

    def _run(self, x: Any, out: np.ndarray | None, forward: bool) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float64)
        if out is None:
            out = np.empty(x.shape, x.dtype)
        elif out.shape != x.shape or out.dtype != x.dtype or not out.flags.c_contiguous:
            raise TransformError(
                f"{type(self).__name__}: out must be C-contiguous with shape {x.shape} and dtype {x.dtype}, "
                f"found {out.shape} {out.dtype} (C-contiguous: {out.flags.c_contiguous})"
            )
        kernel = _k.transform_into if forward else _k.inverse_into
        kernel(np.ascontiguousarray(x).reshape(-1), out.reshape(-1), self.code, self._kernel_params)
        return out

    def apply(self, x: Any, out: np.ndarray | None = None) -> np.ndarray:
        """Scale values of the data values ``x`` (same dtype as ``x``; float32 stays float32)."""
        return self._run(x, out, True)

    def inverse(self, y: Any, out: np.ndarray | None = None) -> np.ndarray:
        """Data values of the scale values ``y``."""
        return self._run(y, out, False)

    def to_dict(self) -> dict[str, Any]:
        """Plain description, e.g. ``{"kind": "logicle", "T": 262144.0, "W": 0.5, "M": 4.5, "A": 0.0}``."""
        return {"kind": self.kind, **{k: float(v) for k, v in zip(self._fields(), self._args())}}

    @classmethod
    def _fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.init)


@dataclass(frozen=True)
class Linear(Transform):
    """GatingML ``flin``: ``(x + A) / (T + A)``, mapping [-A, T] to [0, 1]."""

    T: float = 262144.0
    A: float = 0.0
    code: ClassVar[int] = _k.LINEAR
    kind: ClassVar[str] = "linear"

    def _validate(self) -> None:
        _finite("Linear", "flin", T=self.T, A=self.A)
        _require(self.T > 0, "Linear", "T > 0", T=self.T)
        _require(self.A > -self.T, "Linear", "A > -T", T=self.T, A=self.A)

    def _build_params(self) -> np.ndarray:
        return _k.linear_params(float(self.T), float(self.A))


@dataclass(frozen=True)
class Log(Transform):
    """GatingML ``flog``: ``log10(x / T) / M + 1`` (NaN for x < 0, -inf for x = 0)."""

    T: float = 262144.0
    M: float = 4.5
    code: ClassVar[int] = _k.LOG
    kind: ClassVar[str] = "log"

    def _validate(self) -> None:
        _finite("Log", "flog", T=self.T, M=self.M)
        _require(self.T > 0, "Log", "T > 0", T=self.T)
        _require(self.M > 0, "Log", "M > 0", M=self.M)

    def _build_params(self) -> np.ndarray:
        return _k.log_params(float(self.T), float(self.M))


@dataclass(frozen=True)
class Asinh(Transform):
    """GatingML ``fasinh``: ``(asinh(x sinh(M ln10) / T) + A ln10) / ((M + A) ln10)``."""

    T: float = 262144.0
    M: float = 4.5
    A: float = 0.0
    code: ClassVar[int] = _k.ASINH
    kind: ClassVar[str] = "asinh"

    def _validate(self) -> None:
        _finite("Asinh", "fasinh", T=self.T, M=self.M, A=self.A)
        _require(self.T > 0, "Asinh", "T > 0", T=self.T)
        _require(self.M > 0, "Asinh", "M > 0", M=self.M)
        _require(self.A >= 0, "Asinh", "A >= 0", A=self.A)

    def _build_params(self) -> np.ndarray:
        return _k.asinh_params(float(self.T), float(self.M), float(self.A))


def _check_biexponential(name: str, T: float, W: float, M: float, A: float, w_positive: bool) -> None:
    _finite(name, name.lower(), T=T, W=W, M=M, A=A)
    _require(T > 0, name, "T > 0 (top of scale, data units)", T=T)
    _require(M > 0, name, "M > 0 (decades)", M=M)
    if w_positive:
        _require(W > 0, name, "W > 0 (linear-region width, decades)", W=W)
    else:
        _require(W >= 0, name, "W >= 0 (linear-region width, decades)", W=W)
    _require(2 * W <= M, name, "W <= M/2", W=W, M=M)
    _require(-W <= A <= M - 2 * W, name, "-W <= A <= M - 2W", W=W, M=M, A=A)


@dataclass(frozen=True)
class Logicle(Transform):
    """Logicle (Parks 2006; Moore & Parks 2012) in the GatingML 2.0 parametrisation ``logicle(x, T, W, M, A)``."""

    T: float = 262144.0
    W: float = 0.5
    M: float = 4.5
    A: float = 0.0
    code: ClassVar[int] = _k.LOGICLE
    kind: ClassVar[str] = "logicle"

    def _validate(self) -> None:
        _check_biexponential("Logicle", self.T, self.W, self.M, self.A, w_positive=False)

    def _build_params(self) -> np.ndarray:
        return _k.logicle_params(float(self.T), float(self.W), float(self.M), float(self.A))


@dataclass(frozen=True)
class Hyperlog(Transform):
    """Hyperlog (Bagwell 2005) in the GatingML 2.0 parametrisation ``hyperlog(x, T, W, M, A)``."""

    T: float = 262144.0
    W: float = 0.5
    M: float = 4.5
    A: float = 0.0
    code: ClassVar[int] = _k.HYPERLOG
    kind: ClassVar[str] = "hyperlog"

    def _validate(self) -> None:
        _check_biexponential("Hyperlog", self.T, self.W, self.M, self.A, w_positive=True)

    def _build_params(self) -> np.ndarray:
        return _k.hyperlog_params(float(self.T), float(self.W), float(self.M), float(self.A))


_KINDS: dict[str, type[Transform]] = {c.kind: c for c in (Linear, Log, Asinh, Logicle, Hyperlog)}


def transform_from_dict(spec: dict[str, Any]) -> Transform:
    """Build a transform from its :meth:`Transform.to_dict` description (``kind`` plus parameters)."""
    if not isinstance(spec, dict) or "kind" not in spec:
        raise TransformError(f"transform description must be a mapping with a 'kind', found {spec!r}")
    kind = str(spec["kind"]).lower()
    cls = _KINDS.get(kind)
    if cls is None:
        raise TransformError(f"unknown transform kind {spec['kind']!r}; expected one of {sorted(_KINDS)}")
    args = {k: v for k, v in spec.items() if k != "kind"}
    unknown = set(args) - set(cls._fields())
    if unknown:
        raise TransformError(
            f"{cls.__name__}: unknown parameter(s) {sorted(unknown)}; expected {list(cls._fields())}"
        )
    return cls(**args)
