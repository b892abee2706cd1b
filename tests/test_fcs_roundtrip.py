"""Property tests: writer → reader round trips exactly; damaged files only ever raise FcsError."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mrdflow.errors import FcsError
from mrdflow.fcs import Spillover, list_datasets, read_fcs, write_fcs
from mrdflow.fcs import writer as writer_module

DELIMITERS = "/|\\!#%&*;~^"
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def fcs_cases(draw):
    n_events = draw(st.integers(0, 40))
    n_par = draw(st.integers(1, 6))
    datatype = draw(st.sampled_from("IFD"))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    bits = None
    if datatype == "I":
        bits = draw(st.lists(st.sampled_from([8, 16, 32]), min_size=n_par, max_size=n_par))
        events = np.stack([rng.integers(0, 2**b, size=n_events, dtype=np.uint64) for b in bits], axis=1)
        events = events.reshape(n_events, n_par)
    elif datatype == "F":
        events = (rng.standard_normal((n_events, n_par)) * 10.0 ** rng.integers(-3, 6)).astype(np.float32)
    else:
        events = rng.standard_normal((n_events, n_par)) * 1e4
    delimiter = draw(st.sampled_from(DELIMITERS))
    value_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
    text_value = draw(st.text(value_chars, min_size=1, max_size=12).filter(lambda v: not v.startswith(delimiter)))
    names = [f"Ch{j}{delimiter}x" for j in range(n_par)]
    markers = draw(st.lists(st.one_of(st.none(), st.sampled_from(["CD38", "CD45 V500", "cy/κ", "CD138|x"])),
                            min_size=n_par, max_size=n_par))
    return dict(events=events, names=names, markers=markers, datatype=datatype, bits=bits,
                byteorder=draw(st.sampled_from("<>")), delimiter=delimiter,
                keywords={"COMMENT": f"a{delimiter}{delimiter}b{text_value}{delimiter}", "$SRC": text_value})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("roundtrip")


@SETTINGS
@given(case=fcs_cases())
def test_written_files_read_back_exactly(workdir, case):
    path = write_fcs(workdir / "rt.fcs", case["events"], case["names"], markers=case["markers"],
                     keywords=case["keywords"], datatype=case["datatype"], byteorder=case["byteorder"],
                     delimiter=case["delimiter"], bits=case["bits"])
    data = read_fcs(path)
    assert data.warnings == []
    assert data.version == "FCS3.1"
    # float32 is the contract: F and integers ≤ 24 bits are exact, D and wider integers round once
    np.testing.assert_array_equal(data.events, case["events"].astype(np.float32))
    assert [c.name for c in data.channels] == case["names"]
    assert [c.marker for c in data.channels] == [m or None for m in case["markers"]]
    for key, value in case["keywords"].items():
        assert data.keywords[key] == value
    if case["datatype"] == "I":
        assert [c.bits for c in data.channels] == case["bits"]


@SETTINGS
@given(case=fcs_cases())
def test_written_files_read_the_same_in_flowio(workdir, case):
    """An independent reader sees the same values and keywords (guards against symmetric writer/reader bugs)."""
    flowio = pytest.importorskip("flowio")
    if case["events"].shape[0] == 0:
        return
    names = [f"Ch{j}" for j in range(len(case["names"]))]  # flowio does not undo doubled delimiters
    delimiter = case["delimiter"].replace("^", "/")  # flowio builds a regex from the delimiter; '^' breaks it
    path = write_fcs(workdir / "fio.fcs", case["events"], names, keywords={"$SRC": "x"},
                     datatype=case["datatype"], byteorder=case["byteorder"], delimiter=delimiter, bits=case["bits"])
    fd = flowio.FlowData(str(path))
    theirs = np.reshape(np.asarray(fd.events, dtype=np.float64), (-1, fd.channel_count))
    np.testing.assert_array_equal(theirs, case["events"].astype(np.float64))
    assert fd.pnn_labels == names


def test_spillover_round_trips(tmp_path):
    sp = Spillover(["FL1-A", "FL2-A"], np.array([[1.0, 0.123456789012345], [1 / 3, 1.0]]), "$SPILLOVER")
    path = write_fcs(tmp_path / "s.fcs", np.zeros((3, 3), np.float32), ["FSC-A", "FL1-A", "FL2-A"], spillover=sp)
    back = read_fcs(path).spillover
    assert back.channels == sp.channels and back.source == "$SPILLOVER"
    np.testing.assert_array_equal(back.matrix, sp.matrix)


def test_offsets_beyond_99999999_go_to_text_with_zero_header(tmp_path, monkeypatch):
    """FCS 3.1: a segment past byte 99,999,999 has 0s in HEADER (exercised by lowering the limit)."""
    monkeypatch.setattr(writer_module, "MAX_HEADER_OFFSET", 1000)
    events = np.arange(600, dtype=np.float32).reshape(200, 3)
    path = write_fcs(tmp_path / "big.fcs", events, ["A", "B", "C"])
    header = path.read_bytes()[:58]
    assert header[26:42] == b"       0       0"  # DATA offsets zero in HEADER
    data = read_fcs(path)
    np.testing.assert_array_equal(data.events, events)
    assert int(data.keywords["$ENDDATA"]) == path.stat().st_size - 1


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(channel_names=["A", "a"]), "unique"),
        (dict(channel_names=["A"]), "1 channel names for 2"),
        (dict(datatype="I", events=np.array([[1.5, 2.0]])), "non-integer"),
        (dict(datatype="I", bits=8, events=np.array([[256, 2]])), "outside 0..255"),
        (dict(keywords={"$TOT": "5"}), "set by the writer"),
        (dict(keywords={"$CYT": ""}), "may not be empty"),
        (dict(datatype="X"), "datatype"),
    ],
)
def test_writer_rejects_bad_input_with_fcs_error(tmp_path, kwargs, match):
    args = dict(events=np.ones((2, 2), np.float32), channel_names=["A", "B"])
    args.update(kwargs)
    events, names = args.pop("events"), args.pop("channel_names")
    with pytest.raises(FcsError, match=match):
        write_fcs(tmp_path / "bad.fcs", events, names, **args)
    assert not (tmp_path / "bad.fcs").exists()
    assert not list(tmp_path.glob("*.tmp"))


@pytest.fixture(scope="module")
def valid_file_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("valid") / "v.fcs"
    sp = Spillover(["B", "C"], np.array([[1.0, 0.1], [0.2, 1.0]]), "$SPILLOVER")
    write_fcs(path, np.arange(60, dtype=np.float32).reshape(20, 3), ["A", "B", "C"], markers=[None, "CD38", "CD45"],
              spillover=sp, datatype="I", bits=[8, 16, 32])
    return path.read_bytes()


def _read_all(path):
    for info in list_datasets(path):
        read_fcs(path, dataset=info.index, linearize=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_truncated_or_corrupted_files_raise_only_fcs_error(workdir, valid_file_bytes, data):
    content = bytearray(valid_file_bytes)
    if data.draw(st.booleans(), label="truncate"):
        content = content[: data.draw(st.integers(0, len(content) - 1), label="length")]
    else:
        for _ in range(data.draw(st.integers(1, 8), label="n_bytes")):
            # bias towards HEADER + TEXT, where a byte changes the meaning of everything after it
            pos = data.draw(st.integers(0, min(len(content) - 1, 700)), label="pos")
            content[pos] = data.draw(st.integers(0, 255), label="byte")
    path = workdir / "corrupt.fcs"
    path.write_bytes(bytes(content))
    try:
        _read_all(path)
    except FcsError as exc:
        assert str(path) in str(exc)
