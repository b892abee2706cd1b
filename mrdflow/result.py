"""The result of analysing one sample: the row of ``results.csv`` and everything a report needs.

This module is the contract between :mod:`mrdflow.pipeline` (which fills a :class:`SampleResult`),
:mod:`mrdflow.batch` / :mod:`mrdflow.store` (which persist it) and :mod:`mrdflow.report` (which renders it).
It holds plain data only: no I/O, no gating.

Conventions
-----------
* Fractions (``mrd_fraction``, ``lod``, ``lloq``) are fractions of **evaluable nucleated cells** (0–1), not %.
* ``pct_of_parent`` / ``pct_of_evaluable`` in :class:`PopulationCount` are percentages (0–100).
* The column order of ``results.csv`` (:data:`RESULTS_COLUMNS`) is a public contract (DESIGN.md §3.2): columns may be
  added at the end, never renamed or removed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

#: results.csv columns, in order (DESIGN.md §3.2). Add new columns at the end only.
RESULTS_COLUMNS: tuple[str, ...] = (
    "sample_id",
    "files",
    "status",
    "error",
    "n_events_acquired",
    "n_events_evaluable",
    "n_plasma_cells",
    "n_normal_pc",
    "n_aberrant_pc",
    "mrd_fraction",
    "lod",
    "lloq",
    "mrd_status",
    "sensitivity_met",
    "clonality",
    "hemodilution",
    "qc_flags",
)

#: populations.csv columns, in order (DESIGN.md §3.3).
POPULATION_COLUMNS: tuple[str, ...] = (
    "sample_id",
    "tube",
    "population",
    "parent",
    "count",
    "pct_of_parent",
    "pct_of_evaluable",
)

MRD_STATUSES = ("NEGATIVE", "POSITIVE", "POSITIVE_BELOW_LLOQ", "NOT_EVALUABLE")
CLONALITIES = ("kappa", "lambda", "polyclonal", "indeterminate", "not_assessed")
HEMODILUTION = ("adequate", "suspected", "not_assessed")


@dataclass(frozen=True)
class PopulationCount:
    """One population of one tube: a row of ``populations.csv``."""

    tube: str
    population: str
    parent: str  # "" for the root
    count: int
    pct_of_parent: float  # percent (0-100) of the parent's events; NaN when the parent is empty
    pct_of_evaluable: float  # percent (0-100) of the tube's evaluable nucleated cells; NaN when none


@dataclass
class TubePlotData:
    """What the QC report draws for one tube, kept small enough to ship back from a Dask worker.

    ``events`` is a random subsample (float32, ≤ ~100 k rows) of the tube's *scaled* (compensated and transformed)
    events, columns named by ``columns`` (markers, scatter and Time names); ``labels`` gives each subsampled event
    its deepest population (index into ``label_names``). ``gates`` maps population name to the plain description of
    the gate that defined it for this sample (``Gate.to_dict()``), ``gate_dims`` to the dimensions it was drawn in.
    ``time_trace`` is the time/flow-rate QC trace (bin starts, rates, kept flags, excluded stretches) as plain lists.
    ``axis_units`` maps a column to the scale its values are on (the transform kind, e.g. ``"logicle"``).
    """

    tube: str
    columns: list[str]
    events: np.ndarray
    labels: np.ndarray
    label_names: list[str]
    gates: dict[str, dict[str, Any]] = field(default_factory=dict)
    gate_dims: dict[str, list[str]] = field(default_factory=dict)
    parents: dict[str, str] = field(default_factory=dict)
    time_trace: dict[str, Any] = field(default_factory=dict)
    axis_units: dict[str, str] = field(default_factory=dict)


@dataclass
class SampleResult:
    """The analysis of one sample (one or two tubes of one specimen).

    The first fields are exactly the ``results.csv`` columns; ``details`` holds further named numbers (per-tube
    counts, denominator rule, QC removal per step, circulating-PC % for blood, ...) that go to ``result.json`` and
    the store; ``plots`` holds per-tube plot data for the report (not persisted).
    """

    sample_id: str
    files: list[str]
    status: str = "ok"
    error: str = ""
    n_events_acquired: int = 0
    n_events_evaluable: int = 0
    n_plasma_cells: int = 0
    n_normal_pc: int = 0
    n_aberrant_pc: int = 0
    mrd_fraction: float = math.nan
    lod: float = math.nan
    lloq: float = math.nan
    mrd_status: str = "NOT_EVALUABLE"
    sensitivity_met: bool = False
    clonality: str = "not_assessed"
    hemodilution: str = "not_assessed"
    qc_flags: list[str] = field(default_factory=list)
    populations: list[PopulationCount] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    plots: list[TubePlotData] = field(default_factory=list)

    @classmethod
    def failed(cls, sample_id: str, files: list[str], error: str) -> "SampleResult":
        """A ``failed`` row: the sample could not be analysed; ``error`` says which file and why."""
        return cls(sample_id=sample_id, files=list(files), status="failed", error=error)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_row(self) -> dict[str, Any]:
        """The ``results.csv`` row: file *names* joined by ``;``, flags joined by ``;``, booleans as true/false."""
        from pathlib import PurePath

        row: dict[str, Any] = {}
        for col in RESULTS_COLUMNS:
            value = getattr(self, col)
            if col == "files":
                value = ";".join(PurePath(f).name for f in value)
            elif col == "qc_flags":
                value = ";".join(value)
            elif col == "sensitivity_met":
                value = "true" if value else "false"
            elif isinstance(value, float) and math.isnan(value):
                value = ""
            row[col] = value
        return row

    def population_rows(self) -> list[dict[str, Any]]:
        """The ``populations.csv`` rows of this sample."""
        return [{"sample_id": self.sample_id, **asdict(p)} for p in self.populations]

    def to_json_dict(self) -> dict[str, Any]:
        """Everything but the plot data, JSON-ready (NaN becomes ``None``)."""

        def clean(v: Any) -> Any:
            if isinstance(v, float) and math.isnan(v):
                return None
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            if isinstance(v, np.generic):
                return clean(v.item())
            return v

        out = {col: getattr(self, col) for col in RESULTS_COLUMNS}
        out["files"] = list(self.files)
        out["populations"] = [asdict(p) for p in self.populations]
        out["details"] = self.details
        return clean(out)


__all__ = [
    "RESULTS_COLUMNS",
    "POPULATION_COLUMNS",
    "MRD_STATUSES",
    "CLONALITIES",
    "HEMODILUTION",
    "PopulationCount",
    "TubePlotData",
    "SampleResult",
]
