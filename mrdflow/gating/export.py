"""GatingML 2.0 export of one sample's resolved gates, through FlowKit.

Every population becomes a GatingML gate over the file's $PnN channels, with the compensation matrix and the
per-channel transforms the events were scaled with, so any GatingML 2.0 reader (FlowKit, FlowJo, Cytobank…)
reproduces our populations on the same file. Adaptive gates are exported as the fixed geometry they chose on
this sample. Two shapes have no direct GatingML form and get helper gates (named ``<population>__...``, under
the same parent): a boolean ``not`` of a geometric gate (e.g. ``reference_distance`` with ``side: outside``)
and boolean operands that are themselves expressions.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import IO, Any, Sequence

from mrdflow.errors import GateError
from mrdflow.gating.engine import GatingResult
from mrdflow.gating.gates import BooleanGate, EllipsoidGate, Gate, PolygonGate, RectangleGate
from mrdflow.gating.template import ROOT

__all__ = ["to_gating_strategy", "export_gatingml"]

_COMP_ID = "mrdflow_spillover"


def _fk_transform(t: Any):
    from flowkit import transforms as fkt

    kind = t.kind
    if kind == "linear":
        return fkt.LinearTransform(param_t=t.T, param_a=t.A)
    if kind == "log":
        return fkt.LogTransform(param_t=t.T, param_m=t.M)
    if kind == "asinh":
        return fkt.AsinhTransform(param_t=t.T, param_m=t.M, param_a=t.A)
    if kind == "logicle":
        return fkt.LogicleTransform(param_t=t.T, param_w=t.W, param_m=t.M, param_a=t.A)
    if kind == "hyperlog":
        return fkt.HyperlogTransform(param_t=t.T, param_w=t.W, param_m=t.M, param_a=t.A)
    raise GateError(f"transform {kind!r} has no GatingML 2.0 export")


def to_gating_strategy(result: GatingResult, setup: Any, channel_names: Sequence[str]):
    """A :class:`flowkit.GatingStrategy` holding ``result``'s resolved gates.

    Parameters
    ----------
    result : what :func:`mrdflow.gating.engine.gate_events` returned for this tube.
    setup : the :class:`mrdflow.tube.TubeSetup` the events were scaled with (spillover, transforms, index).
    channel_names : $PnN of every column of the file.
    """
    import flowkit as fk
    from flowkit import gates as fkg

    gs = fk.GatingStrategy()
    spill = setup.spillover
    compensated = set()
    if spill is not None:
        gs.add_comp_matrix(_COMP_ID, fk.Matrix(spill.matrix, list(spill.channels), fluorochromes=list(spill.channels)))
        compensated = set(spill.channels)
    xform_ids: dict[str, str] = {}
    for k, (name, t) in enumerate(setup.transforms.items()):
        # GatingML ids are xs:ID (no spaces, not starting with a digit): $PnN like "Alexa Fluor 488-A" are not
        xform_ids[name] = f"{t.kind}{k}_{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}"
        gs.add_transform(xform_ids[name], _fk_transform(t))

    def dimension(dim: str, lo=None, hi=None):
        ch = channel_names[setup.index[dim]]
        return fk.Dimension(ch, compensation_ref=_COMP_ID if ch in compensated else "uncompensated",
                            transformation_ref=xform_ids.get(ch), range_min=lo, range_max=hi)

    template = result.template
    paths: dict[str, tuple[str, ...]] = {ROOT: (ROOT,)}
    for name, node in template.nodes.items():
        paths[name] = paths[node.parent] + (name,)

    def add_geometric(gate_id: str, gate: Gate, parent_path: tuple[str, ...]) -> None:
        if isinstance(gate, RectangleGate):
            fk_gate = fkg.RectangleGate(gate_id, [dimension(d, lo, hi) for d, lo, hi in zip(gate.dims, gate.lo,
                                                                                                gate.hi)])
        elif isinstance(gate, PolygonGate):
            fk_gate = fkg.PolygonGate(gate_id, [dimension(d) for d in gate.dims], [list(v) for v in gate.vertices])
        elif isinstance(gate, EllipsoidGate):
            fk_gate = fkg.EllipsoidGate(gate_id, [dimension(d) for d in gate.dims], list(gate.mean),
                                        [list(r) for r in gate.covariance], gate.distance_square)
        else:
            raise GateError(f"gate {gate_id!r}: {gate.describe()} has no GatingML export")
        gs.add_gate(fk_gate, parent_path)

    def add_boolean(gate_id: str, gate: BooleanGate, parent_path: tuple[str, ...]) -> None:
        refs = []
        for k, (operand, comp) in enumerate(zip(gate.operands, gate.complement)):
            if isinstance(operand, str):
                refs.append({"ref": operand, "path": paths[template.nodes[operand].parent], "complement": comp})
                continue
            helper = f"{gate_id}__{k}"
            (add_boolean if isinstance(operand, BooleanGate) else add_geometric)(helper, operand, parent_path)
            refs.append({"ref": helper, "path": parent_path, "complement": comp})
        gs.add_gate(fkg.BooleanGate(gate_id, gate.op, refs), parent_path)

    for name, node in template.nodes.items():
        gate = result.gates[name]
        parent_path = paths[node.parent]
        if isinstance(gate, BooleanGate):
            add_boolean(name, gate, parent_path)
        else:
            add_geometric(name, gate, parent_path)
    return gs


def export_gatingml(result: GatingResult, setup: Any, channel_names: Sequence[str],
                    destination: str | Path | IO[bytes]) -> None:
    """Write ``result``'s resolved gates as a GatingML 2.0 document to a path or a binary file handle."""
    import flowkit as fk

    gs = to_gating_strategy(result, setup, channel_names)
    if isinstance(destination, (str, Path)):
        tmp = Path(destination).with_suffix(Path(destination).suffix + ".tmp")
        with open(tmp, "wb") as fh:
            fk.export_gatingml(gs, fh)
        tmp.replace(destination)
    else:
        fk.export_gatingml(gs, destination)
