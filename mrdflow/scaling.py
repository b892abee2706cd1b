"""The fused compensation + transform pass over one tube's float32 event matrix (in place).

``scale_events`` reads and writes the event matrix once: for every event it compensates the
fluorescence columns named by the spillover (``observed @ inv(S)``, the inverse taken once per matrix)
and applies each column's scale transform (scatter channels typically ``Linear``), in one parallel numba
sweep. Columns without a transform entry are left as they are (after compensation, if compensated).
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from mrdflow.errors import KernelError, SpilloverError
from mrdflow.kernels import compensate as _kc
from mrdflow.kernels import transforms as _kt
from mrdflow.transforms import Transform

__all__ = ["SpilloverLike", "inverse_spillover", "compensate_events", "scale_events"]


class SpilloverLike(Protocol):
    """What the pass needs of :class:`mrdflow.fcs.Spillover`: channel names, the matrix, its inverse."""

    channels: Sequence[str]
    matrix: np.ndarray
    source: str

    def inverse(self) -> np.ndarray: ...


def inverse_spillover(spillover: SpilloverLike | Any, channels: Sequence[str] | None = None) -> np.ndarray:
    """The compensation matrix ``inv(S)`` (float64), with a clear error if ``S`` is not usable.

    Accepts a :class:`mrdflow.fcs.Spillover` (its cached ``inverse()`` is used, so the inverse is computed
    once per matrix) or a bare square array with ``channels`` naming its rows.
    """
    if hasattr(spillover, "matrix"):
        matrix = np.asarray(spillover.matrix, dtype=np.float64)
        channels = list(spillover.channels)
        source = str(getattr(spillover, "source", "spillover"))
    else:
        matrix = np.asarray(spillover, dtype=np.float64)
        channels = list(channels) if channels is not None else [f"#{i + 1}" for i in range(len(matrix))]
        source = "spillover matrix"
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise SpilloverError(
            source, f"spillover matrix for channels {channels} must be square, found shape {matrix.shape}"
        )
    if len(channels) != matrix.shape[0]:
        raise SpilloverError(
            source, f"spillover matrix is {matrix.shape[0]}×{matrix.shape[0]} but names {len(channels)} "
            f"channels: {channels}"
        )
    if not np.all(np.isfinite(matrix)):
        raise SpilloverError(source, f"spillover matrix for channels {channels} has non-finite values")
    cond = np.linalg.cond(matrix)
    if not np.isfinite(cond) or cond > 1e12:
        raise SpilloverError(
            source,
            f"spillover matrix for channels {channels} is singular (condition number {cond:.3g}); "
            "cannot compensate",
        )
    if hasattr(spillover, "inverse") and callable(spillover.inverse):
        inverse = np.asarray(spillover.inverse(), dtype=np.float64)
    else:
        inverse = np.linalg.inv(matrix)
    return np.ascontiguousarray(inverse)


def _check_events(events: Any) -> np.ndarray:
    if not isinstance(events, np.ndarray) or events.ndim != 2:
        raise KernelError(f"events must be a 2-D numpy array (n_events, n_channels), found {type(events)}")
    if events.dtype not in (np.float32, np.float64) or not (events.flags.c_contiguous or events.flags.f_contiguous):
        raise KernelError(
            f"events must be a C- or Fortran-contiguous float32 array, found dtype {events.dtype}, "
            f"C-contiguous={events.flags.c_contiguous}, Fortran-contiguous={events.flags.f_contiguous}"
        )
    if not events.flags.writeable:
        raise KernelError("events are read-only; the scaling pass works in place (pass a writable copy)")
    return events


def _column_indices(names: Sequence[str], channel_names: Sequence[str], what: str) -> np.ndarray:
    lookup = {name: i for i, name in enumerate(channel_names)}
    missing = [n for n in names if n not in lookup]
    if missing:
        raise KernelError(f"{what} names channel(s) {missing} not among the event channels {list(channel_names)}")
    return np.array([lookup[n] for n in names], dtype=np.int64)


def compensate_events(events: np.ndarray, channel_names: Sequence[str], spillover: SpilloverLike) -> None:
    """Compensate the spillover's channels of ``events`` in place (``observed @ inv(S)``)."""
    events = _check_events(events)
    if len(channel_names) != events.shape[1]:
        raise KernelError(f"{len(channel_names)} channel names for {events.shape[1]} event columns")
    inverse = inverse_spillover(spillover)
    cols = _column_indices(list(spillover.channels), channel_names, f"spillover ({spillover.source})")
    _kc.compensate_inplace(events, cols, inverse)


def scale_events(
    events: np.ndarray,
    channel_names: Sequence[str],
    spillover: SpilloverLike | None,
    transforms: Mapping[str, Transform],
) -> None:
    """Compensate and transform ``events`` in place in one parallel pass.

    Parameters
    ----------
    events : ndarray, shape (n_events, n_channels), float32, C- or Fortran-contiguous
        Linear-scale event values (as read, PnG-scaled), overwritten with scaled values.
    channel_names : sequence of str
        ``$PnN`` name of each column.
    spillover : Spillover or None
        Its ``channels`` are compensated with ``inv(matrix)`` (cached on the object); None = no compensation.
    transforms : mapping of channel name to Transform
        Scale transform per channel (e.g. ``Logicle`` for fluorescence, ``Linear`` for scatter); channels
        not listed keep their (compensated) linear values.
    """
    events = _check_events(events)
    if len(channel_names) != events.shape[1]:
        raise KernelError(f"{len(channel_names)} channel names for {events.shape[1]} event columns")
    for name, t in transforms.items():
        if not isinstance(t, Transform):
            raise KernelError(f"transform for channel {name!r} must be a mrdflow.transforms.Transform, found {t!r}")
    tcols = _column_indices(list(transforms), channel_names, "transforms")
    by_col = {int(c): t for c, t in zip(tcols, transforms.values())}

    if spillover is not None:
        inverse = inverse_spillover(spillover)
        cols = _column_indices(list(spillover.channels), channel_names, f"spillover ({spillover.source})")
    else:
        inverse = np.zeros((0, 0))
        cols = np.zeros(0, dtype=np.int64)
    comp_set = set(int(c) for c in cols)

    distinct: dict[Transform, int] = {}
    for t in by_col.values():
        distinct.setdefault(t, len(distinct))
    params = np.zeros((max(len(distinct), 1), _kt.N_PARAMS))
    for t, row in distinct.items():
        params[row] = t.params
    # private writable copies: the kernel is compiled per array type (including read-only flags), and
    # the all-writable specialisation is the one measured fastest (scripts/bench_kernels.py)
    inverse = np.array(inverse, dtype=np.float64, order="C")

    def pack(columns: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        codes = np.zeros(len(columns), dtype=np.int64)
        rows = np.zeros(len(columns), dtype=np.int64)
        for j, c in enumerate(columns):
            t = by_col.get(int(c))
            if t is not None:
                codes[j], rows[j] = t.code, distinct[t]
        return codes, rows

    codes, rows = pack(list(cols))
    plain = np.array([c for c in sorted(by_col) if c not in comp_set], dtype=np.int64)
    plain_codes, plain_rows = pack(list(plain))
    _kc.compensate_transform_inplace(events, cols, inverse, codes, rows, plain, plain_codes, plain_rows, params)
