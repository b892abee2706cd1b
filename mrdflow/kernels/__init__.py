"""Numba kernels: arrays in, arrays out (compensation, transforms, gate geometry). Imports nothing of ours.

Modules: :mod:`.transforms` (GatingML 2.0 scale transforms and inverses, per element and per array),
:mod:`.compensate` (inverse spillover, spectral unmixing, the fused compensation + transform pass),
:mod:`.gates` (rectangle, polygon and ellipsoid membership within a parent mask). The validated,
user-facing wrappers are :mod:`mrdflow.transforms`, :mod:`mrdflow.scaling` and :mod:`mrdflow.gating.gates`.
"""

import os as _os

# numba's OpenMP threads sleep rather than spin while waiting for work (unless the user chose otherwise):
# on a machine shared with other processes (Dask workers side by side, other jobs) spinning threads steal the
# cores the working ones need, and a short parallel kernel can take several times longer. Read by the OpenMP
# runtime when numba first starts its threads, so it is set on import of the kernels.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
