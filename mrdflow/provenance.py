"""Provenance of a run: software versions, SHA-256 of the panel, template and every input file, timings.

Everything here is plain data (JSON-ready dicts); :func:`write_run_json` writes ``run.json`` atomically.
The *input key* of a sample (:func:`input_key`) is what ``--resume`` matches on: the SHA-256 of its files, of the
panel, of the gating template and of an external spillover CSV when the panel uses one.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from mrdflow import __version__
from mrdflow.atomic import atomic_write_text

__all__ = [
    "DEPENDENCIES", "sha256_file", "software_versions", "panel_hashes", "input_key", "utc_now", "write_run_json",
]

#: distributions whose versions go into run.json (those installed)
DEPENDENCIES = ("numpy", "numba", "dask", "distributed", "scipy", "scikit-learn", "pydantic", "pyyaml",
                "matplotlib", "jinja2", "pandas", "flowkit")

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks; the file is not loaded whole)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def software_versions() -> dict[str, str]:
    """mrdflow, Python, platform and the installed versions of :data:`DEPENDENCIES`."""
    out = {"mrdflow": __version__, "python": sys.version.split()[0], "platform": platform.platform()}
    for dist in DEPENDENCIES:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def panel_hashes(panel: Any) -> dict[str, dict[str, str]]:
    """``{"panel": {path, sha256}, "template": {...}[, "compensation_csv": {...}]}`` of a loaded panel."""
    out = {}
    if panel.source is not None:
        out["panel"] = {"path": str(Path(panel.source).resolve()), "sha256": sha256_file(panel.source)}
    out["template"] = {"path": str(Path(panel.template).resolve()), "sha256": sha256_file(panel.template)}
    csv = getattr(panel.compensation, "csv", None)
    if csv is not None:
        out["compensation_csv"] = {"path": str(Path(csv).resolve()), "sha256": sha256_file(csv)}
    return out


def input_key(file_sha256: Mapping[str, str], config_sha256: Mapping[str, str]) -> str:
    """The resume key of a sample: SHA-256 over its files' hashes (by tube) and the configuration hashes.

    Parameters
    ----------
    file_sha256 : tube name → SHA-256 of that tube's FCS file (file *contents*, not names: a renamed or moved
        file with the same bytes keeps its key).
    config_sha256 : e.g. ``{"panel": ..., "template": ..., "compensation_csv": ...}`` hex digests.
    """
    doc = json.dumps({"files": dict(sorted(file_sha256.items())), "config": dict(sorted(config_sha256.items()))},
                     sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(doc.encode()).hexdigest()


def utc_now() -> str:
    """Current time, ISO 8601 UTC with seconds (``2026-01-05T09:20:00Z``)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_run_json(path: str | os.PathLike, provenance: Mapping[str, Any]) -> Path:
    """Write the run provenance as strict JSON (indented, keys in insertion order) atomically."""
    return atomic_write_text(path, json.dumps(provenance, indent=2, allow_nan=False) + "\n")
