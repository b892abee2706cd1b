"""The results store: one SQLite database (stdlib :mod:`sqlite3`) holding runs, samples, populations and flags.

The store lives in the output folder (``DIR/mrdflow.sqlite``) unless the panel names one (``store:``), in which
case results of every run accumulate in it. Each completed sample is written in **one transaction**
(:meth:`ResultStore.record`), so a run killed at any moment leaves only whole samples behind; the CSV exports
(:func:`write_results_csv`, :func:`write_populations_csv`) are rebuilt from the store for one run's samples.

Tables
------
``runs``        run_id, started, finished, panel_path, panel_sha256, template_path, template_sha256,
                output_dir, mrdflow_version, provenance_json (run.json's content once the run finished).
``samples``     one row per (run_id, sample_id): every ``results.csv`` column (NaN stored as NULL, flags
                ``;``-joined), plus input_key (the resume key), tubes_json (tube → path), file_sha256_json
                (tube → SHA-256), files_json, details_json, seconds, analysed_at, worker, report_path and
                reused_from (the run whose analysis a ``--resume`` copied).
``populations`` one row per population of a sample (the ``populations.csv`` columns plus position).
``flags``       one row per QC flag of a sample (for queries such as "every sample with flow_rate_anomaly").
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from mrdflow.atomic import atomic_write_text
from mrdflow.errors import MrdflowError
from mrdflow.result import POPULATION_COLUMNS, RESULTS_COLUMNS, PopulationCount, SampleResult

__all__ = ["SCHEMA_VERSION", "StoreError", "StoredSample", "ResultStore", "write_results_csv",
           "write_populations_csv", "DEFAULT_STORE_NAME"]

SCHEMA_VERSION = 1
DEFAULT_STORE_NAME = "mrdflow.sqlite"

_INT_COLS = ("n_events_acquired", "n_events_evaluable", "n_plasma_cells", "n_normal_pc", "n_aberrant_pc")
_FLOAT_COLS = ("mrd_fraction", "lod", "lloq")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started TEXT NOT NULL, finished TEXT,
    panel_path TEXT, panel_sha256 TEXT, template_path TEXT, template_sha256 TEXT,
    output_dir TEXT, mrdflow_version TEXT, provenance_json TEXT
);
CREATE TABLE IF NOT EXISTS samples (
    run_id TEXT NOT NULL REFERENCES runs(run_id), sample_id TEXT NOT NULL,
    input_key TEXT, tubes_json TEXT NOT NULL, file_sha256_json TEXT NOT NULL, files_json TEXT NOT NULL,
    files TEXT NOT NULL, status TEXT NOT NULL, error TEXT NOT NULL,
    {", ".join(f"{c} INTEGER NOT NULL" for c in _INT_COLS)},
    {", ".join(f"{c} REAL" for c in _FLOAT_COLS)},
    mrd_status TEXT NOT NULL, sensitivity_met INTEGER NOT NULL, clonality TEXT NOT NULL,
    hemodilution TEXT NOT NULL, qc_flags TEXT NOT NULL,
    details_json TEXT NOT NULL, seconds REAL, analysed_at TEXT, worker TEXT, report_path TEXT, reused_from TEXT,
    PRIMARY KEY (run_id, sample_id)
);
CREATE INDEX IF NOT EXISTS samples_by_key ON samples (sample_id, input_key, status);
CREATE TABLE IF NOT EXISTS populations (
    run_id TEXT NOT NULL, sample_id TEXT NOT NULL, position INTEGER NOT NULL,
    tube TEXT NOT NULL, population TEXT NOT NULL, parent TEXT NOT NULL, count INTEGER NOT NULL,
    pct_of_parent REAL, pct_of_evaluable REAL,
    PRIMARY KEY (run_id, sample_id, position),
    FOREIGN KEY (run_id, sample_id) REFERENCES samples (run_id, sample_id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS flags (
    run_id TEXT NOT NULL, sample_id TEXT NOT NULL, flag TEXT NOT NULL,
    PRIMARY KEY (run_id, sample_id, flag),
    FOREIGN KEY (run_id, sample_id) REFERENCES samples (run_id, sample_id) ON DELETE CASCADE
);
"""


class StoreError(MrdflowError):
    """The results store cannot be opened or is not an mrdflow store of a known schema."""


@dataclass(frozen=True)
class StoredSample:
    """A stored analysis a ``--resume`` may reuse."""

    run_id: str
    sample_id: str
    input_key: str
    report_path: str | None
    origin_run: str


def _nan_to_none(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


class ResultStore:
    """An open results store. Use as a context manager, or call :meth:`close`.

    Parameters
    ----------
    path : the SQLite file (created with its folder when absent).
    timeout : seconds to wait for another process's write lock (stores shared between runs).
    readonly : open an existing store for reading only (never created or modified, e.g. by
        ``mrdflow endpoints`` reading a lab's store); a missing file or one that is not an mrdflow store
        raises :class:`StoreError`.
    """

    def __init__(self, path: str | os.PathLike, *, timeout: float = 60.0, readonly: bool = False):
        self.path = Path(path)
        if readonly:
            self._open_readonly(timeout)
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            self._conn.execute("PRAGMA foreign_keys = ON")
            with self._transaction():
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        self._conn.execute(stmt)
                row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row is None:
                    self._conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                elif row[0] != str(SCHEMA_VERSION):
                    raise StoreError(f"{self.path}: results store schema version {row[0]}, expected "
                                     f"{SCHEMA_VERSION} (use another store file or migrate this one)")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open the results store ({exc}); expected an SQLite "
                             "database written by mrdflow") from None

    def _open_readonly(self, timeout: float) -> None:
        if not self.path.is_file():
            raise StoreError(f"{self.path}: results store not found (expected the SQLite file written by mrdflow run)")
        try:
            self._conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout,
                                         isolation_level=None)
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot read the results store ({exc}); expected an SQLite database "
                             "written by mrdflow") from None
        if row is None or row[0] != str(SCHEMA_VERSION):
            self._conn.close()
            raise StoreError(f"{self.path}: results store schema version {None if row is None else row[0]}, "
                             f"expected {SCHEMA_VERSION}")

    # -- plumbing -------------------------------------------------------------------------------------------
    def _transaction(self):
        conn = self._conn

        class _Tx:
            def __enter__(self_inner):
                conn.execute("BEGIN IMMEDIATE")

            def __exit__(self_inner, exc_type, exc, tb):
                conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
                return False

        return _Tx()

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- runs -----------------------------------------------------------------------------------------------
    def begin_run(self, run_id: str, *, started: str, panel: Mapping[str, str] | None,
                  template: Mapping[str, str], output_dir: str, mrdflow_version: str) -> None:
        """Register a new run (``panel``/``template`` are ``{"path", "sha256"}``)."""
        panel = panel or {}
        with self._transaction():
            self._conn.execute(
                "INSERT INTO runs (run_id, started, panel_path, panel_sha256, template_path, template_sha256, "
                "output_dir, mrdflow_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, started, panel.get("path"), panel.get("sha256"), template["path"], template["sha256"],
                 output_dir, mrdflow_version))

    def finish_run(self, run_id: str, *, finished: str, provenance: Mapping[str, Any]) -> None:
        """Mark a run finished and keep its provenance (the content of run.json)."""
        with self._transaction():
            self._conn.execute("UPDATE runs SET finished = ?, provenance_json = ? WHERE run_id = ?",
                               (finished, json.dumps(provenance, allow_nan=False), run_id))

    def runs(self) -> list[dict[str, Any]]:
        """Every run (oldest first) as a dict of the ``runs`` columns."""
        cur = self._conn.execute("SELECT * FROM runs ORDER BY started, run_id")
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]

    # -- samples --------------------------------------------------------------------------------------------
    def record(self, run_id: str, result: SampleResult, *, tubes: Mapping[str, str],
               file_sha256: Mapping[str, str], input_key: str | None, seconds: float | None = None,
               analysed_at: str | None = None, worker: str | None = None, report_path: str | None = None) -> None:
        """Write one sample's result (row, populations, flags) in a single transaction, replacing any earlier
        row of the same run and sample."""
        values = {
            "run_id": run_id, "sample_id": result.sample_id, "input_key": input_key,
            "tubes_json": json.dumps(dict(tubes)), "file_sha256_json": json.dumps(dict(file_sha256)),
            "files_json": json.dumps([str(f) for f in result.files]),
            "files": result.to_row()["files"], "status": result.status, "error": result.error,
            **{c: int(getattr(result, c)) for c in _INT_COLS},
            **{c: _nan_to_none(getattr(result, c)) for c in _FLOAT_COLS},
            "mrd_status": result.mrd_status, "sensitivity_met": int(bool(result.sensitivity_met)),
            "clonality": result.clonality, "hemodilution": result.hemodilution,
            "qc_flags": ";".join(result.qc_flags),
            "details_json": json.dumps(result.to_json_dict()["details"], allow_nan=False),
            "seconds": seconds, "analysed_at": analysed_at, "worker": worker, "report_path": report_path,
            "reused_from": None,
        }
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self._transaction():
            self._conn.execute("DELETE FROM samples WHERE run_id = ? AND sample_id = ?", (run_id, result.sample_id))
            self._conn.execute(f"INSERT INTO samples ({cols}) VALUES ({marks})", tuple(values.values()))
            self._conn.executemany(
                "INSERT INTO populations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, result.sample_id, i, p.tube, p.population, p.parent, int(p.count),
                  _nan_to_none(p.pct_of_parent), _nan_to_none(p.pct_of_evaluable))
                 for i, p in enumerate(result.populations)])
            self._conn.executemany("INSERT OR IGNORE INTO flags VALUES (?, ?, ?)",
                                   [(run_id, result.sample_id, f) for f in result.qc_flags])

    def find_reusable(self, sample_id: str, input_key: str) -> StoredSample | None:
        """The most recent ``ok`` analysis of ``sample_id`` with this input key (files, panel and template
        hashes), or None. Failed analyses are never reused: a resumed run tries them again."""
        row = self._conn.execute(
            "SELECT run_id, report_path, COALESCE(reused_from, run_id) FROM samples "
            "WHERE sample_id = ? AND input_key = ? AND status = 'ok' "
            "ORDER BY analysed_at DESC, run_id DESC LIMIT 1", (sample_id, input_key)).fetchone()
        if row is None:
            return None
        return StoredSample(run_id=row[0], sample_id=sample_id, input_key=input_key, report_path=row[1],
                            origin_run=row[2])

    def has_candidate(self, sample_id: str) -> bool:
        """Whether any ``ok`` analysis of ``sample_id`` is stored (cheap pre-check before hashing files)."""
        return self._conn.execute("SELECT 1 FROM samples WHERE sample_id = ? AND status = 'ok' LIMIT 1",
                                  (sample_id,)).fetchone() is not None

    def copy_sample(self, stored: StoredSample, run_id: str, *, report_path: str | None) -> None:
        """Make a stored analysis part of run ``run_id`` (one transaction), remembering where it came from."""
        src, sid = stored.run_id, stored.sample_id
        cur = self._conn.execute("SELECT * FROM samples WHERE run_id = ? AND sample_id = ?", (src, sid))
        cols = [d[0] for d in cur.description]
        row = dict(zip(cols, cur.fetchone()))
        row.update(run_id=run_id, report_path=report_path, reused_from=stored.origin_run)
        with self._transaction():
            self._conn.execute("DELETE FROM samples WHERE run_id = ? AND sample_id = ?", (run_id, sid))
            self._conn.execute(f"INSERT INTO samples ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
                               tuple(row.values()))
            self._conn.execute(
                "INSERT INTO populations SELECT ?, sample_id, position, tube, population, parent, count, "
                "pct_of_parent, pct_of_evaluable FROM populations WHERE run_id = ? AND sample_id = ?",
                (run_id, src, sid))
            self._conn.execute("INSERT INTO flags SELECT ?, sample_id, flag FROM flags "
                               "WHERE run_id = ? AND sample_id = ?", (run_id, src, sid))

    def sample_ids(self, run_id: str) -> list[str]:
        return [r[0] for r in self._conn.execute(
            "SELECT sample_id FROM samples WHERE run_id = ? ORDER BY sample_id", (run_id,))]

    def sample_info(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Per sample of a run: tubes, file_sha256, input_key, seconds, analysed_at, worker, report_path,
        reused_from (what run.json and the batch report need beyond the result)."""
        cur = self._conn.execute(
            "SELECT sample_id, tubes_json, file_sha256_json, input_key, seconds, analysed_at, worker, "
            "report_path, reused_from FROM samples WHERE run_id = ? ORDER BY sample_id", (run_id,))
        out = {}
        for sid, tubes, sha, key, sec, at, worker, report, reused in cur.fetchall():
            out[sid] = {"tubes": json.loads(tubes), "file_sha256": json.loads(sha), "input_key": key,
                        "seconds": sec, "analysed_at": at, "worker": worker, "report_path": report,
                        "reused_from": reused}
        return out

    def results(self, run_id: str) -> list[SampleResult]:
        """Every sample result of a run (sorted by sample id), rebuilt exactly as recorded (no plot data)."""
        cur = self._conn.execute("SELECT * FROM samples WHERE run_id = ? ORDER BY sample_id", (run_id,))
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, r)) for r in cur.fetchall()]
        pops: dict[str, list[PopulationCount]] = {}
        for sid, tube, pop, parent, count, ppar, peval in self._conn.execute(
                "SELECT sample_id, tube, population, parent, count, pct_of_parent, pct_of_evaluable "
                "FROM populations WHERE run_id = ? ORDER BY sample_id, position", (run_id,)):
            pops.setdefault(sid, []).append(PopulationCount(
                tube, pop, parent, int(count), math.nan if ppar is None else float(ppar),
                math.nan if peval is None else float(peval)))
        out = []
        for r in rows:
            out.append(SampleResult(
                sample_id=r["sample_id"], files=json.loads(r["files_json"]), status=r["status"], error=r["error"],
                **{c: int(r[c]) for c in _INT_COLS},
                **{c: math.nan if r[c] is None else float(r[c]) for c in _FLOAT_COLS},
                mrd_status=r["mrd_status"], sensitivity_met=bool(r["sensitivity_met"]), clonality=r["clonality"],
                hemodilution=r["hemodilution"], qc_flags=[f for f in r["qc_flags"].split(";") if f],
                populations=pops.get(r["sample_id"], []), details=json.loads(r["details_json"])))
        return out

    def flagged(self, flag: str) -> list[tuple[str, str]]:
        """(run_id, sample_id) of every stored sample carrying QC flag ``flag``."""
        return [tuple(r) for r in self._conn.execute(
            "SELECT run_id, sample_id FROM flags WHERE flag = ? ORDER BY run_id, sample_id", (flag,))]


def _csv_text(columns: Iterable[str], rows: Iterable[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    return buf.getvalue()


def write_results_csv(path: str | os.PathLike, results: Iterable[SampleResult]) -> Path:
    """``results.csv`` (DESIGN.md §3.2), one row per sample in the given order, written atomically."""
    return atomic_write_text(path, _csv_text(RESULTS_COLUMNS, (r.to_row() for r in results)))


def write_populations_csv(path: str | os.PathLike, results: Iterable[SampleResult]) -> Path:
    """``populations.csv`` (DESIGN.md §3.3), long format, written atomically."""
    return atomic_write_text(path, _csv_text(POPULATION_COLUMNS, (row for r in results for row in r.population_rows())))
