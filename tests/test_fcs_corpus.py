"""Every file of the shared real-instrument FCS corpus: read (or rejected with FcsError only), and where
flowio or fcsparser read the same data set, our raw values equal theirs.

Comparison precision: events are float32 by contract. Integer data up to 24 bits and float32 data
are exact in float32, so they are compared exactly in float64. ``$DATATYPE D`` and integers wider than
24 bits are compared after rounding the oracle's value to float32 (the one rounding we make).
"""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest

from conftest import SHARED_DIR, shared_path
from mrdflow.errors import FcsError
from mrdflow.fcs import list_datasets, read_fcs

flowio = pytest.importorskip("flowio")
fcsparser = pytest.importorskip("fcsparser")

CORPUS = SHARED_DIR / "fcs_corpus"


def _manifest() -> list[str]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.exists():
        return ["<corpus absent>"]
    with open(manifest, newline="", encoding="utf-8") as fh:
        return [row["file"] for row in csv.DictReader(fh, delimiter="\t")]


FILES = _manifest()

#: files we reject, and why that is right (each verified by hand against the bytes)
REJECTED = {
    "eyurtsev__fcsparser__fcsparser__tests__data__FlowCytometers__cytek-nl-2000__sample_header.fcs":
        "a 3.9 KB header+TEXT stub of a 2.1 MB file: DATA starts at byte 5912, beyond the end of the file",
    "laminlabs__readfcs__readfcs__datasets__example@edc267c.fcs":
        "copy corrupted by git CRLF normalisation: 209 bytes short, DATA shorter than $TOT × $PAR × 4",
}

#: (file, data set, oracle) triples where an oracle reads different values than we do, which side is right and why.
#: ``agrees`` names another oracle reading that must equal ours (the evidence).
DISAGREE = {
    ("cytoflow__cytoflow__cytoflow__tests__data__instruments__Accuri - C6.fcs", 0, "flowio:ignore_offset_discrepancy"): (
        "ours: HEADER offsets 2960-3399976 hold exactly $TOT×56 bytes (+1 off-by-one end); TEXT $BEGINDATA 2526 "
        "points into the supplemental TEXT, so readers trusting TEXT read keyword bytes as events", None),
    ("cytoflow__cytoflow__cytoflow__tests__data__instruments__Beckman Coulter - Cyan.fcs", 0, "flowio:ignore_offset_discrepancy"): (
        "ours: CyAn HEADER 2284-141219 is exactly $TOT×$PAR×2 bytes; TEXT $BEGINDATA/$ENDDATA are shifted by 46 bytes",
        "flowio:use_header_offsets"),
    ("whitews__FlowIO__data__fcs_files__data_start_offset_discrepancy_example.fcs", 0, "fcsparser"): (
        "ours: TEXT 6081-6188 is exactly $TOT=2 events × 54 bytes; fcsparser takes HEADER begin 5555, 634 bytes",
        "flowio:ignore_offset_discrepancy"),
    ("cytoflow__cytoflow__FACEJava__src__org__flowcyt__facejava__fcsdata__test__files__double-5_events@5c7082c.fcs", 0,
     "flowio:ignore_offset_discrepancy"): (
        "ours: HEADER 576-735 is exactly $TOT=5 events × 4 × 8 bytes (the file is named 5 events); TEXT 512 "
        "gives 7 events", "flowio:use_header_offsets"),
    ("cytoflow__cytoflow__FACEJava__src__org__flowcyt__facejava__faceflow__test__files__fcs__int-10000_events_random@ef9684f.fcs", 0,
     "flowio:use_header_offsets"): (
        "ours: TEXT 672-240671 holds exactly $TOT=10000 events × 6 × 4 bytes; HEADER begin 512 gives 10006 events",
        "flowio:ignore_offset_discrepancy"),
    ("cytoflow__cytoflow__FACEJava__src__org__flowcyt__facejava__faceflow__test__files__fcs__int-10000_events_random@ef9684f.fcs", 0,
     "fcsparser"): ("ours: as above; fcsparser takes the HEADER begin 512", "flowio:ignore_offset_discrepancy"),
    **{
        ("cytoflow__cytoflow__FACEJava__src__org__flowcyt__facejava__faceflow__test__files__fcs__int-4_ds_2_events_2_parameters@d1b6b8f.fcs",
         k, "fcsparser"): (
            "ours: $NEXTDATA (608 in every data set) is relative to the current data set, so the 4 data sets start at "
            "0, 608, 1216, 1824 and hold 170..320 in steps of 10; fcsparser treats it as absolute and re-reads data set 1",
            "flowio:read_multiple_data_sets")
        for k in (2, 3)
    },
    ("cytoflow__cytoflow__cytoflow__tests__data__instruments__Beckman Coulter - Cytomics FC500.LMD", 0, "fcsparser"): (
        "ours: 10-bit $PnB stored padded to 16-bit words (DATA length = $TOT×4×2); fcsparser splits the bytes "
        "wrongly (max 255 and 3). Evidence: test_beckman_10bit_dataset_matches_its_20bit_twin",
        None),
}


def _flowio_reads(path, index: int, n_datasets: int):
    """(label, float64 events) for each flowio mode that reads the file; strict first, flags only if needed."""
    if n_datasets > 1:
        try:
            sets = flowio.read_multiple_data_sets(str(path), ignore_offset_error=True)
            fd = sets[index]
            yield "flowio:read_multiple_data_sets", _as_array(fd)
        except Exception:  # noqa: BLE001 - an oracle that cannot read gives no evidence
            pass
        return
    modes = [("flowio:strict", {}), ("flowio:ignore_offset_error", {"ignore_offset_error": True})]
    for label, kw in modes:
        try:
            yield label, _as_array(flowio.FlowData(str(path), **kw))
            return
        except Exception:  # noqa: BLE001
            continue
    for label, kw in (("flowio:ignore_offset_discrepancy", {"ignore_offset_discrepancy": True, "ignore_offset_error": True}),
                      ("flowio:use_header_offsets", {"use_header_offsets": True, "ignore_offset_error": True})):
        try:
            yield label, _as_array(flowio.FlowData(str(path), **kw))
        except Exception:  # noqa: BLE001
            continue


def _as_array(fd) -> np.ndarray:
    return np.reshape(np.asarray(fd.events, dtype=np.float64), (-1, fd.channel_count))


class _WithNewbyteorder(np.ndarray):
    """ndarray with NumPy 1's ``newbyteorder`` (removed in NumPy 2), which fcsparser 0.2.4 calls on big-endian data."""

    def newbyteorder(self, order="S"):
        return self.view(self.dtype.newbyteorder(order)).view(np.ndarray)


@pytest.fixture(autouse=True, scope="module")
def _fcsparser_numpy2_shim():
    """Let fcsparser read big-endian files under NumPy 2 by restoring the one method it lacks (semantics unchanged)."""
    import fcsparser.api as api

    original = api.fromfile
    api.fromfile = lambda *a, **k: original(*a, **k).view(_WithNewbyteorder)
    yield
    api.fromfile = original


def _fcsparser_read(path, index: int):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, df = fcsparser.parse(str(path), data_set=index, reformat_meta=False)
        return df.to_numpy(dtype=np.float64)
    except Exception:  # noqa: BLE001 - fails on every big-endian file with NumPy 2
        return None


def _same(ours: np.ndarray, theirs: np.ndarray, at_float32: bool) -> bool:
    if ours.shape != theirs.shape:
        return False
    if at_float32:
        return np.array_equal(ours, theirs.astype(np.float32), equal_nan=True)
    return np.array_equal(ours.astype(np.float64), theirs, equal_nan=True)


@pytest.mark.parametrize("name", FILES)
def test_corpus_file_reads_like_the_oracles(name):
    path = shared_path("fcs_corpus", "files", name)
    if name in REJECTED:
        with pytest.raises(FcsError) as exc:
            read_fcs(path)
        assert str(path) in str(exc.value)
        return
    datasets = list_datasets(path)
    assert datasets, "a readable file has at least one data set"
    for info in datasets:
        data = read_fcs(path, dataset=info.index, spillover_errors="warn")
        assert data.events.dtype == np.float32 and data.events.flags.c_contiguous
        # HEADER + TEXT only (mrdflow validate-panel): the same metadata, no DATA read
        meta = read_fcs(path, dataset=info.index, spillover_errors="warn", events=False)
        assert meta.events.shape == (0, data.n_channels)
        assert [c.name for c in meta.channels] == [c.name for c in data.channels]
        assert (meta.data_start, meta.data_length) == (data.data_start, data.data_length)
        assert (meta.spillover is None) == (data.spillover is None)
        assert data.events.shape == (info.n_events if info.n_events is not None else data.n_events, info.n_channels)
        at_f32 = data.datatype == "D" or (data.datatype == "I" and max(c.bits or 0 for c in data.channels) > 24)
        readings = dict(_flowio_reads(path, info.index, len(datasets)))
        fcsp = _fcsparser_read(path, info.index)
        if fcsp is not None:
            readings["fcsparser"] = fcsp
        for oracle, theirs in readings.items():
            if (name, info.index, oracle) in DISAGREE:
                why, agrees = DISAGREE[(name, info.index, oracle)]
                assert not _same(data.events, theirs, at_f32), f"{oracle} now agrees; drop the DISAGREE entry"
                if agrees is not None:
                    assert agrees in readings and _same(data.events, readings[agrees], at_f32), why
                continue
            assert _same(data.events, theirs, at_f32), (
                f"data set {info.index}: {oracle} reads different values (shape {theirs.shape} vs ours "
                f"{data.events.shape}); warnings: {data.warnings}"
            )


def test_corpus_offsets_corrections_are_never_silent():
    """Accuri C6: HEADER/TEXT disagree and the end offset is off by one — both are reported."""
    path = shared_path("fcs_corpus", "files", "cytoflow__cytoflow__cytoflow__tests__data__instruments__Accuri - C6.fcs")
    data = read_fcs(path)
    joined = " | ".join(data.warnings)
    assert "DATA offsets disagree: using HEADER 2960-3399976" in joined
    assert "off by one" in joined
    # Accuri names spillover channels by parameter number; they map to $PnN
    assert data.spillover is not None and data.spillover.channels[0] == "FL1-A"


def test_beckman_10bit_dataset_matches_its_20bit_twin():
    """FC500 .LMD: data set 0 (FCS 2.0, $PnB 10 padded to 16 bits) is data set 1's 20-bit scatter / 1024."""
    path = shared_path("fcs_corpus", "files", "cytoflow__cytoflow__cytoflow__tests__data__instruments__Beckman Coulter - Cytomics FC500.LMD")
    assert [d.version for d in list_datasets(path)] == ["FCS2.0", "FCS3.0"]
    ten_bit, twenty_bit = read_fcs(path, dataset=0), read_fcs(path, dataset=1)
    assert ten_bit.channels[0].bits == 10 and ten_bit.events.max() <= 1023
    assert any("fits int" in w for w in ten_bit.warnings)
    for name_10, name_20 in (("FS Lin", "FS"), ("SS Lin", "SS")):
        low = ten_bit.events[:, ten_bit.channel_index(name_10)]
        high = twenty_bit.events[:, twenty_bit.channel_index(name_20)]
        np.testing.assert_array_equal(low, np.floor(high / 1024))


def test_every_disagreement_entry_names_a_corpus_file():
    if FILES == ["<corpus absent>"]:
        pytest.skip(f"shared FCS corpus not found under {CORPUS}")
    assert {name for name, _, _ in DISAGREE} <= set(FILES)
    assert set(REJECTED) <= set(FILES)


@pytest.mark.parametrize(
    "name,expected",
    [
        ("cytoflow__cytoflow__FACEJava__src__org__flowcyt__facejava__fcsdata__test__files__ascii-2_events_missing_parameter_names@3cc6e2e.fcs",
         [[125, 150, 175, 150], [150, 125, 150, 175]]),  # DATA bytes: b" 125 150 175 150 150 125 150 175", $PnB 4
        ("cytoflow__cytoflow__FACEJava__src__org__flowcyt__facejava__fcsdata__test__files__invalid-no_crc@abc3174.fcs",
         [[100, 200], [100, 200], [300, 400], [300, 400]]),
    ],
)
def test_ascii_files_no_oracle_reads_match_their_bytes(name, expected):
    """flowio and fcsparser read no ASCII data; these values were checked against the DATA bytes by hand."""
    data = read_fcs(shared_path("fcs_corpus", "files", name))
    np.testing.assert_array_equal(data.events, expected)
