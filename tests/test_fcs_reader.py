"""The reader on hand-built files reproducing each layout and trap real instruments produce."""

from __future__ import annotations

import numpy as np
import pytest

from fcs_bytes import basic_keywords, make_fcs, write
from mrdflow.errors import FcsError, SpilloverError
from mrdflow.fcs import list_datasets, read_fcs, read_spillover_csv

EVENTS = np.array([[1.5, -2.0, 1e6], [0.0, 3.25, 7.0]], dtype=np.float32)
F_PARAMS = [("FSC-A", 32, "262144"), ("SSC-A", 32, "262144"), ("FL1-A", 32, "262144")]


def f32_file(tmp_path, name="f.fcs", order=">", **kw):
    keywords = basic_keywords(2, F_PARAMS, "F", "4,3,2,1" if order == ">" else "1,2,3,4")
    keywords.update(kw.pop("extra", {}))
    return write(tmp_path, name, make_fcs(keywords, EVENTS.astype(order + "f4").tobytes(), **kw))


@pytest.mark.parametrize("order", ["<", ">"])
def test_float32_both_byte_orders(tmp_path, order):
    data = read_fcs(f32_file(tmp_path, order=order))
    np.testing.assert_array_equal(data.events, EVENTS)
    assert data.events.dtype == np.float32 and data.events.flags.c_contiguous
    assert data.warnings == []
    assert [c.name for c in data.channels] == ["FSC-A", "SSC-A", "FL1-A"]


@pytest.mark.parametrize("header_data", ["blank", "zero"])
def test_header_data_offsets_blank_or_zero_use_text(tmp_path, header_data):
    data = read_fcs(f32_file(tmp_path, header_data=header_data))
    np.testing.assert_array_equal(data.events, EVENTS)


def test_fcs2_without_text_offsets_uses_header(tmp_path):
    data = read_fcs(f32_file(tmp_path, version="FCS2.0", text_data="absent"))
    np.testing.assert_array_equal(data.events, EVENTS)
    assert data.version == "FCS2.0"


def test_end_offset_one_past_the_data_is_read_with_a_warning(tmp_path):
    data = read_fcs(f32_file(tmp_path, end_off_by_one=True))
    np.testing.assert_array_equal(data.events, EVENTS)
    assert any("off by one" in w for w in data.warnings)


def test_header_and_text_disagree_the_consistent_one_wins(tmp_path):
    content = bytearray(make_fcs(basic_keywords(2, F_PARAMS, "F", "4,3,2,1"), EVENTS.astype(">f4").tobytes()))
    # corrupt HEADER DATA begin by -8 bytes: then HEADER's range is 8 bytes too long, TEXT's is exact
    begin = int(content[26:34])
    content[26:34] = f"{begin - 8:>8d}".encode()
    data = read_fcs(write(tmp_path, "d.fcs", bytes(content)))
    np.testing.assert_array_equal(data.events, EVENTS)
    assert any("DATA offsets disagree: using $BEGINDATA/$ENDDATA" in w for w in data.warnings)


def test_truncated_data_is_an_fcs_error_naming_the_file(tmp_path):
    path = f32_file(tmp_path)
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(FcsError, match="truncated") as exc:
        read_fcs(path)
    assert str(path) in str(exc.value)


def test_text_only_read_gives_the_same_metadata_and_still_catches_truncation(tmp_path):
    path = f32_file(tmp_path)
    full, meta = read_fcs(path), read_fcs(path, events=False)
    assert meta.events.shape == (0, full.n_channels) and meta.events.dtype == np.float32
    assert [c.name for c in meta.channels] == [c.name for c in full.channels]
    assert dict(meta.keywords) == dict(full.keywords)
    assert (meta.data_start, meta.data_length) == (full.data_start, full.data_length)
    with pytest.raises(ValueError, match="sha256"):
        read_fcs(path, events=False, sha256=True)
    path.write_bytes(path.read_bytes()[:-5])  # DATA no longer fits the file: found without reading it
    with pytest.raises(FcsError, match="truncated") as exc:
        read_fcs(path, events=False)
    assert str(path) in str(exc.value)


def test_tot_inconsistent_with_data_length_is_an_fcs_error(tmp_path):
    keywords = basic_keywords(3, F_PARAMS, "F", "4,3,2,1")  # says 3 events, holds 2
    path = write(tmp_path, "t.fcs", make_fcs(keywords, EVENTS.astype(">f4").tobytes()))
    with pytest.raises(FcsError, match=r"\$TOT=3"):
        read_fcs(path)


def test_missing_tot_is_inferred_from_data_length(tmp_path):
    keywords = basic_keywords(2, F_PARAMS, "F", "4,3,2,1")
    del keywords["$TOT"]
    data = read_fcs(write(tmp_path, "n.fcs", make_fcs(keywords, EVENTS.astype(">f4").tobytes())))
    np.testing.assert_array_equal(data.events, EVENTS)
    assert any("$TOT missing" in w for w in data.warnings)


@pytest.mark.parametrize("delimiter", [b"/", b"|", b"\\", b"\x0c", b"#", b"*"])
def test_any_delimiter_and_doubled_delimiter_escapes(tmp_path, delimiter):
    d = delimiter.decode("latin-1")
    data = read_fcs(f32_file(tmp_path, delimiter=delimiter, extra={"$FIL": f"a{d}b{d}{d}c{d}", "TUBE NAME": "Tube 1"}))
    assert data.keywords["$fil"] == f"a{d}b{d}{d}c{d}"
    assert data.keywords["tube name"] == "Tube 1"
    np.testing.assert_array_equal(data.events, EVENTS)


def test_keywords_are_case_insensitive_and_keep_original_keys(tmp_path):
    data = read_fcs(f32_file(tmp_path, extra={"$Cyt": "FACSCanto II"}))
    assert data.keywords["$CYT"] == data.keywords["$cyt"] == "FACSCanto II"
    assert "$Cyt" in list(data.keywords) and "$CYT" in data.keywords


def test_missing_final_delimiter_and_trailing_padding(tmp_path):
    data = read_fcs(f32_file(tmp_path, final_delimiter=False, extra={"LAST": "value"}))
    assert data.keywords["LAST"] == "value"
    assert any("does not end with its delimiter" in w for w in data.warnings)
    data = read_fcs(f32_file(tmp_path, text_padding=b"   \x00", extra={"LAST": "value"}))
    assert data.keywords["LAST"] == "value"
    assert any("padding after its final delimiter" in w for w in data.warnings)


def test_empty_values_written_as_doubled_delimiters_attune_style(tmp_path):
    keywords = basic_keywords(2, F_PARAMS, "F", "4,3,2,1")
    keywords.update({"$INST": "", "$CYT": "Attune", "$COM": "", "$LOST": ""})
    data = read_fcs(f32_file(tmp_path, extra={"$INST": "", "$CYT": "Attune", "$COM": "", "$LOST": ""},
                             text_padding=b"      "))
    assert data.keywords["$INST"] == "" and data.keywords["$CYT"] == "Attune" and data.keywords["$LOST"] == ""
    np.testing.assert_array_equal(data.events, EVENTS)
    assert any("empty values (not escapes): $INST, $COM, $LOST" in w for w in data.warnings)
    assert not any("padding" in w for w in data.warnings)


def test_latin1_values_fall_back_with_a_warning(tmp_path):
    data = read_fcs(f32_file(tmp_path, extra={"$OP": "Ren\xe9".encode("latin-1"), "$SRC": "B\u00f6hm"}))
    assert data.keywords["$OP"] == "René"
    assert data.keywords["$SRC"] == "Böhm"  # valid UTF-8 stays UTF-8
    assert any("Latin-1" in w for w in data.warnings)


def test_supplemental_text_is_merged(tmp_path):
    stext = b"|$CYT|Aurora|EXTRA KEY|42|"
    keywords = basic_keywords(2, F_PARAMS, "F", "4,3,2,1")
    keywords.update({"$BEGINSTEXT": "100", "$ENDSTEXT": str(100 + len(stext) - 1)})
    content = bytearray(make_fcs(keywords, EVENTS.astype(">f4").tobytes()))
    content[100 : 100 + len(stext)] = stext
    data = read_fcs(write(tmp_path, "s.fcs", bytes(content)))
    assert data.keywords["extra key"] == "42" and data.keywords["$CYT"] == "Aurora"


def _int_file(tmp_path, values, bits, order, ranges=None, name="i.fcs"):
    n, p = values.shape
    params = [(f"P{j}", b, str(ranges[j] if ranges else 2 ** b)) for j, b in enumerate(bits)]
    byteord = {"<": "1,2,3,4", ">": "4,3,2,1"}[order]
    out = bytearray()
    for row in values:
        for v, b in zip(row, bits):
            out += int(v).to_bytes(b // 8, "little" if order == "<" else "big")
    return write(tmp_path, name, make_fcs(basic_keywords(n, params, "I", byteord), bytes(out)))


@pytest.mark.parametrize("order", ["<", ">"])
def test_mixed_integer_widths_including_24_bit(tmp_path, order):
    values = np.array([[1, 70000, 4_000_000_000, 16_000_000], [255, 65535, 5, 1]])
    data = read_fcs(_int_file(tmp_path, values, [8, 24, 32, 24], order))
    np.testing.assert_array_equal(data.events, values.astype(np.float32))


def test_integer_values_are_masked_by_pnr(tmp_path):
    values = np.array([[0xFC00 | 5, 1000], [1023, 0xFFFF]])
    data = read_fcs(_int_file(tmp_path, values, [16, 16], ">", ranges=[1024, 65536]))
    np.testing.assert_array_equal(data.events, [[5, 1000], [1023, 65535]])


@pytest.mark.parametrize("byteord,order", [("1,2", "little"), ("2,1", "big")])
def test_two_byte_orders(tmp_path, byteord, order):
    values = [[1, 513], [65535, 256]]
    data_bytes = b"".join(v.to_bytes(2, order) for row in values for v in row)
    kw = basic_keywords(2, [("A", 16, "65536"), ("B", 16, "65536")], "I", byteord)
    data = read_fcs(write(tmp_path, "b.fcs", make_fcs(kw, data_bytes, version="FCS2.0")))
    np.testing.assert_array_equal(data.events, values)


def _ten_bit_values():
    rng = np.random.default_rng(3)
    return rng.integers(0, 1024, size=(7, 3))


@pytest.mark.parametrize("order", ["<", ">"])
def test_ten_bit_data_padded_to_16_bit_words(tmp_path, order):
    values = _ten_bit_values()
    raw = values.astype(order + "u2").tobytes()
    kw = basic_keywords(7, [(f"P{j}", 10, "1024") for j in range(3)], "I", "1,2" if order == "<" else "2,1")
    data = read_fcs(write(tmp_path, "pad.fcs", make_fcs(kw, raw, version="FCS2.0")))
    np.testing.assert_array_equal(data.events, values)
    assert any("fits int" in w for w in data.warnings)


@pytest.mark.parametrize("order", ["<", ">"])
def test_ten_bit_data_bit_packed(tmp_path, order):
    values = _ten_bit_values()
    bits = []
    for v in values.ravel():
        b = [(int(v) >> k) & 1 for k in range(10)]  # LSB first
        bits += b if order == "<" else b[::-1]
    raw = np.packbits(np.array(bits, dtype=np.uint8), bitorder="little" if order == "<" else "big").tobytes()
    assert len(raw) == -(-7 * 3 * 10 // 8)
    kw = basic_keywords(7, [(f"P{j}", 10, "1024") for j in range(3)], "I", "1,2" if order == "<" else "2,1")
    data = read_fcs(write(tmp_path, "packed.fcs", make_fcs(kw, raw, version="FCS2.0")))
    np.testing.assert_array_equal(data.events, values)
    assert any("packed" in w for w in data.warnings)


def test_ascii_fixed_width_and_delimited(tmp_path):
    kw = basic_keywords(2, [("A", 5, "1024"), ("B", 3, "1024")], "A", "4,3,2,1")
    data = read_fcs(write(tmp_path, "a.fcs", make_fcs(kw, b" 12.5  7 1000 42")))
    np.testing.assert_array_equal(data.events, [[12.5, 7], [1000, 42]])
    kw = basic_keywords(2, [("A", "*", "1024"), ("B", "*", "1024")], "A", "4,3,2,1")
    data = read_fcs(write(tmp_path, "ad.fcs", make_fcs(kw, b"12.5,7\n1000 42\r\n")))
    np.testing.assert_array_equal(data.events, [[12.5, 7], [1000, 42]])


def test_float64_is_converted_once_to_float32(tmp_path):
    values = np.array([[0.1, 1e300], [-3.5, 2.0]])
    kw = basic_keywords(2, [("A", 64, "1"), ("B", 64, "1")], "D", "1,2,3,4")
    data = read_fcs(write(tmp_path, "d.fcs", make_fcs(kw, values.astype("<f8").tobytes())))
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(data.events, values.astype(np.float32))
    assert any("beyond float32 range" in w for w in data.warnings)


def test_multiple_data_sets_are_listed_and_read_by_index(tmp_path):
    first_kw = basic_keywords(2, F_PARAMS, "F", "4,3,2,1")
    second = make_fcs(basic_keywords(2, F_PARAMS, "F", "1,2,3,4"), (EVENTS * 2).astype("<f4").tobytes())
    first_kw["$NEXTDATA"] = "0" * 10  # fixed width so it can be patched after layout
    first = make_fcs(first_kw, EVENTS.astype(">f4").tobytes())
    first = first.replace(b"$NEXTDATA/" + b"0" * 10, b"$NEXTDATA/" + f"{len(first):010d}".encode())
    path = write(tmp_path, "multi.fcs", first + second)
    infos = list_datasets(path)
    assert [(i.index, i.offset, i.n_events) for i in infos] == [(0, 0, 2), (1, len(first), 2)]
    np.testing.assert_array_equal(read_fcs(path).events, EVENTS)
    np.testing.assert_array_equal(read_fcs(path, dataset=1).events, EVENTS * 2)
    with pytest.raises(FcsError, match="data set 2 requested but the file has 2"):
        read_fcs(path, dataset=2)


@pytest.mark.parametrize(
    "content,match",
    [
        (b"", "empty file"),
        (b"PK\x03\x04 this is a zip" + b" " * 60, "not an FCS file"),
        (b"FCS3.0    " + b"     abc" + b" " * 40, "expected digits"),
        (b"FCS3.0", "not an FCS file"),
    ],
)
def test_not_fcs_files(tmp_path, content, match):
    with pytest.raises(FcsError, match=match):
        read_fcs(write(tmp_path, "x.fcs", content))


def test_unsupported_mode_and_byte_order_are_named(tmp_path):
    with pytest.raises(FcsError, match=r"\$MODE is 'C'"):
        read_fcs(f32_file(tmp_path, extra={"$MODE": "C"}))
    with pytest.raises(FcsError, match=r"\$BYTEORD is '3,4,1,2'"):
        read_fcs(f32_file(tmp_path, extra={"$BYTEORD": "3,4,1,2"}))
    with pytest.raises(FcsError, match=r"\$PAR is 'x'"):
        read_fcs(f32_file(tmp_path, extra={"$PAR": "x"}))


def test_missing_file_is_an_fcs_error(tmp_path):
    with pytest.raises(FcsError, match="cannot read file"):
        read_fcs(tmp_path / "nope.fcs")


SPILL_CHANNELS = "2,FL1-A,SSC-A,1,0.1,0.05,1"


@pytest.mark.parametrize("key", ["$SPILLOVER", "$SPILL", "SPILL"])
def test_spillover_keywords(tmp_path, key):
    data = read_fcs(f32_file(tmp_path, extra={key: SPILL_CHANNELS}))
    assert data.spillover.channels == ["FL1-A", "SSC-A"] and data.spillover.source == key
    np.testing.assert_array_equal(data.spillover.matrix, [[1, 0.1], [0.05, 1]])
    inv = data.spillover.inverse()
    assert inv is data.spillover.inverse()  # cached
    np.testing.assert_allclose(inv @ data.spillover.matrix, np.eye(2), atol=1e-12)


def test_comp_without_names_covers_the_first_parameters(tmp_path):
    data = read_fcs(f32_file(tmp_path, extra={"$COMP": "2,1,0.2,0,1"}))
    assert data.spillover.channels == ["FSC-A", "SSC-A"]


@pytest.mark.parametrize(
    "value,match",
    [
        ("2,FL1-A,SSC-A,1,0.1,0.05", "requires 7"),
        ("2,FL1-A,CD99,1,0.1,0.05,1", "'CD99', which is not a \\$PnN"),
        ("2,FL1-A,SSC-A,1,1,1,1", "singular"),
        ("2,FL1-A,SSC-A,1,nan,0,1", "non-finite"),
        ("2,FL1-A,SSC-A,1,x,0,1", "expected a number"),
    ],
)
def test_bad_spillover_raises_spillover_error_or_warns(tmp_path, value, match):
    path = f32_file(tmp_path, extra={"$SPILLOVER": value})
    with pytest.raises(SpilloverError, match=match):
        read_fcs(path)
    data = read_fcs(path, spillover_errors="warn")
    assert data.spillover is None and any("spillover ignored" in w for w in data.warnings)


def test_spillover_csv_flowjo_style(tmp_path):
    csv_path = tmp_path / "comp.csv"
    csv_path.write_text('"",Comp-FL1-A,<SSC-A>\nComp-FL1-A,1,0.1\n<SSC-A>,0.05,1\n')
    sp = read_spillover_csv(csv_path, channels=["FSC-A", "SSC-A", "FL1-A"])
    assert sp.channels == ["FL1-A", "SSC-A"] and sp.source == str(csv_path)
    np.testing.assert_array_equal(sp.matrix, [[1, 0.1], [0.05, 1]])
    csv_path.write_text("FL1-A\tSSC-A\n1\t0.1\n0.05\t1\n")
    assert read_spillover_csv(csv_path).matrix[1, 0] == 0.05
    csv_path.write_text("FL1-A,SSC-A\n1,0.1\n")
    with pytest.raises(SpilloverError, match="1 matrix rows"):
        read_spillover_csv(csv_path)


def test_channel_lookup_by_name_then_marker(tmp_path):
    data = read_fcs(f32_file(tmp_path, extra={"$P3S": "CD38", "$P2S": "FL1-A"}))
    assert data.channel_index("FL1-A") == 2  # exact $PnN beats a $PnS of the same text
    assert data.channel_index("cd38") == 2
    assert data.channel_index("ssc-a") == 1
    with pytest.raises(KeyError, match="available: FSC-A"):
        data.channel_index("CD19")


def test_linearize_log_channel_and_gain(tmp_path):
    extra = {"$P1E": "4,0", "$P1R": "1024", "$P2G": "2", "$P3G": "0"}
    data = read_fcs(f32_file(tmp_path, extra=extra), linearize=True)
    raw = EVENTS.astype(np.float64)
    np.testing.assert_array_equal(data.events[:, 0], (10 ** (4 * raw[:, 0] / 1024)).astype(np.float32))
    np.testing.assert_array_equal(data.events[:, 1], (raw[:, 1] / 2).astype(np.float32))
    np.testing.assert_array_equal(data.events[:, 2], EVENTS[:, 2])  # $PnG 0 means no gain


@pytest.mark.parametrize("chunk", [6, 8, 1 << 16])
def test_big_endian_float_swap_across_read_chunks(tmp_path, monkeypatch, chunk):
    """Big-endian float32 is swapped chunk by chunk while read; chunk edges inside a word are handled."""
    from mrdflow.fcs import data as data_module

    monkeypatch.setattr(data_module, "_READ_CHUNK", chunk)
    np.testing.assert_array_equal(read_fcs(f32_file(tmp_path, order=">")).events, EVENTS)
