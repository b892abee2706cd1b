"""STUDY.yaml → :class:`Study`: the trial's tables and rules, validated with pydantic (errors → StudyError).

Every rule a statistician may need to change is a field here with a documented default; table paths are
relative to the YAML file's folder.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mrdflow.endpoints import criteria as C
from mrdflow.errors import StudyError

TABLE_NAMES = ("patients", "assessments", "mrd", "labs", "adverse_events", "crs", "icans", "cart_pk", "cga")
REQUIRED_TABLES = ("patients", "assessments")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MrdRules(_Strict):
    """MRD rules: required sensitivity (LOD must be ≤ it for a NEGATIVE to count) and which tissue counts."""

    required_sensitivity: float = Field(C.MRD_REQUIRED_SENSITIVITY, gt=0, lt=1)
    tissue: Literal["BM", "PB"] = "BM"
    methods: tuple[Literal["NGF", "NGS"], ...] = ("NGF", "NGS")
    sustained_min_days: int = Field(C.SUSTAINED_MRD_MIN_DAYS, gt=0)


class ResponseRules(_Strict):
    """Response engine options beyond the criteria set."""

    #: a PD found at the last assessment (nothing after it before new therapy / cut-off) counts although unconfirmed.
    accept_unconfirmed_final_pd: bool = True


class SurvivalRules(_Strict):
    """Time-to-event options (see survival.py for the censoring rules)."""

    landmarks_months: tuple[float, ...] = (6.0, 12.0)
    #: DOR events: PD or death from disease (IMWG) — or "all" deaths (some SAPs).
    dor_death_events: Literal["disease", "all"] = "disease"
    #: censor PFS/DOR at the last assessment before a new anti-myeloma therapy (FDA-style) [U protocol choice].
    censor_at_new_therapy: bool = True


class FrailtyRules(_Strict):
    """Frailty scale direction (DOMAIN §9) and IMWG-CGA cut-offs [U]."""

    scale_direction: Literal["standard", "inverted"] = "standard"
    age_1pt_above: int = C.FrailtyCutoffs.age_1pt_above
    age_2pt_above: int = C.FrailtyCutoffs.age_2pt_above
    cci_min: float = C.FrailtyCutoffs.cci_min
    adl_max: float = C.FrailtyCutoffs.adl_max
    iadl_max: float = C.FrailtyCutoffs.iadl_max

    def cutoffs(self) -> C.FrailtyCutoffs:
        return C.FrailtyCutoffs(self.age_1pt_above, self.age_2pt_above, self.cci_min, self.adl_max, self.iadl_max)


class KineticsRules(_Strict):
    """CAR-T kinetics (non-compartmental) options (DOMAIN §8)."""

    blq_rule: Literal["positional", "zero", "drop", "half_lloq"] = "positional"
    auc_end_day: float = Field(C.AUC_END_DAY, gt=0)
    #: assume C(day 0) = 0 (pre-infusion transgene BLQ) when no sample at day ≤ 0 [U].
    assume_zero_at_day0: bool = True
    #: Cmax/Tmax window in days since infusion; None = whole follow-up.
    cmax_window_days: float | None = None


class Lln(_Strict):
    """Lower limits of normal for CTCAE grade 1 (units as in labs.csv)."""

    wbc_10e9_l: float = Field(gt=0)
    anc_10e9_l: float = Field(gt=0)
    hb_g_dl: float = Field(gt=0)
    plt_10e9_l: float = Field(gt=0)
    alc_10e9_l: float = Field(gt=0)


class MrdSource(_Strict):
    """Where MRD results come from besides (or instead of) the ``mrd`` table: the lab's results store or
    ``results.csv`` files of ``mrdflow run``, with a map from sample id to patient, date, tissue and method.

    Exactly one of ``store`` / ``results_csv`` and one of ``samples`` (a mapping table) / ``sample_id_pattern``
    (a regular expression matched against the whole sample id, with named groups ``patient_id`` and ``date``,
    optionally ``tissue`` and ``method``). See :mod:`mrdflow.endpoints.mrd_source` for the selection rules.
    """

    store: Path | None = None
    results_csv: tuple[Path, ...] | None = None
    samples: Path | None = None
    sample_id_pattern: str | None = None
    #: strptime format of the pattern's ``date`` group.
    date_format: str = "%Y-%m-%d"
    #: method of a sample whose map gives none (the store holds flow-cytometry results).
    method: Literal["NGF", "NGS"] = "NGF"
    #: samples with results but no map entry are listed in endpoints.json's warnings instead of stopping the run.
    ignore_unmapped: bool = False

    @field_validator("results_csv", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return [v] if isinstance(v, (str, Path)) else v

    @model_validator(mode="after")
    def _exactly_one(self) -> "MrdSource":
        if (self.store is None) == (self.results_csv is None):
            raise ValueError("give exactly one of 'store' (the results store, SQLite) or 'results_csv' "
                             "(one or more results.csv files)")
        if (self.samples is None) == (self.sample_id_pattern is None):
            raise ValueError("give exactly one of 'samples' (a table sample_id, patient_id, date, tissue[, method]) "
                             "or 'sample_id_pattern' (a regular expression with named groups)")
        if self.results_csv is not None and not self.results_csv:
            raise ValueError("'results_csv' lists no file")
        if self.sample_id_pattern is not None:
            try:
                rx = re.compile(self.sample_id_pattern)
            except re.error as exc:
                raise ValueError(f"'sample_id_pattern' is not a valid regular expression ({exc})") from None
            missing = [g for g in ("patient_id", "date") if g not in rx.groupindex]
            if missing:
                raise ValueError(f"'sample_id_pattern' lacks the named group(s) {missing} "
                                 "(write (?P<patient_id>...) and (?P<date>...))")
            unknown = sorted(set(rx.groupindex) - {"patient_id", "date", "tissue", "method"})
            if unknown:
                raise ValueError(f"'sample_id_pattern' has unknown named group(s) {unknown}; expected patient_id, "
                                 "date, tissue, method")
        return self


class Study(_Strict):
    """A validated STUDY.yaml. ``tables`` maps table name → absolute CSV path."""

    study_id: str
    title: str = ""
    tables: dict[str, Path]
    response_criteria: Literal["imwg2016", "pcl2013", "pcl_vandedonk2012"] = "imwg2016"
    ctcae_version: Literal["5.0", "6.0"] = "5.0"
    time_origin: Literal["diagnosis", "enrollment", "infusion"] = "infusion"
    #: patients whose response/MRD/survival rates are reported (ITT denominator).
    efficacy_population: Literal["infused", "enrolled"] = "infused"
    data_cutoff: dt.date
    lln: Lln | None = None
    mrd: MrdRules = MrdRules()
    response: ResponseRules = ResponseRules()
    survival: SurvivalRules = SurvivalRules()
    frailty: FrailtyRules = FrailtyRules()
    kinetics: KineticsRules = KineticsRules()
    #: MRD results from the results store / results.csv (added to the ``mrd`` table's rows when both are given).
    mrd_source: MrdSource | None = None
    source: Path | None = None

    @field_validator("ctcae_version", mode="before")
    @classmethod
    def _version_as_text(cls, v: object) -> object:
        return f"{v:.1f}" if isinstance(v, (int, float)) else v

    @field_validator("tables")
    @classmethod
    def _known_tables(cls, v: dict[str, Path]) -> dict[str, Path]:
        unknown = sorted(set(v) - set(TABLE_NAMES))
        if unknown:
            raise ValueError(f"unknown table(s) {unknown}; expected some of {list(TABLE_NAMES)}")
        missing = [t for t in REQUIRED_TABLES if t not in v]
        if missing:
            raise ValueError(f"required table(s) {missing} not given")
        return v

    @model_validator(mode="after")
    def _labs_need_lln(self) -> "Study":
        if "labs" in self.tables and self.lln is None:
            raise ValueError("'lln' (lower limits of normal) is required when a labs table is given (CTCAE grade 1)")
        return self


def _location(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def load_study(path: str | Path) -> Study:
    """Read and validate STUDY.yaml; table paths become absolute and must exist.

    Raises
    ------
    StudyError
        naming the file and the field, what was expected and what was found.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StudyError(f"{path}: cannot read study file ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise StudyError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(raw, dict):
        raise StudyError(f"{path}: expected a mapping of study fields, found {type(raw).__name__}")
    try:
        study = Study.model_validate({**raw, "source": path})
    except ValidationError as exc:
        lines = [f"field '{_location(e['loc'])}': {e['msg']} (found {e.get('input')!r})" for e in exc.errors()]
        raise StudyError(f"{path}: invalid study definition:\n  " + "\n  ".join(lines)) from None
    base = path.resolve().parent
    tables = {}
    for name, rel in study.tables.items():
        full = (base / rel).resolve()
        if not full.is_file():
            raise StudyError(f"{path}: field 'tables.{name}': file {full} does not exist")
        tables[name] = full
    update: dict = {"tables": tables}
    src = study.mrd_source
    if src is not None:
        def resolve(field: str, rel: Path) -> Path:
            full = (base / rel).resolve()
            if not full.is_file():
                raise StudyError(f"{path}: field 'mrd_source.{field}': file {full} does not exist")
            return full

        update["mrd_source"] = src.model_copy(update={
            "store": None if src.store is None else resolve("store", src.store),
            "results_csv": None if src.results_csv is None else tuple(
                resolve("results_csv", p) for p in src.results_csv),
            "samples": None if src.samples is None else resolve("samples", src.samples),
        })
    return study.model_copy(update=update)
