"""Constant folding interleaved with onnx shape inference, to a fixed point.

Why in the frontend: exporters (torch.onnx especially) emit shape arithmetic —
Shape→Gather→Unsqueeze→Concat→Reshape, ConstantOfShape(Shape(x)), Range over computed
bounds — whose results are fixed once the input shapes are bound.  Every later layer wants
static shapes and constant shape operands, so the frontend alternates

    onnx.shape_inference.infer_shapes(strict_mode=False, data_prop=True)
    fold: every node whose inputs are all constant, every Shape/Size of a known shape

until a round folds nothing.  Nodes are evaluated by ``onnx.reference`` — ONNX's own
definition of each op, not ours — one tiny model per node (about 50 µs each).

What is *not* folded: ops with random results, outputs bigger than MAX_FOLD_BYTES (kept as
nodes so the model does not balloon), ops of domains onnx.reference cannot run, Loops
without a small constant trip count, and anything whose evaluation fails (the node stays;
a later layer reports it if it matters).  Inside Loop/Scan bodies only constant subgraphs
are folded, never Shape/Size: a loop-carried value's shape may change per iteration while
shape inference sees only the first one.  Inside If branches both kinds are folded.
"""
from __future__ import annotations

import logging
import warnings
from collections import ChainMap
from dataclasses import dataclass, field
from typing import Mapping, MutableMapping

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ShapeError
from ..graph.passes.onnx_reference import EVALUABLE_DOMAINS, NONDETERMINISTIC_OPS, run_node
from .onnx_types import (constant_arrays, dims, elem_type_of, nbytes_of, static_shape,
                         tensor_dtype, value_info)
from .scopes import node_reads, subgraphs

log = logging.getLogger(__name__)

MAX_FOLD_BYTES = 64 * 2**20        # larger results stay nodes (computed at run time)
MAX_ROUNDS = 64                    # inference+fold rounds; real models need 2-4
MAX_FOLDED_LOOP_TRIPS = 4096       # a Loop folds only with a constant trip count up to this
INLINE_FOR_INFERENCE = 4096        # constants up to this many elements go to inference by value


@dataclass
class WorkingGraph:
    """The main graph while folding: ONNX nodes, and constants held as numpy arrays.

    Constants live outside the protobuf so folding never re-serialises weights; shape
    inference is given small constants by value and large ones by type only.
    """

    name: str
    nodes: list[onnx.NodeProto]
    inputs: list[onnx.ValueInfoProto]        # run-time inputs, every dim bound
    outputs: list[onnx.ValueInfoProto]
    value_info: list[onnx.ValueInfoProto]    # the exporter's, symbolic dims bound or cleared
    consts: dict[str, np.ndarray]
    opsets: dict[str, int]                   # normalised domain -> version
    ir_version: int
    types: dict[str, onnx.TypeProto] = field(default_factory=dict)   # from the last inference
    row_counts: dict[str, str] = field(default_factory=dict)   # bounded output -> its row count


@dataclass
class _FoldContext:
    opsets: dict[str, int]
    ir_version: int
    failed: set = field(default_factory=set)    # nodes (by outputs) that could not be evaluated


def fold_constants(wg: WorkingGraph) -> WorkingGraph:
    """Alternate shape inference and folding until nothing changes; updates ``wg`` in place."""
    ctx = _FoldContext(wg.opsets, wg.ir_version)
    for _ in range(MAX_ROUNDS):
        infer_types(wg)
        wg.nodes, changed = _fold_nodes(wg.nodes, wg.consts, wg.consts, wg.types, True, ctx)
        if not changed:
            return wg
    warnings.warn(f"constant folding of graph {wg.name!r} still changed after {MAX_ROUNDS} "
                  "rounds; stopping there", stacklevel=2)
    infer_types(wg)
    return wg


# --- shape inference ------------------------------------------------------------------------

def infer_types(wg: WorkingGraph) -> None:
    """Run onnx shape inference (with data propagation) and record every value's type.

    Also takes the nodes back from the inferred model: their subgraphs now carry the
    inferred value_info that folding and conversion read.
    """
    model = _inference_model(wg)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False,
                                                     data_prop=True)
    except Exception as e:   # InferenceError, or a C++ error surfacing as RuntimeError
        raise ShapeError(f"onnx shape inference failed on graph {wg.name!r}: {e}") from e
    wg.nodes = list(inferred.graph.node)
    types: dict[str, onnx.TypeProto] = {}
    for vi in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        if vi.HasField("type"):
            types[vi.name] = vi.type
    wg.types = types


def _inference_model(wg: WorkingGraph) -> onnx.ModelProto:
    """The model shape inference sees: big constants replaced by typed inputs.

    Shape inference only needs the *values* of small tensors (shapes, axes, pads...), and
    serialising weights into the C++ inference on every round would dominate import time.
    """
    used = {o.name for o in wg.outputs}
    for node in wg.nodes:
        used.update(node_reads(node))
    small, big = [], []
    for name in sorted(used & wg.consts.keys()):
        arr = wg.consts[name]
        if arr.size <= INLINE_FOR_INFERENCE:
            small.append(numpy_helper.from_array(arr, name))
        else:
            big.append(value_info(name, elem_type_of(arr), arr.shape))
    vis = [vi for vi in wg.value_info if vi.name not in wg.consts]
    graph = helper.make_graph(wg.nodes, wg.name or "main", [*wg.inputs, *big], wg.outputs,
                              initializer=small, value_info=vis)
    return _model_of(graph, wg.opsets, wg.ir_version)


def _model_of(graph: onnx.GraphProto, opsets: Mapping[str, int], ir_version: int) -> onnx.ModelProto:
    # IR >= 4 so initializers that are not graph inputs count as constants
    return helper.make_model(graph, ir_version=max(int(ir_version), 4),
                             opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])


# --- folding --------------------------------------------------------------------------------

def _fold_nodes(nodes: list[onnx.NodeProto], consts: MutableMapping[str, np.ndarray],
                visible: Mapping[str, np.ndarray], types: Mapping[str, onnx.TypeProto],
                allow_shape: bool, ctx: _FoldContext) -> tuple[list[onnx.NodeProto], bool]:
    """One pass in node order; folded values go to ``consts`` (seen through ``visible``).

    Returns the nodes that remain and whether anything changed (here or in a subgraph).
    """
    kept, changed = [], False
    for node in nodes:
        node, inner_changed = _fold_in_subgraphs(node, visible, types, allow_shape, ctx)
        changed |= inner_changed
        values = _fold_node(node, visible, types, allow_shape, ctx)
        if values is None:
            kept.append(node)
        else:
            consts.update(values)
            changed = True
    return kept, changed


def _fold_node(node, visible, types, allow_shape, ctx) -> dict[str, np.ndarray] | None:
    """The node's output values if it can be folded now, else None."""
    if node.domain not in EVALUABLE_DOMAINS:
        return None
    if allow_shape and node.op_type in ("Shape", "Size") and node.domain in ("", "ai.onnx"):
        values = _fold_shape_of(node, visible, types)
        if values is not None:
            return values
    if not _deterministic(node, visible):
        return None
    reads = node_reads(node)
    if any(name not in visible for name in reads):
        return None
    key = tuple(node.output)
    if key in ctx.failed or (node.op_type != "Constant" and _known_too_big(node, types)):
        return None
    values = _evaluate(node, {name: visible[name] for name in reads}, types, ctx)
    if values is None:
        ctx.failed.add(key)
    return values


def _fold_shape_of(node, visible, types) -> dict[str, np.ndarray] | None:
    """Shape/Size of a value whose shape is fully known (its data need not be)."""
    x = node.input[0]
    shape = visible[x].shape if x in visible else static_shape(types.get(x))
    if shape is None:
        return None
    if node.op_type == "Size":
        value = np.array(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)
    else:
        attrs = {a.name: a.i for a in node.attribute}
        # Shape-15 start/end: negative counts from the back, clamped to [0, rank] — exactly
        # Python slicing
        value = np.array(shape, dtype=np.int64)[attrs.get("start", 0):attrs.get("end", None)]
    return {node.output[0]: value}


def _deterministic(node, visible) -> bool:
    """False for ops whose result is random or whose evaluation may not terminate soon."""
    op = node.op_type
    if op in NONDETERMINISTIC_OPS:
        return False
    if op == "Dropout" and len(node.input) > 2 and node.input[2]:
        mode = visible.get(node.input[2])
        return mode is not None and not bool(np.asarray(mode).any())
    if op == "Loop":
        trips = visible.get(node.input[0]) if node.input and node.input[0] else None
        return trips is not None and int(np.asarray(trips).reshape(-1)[0]) <= MAX_FOLDED_LOOP_TRIPS
    return True


def _known_too_big(node, types) -> bool:
    """True when shape inference already says an output exceeds MAX_FOLD_BYTES."""
    for name in node.output:
        tp = types.get(name) if name else None
        shape = static_shape(tp)
        if shape is not None and nbytes_of(tensor_dtype(tp), shape) > MAX_FOLD_BYTES:
            return True
    return False


def _evaluate(node, feeds: dict[str, np.ndarray], types, ctx) -> dict[str, np.ndarray] | None:
    """Run one node with onnx.reference; None if it fails or gives non-tensor/huge results."""
    outputs = [name for name in node.output if name]
    results = run_node(node, feeds, ctx.opsets, ctx.ir_version)
    if results is None:
        return None
    values = {}
    scan_ranks = _loop_scan_ranks(node) if node.op_type == "Loop" else {}
    for k, (name, value) in enumerate(zip(outputs, results)):
        if isinstance(value, np.generic):
            value = np.asarray(value)
        if not isinstance(value, np.ndarray):          # a sequence, map or optional
            return None
        if k in scan_ranks:
            value = _fix_reference_scan(value, scan_ranks[k])
            if value is None:
                return None
        if value.nbytes > MAX_FOLD_BYTES and node.op_type != "Constant":
            return None
        if not _agrees_with_inference(value, types.get(name)):
            log.debug("not folding %s %r: result shape %s contradicts shape inference",
                      node.op_type, node.name, value.shape)
            return None
        values[name] = _as_inferred_dtype(value, types.get(name))
    return values


def _loop_scan_ranks(node) -> dict:
    """Output index -> rank of the per-iteration value, for a Loop's scan outputs (None
    where the body does not declare it)."""
    body = next((a.g for a in node.attribute if a.name == "body"), None)
    if body is None:
        return {}
    n_carried = len(node.input) - 2
    out = {}
    for k, vi in enumerate(body.output[1 + n_carried:]):
        known = dims(vi.type) if vi.HasField("type") else None
        out[n_carried + k] = None if known is None else len(known)
    return out


def _fix_reference_scan(value: np.ndarray, rank):
    """onnx.reference stacks scalar scan values as [N, 1] instead of [N]: undo that; with
    the per-iteration rank unknown, refuse to fold rather than guess (None)."""
    if rank is None:
        return None
    if value.ndim == rank + 1:
        return value
    if value.ndim == rank + 2 and value.shape[1] == 1:
        return value.reshape((value.shape[0],) + value.shape[2:])
    return None


def _agrees_with_inference(value: np.ndarray, tp) -> bool:
    """False when shape inference knows a rank or dim the evaluated result does not have.

    onnx's shape inference and onnx.reference are independent implementations; when they
    disagree one is wrong (e.g. reference Loop stacks scalar scan outputs as [N, 1]), so
    the node is left unfolded rather than guessing which.
    """
    known = dims(tp)
    if known is None:
        return True
    if len(known) != value.ndim:
        return False
    return all(not isinstance(d, int) or d == n for d, n in zip(known, value.shape))


def _as_inferred_dtype(value: np.ndarray, tp) -> np.ndarray:
    """onnx.reference occasionally returns a wider dtype than the op's; trust the schema."""
    want = tensor_dtype(tp)
    if want and want != value.dtype.name and want != "object":
        try:
            return value.astype(want)
        except (TypeError, ValueError):
            return value
    return value


# --- subgraphs ------------------------------------------------------------------------------

def _fold_in_subgraphs(node, visible, types, allow_shape, ctx) -> tuple[onnx.NodeProto, bool]:
    """Fold inside the node's bodies; returns the (possibly new) node and whether it changed."""
    bodies = subgraphs(node)
    if not bodies:
        return node, False
    shape_ok = allow_shape and node.op_type == "If"   # see the module docstring
    new_attrs, changed = [], False
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            body, c = _fold_subgraph(attr.g, visible, types, shape_ok, ctx)
            if c:
                attr, changed = helper.make_attribute(attr.name, body), True
        elif attr.type == onnx.AttributeProto.GRAPHS:
            folded = [_fold_subgraph(g, visible, types, shape_ok, ctx) for g in attr.graphs]
            if any(c for _, c in folded):
                attr, changed = helper.make_attribute(attr.name, [g for g, _ in folded]), True
        new_attrs.append(attr)
    if not changed:
        return node, False
    new = onnx.NodeProto()
    new.CopyFrom(node)
    del new.attribute[:]
    new.attribute.extend(new_attrs)
    return new, True


def _fold_subgraph(body: onnx.GraphProto, outer_visible, outer_types, allow_shape,
                   ctx) -> tuple[onnx.GraphProto, bool]:
    """Fold one body; folded values become initializers of that body."""
    local = constant_arrays(body)
    before = set(local)
    formal = {vi.name for vi in body.input}
    outer = outer_visible
    if any(name in outer_visible for name in formal):     # formal inputs shadow outer names
        outer = {k: v for k, v in outer_visible.items() if k not in formal}
    local_types = {vi.name: vi.type for vi in (*body.input, *body.value_info, *body.output)
                   if vi.HasField("type")}
    nodes, changed = _fold_nodes(list(body.node), local, ChainMap(local, outer),
                                 ChainMap(local_types, outer_types), allow_shape, ctx)
    if not changed:
        return body, False
    new = onnx.GraphProto()
    new.CopyFrom(body)
    del new.node[:]
    new.node.extend(nodes)
    new.initializer.extend(numpy_helper.from_array(local[n], n) for n in local if n not in before)
    kept_vi = [vi for vi in new.value_info if vi.name not in local]
    del new.value_info[:]
    new.value_info.extend(kept_vi)
    return new, True

