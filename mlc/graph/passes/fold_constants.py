"""Constant folding on the graph IR: a node whose inputs are all constants becomes constants.

The frontend already folds to a fixed point before conversion (``mlc.frontend.fold``);
this pass catches what later passes create — a Reshape whose producer no-op removal
bypassed so that it now reads a weight, a Cast of a deduplicated constant, shape
arithmetic (Shape / Size of any tensor: every shape is static in the graph IR, so the
shape subgraphs torch exporters emit fold too).

Evaluation is ONNX's own, by ``onnx.reference`` (see :mod:`.onnx_reference`, shared with
the frontend).  Not folded: ops of other domains (``mlc`` internal ops included), ops with
random results, nodes with subgraph bodies, results larger than ``MAX_FOLD_BYTES`` (kept as
nodes so the weights do not balloon), any node whose evaluation fails or disagrees with
the graph's recorded type for an output, and nodes writing a name in ``keep``.

``simplify`` keeps the nodes that already had all-constant inputs when it started: the
frontend declined to fold them (too big, not evaluable), or the graph was built directly
to run them — a kernel test compiling ``Range`` of three constants means the kernel.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Tensor
from .onnx_reference import EVALUABLE_DOMAINS, NONDETERMINISTIC_OPS, node_to_onnx, run_node
from .rewrite import Uses, subgraph_bodies

MAX_FOLD_BYTES = 64 * 2**20


def fold_constants(graph: Graph, keep: frozenset = frozenset()) -> Graph:
    """Fold every node with all-constant inputs, except nodes writing a name in ``keep``."""
    uses = Uses(graph)
    values: dict[str, np.ndarray] = {}          # newly folded tensor -> value
    kept = []
    for node in graph.nodes:
        folded = None if any(o in keep for o in node.outputs) else _fold(node, graph, values, uses)
        if folded is None:
            kept.append(node)
        else:
            values.update(folded)
    if not values:
        return graph
    tensors = dict(graph.tensors)
    for name, value in values.items():
        tensors[name] = Tensor(name, tensors[name].dtype, tensors[name].shape, value)
    return graph.replace(tensors=tensors).with_nodes(kept)


def constant_input_nodes(graph: Graph) -> frozenset:
    """Output names of the nodes whose inputs are all constants (see ``keep``)."""
    out = set()
    for node in graph.nodes:
        if all(graph.is_constant(i) for i in node.inputs if i):
            out.update(o for o in node.outputs if o)
    return frozenset(out)


def _value(graph: Graph, values: dict, name: str):
    if name in values:
        return values[name]
    return graph.tensors[name].value if name in graph.tensors else None


def _fold(node, graph: Graph, values: dict, uses: Uses) -> dict | None:
    if node.domain not in EVALUABLE_DOMAINS or node.op in NONDETERMINISTIC_OPS or subgraph_bodies(node):
        return None
    outs = [o for o in node.outputs if o]
    if not outs or any(o not in graph.tensors or o in uses.pinned or o in graph.inputs for o in outs):
        return None
    if any(graph.tensors[o].nbytes > MAX_FOLD_BYTES for o in outs):
        return None
    if node.op in ("Shape", "Size") and node.inputs and node.inputs[0] in graph.tensors:
        return _fold_shape_of(node, graph)
    feeds = {}
    for name in node.inputs:
        if not name:
            continue
        v = _value(graph, values, name)
        if v is None:
            return None
        feeds[name] = v
    if not feeds and node.op != "Constant":
        return None
    if node.op == "Dropout" and len(node.inputs) > 2 and node.inputs[2] and \
            bool(np.asarray(feeds[node.inputs[2]]).any()):
        return None          # training mode: random
    proto = node_to_onnx(node, graph)
    if proto is None:
        return None
    opsets = dict(graph.opsets)
    if node.opset:
        opsets[node.domain or ""] = node.opset
    results = run_node(proto, feeds, opsets)
    if results is None:
        return None
    out = {}
    for name, value in zip(outs, results):
        if isinstance(value, np.generic):
            value = np.asarray(value)
        t = graph.tensors[name]
        if not isinstance(value, np.ndarray) or tuple(value.shape) != tuple(t.shape):
            return None
        if value.dtype.name != t.dtype:
            try:
                value = value.astype(t.dtype)
            except (TypeError, ValueError):
                return None
        out[name] = value
    return out


def _fold_shape_of(node, graph: Graph) -> dict | None:
    shape = graph.tensors[node.inputs[0]].shape
    if any(int(d) < 0 for d in shape):
        return None
    out = node.outputs[0]
    if node.op == "Size":
        value = np.array(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)
    else:
        # Shape-15 start/end: negative counts from the back, clamped — exactly Python slicing
        value = np.array(shape, dtype=np.int64)[int(node.attrs.get("start", 0)):
                                               (int(node.attrs["end"]) if "end" in node.attrs else None)]
    if tuple(value.shape) != tuple(graph.tensors[out].shape):
        return None
    return {out: value}
