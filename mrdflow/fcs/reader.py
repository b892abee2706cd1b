"""Read one data set of an FCS file into :class:`FcsData` (float32 events, keywords, channels, spillover).

Where HEADER and TEXT disagree about where DATA is, the reader picks the reading consistent with the
file size and ``$TOT`` × bytes per event, and says so in :attr:`FcsData.warnings`. In the corpus this
settles, e.g., Accuri C6 files (TEXT ``$BEGINDATA`` wrong; HEADER right but its end offset one past the
data) and CyAn files (TEXT offsets shifted by 46 bytes; HEADER right).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from mrdflow.errors import FcsError, SpilloverError
from mrdflow.fcs.data import decode
from mrdflow.fcs.layout import Channel, DataSet, locate_data, parse_dataset
from mrdflow.fcs.spill import Spillover, spillover_from_keywords
from mrdflow.fcs.text import Keywords


@dataclass
class FcsData:
    """One data set of an FCS file.

    ``events`` is float32 (n_events, n_channels), C-contiguous (Fortran-contiguous when read with
    ``order="F"``), raw instrument values unless read with ``linearize=True``. ``keywords`` look up
    case-insensitively and keep the original keys.
    ``data_start``/``data_length`` give where DATA was read (absolute byte offset, bytes).
    """

    path: Path
    version: str
    keywords: Keywords
    channels: list[Channel]
    events: np.ndarray
    spillover: Spillover | None
    warnings: list[str] = field(default_factory=list)
    dataset: int = 0
    data_start: int = 0
    data_length: int = 0
    linearized: bool = False
    sha256: str | None = None  # SHA-256 of the whole file, when read with ``sha256=True``

    @property
    def n_events(self) -> int:
        return int(self.events.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.events.shape[1])

    @property
    def datatype(self) -> str:
        """``$DATATYPE`` (I, F, D or A)."""
        return self.keywords.get("$DATATYPE", "").strip().upper()

    @property
    def byteorder(self) -> str:
        """``$BYTEORD`` as written."""
        return self.keywords.get("$BYTEORD", "").strip()

    def channel_index(self, name_or_marker: str) -> int:
        """0-based index of a channel: exact ``$PnN`` first, then ``$PnS`` (case-insensitive), then ``$PnN`` case-insensitive.

        Raises :class:`KeyError` naming the available channels when nothing matches.
        """
        for ch in self.channels:
            if ch.name == name_or_marker:
                return ch.index
        wanted = name_or_marker.strip().lower()
        for ch in self.channels:
            if ch.marker is not None and ch.marker.strip().lower() == wanted:
                return ch.index
        for ch in self.channels:
            if ch.name.lower() == wanted:
                return ch.index
        available = ", ".join(f"{c.name}" + (f" ({c.marker})" if c.marker else "") for c in self.channels)
        raise KeyError(f"{self.path}: no channel named {name_or_marker!r}; available: {available}")

    def __repr__(self) -> str:
        return (f"FcsData({self.path.name!r}, {self.version}, dataset={self.dataset}, "
                f"{self.n_events} events × {self.n_channels} channels, spillover={'yes' if self.spillover else 'no'})")


@dataclass(frozen=True)
class DatasetInfo:
    """Summary of one data set in a (possibly multi-data-set) FCS file; ``offset`` is its absolute first byte."""

    index: int
    offset: int
    version: str
    n_events: int | None
    n_channels: int | None
    datatype: str


def read_fcs(
    path: str | os.PathLike,
    *,
    dataset: int = 0,
    linearize: bool = False,
    spillover_errors: Literal["raise", "warn"] = "raise",
    order: Literal["C", "F"] = "C",
    sha256: bool = False,
    events: bool = True,
    threads: int = 1,
) -> FcsData:
    """Read data set ``dataset`` (0-based, following ``$NEXTDATA``) of an FCS file.

    Parameters
    ----------
    path : path-like
        The FCS file (FCS 2.0, 3.0, 3.1 or 3.2).
    dataset : int
        Which data set to read (see :func:`list_datasets`).
    linearize : bool
        Apply FlowKit's default preprocessing ("linearize with PnG scaling"): log-amplified channels
        (``$PnE = f1,f2``, f1 > 0) become ``10**(f1*x/$PnR) * f2`` (f2 = 0 read as 1), then channels with
        ``$PnG`` other than 0 or 1 are divided by it, except the channel named ``Time``, which is instead
        multiplied by ``$TIMESTEP`` (flowio/FlowKit convention; flowCore divides Time by ``$PnG`` instead).
        Computed in float64 per channel, stored float32.
    spillover_errors : {"raise", "warn"}
        A malformed spillover keyword raises :class:`SpilloverError` (default) or becomes a warning
        with ``spillover=None``.
    order : {"C", "F"}
        Memory layout of ``events``: ``"C"`` (row-major, as DATA is stored) or ``"F"`` (each channel's values
        contiguous: a gate or QC pass reading one or two channels then reads only those; same values, same
        memory, filled through a small row-major chunk).
    sha256 : bool
        Also compute the SHA-256 of the whole file while reading it (``FcsData.sha256``; equal to hashing the
        file separately, without a second pass over its DATA).
    events : bool
        ``False`` reads HEADER and TEXT only (channels, keywords, spillover; DATA is located and checked to lie
        within the file but not read): ``FcsData.events`` is then an empty ``(0, n_channels)`` array — e.g. to
        validate a panel against many large files. Not with ``sha256``.
    threads : int
        Read native float32 DATA on up to this many threads, each a contiguous range of events (≥ 65 536 of
        them; same values). Ignored with ``sha256`` (the hash takes the bytes in file order), for other
        DATA types and where ``os.preadv`` is missing (Windows).

    Raises
    ------
    FcsError
        For anything that makes the file unreadable, naming the file and the cause.
    """
    path = Path(path)
    if dataset < 0:
        raise FcsError(path, f"dataset index must be >= 0, got {dataset}")
    if order not in ("C", "F"):
        raise ValueError(f"read_fcs: order must be 'C' or 'F', found {order!r}")
    if sha256 and not events:
        raise ValueError("read_fcs: sha256=True hashes the whole file, it needs events=True")
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            ds = _walk_to(fh, path, size, dataset)
            warnings = list(ds.warnings)
            start, length, n_events, layout = locate_data(fh, path, size, ds, warnings)
            hasher = None
            if sha256:
                hasher = hashlib.sha256()
                fh.seek(0)
                hasher.update(fh.read(start))
            if events:
                values = decode(fh, path, start, length, n_events, layout, order=order, hasher=hasher,
                                threads=threads)
            else:
                values = np.empty((0, len(ds.channels)), dtype=np.float32, order=order)
            digest = None
            if hasher is not None:
                fh.seek(start + length)
                while chunk := fh.read(1 << 20):
                    hasher.update(chunk)
                digest = hasher.hexdigest()
            if layout.kind == "float" and layout.widths[0] == 64 and not np.isfinite(values).all():
                warnings.append("some float64 values are beyond float32 range (or NaN) and read as ±inf/NaN")
    except FcsError:
        raise
    except OSError as exc:
        raise FcsError(path, f"cannot read file: {exc.strerror or exc}") from None
    except (ValueError, IndexError, TypeError, OverflowError, UnicodeError) as exc:  # last resort
        raise FcsError(path, f"unreadable FCS file ({type(exc).__name__}: {exc})") from None
    channels = ds.channels
    spillover = None
    try:
        spillover = spillover_from_keywords(ds.keywords, [c.name for c in channels], path)
    except SpilloverError as exc:
        if spillover_errors == "raise":
            if str(path) in str(exc):
                raise
            # the matrix's own source is a keyword name: say which file it is in
            raise SpilloverError(path, f"keyword {exc.path}: {exc.reason}") from None
        warnings.append(f"spillover ignored: {exc.reason}")
    data = FcsData(path, ds.version, ds.keywords, channels, values, spillover, warnings, dataset, start, length,
                   sha256=digest)
    if linearize:
        _linearize(data)
    return data


def list_datasets(path: str | os.PathLike) -> list[DatasetInfo]:
    """Every data set in the file, following ``$NEXTDATA`` (reads HEADER and TEXT only).

    A ``$NEXTDATA`` that leads outside the file or back to an earlier data set ends the list.
    """
    path = Path(path)
    infos: list[DatasetInfo] = []
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            offset, seen = 0, set()
            while True:
                ds = parse_dataset(fh, path, size, offset, len(infos))
                infos.append(DatasetInfo(len(infos), offset, ds.version, ds.n_events, len(ds.channels),
                                         ds.keywords.get("$DATATYPE", "").strip().upper()))
                seen.add(offset)
                nxt = ds.next_offset
                if nxt is None or nxt in seen or nxt + 58 > size:
                    break
                offset = nxt
    except OSError as exc:
        raise FcsError(path, f"cannot read file: {exc.strerror or exc}") from None
    except (ValueError, IndexError, TypeError, OverflowError, UnicodeError) as exc:
        raise FcsError(path, f"unreadable FCS file ({type(exc).__name__}: {exc})") from None
    return infos


def _walk_to(fh, path: Path, size: int, dataset: int) -> DataSet:
    offset, seen = 0, set()
    for k in range(dataset + 1):
        ds = parse_dataset(fh, path, size, offset, k)
        if k == dataset:
            return ds
        seen.add(offset)
        nxt = ds.next_offset
        if nxt is None:
            raise FcsError(path, f"data set {dataset} requested but the file has {k + 1} (no $NEXTDATA after data set {k})")
        if nxt in seen or nxt >= size:
            raise FcsError(path, f"data set {k}: $NEXTDATA points to byte {nxt}, which is not a new data set in a {size}-byte file")
        offset = nxt
    raise AssertionError("unreachable")


#: rows linearized per block: the float64 temporaries stay a few MB and in cache (no full-column float64 copy)
_LINEARIZE_BLOCK = 1 << 16


def _linearize(data: FcsData) -> None:
    timestep = None
    if "$TIMESTEP" in data.keywords:
        try:
            timestep = float(data.keywords["$TIMESTEP"])
        except ValueError:
            if data.keywords["$TIMESTEP"].strip():
                raise FcsError(data.path, f"$TIMESTEP is {data.keywords['$TIMESTEP']!r}, expected a number") from None
    jobs = []
    for ch in data.channels:
        is_time = ch.name.lower() == "time"
        scale_log = ch.log_decades > 0
        gain = 1.0 if is_time else ch.gain
        scale_gain = gain not in (0.0, 1.0)
        scale_time = is_time and timestep is not None
        if not (scale_log or scale_gain or scale_time):
            continue
        if scale_log and not ch.range > 0:
            raise FcsError(data.path, f"channel {ch.name}: $P{ch.index + 1}E is log but $P{ch.index + 1}R is {ch.range}; cannot linearize")
        jobs.append((ch, scale_time, scale_log, scale_gain, gain))
    events = data.events
    overflowed = set()
    # row blocks outside, channels inside: one sweep over the event matrix whatever the number of channels;
    # each value is computed in float64 exactly as a whole-column computation would, then stored as float32
    for start in range(0, events.shape[0] if jobs else 0, _LINEARIZE_BLOCK):
        block = events[start : start + _LINEARIZE_BLOCK]
        for ch, scale_time, scale_log, scale_gain, gain in jobs:
            col = block[:, ch.index].astype(np.float64)
            with np.errstate(over="ignore"):
                if scale_time:
                    col *= timestep
                if scale_log:
                    col = (10 ** (ch.log_decades * col / ch.range)) * (ch.log_offset or 1.0)
                if scale_gain:
                    col /= gain
                block[:, ch.index] = col
            if scale_log and ch.index not in overflowed and not np.isfinite(block[:, ch.index]).all():
                overflowed.add(ch.index)
    for ch, *_ in jobs:
        if ch.index in overflowed:
            data.warnings.append(f"channel {ch.name}: log decoding overflowed float32 for some events (read as inf)")
    data.linearized = True
