"""DATA segment layouts → one float32 event matrix.

Each decoder reads the DATA bytes once (``readinto`` for native float32, a read-only memory map
otherwise) and writes straight into the float32 output, chunk by chunk, so peak memory stays at one
output array plus a small chunk.
"""

from __future__ import annotations

import mmap
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from mrdflow.errors import FcsError

_ROWS_PER_CHUNK = 1 << 13  # rows per conversion step: keeps the working set in cache
_STD_WIDTHS = (8, 16, 32, 64)


@dataclass(frozen=True)
class Layout:
    """How events are laid out in DATA.

    ``kind`` is one of ``"float"`` (F/D, uniform), ``"int"`` (I, whole-byte widths, uniform or mixed),
    ``"packed"`` (I, bit-packed stream of non-byte widths), ``"ascii"`` (A, fixed width) or
    ``"ascii-delimited"`` (A with ``$PnB *``). ``widths`` are storage widths in bits per channel
    (for ``"int"`` with non-byte ``$PnB``, the padded width), ``masks`` the ``$PnR`` bit masks
    (0 = none), ``order`` ``"<"`` or ``">"``.
    """

    kind: str
    order: str
    widths: tuple[int, ...]
    masks: tuple[int, ...] = ()

    @property
    def record_bytes(self) -> int | None:
        """Bytes per event, or ``None`` for bit-packed / delimited data (no whole-byte record)."""
        if self.kind in ("packed", "ascii-delimited"):
            return None
        return sum(w // 8 for w in self.widths)

    def data_bytes(self, n_events: int) -> int | None:
        """Bytes that ``n_events`` events occupy, or ``None`` when it cannot be known in advance."""
        if self.kind == "packed":
            return -(-n_events * sum(self.widths) // 8)
        rb = self.record_bytes
        return None if rb is None else n_events * rb

    def describe(self) -> str:
        w = sorted(set(self.widths))
        return f"{self.kind}, {'little' if self.order == '<' else 'big'}-endian, widths {w} bits"


def decode(fh, path: object, start: int, length: int, n_events: int, layout: Layout, *, order: str = "C",
           hasher=None, threads: int = 1) -> np.ndarray:
    """Decode ``n_events`` events from ``length`` bytes at absolute ``start`` of open file ``fh``.

    Returns a float32 array (n_events, n_channels), C-contiguous (``order="C"``, the file's row layout) or
    Fortran-contiguous (``order="F"``: each channel's values contiguous, filled chunk by chunk, no second copy).
    ``hasher`` (a ``hashlib`` object) is fed the ``length`` DATA bytes as they are read. ``threads`` > 1 reads
    native float32 DATA without a ``hasher`` in that many contiguous row ranges at once (positioned reads of
    the same file, each through its own chunk buffer): the copy out of the page cache and the row-to-column
    scatter are memory-bound single-threaded, and run about twice as fast on two cores.
    """
    if order not in ("C", "F"):
        raise ValueError(f"decode: order must be 'C' or 'F', found {order!r}")
    n_par = len(layout.widths)
    out = np.empty((n_events, n_par), dtype=np.float32, order=order)
    if layout.kind == "float" and layout.widths[0] == 32 and n_events and n_par:
        swap = layout.order != _native()
        # positioned reads (os.preadv) are POSIX-only: elsewhere one thread reads, as with a hasher
        parallel = hasher is None and hasattr(os, "preadv")
        parts = _row_parts(n_events, threads) if parallel else [(0, n_events)]
        if len(parts) > 1:
            _read_parallel(fh, path, start, out, swap, parts)
        elif order == "C":
            _read_into(fh, path, start, out, swap=swap, hasher=hasher)
        else:
            _read_into_columns(fh, path, start, out, swap=swap, hasher=hasher)
        if hasher is not None and length > out.nbytes:  # DATA bytes past the last event
            fh.seek(start + out.nbytes)
            hasher.update(fh.read(length - out.nbytes))
        return out
    if (n_events == 0 or n_par == 0) and hasher is None:
        return out
    mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if length else None
    try:
        raw = np.frombuffer(mm, dtype=np.uint8, count=length, offset=start) if mm is not None \
            else np.zeros(0, np.uint8)
        if hasher is not None:
            hasher.update(raw)
        if n_events == 0 or n_par == 0:
            pass
        elif layout.kind == "float":
            with np.errstate(over="ignore"):  # float64 beyond float32 range → ±inf, reported by the caller
                _decode_uniform(raw, out, np.dtype(layout.order + "f8"), None)
        elif layout.kind == "int":
            _decode_int(raw, out, layout)
        elif layout.kind == "packed":
            _decode_packed(raw, out, layout)
        elif layout.kind == "ascii":
            _decode_ascii_fixed(raw, out, layout, path)
        else:
            _decode_ascii_delimited(raw, out, path)
        del raw
    finally:
        try:
            if mm is not None:
                mm.close()
        except BufferError:  # a view is still held by an exception's traceback; garbage collection closes it
            pass
    return out


def _native() -> str:
    return "<" if np.little_endian else ">"


_READ_CHUNK = 1 << 16  # bytes; swapping each chunk while it is still in L2 cache is nearly free
_HASH_CHUNK = 1 << 20  # bytes read, then hashed, at a time when hashing while reading


def _read_into(fh, path: object, start: int, out: np.ndarray, swap: bool, hasher=None) -> None:
    """Read DATA straight into ``out`` (one copy, like ``np.fromfile``), byte-swapping chunk by chunk."""
    fh.seek(start)
    words = out.reshape(-1).view(np.uint32)
    view = memoryview(words).cast("B")
    got = 0
    step = _READ_CHUNK if swap or hasher is not None else len(view)
    if hasher is not None and not swap:
        step = _HASH_CHUNK  # hash each chunk while it is in cache
    while got < len(view):
        n = fh.readinto(view[got : got + step])
        if not n:
            raise FcsError(path, f"DATA truncated: expected {len(view)} bytes from byte {start}, file ended after {got}")
        if swap:
            if n % 4:  # rare short read mid-word: finish the word before swapping
                rest = 4 - n % 4
                more = fh.readinto(view[got + n : got + n + rest])
                if more != rest:
                    raise FcsError(path, f"DATA truncated at byte {start + got + n + (more or 0)}")
                n += rest
        if hasher is not None:
            hasher.update(view[got : got + n])
        if swap:
            words[got // 4 : (got + n) // 4].byteswap(inplace=True)
        got += n


#: rows per chunk of a column-major read: the row-major chunk stays in L2 cache while it is scattered
_COLUMN_CHUNK_ROWS = 1 << 13
#: chunk buffers in flight when hashing while reading (hashed on a helper thread)
_HASH_BUFFERS = 4


def _read_into_columns(fh, path: object, start: int, out: np.ndarray, swap: bool, hasher=None) -> None:
    """Read row-major float32 DATA into the Fortran-ordered ``out`` through small row-major chunk buffers.

    With a ``hasher``, each chunk's bytes are hashed on a helper thread (``hashlib`` releases the GIL) while
    the next chunks are read and scattered, in file order; a chunk buffer is reused only once it is hashed.
    """
    n, p = out.shape
    rows_per = min(_COLUMN_CHUNK_ROWS, n)
    n_bufs = 1 if hasher is None else _HASH_BUFFERS
    bufs = [np.empty((rows_per, p), dtype=np.float32) for _ in range(n_bufs)]
    views = [memoryview(b.reshape(-1).view(np.uint32)).cast("B") for b in bufs]
    pending: list = [None] * n_bufs
    pool = ThreadPoolExecutor(max_workers=1) if hasher is not None else None
    try:
        fh.seek(start)
        for c, s in enumerate(range(0, n, rows_per)):
            slot = c % n_bufs
            if pending[slot] is not None:
                pending[slot].result()  # its previous chunk is hashed: the buffer can be refilled
            buf, view = bufs[slot], views[slot]
            rows = min(rows_per, n - s)
            want = rows * p * 4
            got = 0
            while got < want:
                k = fh.readinto(view[got:want])
                if not k:
                    raise FcsError(path, f"DATA truncated: expected {n * p * 4} bytes from byte {start}, file "
                                         f"ended after {s * p * 4 + got}")
                got += k
            if pool is not None:
                pending[slot] = pool.submit(hasher.update, view[:want])
            chunk = buf[:rows]
            if swap:
                chunk = chunk.byteswap()  # a copy: the buffer's file bytes may still be being hashed
            out[s : s + rows] = chunk
        for f in pending:
            if f is not None:
                f.result()
    finally:
        if pool is not None:
            pool.shutdown(wait=True)


#: fewest rows a thread of a parallel read gets (below, starting threads costs more than it saves)
_MIN_ROWS_PER_THREAD = 1 << 16


def _row_parts(n: int, threads: int) -> list[tuple[int, int]]:
    """Contiguous row ranges ``[a, b)`` for a read on up to ``threads`` threads, each ≥ _MIN_ROWS_PER_THREAD."""
    k = max(1, min(int(threads), n // _MIN_ROWS_PER_THREAD))
    cuts = [n * i // k for i in range(k + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


def _read_parallel(fh, path: object, start: int, out: np.ndarray, swap: bool, parts: list[tuple[int, int]]) -> None:
    """Fill ``out`` (either order) from row-major float32 DATA, one thread per row range of ``parts``."""
    fd = fh.fileno()
    with ThreadPoolExecutor(max_workers=len(parts)) as pool:
        futures = [pool.submit(_read_rows, fd, path, start, out, a, b, swap) for a, b in parts]
        for f in futures:
            f.result()  # re-raises a part's FcsError


def _pread_exact(fd: int, view: memoryview, offset: int, path: object, start: int, total: int) -> None:
    got = 0
    while got < len(view):
        k = os.preadv(fd, [view[got:]], offset + got)
        if not k:
            raise FcsError(path, f"DATA truncated: expected {total} bytes from byte {start}, file ended at byte "
                                 f"{offset + got}")
        got += k


def _read_rows(fd: int, path: object, start: int, out: np.ndarray, a: int, b: int, swap: bool) -> None:
    """Rows ``[a, b)`` of row-major float32 DATA at ``start`` into ``out`` (positioned reads: no shared file
    position), through a chunk buffer of _COLUMN_CHUNK_ROWS rows for a column-major ``out``, straight into
    ``out``'s bytes for a row-major one; byte-swapped chunk by chunk when ``swap``."""
    p = out.shape[1]
    total = out.shape[0] * p * 4
    if out.flags.c_contiguous:
        words = out[a:b].reshape(-1).view(np.uint32)
        view = memoryview(words).cast("B")
        step = _READ_CHUNK if swap else len(view)
        for lo in range(0, len(view), step):
            hi = min(len(view), lo + step)
            _pread_exact(fd, view[lo:hi], start + a * p * 4 + lo, path, start, total)
            if swap:
                words[lo // 4 : hi // 4].byteswap(inplace=True)
        return
    rows_per = min(_COLUMN_CHUNK_ROWS, b - a)
    buf = np.empty((rows_per, p), dtype=np.float32)
    view = memoryview(buf.reshape(-1).view(np.uint32)).cast("B")
    for s in range(a, b, rows_per):
        rows = min(rows_per, b - s)
        _pread_exact(fd, view[: rows * p * 4], start + s * p * 4, path, start, total)
        chunk = buf[:rows]
        if swap:
            chunk.byteswap(inplace=True)
        out[s : s + rows] = chunk


def _decode_uniform(raw: np.ndarray, out: np.ndarray, dtype: np.dtype, masks: np.ndarray | None) -> None:
    n_events, n_par = out.shape
    values = raw[: n_events * n_par * dtype.itemsize].view(dtype).reshape(n_events, n_par)
    for s in range(0, n_events, _ROWS_PER_CHUNK):
        chunk = values[s : s + _ROWS_PER_CHUNK]
        out[s : s + _ROWS_PER_CHUNK] = chunk & masks if masks is not None else chunk


def _mask_array(layout: Layout, dtype: np.dtype | None = None) -> np.ndarray | None:
    if not any(layout.masks):
        return None
    full = [m if m else (1 << w) - 1 for m, w in zip(layout.masks, layout.widths)]
    return np.array(full, dtype=dtype or np.uint64)


def _decode_int(raw: np.ndarray, out: np.ndarray, layout: Layout) -> None:
    widths = layout.widths
    if len(set(widths)) == 1 and widths[0] in _STD_WIDTHS:
        dtype = np.dtype(f"{layout.order}u{widths[0] // 8}")
        _decode_uniform(raw, out, dtype, _mask_array(layout, dtype.newbyteorder("=")))
        return
    fields = []
    for j, w in enumerate(widths):
        fields.append((f"p{j}", f"{layout.order}u{w // 8}" if w in _STD_WIDTHS else ("u1", (w // 8,))))
    record = np.dtype(fields)
    n_events = out.shape[0]
    records = raw[: n_events * record.itemsize].view(record)
    for s in range(0, n_events, _ROWS_PER_CHUNK):
        chunk = records[s : s + _ROWS_PER_CHUNK]
        for j, w in enumerate(widths):
            col = chunk[f"p{j}"]
            if w not in _STD_WIDTHS:
                col = _assemble_bytes(col, layout.order)
            if layout.masks and layout.masks[j]:
                col = col & np.asarray(layout.masks[j], dtype=col.dtype)
            out[s : s + _ROWS_PER_CHUNK, j] = col


def _assemble_bytes(cols: np.ndarray, order: str) -> np.ndarray:
    """(n, k) bytes of k-byte unsigned integers in byte order ``order`` → uint64 values."""
    k = cols.shape[1]
    value = np.zeros(cols.shape[0], dtype=np.uint64)
    for b in range(k):
        shift = 8 * b if order == "<" else 8 * (k - 1 - b)
        value |= cols[:, b].astype(np.uint64) << np.uint64(shift)
    return value


def _decode_packed(raw: np.ndarray, out: np.ndarray, layout: Layout) -> None:
    """Bit-packed integers: one continuous bit stream, events then channels in order.

    Big-endian files are read most-significant bit first (a value's high bit comes first in the
    stream); little-endian files least-significant bit first, so both are the natural packing of
    the stream into bytes in that byte order.
    """
    n_events, n_par = out.shape
    total = sum(layout.widths)
    bitorder = "big" if layout.order == ">" else "little"
    starts = np.cumsum((0,) + layout.widths[:-1])
    for s in range(0, n_events, _ROWS_PER_CHUNK):
        rows = min(_ROWS_PER_CHUNK, n_events - s)
        first_bit = s * total
        lo, hi = first_bit // 8, -(-(first_bit + rows * total) // 8)
        bits = np.unpackbits(raw[lo:hi], bitorder=bitorder)[first_bit - 8 * lo :][: rows * total]
        bits = bits.reshape(rows, total)
        for j, w in enumerate(layout.widths):
            field = bits[:, starts[j] : starts[j] + w].astype(np.uint64)
            shifts = np.arange(w, dtype=np.uint64)
            if bitorder == "big":
                shifts = shifts[::-1]
            value = (field << shifts).sum(axis=1, dtype=np.uint64)
            if layout.masks and layout.masks[j]:
                value &= np.uint64(layout.masks[j])
            out[s : s + rows, j] = value


def _decode_ascii_fixed(raw: np.ndarray, out: np.ndarray, layout: Layout, path: object) -> None:
    n_events, n_par = out.shape
    record = np.dtype([(f"p{j}", f"S{w // 8}") for j, w in enumerate(layout.widths)])
    records = raw[: n_events * record.itemsize].view(record)
    for j in range(n_par):
        col = records[f"p{j}"]
        try:
            out[:, j] = np.char.strip(col).astype(np.float64)
        except ValueError:
            raise FcsError(path, f"ASCII DATA: parameter {j + 1} holds a value that is not a number") from None


_ASCII_SPLIT = re.compile(rb"[\s,]+")


def _decode_ascii_delimited(raw: np.ndarray, out: np.ndarray, path: object) -> None:
    tokens = [t for t in _ASCII_SPLIT.split(raw.tobytes()) if t]
    n_events, n_par = out.shape
    if len(tokens) < out.size:
        raise FcsError(path, f"ASCII DATA holds {len(tokens)} values, $TOT×$PAR requires {out.size}")
    try:
        out[:] = np.array([float(t) for t in tokens[: out.size]], dtype=np.float64).reshape(n_events, n_par)
    except ValueError:
        raise FcsError(path, "ASCII DATA holds a value that is not a number") from None


def count_ascii_values(fh, start: int, length: int) -> int:
    """Number of delimited ASCII values in DATA (to infer ``$TOT`` when it is missing)."""
    fh.seek(start)
    return sum(1 for t in _ASCII_SPLIT.split(fh.read(length)) if t)
