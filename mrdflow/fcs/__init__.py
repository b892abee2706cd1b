"""Reading and writing FCS 2.0–3.2 list-mode files.

Public API: :func:`read_fcs`, :func:`list_datasets`, :func:`write_fcs`, :func:`read_spillover_csv` and the
data classes :class:`FcsData`, :class:`Channel`, :class:`DatasetInfo`, :class:`Spillover`, :class:`Keywords`.
"""

from mrdflow.fcs.reader import Channel, DatasetInfo, FcsData, list_datasets, read_fcs
from mrdflow.fcs.spill import Spillover, read_spillover_csv
from mrdflow.fcs.text import Keywords
from mrdflow.fcs.writer import write_fcs

__all__ = [
    "Channel",
    "DatasetInfo",
    "FcsData",
    "Keywords",
    "Spillover",
    "list_datasets",
    "read_fcs",
    "read_spillover_csv",
    "write_fcs",
]
