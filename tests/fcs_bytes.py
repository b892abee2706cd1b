"""Build FCS files byte by byte, including the malformed layouts real instruments write."""

from __future__ import annotations

from pathlib import Path


def make_fcs(
    keywords: dict[str, str],
    data: bytes,
    *,
    version: str = "FCS3.0",
    delimiter: bytes = b"/",
    text_start: int = 256,
    header_data: str = "ok",
    text_data: str = "ok",
    end_off_by_one: bool = False,
    final_delimiter: bool = True,
    text_padding: bytes = b"",
    raw_text: bytes | None = None,
) -> bytes:
    """One data set. ``header_data``/``text_data``: ``"ok"``, ``"blank"`` (spaces), ``"zero"`` or ``"absent"`` (TEXT only).

    ``end_off_by_one`` writes DATA end offsets one past the last byte (the Accuri habit).
    ``raw_text`` replaces the keyword TEXT entirely (for malformed TEXT tests).
    """
    def text_bytes(begin: int, end: int) -> bytes:
        if raw_text is not None:
            return raw_text
        kw = dict(keywords)
        if text_data == "ok":
            kw["$BEGINDATA"], kw["$ENDDATA"] = str(begin), str(end)
        elif text_data == "zero":
            kw["$BEGINDATA"], kw["$ENDDATA"] = "0", "0"
        out = delimiter
        for k, v in kw.items():
            out += k.encode().replace(delimiter, delimiter * 2) + delimiter
            out += v.encode("utf-8").replace(delimiter, delimiter * 2) if isinstance(v, str) else v
            out += delimiter
        if not final_delimiter:
            out = out[:-1]
        return out + text_padding

    begin = end = 0
    for _ in range(5):  # settle offset digits
        text = text_bytes(begin, end)
        new_begin = text_start + len(text)
        new_end = new_begin + len(data) - 1 + (1 if end_off_by_one else 0)
        if (new_begin, new_end) == (begin, end):
            break
        begin, end = new_begin, new_end
    text = text_bytes(begin, end)

    def field(v: int | None) -> bytes:
        return b" " * 8 if v is None else f"{v:>8d}".encode()

    if header_data == "ok":
        dfields = (begin, end)
    elif header_data == "zero":
        dfields = (0, 0)
    else:
        dfields = (None, None)
    header = version.encode() + b"    " + field(text_start) + field(text_start + len(text) - 1)
    header += field(dfields[0]) + field(dfields[1]) + field(0) + field(0)
    return header.ljust(text_start, b" ") + text + data


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def basic_keywords(n_events: int, params: list[tuple[str, int, str]], datatype: str, byteord: str) -> dict[str, str]:
    """``params``: (name, $PnB, $PnR) per channel."""
    kw = {"$MODE": "L", "$DATATYPE": datatype, "$BYTEORD": byteord, "$PAR": str(len(params)), "$TOT": str(n_events)}
    for i, (name, bits, rng) in enumerate(params, start=1):
        kw[f"$P{i}N"], kw[f"$P{i}B"], kw[f"$P{i}R"], kw[f"$P{i}E"] = name, str(bits), rng, "0,0"
    return kw
