"""mrdflow: EuroFlow NGF flow-cytometry MRD pipeline for plasma-cell neoplasms.

From FCS files to MRD results (fraction of evaluable nucleated cells, LOD/LLOQ, status, QC) and on to
clinical-trial endpoints. See README.md for the commands and DESIGN notes in the docstrings of each part.
"""

from mrdflow._version import __version__

from mrdflow.errors import MrdflowError

__all__ = ["__version__", "MrdflowError"]
