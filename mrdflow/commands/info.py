"""``mrdflow info FILE...``: what is in each FCS file (version, layout, events, channels, spillover, warnings)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mrdflow.errors import FcsError
from mrdflow.fcs import FcsData, list_datasets, read_fcs

HELP = "summarise FCS files: version, data layout, events, channels, spillover, reader warnings"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="FCS files")
    parser.add_argument("--json", action="store_true", help="print one JSON array (one object per file) instead of text")
    parser.add_argument("--dataset", type=int, default=0, metavar="K",
                        help="which data set of multi-data-set files to describe (0-based, default 0)")


def run(args: argparse.Namespace) -> int:
    summaries = []
    failed = 0
    for name in args.files:
        try:
            summary = summarise(name, args.dataset)
        except FcsError as exc:
            failed += 1
            summary = {"path": name, "ok": False, "error": exc.reason}
        summaries.append(summary)
        if not args.json:
            print(format_text(summary))
            sys.stdout.flush()
    if args.json:
        print(json.dumps(summaries, indent=2, ensure_ascii=False))
    return 1 if failed else 0


def summarise(path: str, dataset: int = 0) -> dict[str, Any]:
    """A plain-dict description of one data set of a file (the ``--json`` record)."""
    n_datasets = len(list_datasets(path))
    data = read_fcs(path, dataset=dataset, spillover_errors="warn")
    return {
        "path": str(path),
        "ok": True,
        "error": None,
        "version": data.version,
        "dataset": dataset,
        "n_datasets": n_datasets,
        "datatype": data.datatype,
        "byteorder": data.byteorder,
        "n_events": data.n_events,
        "n_channels": data.n_channels,
        "cytometer": data.keywords.get("$CYT"),
        "channels": [
            {
                "index": c.index, "name": c.name, "marker": c.marker, "range": c.range, "bits": c.bits,
                "log_decades": c.log_decades, "log_offset": c.log_offset, "gain": c.gain,
            }
            for c in data.channels
        ],
        "spillover": _spillover(data),
        "warnings": list(data.warnings),
    }


def _spillover(data: FcsData) -> dict[str, Any] | None:
    if data.spillover is None:
        return None
    return {"keyword": data.spillover.source, "channels": list(data.spillover.channels)}


def _clean(value: object) -> str:
    """Text from a file, with control characters made visible (never sent raw to a terminal)."""
    text = "" if value is None else str(value)
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def format_text(s: dict[str, Any]) -> str:
    """The human-readable block for one file."""
    if not s["ok"]:
        return f"== {_clean(s['path'])}\n  ERROR: {_clean(s['error'])}\n"
    lines = [f"== {_clean(s['path'])}"]
    ds = f"data set {s['dataset']} of {s['n_datasets']}" if s["n_datasets"] > 1 else "1 data set"
    lines.append(
        f"  {s['version']} · $DATATYPE {s['datatype']} · $BYTEORD {_clean(s['byteorder']) or '-'} · "
        f"{s['n_events']:,} events × {s['n_channels']} channels · {ds}"
    )
    if s["cytometer"]:
        lines.append(f"  cytometer: {_clean(s['cytometer'])}")
    sp = s["spillover"]
    lines.append(f"  spillover: {_clean(sp['keyword'])} ({len(sp['channels'])} channels)" if sp else "  spillover: none")
    header = ("#", "$PnN", "$PnS", "$PnR", "$PnB", "$PnE", "$PnG")
    rows = [header] + [
        (str(c["index"] + 1), _clean(c["name"]), _clean(c["marker"] or ""), _num(c["range"]),
         "*" if c["bits"] is None else str(c["bits"]), f"{_num(c['log_decades'])},{_num(c['log_offset'])}", _num(c["gain"]))
        for c in s["channels"]
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        lines.append("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    if s["warnings"]:
        lines.append(f"  warnings ({len(s['warnings'])}):")
        lines += [f"    - {_clean(w)}" for w in s["warnings"]]
    return "\n".join(lines) + "\n"
