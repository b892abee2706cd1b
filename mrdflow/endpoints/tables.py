"""Clinical tables (CSV or a pandas DataFrame) → validated, typed DataFrames.

Each table has a :class:`TableSpec`: required and optional columns with a kind (id, date, number, enum ...).
Unknown columns are ignored; a missing required column, an unknown patient, a date before diagnosis (or after
death), a negative quantity or an unparseable value raise :class:`StudyError` naming the table, the 1-based data row (as counted
in the CSV below the header) and the column. Empty cells are "not done" (NaN / None).

Typed columns: dates become :class:`datetime.date` (or None), numbers float64 (NaN when empty), enums lower-case
str (or None). Every frame gains a ``source_row`` column with the source row number so engines can cite it.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import pandas as pd

from mrdflow.errors import StudyError

MRD_STATUSES = ("NEGATIVE", "POSITIVE", "POSITIVE_BELOW_LLOQ", "NOT_EVALUABLE")


@dataclass(frozen=True)
class Col:
    """One column: ``kind`` in id | text | date | number | enum | int; ``lo``/``hi`` bound numbers inclusively."""

    name: str
    kind: str
    required: bool = True
    choices: tuple[str, ...] = ()
    lo: float | None = None
    hi: float | None = None
    upper_choices: bool = False


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[Col, ...]
    #: date columns that must not precede the patient's diagnosis date
    after_diagnosis: tuple[str, ...] = ()


_YN = ("yes", "no")
_PN = ("pos", "neg")

SPECS: dict[str, TableSpec] = {
    "patients": TableSpec(
        "patients",
        (
            Col("patient_id", "id"),
            Col("sex", "enum", required=False, choices=("m", "f", "male", "female", "other", "unknown")),
            Col("birth_date", "date", required=False),
            Col("age_at_enrollment", "number", required=False, lo=0, hi=130),
            Col("diagnosis_date", "date"),
            Col("enrollment_date", "date"),
            Col("infusion_date", "date"),
            Col("last_contact_date", "date"),
            Col("death_date", "date"),
            Col("death_cause", "enum", choices=("disease", "other")),
            Col("new_therapy_date", "date"),
        ),
        after_diagnosis=("enrollment_date", "infusion_date", "last_contact_date", "death_date", "new_therapy_date"),
    ),
    "assessments": TableSpec(
        "assessments",
        (
            Col("patient_id", "id"),
            Col("date", "date"),
            Col("serum_m_g_dl", "number", lo=0),
            Col("urine_m_mg_24h", "number", lo=0),
            Col("serum_ife", "enum", choices=_PN),
            Col("urine_ife", "enum", choices=_PN),
            Col("flc_kappa_mg_l", "number", lo=0),
            Col("flc_lambda_mg_l", "number", lo=0),
            Col("bm_pc_pct", "number", lo=0, hi=100),
            Col("bm_clonal_ihc", "enum", required=False, choices=_YN),
            Col("pb_pc_pct", "number", required=False, lo=0, hi=100),
            Col("plasmacytoma_spd_mm2", "number", required=False, lo=0),
            Col("new_lesion", "enum", required=False, choices=_YN),
        ),
        after_diagnosis=("date",),
    ),
    "mrd": TableSpec(
        "mrd",
        (
            Col("patient_id", "id"),
            Col("date", "date"),
            Col("tissue", "enum", choices=("BM", "PB"), upper_choices=True),
            Col("method", "enum", choices=("NGF", "NGS"), upper_choices=True),
            Col("mrd_fraction", "number", lo=0, hi=1),
            Col("lod", "number", lo=0, hi=1),
            Col("mrd_status", "enum", choices=MRD_STATUSES, upper_choices=True),
        ),
        after_diagnosis=("date",),
    ),
    "labs": TableSpec(
        "labs",
        (
            Col("patient_id", "id"),
            Col("date", "date"),
            Col("wbc_10e9_l", "number", lo=0),
            Col("anc_10e9_l", "number", lo=0),
            Col("hb_g_dl", "number", lo=0),
            Col("plt_10e9_l", "number", lo=0),
            Col("alc_10e9_l", "number", lo=0),
        ),
        after_diagnosis=("date",),
    ),
    "adverse_events": TableSpec(
        "adverse_events",
        (
            Col("patient_id", "id"),
            Col("term", "text"),
            Col("onset_date", "date"),
            Col("end_date", "date", required=False),
            Col("grade", "int", lo=1, hi=5),
            Col("serious", "enum", required=False, choices=_YN),
        ),
        after_diagnosis=("onset_date", "end_date"),
    ),
    "crs": TableSpec(
        "crs",
        (
            Col("patient_id", "id"),
            Col("date", "date"),
            Col("temp_c", "number", lo=25, hi=45),
            Col("hypotension", "enum", choices=("none", "no_vasopressor", "one_vasopressor", "multiple_vasopressors")),
            Col("hypoxia", "enum", choices=("none", "low_flow", "high_flow", "positive_pressure")),
            Col("anticytokine", "enum", choices=_YN),
        ),
        after_diagnosis=("date",),
    ),
    "icans": TableSpec(
        "icans",
        (
            Col("patient_id", "id"),
            Col("date", "date"),
            Col("ice_score", "int", lo=0, hi=10),
            Col("consciousness", "enum", choices=("normal", "awakens_spontaneously", "awakens_to_voice",
                                                  "awakens_to_tactile", "unarousable")),
            Col("seizure", "enum", choices=("none", "resolving", "eeg_nonconvulsive", "prolonged", "repetitive")),
            Col("motor", "enum", choices=("none", "deep_focal_weakness")),
            Col("cerebral_edema", "enum", choices=("none", "focal", "diffuse")),
        ),
        after_diagnosis=("date",),
    ),
    "cart_pk": TableSpec(
        "cart_pk",
        (
            Col("patient_id", "id"),
            Col("day", "number"),
            Col("copies_per_ug_gdna", "number", lo=0),
            Col("blq", "enum", choices=_YN),
            Col("lloq", "number", lo=0),
        ),
    ),
    "cga": TableSpec(
        "cga",
        (
            Col("patient_id", "id"),
            Col("date", "date"),
            Col("adl", "number", lo=0, hi=6),
            Col("iadl", "number", lo=0, hi=8),
            Col("cci", "number", lo=0),
        ),
        after_diagnosis=("date",),
    ),
}


def _where(source: str, table: str, row: int | None = None, column: str | None = None) -> str:
    parts = [f"{source} (table '{table}')"]
    if row is not None:
        parts.append(f"row {row}")
    if column is not None:
        parts.append(f"column '{column}'")
    return ", ".join(parts)


def _parse_cell(text: str, col: Col, where: str) -> object:
    if text == "":
        return math.nan if col.kind in ("number", "int") else None
    kind = col.kind
    if kind in ("id", "text"):
        return text
    if kind == "date":
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            raise StudyError(f"{where}: expected an ISO date YYYY-MM-DD, found {text!r}") from None
    if kind in ("number", "int"):
        try:
            value = float(text)
        except ValueError:
            raise StudyError(f"{where}: expected a number, found {text!r}") from None
        if not math.isfinite(value):
            raise StudyError(f"{where}: expected a finite number, found {text!r}")
        if kind == "int" and value != int(value):
            raise StudyError(f"{where}: expected a whole number, found {text!r}")
        if col.lo is not None and value < col.lo:
            what = "a non-negative number" if col.lo == 0 else f"a number ≥ {col.lo:g}"
            raise StudyError(f"{where}: expected {what}, found {text!r}")
        if col.hi is not None and value > col.hi:
            raise StudyError(f"{where}: expected a number ≤ {col.hi:g}, found {text!r}")
        return value
    if kind == "enum":
        value = text.upper() if col.upper_choices else text.lower()
        if value not in col.choices:
            raise StudyError(f"{where}: expected one of {', '.join(col.choices)} (or empty), found {text!r}")
        return value
    raise AssertionError(kind)


def read_csv_text(path: str | Path, table: str) -> pd.DataFrame:
    """Read a CSV as strings (no NA guessing), stripped, lower-case column names."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig")
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise StudyError(f"{path} (table '{table}'): cannot read CSV ({exc})") from exc
    return frame


def parse_table(
    frame: pd.DataFrame,
    table: str,
    *,
    source: str,
    patients: pd.DataFrame | None = None,
    spec: TableSpec | None = None,
) -> pd.DataFrame:
    """Validate and type one table given as a DataFrame of strings.

    Parameters
    ----------
    frame : raw table, one row per CSV data row (all cells str or convertible to str).
    table : table name (a key of :data:`SPECS`).
    source : file name or description used in error messages.
    patients : the validated patients table; when given, every ``patient_id`` must be in it and the
        ``after_diagnosis`` dates must not precede the patient's diagnosis date.
    spec : the table's specification when it is not one of :data:`SPECS` (e.g. the MRD sample map).
    """
    spec = spec if spec is not None else SPECS[table]
    frame = frame.rename(columns=lambda c: str(c).strip().lower())
    missing = [c.name for c in spec.columns if c.required and c.name not in frame.columns]
    if missing:
        raise StudyError(
            f"{_where(source, table)}: missing required column(s) {', '.join(repr(m) for m in missing)}; "
            f"found columns {list(frame.columns)}"
        )
    out: dict[str, list] = {c.name: [] for c in spec.columns}
    diagnosis = {} if patients is None else dict(zip(patients["patient_id"], patients["diagnosis_date"]))
    death = {} if patients is None or "death_date" not in patients else dict(zip(patients["patient_id"],
                                                                                patients["death_date"]))
    for i, raw in enumerate(frame.itertuples(index=False), start=1):
        row = dict(zip(frame.columns, raw))
        for col in spec.columns:
            text = "" if col.name not in row or row[col.name] is None else str(row[col.name]).strip()
            where = _where(source, table, i, col.name)
            if col.kind == "id" and text == "":
                raise StudyError(f"{where}: expected a patient id, found an empty cell")
            value = _parse_cell(text, col, where)
            if col.kind == "id" and patients is not None and value not in diagnosis:
                raise StudyError(f"{where}: unknown patient {value!r} (not in the patients table)")
            out[col.name].append(value)
        if patients is not None:
            pid = out["patient_id"][-1]
            for name in spec.after_diagnosis:
                value = out[name][-1]
                if value is not None and value < diagnosis[pid]:
                    raise StudyError(
                        f"{_where(source, table, i, name)}: date {value.isoformat()} is before the diagnosis date "
                        f"{diagnosis[pid].isoformat()} of patient {pid!r}"
                    )
                if value is not None and death.get(pid) is not None and value > death[pid]:
                    raise StudyError(
                        f"{_where(source, table, i, name)}: date {value.isoformat()} is after the death date "
                        f"{death[pid].isoformat()} of patient {pid!r}"
                    )
    result = pd.DataFrame(out, columns=[c.name for c in spec.columns])
    for col in spec.columns:
        if col.kind in ("date", "enum", "id", "text"):
            result[col.name] = result[col.name].astype(object)
    result["source_row"] = range(1, len(result) + 1)
    return result


def _check_patients(df: pd.DataFrame, source: str) -> None:
    seen: dict[str, int] = {}
    for r in df.itertuples(index=False):
        where = lambda col: _where(source, "patients", r.source_row, col)  # noqa: E731
        if r.patient_id in seen:
            raise StudyError(f"{where('patient_id')}: duplicate patient {r.patient_id!r} (first at row {seen[r.patient_id]})")
        seen[r.patient_id] = r.source_row
        if r.birth_date is None and (isinstance(r.age_at_enrollment, float) and math.isnan(r.age_at_enrollment)):
            raise StudyError(f"{where('birth_date')}: expected birth_date or age_at_enrollment, found neither")
        if r.infusion_date is not None and r.infusion_date < r.enrollment_date:
            raise StudyError(f"{where('infusion_date')}: infusion {r.infusion_date} is before enrollment {r.enrollment_date}")
        if r.last_contact_date is None:
            raise StudyError(f"{where('last_contact_date')}: expected the last date known alive, found an empty cell")
        if r.death_cause is not None and r.death_date is None:
            raise StudyError(f"{where('death_cause')}: death cause {r.death_cause!r} given without a death_date")
        if r.death_date is not None and r.death_cause is None:
            raise StudyError(f"{where('death_cause')}: expected 'disease' or 'other' for a patient with a death_date")
        if r.last_contact_date < r.enrollment_date:
            raise StudyError(f"{where('last_contact_date')}: last contact {r.last_contact_date} is before enrollment {r.enrollment_date}")
        if r.death_date is not None and r.death_date < r.enrollment_date:
            raise StudyError(f"{where('death_date')}: death {r.death_date} is before enrollment {r.enrollment_date}")
        if r.death_date is not None and r.last_contact_date > r.death_date:
            raise StudyError(f"{where('last_contact_date')}: last contact {r.last_contact_date} is after death {r.death_date}")


def parse_patients(frame: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """Validate the patients table (unique ids, date order, age source, death fields)."""
    frame = frame.rename(columns=lambda c: str(c).strip().lower())
    if "birth_date" not in frame.columns and "age_at_enrollment" not in frame.columns:
        raise StudyError(f"{_where(source, 'patients')}: missing column 'birth_date' or 'age_at_enrollment' (one is required)")
    df = parse_table(frame, "patients", source=source)
    # diagnosis is the reference for the other date checks of this table
    for r in df.itertuples(index=False):
        for name in SPECS["patients"].after_diagnosis:
            value = getattr(r, name)
            if value is not None and r.diagnosis_date is not None and value < r.diagnosis_date:
                raise StudyError(
                    f"{_where(source, 'patients', r.source_row, name)}: date {value.isoformat()} is before the diagnosis "
                    f"date {r.diagnosis_date.isoformat()}"
                )
        if r.diagnosis_date is None or r.enrollment_date is None:
            col = "diagnosis_date" if r.diagnosis_date is None else "enrollment_date"
            raise StudyError(f"{_where(source, 'patients', r.source_row, col)}: expected a date, found an empty cell")
    _check_patients(df, source)
    return df


@dataclass(frozen=True)
class Tables:
    """All validated tables of a study; optional tables absent from STUDY.yaml are empty frames."""

    patients: pd.DataFrame
    assessments: pd.DataFrame
    mrd: pd.DataFrame
    labs: pd.DataFrame
    adverse_events: pd.DataFrame
    crs: pd.DataFrame
    icans: pd.DataFrame
    cart_pk: pd.DataFrame
    cga: pd.DataFrame
    present: frozenset[str]


def empty_table(table: str) -> pd.DataFrame:
    """A typed, empty frame with the columns of ``table``."""
    cols = [c.name for c in SPECS[table].columns] + ["source_row"]
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in cols})


#: columns that identify one MRD assessment (two sources giving the same one is an error)
MRD_KEY = ("patient_id", "date", "tissue", "method")

#: a table derived from another source once the patients are known: patients → (frame of str, source label)
Derived = Callable[[pd.DataFrame], "tuple[pd.DataFrame, str]"]


def load_tables(paths: Mapping[str, Path], overrides: Mapping[str, pd.DataFrame] | None = None, *,
                derived: Mapping[str, Derived] | None = None) -> Tables:
    """Load and validate every table named in ``paths`` (CSV) or given in ``overrides`` (DataFrames of str).

    ``overrides`` lets a caller swap a source, e.g. MRD results from another CSV instead of mrd.csv (an override
    replaces both the CSV and any ``derived`` source of that table). ``derived`` adds rows built once the
    validated patients table is known (e.g. :func:`mrdflow.endpoints.mrd_source.mrd_view` from the results
    store); its rows are validated like the CSV's and appended to them. For ``mrd``, one assessment
    (patient, date, tissue, method) given by both sources is an error naming both.
    """
    overrides = dict(overrides or {})
    derived = {k: v for k, v in (derived or {}).items() if k not in overrides}

    def raw(name: str) -> tuple[pd.DataFrame, str] | None:
        if name in overrides:
            return overrides[name].astype(str).replace({"nan": "", "None": ""}), f"<{name} frame>"
        if name in paths:
            return read_csv_text(paths[name], name), str(paths[name])
        return None

    got = raw("patients")
    if got is None:
        raise StudyError("study: the 'patients' table is required")
    patients = parse_patients(got[0], source=got[1])
    frames: dict[str, pd.DataFrame] = {}
    present = {"patients"}
    for name in SPECS:
        if name == "patients":
            continue
        got = raw(name)
        parts = [] if got is None else [(parse_table(got[0], name, source=got[1], patients=patients), got[1])]
        if name in derived:
            frame, label = derived[name](patients)
            typed = parse_table(frame, name, source=label, patients=patients)
            for extra in ("sample_id", "run_id"):  # provenance of derived rows, kept for citing them
                if extra in frame.columns:
                    typed[extra] = frame[extra].astype(str).to_numpy()
            parts.append((typed, label))
        if not parts:
            frames[name] = empty_table(name)
            continue
        if len(parts) == 2 and name == "mrd":
            _check_no_duplicate_assessments(parts)
        frames[name] = parts[0][0] if len(parts) == 1 else pd.concat([p[0] for p in parts], ignore_index=True)
        present.add(name)
    _check_pk_infused(frames["cart_pk"], patients, paths.get("cart_pk", "<cart_pk frame>"))
    return Tables(patients=patients, present=frozenset(present), **frames)


def _check_no_duplicate_assessments(parts: list[tuple[pd.DataFrame, str]]) -> None:
    (first, first_src), (second, second_src) = parts
    seen = {tuple(getattr(r, c) for c in MRD_KEY): r.source_row for r in first.itertuples(index=False)}
    for r in second.itertuples(index=False):
        key = tuple(getattr(r, c) for c in MRD_KEY)
        if key in seen:
            sample = f" (sample {r.sample_id!r})" if "sample_id" in second.columns else ""
            raise StudyError(
                f"{_where(second_src, 'mrd', r.source_row)}{sample}: the MRD assessment of patient {key[0]!r} on "
                f"{key[1].isoformat()} ({key[2]}, {key[3]}) is also in {_where(first_src, 'mrd', seen[key])}; "
                "give each assessment in one source only"
            )


def _check_pk_infused(pk: pd.DataFrame, patients: pd.DataFrame, source: object) -> None:
    infused = dict(zip(patients["patient_id"], patients["infusion_date"]))
    for r in pk.itertuples(index=False):
        if infused.get(r.patient_id) is None:
            raise StudyError(
                f"{_where(str(source), 'cart_pk', r.source_row, 'patient_id')}: patient {r.patient_id!r} has kinetics "
                "samples but no infusion_date in the patients table"
            )
        if r.blq == "no" and math.isnan(r.copies_per_ug_gdna):
            raise StudyError(
                f"{_where(str(source), 'cart_pk', r.source_row, 'copies_per_ug_gdna')}: expected a value for a quantifiable "
                "(blq = no) sample, found an empty cell"
            )
