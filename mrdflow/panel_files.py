"""Fitting a :class:`~mrdflow.panel.Panel` to real files: finding them, grouping them into samples and tubes,
resolving markers to channels and choosing each channel's transform.

Functions here take channel descriptions (anything with ``name`` = $PnN, ``marker`` = $PnS or None and
``range`` = $PnR, such as :class:`mrdflow.fcs.Channel`) and keyword mappings, so they are testable without files;
only :func:`find_files`, :func:`group_files`, :func:`text_keywords` and :func:`resolve_specimen` touch the file
system.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Protocol, Sequence

from mrdflow.errors import PanelError
from mrdflow.panel import Panel, TransformSpec, normalize_marker

__all__ = [
    "SampleFiles", "SpecimenCall", "find_files", "group_files", "text_keywords", "resolve_specimen", "resolve_markers", "resolve_dims", "channel_transforms",
    "is_scatter", "is_time", "time_channel", "scatter_dimension", "has_dimension", "linear_top", "linear_value",
]


class ChannelLike(Protocol):
    name: str
    marker: str | None
    range: float


@dataclass(frozen=True)
class SampleFiles:
    """One sample: its id and the file of each tube (tube name as in the panel → path)."""

    sample_id: str
    tubes: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class SpecimenCall:
    """A sample's resolved specimen type and where it came from (for the result's details and audit).

    ``source`` is e.g. ``"panel default"``, ``"samples.P07"``, ``"keyword SPECIMEN = 'PB'"``,
    ``"file name group 'specimen' = 'PB'"`` or ``"given by the caller"``.
    """

    specimen: str
    source: str


def find_files(panel: Panel) -> list[Path]:
    """Files matched by ``panel.files`` (a glob relative to the panel file), sorted; error when none match."""
    pattern = panel.files
    base = panel.base_dir
    root = Path("/") if Path(pattern).is_absolute() else base
    paths = sorted(p for p in root.glob(pattern.lstrip("/") if root == Path("/") else pattern) if p.is_file())
    if not paths:
        raise PanelError(
            f"{panel.source or '<panel>'}: field 'files': the glob {pattern!r} matches no file under {base} "
            "(expected at least one FCS file; the glob is relative to the panel file)"
        )
    return paths


def group_files(panel: Panel, paths: Sequence[Path],
                keywords_of: Callable[[Path], Mapping[str, str]] | None = None) -> list[SampleFiles]:
    """Group files into samples and tubes by the panel's grouping rule.

    Parameters
    ----------
    panel : the validated panel.
    paths : files to group (usually :func:`find_files`).
    keywords_of : for ``grouping.by: keyword``, returns a file's TEXT keywords (case-insensitive lookup is
        done here); defaults to reading them with :func:`mrdflow.fcs.read_fcs`.

    Raises
    ------
    PanelError
        A file name does not match the pattern, a tube label is not a panel tube, a keyword is missing, or two
        files claim the same sample and tube.
    """
    src = panel.source or "<panel>"
    spec = panel.grouping
    regex = re.compile(spec.pattern, re.IGNORECASE)
    samples: dict[str, dict[str, Path]] = {}
    for path in paths:
        if spec.by == "filename":
            m = regex.search(path.name)
            if m is None:
                raise PanelError(
                    f"{src}: field 'grouping.pattern': file name {path.name!r} does not match {spec.pattern!r} "
                    "(expected named groups 'sample' and 'tube' to be found in every matched file name)"
                )
            sample, label = m.group("sample"), m.groupdict().get("tube")
            where = "grouping.pattern"
        else:
            kw = _keywords(path, keywords_of)
            sample = _keyword(kw, spec.sample_keyword, path, src, "grouping.sample_keyword")
            label = _keyword(kw, spec.tube_keyword, path, src, "grouping.tube_keyword") \
                if len(panel.tubes) > 1 else kw.get(spec.tube_keyword.casefold())
            where = "grouping.tube_keyword"
        tube = panel.tube_for_label(label)
        if tube is None:
            expected = ", ".join(f"{t} (or {', '.join(s.match)})" if s.match else t for t, s in panel.tubes.items())
            raise PanelError(
                f"{src}: field '{where}': file {path.name} has tube label {label!r}, which is not a panel tube "
                f"(expected one of: {expected}; add the label to that tube's 'match' list)"
            )
        sample = sample.strip()
        tubes = samples.setdefault(sample, {})
        if tube in tubes:
            raise PanelError(
                f"{src}: field 'grouping': files {tubes[tube].name} and {path.name} both claim sample {sample!r} "
                f"tube {tube!r} (expected one file per sample and tube)"
            )
        tubes[tube] = path
    return [SampleFiles(s, dict(t)) for s, t in sorted(samples.items())]


def text_keywords(path: str | os.PathLike) -> Mapping[str, str]:
    """Every TEXT keyword of an FCS file's first data set (HEADER and TEXT only; DATA is not read).

    Raises
    ------
    FcsError
        The file cannot be read or is not FCS.
    """
    from mrdflow.errors import FcsError
    from mrdflow.fcs.layout import parse_dataset

    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return parse_dataset(fh, path, os.fstat(fh.fileno()).st_size, 0, 0).keywords
    except OSError as exc:
        raise FcsError(path, f"cannot read file: {exc.strerror or exc}") from None
    except (ValueError, IndexError, TypeError, UnicodeError) as exc:
        raise FcsError(path, f"unreadable FCS file ({type(exc).__name__}: {exc})") from None


def resolve_specimen(panel: Panel, sample: SampleFiles,
                     keywords_of: Callable[[Path], Mapping[str, str]] | None = None) -> SpecimenCall:
    """The specimen type of one sample: ``samples.<id>.specimen`` if the panel lists the sample, else the
    ``specimen_by`` rule applied to every tube file (they must agree), else the panel's ``specimen``.

    Parameters
    ----------
    panel : the validated panel.
    sample : the sample's id and tube files.
    keywords_of : returns a file's TEXT keywords (for ``specimen_by.keyword``); default :func:`text_keywords`.

    Raises
    ------
    PanelError
        A file's label is not a known specimen, a label is missing with ``missing: error``, or the tubes of the
        sample name different specimens — one failed sample, never the batch.
    """
    src = panel.source or "<panel>"
    override = panel.samples.get(sample.sample_id)
    if override is not None:
        return SpecimenCall(override.specimen, f"samples.{sample.sample_id}")
    rule = panel.specimen_by
    if rule is None:
        return SpecimenCall(panel.specimen, "panel default")
    found: dict[str, tuple[str, str, Path]] = {}  # tube → (specimen, how, file)
    for tube, path in sample.tubes.items():
        path = Path(path)
        if rule.filename is not None:
            m = re.search(rule.filename, path.name, re.IGNORECASE)
            label = m.group("specimen") if m is not None else None
            where, how = "specimen_by.filename", f"file name group 'specimen' = {label!r}"
        else:
            kw = {str(k).casefold(): str(v) for k, v in dict((keywords_of or text_keywords)(path)).items()}
            label = kw.get(rule.keyword.casefold())
            where, how = "specimen_by.keyword", f"keyword {rule.keyword} = {label!r}"
        if label is None or not label.strip():
            if rule.missing == "error":
                what = (f"file name {path.name!r} gives no specimen label (regex {rule.filename!r})"
                        if rule.filename is not None else f"file {path.name} has no keyword {rule.keyword!r}")
                raise PanelError(f"{src}: field '{where}': sample {sample.sample_id!r}: {what}; expected a label "
                                 "because 'specimen_by.missing' is 'error'")
            found[tube] = (panel.specimen, "panel default (no label)", path)
            continue
        specimen = rule.specimen_of(label)
        if specimen is None:
            known = sorted({*rule.values, "bone_marrow", "peripheral_blood"}, key=str.casefold)
            raise PanelError(
                f"{src}: field 'specimen_by.values': sample {sample.sample_id!r}, file {path.name}: specimen label "
                f"{label.strip()!r} is not known (expected one of {', '.join(known)}; add it to "
                "'specimen_by.values')"
            )
        found[tube] = (specimen, how, path)
    kinds = {s for s, _, _ in found.values()}
    if len(kinds) > 1:
        each = "; ".join(f"tube {t} ({p.name}): {s} from {how}" for t, (s, how, p) in found.items())
        raise PanelError(f"{src}: field 'specimen_by': sample {sample.sample_id!r}: its tubes name different "
                         f"specimens ({each}); expected every tube of a sample to come from one specimen — fix "
                         f"the files or set 'samples.{sample.sample_id}.specimen'")
    specimen, how, _ = next(iter(found.values()))
    hows = {h for _, h, _ in found.values()}
    return SpecimenCall(specimen, how if len(hows) == 1 else "; ".join(sorted(hows)))


def _keywords(path: Path, keywords_of) -> dict[str, str]:
    if keywords_of is None:
        keywords_of = text_keywords  # HEADER and TEXT only: DATA is not read to group or classify a file
    return {str(k).casefold(): str(v) for k, v in dict(keywords_of(path)).items()}


def _keyword(kw: Mapping[str, str], name: str, path: Path, src, field_name: str) -> str:
    value = kw.get(name.casefold())
    if value is None or not value.strip():
        raise PanelError(
            f"{src}: field '{field_name}': file {path.name} has no keyword {name!r} "
            "(expected it to name the sample/tube; choose another keyword or group by filename)"
        )
    return value


def resolve_markers(panel: Panel, tube: str, channels: Sequence[ChannelLike], *,
                    file: str | Path = "<file>") -> dict[str, int]:
    """Map each marker of ``tube`` to the 0-based index of its channel in ``channels``.

    A marker with ``channel:`` set uses that $PnN (case-insensitive). Otherwise its name and aliases are compared
    (case/spacing-insensitively) with every channel's whole $PnS first, then its whole $PnN; failing both, with a
    run of *words* of the $PnS, then of the $PnN — so a stain written with its fluorochrome or metal tag (``CD38
    FITC``, ``CD138_Nd142``, ``BV421.CD27``, ``cyIgKappa APC``) still names its marker, while ``CD45RA`` never
    names ``CD45`` (words are split at spaces and ``_ - . / ( ) : , ;``). Returned keys are the marker names as
    written in the panel.

    Raises
    ------
    PanelError
        A marker matches no channel, or matches several.
    """
    src = panel.source or "<panel>"
    spec = panel.tubes[tube]
    stains = [normalize_marker(c.marker) if c.marker else None for c in channels]
    names = [normalize_marker(c.name) for c in channels]
    out: dict[str, int] = {}
    for i, marker in enumerate(spec.markers):
        where = f"tubes.{tube}.markers[{i}]"
        if marker.channel is not None:
            hits = [j for j, n in enumerate(names) if n == normalize_marker(marker.channel)]
            if not hits:
                raise PanelError(
                    f"{src}: field '{where}.channel': file {file} has no channel named {marker.channel!r} for "
                    f"marker {marker.name!r} (channels: {', '.join(c.name for c in channels)})"
                )
            out[marker.name] = hits[0]
            continue
        cands = set(marker.candidates())
        hits = ([j for j, s in enumerate(stains) if s in cands] or [j for j, n in enumerate(names) if n in cands]
                or [j for j, c in enumerate(channels) if c.marker and _names_in_words(c.marker, cands)]
                or [j for j, c in enumerate(channels) if _names_in_words(c.name, cands)])
        if not hits:
            available = ", ".join(f"{c.name}={c.marker}" if c.marker else c.name for c in channels)
            raise PanelError(
                f"{src}: field '{where}': marker {marker.name!r} is missing from file {file} "
                f"(no $PnS or $PnN matches it or its aliases; channels are {available}). "
                "Add an alias or 'channel:' to the marker entry."
            )
        if len(hits) > 1:
            raise PanelError(
                f"{src}: field '{where}': marker {marker.name!r} matches several channels of file {file} "
                f"({', '.join(channels[j].name for j in hits)}); expected exactly one — set 'channel:' to choose"
            )
        out[marker.name] = hits[0]
    return out


_WORD_SPLIT = re.compile(r"[\s_\-./():,;]+")


def _names_in_words(label: str, candidates: set[str]) -> bool:
    """Whether a run of consecutive words of ``label`` (joined, normalised) is one of the ``candidates``."""
    words = [w for w in _WORD_SPLIT.split(label.casefold()) if w]
    return any("".join(words[i:j]) in candidates for i in range(len(words)) for j in range(i + 1, len(words) + 1))


def resolve_dims(dims: Sequence[str], markers: Mapping[str, int], channels: Sequence[ChannelLike], *,
                 where: str, file: str | Path = "<file>",
                 dimensions: Mapping[str, str] | None = None) -> dict[str, int]:
    """Column index of each template dimension: the panel's ``dimensions`` mapping (dimension → $PnN) first,
    then a panel marker name, then a $PnN, then — for a scatter dimension (``FSC-A``, ``SSC-H``, ...) — the one
    channel the instrument names that way (:func:`scatter_dimension`: ``FS INT LIN`` on a Navios, ``FSC LinA``
    on a MoFlo, ``FSC-Area``, ...; a linear channel is preferred over a log one of the same signal)."""
    out: dict[str, int] = {}
    for d in dims:
        mapped, hits = _dimension_columns(d, markers, channels, dimensions)
        if mapped is not None and not hits:
            raise PanelError(f"{where}: dimension {d!r} is mapped to channel {mapped!r} (panel field "
                             f"'dimensions'), which file {file} lacks ({', '.join(c.name for c in channels)})")
        if len(hits) > 1:
            raise PanelError(
                f"{where}: dimension {d!r} matches several scatter channels of file {file} "
                f"({', '.join(channels[j].name for j in hits)}); say which in the panel: dimensions: {{{d}: NAME}}"
            )
        if not hits:
            raise PanelError(
                f"{where}: dimension {d!r} is neither a marker of the tube ({', '.join(markers)}) nor a channel "
                f"of file {file} ({', '.join(c.name for c in channels)})"
            )
        out[d] = hits[0]
    return out


def has_dimension(dim: str, markers: Mapping[str, int], channels: Sequence[ChannelLike],
                  dimensions: Mapping[str, str] | None = None) -> bool:
    """Whether a file could hold the template dimension ``dim`` at all — mapped by the panel, a marker of the tube,
    a $PnN, or at least one scatter channel standing for it (a missing mapped channel or several candidates are
    :func:`resolve_dims`' errors to report)."""
    mapped, hits = _dimension_columns(dim, markers, channels, dimensions)
    return mapped is not None or bool(hits)


def _dimension_columns(dim: str, markers: Mapping[str, int], channels: Sequence[ChannelLike],
                       dimensions: Mapping[str, str] | None) -> tuple[str | None, list[int]]:
    """(the $PnN the panel maps ``dim`` to, or None; the candidate columns in the order of precedence of
    :func:`resolve_dims`: the mapped channel, the marker, the $PnN, the scatter channels)."""
    key = normalize_marker(dim)
    by_name = {normalize_marker(c.name): j for j, c in enumerate(channels)}
    mapped = next((v for k, v in (dimensions or {}).items() if normalize_marker(k) == key), None)
    if mapped is not None:
        col = by_name.get(normalize_marker(mapped))
        return mapped, [] if col is None else [col]
    marker = next((v for k, v in markers.items() if normalize_marker(k) == key), None)
    if marker is not None:
        return None, [marker]
    if key in by_name:
        return None, [by_name[key]]
    return None, _scatter_channels(dim, channels)


_SCATTER_HEAD = re.compile(r"(fsc|ssc|fs|ss)(a|h|w)?")
_SCATTER_SIGNAL = {"a": "A", "area": "A", "int": "A", "integral": "A", "h": "H", "height": "H", "peak": "H",
                   "w": "W", "width": "W", "tof": "W"}


def scatter_dimension(name: str) -> tuple[str, bool] | None:
    """The scatter signal a $PnN stands for across instruments — ``("FSC-A", is_log)`` — or None.

    ``FSC-A``, ``FSCA``, ``FSC-Area``, ``FSC LinA``, ``FSC.ALin``, ``FS INT LIN`` (Navios), ``FS Lin`` / ``FS``
    (one scatter signal: the area) → ``FSC-A``; ``FSC-H``, ``FSC-Height``, ``FS PEAK LIN``, ``FSC.HLin`` →
    ``FSC-H``; width / time-of-flight → ``-W``; the same for SSC / SS. Other scatter detectors (``SSC-B-A``,
    ``SSC6-Area``, ``405nm SSC``) and anything else give None.
    """
    words = [w for w in _WORD_SPLIT.split(name.casefold()) if w]
    if not words or not (head := _SCATTER_HEAD.fullmatch(words[0])):
        return None
    signals = {head.group(2).upper()} if head.group(2) else set()
    is_log = False
    for w in words[1:]:
        for amp in ("lin", "log"):
            if w.startswith(amp) or w.endswith(amp):
                is_log = is_log or amp == "log"
                w = w[3:] if w.startswith(amp) else w[:-3]
                break
        if not w:
            continue
        if w not in _SCATTER_SIGNAL:
            return None
        signals.add(_SCATTER_SIGNAL[w])
    if len(signals) > 1:
        return None
    kind = "FSC" if head.group(1).startswith("f") else "SSC"
    return f"{kind}-{signals.pop() if signals else 'A'}", is_log


def _scatter_channels(dim: str, channels: Sequence[ChannelLike]) -> list[int]:
    """Channels standing for the scatter dimension ``dim`` (linear ones only, when there are any)."""
    want = scatter_dimension(dim)
    if want is None:
        return []
    hits = [(j, sd[1]) for j, c in enumerate(channels) if (sd := scatter_dimension(c.name)) and sd[0] == want[0]]
    linear = [j for j, is_log in hits if not is_log]
    return linear or [j for j, _ in hits]


def is_scatter(name: str) -> bool:
    """Forward/side scatter parameter by $PnN convention (FSC-A, SSC-H, SSC-B-A, FS INT LIN, SS Log, ...)."""
    return normalize_marker(name)[:3] in {"fsc", "ssc"} or re.match(r"(fs|ss)(?![a-z])", name.casefold()) is not None


#: $PnN of a time channel: ``Time`` (FCS 3.1), ``HDR-T`` (Beckman Coulter's high-resolution time)
_TIME_NAMES = ("time", "hdrt")


def is_time(name: str) -> bool:
    return normalize_marker(name) in _TIME_NAMES


def time_channel(names: Sequence[str]) -> int | None:
    """Index of the time channel among $PnN ``names``: ``Time`` first, else ``HDR-T``; None without one."""
    keys = [normalize_marker(n) for n in names]
    return next((keys.index(t) for t in _TIME_NAMES if t in keys), None)


def channel_transforms(panel: Panel, tube: str, channels: Sequence[ChannelLike],
                       markers: Mapping[str, int]) -> dict[str, tuple[str, dict[str, float]]]:
    """Transform of every channel: $PnN → (type, parameters with defaults filled in, T = the top of the
    channel's linear scale by default, see :func:`linear_top`).

    Per-tube ``transforms`` entries (keyed by marker or $PnN) override the panel defaults (logicle for
    fluorescence, linear for scatter); Time and ``type: none`` channels are left out (untouched).
    """
    src = panel.source or "<panel>"
    spec = panel.tubes[tube]
    override: dict[int, TransformSpec] = {}
    for key, tspec in spec.transforms.items():
        hit = [j for m, j in markers.items() if normalize_marker(m) == normalize_marker(key)] or \
              [j for j, c in enumerate(channels) if normalize_marker(c.name) == normalize_marker(key)]
        if not hit:
            raise PanelError(
                f"{src}: field 'tubes.{tube}.transforms.{key}': {key!r} is neither a marker of the tube nor a channel "
                f"of the file (expected one of {', '.join([*markers, *(c.name for c in channels)])})"
            )
        override[hit[0]] = tspec
    out: dict[str, tuple[str, dict[str, float]]] = {}
    for j, c in enumerate(channels):
        if j in override:
            t = override[j]
        elif is_time(c.name):
            continue
        elif is_scatter(c.name):
            t = panel.transforms.scatter
        else:
            t = panel.transforms.fluorescence
        if t.type == "none":
            continue
        out[c.name] = (t.type, t.resolved_params(linear_top(c)))
    return out


def linear_value(channel: ChannelLike, raw: float) -> float:
    """A raw channel value in linearized, $PnG-scaled units, as ``read_fcs(..., linearize=True)`` gives them:
    ``f2·10^(f1·raw/$PnR)`` for a log-amplified channel ($PnE = f1,f2; f2 = 0 read as 1), else ``raw / $PnG``
    (gain 0 or 1, and Time, unscaled)."""
    rng = float(channel.range) if channel.range else 262144.0
    decades = float(getattr(channel, "log_decades", 0.0) or 0.0)
    if decades > 0:
        offset = float(getattr(channel, "log_offset", 0.0) or 0.0) or 1.0
        return offset * 10.0 ** (decades * raw / rng)
    gain = float(getattr(channel, "gain", 1.0) or 1.0)
    return raw / gain if gain not in (0.0, 1.0) and not is_time(channel.name) else raw


def linear_top(channel: ChannelLike) -> float:
    """Top of a channel's scale in linearized units: :func:`linear_value` of $PnR."""
    return linear_value(channel, float(channel.range) if channel.range else 262144.0)
