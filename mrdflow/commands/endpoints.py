"""`mrdflow endpoints STUDY.yaml --out DIR`: clinical-trial endpoints from the study tables."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "derive trial endpoints (IMWG/PCL response, MRD, PFS/OS/DOR, CAR-T kinetics, safety, frailty) from STUDY.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", type=Path, help="STUDY.yaml naming the tables and the rules")
    parser.add_argument("--out", type=Path, default=Path("endpoints_out"),
                        help="output folder (default: ./endpoints_out)")
    parser.add_argument("--mrd-csv", type=Path, default=None,
                        help="read MRD results from this CSV instead of the study's mrd table")
    parser.add_argument("--no-html", action="store_true", help="skip trial_report.html")


def run(args: argparse.Namespace) -> int:
    from mrdflow.endpoints.tables import read_csv_text
    from mrdflow.endpoints.trial import run_study

    overrides = {"mrd": read_csv_text(args.mrd_csv, "mrd")} if args.mrd_csv else None
    res = run_study(args.study, args.out, overrides=overrides, html=not args.no_html)
    e = res.endpoints
    print(f"{e['study_id']}: {e['n_enrolled']} enrolled, {e['n_infused']} infused; "
          f"ORR {e['orr']['n']}/{e['orr']['denominator']}, ≥CR {e['crr']['n']}/{e['crr']['denominator']}, "
          f"MRD-negative (ITT) {e['mrd_negative_rate_itt']['n']}/{e['mrd_negative_rate_itt']['denominator']}")
    src = e.get("mrd_source") or {}
    if src.get("kind"):
        print(f"MRD from the {'results store' if src['kind'] == 'store' else 'results.csv'} "
              f"{', '.join(src['paths'])}: {src['n_rows']} assessment(s) from {src['n_samples']} sample(s), "
              f"{len(src['failed_excluded'])} failed and {len(src['unmapped_excluded'])} unmapped excluded")
    for w in e.get("warnings") or []:
        print(f"warning: {w}")
    print(f"wrote {args.out}/patient_response.csv, assessment_response.csv, endpoints.json"
          + ("" if args.no_html else ", trial_report.html") + (", mrd_source.csv" if res.mrd_view is not None else ""))
    return 0
