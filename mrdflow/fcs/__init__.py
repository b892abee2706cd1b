"""Reading and writing FCS 2.0–3.2 list-mode files.

Public API: :func:`read_fcs`, :func:`list_datasets`, :func:`write_fcs`, :func:`read_spillover_csv` and the
data classes :class:`FcsData`, :class:`Channel`, :class:`DatasetInfo`, :class:`Spillover`, :class:`Keywords`.
"""

from mrdflow.fcs.spill import Spillover, read_spillover_csv
from mrdflow.fcs.text import Keywords
from mrdflow.fcs.writer import write_fcs

__all__ = ["Keywords", "Spillover", "read_spillover_csv", "write_fcs"]
