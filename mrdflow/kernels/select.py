"""Row selection within a bool mask without materialising the mask's full index set."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


_BYTE_SUM = np.uint64(0x0101010101010101)  # word * this: the sum of its 8 bytes in the top byte
_BYTE_PACK = np.uint64(0x0102040810204080)  # word * this: its 8 (0/1) bytes as 8 bits in the top byte


def _select_table() -> np.ndarray:
    """``table[packed, r]``: offset in a word of its r-th set flag, ``packed`` being the word's flags packed by
    :data:`_BYTE_PACK` (built from real bytes, so right for the machine's byte order)."""
    table = np.zeros((256, 8), dtype=np.int64)
    for pattern in range(256):
        flags = np.array([(pattern >> i) & 1 for i in range(8)], dtype=np.uint8)
        word = np.frombuffer(flags.tobytes(), dtype=np.uint64)[0]
        with np.errstate(over="ignore"):
            packed = int((word * _BYTE_PACK) >> np.uint64(56))
        for r, offset in enumerate(np.flatnonzero(flags)):
            table[packed, r] = offset
    return table


_SELECT = _select_table()


#: mask words (8 flags each) per parallel work item of :func:`_rows_at_ranks`
_RANK_CHUNK = 1 << 13


@njit(cache=True, parallel=True)
def _rows_at_ranks(mask, words, ranks, table, out):
    # mask as uint8 (0/1) and the same memory as uint64 words (8 flags each, n // 8 of them). Two parallel passes
    # over chunks of words: each chunk's set flags (one multiplication per word), then, from their running sum,
    # each chunk maps the ranks that fall in it: a word holding wanted ranks gives their offsets from the select
    # table. The last n % 8 flags are scanned serially. Returns how many ranks were found.
    n = mask.shape[0]
    k = ranks.shape[0]
    n_words = words.shape[0]
    nc = (n_words + _RANK_CHUNK - 1) // _RANK_CHUNK
    counts = np.zeros(nc, dtype=np.int64)
    for ci in prange(nc):
        s = 0
        for w in range(ci * _RANK_CHUNK, min(n_words, (ci + 1) * _RANK_CHUNK)):
            s += np.int64((words[w] * _BYTE_SUM) >> np.uint64(56))
        counts[ci] = s
    before = np.zeros(nc + 1, dtype=np.int64)  # set flags before each chunk (and in all words)
    for ci in range(nc):
        before[ci + 1] = before[ci] + counts[ci]
    first = np.searchsorted(ranks, before)  # the ranks of chunk ci are ranks[first[ci]:first[ci + 1]]
    for ci in prange(nc):
        t = first[ci]
        t_end = first[ci + 1]
        c = before[ci]  # set flags before the current word
        w = ci * _RANK_CHUNK
        while t < t_end:
            word = words[w]
            cnt = np.int64((word * _BYTE_SUM) >> np.uint64(56))
            if ranks[t] < c + cnt:
                packed = np.int64((word * _BYTE_PACK) >> np.uint64(56))
                while t < t_end and ranks[t] < c + cnt:
                    out[t] = w * 8 + table[packed, ranks[t] - c]
                    t += 1
            c += cnt
            w += 1
    t = first[nc]
    c = before[nc]
    for i in range(n_words * 8, n):  # the last n % 8 flags
        if mask[i]:
            while t < k and ranks[t] == c:
                out[t] = i
                t += 1
            c += 1
    return t


def rows_at_ranks(mask: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """``np.flatnonzero(mask)[ranks]`` for sorted ``ranks``, in one pass and without the full index array.

    Parameters
    ----------
    mask : (n,) bool array.
    ranks : (k,) int64, non-decreasing, each in ``[0, count_nonzero(mask))``.

    Returns
    -------
    (k,) int64 row indices (0-based) of the ``ranks``-th True entries of ``mask``.

    Raises
    ------
    ValueError
        Wrong dtype/shape, unsorted ranks, or a rank beyond the number of True entries.
    """
    mask = np.ascontiguousarray(mask)
    ranks = np.ascontiguousarray(ranks, dtype=np.int64)
    if mask.dtype != np.bool_ or mask.ndim != 1 or ranks.ndim != 1:
        raise ValueError(f"rows_at_ranks: need a 1-D bool mask and 1-D ranks, found {mask.dtype} {mask.shape} "
                         f"and {ranks.shape}")
    if ranks.size and (ranks[0] < 0 or np.any(np.diff(ranks) < 0)):
        raise ValueError("rows_at_ranks: ranks must be non-negative and sorted")
    out = np.empty(ranks.size, dtype=np.int64)
    flags = mask.view(np.uint8)
    n_words = flags.size // 8
    words = np.frombuffer(flags[: n_words * 8], dtype=np.uint64) if n_words else np.zeros(0, np.uint64)
    found = _rows_at_ranks(flags, words, ranks, _SELECT, out)
    if found != ranks.size:
        raise ValueError(f"rows_at_ranks: rank {int(ranks[found])} is beyond the {int(np.count_nonzero(mask))} "
                         "True entries of the mask")
    return out


_U32 = np.uint64(0xFFFFFFFF)


@njit(cache=True)
def _slot(kv, key, mask):
    # kv holds (key, value) pairs side by side: a probe reads one cache line
    h = (np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(20)
    s = np.int64(h & mask)
    while kv[2 * s] != -1 and kv[2 * s] != key:
        s = np.int64((np.uint64(s) + np.uint64(1)) & mask)
    return s


@njit(cache=True)
def _tail_shuffle_sample(n, size, raw, out):
    """The values numpy's ``Generator.choice(n, size, replace=False)`` keeps (before its final shuffle).

    numpy (≥ 1.17, tail-shuffle branch) shuffles the last ``size`` positions of ``arange(n)``:
    for ``i = n-1 … n-size`` it swaps position ``i`` with ``j = bounded(0..i)``, ``j`` drawn by Lemire's method
    from the generator's 32-bit stream (the low then the high half of each raw 64-bit output). Here the
    swaps are replayed on a sparse map of the touched positions only. Returns the number of 32-bit halves used,
    or -1 when ``raw`` ran out.
    """
    # current values of the swapped positions: the tail [first, n) (every i, and the j that land there) in a
    # dense array read in order, the rest in an open-addressing hash map (at most one new key per draw)
    cap = 1
    while cap < 2 * size:
        cap *= 2
    mask = np.uint64(cap - 1)
    kv = np.full(2 * cap, -1, dtype=np.int64)
    w = 0  # next raw word
    half = 0  # 0: take the low half of raw[w] next, 1: the high half
    first = max(n - size, 1)
    tail = np.full(n - first, -1, dtype=np.int64)  # value at position first + t, -1 = untouched (its own index)
    k = 0
    for i in range(n - 1, first - 1, -1):
        rng = np.uint64(i)
        rng_excl = rng + np.uint64(1)
        # Lemire's bounded draw from 32-bit halves: redraw while leftover < threshold = (2^32 - 1 - i) % (i + 1);
        # threshold < i + 1, so a leftover >= i + 1 is accepted without computing it (numpy's order of work)
        while True:
            if w >= raw.shape[0]:
                return -1
            if half == 0:
                u = raw[w] & _U32
                half = 1
            else:
                u = raw[w] >> np.uint64(32)
                half = 0
                w += 1
            m = u * rng_excl
            leftover = m & _U32
            if leftover >= rng_excl or leftover >= (_U32 - rng) % rng_excl:
                break
        j = np.int64(m >> np.uint64(32))
        ti = tail[i - first]
        vi = ti if ti >= 0 else np.int64(i)
        if j >= first:
            tj = tail[j - first]
            vj = tj if tj >= 0 else j
            tail[j - first] = vi
        else:
            sj = _slot(kv, j, mask)
            vj = kv[2 * sj + 1] if kv[2 * sj] == j else j
            kv[2 * sj] = j
            kv[2 * sj + 1] = vi
        out[k] = vj
        k += 1
    return 2 * w + half


def sorted_choice_from(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``np.sort(rng.choice(n, size, replace=False))`` bit for bit, leaving ``rng`` in the state numpy's call
    leaves it in, without numpy's ``arange(n)`` in its tail-shuffle branch.

    The replay reads the generator's 32-bit stream: a half word numpy holds buffered (``has_uint32``) first, then
    the low and high halves of the raw 64-bit outputs; afterwards the generator is advanced by the raw words
    used and a half left over is buffered, as numpy's own draws do. Only for a PCG64 generator on a little-endian
    machine; anything else is numpy's call itself. ``tests/test_perf_equivalence.py`` checks values and state.
    """
    bitgen = rng.bit_generator
    if (size == n or not (0 < size < n) or n <= 10_000 or size <= n // 50 or n > 0xFFFFFFFF
            or not isinstance(bitgen, np.random.PCG64) or not np.little_endian):
        return np.sort(rng.choice(n, size=size, replace=False))
    state0 = bitgen.state
    buffered = [np.uint32(state0["uinteger"])] if state0["has_uint32"] else []
    n_raw = size // 2 + 64
    while True:
        bitgen.state = state0
        halves = np.concatenate([np.array(buffered, dtype=np.uint32),
                                 bitgen.random_raw(n_raw).view(np.uint32), np.zeros(1, np.uint32)])
        stream = halves[: halves.size - halves.size % 2].view(np.uint64)  # 32-bit values, two per word, low first
        out = np.empty(size, dtype=np.int64)
        used = _tail_shuffle_sample(np.int64(n), np.int64(size), stream, out)
        if 0 <= used <= 2 * n_raw + len(buffered):  # within the real draws (not the padding)
            break
        n_raw *= 2
    from_raw = used - len(buffered)  # 32-bit values taken from raw words (>= 0: a draw uses >= 1 value)
    bitgen.state = state0
    words = (from_raw + 1) // 2
    state = bitgen.state
    # numpy's next_uint32 splits a raw word: low half returned, high half kept in ``uinteger`` (buffered until
    # used; the field keeps its last value after). Odd count from the raw words: the last high half is buffered.
    state["has_uint32"] = from_raw % 2
    state["uinteger"] = int(bitgen.random_raw(words)[-1] >> np.uint64(32)) if words else state0["uinteger"]
    if words:
        state["state"] = bitgen.state["state"]
    bitgen.state = state
    out.sort()
    return out


@njit(cache=True)
def _paint_packed(packed, ids, order, labels):
    n = labels.shape[0]
    for q in range(order.shape[0]):
        v = ids[q]
        row = packed[order[q]]
        for g in range(row.shape[0]):
            byte = row[g]
            if byte == 0:
                continue
            base = g * 8
            if base + 8 <= n:
                for b in range(8):  # branch-free; np.packbits order: the first flag is the high bit
                    cur = labels[base + b]
                    labels[base + b] = v if (byte >> (7 - b)) & 1 else cur
            else:
                for b in range(n - base):
                    if (byte >> (7 - b)) & 1:
                        labels[base + b] = v


def paint_packed(packed: np.ndarray, ids: np.ndarray, labels: np.ndarray, order: np.ndarray | None = None) -> None:
    """``labels[np.unpackbits(packed[order[q]], count=n).view(bool)] = ids[q]`` for q = 0, 1, ... in turn (a later
    population overwrites an earlier one), straight from the bit-packed masks.

    Parameters
    ----------
    packed : (P, ceil(n / 8)) uint8, each row ``np.packbits`` of a bool mask of length n (big bit order).
    ids : (Q,) label value painted from each row taken, of ``labels``' dtype.
    labels : (n,) uint8/uint16, painted in place.
    order : (Q,) rows of ``packed`` to paint from, in painting order (default: every row in order).
    """
    packed = np.ascontiguousarray(packed, dtype=np.uint8)
    n = labels.shape[0]
    order = np.arange(packed.shape[0] if packed.ndim == 2 else 0) if order is None \
        else np.ascontiguousarray(order, dtype=np.int64)
    ids = np.ascontiguousarray(ids, dtype=labels.dtype)
    if packed.ndim != 2 or packed.shape[1] != (n + 7) // 8 or ids.shape != order.shape or labels.ndim != 1:
        raise ValueError(f"paint_packed: need (P, {(n + 7) // 8}) packed rows and one id per row painted for {n} "
                         f"labels, found {packed.shape}, {ids.shape} ids and {order.shape} rows")
    if order.size and (order.min() < 0 or order.max() >= packed.shape[0]):
        raise ValueError(f"paint_packed: a row to paint is outside the {packed.shape[0]} packed rows")
    if order.size:
        _paint_packed(packed, ids, order, labels)


@njit(cache=True)
def _gather_block(events, rows, cols, out, start, stop):
    for j in range(cols.shape[0]):
        col = events[:, cols[j]]
        dst = out[start:stop, j]
        r = rows[start:stop]
        for i in range(r.shape[0]):
            dst[i] = col[r[i]]


#: rows per parallel work item of :func:`gather_rows_into`
_GATHER_BLOCK = 1 << 14


@njit(cache=True, parallel=True)
def gather_rows_into(events, rows, cols, out):
    """``out[i, j] = events[rows[i], cols[j]]`` — blocks of rows in parallel, column by column within a block
    (one column of a column-major matrix at a time). ``rows`` must lie in ``[0, n_events)`` (unchecked)."""
    n = rows.shape[0]
    n_blocks = (n + _GATHER_BLOCK - 1) // _GATHER_BLOCK
    for blk in prange(n_blocks):
        start = blk * _GATHER_BLOCK
        _gather_block(events, rows, cols, out, start, min(n, start + _GATHER_BLOCK))
