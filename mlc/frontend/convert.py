"""ONNX (after folding) → mlc.graph.Graph, and the unsupported-operator report.

Representation choices, all visible in the resulting Graph:

* Tensors: ``Tensor(name, dtype, shape, value)``; dtype is a numpy dtype name (ml_dtypes
  names for bfloat16/float8/int4/..., "object" for strings — see onnx_types); constants
  carry a read-only numpy array.  Unused initializers are dropped.
* Attributes become Python values: int, float, str (bytes that are not UTF-8 stay bytes),
  lists, numpy arrays for tensor attributes, ``onnx.TypeProto`` for type attributes, and
  a nested ``Graph`` for every subgraph (If/Loop/Scan bodies), converted recursively.
* Subgraphs and outer scope: a body Graph's ``inputs`` are its formal inputs only.  Names it
  reads from enclosing graphs appear in its ``tensors`` with their types (and values, when
  constant — so a body is self-contained for constants) but in neither ``inputs`` nor any
  node's outputs; :func:`outer_scope_names` lists the non-constant ones.  The enclosing
  node's ``inputs`` stay the ONNX formal inputs (kernels index them by position), so a pass
  that asks "who reads tensor t?" must also look at ``outer_scope_names`` of node bodies.
* Shapes: in the main graph every tensor must be fully static, else ShapeError naming the
  tensor, its producer and why.  Inside bodies, onnx's inference is all there is and a
  Loop-carried value may change shape per iteration: unknown dims are recorded as -1
  (rank and dtype must still be known).
"""
from __future__ import annotations

from collections import ChainMap
from typing import Mapping

import numpy as np
import onnx

from ..errors import DataDependentShapeError, ShapeError, UnsupportedError
from ..graph.ir import Graph, Node, Tensor
from ..registry import lookup
from .onnx_types import (constant_arrays, dims, normalize_domain, sparse_to_array, tensor_dtype,
                         to_array, type_kind)
from .scopes import subgraphs

_A = onnx.AttributeProto
_MAX_LISTED = 10


def to_graph(wg) -> Graph:
    """The folded working graph (mlc.frontend.fold.WorkingGraph) as an mlc Graph."""
    types = ChainMap(wg.types, {vi.name: vi.type for vi in wg.inputs})
    scope = _Scope(wg.consts, types, parent=None, defined=None, strict=True, opsets=wg.opsets)
    outputs = [vi.name for vi in wg.outputs] + [c for c in wg.row_counts.values()]
    graph = _build(wg.name or "main", wg.nodes, [vi.name for vi in wg.inputs], outputs, scope, wg.opsets)
    scope.raise_problems()
    if wg.row_counts:
        graph = graph.replace(row_counts=dict(wg.row_counts))
    return graph


def outer_scope_names(graph: Graph) -> tuple[str, ...]:
    """Non-constant names a subgraph Graph reads from the graphs enclosing it.

    These are the If/Loop/Scan node's implicit inputs: a node whose body reads ``x`` must
    run after the producer of ``x``, and ``x`` must stay alive until then.
    """
    defined = set(graph.inputs)
    for node in graph.nodes:
        defined.update(o for o in node.outputs if o)
    used: list[str] = []
    for node in graph.nodes:
        used.extend(i for i in node.inputs if i)
        for value in node.attrs.values():
            for body in _graphs_in(value):
                used.extend(outer_scope_names(body))
    used.extend(graph.outputs)
    out = dict.fromkeys(n for n in used if n not in defined and not graph.is_constant(n))
    return tuple(out)


def _graphs_in(value) -> list[Graph]:
    if isinstance(value, Graph):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, Graph)]
    return []


# --- scopes ---------------------------------------------------------------------------------

class _Scope:
    """Resolves tensor names in one graph body: its constants, its types, then the parent's."""

    def __init__(self, consts: Mapping[str, np.ndarray], types: Mapping[str, onnx.TypeProto],
                 parent: "_Scope | None", defined: set[str] | None, strict: bool,
                 opsets: Mapping[str, int]):
        self.consts, self.types, self.parent, self.opsets = consts, types, parent, opsets
        self.defined = defined          # names this body defines; None = everything (main graph)
        self.strict = strict            # main graph: every dim must be known
        self.tensors: dict[str, Tensor] = {}
        self.producer: dict[str, onnx.NodeProto] = {}
        self.problems: list[tuple[str, str, "_Scope"]] = [] if parent is None else parent.problems

    def tensor(self, name: str) -> Tensor | None:
        """The Tensor for ``name`` (recorded in this scope's tensors), None if unusable."""
        if name in self.tensors:
            return self.tensors[name]
        if name in self.consts:
            t = _constant(name, self.consts[name])
        elif self.parent is not None and name not in self.defined:
            t = self.parent.tensor(name)
        else:
            t = self._typed(name, self.types.get(name))
        if t is not None:
            self.tensors[name] = t
        return t

    def _typed(self, name: str, tp: onnx.TypeProto | None) -> Tensor | None:
        kind = type_kind(tp)
        if kind != "tensor":
            what = "has no type information" if kind is None else f"is a {kind}, not a tensor"
            return self._problem(name, what)
        dtype = tensor_dtype(tp)
        shape = dims(tp)
        if dtype is None:
            return self._problem(name, "has an unknown element type")
        if shape is None:
            return self._problem(name, "has an unknown rank")
        if not all(isinstance(d, int) for d in shape):
            if self.strict:
                unknown = [i for i, d in enumerate(shape) if not isinstance(d, int)]
                return self._problem(name, f"has unknown dim(s) {unknown} in shape "
                                           f"[{', '.join(str(d) if isinstance(d, int) else '?' for d in shape)}]")
            shape = tuple(d if isinstance(d, int) else -1 for d in shape)
        return Tensor(name, dtype, tuple(shape))

    def _problem(self, name: str, what: str) -> None:
        if not any(p[0] == name for p in self.problems):
            self.problems.append((name, what, self))
        return None

    def raise_problems(self) -> None:
        """One error for every tensor whose type is unusable, explaining the first."""
        if not self.problems:
            return
        name, what, scope = self.problems[0]
        node = scope.producer.get(name)
        where = _producer_text(name, node)
        msg = f"tensor {name!r} {what} after constant folding: {where}"
        value_dependent = False
        if node is not None:
            why, value_dependent = _why_unknown(node, scope)
            msg += f"; {why}"
        if len(self.problems) > 1:
            names = [p[0] for p in self.problems]
            listed = ", ".join(repr(n) for n in names[:_MAX_LISTED]) + (", ..." if len(names) > _MAX_LISTED else "")
            msg += f" ({len(names)} tensors in all: {listed})"
        non_tensor = [p for p in self.problems if "not a tensor" in p[1]]
        if non_tensor:
            items = [_item(name, what, sc) for name, what, sc in non_tensor]
            raise UnsupportedError(msg, items)
        raise (DataDependentShapeError if value_dependent else ShapeError)(msg)


def _producer_text(name: str, node: onnx.NodeProto | None) -> str:
    if node is None:
        return "it is not produced by any node (a graph input or outer-scope value)"
    index = list(node.output).index(name)
    domain = normalize_domain(node.domain)
    return f"it is output {index} of {node.op_type}{f' ({domain})' if domain else ''} node {node.name!r}"


def _why_unknown(node: onnx.NodeProto, scope: _Scope) -> tuple[str, bool]:
    """A best guess at why onnx shape inference could not type this node's output, and
    whether the cause is that the shape depends on run-time input values."""
    domain = normalize_domain(node.domain)
    if not onnx.defs.has(node.op_type, domain):
        return (f"onnx knows no operator {node.op_type!r} in domain {domain or 'ai.onnx'!r}, so it "
                "cannot infer its output types; add value_info for its outputs to the model"), False
    bad_inputs = [i for i in node.input if i and scope.tensors.get(i) is None]
    if bad_inputs:
        return f"its input(s) {', '.join(map(repr, bad_inputs))} are not fully known either", False
    runtime = [i for i in node.input if i and not scope.tensors[i].is_constant]
    if runtime:
        return ("onnx shape inference could not determine it: the output shape depends on the "
                f"values of {', '.join(map(repr, runtime))}, which are only known at run time"), True
    return "onnx shape inference could not determine it", False


def _item(name: str, what: str, scope: _Scope) -> tuple[str, int, str, str]:
    """An UnsupportedError item for a non-tensor value: the producing op, or the input."""
    node = scope.producer.get(name)
    if node is None:
        return ("<graph input>", 0, name, what)
    domain = normalize_domain(node.domain)
    return (node.op_type, int(scope.opsets.get(domain, 0)), node.name, f"output {name!r} {what}")


def _constant(name: str, value: np.ndarray) -> Tensor:
    """A constant Tensor; read-only, since constants are shared between graph versions.

    Not Tensor.constant: its np.ascontiguousarray turns 0-d scalars into shape (1,).
    """
    value = np.asarray(value, order="C")
    value.flags.writeable = False
    return Tensor(name, value.dtype.name, tuple(int(d) for d in value.shape), value)


# --- building -------------------------------------------------------------------------------

def _build(name: str, nodes, inputs: list[str], outputs: list[str], scope: _Scope,
           opsets: Mapping[str, int]) -> Graph:
    """Convert one body's nodes in order, collecting every tensor they use."""
    for node in nodes:
        for out in node.output:
            if out:
                scope.producer[out] = node
    for n in inputs:
        scope.tensor(n)
    converted = tuple(_node(node, scope, opsets) for node in nodes)
    for n in outputs:
        scope.tensor(n)
    return Graph(converted, tuple(inputs), tuple(outputs), dict(scope.tensors), name, dict(opsets))


def _node(node: onnx.NodeProto, scope: _Scope, opsets: Mapping[str, int]) -> Node:
    for n in (*node.input, *node.output):
        if n:
            scope.tensor(n)
    attrs = {a.name: _attr_value(a, node, scope, opsets) for a in node.attribute}
    domain = normalize_domain(node.domain)
    return Node(node.op_type, tuple(node.input), tuple(node.output), attrs, node.name, domain,
                int(opsets.get(domain, 0)))


def _attr_value(attr: onnx.AttributeProto, node, scope: _Scope, opsets):
    """An attribute as a plain Python value (subgraphs as nested Graphs)."""
    t = attr.type
    if t == _A.GRAPH:
        return _subgraph(attr.g, f"{node.name}/{attr.name}", scope, opsets)
    if t == _A.GRAPHS:
        return [_subgraph(g, f"{node.name}/{attr.name}[{i}]", scope, opsets)
                for i, g in enumerate(attr.graphs)]
    simple = {
        _A.FLOAT: lambda: float(attr.f), _A.INT: lambda: int(attr.i), _A.STRING: lambda: _text(attr.s),
        _A.TENSOR: lambda: to_array(attr.t), _A.SPARSE_TENSOR: lambda: sparse_to_array(attr.sparse_tensor),
        _A.TYPE_PROTO: lambda: attr.tp,
        _A.FLOATS: lambda: [float(v) for v in attr.floats], _A.INTS: lambda: [int(v) for v in attr.ints],
        _A.STRINGS: lambda: [_text(v) for v in attr.strings],
        _A.TENSORS: lambda: [to_array(v) for v in attr.tensors],
        _A.SPARSE_TENSORS: lambda: [sparse_to_array(v) for v in attr.sparse_tensors],
        _A.TYPE_PROTOS: lambda: list(attr.type_protos),
    }
    return simple[t]() if t in simple else onnx.helper.get_attribute_value(attr)


def _text(raw: bytes):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _subgraph(body: onnx.GraphProto, fallback_name: str, parent: _Scope, opsets) -> Graph:
    """A body as a Graph; names it does not define resolve in the enclosing scope."""
    consts = constant_arrays(body)
    types = {vi.name: vi.type for vi in (*body.value_info, *body.output, *body.input)
             if vi.HasField("type")}
    defined = {vi.name for vi in body.input} | set(consts)
    defined.update(o for node in body.node for o in node.output if o)
    scope = _Scope(consts, types, parent, defined, strict=False, opsets=opsets)
    return _build(body.name or fallback_name, body.node, [vi.name for vi in body.input],
                  [vi.name for vi in body.output], scope, opsets)


# --- unsupported operators ------------------------------------------------------------------

def unsupported_items(nodes, opsets: Mapping[str, int]) -> list[tuple[str, str, int, str, str]]:
    """(op, domain, opset, node name, reason) for every node, in bodies too, mlc cannot run."""
    found = []
    for node in nodes:
        domain = normalize_domain(node.domain)
        if lookup(node.op_type, domain) is None:
            opset = int(opsets.get(domain, 0))
            found.append((node.op_type, domain, opset, node.name, _unsupported_reason(node.op_type, domain, opset)))
        for _, body in subgraphs(node):
            found.extend(unsupported_items(body.node, opsets))
    return found


def _unsupported_reason(op: str, domain: str, opset: int) -> str:
    if domain:
        return f"custom operator of domain {domain!r}; no mlc kernel is registered for it"
    try:
        onnx.defs.get_schema(op, opset, "")
    except onnx.defs.SchemaError:
        return f"not an operator of ONNX opset {opset}"
    return "no mlc kernel is registered for it"


def raise_if_unsupported(nodes, opsets: Mapping[str, int]) -> None:
    """One UnsupportedError listing every unsupported operator, grouped by op."""
    found = unsupported_items(nodes, opsets)
    if not found:
        return
    groups: dict[tuple[str, str, int], list[str]] = {}
    for op, domain, opset, name, _ in found:
        groups.setdefault((op, domain, opset), []).append(name)
    parts = []
    for (op, domain, opset), names in groups.items():
        label = f"{op} ({domain + ', ' if domain else ''}opset {opset})"
        shown = ", ".join(repr(n) for n in names[:_MAX_LISTED]) + (
            f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")
        parts.append(f"{label} at node{'s' if len(names) > 1 else ''} {shown}")
    msg = f"model uses {len(groups)} unsupported operator{'s' if len(groups) > 1 else ''}: {'; '.join(parts)}"
    raise UnsupportedError(msg, [(op, opset, name, reason) for op, _, opset, name, reason in found])
