"""``mrdflow gate FILE --panel PANEL.yaml [--tube T]``: the population tree of one file with counts."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "gate one FCS file with a panel's template and print the population tree with counts and percentages"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the FCS file")
    parser.add_argument("--panel", type=Path, required=True, help="panel YAML naming the template and markers")
    parser.add_argument("--tube", help="panel tube of this file (default: from the panel's grouping rule)")


def run(args: argparse.Namespace) -> int:
    from mrdflow.errors import PanelError
    from mrdflow.fcs import read_fcs
    from mrdflow.gating.engine import gate_events
    from mrdflow.gating.template import load_template
    from mrdflow.panel import load_panel
    from mrdflow.panel_files import group_files
    from mrdflow.tube import prepare_tube, spillover_errors

    panel = load_panel(args.panel)
    template = load_template(panel.template)
    # linear, PnG-scaled values (what GatingML transforms expect), column-major as the pipeline reads them
    fcs = read_fcs(args.file, linearize=True, order="F", spillover_errors=spillover_errors(panel))
    if args.tube is not None:
        wanted = args.tube.casefold()
        tube = next((t for t, spec in panel.tubes.items()
                     if wanted == t.casefold() or wanted in {m.casefold() for m in spec.match}), None)
        if tube is None:
            raise PanelError(f"--tube {args.tube!r} is not a tube of {panel.source} (tubes: {', '.join(panel.tubes)})")
    else:
        (group,) = group_files(panel, [args.file], keywords_of=lambda _: fcs.keywords)
        (tube,) = group.tubes
    setup = prepare_tube(panel, tube, fcs, template)
    result = gate_events(fcs.events, setup.index, setup.template, upper_limits=setup.upper_limits)
    print(f"{args.file.name}: tube {tube}, {result.n_events} events, template {template.name}"
          + (f" [{'; '.join(setup.warnings)}]" if setup.warnings else ""))
    print(format_tree(result))
    return 0


def format_tree(result) -> str:
    """The population tree as indented text: name, count, % of parent, % of all events, roles."""
    lines = [f"{'population':<40} {'count':>10} {'%parent':>8} {'%total':>8}  roles",
             f"{'root':<40} {result.n_events:>10} {100.0:>8.2f} {100.0:>8.2f}"]

    def walk(parent: str, depth: int) -> None:
        for row in result.rows():
            if row["parent"] != parent:
                continue
            node = result.template.nodes[row["population"]]
            name = "  " * depth + row["population"]
            lines.append(f"{name:<40} {row['count']:>10} {row['pct_of_parent']:>8.2f} {row['pct_of_total']:>8.2f}"
                         f"  {','.join(node.roles)}")
            walk(row["population"], depth + 1)

    walk("root", 1)
    return "\n".join(lines)
