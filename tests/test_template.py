"""Gating templates: the tree, evaluation order, boolean expressions, and one clear error per mistake."""

from __future__ import annotations

import copy
import textwrap

import pytest
import yaml

from mrdflow.errors import TemplateError
from mrdflow.gating.template import load_template, parse_boolean, template_from_dict

GOOD = textwrap.dedent("""\
    name: demo
    populations:
      singlets:
        dims: [FSC-A, FSC-H]
        method: singlet
        args: {k: 4}
        roles: [singlet]
      cells:
        parent: singlets
        dims: [FSC-A, SSC-A]
        gate: {type: polygon, vertices: [[0.1, 0], [1, 0], [1, 0.8], [0.1, 0.8]]}
        roles: [evaluable]
      aberrant:
        parent: pc
        dims: [CD19, CD56]
        method: reference_distance
        args: {reference: normal, quantile: 0.999}
        roles: [aberrant_pc]
      pc:
        parent: cells
        dims: [CD38, CD138]
        gate: {type: rectangle, min: [0.6, 0.4], max: [null, null]}
        roles: [plasma_cell]
      normal:
        parent: pc
        dims: [CD19, CD56]
        gate: {type: quadrant, dividers: [0.4, 0.4], quadrant: "+-"}
        roles: [normal_pc_reference]
      odd:
        parent: pc
        boolean: "not normal and (aberrant or normal)"
    """)


def test_good_template_orders_parents_and_references_first(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text(GOOD)
    t = load_template(p)
    order = list(t.nodes)
    assert order.index("pc") < order.index("aberrant") and order.index("normal") < order.index("aberrant")
    assert t.nodes["aberrant"].depth == 4 and t.nodes["singlets"].depth == 1
    assert t.by_role("plasma_cell") == ["pc"] and t.children("pc") == ["normal", "aberrant", "odd"]
    assert t.nodes["odd"].references() == ["normal", "aberrant", "normal"]


def test_boolean_precedence():
    assert parse_boolean("a or not b and c") == ("or", [("ref", "a"), ("and", [("not", ("ref", "b")), ("ref", "c")])])
    assert parse_boolean("not (a or b)") == ("not", ("or", [("ref", "a"), ("ref", "b")]))


def _edit(path, value):
    def f(d):
        d = copy.deepcopy(d)
        *head, last = path
        target = d
        for k in head:
            target = target[k]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value
        return d
    return f


_DELETE = object()
P = "populations"

# (mistake, edit of the parsed GOOD template, fragments of the one error)
TEMPLATE_MISTAKES = [
    ("missing parent", _edit([P, "pc", "parent"], "cels"), ["'pc'", "'parent'", "'cels' is not a population",
                                                            "did you mean 'cells'"]),
    ("cycle", _edit([P, "singlets", "parent"], "pc"), ["cycle in the population tree", "→"]),
    ("own parent", _edit([P, "cells", "parent"], "cells"), ["cannot be its own parent"]),
    ("wrong dims for polygon", _edit([P, "cells", "dims"], ["FSC-A"]), ["'cells'", "'dims'", "polygon gate needs 2"]),
    ("wrong dims for singlet", _edit([P, "singlets", "dims"], ["FSC-A"]), ["'singlets'", "'dims'", "needs 2 dimension"]),
    ("unknown method", _edit([P, "singlets", "method"], "singlett"), ["'method'", "unknown adaptive method",
                                                                       "did you mean 'singlet'"]),
    ("unknown argument", _edit([P, "singlets", "args"], {"nmad": 4}), ["'args'", "unknown argument 'nmad'",
                                                                        "expected some of k, k_low"]),
    ("bad argument value", _edit([P, "singlets", "args"], {"k": -1}), ["'args'", "k must be a positive number"]),
    ("unknown gate type", _edit([P, "pc", "gate"], {"type": "box"}), ["'gate'", "unknown gate type 'box'"]),
    ("rectangle bounds wrong length", _edit([P, "pc", "gate", "min"], [0.6]), ["'gate'", "list of 2 numbers"]),
    ("both gate and method", _edit([P, "pc", "method"], "tail"), ["'pc'", "exactly one of 'gate', 'method' or 'boolean'"]),
    ("no gate at all", _edit([P, "pc", "gate"], _DELETE), ["'pc'", "exactly one of", "found none"]),
    ("unknown node field", _edit([P, "pc", "rolse"], ["x"]), ["'rolse'", "unknown field", "did you mean 'roles'"]),
    ("unknown role", _edit([P, "pc", "roles"], ["plasmacell"]), ["'roles'", "unknown role 'plasmacell'",
                                                                 "did you mean 'plasma_cell'"]),
    ("boolean syntax", _edit([P, "odd", "boolean"], "normal and"), ["'boolean'", "cannot parse", "ends too early"]),
    ("boolean unknown operand", _edit([P, "odd", "boolean"], "normal or ghost"), ["'boolean'", "'ghost'"]),
    ("unknown reference population", _edit([P, "aberrant", "args", "reference"], "normals"),
     ["'args'", "'normals'", "did you mean 'normal'"]),
    ("polygon with two vertices", _edit([P, "cells", "gate", "vertices"], [[0, 0], [1, 1]]), ["at least 3"]),
    ("empty dims", _edit([P, "pc", "dims"], []), ["'dims'", "non-empty list"]),
    ("no populations", _edit([P], {}), ["'populations'", "non-empty mapping"]),
    ("unknown top-level field", _edit(["populatons"], {}), ["'populatons'", "unknown top-level field"]),
    ("reserved name", _edit([P, "root"], {"dims": ["x"], "gate": {"type": "range", "min": 0}}), ["invalid population name"]),
    ("name not a GatingML id", _edit([P, "CD38+"], {"dims": ["x"], "gate": {"type": "range", "min": 0}}),
     ["'CD38+'", "invalid population name", "GatingML ids"]),
    ("range min above max", _edit([P, "cells", "gate"], {"type": "range", "min": 1, "max": 0}), ["'gate'"]),
    ("cluster target wrong length", _edit([P, "pc"], {"parent": "cells", "dims": ["CD38", "CD138"],
                                                       "method": "cluster", "args": {"target": [1]}}),
     ["'args'", "target has 1 coordinate(s), expected 2"]),
    ("optional not a boolean", _edit([P, "cells", "optional"], "yes"), ["'cells'", "'optional'", "true or false"]),
    ("optional at the top", _edit([P, "singlets", "optional"], True), ["'singlets'", "'optional'", "with a parent"]),
    ("optional boolean", _edit([P, "odd", "optional"], True), ["'odd'", "'optional'", "gate or method"]),
    ("reference and model both", _edit([P, "aberrant", "args", "model"], {"mean": [0, 0], "covariance": [[1, 0], [0, 1]]}),
     ["exactly one of 'reference'"]),
]


@pytest.mark.parametrize("mistake,edit,fragments", TEMPLATE_MISTAKES, ids=[m[0] for m in TEMPLATE_MISTAKES])
def test_template_mistake_gives_one_clear_error(tmp_path, mistake, edit, fragments):
    data = edit(yaml.safe_load(GOOD))
    if mistake == "range min above max":
        data[P]["cells"]["dims"] = ["FSC-A"]
    p = tmp_path / "tmpl.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(TemplateError) as info:
        load_template(p)
    msg = str(info.value)
    assert msg.startswith(str(p)), msg
    for frag in fragments:
        assert frag in msg, f"{mistake}: {frag!r} not in {msg!r}"


def test_yaml_level_mistakes(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text(GOOD.replace("  pc:\n", "  cells:\n", 1))
    with pytest.raises(TemplateError, match=r"line \d+.*duplicate key 'cells'"):
        load_template(p)
    p.write_text("populations: {a: [}\n")
    with pytest.raises(TemplateError, match="invalid YAML in the gating template"):
        load_template(p)


def test_error_points_at_the_line(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text(GOOD.replace("method: singlet", "method: singlett"))
    with pytest.raises(TemplateError, match=r"t.yaml line 5: population 'singlets', field 'method'"):
        load_template(p)


def test_dict_api_without_file():
    t = template_from_dict(yaml.safe_load(GOOD))
    assert t.source is None and len(t.nodes) == 6


# --- property: printing any expression tree and parsing it back gives the same tree -------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_names = st.sampled_from(["a", "b_1", "CD38pos", "pc.normal", "x-y"]).map(lambda n: ("ref", n))
_trees = st.recursive(
    _names,
    lambda sub: st.one_of(sub.map(lambda t: ("not", t)),
                          st.tuples(st.sampled_from(["and", "or"]), st.lists(sub, min_size=2, max_size=3))),
    max_leaves=8,
)


def _flatten(tree):
    """Canonical form: nested and/or of the same operator merge (the parser builds flat n-ary nodes)."""
    if tree[0] == "ref":
        return tree
    if tree[0] == "not":
        return ("not", _flatten(tree[1]))
    items = []
    for item in map(_flatten, tree[1]):
        items.extend(item[1] if item[0] == tree[0] else [item])
    return (tree[0], items)


def _render(tree):
    if tree[0] == "ref":
        return tree[1]
    if tree[0] == "not":
        return f"not ({_render(tree[1])})"
    return f" {tree[0].upper() if len(tree[1]) % 2 else tree[0]} ".join(f"({_render(t)})" for t in tree[1])


@settings(max_examples=200, deadline=None)
@given(_trees)
def test_boolean_parser_round_trip(tree):
    assert _flatten(parse_boolean(_render(tree))) == _flatten(tree)


def test_an_optional_step_lacking_a_dimension_passes_its_parents_events_on():
    data = yaml.safe_load(GOOD)
    data[P]["cells"]["optional"] = True
    t = template_from_dict(data)
    assert t.nodes["cells"].optional and not t.nodes["pc"].optional
    same, none = t.passing_through({"CD19"})  # cells needs FSC-A and SSC-A only
    assert same is t and none == []
    passed, changed = t.passing_through({"SSC-A"})
    assert changed == ["cells"]
    node = passed.nodes["cells"]
    assert node.kind == "boolean" and node.boolean == ("ref", "singlets") and node.dims == ()
    assert node.roles == ("evaluable",) and "SSC-A missing" in node.description
    assert list(passed.nodes) == list(t.nodes) and passed.nodes["pc"] is t.nodes["pc"]
    assert "SSC-A" not in passed.dims()
