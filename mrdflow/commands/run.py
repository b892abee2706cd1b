"""``mrdflow run PANEL.yaml``: analyse every sample of a panel as a batch (see :mod:`mrdflow.batch`)."""

from __future__ import annotations

import argparse
import sys

HELP = "analyse every sample of a panel: results.csv, populations.csv, run.json, the store and QC reports"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("panel", metavar="PANEL.yaml", help="the panel: which files, tubes, markers, template")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="output folder (default: the panel's output_dir, 'results' beside the panel)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N", default=None,
                       help="local Dask worker processes (default: one per core, capped by samples and memory; "
                            "0 = analyse in this process, no cluster)")
    where.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="run on an existing Dask cluster, e.g. tcp://10.0.0.5:8786 (workers need mrdflow and "
                            "the same file paths)")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=False,
                        help="skip samples whose files, panel and template hashes already have an ok result in "
                             "the store (default: --no-resume, analyse everything)")
    parser.add_argument("--retries", type=int, default=2, metavar="K",
                        help="extra attempts of a sample whose worker was lost (default 2)")
    parser.add_argument("--no-reports", dest="reports", action="store_false",
                        help="skip the HTML reports (faster; CSVs, run.json and the store are still written)")


def run(args: argparse.Namespace) -> int:
    from mrdflow.batch import run_batch

    if args.workers is not None and args.workers < 0:
        print(f"mrdflow run: error: --workers must be 0 or more, found {args.workers}", file=sys.stderr)
        return 2
    if args.retries < 0:
        print(f"mrdflow run: error: --retries must be 0 or more, found {args.retries}", file=sys.stderr)
        return 2
    summary = run_batch(args.panel, args.out, workers=args.workers, scheduler=args.scheduler, resume=args.resume,
                        retries=args.retries, reports=args.reports, command=["mrdflow", *sys.argv[1:]])
    return summary.exit_code
