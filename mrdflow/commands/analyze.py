"""``mrdflow analyze FILE... --panel PANEL.yaml [--out DIR] [--sample-id ID] [--specimen TYPE]``: one sample, its
tubes given explicitly. Prints the result; with ``--out`` writes ``DIR/result.json`` (the results.csv fields, the
populations and the details), atomically."""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
from pathlib import Path

from mrdflow.errors import MrdflowError

HELP = "analyse one sample (its tube files): MRD result, QC and populations; optionally write result.json"


def _cluster_text(c: dict) -> str:
    """One aberrant cluster of ``details.tubes.*.phenotype.clusters`` as text: ``CD19 negative,CD56 positive (412)``."""
    text = ",".join(f"{m} {v}" for m, v in c["aberrancies"].items())
    if c["light_chain"]:
        text += f" {c['light_chain']}"
    if c.get("marked_per_event", True):
        return f"{text} ({c['n_events']})"
    clonal = max(0.0, c["n_events"] - c["expected_normal_events"])
    return f"{text} ({c['n_events']}, ~{clonal:.0f} clonal: counted, not marked per event)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="the sample's FCS files (one per tube)")
    parser.add_argument("--panel", required=True, type=Path, metavar="PANEL.yaml", help="the panel")
    parser.add_argument("--out", type=Path, metavar="DIR", help="write DIR/result.json")
    parser.add_argument("--sample-id", metavar="ID", help="sample id (default: from the panel's grouping rule)")
    parser.add_argument("--specimen", choices=("bone_marrow", "peripheral_blood"),
                        help="specimen type of this sample (default: the panel's samples table, specimen_by rule "
                             "or specimen)")


def run(args: argparse.Namespace) -> int:
    from mrdflow.panel import load_panel
    from mrdflow.pipeline import analyze_sample

    panel = load_panel(args.panel)  # a bad panel is a usage error (exit 2, via cli)
    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        raise MrdflowError(f"file(s) not found: {', '.join(missing)}")
    try:
        result = analyze_sample(args.files, panel, sample_id=args.sample_id, specimen=args.specimen)
    except MrdflowError as exc:
        print(f"mrdflow analyze: sample failed: {exc}")
        return 1
    print(format_result(result))
    if args.out is not None:
        path = write_result_json(result, args.out)
        print(f"wrote {path}")
    return 0


def format_result(result) -> str:
    """A short human-readable summary of a :class:`~mrdflow.result.SampleResult`."""
    d = result.details

    def num(x, fmt):
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)

    lines = [
        f"sample {result.sample_id}: {result.mrd_status}"
        f"  (MRD {num(result.mrd_fraction, '.3g')}, {result.n_aberrant_pc} aberrant of "
        f"{result.n_events_evaluable:,} evaluable; LOD {num(result.lod, '.2g')}, LLOQ {num(result.lloq, '.2g')}, "
        f"sensitivity {'met' if result.sensitivity_met else 'NOT met'})",
        f"  specimen {str(d.get('specimen', '?')).replace('_', ' ')}; "
        f"plasma cells {result.n_plasma_cells:,} (normal {result.n_normal_pc:,}, aberrant {result.n_aberrant_pc:,});"
        f" clonality {result.clonality}; hemodilution {result.hemodilution}; denominator {d.get('denominator')}",
        f"  acquired {result.n_events_acquired:,}; removed % time {num(d['qc_removed_pct']['time'], '.2f')}, margins "
        f"{num(d['qc_removed_pct']['margin'], '.2f')}, doublets {num(d['qc_removed_pct']['doublets'], '.2f')}, "
        f"debris {num(d['qc_removed_pct']['debris'], '.2f')}",
    ]
    if "pct_circulating_pc" in d:
        lines.append(f"  circulating plasma cells {num(d['pct_circulating_pc'], '.3g')} % of leukocytes "
                     f"(clonal {num(d['pct_circulating_clonal_pc'], '.3g')} %); PCL criterion (>= "
                     f"{d['pcl_min_pct']:g} %) {'MET' if d['ppcl'] else 'not met'}")
    for tube, t in d["tubes"].items():
        clusters = "; ".join(_cluster_text(c) for c in t["phenotype"]["clusters"]) or "none"
        lines.append(f"  {tube} ({Path(t['file']).name}): evaluable {t['n_events_evaluable']:,}, PCs "
                     f"{t['n_plasma_cells']:,}, aberrant {t['n_aberrant_pc']:,}; clusters: {clusters}")
    lines.append(f"  qc flags: {';'.join(result.qc_flags) or '-'}")
    return "\n".join(lines)


def write_result_json(result, out_dir: Path) -> Path:
    """``out_dir/result.json`` (strict JSON: NaN → null), written to a temporary name and renamed."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "result.json"
    doc = result.to_json_dict()
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".result.", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(doc, fh, indent=1, allow_nan=False, default=_jsonable)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _jsonable(v):
    if isinstance(v, Path):
        return str(v)
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, (set, tuple)):
        return list(v)
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")
