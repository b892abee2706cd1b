"""Ground-truth side-cars written beside every simulated FCS file.

``NAME.truth.npz`` — per-event arrays, aligned with the FCS events:

* ``labels`` uint8: population code, an index into ``label_names``;
* ``label_names`` str: population names (``debris``, ``doublet``, ``neutrophil``, ..., ``aberrant_pc``);
* ``light_chain`` uint8: 0 none, 1 κ, 2 λ (cytoplasmic light chain of B cells and plasma cells);
* ``time_excluded`` bool: acquired during a simulated clog (flow-rate drop + signal shift);
* ``doublet_index`` int64 and ``doublet_parts`` uint8 (n_doublets, 2): which events are doublets and the
  population codes of their two cells.

``NAME.truth.json`` — counts per population (all events and evaluable), the evaluable nucleated cell count
(definition in the ``evaluable_definition`` field), the true MRD fraction, and every generation parameter.
``SAMPLE.truth.json`` — the same summed over the tubes of one specimen.

The npz is written uncompressed with fixed zip timestamps so identical inputs give identical bytes everywhere.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Mapping

import numpy as np

from mrdflow.simulate.instrument import Acquisition
from mrdflow.simulate.populations import DEBRIS, DOUBLET, LABEL_CODE, LABELS, NUCLEATED, KAPPA, LAMBDA

EVALUABLE_DEFINITION = (
    "evaluable nucleated cells = single nucleated cells of every population (nucleated red cells included), "
    "excluding debris, doublets and events acquired during a simulated clog (time_excluded); events at the "
    "detector margin (saturated) are NOT excluded and are counted separately in n_margin_events"
)
MRD_DEFINITION = "mrd_fraction = evaluable aberrant_pc / evaluable nucleated cells"


def tube_counts(acq: Acquisition) -> dict:
    """Counts of one tube (all events, evaluable events, light chains, margins)."""
    n_lab = len(LABELS)
    all_counts = np.bincount(acq.labels, minlength=n_lab)
    keep = ~acq.time_excluded
    ev_counts = np.bincount(acq.labels[keep], minlength=n_lab)
    nucleated = [LABEL_CODE[k] for k in NUCLEATED]
    n_evaluable = int(ev_counts[nucleated].sum())
    margin = np.any(acq.events[:, :12] >= np.float32(262_143), axis=1)
    pcs = keep & (acq.labels == LABEL_CODE["normal_pc"])
    n_ab = int(ev_counts[LABEL_CODE["aberrant_pc"]])
    return {
        "n_events": int(acq.labels.shape[0]),
        "n_debris": int(all_counts[DEBRIS]),
        "n_doublets": int(all_counts[DOUBLET]),
        "n_time_excluded": int(acq.time_excluded.sum()),
        "n_margin_events": int(margin.sum()),
        "n_evaluable": n_evaluable,
        "n_aberrant_pc": n_ab,
        "n_normal_pc": int(ev_counts[LABEL_CODE["normal_pc"]]),
        "n_plasma_cells": n_ab + int(ev_counts[LABEL_CODE["normal_pc"]]),
        "mrd_fraction": n_ab / n_evaluable if n_evaluable else 0.0,
        "normal_pc_kappa": int(np.count_nonzero(pcs & (acq.light_chain == KAPPA))),
        "normal_pc_lambda": int(np.count_nonzero(pcs & (acq.light_chain == LAMBDA))),
        "doublets_with_aberrant_pc": int(np.any(acq.doublet_parts == LABEL_CODE["aberrant_pc"], axis=1).sum()),
        "counts_all_events": {name: int(c) for name, c in zip(LABELS, all_counts)},
        "counts_evaluable": {name: int(ev_counts[LABEL_CODE[name]]) for name in NUCLEATED},
        "clog_seconds": None if acq.clog_seconds is None else list(acq.clog_seconds),
        "acquisition_seconds": acq.duration_seconds,
    }


def specimen_counts(tubes: Mapping[str, dict]) -> dict:
    """Sum tube counts of one specimen (merged denominator = sum of the tubes' evaluable cells)."""
    keys = ("n_events", "n_debris", "n_doublets", "n_time_excluded", "n_margin_events", "n_evaluable",
            "n_aberrant_pc", "n_normal_pc", "n_plasma_cells")
    total = {k: sum(t[k] for t in tubes.values()) for k in keys}
    total["mrd_fraction"] = total["n_aberrant_pc"] / total["n_evaluable"] if total["n_evaluable"] else 0.0
    total["mrd_fraction_per_tube"] = {name: t["mrd_fraction"] for name, t in tubes.items()}
    return total


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write an ``.npz`` (readable by :func:`numpy.load`) with fixed timestamps: same arrays → same bytes.

    Members are stored uncompressed: deflate output differs between zlib builds (zlib vs zlib-ng), which
    would break byte-for-byte regeneration of ``sample_fcs/`` on another machine.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    tmp.replace(path)
    return path


def write_json(path: Path, obj: dict) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(obj, indent=1, default=_plain) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def _plain(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_tube_truth(stem: Path, acq: Acquisition, info: dict) -> tuple[Path, Path, dict]:
    """Write ``STEM.truth.npz`` and ``STEM.truth.json``; returns both paths and the counts."""
    npz = write_npz(stem.with_name(stem.name + ".truth.npz"), {
        "labels": acq.labels,
        "label_names": np.array(LABELS),
        "light_chain": acq.light_chain,
        "time_excluded": acq.time_excluded,
        "doublet_index": acq.doublet_index,
        "doublet_parts": acq.doublet_parts,
    })
    counts = tube_counts(acq)
    doc = {"evaluable_definition": EVALUABLE_DEFINITION, "mrd_definition": MRD_DEFINITION, **counts, **info}
    js = write_json(stem.with_name(stem.name + ".truth.json"), doc)
    return npz, js, counts


def truth_path(fcs_path: Path | str) -> Path:
    """The ``.truth.npz`` side-car written beside a simulated FCS file (``NAME.fcs`` → ``NAME.truth.npz``)."""
    p = Path(fcs_path)
    return p.with_name(p.stem + ".truth.npz")


def truth_mask(fcs_path: Path | str, *populations: str) -> np.ndarray:
    """Per-event truth of a simulated file: True where the event belongs to any of ``populations``
    (names from :data:`LABELS`, e.g. ``"aberrant_pc"``), in file order."""
    with np.load(truth_path(fcs_path)) as npz:
        names = [str(x) for x in npz["label_names"]]
        unknown = [p for p in populations if p not in names]
        if unknown:
            raise ValueError(f"{truth_path(fcs_path)}: unknown population(s) {unknown}; known: {names}")
        return np.isin(npz["labels"], [names.index(p) for p in populations])
