"""MRD results from the lab's results store (or ``results.csv`` files of ``mrdflow run``) → the ``mrd`` table view.

The store knows samples, not patients: a **sample map** says which patient, date, tissue (BM/PB) and method each
sample id stands for — a table (``mrd_samples.csv``: sample_id, patient_id, date, tissue, method) or a regular
expression on the sample id (named groups ``patient_id``, ``date``, optionally ``tissue`` and ``method``).

Selection rules (every departure from "one ok result per sample" is reported in endpoints.json's ``warnings``):

* only ``ok`` analyses give MRD rows; when a sample was analysed in several runs, the **latest ok analysis**
  (runs ordered by start time) is used and the earlier runs are named (a ``--resume`` copy of an analysis is the
  same analysis, not a new one). Samples of a run killed before it finished count: the store holds whole
  samples only;
* a sample whose analyses all failed is excluded and reported with its error; a failure in a run later than the
  ok analysis used is reported too;
* an ok sample with no map entry stops the run with a :class:`StudyError` naming the sample and the map, unless
  ``ignore_unmapped: true`` (then it is excluded and reported);
* tissue comes from the map; when the map leaves it empty, from the specimen the store recorded for the sample
  (``bone_marrow`` → BM, ``peripheral_blood`` → PB); a map tissue that contradicts the recorded specimen is
  reported (the map wins). ``results.csv`` records no specimen, so there the map must give it;
* map entries with no result in the source are reported; two ok samples mapped to the same assessment
  (patient, date, tissue, method) are an error naming both.

Only :mod:`mrdflow.store` and plain tables are read here, never FCS files (DESIGN.md §2).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mrdflow.endpoints.study import MrdSource
from mrdflow.endpoints.tables import MRD_STATUSES, Col, TableSpec, parse_table, read_csv_text
from mrdflow.errors import StudyError
from mrdflow.store import ResultStore, StoreError

__all__ = ["SAMPLE_MAP_SPEC", "StoredResult", "SampleEntry", "MrdView", "MrdSourceLoader", "read_store",
           "read_results_csv", "read_sample_map", "pattern_map", "select_latest", "mrd_view", "VIEW_COLUMNS"]

#: columns of the derived view (the mrd table's columns, then where each row came from)
VIEW_COLUMNS = ("patient_id", "date", "tissue", "method", "mrd_fraction", "lod", "mrd_status", "sample_id", "run_id")

#: the sample map table (``mrd_samples.csv``); tissue/method cells may be empty (store specimen / default method)
SAMPLE_MAP_SPEC = TableSpec(
    "mrd_samples",
    (
        Col("sample_id", "text"),
        Col("patient_id", "id"),
        Col("date", "date"),
        Col("tissue", "enum", required=False, choices=("BM", "PB"), upper_choices=True),
        Col("method", "enum", required=False, choices=("NGF", "NGS"), upper_choices=True),
    ),
    after_diagnosis=("date",),
)

_SPECIMEN_TISSUE = {"bone_marrow": "BM", "peripheral_blood": "PB"}


@dataclass(frozen=True)
class StoredResult:
    """One sample's analysis in one run, as far as endpoints need it.

    ``run_order`` orders runs oldest first; ``analysis`` is the run that actually analysed the sample (the
    origin of a ``--resume`` copy, else ``run_id``); ``tissue`` is the recorded specimen as BM/PB, or None.
    Fractions of evaluable nucleated cells (0–1), NaN when not available.
    """

    sample_id: str
    run_id: str
    run_order: int
    status: str
    error: str
    mrd_fraction: float
    lod: float
    mrd_status: str
    tissue: str | None = None
    analysis: str = ""


@dataclass(frozen=True)
class SampleEntry:
    """What a sample id stands for; ``where`` cites the map row (or the pattern) for messages."""

    patient_id: str
    date: dt.date
    tissue: str | None
    method: str
    where: str


@dataclass
class MrdView:
    """The derived ``mrd`` rows (strings, :data:`VIEW_COLUMNS`), what was left out and why, and provenance."""

    frame: pd.DataFrame
    label: str
    warnings: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


# -- reading results -------------------------------------------------------------------------------------------

def read_store(path: str | Path) -> list[StoredResult]:
    """Every sample analysis of every run in a results store (opened read-only), runs oldest first."""
    path = Path(path)
    out: list[StoredResult] = []
    try:
        with ResultStore(path, readonly=True) as store:
            for order, run in enumerate(store.runs()):
                run_id = run["run_id"]
                info = store.sample_info(run_id)
                for r in store.results(run_id):
                    specimen = r.details.get("specimen") if isinstance(r.details, dict) else None
                    out.append(StoredResult(
                        sample_id=r.sample_id, run_id=run_id, run_order=order, status=r.status, error=r.error,
                        mrd_fraction=float(r.mrd_fraction), lod=float(r.lod), mrd_status=r.mrd_status,
                        tissue=_SPECIMEN_TISSUE.get(specimen),
                        analysis=info.get(r.sample_id, {}).get("reused_from") or run_id))
    except StoreError as exc:
        raise StudyError(f"field 'mrd_source.store': {exc}") from None
    return out


def _number(text: str, where: str) -> float:
    if text == "":
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise StudyError(f"{where}: expected a number, found {text!r}") from None
    if not (0.0 <= value <= 1.0):
        raise StudyError(f"{where}: expected a fraction between 0 and 1, found {text!r}")
    return value


def _run_identity(csv_path: Path) -> tuple[str, str | None]:
    """(run id, start time) from the run.json beside a results.csv; (path, None) when there is none."""
    run_json = csv_path.with_name("run.json")
    try:
        meta = json.loads(run_json.read_text(encoding="utf-8"))
        return str(meta["run_id"]), str(meta["started"])
    except (OSError, ValueError, KeyError, TypeError):
        return str(csv_path), None


def read_results_csv(paths: list[Path] | tuple[Path, ...]) -> list[StoredResult]:
    """Sample results from ``results.csv`` files of ``mrdflow run``.

    Runs are ordered by the start time in the ``run.json`` beside each file when every file has one, otherwise
    in the order listed (oldest first). Errors name the file, the 1-based data row and the column.
    """
    idents = [_run_identity(Path(p)) for p in paths]
    if all(started is not None for _, started in idents):
        order = sorted(range(len(paths)), key=lambda i: (idents[i][1], idents[i][0]))
    else:
        order = list(range(len(paths)))
    rank = {i: k for k, i in enumerate(order)}
    out: list[StoredResult] = []
    for i, p in enumerate(paths):
        frame = read_csv_text(p, "results")
        frame = frame.rename(columns=lambda c: str(c).strip().lower())
        missing = [c for c in ("sample_id", "status", "mrd_fraction", "lod", "mrd_status") if c not in frame.columns]
        if missing:
            raise StudyError(f"{p} (table 'results'): missing required column(s) {', '.join(map(repr, missing))}; "
                             f"found columns {list(frame.columns)} (expected a results.csv written by mrdflow run)")
        for n, row in enumerate(frame.to_dict("records"), start=1):
            def where(col: str) -> str:
                return f"{p} (table 'results'), row {n}, column '{col}'"

            cell = {k: ("" if v is None else str(v).strip()) for k, v in row.items()}
            if cell["sample_id"] == "":
                raise StudyError(f"{where('sample_id')}: expected a sample id, found an empty cell")
            status = cell["status"].lower()
            if status not in ("ok", "failed"):
                raise StudyError(f"{where('status')}: expected ok or failed, found {cell['status']!r}")
            mrd_status = cell["mrd_status"].upper()
            if status == "ok" and mrd_status not in MRD_STATUSES:
                raise StudyError(f"{where('mrd_status')}: expected one of {', '.join(MRD_STATUSES)}, "
                                 f"found {cell['mrd_status']!r}")
            out.append(StoredResult(
                sample_id=cell["sample_id"], run_id=idents[i][0], run_order=rank[i], status=status,
                error=cell.get("error", ""), mrd_fraction=_number(cell["mrd_fraction"], where("mrd_fraction")),
                lod=_number(cell["lod"], where("lod")), mrd_status=mrd_status, tissue=None, analysis=idents[i][0]))
    return out


# -- the sample map --------------------------------------------------------------------------------------------

def read_sample_map(path: str | Path, patients: pd.DataFrame, *, default_method: str = "NGF") -> dict[str, SampleEntry]:
    """The sample map table, validated like the other tables (known patient, date not before diagnosis nor after
    death, tissue BM/PB, method NGF/NGS; empty method = ``default_method``); sample ids must be unique."""
    path = Path(path)
    frame = read_csv_text(path, "mrd_samples")
    typed = parse_table(frame, "mrd_samples", source=str(path), patients=patients, spec=SAMPLE_MAP_SPEC)
    out: dict[str, SampleEntry] = {}
    rows: dict[str, int] = {}
    for r in typed.itertuples(index=False):
        where = f"{path} (table 'mrd_samples'), row {r.source_row}"
        if r.sample_id is None:
            raise StudyError(f"{where}, column 'sample_id': expected a sample id, found an empty cell")
        if r.sample_id in out:
            raise StudyError(f"{where}, column 'sample_id': duplicate sample {r.sample_id!r} "
                             f"(first at row {rows[r.sample_id]})")
        rows[r.sample_id] = r.source_row
        out[r.sample_id] = SampleEntry(r.patient_id, r.date, r.tissue, r.method or default_method, where)
    return out


def pattern_map(pattern: str, sample_ids: list[str], patients: pd.DataFrame, *, date_format: str = "%Y-%m-%d",
                default_method: str = "NGF") -> dict[str, SampleEntry]:
    """Map sample ids by a regular expression matched against the whole id (``re.fullmatch``); ids that do not
    match are left out (unmapped). A matching id with an unknown patient, a bad date, tissue or method, or a
    date before diagnosis / after death raises :class:`StudyError` naming the sample and the pattern."""
    rx = re.compile(pattern)
    diagnosis = dict(zip(patients["patient_id"], patients["diagnosis_date"]))
    death = dict(zip(patients["patient_id"], patients["death_date"]))
    out: dict[str, SampleEntry] = {}
    for sid in sample_ids:
        m = rx.fullmatch(sid)
        if m is None:
            continue
        where = f"sample {sid!r} (field 'mrd_source.sample_id_pattern' {pattern!r})"
        g = m.groupdict()
        pid = g["patient_id"]
        if pid not in diagnosis:
            raise StudyError(f"{where}: group 'patient_id' gives unknown patient {pid!r} (not in the patients table)")
        try:
            date = dt.datetime.strptime(g["date"] or "", date_format).date()
        except ValueError:
            raise StudyError(f"{where}: group 'date' is {g['date']!r}, expected a date in the format "
                             f"{date_format!r} (field 'mrd_source.date_format')") from None
        if date < diagnosis[pid]:
            raise StudyError(f"{where}: date {date.isoformat()} is before the diagnosis date "
                             f"{diagnosis[pid].isoformat()} of patient {pid!r}")
        if death.get(pid) is not None and date > death[pid]:
            raise StudyError(f"{where}: date {date.isoformat()} is after the death date "
                             f"{death[pid].isoformat()} of patient {pid!r}")
        tissue = (g.get("tissue") or "").upper() or None
        if tissue not in (None, "BM", "PB"):
            raise StudyError(f"{where}: group 'tissue' is {g['tissue']!r}, expected BM or PB")
        method = (g.get("method") or "").upper() or default_method
        if method not in ("NGF", "NGS"):
            raise StudyError(f"{where}: group 'method' is {g['method']!r}, expected NGF or NGS")
        out[sid] = SampleEntry(pid, date, tissue, method, where)
    return out


# -- selection -------------------------------------------------------------------------------------------------

def select_latest(records: list[StoredResult]) -> tuple[dict[str, StoredResult], dict[str, StoredResult], list[str]]:
    """Per sample, the latest ok analysis (by run order).

    Returns
    -------
    chosen : sample id → the ok analysis used.
    failed : sample id → its latest failed analysis, for samples with no ok analysis at all.
    notes : one plain sentence per sample analysed in several runs (which run is used) or failing after the
        analysis used.
    """
    by_sample: dict[str, list[StoredResult]] = {}
    for r in records:
        by_sample.setdefault(r.sample_id, []).append(r)
    chosen: dict[str, StoredResult] = {}
    failed: dict[str, StoredResult] = {}
    notes: list[str] = []
    for sid in sorted(by_sample):
        rs = sorted(by_sample[sid], key=lambda r: r.run_order)
        ok = [r for r in rs if r.status == "ok"]
        if not ok:
            failed[sid] = rs[-1]
            continue
        use = ok[-1]
        chosen[sid] = use
        analyses = list(dict.fromkeys(r.analysis for r in ok))
        if len(analyses) > 1:
            notes.append(f"sample {sid!r}: ok analyses in {len(analyses)} runs ({', '.join(analyses)}); "
                         f"using run {use.run_id} (latest)")
        later_failures = [r for r in rs if r.status != "ok" and r.run_order > use.run_order]
        if later_failures:
            f = later_failures[-1]
            notes.append(f"sample {sid!r}: failed in the later run {f.run_id} ({f.error or 'no error text'}); "
                         f"using its ok analysis of run {use.run_id}")
    return chosen, failed, notes


def _num_text(v: float) -> str:
    return "" if math.isnan(v) else repr(float(v))


def mrd_view(src: MrdSource, patients: pd.DataFrame) -> MrdView:
    """Build the ``mrd`` rows from the configured source and sample map (see the module docstring's rules).

    Parameters
    ----------
    src : the study's ``mrd_source`` (paths absolute, as :func:`~mrdflow.endpoints.study.load_study` leaves them).
    patients : the validated patients table.
    """
    if src.store is not None:
        records = read_store(src.store)
        label = f"{src.store} (results store)"
        kind, paths = "store", [str(src.store)]
    else:
        records = read_results_csv(list(src.results_csv or ()))
        label = f"{', '.join(str(p) for p in src.results_csv or ())} (results.csv)"
        kind, paths = "results_csv", [str(p) for p in src.results_csv or ()]
    chosen, failed, warnings = select_latest(records)
    if src.samples is not None:
        mapping = read_sample_map(src.samples, patients, default_method=src.method)
        map_name = f"the sample map {src.samples} (table 'mrd_samples', column 'sample_id')"
    else:
        mapping = pattern_map(src.sample_id_pattern or "", sorted(set(chosen) | set(failed)), patients,
                              date_format=src.date_format, default_method=src.method)
        map_name = f"field 'mrd_source.sample_id_pattern' {src.sample_id_pattern!r}"

    unmapped = [sid for sid in chosen if sid not in mapping]
    if unmapped and not src.ignore_unmapped:
        listed = ", ".join(f"{sid!r} (run {chosen[sid].run_id})" for sid in unmapped[:20])
        more = f" and {len(unmapped) - 20} more" if len(unmapped) > 20 else ""
        raise StudyError(f"{label}: sample(s) {listed}{more} have an ok MRD result but no entry in {map_name}; "
                         "map them, or set mrd_source.ignore_unmapped: true to leave them out")
    for sid in unmapped:
        warnings.append(f"sample {sid!r} (run {chosen[sid].run_id}): not in {map_name}; excluded "
                        "(ignore_unmapped)")
    for sid, r in failed.items():
        who = f" ({mapping[sid].patient_id}, {mapping[sid].date.isoformat()})" if sid in mapping else ""
        warnings.append(f"sample {sid!r}{who}: analysis failed (latest run {r.run_id}: "
                        f"{r.error or 'no error text'}); excluded")
    seen = set(chosen) | set(failed)
    for sid, entry in mapping.items():
        if sid not in seen:
            warnings.append(f"sample {sid!r} ({entry.where}): no result in {label}")

    rows = []
    assessments: dict[tuple, str] = {}
    for sid, r in chosen.items():
        entry = mapping.get(sid)
        if entry is None:
            continue
        tissue = entry.tissue or r.tissue
        if tissue is None:
            raise StudyError(f"{entry.where}, column 'tissue': expected BM or PB for sample {sid!r}, found an empty "
                             f"cell (and {label} records no specimen for it)")
        if entry.tissue is not None and r.tissue is not None and entry.tissue != r.tissue:
            warnings.append(f"sample {sid!r}: the map says {entry.tissue} but run {r.run_id} analysed it as "
                            f"{r.tissue}; using {entry.tissue}")
        key = (entry.patient_id, entry.date, tissue, entry.method)
        if key in assessments:
            other = assessments[key]
            raise StudyError(f"{label}: samples {other!r} ({mapping[other].where}) and {sid!r} ({entry.where}) "
                             f"are both mapped to the MRD assessment of patient {key[0]!r} on {key[1].isoformat()} ({tissue}, "
                             f"{entry.method}); map each assessment to one sample")
        assessments[key] = sid
        rows.append({"patient_id": entry.patient_id, "date": entry.date.isoformat(), "tissue": tissue,
                     "method": entry.method, "mrd_fraction": _num_text(r.mrd_fraction), "lod": _num_text(r.lod),
                     "mrd_status": r.mrd_status, "sample_id": sid, "run_id": r.run_id})
    frame = pd.DataFrame(rows, columns=list(VIEW_COLUMNS))
    frame = frame.sort_values(["patient_id", "date", "tissue", "method", "sample_id"], kind="stable",
                              ignore_index=True)
    summary = {
        "kind": kind, "paths": paths,
        "sample_map": str(src.samples) if src.samples is not None else None,
        "sample_id_pattern": src.sample_id_pattern,
        "selection": "latest ok analysis per sample (runs by start time)",
        "n_runs": len({r.run_id for r in records}), "n_samples": len(seen), "n_rows": len(frame),
        "failed_excluded": sorted(failed), "unmapped_excluded": sorted(unmapped),
    }
    return MrdView(frame=frame, label=label, warnings=warnings, summary=summary)


class MrdSourceLoader:
    """``load_tables(..., derived={"mrd": loader})`` callable: builds the view once the patients are known and
    keeps it (``.view``) for the outputs."""

    def __init__(self, src: MrdSource):
        self.src = src
        self.view: MrdView | None = None

    def __call__(self, patients: pd.DataFrame) -> tuple[pd.DataFrame, str]:
        self.view = mrd_view(self.src, patients)
        return self.view.frame, f"MRD results from {self.view.label}"
