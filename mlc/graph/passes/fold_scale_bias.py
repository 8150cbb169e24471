"""Fold constant per-output-channel scales and shifts into the weights of the op before them.

    Conv(x, W, b) * s + t          ->  Conv(x, W * s, b * s + t)
    Gemm(A, B, C) * s + t          ->  Gemm(A, B * s, beta * C * s + t)    (beta becomes 1)
    MatMul(x, W) * s               ->  MatMul(x, W * s)                     (W a constant matrix)
    MatMul(x, W) + b) * s + t      ->  MatMul(x, W * s) + (b * s + t)      (the exported Linear)
    BatchNormalization(Gemm(...))  ->  Gemm with the normalisation folded in (also after a
                                       2-D MatMul, leaving MatMul + Add)

for Mul / Div / Add / Sub by a constant (the activation the left operand; for Mul and Add
either operand) that broadcasts along the output-channel axis only: axis 1 of a Conv /
ConvTranspose output ([C], [C,1,1], [1,C,1,1] or a scalar against [N,C,H,W]), the last
axis of a Gemm / MatMul output ([N], [1,N] or a scalar against [..., N]).  The weights are
rescaled once at compile time (in float64, rounded once), so the scale costs nothing at
run time and its kernel disappears from the epilogue.

Only when the intermediate result has no other reader (and is not a graph output) and the
weights (and bias) are constants; a weight shared with another node is copied, not changed.
Repeats until nothing folds, so ``Conv * s1 + t1 * s2`` folds completely.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node
from .rewrite import Rewriter, Uses, broadcast_keeps_shape, const_value, node_opset

_ANCHORS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
_AFFINE = ("Mul", "Div", "Add", "Sub")
_FLOATS = ("float32", "float64", "float16")
MAX_ROUNDS = 8


def fold_scale_bias(graph: Graph) -> Graph:
    for _ in range(MAX_ROUNDS):
        new = _fold_round(graph)
        if new is graph:
            break
        graph = new
    return graph


def _fold_round(graph: Graph) -> Graph:
    uses = Uses(graph)
    producers = graph.producers()
    rw = Rewriter(graph)
    for node in graph.nodes:
        if node.domain not in ("", "ai.onnx") or rw.replaced(node):
            continue
        if node.op in _AFFINE:
            _try_affine(node, graph, uses, producers, rw)
        elif node.op == "BatchNormalization":
            _try_batchnorm(node, graph, uses, producers, rw)
    return rw.finish()


# --- matching --------------------------------------------------------------------------------

def _split_operands(node: Node, graph: Graph) -> tuple[str, np.ndarray] | None:
    """(activation input, constant operand) of an affine node; None if not that shape."""
    if len(node.inputs) != 2:
        return None
    a, b = node.inputs
    cb = const_value(graph, b)
    if cb is not None and not graph.is_constant(a):
        return a, cb
    ca = const_value(graph, a)
    if ca is not None and node.op in ("Mul", "Add") and not graph.is_constant(b):
        return b, ca
    return None


def _channel_vector(c: np.ndarray, out_shape: tuple, axis: int) -> np.ndarray | None:
    """``c`` as a vector over the channel axis of ``out_shape`` (length C), or None when it
    varies along another axis or would change the output's shape."""
    rank = len(out_shape)
    if c.ndim > rank or not broadcast_keeps_shape(out_shape, c.shape) or c.dtype.kind != "f":
        return None
    padded = c.reshape((1,) * (rank - c.ndim) + c.shape)
    if any(d != 1 for k, d in enumerate(padded.shape) if k != axis):
        return None
    vec = padded.reshape(-1).astype(np.float64)
    return np.broadcast_to(vec, (out_shape[axis],)).copy()


def _anchor_of(name: str, reader: Node, graph: Graph, uses: Uses, producers: dict, rw: Rewriter):
    """The foldable anchor making ``name`` (which only ``reader`` reads), or None."""
    anchor = producers.get(name)
    if anchor is None or anchor.op not in _ANCHORS or anchor.domain not in ("", "ai.onnx"):
        return None
    if rw.replaced(anchor) or not uses.only_reader(name, reader) or len([o for o in anchor.outputs if o]) != 1:
        return None
    if graph.tensors[name].dtype not in _FLOATS or not graph.is_constant(anchor.inputs[1]):
        return None
    if anchor.op == "MatMul" and graph.tensors[anchor.inputs[1]].value.ndim != 2:
        return None
    if anchor.op in ("Conv", "ConvTranspose") and len(graph.tensors[name].shape) < 2:
        return None
    has_bias = len(anchor.inputs) > 2 and anchor.inputs[2]
    if has_bias and not graph.is_constant(anchor.inputs[2]):
        return None
    return anchor


def _channel_axis(anchor: Node, out_shape: tuple) -> int:
    return 1 if anchor.op in ("Conv", "ConvTranspose") else len(out_shape) - 1


def _try_affine(node: Node, graph: Graph, uses: Uses, producers: dict, rw: Rewriter) -> None:
    split = _split_operands(node, graph)
    if split is None:
        return
    y, c = split
    out = node.outputs[0]
    out_shape = tuple(graph.tensors[out].shape)
    if tuple(graph.tensors[y].shape) != out_shape:
        return
    anchor = _anchor_of(y, node, graph, uses, producers, rw)
    if anchor is not None:
        vec = _channel_vector(c, out_shape, _channel_axis(anchor, out_shape))
        if vec is None:
            return
        scale, shift = _as_affine(node.op, vec)
        if scale is None or (shift is not None and anchor.op == "MatMul"):
            return
        new = _apply(anchor, scale, shift, graph, rw)
        if new is not None:
            rw.replace(anchor, [new.with_(outputs=(out,))])
            rw.replace(node, [])
        return
    # the exported Linear: MatMul(x, W) + b, then this op
    add = producers.get(y)
    if add is None or add.op != "Add" or rw.replaced(add) or not uses.only_reader(y, node):
        return
    split2 = _split_operands(add, graph)
    if split2 is None:
        return
    z, b = split2
    if tuple(graph.tensors[z].shape) != out_shape:
        return
    anchor = _anchor_of(z, add, graph, uses, producers, rw)
    if anchor is None or anchor.op != "MatMul":
        return
    bvec = _channel_vector(b, out_shape, len(out_shape) - 1)
    vec = _channel_vector(c, out_shape, len(out_shape) - 1)
    if bvec is None or vec is None:
        return
    scale, shift = _as_affine(node.op, vec)
    if scale is None:
        return
    new_bias = bvec * scale + (shift if shift is not None else 0.0)
    new_anchor = _apply(anchor, scale, None, graph, rw)
    if new_anchor is None:
        return
    bname = rw.constant(f"{add.inputs[0] if graph.is_constant(add.inputs[0]) else add.inputs[1]}_folded",
                        new_bias.astype(graph.tensors[out].dtype))
    rw.replace(anchor, [new_anchor])
    rw.replace(add, [add.with_(inputs=(z, bname), outputs=(out,))])
    rw.replace(node, [])


def _as_affine(op: str, vec: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(scale, shift) such that ``op(y, vec)`` is ``y * scale + shift``."""
    if op == "Mul":
        return vec, None
    if op == "Div":
        if np.any(vec == 0):
            return None, None
        return 1.0 / vec, None
    if op == "Add":
        return np.ones_like(vec), vec
    return np.ones_like(vec), -vec


def _try_batchnorm(bn: Node, graph: Graph, uses: Uses, producers: dict, rw: Rewriter) -> None:
    """BatchNormalization on a 2-D Gemm / MatMul output: a per-column affine map."""
    if int(bn.attrs.get("training_mode", 0)) or len([o for o in bn.outputs if o]) != 1:
        return
    y = bn.inputs[0]
    shape = tuple(graph.tensors[y].shape)
    if len(shape) != 2:
        return
    params = [const_value(graph, n) for n in bn.inputs[1:5]]
    if any(p is None for p in params):
        return
    anchor = _anchor_of(y, bn, graph, uses, producers, rw)
    if anchor is None or anchor.op not in ("Gemm", "MatMul"):
        return
    gamma, beta, mean, var = (p.astype(np.float64).reshape(-1) for p in params)
    eps = float(bn.attrs.get("epsilon", 1e-5))
    scale = np.broadcast_to(gamma / np.sqrt(var + eps), (shape[1],))
    shift = np.broadcast_to(beta - mean * gamma / np.sqrt(var + eps), (shape[1],))
    out = bn.outputs[0]
    if anchor.op == "Gemm":
        new = _apply(anchor, scale, shift, graph, rw)
        if new is not None:
            rw.replace(anchor, [new.with_(outputs=(out,))])
            rw.replace(bn, [])
        return
    new = _apply(anchor, scale, None, graph, rw)
    if new is None:
        return
    tname = rw.constant(f"{out}__bnshift", shift.astype(graph.tensors[out].dtype))
    rw.replace(anchor, [new])
    rw.replace(bn, [Node("Add", (y, tname), (out,), {}, name=bn.name, opset=max(node_opset(bn, graph), 14))])


# --- rewriting the anchor ---------------------------------------------------------------------

def _apply(anchor: Node, scale: np.ndarray, shift: np.ndarray | None, graph: Graph,
           rw: Rewriter) -> Node | None:
    """``anchor`` with its output multiplied by ``scale`` and then ``shift`` added, per
    output channel (vectors of length C), by new weight / bias constants."""
    w_name = anchor.inputs[1]
    w = graph.tensors[w_name].value
    if w.dtype.name not in _FLOATS:
        return None
    op = anchor.op
    inputs = list(anchor.inputs)
    if not np.all(scale == 1.0):
        w_new = _scaled_weight(anchor, w, scale)
        if w_new is None:
            return None
        inputs[1] = rw.constant(f"{w_name}_scaled", w_new.astype(w.dtype))
    attrs = dict(anchor.attrs)
    if op in ("Conv", "ConvTranspose"):
        has_bias = len(inputs) > 2 and inputs[2]
        b = graph.tensors[inputs[2]].value.astype(np.float64) if has_bias else np.zeros_like(scale)
        if has_bias or shift is not None or not np.all(scale == 1):
            b_new = b * scale + (shift if shift is not None else 0.0)
            if has_bias or np.any(b_new != 0):
                base = inputs[2] if has_bias else f"{anchor.outputs[0]}_bias"
                inputs[2:3] = [rw.constant(f"{base}_scaled", b_new.astype(w.dtype))]
    elif op == "Gemm":
        has_c = len(inputs) > 2 and inputs[2]
        if has_c or shift is not None:
            beta = float(attrs.get("beta", 1.0))
            c = graph.tensors[inputs[2]].value.astype(np.float64) * beta if has_c else np.zeros(())
            c_new = c * scale + (shift if shift is not None else 0.0)
            base = inputs[2] if has_c else f"{anchor.outputs[0]}_bias"
            inputs[2:3] = [rw.constant(f"{base}_scaled", c_new.astype(w.dtype))]
            attrs["beta"] = 1.0
    return anchor.with_(inputs=tuple(inputs), attrs=attrs)


def _scaled_weight(anchor: Node, w: np.ndarray, scale: np.ndarray) -> np.ndarray | None:
    """The weight of ``anchor`` with output channel ``k`` multiplied by ``scale[k]``."""
    w64 = w.astype(np.float64)
    if anchor.op == "Conv":                   # W [M, C/group, k...]
        return w64 * scale.reshape((-1,) + (1,) * (w.ndim - 1))
    if anchor.op == "ConvTranspose":          # W [C, M/group, k...]
        group = int(anchor.attrs.get("group", 1))
        cin, mg = w.shape[0], w.shape[1]
        if cin % group:
            return None
        channel = (np.arange(cin)[:, None] // (cin // group)) * mg + np.arange(mg)[None, :]
        return w64 * scale[channel].reshape((cin, mg) + (1,) * (w.ndim - 2))
    if anchor.op == "Gemm" and int(anchor.attrs.get("transB", 0)):   # B [N, K]
        return w64 * scale[:, None]
    return w64 * scale[None, :]               # Gemm B [K, N], MatMul W [K, N]
