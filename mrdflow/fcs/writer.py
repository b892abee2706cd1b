"""FCS 3.1 writer: list-mode events (float32 by default) with channel names, markers and spillover.

Used by the simulator and by labelled-event export. Files are written to a temporary name beside the
target and renamed, so a killed writer never leaves a half-written file under the final name.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from mrdflow.errors import FcsError
from mrdflow.fcs.spill import Spillover
from mrdflow.fcs.text import HEADER_SIZE, build_text

#: HEADER offsets above this do not fit the 8-digit fields; FCS 3.1 writes 0 there and relies on TEXT
MAX_HEADER_OFFSET = 99_999_999
#: default $PnR for float data (2^18, what most digital cytometers write)
DEFAULT_FLOAT_RANGE = 262_144
_DELIMITER_CHOICES = "/|\\!#%&*;~^"
_ROWS_PER_CHUNK = 1 << 18
_STRUCTURAL = re.compile(
    r"^\$(BEGIN|END)(ANALYSIS|DATA|STEXT)$|^\$(BYTEORD|DATATYPE|MODE|NEXTDATA|PAR|TOT|SPILLOVER)$|^\$P\d+[BENRS]$",
    re.IGNORECASE,
)


def write_fcs(
    path: str | Path,
    events: np.ndarray,
    channel_names: Sequence[str],
    *,
    markers: Sequence[str | None] | None = None,
    spillover: Spillover | None = None,
    keywords: Mapping[str, str] | None = None,
    datatype: str = "F",
    ranges: Sequence[float] | None = None,
    byteorder: str = "<",
    delimiter: str | None = None,
    bits: int | Sequence[int] | None = None,
) -> Path:
    """Write events to an FCS 3.1 file.

    Parameters
    ----------
    path : path-like
        Output file (replaced atomically if it exists).
    events : ndarray, shape (n_events, n_channels)
        Event values in instrument units. Converted chunk by chunk, never copied whole.
    channel_names : sequence of str
        ``$PnN`` names, one per column, unique.
    markers : sequence of str or None, optional
        ``$PnS`` stain names (``None`` or ``""`` = no ``$PnS`` for that channel).
    spillover : Spillover, optional
        Written as ``$SPILLOVER``; its channels must be among ``channel_names``.
    keywords : mapping, optional
        Extra keywords (e.g. ``$CYT``, ``$PnG``, ``TUBE NAME``). Keywords that describe the layout
        (``$TOT``, ``$PAR``, ``$PnB``, ``$PnN``, offsets, ...) are set by the writer and may not be given.
    datatype : {"F", "D", "I"}
        float32, float64, or unsigned integers (values must be whole numbers within ``bits``).
    ranges : sequence of float, optional
        ``$PnR``. Default: for F/D ``max(262144, ceil(column max))``; for I ``2**bits``.
    byteorder : {"<", ">"}
        Little-endian (``$BYTEORD 1,2,3,4``) or big-endian (``4,3,2,1``).
    delimiter : str, optional
        TEXT delimiter; default the first of ``/|\\!#...`` that no key or value starts with.
    bits : int or sequence of int, optional
        ``$PnB`` for datatype I: 8, 16, 32 or 64, one for all channels or one per channel. Default 32.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    events = np.asarray(events)
    if events.ndim != 2:
        raise FcsError(path, f"events must be a 2-D array (n_events, n_channels), got shape {events.shape}")
    n_events, n_par = events.shape
    names = [str(c) for c in channel_names]
    if len(names) != n_par:
        raise FcsError(path, f"{len(names)} channel names for {n_par} event columns")
    if n_par == 0:
        raise FcsError(path, "an FCS file needs at least one channel")
    if len(set(n.upper() for n in names)) != n_par:
        raise FcsError(path, f"channel names must be unique (case-insensitively): {names}")
    if any(not n.strip() for n in names):
        raise FcsError(path, "channel names may not be empty")
    if markers is not None and len(markers) != n_par:
        raise FcsError(path, f"{len(markers)} markers for {n_par} channels")
    if byteorder not in ("<", ">"):
        raise FcsError(path, f"byteorder must be '<' or '>', got {byteorder!r}")
    datatype = datatype.upper()
    if datatype not in ("F", "D", "I"):
        raise FcsError(path, f"datatype must be 'F', 'D' or 'I', got {datatype!r}")
    if events.dtype.kind not in "fiub":
        raise FcsError(path, f"events must be numeric, got dtype {events.dtype}")

    widths, dtypes = _column_layout(path, datatype, byteorder, n_par, bits)
    if datatype == "I":
        _check_integers(path, events, widths)
    range_values = _ranges(path, events, datatype, widths, ranges)

    items: list[tuple[str, str]] = [
        ("$BEGINANALYSIS", "0"), ("$ENDANALYSIS", "0"), ("$BEGINSTEXT", "0"), ("$ENDSTEXT", "0"),
        ("$BEGINDATA", ""), ("$ENDDATA", ""),
        ("$BYTEORD", "1,2,3,4" if byteorder == "<" else "4,3,2,1"),
        ("$DATATYPE", datatype), ("$MODE", "L"), ("$NEXTDATA", "0"),
        ("$PAR", str(n_par)), ("$TOT", str(n_events)),
    ]
    for i, name in enumerate(names, start=1):
        items += [(f"$P{i}N", name), (f"$P{i}B", str(widths[i - 1])), (f"$P{i}E", "0,0"),
                  (f"$P{i}R", _format_number(range_values[i - 1]))]
        marker = markers[i - 1] if markers is not None else None
        if marker:
            items.append((f"$P{i}S", str(marker)))
    if spillover is not None:
        missing = [c for c in spillover.channels if c not in names]
        if missing:
            raise FcsError(path, f"spillover names channels not being written: {missing}")
        items.append(("$SPILLOVER", spillover.to_keyword()))
    for key, value in (keywords or {}).items():
        if _STRUCTURAL.match(key):
            raise FcsError(path, f"keyword {key!r} describes the file layout and is set by the writer")
        items.append((str(key), str(value)))
    seen: set[str] = set()
    for key, _ in items:
        if key.upper() in seen:
            raise FcsError(path, f"keyword {key!r} given twice (keywords are case-insensitive)")
        seen.add(key.upper())

    delimiter = delimiter or _choose_delimiter(items)
    data_bytes = n_events * sum(w // 8 for w in widths)
    text = _text_with_offsets(path, items, delimiter, data_bytes)
    text_end = HEADER_SIZE + len(text) - 1
    data_start = text_end + 1
    data_end = data_start + data_bytes - 1 if data_bytes else data_start  # empty DATA: begin = end
    header = _header(HEADER_SIZE, text_end, data_start, data_end)

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(header)
            fh.write(text)
            _write_data(fh, events, dtypes)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _column_layout(path, datatype, byteorder, n_par, bits):
    if datatype == "F":
        return [32] * n_par, [np.dtype(byteorder + "f4")] * n_par
    if datatype == "D":
        return [64] * n_par, [np.dtype(byteorder + "f8")] * n_par
    if bits is None:
        bits = 32
    widths = [int(bits)] * n_par if np.isscalar(bits) else [int(b) for b in bits]  # type: ignore[union-attr]
    if len(widths) != n_par:
        raise FcsError(path, f"{len(widths)} bit widths for {n_par} channels")
    bad = [w for w in widths if w not in (8, 16, 32, 64)]
    if bad:
        raise FcsError(path, f"integer bit widths must be 8, 16, 32 or 64, got {bad}")
    return widths, [np.dtype(f"{byteorder}u{w // 8}") for w in widths]


def _check_integers(path, events, widths):
    for j, w in enumerate(widths):
        col = events[:, j]
        if col.size == 0:
            continue
        if events.dtype.kind == "f" and not np.all(np.floor(col) == col):
            raise FcsError(path, f"datatype I: column {j + 1} has non-integer (or non-finite) values")
        lo, hi = col.min(), col.max()
        if lo < 0 or hi > 2**w - 1:
            raise FcsError(path, f"datatype I: column {j + 1} values span {lo}..{hi}, outside 0..{2**w - 1} ({w} bits)")


def _ranges(path, events, datatype, widths, ranges):
    n_par = events.shape[1]
    if ranges is not None:
        values = [float(r) for r in ranges]
        if len(values) != n_par:
            raise FcsError(path, f"{len(values)} ranges for {n_par} channels")
        if not all(math.isfinite(r) and r > 0 for r in values):
            raise FcsError(path, f"ranges must be finite and positive, got {values}")
        return values
    if datatype == "I":
        return [float(2**w) for w in widths]
    if events.shape[0] == 0:
        return [float(DEFAULT_FLOAT_RANGE)] * n_par
    col_max = np.nanmax(np.where(np.isfinite(events), events, -np.inf), axis=0) if events.dtype.kind == "f" else events.max(axis=0)
    return [float(max(DEFAULT_FLOAT_RANGE, math.ceil(m) if math.isfinite(m) else 0)) for m in col_max]


def _format_number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _choose_delimiter(items: list[tuple[str, str]]) -> str:
    for d in _DELIMITER_CHOICES:
        if not any(k.startswith(d) or v.startswith(d) for k, v in items if v):
            return d
    raise ValueError("no usable TEXT delimiter")  # unreachable: values cannot start with all of them


def _text_with_offsets(path, items, delimiter, data_bytes) -> bytes:
    begin = end = 0
    for _ in range(10):  # the offsets' own digits move DATA; settles in 2-3 rounds
        filled = [(k, str(begin) if k == "$BEGINDATA" else str(end) if k == "$ENDDATA" else v) for k, v in items]
        try:
            text = build_text(filled, delimiter)
        except ValueError as exc:
            raise FcsError(path, str(exc)) from None
        new_begin = HEADER_SIZE + len(text)
        new_end = new_begin + data_bytes - 1 if data_bytes else new_begin
        if (new_begin, new_end) == (begin, end):
            return text
        begin, end = new_begin, new_end
    raise FcsError(path, "could not settle TEXT offsets")  # pragma: no cover - lengths are monotone


def _header(text_start: int, text_end: int, data_start: int, data_end: int) -> bytes:
    def pair(a: int, b: int) -> tuple[int, int]:
        return (0, 0) if b > MAX_HEADER_OFFSET else (a, b)

    fields = [*pair(text_start, text_end), *pair(data_start, data_end), 0, 0]
    header = b"FCS3.1    " + b"".join(f"{v:>8d}".encode("ascii") for v in fields)
    assert len(header) == HEADER_SIZE
    return header


def _write_data(fh, events: np.ndarray, dtypes: list[np.dtype]) -> None:
    n_events = events.shape[0]
    if len(set(dtypes)) == 1:
        dtype = dtypes[0]
        if events.dtype == dtype and events.flags.c_contiguous:
            fh.write(memoryview(events).cast("B"))
            return
        for start in range(0, n_events, _ROWS_PER_CHUNK):
            fh.write(events[start : start + _ROWS_PER_CHUNK].astype(dtype).tobytes())
        return
    record = np.dtype([(f"p{i}", dt) for i, dt in enumerate(dtypes)])
    for start in range(0, n_events, _ROWS_PER_CHUNK):
        chunk = events[start : start + _ROWS_PER_CHUNK]
        out = np.empty(chunk.shape[0], dtype=record)
        for i in range(len(dtypes)):
            out[f"p{i}"] = chunk[:, i]
        fh.write(out.tobytes())
