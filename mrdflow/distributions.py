"""The few distribution functions the analysis needs, from :mod:`scipy.special` without importing
:mod:`scipy.stats`.

``import scipy.stats`` costs ~0.8 s per process (with :mod:`scipy.signal`), paid by every batch worker and
every ``mrdflow`` command; these are the same expressions scipy.stats evaluates (``chi2._ppf``,
``poisson._sf``), so the same floats — checked against scipy.stats in ``tests/test_peaks_and_distributions.py``.
"""

from __future__ import annotations

import math

from scipy import special

__all__ = ["chi2_ppf", "poisson_sf"]


def chi2_ppf(q: float, df: float) -> float:
    """Quantile ``q`` (0 < q < 1) of the chi-square distribution with ``df`` degrees of freedom."""
    if not 0.0 < q < 1.0 or not df > 0:
        raise ValueError(f"chi2_ppf: need 0 < q < 1 and df > 0, found q={q!r}, df={df!r}")
    return float(2.0 * special.gammaincinv(df / 2.0, q))


def poisson_sf(k: float, mu: float) -> float:
    """``P(X > k)`` for ``X ~ Poisson(mu)``, ``mu ≥ 0`` (1.0 for ``k < 0``)."""
    if not mu >= 0:
        raise ValueError(f"poisson_sf: need mu >= 0, found {mu!r}")
    k = math.floor(k)
    return 1.0 if k < 0 else float(special.pdtrc(k, mu))
