"""Spillover matrices: ``$SPILLOVER`` / ``$SPILL`` / ``SPILL`` / ``$COMP`` keywords and external CSV files.

A :class:`Spillover` holds the matrix exactly as the instrument writes it: row *i* is the fluorochrome
detected mainly in ``channels[i]``, column *j* the fraction of its signal seen in ``channels[j]``
(diagonal 1). Compensation multiplies observed events (n_events × n) on the right by its inverse.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from mrdflow.errors import SpilloverError

#: keywords searched for a spillover matrix, in order of preference
SPILLOVER_KEYWORDS: tuple[str, ...] = ("$SPILLOVER", "$SPILL", "SPILL", "SPILLOVER", "$COMP")

#: above this condition number a matrix is treated as not invertible (values would be noise)
MAX_CONDITION = 1e12


@dataclass(eq=False)
class Spillover:
    """A validated square spillover matrix.

    Attributes
    ----------
    channels : list of str
        ``$PnN`` names in matrix order.
    matrix : ndarray, shape (n, n), float64
        Rows = spilling-from fluorochrome, as in ``$SPILLOVER`` (fractions, diagonal normally 1).
    source : str
        The keyword the matrix came from (e.g. ``"$SPILLOVER"``) or the path of the file it was read from.
    """

    channels: list[str]
    matrix: np.ndarray
    source: str
    _inverse: np.ndarray | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.matrix = np.array(self.matrix, dtype=np.float64)  # own copy: the cached inverse must stay valid
        self.matrix.setflags(write=False)
        self.channels = [str(c) for c in self.channels]
        validate_matrix(self.channels, self.matrix, self.source)

    @property
    def n(self) -> int:
        """Number of channels in the matrix."""
        return len(self.channels)

    def inverse(self) -> np.ndarray:
        """The compensation matrix (inverse of :attr:`matrix`), computed once and cached (read-only)."""
        if self._inverse is None:
            inv = np.linalg.inv(self.matrix)
            inv.setflags(write=False)
            self._inverse = inv
        return self._inverse

    def to_keyword(self) -> str:
        """The ``$SPILLOVER`` keyword value: ``n,name1,...,namen,m11,m12,...`` (row-major, round-trip exact)."""
        values = [repr(float(v)) for v in self.matrix.ravel()]
        return ",".join([str(self.n), *self.channels, *values])

    def __repr__(self) -> str:
        return f"Spillover(n={self.n}, channels={self.channels!r}, source={self.source!r})"


def validate_matrix(channels: Sequence[str], matrix: np.ndarray, source: str) -> None:
    """Raise :class:`SpilloverError` unless ``matrix`` is square, finite, matches ``channels`` and is invertible."""
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise SpilloverError(source, f"spillover matrix must be square, found shape {matrix.shape}")
    n = matrix.shape[0]
    if n == 0:
        raise SpilloverError(source, "spillover matrix is empty (0 channels)")
    if len(channels) != n:
        raise SpilloverError(source, f"spillover matrix is {n}×{n} but names {len(channels)} channels")
    if len(set(channels)) != n:
        dupes = sorted({c for c in channels if list(channels).count(c) > 1})
        raise SpilloverError(source, f"spillover names a channel more than once: {dupes}")
    if not np.all(np.isfinite(matrix)):
        bad = np.argwhere(~np.isfinite(matrix))[0]
        raise SpilloverError(
            source, f"spillover matrix has a non-finite value at row {bad[0] + 1}, column {bad[1] + 1}"
        )
    cond = np.linalg.cond(matrix)
    if not math.isfinite(cond) or cond > MAX_CONDITION:
        raise SpilloverError(
            source, f"spillover matrix is singular or nearly so (condition number {cond:.3g}); cannot compensate"
        )


def _number(token: str, source: str, what: str) -> float:
    try:
        return float(token.strip())
    except ValueError:
        raise SpilloverError(source, f"{what}: expected a number, found {token.strip()!r}") from None


def parse_spillover_value(
    value: str, keyword: str, channel_names: Sequence[str], path: object = ""
) -> Spillover:
    """Parse a ``$SPILLOVER``-style keyword value into a validated :class:`Spillover`.

    The value is ``n,name_1..name_n,m_11..m_nn``. ``$COMP`` in FCS 3.0 may omit the names
    (``n,m_11..m_nn``); then the matrix covers the first ``n`` parameters in file order.

    Parameters
    ----------
    value : str
        The raw keyword value.
    keyword : str
        The keyword it came from (recorded as :attr:`Spillover.source`).
    channel_names : sequence of str
        The file's ``$PnN`` names; every matrix channel must be one of them.
    path : path-like
        The file, for error messages.
    """
    where = f"{path}: {keyword}" if path else keyword
    tokens = [t.strip() for t in value.strip().strip(",").split(",")]
    if not tokens or not tokens[0]:
        raise SpilloverError(where, "empty spillover value")
    try:
        n = int(float(tokens[0]))
    except ValueError:
        raise SpilloverError(where, f"first field must be the channel count n, found {tokens[0]!r}") from None
    if n <= 0:
        raise SpilloverError(where, f"channel count must be positive, found {n}")
    if len(tokens) == 1 + n + n * n:
        names, values = tokens[1 : 1 + n], tokens[1 + n :]
    elif len(tokens) == 1 + n * n and keyword.upper() == "$COMP":
        if n > len(channel_names):
            raise SpilloverError(where, f"$COMP covers {n} parameters but the file has {len(channel_names)}")
        names, values = list(channel_names[:n]), tokens[1:]
    else:
        raise SpilloverError(
            where,
            f"n={n} requires {1 + n + n * n} comma-separated fields (n, {n} names, {n * n} values), "
            f"found {len(tokens)}",
        )
    matrix = np.array([_number(v, where, f"value {i + 1}") for i, v in enumerate(values)]).reshape(n, n)
    if all(name.isdigit() for name in names) and not any(name in channel_names for name in names):
        # Accuri C6 and some others name spillover channels by parameter number (1-based)
        if not all(1 <= int(name) <= len(channel_names) for name in names):
            raise SpilloverError(where, f"spillover names parameter numbers {names}; the file has {len(channel_names)} parameters")
        names = [channel_names[int(name) - 1] for name in names]
    names = [_match_channel(name, channel_names, where) for name in names]
    return Spillover(names, matrix, keyword)


def _match_channel(name: str, channel_names: Sequence[str], where: str) -> str:
    if name in channel_names:
        return name
    folded = {c.lower(): c for c in channel_names}
    if name.lower() in folded:
        return folded[name.lower()]
    hint = ""
    if f"comp-{name.lower()}" in folded:
        hint = (f"; the file has {folded[f'comp-{name.lower()}']!r} instead: its channels are already compensated "
                "(a FlowJo export) — analyse the acquisition's original file, or give the panel compensation: "
                "{source: none}")
    raise SpilloverError(where, f"spillover names channel {name!r}, which is not a $PnN of the file "
                                f"{list(channel_names)}{hint}")


def spillover_from_keywords(
    keywords: Mapping[str, str], channel_names: Sequence[str], path: object = ""
) -> Spillover | None:
    """The file's spillover matrix from the first keyword of :data:`SPILLOVER_KEYWORDS` present, or ``None``.

    ``keywords`` must support case-insensitive lookup (as :class:`mrdflow.fcs.text.Keywords` does).
    """
    for key in SPILLOVER_KEYWORDS:
        value = keywords.get(key)
        if value is not None and value.strip():
            return parse_spillover_value(value, key, channel_names, path)
    return None


def read_spillover_csv(path: str | Path, channels: Sequence[str] | None = None) -> Spillover:
    """Read a spillover matrix from a CSV/TSV file (FlowJo export or plain table).

    Accepted layouts: a header row of channel names followed by n rows of n numbers, each optionally
    prefixed by its row's channel name (FlowJo writes the names in both places; rows must then be in
    the header's order). Comma, tab or semicolon separated.
    FlowJo channel names like ``"Comp-FITC-A"`` or ``"<FITC-A>"`` are reduced to ``FITC-A``.

    Parameters
    ----------
    path : path-like
        The matrix file.
    channels : sequence of str, optional
        The ``$PnN`` names of the file it will be applied to; when given, every matrix channel must match one.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")
    except OSError as exc:
        raise SpilloverError(path, f"cannot read spillover file: {exc.strerror or exc}") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2:
        raise SpilloverError(path, "spillover file needs a header row of channel names and at least one matrix row")
    try:
        dialect = csv.Sniffer().sniff(lines[0], delimiters=",\t;")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter))
    header = [_clean_flowjo_name(h) for h in rows[0]]
    body = rows[1:]
    # header may begin with an empty corner cell when rows carry names
    if header and header[0] == "":
        header = header[1:]
    n = len(header)
    if len(body) != n:
        raise SpilloverError(path, f"header names {n} channels but the file has {len(body)} matrix rows")
    matrix = np.empty((n, n))
    for r, row in enumerate(body):
        cells = [c for c in row]
        if len(cells) == n + 1:
            row_name = _clean_flowjo_name(cells[0])
            if row_name != header[r]:
                raise SpilloverError(
                    path, f"row {r + 2} is labelled {row_name!r} but column {r + 1} is {header[r]!r}; rows must follow the header order"
                )
            cells = cells[1:]
        if len(cells) != n:
            raise SpilloverError(path, f"row {r + 2} has {len(cells)} values, expected {n}")
        for c, cell in enumerate(cells):
            matrix[r, c] = _number(cell, str(path), f"row {r + 2}, column {c + 1}")
    names = header
    if channels is not None:
        names = [_match_channel(h, channels, str(path)) for h in header]
    return Spillover(names, matrix, str(path))


def _clean_flowjo_name(name: str) -> str:
    name = name.strip().strip('"').strip()
    if name.startswith("<") and name.endswith(">"):
        name = name[1:-1].strip()
    if name.startswith("Comp-"):
        name = name[5:]
    return name
