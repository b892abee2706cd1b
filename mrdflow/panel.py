"""``panel.yaml`` → :class:`Panel`: which files form which sample and tube, markers, transforms, template, MRD.

A panel is validated completely before any file is analysed: every mistake is a :class:`~mrdflow.errors.PanelError`
naming the panel file, the field path (``tubes.tube2.markers[3]``), its line, what was expected and what was
found. Every field has a default (see README "Panels"); relative paths are relative to the panel file.

Matching a panel against FCS files (marker → channel resolution, sample/tube grouping) lives in
:mod:`mrdflow.panel_files`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mrdflow._yamlio import format_loc, load_yaml
from mrdflow.errors import PanelError

__all__ = [
    "Panel", "TubeSpec", "MarkerSpec", "TransformSpec", "TransformDefaults", "GroupingSpec",
    "CompensationSpec", "MrdSettings", "QcSettings", "TimeQcSettings", "HemodilutionSettings",
    "SPECIMENS", "Specimen", "SpecimenRule", "SampleOverride",
    "load_panel", "panel_from_dict", "normalize_marker", "BUILTIN_MARKER_ALIASES",
]

#: Reagent names labs use for the same marker (compared after :func:`normalize_marker`). Extend per panel with
#: ``aliases:`` on a marker entry.
BUILTIN_MARKER_ALIASES: dict[str, tuple[str, ...]] = {
    "cyIgKappa": ("cyIgκ", "cyIgK", "Kappa", "IgK", "IgKappa", "cyKappa", "κ", "cyκ"),
    "cyIgLambda": ("cyIgλ", "cyIgL", "Lambda", "IgL", "IgLambda", "cyLambda", "λ", "cyλ"),
    "CD38": ("CD38ME", "CD38 ME", "CD38-ME", "CD38 multiepitope", "CD38 multi-epitope"),
}


def normalize_marker(name: str) -> str:
    """Case-insensitive, spacing/punctuation-insensitive key for marker and channel names (``CD38 ME`` → ``cd38me``)."""
    return re.sub(r"[\s_\-./]+", "", name).casefold()



def _regex_with_group(value: str, group: str, meaning: str) -> str:
    """Validate a file-name regex (case-insensitive) that must have the named group ``group``."""
    try:
        compiled = re.compile(value, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc})") from None
    if group not in compiled.groupindex:
        raise ValueError(f"the regex needs a named group (?P<{group}>...) giving {meaning}")
    return value

class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: the specimen types a sample can be (DOMAIN §1: marrow MRD vs circulating plasma cells in blood)
Specimen = Literal["bone_marrow", "peripheral_blood"]
SPECIMENS: tuple[str, ...] = ("bone_marrow", "peripheral_blood")


class MarkerSpec(_Model):
    """One marker of a tube. ``channel`` forces the $PnN it lives on; ``aliases`` add reagent spellings."""

    name: str = Field(min_length=1)
    channel: Optional[str] = None
    aliases: tuple[str, ...] = ()

    def candidates(self) -> list[str]:
        """Every spelling that identifies this marker, normalised (own name, panel aliases, built-in aliases)."""
        names = [self.name, *self.aliases]
        key = normalize_marker(self.name)
        for canonical, alts in BUILTIN_MARKER_ALIASES.items():
            group = [canonical, *alts]
            if key in {normalize_marker(g) for g in group} or any(
                normalize_marker(a) in {normalize_marker(g) for g in group} for a in self.aliases
            ):
                names.extend(group)
        seen: dict[str, None] = {}
        for n in names:
            seen.setdefault(normalize_marker(n), None)
        return list(seen)


_TRANSFORM_PARAMS: dict[str, tuple[str, ...]] = {
    "linear": ("T", "A"),
    "log": ("T", "M"),
    "asinh": ("T", "M", "A"),
    "logicle": ("T", "W", "M", "A"),
    "hyperlog": ("T", "W", "M", "A"),
}


class TransformSpec(_Model):
    """A GatingML 2.0 transform and its parameters. Unset parameters take these defaults:

    ``T`` = the top of the channel's linear scale ($PnR, or f2·10^f1 for a log-amplified $PnE = f1,f2 channel),
    ``W`` = 0.5, ``M`` = 4.5 decades, ``A`` = 0.
    ``type: none`` leaves the channel untouched.
    """

    type: Literal["linear", "log", "asinh", "logicle", "hyperlog", "none"]
    T: Optional[float] = Field(default=None, gt=0)
    W: Optional[float] = Field(default=None, ge=0)
    M: Optional[float] = Field(default=None, gt=0)
    A: Optional[float] = None

    @model_validator(mode="after")
    def _params_belong_to_type(self) -> "TransformSpec":
        allowed = _TRANSFORM_PARAMS.get(self.type, ())
        extra = [p for p in ("T", "W", "M", "A") if getattr(self, p) is not None and p not in allowed]
        if extra:
            raise ValueError(
                f"parameter(s) {', '.join(extra)} do not apply to a {self.type} transform "
                f"(expected only {', '.join(allowed) or 'none'})"
            )
        return self

    def resolved_params(self, channel_range: float) -> dict[str, float]:
        """Parameters with defaults filled in; ``channel_range`` is the top of the channel's linear scale."""
        defaults = {"T": float(channel_range), "W": 0.5, "M": 4.5, "A": 0.0}
        return {p: (getattr(self, p) if getattr(self, p) is not None else defaults[p])
                for p in _TRANSFORM_PARAMS.get(self.type, ())}


class TransformDefaults(_Model):
    """Panel-wide transforms: fluorescence channels get logicle, scatter (FSC*/SSC*) linear, Time none.

    ``widen_logicle`` (default true): a tube whose compensated negative events need a logicle ``W`` more than
    ``AdequacySettings.max_logicle_width_excess`` (0.3) above the panel's (Parks et al. 2006; see
    :mod:`mrdflow.qc.logicle_width`) gets every logicle channel at that need + 0.1, with a
    ``logicle_width_widened`` warning; false keeps the panel's W and only warns.
    """

    fluorescence: TransformSpec = TransformSpec(type="logicle")
    scatter: TransformSpec = TransformSpec(type="linear")
    widen_logicle: bool = True


class TubeSpec(_Model):
    """One tube: the names it goes by in file names/keywords, its markers, and per-marker transforms."""

    match: tuple[str, ...] = ()
    markers: tuple[MarkerSpec, ...] = Field(min_length=1)
    transforms: dict[str, TransformSpec] = {}

    @field_validator("markers", mode="before")
    @classmethod
    def _strings_are_marker_names(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("markers", mode="after")
    @classmethod
    def _unique_markers(cls, markers: tuple[MarkerSpec, ...]) -> tuple[MarkerSpec, ...]:
        seen: dict[str, str] = {}
        for m in markers:
            key = normalize_marker(m.name)
            if key in seen:
                raise ValueError(f"marker {m.name!r} is listed twice (also as {seen[key]!r}); list each marker once")
            seen[key] = m.name
        return markers


class GroupingSpec(_Model):
    """How files become samples and tubes.

    ``by: filename`` — ``pattern`` is a regex searched in the file name with named groups ``sample`` (required)
    and ``tube`` (required when the panel has more than one tube).
    ``by: keyword`` — the FCS keywords ``sample_keyword`` (default ``$SRC``) and ``tube_keyword`` (default
    ``TUBE NAME``) give sample and tube.
    """

    by: Literal["filename", "keyword"] = "filename"
    pattern: str = r"^(?P<sample>.+?)(?:[_ ](?P<tube>[^_ ]+))?\.fcs$"
    sample_keyword: str = "$SRC"
    tube_keyword: str = "TUBE NAME"

    @field_validator("pattern")
    @classmethod
    def _valid_regex(cls, value: str) -> str:
        return _regex_with_group(value, "sample", "the sample id")


class CompensationSpec(_Model):
    """Where the spillover matrix comes from: the file's own keyword (``file``), a CSV matrix, or ``none``."""

    source: Literal["file", "csv", "none"] = "file"
    csv: Optional[Path] = None

    @model_validator(mode="after")
    def _csv_needs_path(self) -> "CompensationSpec":
        if self.source == "csv" and self.csv is None:
            raise ValueError("source 'csv' needs 'csv: path/to/matrix.csv'")
        if self.source != "csv" and self.csv is not None:
            raise ValueError(f"'csv' is only used with source 'csv' (source is {self.source!r})")
        return self


class MrdSettings(_Model):
    """MRD quantification thresholds (DOMAIN §1.3, §2.3). ``pcl_min_pct``: circulating plasma cells, % of
    leukocytes (evaluable cells), at or above which a blood specimen meets the plasma-cell-leukaemia criterion
    (5 %, IMWG 2021); used for samples whose specimen is ``peripheral_blood``."""

    lod_events: int = Field(default=20, gt=0)
    lloq_events: int = Field(default=50, gt=0)
    required_sensitivity: float = Field(default=1e-5, gt=0, lt=1)
    denominator: Literal["combined", "per_tube"] = "combined"
    kappa_lambda_kappa_above: float = Field(default=4.0, gt=0)
    kappa_lambda_lambda_below: float = Field(default=0.5, gt=0)
    clonality_min_cells: int = Field(default=100, gt=0)
    pcl_min_pct: float = Field(default=5.0, gt=0, lt=100)

    @model_validator(mode="after")
    def _ordered(self) -> "MrdSettings":
        if self.lloq_events < self.lod_events:
            raise ValueError(f"lloq_events ({self.lloq_events}) must be ≥ lod_events ({self.lod_events})")
        if self.kappa_lambda_lambda_below >= self.kappa_lambda_kappa_above:
            raise ValueError("kappa_lambda_lambda_below must be smaller than kappa_lambda_kappa_above")
        return self


class TimeQcSettings(_Model):
    """Acquisition-time QC, PeacoQC-style (DOMAIN §3.3; defaults are PeacoQC's)."""

    enabled: bool = True
    min_cells: int = Field(default=150, gt=0)
    max_bins: int = Field(default=500, gt=0)
    mad: float = Field(default=6.0, gt=0)
    it_limit: float = Field(default=0.6, gt=0, le=1)
    consecutive_bins: int = Field(default=5, ge=0)
    #: above this median lag-1 correlation of consecutive events' signals the events are taken to be out of
    #: acquisition order and nothing is removed (mrdflow.qc.time.TimeQcSettings.max_order_correlation)
    max_order_correlation: float = Field(default=0.3, gt=0, le=1)


class HemodilutionSettings(_Model):
    """Hemodilution check (DOMAIN §3.1). No published cut-offs are built in: ``reference_min_pct`` maps a
    template role (``mast_cell``, ``bcp``, ``nrbc``, ``myeloid_precursor``) to its lower reference limit in %
    of evaluable cells; empty = not assessed."""

    reference_min_pct: dict[str, float] = {}
    min_populations_below: int = Field(default=2, ge=1)


class SpecimenRule(_Model):
    """How each sample's specimen type is read from its files (``specimen_by:``); the panel's ``specimen`` is
    the fall-back.

    Exactly one source: ``filename`` — a regex searched in each file name (case-insensitive) with a named group
    ``specimen``; or ``keyword`` — the FCS TEXT keyword (name case-insensitive) whose value gives it.
    ``values`` maps a found label to a specimen (labels compared case- and space-insensitively); the names
    ``bone_marrow`` and ``peripheral_blood`` themselves are always understood. A label that is neither is an
    error for that sample. ``missing``: what a file without a label (regex not matching, group empty, keyword
    absent or blank) gets — ``default`` (the panel's ``specimen``) or ``error`` (the sample fails).
    """

    filename: Optional[str] = None
    keyword: Optional[str] = Field(default=None, min_length=1)
    values: dict[str, Specimen] = {}
    missing: Literal["default", "error"] = "default"

    @field_validator("filename")
    @classmethod
    def _valid_regex(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return value
        return _regex_with_group(value, "specimen", "the specimen label")

    @field_validator("values")
    @classmethod
    def _unique_labels(cls, values: dict[str, str]) -> dict[str, str]:
        seen: dict[str, str] = {}
        for label in values:
            key = _label_key(label)
            if not key:
                raise ValueError("a specimen label must not be empty")
            if key in seen:
                raise ValueError(f"label {label!r} is listed twice (also as {seen[key]!r}); labels are compared "
                                 "case- and space-insensitively")
            seen[key] = label
            if key in SPECIMENS and values[label] != key:
                raise ValueError(f"label {label!r} is a specimen name and cannot mean {values[label]!r}")
        return values

    @model_validator(mode="after")
    def _one_source(self) -> "SpecimenRule":
        if (self.filename is None) == (self.keyword is None):
            raise ValueError("expected exactly one of 'filename' (a regex with a (?P<specimen>...) group) or "
                             "'keyword' (an FCS keyword name)"
                             + (", found both" if self.filename is not None else ", found neither"))
        return self

    def specimen_of(self, label: str) -> Optional[str]:
        """The specimen a found label names (``values`` first, then the specimen names); None if unknown."""
        key = _label_key(label)
        for lab, spec in self.values.items():
            if _label_key(lab) == key:
                return spec
        return next((s for s in SPECIMENS if _label_key(s) == key), None)


def _label_key(label: str) -> str:
    return re.sub(r"\s+", " ", str(label)).strip().casefold()


class SampleOverride(_Model):
    """Per-sample settings under ``samples: {SAMPLE_ID: {...}}`` (the sample id exactly as grouping gives it)."""

    specimen: Specimen


class QcSettings(_Model):
    time: TimeQcSettings = TimeQcSettings()
    hemodilution: HemodilutionSettings = HemodilutionSettings()


class Panel(_Model):
    """A validated panel. ``base_dir`` is the panel file's folder; paths below are already resolved against it."""

    name: str = Field(min_length=1)
    files: str = "*.fcs"
    grouping: GroupingSpec = GroupingSpec()
    tubes: dict[str, TubeSpec] = Field(min_length=1)
    compensation: CompensationSpec = CompensationSpec()
    transforms: TransformDefaults = TransformDefaults()
    template: Path
    #: the default specimen of every sample; ``specimen_by`` reads it per sample, ``samples`` overrides it
    specimen: Specimen = "bone_marrow"
    specimen_by: Optional[SpecimenRule] = None
    samples: dict[str, SampleOverride] = {}
    mrd: MrdSettings = MrdSettings()
    qc: QcSettings = QcSettings()
    #: template dimension → the $PnN that holds it, for scatter/Time channels an instrument names its own way
    #: (e.g. ``{FSC-A: FS INT LIN}``); needed only where the built-in scatter naming is ambiguous
    dimensions: dict[str, str] = {}
    output_dir: Path = Path("results")
    #: results store shared by runs (SQLite); None = ``mrdflow.sqlite`` in the run's output folder
    store: Optional[Path] = None
    source: Optional[Path] = None
    base_dir: Path = Path(".")

    def cross_field_problems(self) -> list[tuple[tuple, str]]:
        """Mistakes spanning several fields, as (field path, message) pairs."""
        problems = []
        seen: dict[str, str] = {}
        for tube, spec in self.tubes.items():
            for label in (tube, *spec.match):
                key = label.casefold()
                if key in seen and seen[key] != tube:
                    problems.append((("tubes", tube, "match"),
                                     f"tube label {label!r} is claimed by tubes {seen[key]!r} and {tube!r}"))
                seen[key] = tube
        if len(self.tubes) > 1 and self.grouping.by == "filename":
            if "tube" not in re.compile(self.grouping.pattern).groupindex:
                problems.append((("grouping", "pattern"), "the regex needs a (?P<tube>...) group because the panel "
                                 f"has several tubes ({', '.join(self.tubes)})"))
        for sid in self.samples:
            if not sid.strip() or sid != sid.strip():
                problems.append((("samples",), f"sample id {sid!r} is empty or has leading/trailing spaces "
                                 "(expected the id exactly as the grouping rule gives it)"))
        return problems

    def tube_for_label(self, label: str | None) -> str | None:
        """The panel tube a file's tube label (file-name group or keyword) refers to; None if none matches."""
        if label is None:
            return next(iter(self.tubes)) if len(self.tubes) == 1 else None
        key = label.strip().casefold()
        for tube, spec in self.tubes.items():
            if key == tube.casefold() or key in {m.casefold() for m in spec.match}:
                return tube
        if len(self.tubes) == 1:
            return next(iter(self.tubes))
        return None


def _format_validation_error(exc: ValidationError, source: str, line_of=None) -> str:
    lines = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p in {"function-after", "function-before"})]
        # pydantic adds union/tag members to loc ("str", "MarkerSpec"): keep only real field names and indices
        loc = [p for p in loc if not (isinstance(p, str) and p[:1].isupper() and p.endswith("Spec"))]
        where = format_loc(loc)
        line = line_of(loc) if line_of else None
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see README 'Panels' for the fields)"
        found = ""
        if err["type"] not in {"missing"} and "input" in err and not isinstance(err["input"], (dict, list)):
            found = f" (found {err['input']!r})"
        lines.append(f"{source}{f' line {line}' if line else ''}: field '{where}': {msg}{found}")
    return "\n".join(lines)


def panel_from_dict(data: dict, *, source: str | Path = "<panel>", base_dir: Path | None = None,
                    line_of=None) -> Panel:
    """Validate a panel given as a plain mapping; relative paths resolve against ``base_dir``."""
    internal = sorted({"source", "base_dir"} & set(data))
    if internal:
        raise PanelError(f"{source}: field '{internal[0]}': unknown field (it is set by mrdflow, not the panel)")
    try:
        panel = Panel.model_validate(data)
    except ValidationError as exc:
        raise PanelError(_format_validation_error(exc, str(source), line_of)) from None
    for loc, message in panel.cross_field_problems():
        line = line_of(list(loc)) if line_of else None
        raise PanelError(f"{source}{f' line {line}' if line else ''}: field '{format_loc(loc)}': {message}")
    base = Path(base_dir) if base_dir is not None else Path(".")
    comp = panel.compensation
    if comp.csv is not None and not comp.csv.is_absolute():
        comp = comp.model_copy(update={"csv": base / comp.csv})
    update = {
        "template": panel.template if panel.template.is_absolute() else base / panel.template,
        "output_dir": panel.output_dir if panel.output_dir.is_absolute() else base / panel.output_dir,
        "store": panel.store if panel.store is None or panel.store.is_absolute() else base / panel.store,
        "compensation": comp,
        "source": Path(source) if source != "<panel>" else None,
        "base_dir": base,
    }
    return panel.model_copy(update=update)


def load_panel(path: str | Path) -> Panel:
    """Read and validate ``panel.yaml``.

    Raises
    ------
    PanelError
        File missing, bad YAML, duplicate keys, or any invalid field — naming the file, field and line.
    """
    doc = load_yaml(path, PanelError, "panel")
    panel = panel_from_dict(doc.data, source=doc.path, base_dir=doc.path.parent, line_of=doc.line_of)
    if panel.compensation.source == "csv" and not panel.compensation.csv.is_file():
        raise PanelError(
            f"{doc.path} line {doc.line_of(['compensation', 'csv'])}: field 'compensation.csv': "
            f"spillover CSV {panel.compensation.csv} does not exist"
        )
    if not panel.template.is_file():
        raise PanelError(
            f"{doc.path} line {doc.line_of(['template'])}: field 'template': gating template file "
            f"{panel.template} does not exist (paths are relative to the panel file)"
        )
    return panel
