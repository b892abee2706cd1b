"""The fast paths of the per-sample analysis give exactly what the plain numpy computations give.

Performance work must not change a result: the subsample an adaptive gate is fitted on, the rows it is taken
from, the linearized values and the population masks are checked here against the straightforward numpy
versions they replace (the whole-tube identity is checked with ``scripts/perf_fingerprint.py``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mrdflow.fcs import read_fcs
from mrdflow.fcs.reader import _LINEARIZE_BLOCK
from mrdflow.gating.adaptive import subsample_indices, systematic_indices
from mrdflow.kernels.select import rows_at_ranks
from mrdflow.quantiles import column_medians, median, sorted_histogram, sorted_quantile

REPO = Path(__file__).resolve().parents[1]


def test_subsample_indices_contract():
    assert np.array_equal(subsample_indices(50, 100, 3), np.arange(50))
    sub = subsample_indices(1_000_000, 200_000, 3)
    assert sub.size == 200_000 and np.all(np.diff(sub) > 0) and sub[-1] < 1_000_000
    assert np.array_equal(sub, subsample_indices(1_000_000, 200_000, 3))  # deterministic by seed
    assert not np.array_equal(sub, subsample_indices(1_000_000, 200_000, 4))


@settings(max_examples=80, deadline=None)
@given(n=st.integers(2, 3_000), frac=st.floats(0.0, 1.0))
def test_systematic_sample_draws_every_index_with_probability_k_over_n(n, frac):
    """Over all n random starts, each index is drawn exactly k times (probability k/n, as a simple random
    sample), and every draw is k distinct sorted indices."""
    k = max(1, min(n - 1, int(n * frac)))
    counts = np.zeros(n, dtype=np.int64)
    for start in range(n):
        sub = systematic_indices(n, k, start)
        assert sub.size == k and np.all(np.diff(sub) > 0) and 0 <= sub[0] and sub[-1] < n
        counts[sub] += 1
    assert np.all(counts == k)


def test_subsample_keeps_population_proportions_in_a_sorted_file():
    """A file written population by population (or a parent whose events cluster in time) keeps its
    proportions in the sample, to the draw's granularity."""
    labels = np.repeat([0, 1, 2], [600_000, 390_000, 10_000])  # a minor population at the end
    for seed in range(5):
        sub = labels[subsample_indices(labels.size, 200_000, seed)]
        assert np.allclose(np.bincount(sub) / sub.size, [0.6, 0.39, 0.01], atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 300_000), p=st.floats(0.0, 1.0), k=st.integers(0, 5_000), seed=st.integers(0, 1000))
def test_rows_at_ranks_is_flatnonzero_indexing(n, p, k, seed):
    rng = np.random.default_rng(seed)
    mask = rng.random(n) < p
    rows = np.flatnonzero(mask)
    ranks = np.sort(rng.integers(0, rows.size, min(k, rows.size * 3))) if rows.size else np.zeros(0, np.int64)
    assert np.array_equal(rows_at_ranks(mask, ranks), rows[ranks])


def test_rows_at_ranks_rejects_a_rank_beyond_the_mask():
    with pytest.raises(ValueError, match="beyond the 2 True entries"):
        rows_at_ranks(np.array([True, False, True]), np.array([0, 2]))


def test_blocked_linearize_equals_whole_column_float64():
    """Log, gain and Time scaling over several row blocks give the whole-column float64 results, rounded once."""
    from mrdflow.fcs.layout import Channel
    from mrdflow.fcs.reader import FcsData, _linearize
    from mrdflow.fcs.text import Keywords

    n = 2 * _LINEARIZE_BLOCK + 123
    rng = np.random.default_rng(0)
    raw = np.c_[rng.uniform(0, 1023, n), rng.uniform(0, 262143, n), np.sort(rng.uniform(0, 9e5, n)),
                rng.uniform(0, 262143, n)].astype(np.float32)
    channels = [Channel(0, "FL1-H", None, 1024.0, 1.0, 4.0, 0.0), Channel(1, "FL2-A", None, 262144.0, 2.5),
                Channel(2, "Time", None, 262144.0, 3.0), Channel(3, "SSC-A", None, 262144.0)]
    data = FcsData(Path("lin.fcs"), "FCS3.1", Keywords({"$TIMESTEP": "0.01"}), channels, raw.copy(), None)
    _linearize(data)
    x = raw.astype(np.float64)
    expect = raw.copy()
    expect[:, 0] = 10 ** (4.0 * x[:, 0] / 1024.0) * 1.0
    expect[:, 1] = x[:, 1] / 2.5
    expect[:, 2] = x[:, 2] * 0.01  # Time: $TIMESTEP, not $PnG
    assert data.linearized and data.warnings == []
    assert np.array_equal(data.events, expect)


def test_gating_masks_equal_direct_gate_evaluation():
    """Every population of a real template on a demo tube: the engine's mask (kept packed, few unpacked at a
    time) equals its resolved gate evaluated on its parent."""
    from mrdflow.gating.engine import ROOT
    from mrdflow.gating.engine import gate_events
    from mrdflow.gating.gates import BooleanGate
    from mrdflow.gating.template import load_template
    from mrdflow.panel import load_panel
    from mrdflow.tube import prepare_tube

    panel = load_panel(REPO / "panels" / "demo.yaml")
    fcs = read_fcs(REPO / "sample_fcs" / "DEMO01_T1.fcs", linearize=True)
    setup = prepare_tube(panel, "tube1", fcs, load_template(panel.template))
    tmpl = setup.template
    res = gate_events(fcs.events, setup.index, tmpl, upper_limits=setup.upper_limits)
    masks = {ROOT: np.ones(fcs.n_events, bool)}
    for name, node in tmpl.nodes.items():
        parent = masks[node.parent]
        gate = res.gates[name]
        if isinstance(gate, BooleanGate) and node.kind == "boolean":
            m = gate.mask(fcs.events, setup.index, parent, resolved=masks)
        else:
            m = gate.mask(fcs.events, setup.index, parent)
        masks[name] = m
        assert np.array_equal(res.mask(name), m), name
        assert res.counts[name] == int(m.sum()), name


def _numpy_bin_levels(events, cols, edges, order, lo, hi):
    # what time QC computed before the kernel: per bin, clip the block's columns and average them
    out = np.empty((edges.size - 1, len(cols)))
    for i in range(edges.size - 1):
        a, b = edges[i], edges[i + 1]
        block = events[a:b][:, cols] if order is None else events[order[a:b]][:, cols]
        out[i] = np.clip(block, lo, hi).mean(axis=0, dtype=np.float64)
    return out


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40_000), n_bins=st.integers(1, 40), seed=st.integers(0, 2**32 - 1),
       shuffled=st.booleans(), fortran=st.booleans())
def test_clipped_bin_means_is_numpys_clip_mean(n, n_bins, seed, shuffled, fortran):
    """Bit for bit the per-bin np.clip(...).mean(axis=0, dtype=float64) (numpy's pairwise summation replayed),
    on values spanning many magnitudes, for C and Fortran event matrices and time-sorted or not."""
    from mrdflow.kernels.bins import clipped_bin_means

    rng = np.random.default_rng(seed)
    ev = (rng.standard_normal((n, 6)) * rng.lognormal(0, 4, (n, 6))).astype(np.float32)
    cols = [1, 3, 4, 5]
    lo, hi = np.percentile(ev[:, cols], [1, 99], axis=0)
    n_bins = min(n_bins, n)
    edges = np.linspace(0, n, n_bins + 1).round().astype(np.int64)
    order = rng.permutation(n) if shuffled else None
    expect = _numpy_bin_levels(ev, cols, edges, order, lo, hi)
    got = clipped_bin_means(np.asfortranarray(ev) if fortran else ev, np.array(cols), edges, order, lo, hi)
    assert np.array_equal(got, expect)


@pytest.mark.parametrize("m", [1, 7, 8, 9, 127, 128, 129, 1000, 8193, 100_003, 1_000_000])
def test_clipped_bin_means_long_bins(m):
    from mrdflow.kernels.bins import clipped_bin_means

    rng = np.random.default_rng(m)
    ev = (rng.standard_normal((m, 3)) * rng.lognormal(0, 4, (m, 3))).astype(np.float32)
    lo, hi = np.percentile(ev, [1, 99], axis=0)
    edges = np.array([0, m])
    assert np.array_equal(clipped_bin_means(ev, np.arange(3), edges, None, lo, hi),
                          _numpy_bin_levels(ev, [0, 1, 2], edges, None, lo, hi))


def test_clipped_bin_means_rejects_bad_input():
    from mrdflow.kernels.bins import clipped_bin_means

    ev = np.zeros((10, 3), np.float32)
    with pytest.raises(ValueError, match="outside the matrix's 3 columns"):
        clipped_bin_means(ev, np.array([3]), np.array([0, 10]), None, np.zeros(1), np.ones(1))
    with pytest.raises(ValueError, match="edges"):
        clipped_bin_means(ev, np.array([0]), np.array([0, 5, 5, 10]), None, np.zeros(1), np.ones(1))


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.integers(0, 50), min_size=0, max_size=300), sort=st.booleans())
def test_sorted_distinct_counts_distinct_values(values, sort):
    from mrdflow.kernels.bins import sorted_distinct
    from mrdflow.pipeline import _n_distinct

    a = np.array(sorted(values) if sort else values, dtype=np.float32)
    in_order = bool(np.all(a[:-1] <= a[1:])) if a.size else True
    assert sorted_distinct(a) == (np.unique(a).size if in_order else -1)
    assert _n_distinct(a) == np.unique(a).size


@pytest.mark.parametrize("where", [0, 1, 65535, 65536, 65537, 131071, 199_998])
def test_sorted_distinct_across_parallel_blocks(where):
    """A Time column longer than one work item (65 536 pairs): the changes of every block are counted, and one
    out-of-order pair or NaN anywhere — at a block's first or last pair included — gives -1."""
    from mrdflow.kernels.bins import sorted_distinct

    a = (np.arange(200_000) // 3).astype(np.float32)
    assert sorted_distinct(a) == np.unique(a).size
    for bad in (-1.0, np.nan):
        b = a.copy()
        b[where] = bad if where else a[-1] + 1  # the first value above its successor, or a value below its predecessor
        assert sorted_distinct(b) == -1

@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 20_000), p=st.integers(1, 9), big=st.booleans(), seed=st.integers(0, 1000),
       pad=st.integers(0, 7))
def test_column_major_read_and_hash_equal_row_major_read_and_file_hash(tmp_path_factory, n, p, big, seed, pad):
    """read_fcs(order="F") gives the same values (Fortran-contiguous) as the row-major read, through chunks of
    8192 rows and in both byte orders, and sha256=True the SHA-256 of the whole file (DATA padding and the
    bytes after DATA included)."""
    import hashlib

    from fcs_bytes import basic_keywords, make_fcs, write

    rng = np.random.default_rng(seed)
    events = (rng.standard_normal((n, p)) * 1e4).astype(np.float32)
    params = [(f"P{j}-A", 32, "262144") for j in range(p)]
    kw = basic_keywords(n, params, "F", "4,3,2,1" if big else "1,2,3,4")
    data = events.astype((">" if big else "<") + "f4").tobytes() + b"\0" * (4 * pad if n else 0)
    content = make_fcs(kw, data) + b"trailing bytes after DATA"
    path = write(tmp_path_factory.mktemp("f"), "x.fcs", content)
    row = read_fcs(path)
    col = read_fcs(path, order="F", sha256=True)
    assert col.events.flags.f_contiguous and row.events.flags.c_contiguous
    assert np.array_equal(col.events, events) and np.array_equal(row.events, events)
    assert col.sha256 == hashlib.sha256(content).hexdigest()
    assert read_fcs(path, sha256=True).sha256 == col.sha256 and row.sha256 is None


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(0, 30_000), p=st.integers(1, 9), big=st.booleans(), seed=st.integers(0, 1000),
       threads=st.integers(2, 5), min_rows=st.integers(1, 9_000))
def test_parallel_read_equals_serial_read(tmp_path_factory, monkeypatch, n, p, big, seed, threads, min_rows):
    """read_fcs(threads=k) splits the events into k contiguous row ranges read at once: the same values in both
    layouts and byte orders, whatever the split (parts as small as one row)."""
    import mrdflow.fcs.data as data
    from fcs_bytes import basic_keywords, make_fcs, write

    rng = np.random.default_rng(seed)
    events = (rng.standard_normal((n, p)) * 1e4).astype(np.float32)
    params = [(f"P{j}-A", 32, "262144") for j in range(p)]
    kw = basic_keywords(n, params, "F", "4,3,2,1" if big else "1,2,3,4")
    content = make_fcs(kw, events.astype((">" if big else "<") + "f4").tobytes()) + b"after DATA"
    path = write(tmp_path_factory.mktemp("f"), "x.fcs", content)
    with monkeypatch.context() as m:
        m.setattr(data, "_MIN_ROWS_PER_THREAD", min_rows)
        split = data._row_parts(n, threads)
        assert split[0][0] == 0 and split[-1][1] == n and all(b1 == a2 for (_, b1), (a2, _) in zip(split, split[1:]))
        for order in ("C", "F"):
            got = read_fcs(path, order=order, threads=threads)
            assert np.array_equal(got.events, events) and got.events.flags[f"{order}_CONTIGUOUS"]


def test_parallel_read_reports_a_file_cut_short(tmp_path, monkeypatch):
    """A file that loses its end between the TEXT check and the read (being copied, a network share) is an
    FcsError naming the file, from whichever thread meets the end."""
    import mrdflow.fcs.data as data
    from mrdflow.errors import FcsError

    from fcs_bytes import basic_keywords, make_fcs, write

    events = np.ones((40_000, 3), dtype=np.float32)
    kw = basic_keywords(40_000, [(f"P{j}", 32, "1024") for j in range(3)], "F", "1,2,3,4")
    path = write(tmp_path, "cut.fcs", make_fcs(kw, events.tobytes()))
    real_decode = data.decode

    def decode_after_cut(fh, *a, **k):
        os.truncate(path, os.path.getsize(path) - 4_000)
        return real_decode(fh, *a, **k)

    import mrdflow.fcs.reader as reader

    monkeypatch.setattr(data, "_MIN_ROWS_PER_THREAD", 1_000)
    monkeypatch.setattr(reader, "decode", decode_after_cut)
    with pytest.raises(FcsError, match="cut.fcs.*DATA truncated"):
        read_fcs(path, order="F", threads=3)


def test_column_major_read_of_every_layout_and_hash():
    """Every readable corpus file (int, packed, ASCII, float64, both byte orders): the column-major read equals
    the row-major one after linearizing, and the hash while reading equals hashing the file."""
    from mrdflow.errors import FcsError
    from mrdflow.provenance import sha256_file

    from conftest import shared_path

    files = sorted(shared_path("fcs_corpus").rglob("*.[fF][cC][sS]"))[:60]
    checked = 0
    for f in files:
        try:
            row = read_fcs(f, linearize=True)
        except FcsError:
            continue
        col = read_fcs(f, linearize=True, order="F", sha256=True)
        assert np.array_equal(row.events, col.events, equal_nan=True), f
        assert col.sha256 == sha256_file(f), f
        assert row.warnings == col.warnings, f
        checked += 1
    assert checked >= 30


def test_fused_scaling_pass_is_layout_independent():
    """The compensation + transform pass gives the same float32 values on a row-major and a column-major
    matrix (the pipeline reads column-major; every other reader of FCS files row-major)."""
    from mrdflow.gating.template import load_template
    from mrdflow.panel import load_panel
    from mrdflow.tube import prepare_tube

    panel = load_panel(REPO / "panels" / "demo.yaml")
    tmpl = load_template(panel.template)
    c = read_fcs(REPO / "sample_fcs" / "DEMO02_T2.fcs", linearize=True)
    f = read_fcs(REPO / "sample_fcs" / "DEMO02_T2.fcs", linearize=True, order="F")
    prepare_tube(panel, "tube2", c, tmpl)
    prepare_tube(panel, "tube2", f, tmpl)
    assert f.events.flags.f_contiguous
    assert np.array_equal(c.events, f.events)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 2_500), seed=st.integers(0, 2**32 - 1), fortran=st.booleans(), hyper=st.booleans())
def test_fused_pass_equals_the_per_value_computation(n, seed, fortran, hyper):
    """The block-vectorised fused pass (gathered compensation, two-pass table lookup, written-out linear scaling)
    gives bit for bit the per-event computation it replaced: each compensated value accumulated as
    0.0 + x0·inv[0, j] + x1·inv[1, j] + ... in float64, then transform_value (table, or the exact solve
    outside it: zeros, tiny and huge values), rounded to float32 once."""
    from mrdflow.kernels.compensate import compensate_transform_inplace
    from mrdflow.kernels.transforms import HYPERLOG, LINEAR, LOGICLE, transform_value
    from mrdflow.transforms import Hyperlog, Linear, Logicle

    rng = np.random.default_rng(seed)
    ev = (rng.lognormal(4, 3, (n, 6)) * np.where(rng.random((n, 6)) < 0.3, -1, 1)).astype(np.float32)
    ev[rng.random((n, 6)) < 0.05] = 0.0
    ev[rng.random((n, 6)) < 0.02] = 1e-30
    ev[rng.random((n, 6)) < 0.02] = 3e9
    if fortran:
        ev = np.asfortranarray(ev)
    cols = np.array([1, 2, 4], dtype=np.int64)
    inv = np.linalg.inv(np.eye(3) + rng.uniform(0, 0.2, (3, 3)))
    log_t = Hyperlog(T=262144, W=0.5, M=4.5, A=0) if hyper else Logicle(T=262144, W=0.5, M=4.5, A=0)
    lin_t = Linear(T=262144, A=0)
    params = np.vstack([log_t.params, lin_t.params])
    code = HYPERLOG if hyper else LOGICLE
    codes = np.array([code, code, 0], dtype=np.int64)
    pidx = np.zeros(3, dtype=np.int64)
    plain, plain_codes, plain_pidx = np.array([0, 5]), np.array([LINEAR, 0]), np.array([1, 0])
    expect = np.array(ev, order="C")
    for i in range(n):
        for j in range(3):
            acc = 0.0
            for m in range(3):
                acc += float(np.float64(ev[i, cols[m]])) * inv[m, j]
            expect[i, cols[j]] = transform_value(codes[j], acc, params[0])
        expect[i, 0] = transform_value(LINEAR, float(ev[i, 0]), params[1])
    compensate_transform_inplace(ev, cols, inv, codes, pidx, plain, plain_codes, plain_pidx, params)
    assert np.array_equal(ev, expect, equal_nan=True)


@settings(max_examples=50, deadline=None)
@given(n=st.integers(0, 3_000), k=st.integers(1, 4), p=st.floats(0.0, 1.0), seed=st.integers(0, 2**32 - 1),
       with_parent=st.booleans())
def test_rectangle_on_a_column_major_matrix_equals_numpy(n, k, p, seed, with_parent):
    """RectangleGate.mask on a column-major matrix (one vectorised pass per dimension) is the half-open box test
    min <= x < max within the parent, as on a row-major one (NaN outside, open sides)."""
    from mrdflow.gating.gates import RectangleGate

    rng = np.random.default_rng(seed)
    ev = rng.standard_normal((n, 5)).astype(np.float32)
    ev[rng.random((n, 5)) < 0.02] = np.nan
    ev[rng.random((n, 5)) < 0.05] = 0.25  # exactly on a bound
    dims = tuple(f"d{j}" for j in range(k))
    index = {d: j + 1 for j, d in enumerate(dims)}
    lo = tuple(None if rng.random() < 0.3 else -0.5 for _ in dims)
    hi = tuple(0.25 if a is None or rng.random() < 0.7 else None for a in lo)
    gate = RectangleGate(dims, lo, hi)
    parent = rng.random(n) < p if with_parent else None
    expect = np.ones(n, bool) if parent is None else parent.copy()
    for d, a, b in zip(dims, lo, hi):
        x = ev[:, index[d]].astype(np.float64)
        if a is not None:
            expect &= x >= a
        if b is not None:
            expect &= x < b
    assert np.array_equal(gate.mask(np.asfortranarray(ev), index, parent), expect)
    assert np.array_equal(gate.mask(ev, index, parent), expect)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 5_000), n_pop=st.integers(0, 6), seed=st.integers(0, 2**32 - 1), wide=st.booleans())
def test_paint_packed_equals_painting_unpacked_masks(n, n_pop, seed, wide):
    """Labels painted from bit-packed masks equal labels[mask] = id in order (later wins), for any n (partial
    last byte), dense, sparse and empty masks, uint8 and uint16 labels."""
    from mrdflow.kernels.select import paint_packed

    rng = np.random.default_rng(seed)
    dtype = np.uint16 if wide else np.uint8
    masks = [rng.random(n) < rng.choice([0.0, 0.01, 0.5, 0.99, 1.0]) for _ in range(n_pop)]
    ids = np.array([int(rng.integers(1, 300 if wide else 255)) for _ in masks], dtype=dtype)
    expect = np.full(n, 7, dtype=dtype)
    for m, v in zip(masks, ids):
        expect[m] = v
    got = np.full(n, 7, dtype=dtype)
    packed = np.stack([np.packbits(m) for m in masks]) if masks else np.zeros((0, (n + 7) // 8), np.uint8)
    paint_packed(packed, ids, got)
    assert np.array_equal(got, expect)
    # the same rows stored in reverse, painted through an order array
    again = np.full(n, 7, dtype=dtype)
    paint_packed(packed[::-1].copy(), ids, again, order=np.arange(len(masks))[::-1])
    assert np.array_equal(again, expect)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), nv=st.integers(3, 9), n=st.integers(0, 9_000), wedge=st.booleans())
def test_polygon_on_a_column_major_matrix_equals_the_grid_kernel(seed, nv, n, wedge):
    """PolygonGate.mask on a column-major matrix (the exact test, branch-free, per edge) equals the row-major
    grid kernel: random and self-intersecting polygons, a singlet wedge reaching 1e9, events on vertices and
    edges, outside the box, NaN, and a parent."""
    from mrdflow.gating.gates import PolygonGate

    rng = np.random.default_rng(seed)
    if wedge:
        verts = ((0.0, 0.0), (rng.uniform(1.0, 1.5) * 1e9, 1e9), (rng.uniform(0.5, 1.0) * 1e9, 1e9))
        h = rng.uniform(0, 2.6e5, n)
        ev = np.c_[h * rng.uniform(0.4, 1.6, n), h, h].astype(np.float32)
    else:
        verts = tuple(zip(np.round(rng.uniform(-20, 120, nv), 1), np.round(rng.uniform(-20, 120, nv), 1)))
        ev = np.round(rng.uniform(-40, 140, (n, 3)), 1).astype(np.float32)
    k = min(n, 40)
    ev[:k, :2] = np.array(verts, dtype=np.float32)[rng.integers(0, len(verts), k)]  # on vertices
    if n > k:
        a, b = np.array(verts[0]), np.array(verts[1])
        t = rng.random(min(n - k, 40))[:, None]
        ev[k:k + t.size, :2] = (a + t * (b - a)).astype(np.float32)  # on (or next to) an edge
    ev[rng.random(n) < 0.01, 1] = np.nan
    gate = PolygonGate(("x", "y"), verts)
    parent = rng.random(n) < 0.9
    index = {"x": 0, "y": 1}
    expect = gate.mask(ev, index, parent)
    assert np.array_equal(gate.mask(np.asfortranarray(ev), index, parent), expect)
    assert np.array_equal(gate.mask(np.asfortranarray(ev), index), gate.mask(ev, index))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**63), prefix=st.integers(0, 3), draws=st.lists(
    st.tuples(st.integers(10_001, 2_000_000), st.floats(0.0, 1.0)), min_size=1, max_size=3))
def test_sorted_choice_from_a_shared_generator_is_numpys_choice(seed, prefix, draws):
    """Successive draws from one generator (as the phenotype's reference samples are): the same sorted values as
    numpy's choice and the generator left in numpy's state — including a buffered 32-bit half before and after
    — so every later draw is unchanged too."""
    from mrdflow.kernels.select import sorted_choice_from

    a, b = np.random.default_rng(seed), np.random.default_rng(seed)
    for k in range(prefix):  # odd numbers of 32-bit draws leave a half word buffered
        a.integers(0, 1000, 2 * k + 1, dtype=np.uint32)
        b.integers(0, 1000, 2 * k + 1, dtype=np.uint32)
    for n, frac in draws:
        size = max(1, min(n - 1, int(n * frac)))
        assert np.array_equal(sorted_choice_from(b, n, size), np.sort(a.choice(n, size, replace=False)))
        assert a.bit_generator.state == b.bit_generator.state
    assert np.array_equal(a.integers(0, 2**62, 4), b.integers(0, 2**62, 4))


finite32 = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@settings(max_examples=120, deadline=None)
@given(values=st.lists(finite32, min_size=1, max_size=400), f64=st.booleans(), repeat=st.integers(1, 3),
       q=st.one_of(st.sampled_from([0.0, 0.001, 0.25, 0.5, 0.75, 0.999, 1.0]), st.floats(0.0, 1.0),
                   st.lists(st.floats(0.0, 1.0), min_size=1, max_size=4)))
def test_sorted_quantile_is_numpys_quantile(values, f64, repeat, q):
    x = np.array(values * repeat, dtype=np.float64 if f64 else np.float32)  # repeats make ties
    want = np.quantile(x, q)
    got = sorted_quantile(np.sort(x), q)
    assert np.array_equal(got, want) and np.asarray(got).dtype == np.asarray(want).dtype
    assert type(got) is type(want)


@settings(max_examples=120, deadline=None)
@given(values=st.lists(finite32, min_size=1, max_size=400), dtype=st.sampled_from([np.float32, np.float64, np.float16]),
       repeat=st.integers(1, 3))
def test_median_is_numpys_median(values, dtype, repeat):
    """The same value, dtype and type as np.median — an even count's two middle values summed in the data's
    precision (float32 may overflow to inf, as numpy), float16 (numpy averages it in float32) included."""
    with np.errstate(all="ignore"):
        x = np.array(values * repeat, dtype=dtype)
        want, got = np.median(x), median(x)
    assert np.array_equal(got, want, equal_nan=True) and type(got) is type(want)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.integers(-2**40, 2**40), min_size=1, max_size=50))
def test_median_of_integers_is_numpys_float64_median(values):
    x = np.array(values, dtype=np.int64)
    want, got = np.median(x), median(x)
    assert got == want and type(got) is type(want)


@settings(max_examples=120, deadline=None)
@given(rows=st.integers(0, 60), cols=st.integers(0, 5), f64=st.booleans(), seed=st.integers(0, 2**32 - 1),
       special=st.sampled_from([None, np.inf, -np.inf, np.nan]), fortran=st.booleans())
def test_column_medians_is_numpys_median_over_rows(rows, cols, f64, seed, special, fortran):
    """The phenotype's centres and spreads: the same values and dtype as np.median(a, axis=0), ties (small
    integers), ±inf (a marker set aside) and NaN included."""
    rng = np.random.default_rng(seed)
    a = rng.integers(-3, 4, size=(rows, cols)).astype(np.float64 if f64 else np.float32)
    if special is not None and a.size:
        a.flat[rng.integers(0, a.size, size=1 + a.size // 7)] = special
    a = np.asfortranarray(a) if fortran else a
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want, got = np.median(a, axis=0), column_medians(a)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == want.dtype and got.shape == want.shape


@settings(max_examples=120, deadline=None)
@given(values=st.lists(finite32, min_size=1, max_size=400), f64=st.booleans(), bins=st.integers(1, 40),
       cut=st.tuples(st.floats(0.0, 0.5), st.floats(0.5, 1.0)), on_edges=st.booleans())
def test_sorted_histogram_is_numpys_histogram(values, f64, bins, cut, on_edges):
    x = np.array(values, dtype=np.float64 if f64 else np.float32)
    lo, hi = float(np.quantile(x, cut[0])), float(np.quantile(x, cut[1]))
    if not hi > lo:
        lo, hi = lo - 1.0 - abs(lo), hi + 1.0 + abs(hi)
    try:
        if on_edges:  # values exactly on bin edges, the boundary convention
            x = np.concatenate([x, np.histogram_bin_edges(x, bins=bins, range=(lo, hi)).astype(x.dtype)])
        want, want_edges = np.histogram(x, bins=bins, range=(lo, hi))
    except ValueError:  # float32 edges too close to increase: numpy refuses, and so must we
        with pytest.raises(ValueError):
            sorted_histogram(np.sort(x), bins, (lo, hi))
        return
    got, edges = sorted_histogram(np.sort(x), bins, (lo, hi))
    assert np.array_equal(got, want) and np.array_equal(edges, want_edges)


def test_time_qc_clip_quantiles_are_numpys_percentiles():
    from mrdflow.qc.time import _clip_quantiles

    rng = np.random.default_rng(4)
    events = np.asfortranarray(rng.lognormal(size=(100_003, 6)).astype(np.float32))
    rows = events[::7]
    assert np.array_equal(_clip_quantiles(rows, [0, 2, 5]), np.percentile(rows[:, [0, 2, 5]], [1, 25, 75, 99], axis=0))


@settings(max_examples=80, deadline=None)
@given(values=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=600), window=st.integers(1, 700))
def test_time_qc_running_median_is_the_sliding_window_median(values, window):
    from numpy.lib.stride_tricks import sliding_window_view

    from mrdflow.qc.time import _running_median

    v = np.array(values)
    n, half = v.size, min(window // 2, v.size - 1)
    if half <= 0:
        want = v
    else:
        padded = np.concatenate([2.0 * v[0] - v[half:0:-1], v, 2.0 * v[-1] - v[-2:-2 - half:-1]])
        want = np.median(sliding_window_view(padded, 2 * half + 1), axis=1)
    assert np.array_equal(_running_median(v, window), want)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 50_000), k=st.integers(0, 40_000), p=st.integers(1, 6), fortran=st.booleans(),
       seed=st.integers(0, 2**32 - 1), pick=st.integers(0, 5))
def test_gather_rows_is_numpy_fancy_indexing(n, k, p, fortran, seed, pick):
    """The parallel gather equals events[np.ix_(rows, cols)] for any rows (sorted or not, repeated) and columns,
    on either layout, and refuses rows outside the matrix."""
    from mrdflow.gating.engine import gather_rows

    rng = np.random.default_rng(seed)
    events = rng.standard_normal((n, p)).astype(np.float32)
    if fortran:
        events = np.asfortranarray(events)
    rows = rng.integers(0, n, k)
    if seed % 2:
        rows.sort()
    cols = [int(c) for c in rng.integers(0, p, pick)]
    got = gather_rows(events, rows, cols)
    assert got.flags.c_contiguous and np.array_equal(got, events[np.ix_(rows, cols)])
    if k and cols:
        with pytest.raises(IndexError):
            gather_rows(events, np.r_[rows, n], cols)
