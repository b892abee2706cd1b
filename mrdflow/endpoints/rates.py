"""Proportions with exact (Clopper–Pearson) 95 % confidence intervals, and median (range) summaries."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy.stats import binomtest


@dataclass(frozen=True)
class Rate:
    """k of n with its exact two-sided confidence interval (``ci_low``/``ci_high`` None when n = 0)."""

    k: int
    n: int
    value: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float = 0.95

    def to_dict(self) -> dict:
        return {"n": self.k, "denominator": self.n, "rate": self.value, "ci95_low": self.ci_low,
                "ci95_high": self.ci_high, "ci_method": "Clopper-Pearson exact"}

    def text(self) -> str:
        if self.n == 0:
            return "0/0 (not estimable)"
        return (f"{self.k}/{self.n} ({100 * self.value:.0f}%; 95% CI {100 * self.ci_low:.0f}–"
                f"{100 * self.ci_high:.0f}%)")


def rate(k: int, n: int, confidence: float = 0.95) -> Rate:
    """Proportion k/n with the exact Clopper–Pearson interval (scipy ``binomtest(...).proportion_ci``)."""
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"rate: need 0 ≤ k ≤ n, got k={k}, n={n}")
    if n == 0:
        return Rate(0, 0, None, None, None, confidence)
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    return Rate(k, n, k / n, float(ci.low), float(ci.high), confidence)


@dataclass(frozen=True)
class Summary:
    """Median (range) of the non-missing values; n counts them."""

    n: int
    median: float | None
    minimum: float | None
    maximum: float | None

    def to_dict(self) -> dict:
        return {"n": self.n, "median": self.median, "min": self.minimum, "max": self.maximum}

    def text(self, fmt: str = "{:.1f}") -> str:
        if self.n == 0:
            return "not available"
        return f"{fmt.format(self.median)} ({fmt.format(self.minimum)}–{fmt.format(self.maximum)})"


def summarise(values: Iterable[float | None]) -> Summary:
    """Median and range, ignoring None/NaN."""
    arr = np.array([v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))], float)
    if arr.size == 0:
        return Summary(0, None, None, None)
    return Summary(int(arr.size), float(np.median(arr)), float(arr.min()), float(arr.max()))
