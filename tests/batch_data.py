"""Hand-built sample results (with plot data) for the store and report tests — no analysis needed."""

from __future__ import annotations

import math

import numpy as np

from mrdflow.result import PopulationCount, SampleResult, TubePlotData


def plot_data(tube: str = "tube2", n: int = 3000, seed: int = 0) -> TubePlotData:
    """A small tube: two scatter columns, CD38/CD138/CD45/CD19/κ/λ, Time; gates of every drawable type."""
    rng = np.random.default_rng(seed)
    columns = ["FSC-A", "SSC-A", "CD38", "CD138", "CD45", "CD19", "cyIgKappa", "cyIgLambda", "Time"]
    events = rng.normal(0.5, 0.15, size=(n, len(columns))).astype(np.float32)
    events[:, -1] = np.sort(rng.uniform(0, 100, n)).astype(np.float32)
    names = ["root", "cells", "singlets", "pc", "normal_pc", "aberrant_pc"]
    labels = rng.choice(len(names), size=n, p=[0.05, 0.25, 0.55, 0.05, 0.06, 0.04]).astype(np.uint8)
    parents = {"cells": "root", "singlets": "cells", "pc": "singlets", "normal_pc": "pc", "aberrant_pc": "pc"}
    gates = {
        "cells": {"type": "polygon", "dims": ["FSC-A", "SSC-A"],
                  "vertices": [[0.2, 0.2], [0.9, 0.2], [0.9, 0.9], [0.2, 0.9]]},
        "singlets": {"type": "range", "dims": ["FSC-A"], "min": [0.1], "max": [None]},
        "pc": {"type": "rectangle", "dims": ["CD38", "CD138"], "min": [0.6, 0.55], "max": [None, 1.2]},
        "normal_pc": {"type": "ellipsoid", "dims": ["CD45", "CD19"], "mean": [0.6, 0.6],
                      "covariance": [[0.01, 0.002], [0.002, 0.02]], "distance_square": 4.0},
        "aberrant_pc": {"type": "boolean", "op": "and", "operands": ["pc", "normal_pc"], "complement": [False, True]},
    }
    gate_dims = {k: v.get("dims", []) for k, v in gates.items()}
    trace = {"bin_start": list(np.linspace(0, 100, 40)), "bin_rate": list(rng.normal(300, 20, 40)),
             "excluded_ranges": [[30.0, 37.5]], "fraction_removed": 0.075}
    return TubePlotData(tube=tube, columns=columns, events=events, labels=labels, label_names=names, gates=gates,
                        gate_dims=gate_dims, parents=parents, time_trace=trace)


def sample_result(sample_id: str = "S1", *, status: str = "NEGATIVE", plots: bool = False) -> SampleResult:
    """An ``ok`` result with populations, flags, details and (optionally) plot data."""
    n_eval = 10_412_530
    aberrant = {"NEGATIVE": 0, "POSITIVE": 5200, "POSITIVE_BELOW_LLOQ": 31, "NOT_EVALUABLE": 0}[status]
    return SampleResult(
        sample_id=sample_id, files=[f"/data/{sample_id}_T1.fcs", f"/data/{sample_id}_T2.fcs"],
        n_events_acquired=11_000_000, n_events_evaluable=n_eval, n_plasma_cells=9000 + aberrant,
        n_normal_pc=9000, n_aberrant_pc=aberrant, mrd_fraction=aberrant / n_eval, lod=20 / n_eval,
        lloq=50 / n_eval, mrd_status=status, sensitivity_met=True,
        clonality="kappa" if aberrant > 100 else "not_assessed", hemodilution="adequate",
        qc_flags=["flow_rate_anomaly", "spillover_missing"],
        populations=[PopulationCount("tube1", "cells", "", 10_900_000, 99.09, 104.68),
                     PopulationCount("tube1", "pc", "cells", 9000 + aberrant, 1 / 3, math.nan),
                     PopulationCount("tube2", "empty", "pc", 0, math.nan, 0.0)],
        details={"denominator": "combined", "removed_by_time_qc": 1234, "ratio": 0.1 + 0.2, "nan_value": math.nan,
                 "per_tube": {"tube1": {"evaluable": 5_000_000}}},
        plots=[plot_data("tube1", seed=1), plot_data("tube2", seed=2)] if plots else [],
    )


# ------------------------------------------------------------------------------------------------------------
# small batches of real files (copies and corrupted variants of the bundled sample_fcs/ demo)
# ------------------------------------------------------------------------------------------------------------
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE_FCS = REPO / "sample_fcs"
TEMPLATE = REPO / "gating_templates" / "euroflow_ngf.yaml"
DEMO_PANEL = REPO / "panels" / "demo.yaml"
_KEEP_KEYWORDS = ("$SRC", "TUBE NAME", "$CYT", "$TIMESTEP", "$DATE", "$BTIM", "$ETIM")


def write_panel(folder: Path, *, store: Path | None = None, name: str = "panel.yaml", by_keyword: bool = False) -> Path:
    """The demo panel, pointed at ``folder/fcs/*.fcs`` and the repository's NGF template."""
    import yaml

    doc = yaml.safe_load(DEMO_PANEL.read_text())
    doc.update(files="fcs/*.fcs", template=str(TEMPLATE), output_dir="out")
    if store is not None:
        doc["store"] = str(store)
    if by_keyword:
        doc["grouping"] = {"by": "keyword", "sample_keyword": "$SRC", "tube_keyword": "TUBE NAME"}
    path = folder / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def copy_sample(src_id: str, dst_id: str, fcs_dir: Path) -> None:
    fcs_dir.mkdir(parents=True, exist_ok=True)
    for t in ("T1", "T2"):
        shutil.copyfile(SAMPLE_FCS / f"{src_id}_{t}.fcs", fcs_dir / f"{dst_id}_{t}.fcs")


def rewrite(src: Path, dst: Path, *, events=None, markers=None, spillover="keep", keywords=None,
            rename=None, ranges=None) -> Path:
    """Re-write an FCS file with some part replaced (events, $PnS markers, spillover, keywords, $PnN names by
    ``rename`` — old → new; the spillover keeps naming the same channels —, $PnR ``ranges``)."""
    from mrdflow.fcs import read_fcs, write_fcs

    fcs = read_fcs(src)
    kw = {k: str(fcs.keywords[k]) for k in _KEEP_KEYWORDS if k in fcs.keywords}
    kw.update(keywords or {})
    rename = rename or {}
    if spillover == "keep" and fcs.spillover is not None and rename:
        from dataclasses import replace
        spillover = replace(fcs.spillover, channels=tuple(rename.get(c, c) for c in fcs.spillover.channels))
    return write_fcs(dst, fcs.events if events is None else events, [rename.get(c.name, c.name) for c in fcs.channels],
                     markers=markers if markers is not None else [c.marker for c in fcs.channels],
                     spillover=fcs.spillover if spillover == "keep" else spillover, keywords=kw,
                     ranges=[c.range for c in fcs.channels] if ranges is None else ranges)


def make_broken_samples(fcs_dir: Path, base: str = "DEMO01") -> dict[str, str]:
    """Five samples, each with one broken tube-1 file; returns sample id → the kind of damage."""
    import numpy as np

    from mrdflow.fcs import read_fcs

    fcs_dir.mkdir(parents=True, exist_ok=True)
    src = SAMPLE_FCS / f"{base}_T1.fcs"
    for sid in ("BADTRUNC", "BADNOTFCS", "BADMARKER", "BADNAN", "BADSPILL"):
        shutil.copyfile(SAMPLE_FCS / f"{base}_T2.fcs", fcs_dir / f"{sid}_T2.fcs")
    data = src.read_bytes()
    (fcs_dir / "BADTRUNC_T1.fcs").write_bytes(data[: len(data) * 2 // 3])
    (fcs_dir / "BADNOTFCS_T1.fcs").write_text("sample,CD38,CD138\n1,2,3\n")
    fcs = read_fcs(src)
    markers = [("CD99" if c.marker == "CD19" else c.marker) for c in fcs.channels]
    rewrite(src, fcs_dir / "BADMARKER_T1.fcs", markers=markers)
    events = fcs.events.copy()
    events[100:110, 6] = np.nan
    rewrite(src, fcs_dir / "BADNAN_T1.fcs", events=events)
    m = fcs.spillover.matrix.copy()
    m[1] = m[0]  # two fluorochromes spilling identically: singular
    text = ",".join([str(len(m)), *fcs.spillover.channels, *(repr(float(v)) for v in m.ravel())])
    rewrite(src, fcs_dir / "BADSPILL_T1.fcs", spillover=None, keywords={"SPILL": text})
    return {"BADTRUNC": "truncated", "BADNOTFCS": "not FCS", "BADMARKER": "missing marker", "BADNAN": "NaN",
            "BADSPILL": "singular spillover"}


def die_once(task):
    """A batch task that kills its worker process the first time it meets sample ``S2`` (a lost worker), then
    analyses normally; the marker file beside the sample's first file records the death."""
    import os

    from mrdflow.batch import analyze_task

    marker = Path(next(iter(task.tubes.values()))).with_suffix(".worker-died")
    if task.sample_id == "S2" and not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(1)
    return analyze_task(task)


def with_worker_env(task):
    """A batch task that analyses normally and records, in the result's details, the worker's
    ``MALLOC_TRIM_THRESHOLD_`` (None when unset)."""
    import os

    from mrdflow.batch import analyze_task

    outcome = analyze_task(task)
    outcome.result.details["worker_malloc_trim"] = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    return outcome
