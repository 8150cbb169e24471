"""Common-subexpression elimination: compute each distinct value once.

Two nodes are the same computation when they have the same op, domain, opset and
attributes (numpy-array attributes compared by value) and read the same inputs — after
the inputs themselves have been merged, so whole duplicated subgraphs collapse in one
sweep in topological order.  Inputs of commutative ops (Add, Mul, Max, Min, Sum, And, Or,
Xor, Equal, BitwiseAnd/Or/Xor) are compared as a multiset.

Constants with identical values are merged first.  Weights can be large, so they are
bucketed by (dtype, shape, 32 sampled elements) and only constants that share a bucket are
hashed (BLAKE2b of their bytes) and then compared; a byte comparison keeps ``-0.0`` and ``0.0`` apart and
NaNs with the same bits together, which is what "the same value" means for folding.

Never merged: ops with random results (RandomNormal, Bernoulli, ...), Dropout (random in
training mode), nodes with subgraph bodies, and nodes whose output a body reads implicitly.
A merged node whose output is a graph output stays as an ``Identity`` of the survivor so
the output keeps its name.
"""
from __future__ import annotations

import hashlib

import numpy as np

from ..ir import Graph, Node
from .onnx_reference import NONDETERMINISTIC_OPS
from .rewrite import Rewriter, Uses, subgraph_bodies

COMMUTATIVE = frozenset({"Add", "Mul", "Max", "Min", "Sum", "Mean", "And", "Or", "Xor", "Equal",
                         "BitwiseAnd", "BitwiseOr", "BitwiseXor"})
NEVER_MERGED = NONDETERMINISTIC_OPS | {"Dropout"}
_DIGEST_BYTES = 64          # constants smaller than this are keyed by their bytes directly


def eliminate_common_subexpressions(graph: Graph) -> Graph:
    uses = Uses(graph)
    rw = Rewriter(graph)
    rw.renames.update(_duplicate_constants(graph, uses))
    seen: dict = {}
    for node in graph.nodes:
        ins = tuple(rw.resolve(i) if i else i for i in node.inputs)
        node_r = node.with_(inputs=ins) if ins != node.inputs else node
        key = _node_key(node_r)
        first = seen.get(key) if key is not None else None
        if first is None or any(o in uses.pinned for o in node.outputs if o):
            if key is not None and first is None:
                seen[key] = node_r
            rw.replace(node, [node_r])
            continue
        kept = []
        for mine, theirs in zip(node.outputs, first.outputs):
            if not mine:
                continue
            if not theirs:          # the survivor omitted an output this node produces
                kept = None
                break
            if uses.is_free(mine):
                rw.renames[mine] = theirs
            else:
                kept.append(Node("Identity", (theirs,), (mine,), {}, name=f"{node.name}_cse", opset=1))
        if kept is None:
            rw.replace(node, [node_r])
            continue
        rw.replace(node, kept)
    return rw.finish()


def _node_key(node: Node):
    """A hashable description of the computation, or None if it must not be merged."""
    if node.op in NEVER_MERGED or node.op == "Constant" or not node.inputs or subgraph_bodies(node):
        return None
    try:
        attrs = tuple(sorted((k, _attr_key(v)) for k, v in node.attrs.items()))
    except TypeError:
        return None
    ins = node.inputs
    if node.op in COMMUTATIVE and node.domain in ("", "ai.onnx"):
        ins = tuple(sorted(ins))
    return (node.op, node.domain or "", node.opset, ins, len(node.outputs),
            tuple(bool(o) for o in node.outputs), attrs)


def _attr_key(value):
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        return ("list", tuple(_attr_key(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, _attr_key(v)) for k, v in value.items())))
    if isinstance(value, float) and value != value:
        return ("nan",)
    hash(value)          # raises TypeError for anything unhashable (the node is then kept)
    return (type(value).__name__, value)


def _duplicate_constants(graph: Graph, uses: Uses) -> dict[str, str]:
    """Renames: each constant read by a node -> the first constant with identical value."""
    order: list[str] = []
    seen_names = set()
    for node in graph.nodes:
        for name in node.inputs:
            if name and name not in seen_names and graph.is_constant(name):
                seen_names.add(name)
                order.append(name)
    # bucket by type and a strided sample of the values: random weights never share a
    # bucket, so only genuine candidates are hashed in full
    buckets: dict = {}
    for name in order:
        if name in uses.pinned or graph.tensors[name].value.dtype == object:
            continue
        t = graph.tensors[name]
        buckets.setdefault((t.dtype, tuple(t.shape), _sample(t.value)), []).append(name)
    renames: dict[str, str] = {}
    for names in buckets.values():
        if len(names) < 2:
            continue
        by_value: dict = {}
        for name in names:
            raw = _raw_bytes(graph.tensors[name].value)
            key = raw.tobytes() if raw.nbytes <= _DIGEST_BYTES else hashlib.blake2b(raw, digest_size=20).digest()
            same = by_value.get(key)
            if same is None:
                by_value[key] = name
            elif np.array_equal(_raw_bytes(graph.tensors[same].value), raw):
                renames[name] = same
    return renames


def _raw_bytes(value: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(value).reshape(-1).view(np.uint8)


def _sample(value: np.ndarray, count: int = 32) -> bytes:
    flat = np.asarray(value).reshape(-1)
    if flat.size <= count:
        return _raw_bytes(flat).tobytes()
    return _raw_bytes(flat[np.linspace(0, flat.size - 1, count).astype(np.int64)]).tobytes()
