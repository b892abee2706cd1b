"""Numba kernels: arrays in, arrays out (compensation, transforms, gate geometry). Imports nothing of ours.

Modules: :mod:`.transforms` (GatingML 2.0 scale transforms and inverses, per element and per array),
:mod:`.compensate` (inverse spillover, spectral unmixing, the fused compensation + transform pass),
:mod:`.gates` (rectangle, polygon and ellipsoid membership within a parent mask). The validated,
user-facing wrappers are :mod:`mrdflow.transforms`, :mod:`mrdflow.scaling` and :mod:`mrdflow.gating.gates`.
"""
