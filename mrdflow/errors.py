"""One exception hierarchy for every error mrdflow reports to a user.

Every message says *where* (file, field, row, event range), *what was expected* and *what was found*;
callers catch :class:`MrdflowError` to turn any of them into a clear message or a failed batch row.
"""

from __future__ import annotations


class MrdflowError(Exception):
    """Base of every error mrdflow raises on purpose."""


class FcsError(MrdflowError):
    """An FCS file cannot be read (not FCS, truncated, inconsistent keywords, unsupported layout)."""

    def __init__(self, path: object, message: str):
        self.path = str(path)
        self.reason = message
        super().__init__(f"{self.path}: {message}")


class SpilloverError(FcsError):
    """A spillover/compensation matrix is malformed, singular or names channels the file lacks."""


class KernelError(MrdflowError):
    """Invalid arguments to a numeric kernel (transform parameters, shapes, dtypes)."""


class TransformError(KernelError):
    """Transform parameters outside their valid range (e.g. logicle W > M/2)."""


class GateError(MrdflowError):
    """A gate's geometry is invalid, or a GatingML document cannot be understood."""


class PanelError(MrdflowError):
    """panel.yaml is invalid or does not fit the files it names."""


class TemplateError(MrdflowError):
    """A gating template is invalid (cycle, missing parent, unknown method or argument, ...)."""


class AnalysisError(MrdflowError):
    """Inconsistent inputs to quantification or QC (negative or contradictory counts, array shapes, settings)."""


class StudyError(MrdflowError):
    """A study definition or clinical table is invalid (named table, row and column)."""


__all__ = [
    "MrdflowError",
    "FcsError",
    "SpilloverError",
    "KernelError",
    "TransformError",
    "GateError",
    "PanelError",
    "TemplateError",
    "AnalysisError",
    "StudyError",
]
