"""``mrdflow validate-panel PANEL.yaml``: check a panel, its template and every file it matches, without analysing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "check a panel, its gating template and every matched FCS file (markers resolve, spillover usable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("panel", type=Path, help="panel YAML file")


def run(args: argparse.Namespace) -> int:
    from mrdflow.errors import MrdflowError
    from mrdflow.fcs import read_fcs
    from mrdflow.gating.template import load_template
    from mrdflow.panel import load_panel
    from mrdflow.panel_files import find_files, group_files, resolve_specimen
    from mrdflow.tube import check_tube, spillover_errors

    panel = load_panel(args.panel)
    template = load_template(panel.template)
    print(f"panel {panel.name}: {len(panel.tubes)} tube(s) ({', '.join(panel.tubes)}); "
          f"template {template.name}: {len(template.nodes)} populations")
    samples = group_files(panel, find_files(panel))
    problems = 0
    for sample in samples:
        for tube, path in sample.tubes.items():
            try:
                fcs = read_fcs(path, events=False, spillover_errors=spillover_errors(panel))  # HEADER + TEXT
                setup = check_tube(panel, tube, fcs, template)
            except MrdflowError as exc:
                problems += 1
                print(f"FAIL {sample.sample_id} {tube} {path.name}: {exc}", file=sys.stderr)
                continue
            note = f" [{'; '.join(setup.warnings)}]" if setup.warnings else ""
            comp = "none" if setup.spillover is None else setup.spillover.source
            print(f"ok   {sample.sample_id} {tube} {path.name}: {len(setup.markers)} markers resolved, "
                  f"compensation {comp}{note}")
        try:
            call = resolve_specimen(panel, sample)
            print(f"ok   {sample.sample_id}: specimen {call.specimen} ({call.source})")
        except MrdflowError as exc:
            problems += 1
            print(f"FAIL {sample.sample_id} specimen: {exc}", file=sys.stderr)
        missing = [t for t in panel.tubes if t not in sample.tubes]
        if missing and panel.mrd.denominator == "combined":
            print(f"note {sample.sample_id}: no file for tube(s) {', '.join(missing)}")
    found = {s.sample_id for s in samples}
    for sid in panel.samples:
        if sid not in found:
            print(f"note samples.{sid}: no file of this panel belongs to sample {sid!r} (check the id's spelling)")
    print(f"{len(samples)} sample(s), {sum(len(s.tubes) for s in samples)} file(s), {problems} problem(s)")
    return 0 if problems == 0 else 2
