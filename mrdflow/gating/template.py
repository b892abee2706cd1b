"""Gating template YAML → validated population tree (:class:`Template`).

A template is a mapping ``populations:`` of named nodes, evaluated top-down from the implicit ``root`` (all
events of the tube). Each node has

``parent``   a population name or ``root`` (default);
``dims``     dimension names: panel **markers** (``CD38``) or scatter/time $PnN (``FSC-A``, ``Time``);
exactly one of
``gate``     a fixed gate in transformed units — ``{type: range, min: a, max: b}`` (1 dim; either bound may be
             ``null``), ``{type: rectangle, min: [...], max: [...]}`` (n dims), ``{type: polygon, vertices:
             [[x, y], ...]}`` (2 dims, ≥ 3 vertices), ``{type: ellipse, mean: [...], covariance: [[...]],
             distance_square: d2}`` (≥ 2 dims), ``{type: quadrant, dividers: [x, y], quadrant: "+-"}`` (2 dims;
             ``+`` = at or above the divider);
``method``   an adaptive method (:mod:`mrdflow.gating.adaptive`) with ``args:``;
``boolean``  an expression over other populations with ``and``, ``or``, ``not`` and parentheses
             (``"cd19_neg or cd56_pos"``), evaluated within the parent;
and optionally ``roles`` (what downstream code reads: ``evaluable``, ``plasma_cell``, ``aberrant_pc``, ...),
``description``, and ``optional: true`` — a QC step (e.g. the FSC-A/FSC-H singlet gate) that, on a file lacking
one of its dimensions, passes every parent event on instead of failing the file (the analysis says so).

Every mistake is a :class:`~mrdflow.errors.TemplateError` naming the file, the node, the field and its line.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from mrdflow._yamlio import load_yaml
from mrdflow.errors import TemplateError
from mrdflow.gating.adaptive import METHODS

__all__ = ["Template", "Node", "load_template", "template_from_dict", "parse_boolean", "KNOWN_ROLES", "ROOT"]

ROOT = "root"

#: roles downstream code (mrd.py, qc/) understands
KNOWN_ROLES = frozenset({
    "evaluable", "plasma_cell", "normal_pc", "aberrant_pc", "normal_pc_reference", "kappa", "lambda",
    "mast_cell", "bcp", "nrbc", "myeloid_precursor", "neutrophil", "immature_granulocyte", "lymphocyte",
    "monocyte", "singlet", "margin_ok", "time_ok", "debris",
    # internal reference populations of the plasma-cell phenotype (mrdflow.pipeline)
    "t_cell", "nk_cell", "b_cell", "granulocyte",
})

_GATE_FIELDS: dict[str, tuple[set[str], tuple[int, int | None]]] = {
    "range": ({"min", "max"}, (1, 1)),
    "rectangle": ({"min", "max"}, (1, None)),
    "polygon": ({"vertices"}, (2, 2)),
    "ellipse": ({"mean", "covariance", "distance_square"}, (2, None)),
    "quadrant": ({"dividers", "quadrant"}, (2, 2)),
}
_NODE_FIELDS = {"parent", "dims", "gate", "method", "args", "boolean", "roles", "description", "optional"}
#: population names are GatingML ids (xs:ID), so they can be exported as they are
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-.]*$")


@dataclass(frozen=True)
class Node:
    """One population. ``kind`` is ``gate``, ``method`` or ``boolean``; ``depth`` counts from root (= 0)."""

    name: str
    parent: str
    dims: tuple[str, ...]
    kind: str
    gate: dict | None = None
    method: str | None = None
    args: dict = field(default_factory=dict)
    boolean: Any = None
    roles: tuple[str, ...] = ()
    description: str = ""
    depth: int = 1
    optional: bool = False

    def references(self) -> list[str]:
        """Other populations this node needs besides its parent (boolean operands, reference populations)."""
        if self.kind == "boolean":
            return _names_in(self.boolean)
        if self.kind == "method" and self.method == "reference_distance" and self.args.get("reference"):
            return [self.args["reference"]]
        return []


@dataclass(frozen=True)
class Template:
    """A validated gating template; ``nodes`` are in evaluation order (parents and references first)."""

    name: str
    nodes: dict[str, Node]
    source: Path | None = None

    def children(self, name: str) -> list[str]:
        return [n.name for n in self.nodes.values() if n.parent == name]

    def by_role(self, role: str) -> list[str]:
        """Names of the populations carrying ``role`` (evaluation order)."""
        return [n.name for n in self.nodes.values() if role in n.roles]

    def without_dims(self, missing: "set[str] | frozenset[str]") -> tuple["Template", list[str]]:
        """This template without the populations that need a dimension in ``missing``.

        A population is dropped when one of its own dims is missing, when its parent is dropped, or when it
        refers to a dropped population (boolean operand, reference). Used for a tube that lacks some of the
        template's markers (NGF tube 2 has no CD117/CD81, tube 1 no cytoplasmic light chains). Returns the
        reduced template and the names dropped (template order).
        """
        missing = set(missing)
        dropped: set[str] = set()
        for name, node in self.nodes.items():  # evaluation order: parents and references come first
            if (set(node.dims) & missing or (node.parent != ROOT and node.parent in dropped)
                    or any(r in dropped for r in node.references())):
                dropped.add(name)
        if not dropped:
            return self, []
        kept = {n: node for n, node in self.nodes.items() if n not in dropped}
        return (Template(name=self.name, nodes=kept, source=self.source),
                [n for n in self.nodes if n in dropped])

    def passing_through(self, missing: "set[str] | frozenset[str]") -> tuple["Template", list[str]]:
        """This template with every ``optional`` population that needs a dimension in ``missing`` turned into a
        step that keeps all of its parent's events (a boolean of the parent alone); returns the template and the
        names so changed. A top-level optional population cannot pass through and is left as it is."""
        missing = set(missing)
        changed = [n for n, node in self.nodes.items()
                   if node.optional and node.parent != ROOT and set(node.dims) & missing]
        if not changed:
            return self, []
        nodes = {n: (Node(name=n, parent=node.parent, dims=(), kind="boolean", boolean=("ref", node.parent),
                          roles=node.roles, description=f"{node.description} [passed through: dimension(s) "
                          f"{', '.join(d for d in node.dims if d in missing)} missing]".strip(),
                          depth=node.depth, optional=True)
                     if n in changed else node) for n, node in self.nodes.items()}
        return Template(name=self.name, nodes=nodes, source=self.source), changed

    def dims(self) -> list[str]:
        """Every dimension any node uses (first-use order)."""
        seen: dict[str, None] = {}
        for n in self.nodes.values():
            for d in n.dims:
                seen.setdefault(d, None)
        return list(seen)


def parse_boolean(expr: str) -> Any:
    """Parse ``a and not (b or c)`` into nested tuples ``("and", [...])`` / ``("or", [...])`` / ``("not", x)``
    / ``("ref", name)``; ``not`` binds tightest, then ``and``, then ``or``. Raises ``ValueError``."""
    tokens = re.findall(r"\(|\)|[^\s()]+", expr)
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def parse_or():
        items = [parse_and()]
        while peek() is not None and peek().lower() == "or":
            take()
            items.append(parse_and())
        return items[0] if len(items) == 1 else ("or", items)

    def parse_and():
        items = [parse_not()]
        while peek() is not None and peek().lower() == "and":
            take()
            items.append(parse_not())
        return items[0] if len(items) == 1 else ("and", items)

    def parse_not():
        if peek() is not None and peek().lower() == "not":
            take()
            return ("not", parse_not())
        return parse_atom()

    def parse_atom():
        tok = peek()
        if tok is None:
            raise ValueError("expression ends too early (expected a population name)")
        if tok == "(":
            take()
            inner = parse_or()
            if take_if(")") is None:
                raise ValueError("missing ')'")
            return inner
        if tok == ")" or tok.lower() in {"and", "or", "not"}:
            raise ValueError(f"expected a population name, found {tok!r}")
        take()
        return ("ref", tok)

    def take_if(tok):
        return take() if peek() == tok else None

    if not expr.strip():
        raise ValueError("empty expression")
    tree = parse_or()
    if peek() is not None:
        raise ValueError(f"unexpected {peek()!r} after a complete expression")
    return tree


def _names_in(tree: Any) -> list[str]:
    if tree[0] == "ref":
        return [tree[1]]
    if tree[0] == "not":
        return _names_in(tree[1])
    return [n for item in tree[1] for n in _names_in(item)]


class _Ctx:
    def __init__(self, source: str, line_of):
        self.source = source
        self.line_of = line_of or (lambda loc: None)

    def error(self, node: str | None, fieldname: str | None, message: str) -> TemplateError:
        loc = ["populations", node] + ([fieldname] if fieldname else []) if node else ([fieldname] if fieldname else [])
        line = self.line_of(loc)
        where = f" line {line}" if line else ""
        what = f"population {node!r}" if node else "template"
        fld = f", field '{fieldname}'" if fieldname else ""
        return TemplateError(f"{self.source}{where}: {what}{fld}: {message}")


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_gate(ctx: _Ctx, name: str, gate: Any, n_dims: int) -> dict:
    if not isinstance(gate, dict) or "type" not in gate:
        raise ctx.error(name, "gate", f"expected a mapping with 'type' (one of {', '.join(_GATE_FIELDS)}), "
                                      f"found {gate!r}")
    kind = gate["type"]
    if kind not in _GATE_FIELDS:
        raise ctx.error(name, "gate", f"unknown gate type {kind!r}; expected one of {', '.join(_GATE_FIELDS)}"
                                      + _suggest(str(kind), _GATE_FIELDS))
    need, (lo, hi) = _GATE_FIELDS[kind]
    extra = set(gate) - need - {"type"}
    if extra:
        raise ctx.error(name, "gate", f"unknown field(s) {', '.join(sorted(extra))} for a {kind} gate "
                                      f"(expected {', '.join(sorted(need))})")
    missing = need - set(gate) - ({"min", "max"} if kind in ("range", "rectangle") else set())
    if missing:
        raise ctx.error(name, "gate", f"a {kind} gate needs {', '.join(sorted(missing))}")
    if n_dims < lo or (hi is not None and n_dims > hi):
        want = str(lo) if lo == hi else f"at least {lo}"
        raise ctx.error(name, "dims", f"a {kind} gate needs {want} dimension(s), found {n_dims}")
    g = dict(gate)
    if kind == "range":
        for b in ("min", "max"):
            if g.get(b) is not None and not _is_num(g[b]):
                raise ctx.error(name, "gate", f"{b} must be a number or null, found {g[b]!r}")
        g.setdefault("min", None), g.setdefault("max", None)
        if g["min"] is None and g["max"] is None:
            raise ctx.error(name, "gate", "a range gate needs min, max or both")
        if g["min"] is not None and g["max"] is not None and not g["min"] < g["max"]:
            raise ctx.error(name, "gate", f"min ({g['min']}) must be smaller than max ({g['max']})")
    elif kind == "rectangle":
        for b in ("min", "max"):
            v = g.get(b, [None] * n_dims)
            if not isinstance(v, list) or len(v) != n_dims or not all(e is None or _is_num(e) for e in v):
                raise ctx.error(name, "gate", f"{b} must be a list of {n_dims} numbers or nulls (one per "
                                              f"dimension), found {v!r}")
            g[b] = v
        for a, b in zip(g["min"], g["max"]):
            if a is not None and b is not None and not a < b:
                raise ctx.error(name, "gate", f"each min must be smaller than its max, found {a} ≥ {b}")
    elif kind == "polygon":
        v = g["vertices"]
        if not isinstance(v, list) or len(v) < 3 or not all(
                isinstance(p, list) and len(p) == 2 and all(_is_num(c) for c in p) for p in v):
            raise ctx.error(name, "gate", f"vertices must be a list of at least 3 [x, y] pairs, found {v!r}")
    elif kind == "ellipse":
        import numpy as np
        mean, cov, d2 = g["mean"], g["covariance"], g["distance_square"]
        try:
            m, c = np.asarray(mean, float), np.asarray(cov, float)
        except (TypeError, ValueError):
            raise ctx.error(name, "gate", "mean and covariance must be numbers") from None
        if m.shape != (n_dims,) or c.shape != (n_dims, n_dims):
            raise ctx.error(name, "gate", f"an ellipse on {n_dims} dims needs a mean of {n_dims} numbers and a "
                                          f"{n_dims}×{n_dims} covariance, found shapes {m.shape} and {c.shape}")
        if not np.allclose(c, c.T) or np.any(np.linalg.eigvalsh(c) <= 0):
            raise ctx.error(name, "gate", "covariance must be symmetric positive definite")
        if not _is_num(d2) or d2 <= 0:
            raise ctx.error(name, "gate", f"distance_square must be a positive number, found {d2!r}")
    elif kind == "quadrant":
        dv, q = g["dividers"], g["quadrant"]
        if not isinstance(dv, list) or len(dv) != 2 or not all(_is_num(e) for e in dv):
            raise ctx.error(name, "gate", f"dividers must be [x, y] numbers, found {dv!r}")
        if q not in ("++", "+-", "-+", "--"):
            raise ctx.error(name, "gate", f"quadrant must be one of '++', '+-', '-+', '--' (x sign then y sign), "
                                          f"found {q!r}")
    return g


def template_from_dict(data: Mapping[str, Any], *, source: str | Path = "<template>", line_of=None) -> Template:
    """Validate a template given as a plain mapping (see the module docstring for the schema)."""
    ctx = _Ctx(str(source), line_of)
    extra = set(data) - {"name", "description", "version", "populations"}
    if extra:
        key = sorted(extra)[0]
        raise ctx.error(None, key, "unknown top-level field (expected name, description, version, populations)"
                        + _suggest(key, ["name", "description", "version", "populations"]))
    pops = data.get("populations")
    if not isinstance(pops, dict) or not pops:
        raise ctx.error(None, "populations", f"expected a non-empty mapping of population name → node, "
                                             f"found {pops!r}")
    raw: dict[str, Node] = {}
    for name, spec in pops.items():
        name = str(name)
        if name.lower() == ROOT or name.lower() in {"and", "or", "not"} or not _NAME_RE.match(name):
            raise ctx.error(name, None, "invalid population name (expected letters, digits, _ - . starting "
                                        "with a letter or _ — names become GatingML ids — and not 'root', 'and', "
                                        "'or', 'not')")
        if not isinstance(spec, dict):
            raise ctx.error(name, None, f"expected a mapping of fields, found {spec!r}")
        unknown = set(spec) - _NODE_FIELDS
        if unknown:
            key = sorted(unknown)[0]
            raise ctx.error(name, key, f"unknown field (expected {', '.join(sorted(_NODE_FIELDS))})"
                            + _suggest(key, _NODE_FIELDS))
        kinds = [k for k in ("gate", "method", "boolean") if k in spec]
        if len(kinds) != 1:
            found = ", ".join(kinds) if kinds else "none"
            raise ctx.error(name, kinds[1] if len(kinds) > 1 else None,
                            f"expected exactly one of 'gate', 'method' or 'boolean', found {found}")
        kind = kinds[0]
        parent = spec.get("parent", ROOT)
        if not isinstance(parent, str):
            raise ctx.error(name, "parent", f"expected a population name, found {parent!r}")
        dims = spec.get("dims", [])
        if kind != "boolean":
            if not isinstance(dims, list) or not dims or not all(isinstance(d, str) and d for d in dims):
                raise ctx.error(name, "dims", f"expected a non-empty list of marker/parameter names, found {dims!r}")
            if len(set(d.casefold() for d in dims)) != len(dims):
                raise ctx.error(name, "dims", f"a dimension is repeated in {dims!r}")
        elif "dims" in spec:
            raise ctx.error(name, "dims", "a boolean population has no dimensions (remove 'dims')")
        roles = spec.get("roles", [])
        if isinstance(roles, str):
            roles = [roles]
        if not isinstance(roles, list):
            raise ctx.error(name, "roles", f"expected a list of roles, found {roles!r}")
        for r in roles:
            if r not in KNOWN_ROLES:
                raise ctx.error(name, "roles", f"unknown role {r!r}; expected one of {', '.join(sorted(KNOWN_ROLES))}"
                                + _suggest(str(r), KNOWN_ROLES))
        args = spec.get("args", {}) or {}
        if "args" in spec and kind != "method":
            raise ctx.error(name, "args", "'args' only goes with 'method'")
        node_kw: dict[str, Any] = {}
        if kind == "gate":
            node_kw["gate"] = _check_gate(ctx, name, spec["gate"], len(dims))
        elif kind == "method":
            method = spec["method"]
            if method not in METHODS:
                raise ctx.error(name, "method", f"unknown adaptive method {method!r}; expected one of "
                                f"{', '.join(METHODS)}" + _suggest(str(method), METHODS))
            if not isinstance(args, dict):
                raise ctx.error(name, "args", f"expected a mapping of argument → value, found {args!r}")
            cls = METHODS[method]
            allowed = cls.param_names()
            bad = [a for a in args if a not in allowed]
            if bad:
                raise ctx.error(name, "args", f"unknown argument {bad[0]!r} for method {method} (expected some of "
                                f"{', '.join(allowed)})" + _suggest(str(bad[0]), allowed))
            try:
                cls(**args).validate(len(dims))
            except ValueError as exc:
                field_name = "dims" if "dimension(s)" in str(exc) else "args"
                raise ctx.error(name, field_name, f"{method}: {exc}") from None
            node_kw.update(method=method, args=dict(args))
        else:
            expr = spec["boolean"]
            if not isinstance(expr, str):
                raise ctx.error(name, "boolean", f"expected an expression string like 'a and not b', found {expr!r}")
            try:
                node_kw["boolean"] = parse_boolean(expr)
            except ValueError as exc:
                raise ctx.error(name, "boolean", f"cannot parse {expr!r}: {exc}") from None
        optional = spec.get("optional", False)
        if not isinstance(optional, bool):
            raise ctx.error(name, "optional", f"expected true or false, found {optional!r}")
        if optional and (kind == "boolean" or parent == ROOT):
            raise ctx.error(name, "optional", "only a gate or method population with a parent can be optional "
                                              "(it then passes its parent's events on when a dimension is missing)")
        raw[name] = Node(name=name, parent=parent, dims=tuple(dims), kind=kind, roles=tuple(roles),
                         description=str(spec.get("description", "")), optional=optional, **node_kw)

    # references: parents and operands must exist
    for node in raw.values():
        if node.parent != ROOT and node.parent not in raw:
            raise ctx.error(node.name, "parent", f"parent {node.parent!r} is not a population of this template "
                            f"(expected 'root' or one of {', '.join(raw)})" + _suggest(node.parent, raw))
        if node.parent == node.name:
            raise ctx.error(node.name, "parent", "a population cannot be its own parent")
        for ref in node.references():
            if ref not in raw:
                fld = "boolean" if node.kind == "boolean" else "args"
                raise ctx.error(node.name, fld, f"refers to population {ref!r}, which is not in this template"
                                + _suggest(ref, raw))
            if ref == node.name:
                raise ctx.error(node.name, "boolean" if node.kind == "boolean" else "args",
                                "a population cannot refer to itself")

    order = _evaluation_order(ctx, raw)
    nodes: dict[str, Node] = {}
    for name in order:
        n = raw[name]
        depth = 1 if n.parent == ROOT else nodes[n.parent].depth + 1
        nodes[name] = Node(**{**n.__dict__, "depth": depth})
    return Template(name=str(data.get("name", Path(str(source)).stem)), nodes=nodes,
                    source=Path(source) if str(source) != "<template>" else None)


def _evaluation_order(ctx: _Ctx, raw: dict[str, Node]) -> list[str]:
    """Template order, moved only as needed so that parents and referenced populations come first."""
    deps = {n: ([raw[n].parent] if raw[n].parent != ROOT else []) + raw[n].references() for n in raw}
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(n: str, path: list[str]):
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            cycle = path[path.index(n):] + [n]
            raise ctx.error(n, "parent", f"cycle in the population tree: {' → '.join(cycle)} (expected a tree "
                                         "rooted at 'root')")
        state[n] = 1
        for d in deps[n]:
            visit(d, path + [n])
        state[n] = 2
        order.append(n)

    for n in raw:
        visit(n, [])
    return order


def load_template(path: str | Path) -> Template:
    """Read and validate a gating template YAML file; raises :class:`TemplateError` naming file, node, field."""
    doc = load_yaml(path, TemplateError, "gating template")
    return template_from_dict(doc.data, source=doc.path, line_of=doc.line_of)
