"""HEADER and TEXT segments of an FCS file → offsets and keywords.

Field traps handled here (each leaves a warning when it changes how a file is read):

* HEADER offsets may be blank, space-padded, or ``0`` (segments beyond byte 99,999,999 live only in
  ``$BEGINDATA``/``$ENDDATA``); the reader reconciles them with TEXT.
* TEXT may use any delimiter byte; a doubled delimiter inside a key or value is a literal delimiter.
* Writers leave trailing padding after the final delimiter, or omit the final delimiter altogether.
* Values are UTF-8 (FCS 3.1) but older instruments write Latin-1; such values fall back to Latin-1.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from mrdflow.errors import FcsError

HEADER_SIZE = 58
KNOWN_VERSIONS = ("FCS1.0", "FCS2.0", "FCS3.0", "FCS3.1", "FCS3.2")


class Keywords(Mapping[str, str]):
    """FCS keywords, looked up case-insensitively, keeping each key as written (with its ``$``).

    ``kw["$tot"]``, ``kw["$TOT"]`` and ``kw["$Tot"]`` find the same value; iteration yields the
    original keys in file order. The first occurrence of a key wins (later duplicates are reported
    by :func:`parse_text`).
    """

    def __init__(self, items: Mapping[str, str] | None = None):
        self._data: dict[str, str] = {}
        self._fold: dict[str, str] = {}
        for k, v in (items or {}).items():
            self._set(k, v)

    def _set(self, key: str, value: str) -> bool:
        folded = key.upper()
        if folded in self._fold:
            return False
        self._fold[folded] = key
        self._data[key] = value
        return True

    def __getitem__(self, key: str) -> str:
        return self._data[self._fold[key.upper()]]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.upper() in self._fold

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def original_key(self, key: str) -> str:
        """The key as written in the file for a case-insensitive ``key``."""
        return self._fold[key.upper()]

    def to_dict(self) -> dict[str, str]:
        """A plain ``dict`` copy with the original keys."""
        return dict(self._data)

    def __repr__(self) -> str:
        return f"Keywords({len(self)} keywords)"


@dataclass(frozen=True)
class Header:
    """The 58-byte HEADER of one data set; offsets relative to the data set's first byte, ``None`` when blank."""

    version: str
    text_start: int | None
    text_end: int | None
    data_start: int | None
    data_end: int | None
    analysis_start: int | None
    analysis_end: int | None


def parse_header(raw: bytes, path: object, where: int = 0) -> Header:
    """Parse a HEADER segment (``raw`` = the bytes starting at the data set, at least 58 long).

    Raises :class:`FcsError` when it is not an FCS header or an offset field is not a number.
    """
    if len(raw) == 0:
        raise FcsError(path, "empty file (0 bytes)" if where == 0 else f"no data set at byte {where} (end of file)")
    if len(raw) < HEADER_SIZE:
        raise FcsError(path, f"not an FCS file: {len(raw)} bytes at byte {where}, a HEADER needs {HEADER_SIZE}")
    magic = raw[:6]
    if not (magic[:3] == b"FCS" and magic[3:4].isdigit() and magic[4:5] == b"." and magic[5:6].isdigit()):
        raise FcsError(path, f"not an FCS file: HEADER at byte {where} starts with {bytes(magic)!r}, expected e.g. b'FCS3.1'")
    version = magic.decode("ascii")
    offsets: list[int | None] = []
    names = ("TEXT begin", "TEXT end", "DATA begin", "DATA end", "ANALYSIS begin", "ANALYSIS end")
    for i, name in enumerate(names):
        field_bytes = bytes(raw[10 + 8 * i : 18 + 8 * i])
        text = field_bytes.strip(b" \x00")
        if not text:
            offsets.append(None)
            continue
        if not text.isdigit():
            raise FcsError(path, f"HEADER {name} offset (bytes {10 + 8 * i}-{17 + 8 * i}) is {field_bytes!r}, expected digits")
        offsets.append(int(text))
    if offsets[0] is None or offsets[1] is None:
        raise FcsError(path, "HEADER has no TEXT segment offsets (bytes 10-25 are blank)")
    return Header(version, *offsets)  # type: ignore[arg-type]


def parse_text(raw: bytes, path: object, warnings: list[str], what: str = "TEXT") -> Keywords:
    """Split a TEXT (or supplemental TEXT) segment into :class:`Keywords`.

    ``raw`` starts with the delimiter byte. Doubled delimiters are literal; trailing padding after the
    final delimiter and a missing final delimiter are accepted (with a warning). Keys are stripped of
    surrounding blanks; values are kept verbatim.
    """
    if len(raw) < 2:
        raise FcsError(path, f"{what} segment is {len(raw)} byte(s) long; it holds no keywords")
    delim = raw[0:1]
    if delim in (b" ", b"\x00") or delim.isalnum():
        # some writers pad before the delimiter; FCS requires the first byte to be the delimiter
        stripped = raw.lstrip(b" \x00")
        if not stripped or stripped[0:1].isalnum():
            raise FcsError(path, f"{what} segment starts with {delim!r}, which cannot be a keyword delimiter")
        warnings.append(f"{what} segment has {len(raw) - len(stripped)} padding byte(s) before its delimiter")
        raw, delim = stripped, stripped[0:1]
    tokens = _split_escaped(bytes(raw), delim)
    if tokens and tokens[-1][1] is False:
        last = tokens[-1][0]
        if last.strip(b" \x00\r\n\t") == b"":
            tokens.pop()  # padding after the final delimiter
            if last:
                warnings.append(f"{what} segment has {len(last)} byte(s) of padding after its final delimiter")
        else:
            warnings.append(f"{what} segment does not end with its delimiter {delim!r}; last value read to the segment end")
    if len(tokens) % 2:
        warnings.append(
            f"{what} segment has an odd number of fields ({len(tokens)}); the last field "
            f"{_decode(tokens[-1][0], [])!r} has no value and was dropped"
        )
        tokens.pop()
    keywords = Keywords()
    latin1: list[str] = []
    duplicates = []
    for i in range(0, len(tokens), 2):
        key = _decode(tokens[i][0], latin1).strip()
        value = _decode(tokens[i + 1][0], latin1)
        if not key:
            warnings.append(f"{what} segment has an empty keyword (field {i + 1}) with value {value!r}; ignored")
            continue
        if not keywords._set(key, value):
            duplicates.append(key)
    if latin1:
        warnings.append(f"{what} values not valid UTF-8 were read as Latin-1: {', '.join(sorted(set(latin1))[:5])}")
    if duplicates:
        warnings.append(f"{what} repeats keyword(s) {sorted(set(duplicates))[:5]}; the first occurrence is used")
    return keywords


def _split_escaped(raw: bytes, delim: bytes) -> list[tuple[bytes, bool]]:
    """Split after the leading delimiter on single delimiters; ``(token, terminated)`` pairs."""
    n = len(raw)
    tokens: list[tuple[bytes, bool]] = []
    pos = 1
    parts: list[bytes] = []
    while pos <= n:
        j = raw.find(delim, pos)
        if j < 0:
            parts.append(raw[pos:])
            tokens.append((b"".join(parts), False))
            break
        if j + 1 < n and raw[j + 1 : j + 2] == delim:
            parts.append(raw[pos:j] + delim)  # escaped delimiter
            pos = j + 2
            continue
        parts.append(raw[pos:j])
        tokens.append((b"".join(parts), True))
        parts = []
        pos = j + 1
    return tokens


def _decode(value: bytes, latin1: list[str]) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        text = value.decode("latin-1")
        latin1.append(text[:20])
        return text


def build_text(items: list[tuple[str, str]], delimiter: str = "/") -> bytes:
    """Serialise keywords to a TEXT segment (UTF-8), doubling the delimiter inside keys and values.

    Raises :class:`ValueError` for an empty key or value, or one that starts with the delimiter (FCS 3.1
    forbids both: they would read as an escaped delimiter), or a delimiter that is not a single ASCII byte.
    """
    if len(delimiter) != 1 or not (0 < ord(delimiter) < 127) or delimiter.isalnum() or delimiter == " ":
        raise ValueError(f"TEXT delimiter must be one printable non-alphanumeric ASCII character, got {delimiter!r}")
    d = delimiter.encode("ascii")
    out = [d]
    for key, value in items:
        if not key or value == "":
            raise ValueError(f"FCS keywords and values may not be empty (keyword {key!r})")
        if key.startswith(delimiter) or value.startswith(delimiter):
            raise ValueError(f"keyword {key!r}: a key or value may not start with the delimiter {delimiter!r}")
        for part in (key, value):
            enc = part.encode("utf-8").replace(d, d + d)
            out.append(enc)
            out.append(d)
    return b"".join(out)
