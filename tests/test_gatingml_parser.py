"""Gating-ML parsing as a property: random documents give the memberships computed directly with numpy."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from flowutils import gating as fu_gating
from hypothesis import given, settings
from hypothesis import strategies as st

from mrdflow.gating.gatingml import evaluate_gatingml, read_gatingml
from mrdflow.transforms import Asinh, Logicle

HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<gating:Gating-ML xmlns:gating="http://www.isac-net.org/std/Gating-ML/v2.0/gating" '
    'xmlns:transforms="http://www.isac-net.org/std/Gating-ML/v2.0/transformations" '
    'xmlns:data-type="http://www.isac-net.org/std/Gating-ML/v2.0/datatypes">\n'
)
CHANNELS = ["FSC-A", "SSC-A", "FL1-A", "FL2-A"]


def _fcs(seed: int, spill: np.ndarray | None = None):
    rng = np.random.default_rng(seed)
    events = rng.uniform(-1000, 60000, size=(3000, 4)).astype(np.float32)
    channels = [SimpleNamespace(name=c, marker=None) for c in CHANNELS]
    spillover = None
    if spill is not None:
        spillover = SimpleNamespace(channels=["FL1-A", "FL2-A"], matrix=spill, source="test",
                                    inverse=lambda: np.linalg.inv(spill))
    return SimpleNamespace(path="memory", events=events, channels=channels, spillover=spillover)


def _dim(name: str, comp: str = "uncompensated", xform: str | None = None, lo=None, hi=None) -> str:
    attrs = f'gating:compensation-ref="{comp}"'
    if xform:
        attrs += f' gating:transformation-ref="{xform}"'
    if lo is not None:
        attrs += f' gating:min="{lo!r}"'
    if hi is not None:
        attrs += f' gating:max="{hi!r}"'
    return f'<gating:dimension {attrs}><data-type:fcs-dimension data-type:name="{name}"/></gating:dimension>'


bounds = st.tuples(st.one_of(st.none(), st.floats(-500, 30000)), st.one_of(st.none(), st.floats(-500, 60000)))


@settings(max_examples=40, deadline=None)
@given(
    b1=bounds,
    b2=bounds,
    verts=st.lists(st.tuples(st.floats(-1000, 60000), st.floats(-1000, 60000)), min_size=3, max_size=7),
    seed=st.integers(0, 100),
    parent_first=st.booleans(),
)
def test_random_rectangles_polygons_and_booleans_parse_and_evaluate(tmp_path_factory, b1, b2, verts, seed,
                                                                   parent_first):
    dims = []
    for name, (lo, hi) in (("FSC-A", b1), ("FL1-A", b2)):
        if lo is None and hi is None:
            continue
        if lo is not None and hi is not None and not lo < hi:
            lo, hi = None, hi
        dims.append((name, lo, hi))
    rect = "".join(_dim(n, lo=lo, hi=hi) for n, lo, hi in dims) or _dim("SSC-A", lo=0.0)
    poly_vertices = "".join(
        f'<gating:vertex><gating:coordinate data-type:value="{x!r}"/>'
        f'<gating:coordinate data-type:value="{y!r}"/></gating:vertex>' for x, y in verts
    )
    poly = f'<gating:PolygonGate gating:id="P">{_dim("FL1-A")}{_dim("FL2-A")}{poly_vertices}</gating:PolygonGate>'
    body = [
        f'<gating:RectangleGate gating:id="R">{rect}</gating:RectangleGate>',
        poly.replace('gating:id="P"', 'gating:id="P" gating:parent_id="R"'),
        '<gating:BooleanGate gating:id="B"><gating:or><gating:gateReference gating:ref="R"/>'
        '<gating:gateReference gating:ref="P" gating:use-as-complement="true"/></gating:or></gating:BooleanGate>',
    ]
    if not parent_first:
        body.reverse()  # document order must not matter
    path = tmp_path_factory.mktemp("gml") / "doc.xml"
    path.write_text(HEAD + "\n".join(body) + "\n</gating:Gating-ML>")

    fcs = _fcs(seed)
    ev = fcs.events.astype(np.float64)
    res = evaluate_gatingml(path, fcs)

    r = np.ones(len(ev), dtype=bool)
    if dims:
        for name, lo, hi in dims:
            col = ev[:, CHANNELS.index(name)]
            if lo is not None:
                r &= col >= lo
            if hi is not None:
                r &= col < hi
    else:
        r &= ev[:, 1] >= 0
    assert np.array_equal(res["R"], r)
    poly_ref = fu_gating.points_in_polygon(np.array(verts, dtype=np.float64), ev[:, [2, 3]])
    # flowutils leaves points lying exactly on an edge out; random float data practically never does
    assert np.array_equal(res["P"], poly_ref & r)
    assert np.array_equal(res["B"], r | ~res["P"])


def test_transforms_and_compensation_refs_are_applied(tmp_path):
    spill = np.array([[1.0, 0.1], [0.05, 1.0]])
    fcs = _fcs(3, spill)
    doc = HEAD + (
        '<transforms:transformation transforms:id="L"><transforms:logicle transforms:T="262144" '
        'transforms:W="0.5" transforms:M="4.5" transforms:A="0"/></transforms:transformation>'
        '<transforms:transformation transforms:id="S" transforms:boundMax="0.5"><transforms:fasinh '
        'transforms:T="262144" transforms:M="4.5" transforms:A="0"/></transforms:transformation>'
        f'<gating:RectangleGate gating:id="G">{_dim("FL1-A", "FCS", "L", 0.3, 0.7)}'
        f'{_dim("FL2-A", "uncompensated", "S", 0.2, 0.5)}</gating:RectangleGate>'
    ) + "</gating:Gating-ML>"
    path = tmp_path / "t.xml"
    path.write_text(doc)
    ev = fcs.events.astype(np.float64)
    comp = ev[:, 2:4] @ np.linalg.inv(spill)
    fl1 = Logicle(262144, 0.5, 4.5, 0).apply(comp[:, 0])
    fl2 = np.minimum(Asinh(262144, 4.5, 0).apply(ev[:, 3]), 0.5)  # boundMax clips, so max=0.5 excludes
    expected = (fl1 >= 0.3) & (fl1 < 0.7) & (fl2 >= 0.2) & (fl2 < 0.5)
    assert np.array_equal(evaluate_gatingml(path, fcs)["G"], expected)
    gate = read_gatingml(path).gates["G"]
    assert [d.compensation for d in gate.dimensions] == ["FCS", "uncompensated"]
    assert [d.transformation for d in gate.dimensions] == ["L", "S"]
