"""Compile, or load from numba's cache, the kernels one sample's analysis and QC report call, split between the
workers of a batch.

numba compiles a kernel on its first call in each process, or loads it from its on-disk cache (``cache=True``)
if an earlier process compiled it. On a first run (a fresh install, a new numba or mrdflow version) every
worker of a batch would compile every kernel for its first sample, each the same ~25 s of single-core work. A
batch instead has worker ``k`` of ``n`` compile part ``k`` of :data:`SIGNATURES` first, all parts at once (the
costliest kernel to the part with the least work so far, and so on); each kernel is then compiled once and the
workers load the others' from the cache. With a warm cache a part only loads what the first sample would load
anyway.

The signatures are the argument types the pipeline gives the kernels (``mrdflow.pipeline.analyze_sample_tubes``
with plot data, and the report), written as numba type expressions (``float32[::1, :]``: a Fortran-ordered 2-D
float32 array): a kernel called with other types is compiled on its call, as before.
``tests/test_kernel_warmup.py`` checks that after :func:`warm_kernels` analysing samples and rendering their
reports compiles nothing more.
"""

from __future__ import annotations

import importlib

from numba.core import types as _types

__all__ = ["SIGNATURES", "partition", "warm_kernels"]

#: (module of mrdflow.kernels, kernel, called only by the QC report?, seconds to compile, argument types); the
#: seconds (one core of a 2-vCPU Zen 3, cold cache, the helpers each calls included) only balance the parts
SIGNATURES: tuple[tuple[str, str, bool, float, str], ...] = (
    ('gates', 'polygon_mask_columns', False, 4.8,
     '(float32[::1, :], int64, int64, float64[::1], float64[::1], boolean[::1], boolean[::1])'),
    ('bins', '_clipped_bin_means', False, 3.8,
     '(float32[::1, :], int64[::1], int64[::1], int64[::1], float64[::1], float64[::1], float64[:, ::1])'),
    ('compensate', 'compensate_transform_inplace', False, 3.4,
     '(float32[::1, :], int64[::1], float64[:, ::1], int64[::1], int64[::1], int64[::1], int64[::1], int64[::1], '
     'float64[:, ::1])'),
    ('select', '_rows_at_ranks', False, 2.4,
     '(uint8[::1], uint64[::1], int64[::1], int64[:, ::1], int64[::1])'),
    ('bins', '_sorted_distinct', False, 2.3,
     '(float32[::1],)'),
    ('gates', 'polygon_grid', False, 1.8,
     '(float64[::1], float64[::1], int64)'),
    ('gates', 'rectangle_mask_columns', False, 1.7,
     '(float32[::1, :], int64[::1], float64[::1], float64[::1], boolean[::1], boolean[::1])'),
    ('gates', 'polygon_mask', True, 1.6,
     "(float32[:, ::1], int64, int64, float64[::1], float64[::1], Array(uint8, 2, 'C', readonly=True), "
     "float64, float64, float64, float64, boolean[::1], boolean[::1])"),
    ('gates', 'rectangle_mask_dense', True, 1.6,
     '(float32[:, ::1], int64[::1], float64[::1], float64[::1], boolean[::1], boolean[::1])'),
    ('transforms', 'transform_into', False, 1.4,
     '(float32[::1], float32[::1], int64, float64[::1])'),
    ('select', 'gather_rows_into', False, 1.4,
     '(float32[::1, :], int64[::1], int64[::1], float32[:, ::1])'),
    ('transforms', '_fill_table', False, 1.2,
     '(float64[::1], int64, float64)'),
    ('checks', '_count_nonfinite_blocks', False, 0.9,
     '(float32[::1, :], float32[::1], int64, int64[:, ::1], int64[:, ::1])'),
    ('select', '_tail_shuffle_sample', False, 0.7,
     '(int64, int64, uint64[::1], int64[::1])'),
    ('gates', 'rectangle_mask', True, 0.6,
     '(float32[:, ::1], int64[::1], float64[::1], float64[::1], boolean[::1], boolean[::1])'),
    ('select', '_paint_packed', True, 0.5,
     '(uint8[:, ::1], uint8[::1], int64[::1], uint8[::1])'),
)

_NAMESPACE = {name: getattr(_types, name) for name in dir(_types) if not name.startswith("_")}


def partition(parts: int, *, report: bool = True) -> list[list[int]]:
    """Indices into :data:`SIGNATURES` for each of ``parts`` parts, balanced by compile seconds (longest first,
    each to the part with the least so far); ``report=False`` leaves out the report's kernels."""
    if not (isinstance(parts, int) and parts >= 1):
        raise ValueError(f"partition: parts must be a positive integer, found {parts!r}")
    load = [0.0] * parts
    out: list[list[int]] = [[] for _ in range(parts)]
    for i in sorted(range(len(SIGNATURES)), key=lambda i: -SIGNATURES[i][3]):
        if SIGNATURES[i][2] and not report:
            continue
        k = min(range(parts), key=lambda j: (load[j], j))
        out[k].append(i)
        load[k] += SIGNATURES[i][3]
    return out


def warm_kernels(part: int = 0, parts: int = 1, *, report: bool = True) -> list[str]:
    """Compile (or load from the cache) the kernels of part ``part`` of ``parts`` (:func:`partition`);
    ``report=False`` leaves out those only the QC report calls.

    Returns one message per entry that could not be built (a numba that spells a type differently, say):
    that kernel is then compiled on its first call, as without a warm-up.
    """
    if not (isinstance(parts, int) and parts >= 1 and isinstance(part, int) and 0 <= part < parts):
        raise ValueError(f"warm_kernels: need 0 <= part < parts, found part={part!r}, parts={parts!r}")
    problems = []
    for i in partition(parts, report=report)[part]:
        module, name, _, _, signature = SIGNATURES[i]
        try:
            kernel = getattr(importlib.import_module(f"mrdflow.kernels.{module}"), name)
            kernel.compile(eval(signature, {"__builtins__": {}}, _NAMESPACE))  # noqa: S307 - numba type names only
        except Exception as exc:  # noqa: BLE001 - a warm-up problem only costs the compile on first call
            problems.append(f"{module}.{name}{signature}: {type(exc).__name__}: {exc}")
    return problems
