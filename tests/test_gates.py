"""Gate geometry: membership agrees with flowutils/FlowKit, GatingML boundary rules, parents, descriptions."""

from __future__ import annotations

import numpy as np
import pytest
from flowutils import gating as fu_gating
from hypothesis import given, settings
from hypothesis import strategies as st

from mrdflow.errors import GateError
from mrdflow.gating.gates import (
    BooleanGate,
    EllipsoidGate,
    PolygonGate,
    QuadrantGate,
    RangeGate,
    RectangleGate,
    gate_from_dict,
)

INDEX = {"x": 0, "y": 1, "z": 2}


def _events(n=20_000, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 2, size=(n, 3)).astype(np.float32)


# a self-intersecting pentagram: its centre is covered twice, hence outside by the even-odd rule
STAR = [(0.0, 3.0), (1.8, -2.4), (-2.9, 0.9), (2.9, 0.9), (-1.8, -2.4)]


@pytest.mark.parametrize("vertices", [STAR, [(-3, -3), (3, -2), (2, 3), (-2, 2)], [(0, 0), (4, 0), (0, 4), (4, 4)]])
def test_polygon_matches_flowutils_off_the_boundary(vertices):
    ev = _events()
    ours = PolygonGate(("x", "y"), vertices).mask(ev, INDEX)
    ref = fu_gating.points_in_polygon(np.array(vertices, float), ev[:, :2].astype(float))
    assert np.array_equal(ours, ref)


def test_self_intersecting_polygon_excludes_doubly_covered_centre():
    pts = np.array([[0.0, 0.2, 0], [0.0, 2.5, 0]], dtype=np.float32)  # centre (twice covered), a tip
    assert PolygonGate(("x", "y"), STAR).mask(pts, INDEX).tolist() == [False, True]


def test_polygon_boundary_points_are_inside():
    square = PolygonGate(("x", "y"), [(0, 0), (10, 0), (10, 10), (0, 10)])
    pts = np.array([[0, 5, 0], [10, 5, 0], [5, 0, 0], [5, 10, 0], [0, 0, 0], [10, 10, 0], [10.001, 5, 0]],
                   dtype=np.float32)
    assert square.mask(pts, INDEX).tolist() == [True] * 6 + [False]
    diag = PolygonGate(("x", "y"), [(0, 0), (200000, 100000), (200000, 200000), (100000, 200000)])
    on_edges = np.array([[14.8, 7.4, 0], [111, 222, 0]], dtype=np.float32)  # as in GatingML set 2 Poly1u
    assert diag.mask(on_edges, INDEX).all()


@settings(max_examples=50, deadline=None)
@given(
    verts=st.lists(st.tuples(st.floats(-5, 5), st.floats(-5, 5)), min_size=3, max_size=9),
    seed=st.integers(0, 1000),
)
def test_polygon_agrees_with_flowutils_for_random_polygons(verts, seed):
    ev = _events(2000, seed)
    v = np.array(verts, float)
    gate = PolygonGate(("x", "y"), verts)
    ours = gate.mask(ev, INDEX)
    ref = fu_gating.points_in_polygon(v, ev[:, :2].astype(float))
    differ = np.flatnonzero(ours != ref)
    # the two may only differ on points lying exactly on an edge (inside for GatingML, not for flowutils)
    for i in differ:
        p = ev[i, :2].astype(float)
        on_edge = False
        for a, b in zip(v, np.roll(v, -1, axis=0)):
            cross = (b[0] - a[0]) * (p[1] - a[1]) - (p[0] - a[0]) * (b[1] - a[1])
            within = min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])
            on_edge |= cross == 0 and within
        assert on_edge and ours[i]


@settings(max_examples=40, deadline=None)
@given(
    verts=st.lists(st.tuples(st.integers(-20, 20), st.integers(-20, 20)), min_size=3, max_size=8),
    seed=st.integers(0, 1000),
)
def test_polygon_lookup_grid_agrees_with_the_exact_test(verts, seed):
    # integer vertices and points on a fine lattice put many events exactly on edges, vertices and
    # lookup-grid cell borders: the grid fast path must agree with the exact per-edge test everywhere
    from mrdflow.kernels.gates import _inside_polygon

    rng = np.random.default_rng(seed)
    pts = np.zeros((3000, 3), dtype=np.float32)
    pts[:, :2] = rng.integers(-84, 85, size=(3000, 2)) / 4.0
    v = np.array(verts, dtype=np.float64)
    gate = PolygonGate(("x", "y"), verts)
    exact = np.array([_inside_polygon(float(x), float(y), v[:, 0].copy(), v[:, 1].copy()) for x, y in pts[:, :2]])
    assert np.array_equal(gate.mask(pts, INDEX), exact)
    vertices = np.zeros((len(verts), 3), dtype=np.float32)
    vertices[:, :2] = v
    assert gate.mask(vertices, INDEX).all()  # vertices are on the boundary, hence inside


@pytest.mark.parametrize("dims", [("x", "y"), ("x", "y", "z")])
def test_ellipsoid_matches_flowutils(dims):
    ev = _events()
    k = len(dims)
    rng = np.random.default_rng(3)
    a = rng.normal(size=(k, k))
    cov = a @ a.T + np.eye(k)
    mean = rng.normal(size=k)
    gate = EllipsoidGate(dims, tuple(mean), tuple(map(tuple, cov)), 2.5)
    ref = fu_gating.points_in_ellipsoid(cov, mean, 2.5, ev[:, :k].astype(float))
    assert np.array_equal(gate.mask(ev, INDEX), ref)


def test_rectangle_is_half_open_and_allows_open_sides():
    ev = np.array([[1, 5, 0], [2, 5, 0], [1.5, 100, 0], [0.999, 5, 0]], dtype=np.float32)
    gate = RectangleGate(("x", "y"), (1.0, 0.0), (2.0, None))  # 1 <= x < 2, y >= 0
    assert gate.mask(ev, INDEX).tolist() == [True, False, True, False]
    assert RangeGate.on("x", None, 1.5).mask(ev, INDEX).tolist() == [True, False, False, True]


def test_parent_restricts_evaluation_and_result():
    ev = _events()
    parent = ev[:, 2] > 0
    for gate in (
        RangeGate.on("x", -1, 1),
        PolygonGate(("x", "y"), STAR),
        EllipsoidGate(("x", "y"), (0, 0), ((4, 1), (1, 2)), 1.0),
    ):
        alone = gate.mask(ev, INDEX)
        assert np.array_equal(gate.mask(ev, INDEX, parent), alone & parent)
    with pytest.raises(GateError, match=r"parent mask must be bool of shape \(20000,\)"):
        RangeGate.on("x", 0).mask(ev, INDEX, parent[:10])


def test_quadrants_partition_the_plane():
    ev = _events()
    q = QuadrantGate(
        (("x", (0.0,)), ("y", (-1.0, 1.0))),
        {f"{sx}{sy}": (lx, ly) for sx, lx in (("N", -1), ("P", 1)) for sy, ly in (("lo", -2), ("mid", 0), ("hi", 2))},
    )
    masks = q.masks(ev, INDEX)
    stacked = np.stack(list(masks.values()))
    assert np.array_equal(stacked.sum(axis=0), np.ones(len(ev)))  # every event in exactly one quadrant
    assert np.array_equal(masks["Pmid"], (ev[:, 0] >= 0) & (ev[:, 1] >= -1) & (ev[:, 1] < 1))
    assert np.array_equal(q.mask(ev, INDEX, quadrant="Nhi"), masks["Nhi"])


def test_boolean_gates_combine_operands_and_complements():
    ev = _events()
    a, b = RangeGate.on("x", 0), RangeGate.on("y", None, 1)
    ma, mb = a.mask(ev, INDEX), b.mask(ev, INDEX)
    assert np.array_equal(BooleanGate("and", (a, b)).mask(ev, INDEX), ma & mb)
    assert np.array_equal(BooleanGate("or", (a, b), (False, True)).mask(ev, INDEX), ma | ~mb)
    assert np.array_equal(BooleanGate("not", ("A",)).mask(ev, INDEX, resolved={"A": ma}), ~ma)
    parent = ev[:, 2] > 1
    assert np.array_equal(BooleanGate("not", (a,)).mask(ev, INDEX, parent), ~ma & parent)
    with pytest.raises(GateError, match="operand gate 'B' has no resolved mask"):
        BooleanGate("and", (a, "B")).mask(ev, INDEX)


def test_descriptions_round_trip():
    gates = [
        RangeGate.on("x", 0, 1),
        RectangleGate(("x", "y"), (None, 0.0), (1.0, None)),
        PolygonGate(("x", "y"), STAR),
        EllipsoidGate(("x", "y"), (0, 0), ((4, 1), (1, 2)), 1.0),
        QuadrantGate((("x", (0.0,)),), {"neg": (-1,), "pos": (1,)}),
        BooleanGate("or", (RangeGate.on("x", 0), "other"), (True, False)),
    ]
    for g in gates:
        again = gate_from_dict(g.to_dict())
        assert again == g and type(again) is type(g)


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda: PolygonGate(("x", "y"), [(0, 0), (1, 1)]), "at least 3 vertices"),
        (lambda: PolygonGate(("x",), [(0, 0), (1, 1), (2, 0)]), "exactly two dimensions"),
        (lambda: EllipsoidGate(("x", "y"), (0, 0), ((1, 1), (1, 1)), 1.0), "singular"),
        (lambda: EllipsoidGate(("x", "y"), (0, 0), ((1, 0), (0, 1)), -1.0), "distance_square must be > 0"),
        (lambda: RectangleGate(("x",), (None,), (None,)), "neither min nor max"),
        (lambda: RectangleGate(("x",), (2.0,), (1.0,)), "min < max"),
        (lambda: BooleanGate("xor", ("a", "b")), "op must be one of"),
        (lambda: BooleanGate("not", ("a", "b")), "exactly one operand"),
        (lambda: gate_from_dict({"type": "blob"}), "unknown gate type 'blob'"),
    ],
)
def test_invalid_geometry_is_rejected(make, message):
    with pytest.raises(GateError, match=message):
        make()


def test_missing_dimension_is_named():
    with pytest.raises(GateError, match=r"dimension\(s\) \['CD38'\] not found"):
        RangeGate.on("CD38", 0).mask(_events(10), INDEX)
