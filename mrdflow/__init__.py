"""mrdflow: EuroFlow NGF flow-cytometry MRD pipeline for plasma-cell neoplasms.

From FCS files to MRD results (fraction of evaluable nucleated cells, LOD/LLOQ, status, QC) and on to
clinical-trial endpoints. See README.md for the commands and DESIGN notes in the docstrings of each part.
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("mrdflow")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0+src"

from mrdflow.errors import MrdflowError

__all__ = ["__version__", "MrdflowError"]
