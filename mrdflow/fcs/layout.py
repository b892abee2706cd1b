"""From HEADER + TEXT to "where is DATA and how is it laid out" for one data set.

Offsets in HEADER and in ``$BEGINDATA``/``$ENDDATA`` are relative to the data set's first byte.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from mrdflow.errors import FcsError
from mrdflow.fcs.data import Layout, count_ascii_values
from mrdflow.fcs.text import HEADER_SIZE, Header, Keywords, parse_header, parse_text

#: the largest TEXT segment we accept (real ones are < 1 MB; protects against garbage offsets)
MAX_TEXT_BYTES = 64 << 20
_BYTEORDERS = {"1,2,3,4": "<", "1,2": "<", "1": "<", "4,3,2,1": ">", "2,1": ">"}


@dataclass
class DataSet:
    """HEADER, keywords and channel descriptions of one data set (no events yet)."""

    index: int
    offset: int
    header: Header
    keywords: Keywords
    channels: list  # list[Channel]; typed loosely to avoid an import cycle
    warnings: list[str] = field(default_factory=list)
    n_events: int | None = None
    next_offset: int | None = None

    @property
    def version(self) -> str:
        return self.header.version


def parse_dataset(fh, path: Path, size: int, offset: int, index: int) -> DataSet:
    """Read HEADER and TEXT (plus supplemental TEXT) of the data set starting at absolute ``offset``."""
    from mrdflow.fcs.reader import Channel  # local: reader imports this module

    where = f"data set {index}: " if index else ""
    fh.seek(offset)
    header = parse_header(fh.read(HEADER_SIZE), path, offset)
    warnings: list[str] = []
    t0, t1 = header.text_start, header.text_end
    if t1 < t0 or offset + t0 >= size or t1 - t0 > MAX_TEXT_BYTES:
        raise FcsError(path, f"{where}HEADER TEXT offsets {t0}-{t1} do not lie inside the {size}-byte file")
    if offset + t1 >= size:
        warnings.append(f"{where}HEADER TEXT end {t1} is beyond the end of the file; TEXT read to the end")
        t1 = size - 1 - offset
    fh.seek(offset + t0)
    keywords = parse_text(fh.read(t1 - t0 + 1), path, warnings, f"{where}TEXT")
    _merge_supplemental(fh, path, size, offset, keywords, warnings, where)

    version = header.version
    mode = keywords.get("$MODE", "").strip().upper()
    if mode and mode != "L":
        raise FcsError(path, f"{where}$MODE is {mode!r}; only list mode (L) is supported (C and U are histogram modes)")
    if not mode:
        warnings.append(f"{where}$MODE missing; read as list mode (L)")
    n_par = _int_keyword(keywords, "$PAR", path, where, required=True)
    if n_par <= 0:
        raise FcsError(path, f"{where}$PAR is {n_par}; a data set needs at least one parameter")
    n_events = _int_keyword(keywords, "$TOT", path, where, required=False)
    if n_events is not None and n_events < 0:
        raise FcsError(path, f"{where}$TOT is {n_events}, expected a count >= 0")
    channels = [_channel(keywords, i, path, where, warnings, Channel) for i in range(n_par)]
    names = [c.name for c in channels]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        warnings.append(f"{where}duplicate $PnN names {dupes}; lookup by name finds the first")
    nxt = _int_keyword(keywords, "$NEXTDATA", path, where, required=False)
    next_offset = offset + nxt if nxt else None
    if next_offset is not None and (next_offset <= offset or next_offset + HEADER_SIZE > size):
        warnings.append(f"{where}$NEXTDATA {nxt} points outside the file; ignored (single data set)")
        next_offset = None
    ds = DataSet(index, offset, header, keywords, channels, warnings, n_events, next_offset)
    return ds


def _merge_supplemental(fh, path, size, offset, keywords: Keywords, warnings, where) -> None:
    try:
        s0 = int(keywords.get("$BEGINSTEXT", "0").strip() or 0)
        s1 = int(keywords.get("$ENDSTEXT", "0").strip() or 0)
    except ValueError:
        warnings.append(f"{where}$BEGINSTEXT/$ENDSTEXT are not numbers; supplemental TEXT ignored")
        return
    if s0 == 0 and s1 == 0:
        return
    if not (0 < s0 <= s1) or offset + s1 >= size or s1 - s0 > MAX_TEXT_BYTES:
        warnings.append(f"{where}supplemental TEXT offsets {s0}-{s1} are outside the file; ignored")
        return
    fh.seek(offset + s0)
    supplemental = parse_text(fh.read(s1 - s0 + 1), path, warnings, f"{where}supplemental TEXT")
    clashes = []
    for k, v in supplemental.items():
        if not keywords._set(k, v):
            if keywords[k] != v:
                clashes.append(k)
    if clashes:
        warnings.append(f"{where}supplemental TEXT redefines {sorted(clashes)[:5]}; the primary TEXT value is used")


def _int_keyword(keywords: Keywords, key: str, path, where: str, *, required: bool) -> int | None:
    if key not in keywords:
        if required:
            raise FcsError(path, f"{where}required keyword {key} is missing")
        return None
    raw = keywords[key].strip()
    if not raw and not required:
        return None
    try:
        return int(raw)
    except ValueError:
        try:
            value = float(raw)
            if value.is_integer():
                return int(value)
        except ValueError:
            pass
    raise FcsError(path, f"{where}{key} is {keywords[key]!r}, expected a whole number")


def _float_field(keywords: Keywords, key: str, default: float, warnings, where) -> float:
    raw = keywords.get(key)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        warnings.append(f"{where}{key} is {raw!r}, not a number; using {default}")
        return default
    if not math.isfinite(value):
        warnings.append(f"{where}{key} is {raw!r}; using {default}")
        return default
    return value


def _channel(keywords: Keywords, i: int, path, where: str, warnings: list[str], channel_cls):
    n = i + 1
    name = keywords.get(f"$P{n}N", "").strip()
    if not name:
        name = f"P{n}"
        warnings.append(f"{where}$P{n}N missing; channel {n} named {name!r}")
    marker = keywords.get(f"$P{n}S")
    marker = marker.strip() if marker is not None and marker.strip() else None
    rng = _float_field(keywords, f"$P{n}R", 0.0, warnings, where)
    if f"$P{n}R" not in keywords:
        warnings.append(f"{where}$P{n}R missing for channel {name!r}")
    gain = _float_field(keywords, f"$P{n}G", 1.0, warnings, where)
    decades, log0 = 0.0, 0.0
    pne = keywords.get(f"$P{n}E")
    if pne is not None and pne.strip():
        parts = pne.replace(";", ",").split(",")
        try:
            decades, log0 = float(parts[0]), float(parts[1]) if len(parts) > 1 else 0.0
            if not (math.isfinite(decades) and math.isfinite(log0)) or decades < 0:
                raise ValueError
        except ValueError:
            warnings.append(f"{where}$P{n}E is {pne!r}, expected 'f1,f2'; channel {name!r} read as linear")
            decades, log0 = 0.0, 0.0
        if decades > 0 and log0 == 0:
            log0 = 1.0  # FCS 3.1: f2 = 0 with f1 > 0 means 1
    bits_raw = keywords.get(f"$P{n}B", "").strip()
    bits: int | None
    if bits_raw == "*":
        bits = None
    elif bits_raw:
        try:
            bits = int(bits_raw)
        except ValueError:
            raise FcsError(path, f"{where}$P{n}B is {bits_raw!r}, expected a bit count or '*'") from None
        if bits <= 0 or bits > 64:
            raise FcsError(path, f"{where}$P{n}B is {bits}, expected 1-64")
    else:
        bits = -1  # missing: decided from $DATATYPE
    return channel_cls(i, name, marker, rng, gain, decades, log0, bits)


def _layouts(ds: DataSet, path, warnings: list[str]) -> list[Layout]:
    """Candidate layouts (more than one when non-byte integer widths may be packed or padded)."""
    kw = ds.keywords
    dt = kw.get("$DATATYPE", "").strip().upper()
    where = f"data set {ds.index}: " if ds.index else ""
    if dt not in ("I", "F", "D", "A"):
        raise FcsError(path, f"{where}$DATATYPE is {kw.get('$DATATYPE')!r}, expected I, F, D or A")
    order_raw = re.sub(r"\s+", "", kw.get("$BYTEORD", ""))
    order = _BYTEORDERS.get(order_raw)
    if order is None:
        if dt == "A":
            order = "<"
        else:
            raise FcsError(path, f"{where}$BYTEORD is {kw.get('$BYTEORD')!r}; supported: 1,2,3,4 / 4,3,2,1 / 1,2 / 2,1")
    bits = [c.bits for c in ds.channels]
    if dt in ("F", "D"):
        want = 32 if dt == "F" else 64
        odd = sorted({b for b in bits if b not in (want, -1)}, key=str)
        if odd:
            warnings.append(f"{where}$DATATYPE {dt} with $PnB {odd}; read as {want}-bit floats")
        for c in ds.channels:
            c.bits = want
        return [Layout("float", order, (want,) * len(bits))]
    if any(b == -1 for b in bits):
        missing = [f"$P{c.index + 1}B" for c in ds.channels if c.bits == -1]
        raise FcsError(path, f"{where}{', '.join(missing[:5])} missing; $DATATYPE {dt} needs them")
    if dt == "A":
        if any(b is None for b in bits):
            return [Layout("ascii-delimited", order, (0,) * len(bits))]
        return [Layout("ascii", order, tuple(b * 8 for b in bits))]  # $PnB = characters per value
    if any(b is None for b in bits):
        raise FcsError(path, f"{where}$PnB '*' is only valid for ASCII data, $DATATYPE is I")
    masks = tuple(_mask(c) for c in ds.channels)
    if all(b % 8 == 0 for b in bits):
        return [Layout("int", order, tuple(bits), masks)]
    padded = tuple(_padded(b) for b in bits)  # type: ignore[arg-type]
    byte_padded = tuple(-(-b // 8) * 8 for b in bits)  # type: ignore[operator]
    cands = [Layout("packed", order, tuple(bits), masks), Layout("int", order, padded, masks)]
    if byte_padded != padded:
        cands.append(Layout("int", order, byte_padded, masks))
    return cands


def _padded(bits: int) -> int:
    return next(w for w in (8, 16, 32, 64) if w >= bits)


def _mask(channel) -> int:
    """$PnR bit mask as flowio applies it: next power of two ≥ $PnR, minus 1; 0 = no mask."""
    if channel.range <= 0 or channel.bits is None:
        return 0
    top = 1 << max(0, math.ceil(math.log2(channel.range)))
    if top >= (1 << channel.bits):
        return 0
    return top - 1


def locate_data(fh, path, size: int, ds: DataSet, warnings: list[str]) -> tuple[int, int, int, Layout]:
    """Resolve DATA's absolute start, byte length, event count and layout; records any correction in ``warnings``."""
    where = f"data set {ds.index}: " if ds.index else ""
    layouts = _layouts(ds, path, warnings)
    cands = _offset_candidates(ds, path, size, warnings, where)
    avail = size - ds.offset
    if ds.n_events == 0:
        return ds.offset + max(cands[0][1][0], 0), 0, 0, layouts[0]
    best = None
    for layout in layouts:
        expected = layout.data_bytes(ds.n_events) if ds.n_events is not None else None
        for source, (b, e) in cands:
            if b + (expected or 0) > avail or b >= avail and (expected or 0) > 0:
                continue
            length = e - b + 1
            if expected is None:
                score = 3
            elif length == expected:
                score = 0
            elif length in (expected + 1, expected - 1):
                score = 1  # end offset off by one (exclusive end / one short)
            elif length > expected:
                score = 2
            else:
                continue
            if best is None or score < best[0]:
                best = (score, source, b, e, layout, expected)
        if best is not None and best[0] == 0:
            break
    if best is None:
        return _fail(path, ds, cands, layouts, size, where)
    score, source, b, e, layout, expected = best
    if len(layouts) > 1:
        warnings.append(f"{where}$PnB not whole bytes: DATA length fits {layout.describe()}")
    others = [(s, be) for s, be in cands if be != (b, e)]
    if others:
        detail = "; ".join(f"{s} says {x}-{y}" for s, (x, y) in others)
        warnings.append(f"{where}DATA offsets disagree: using {source} {b}-{e} (consistent with $TOT and file size); {detail}")
    if score == 1:
        warnings.append(f"{where}DATA end offset {e} is off by one for {expected} bytes ($TOT×bytes per event); read {expected} bytes from {b}")
    elif score == 2:
        warnings.append(f"{where}DATA segment ({e - b + 1} bytes) is longer than $TOT×bytes per event ({expected}); extra bytes ignored")
    start = ds.offset + b
    if expected is None:  # $TOT missing: infer from DATA length
        length = min(e - b + 1, avail - b)
        if layout.kind == "ascii-delimited":
            n = count_ascii_values(fh, start, length) // len(layout.widths)
        else:
            per = layout.record_bytes or 0
            n = (length * 8) // sum(layout.widths) if layout.kind == "packed" else length // per
            rest = length - (layout.data_bytes(n) or 0)
            if rest:
                warnings.append(f"{where}DATA length {length} is not a whole number of events; {rest} trailing bytes ignored")
        warnings.append(f"{where}$TOT missing; {n} events inferred from the DATA length")
        ds.n_events = n
        return start, length, n, layout
    if layout.kind == "ascii-delimited":
        return start, min(e - b + 1, avail - b), ds.n_events, layout
    return start, expected, ds.n_events, layout


def _offset_candidates(ds: DataSet, path, size, warnings, where) -> list[tuple[str, tuple[int, int]]]:
    h = ds.header
    cands: list[tuple[str, tuple[int, int]]] = []
    if h.data_start is not None and h.data_end is not None and not (h.data_start == 0 and h.data_end == 0):
        cands.append(("HEADER", (h.data_start, h.data_end)))
    kw = ds.keywords
    if "$BEGINDATA" in kw and "$ENDDATA" in kw:
        try:
            kb, ke = int(kw["$BEGINDATA"].strip()), int(kw["$ENDDATA"].strip())
            if not (kb == 0 and ke == 0) and (kb, ke) not in [c for _, c in cands]:
                cands.append(("$BEGINDATA/$ENDDATA", (kb, ke)))
        except ValueError:
            warnings.append(f"{where}$BEGINDATA/$ENDDATA are {kw['$BEGINDATA']!r}/{kw['$ENDDATA']!r}, not numbers; ignored")
    cands = [(s, (b, e)) for s, (b, e) in cands if b >= 0 and e >= b - 1]
    if not cands:
        if ds.n_events == 0:
            return [("empty", (0, -1))]
        raise FcsError(path, f"{where}no DATA offsets: HEADER DATA fields are blank or 0 and $BEGINDATA/$ENDDATA are missing")
    return cands


def _fail(path, ds: DataSet, cands, layouts, size, where):
    layout = layouts[0]
    expected = layout.data_bytes(ds.n_events or 0)
    source, (b, e) = cands[0]
    avail = size - ds.offset
    if b >= avail:
        raise FcsError(path, f"{where}DATA starts at byte {b} ({source}) but the file has only {avail} bytes: truncated file")
    have = min(e - b + 1, avail - b)
    raise FcsError(
        path,
        f"{where}DATA truncated or inconsistent: $TOT={ds.n_events} events × {len(layout.widths)} parameters "
        f"({layout.describe()}) need {expected} bytes from byte {b}, but {source} gives {e - b + 1} bytes "
        f"and the file holds {have} from there",
    )
