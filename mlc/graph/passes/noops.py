"""Remove nodes that do nothing, and collapse pairs that undo each other.

Removed (the output *is* an input, value for value):

* Identity; Dropout in inference (no ``training_mode``, or a constant false one) — its
  mask output, if anything reads it, becomes a constant all-true tensor;
* Reshape / Flatten / Squeeze / Unsqueeze / Expand whose output has the input's shape;
* Transpose with the identity permutation; Cast / CastLike to the input's own type;
* Pad with all-zero pads; Slice with positive steps whose output has the input's shape
  (with steps >= 1 an unchanged extent means the whole axis); Concat, Sum, Mean, Max, Min
  of a single input;
* ``x + 0``, ``x - 0``, ``x * 1``, ``x / 1``, ``x ** 1`` by a constant whose every element is
  the neutral value, when broadcasting it does not change ``x``'s shape (``-0.0 + 0`` gives
  ``+0.0``: the sign of a zero is the one thing this may change);
* Resize / Upsample whose scales are all 1 (or whose ``sizes`` equal the input's shape
  with the default ``stretch`` policy), in any mode but ``tf_crop_and_resize``.

Collapsed:

* ``Transpose(Transpose(x, p1), p2)`` is ``Transpose(x, p1[p2])``, and disappears when that
  is the identity;
* a chain of views (Reshape / Flatten / Squeeze / Unsqueeze) is one Reshape of the first
  view's input, and disappears when it restores that input's shape.

Consumers of a removed node read its input instead.  A removed node's output that is a
graph output keeps its name: the producer of the input is renamed to write it directly
when it can be (the input is an intermediate no one else pins), otherwise the node stays
as an ``Identity`` (free: a view, which the runtime copies into the output).  A tensor read
implicitly by a control-flow body is never removed or renamed.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node
from .dce import eliminate_dead_code
from .rewrite import Rewriter, Uses, all_equal, broadcast_keeps_shape, const_value, node_opset

_VIEWS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")
_SAME_SHAPE = _VIEWS + ("Expand",)
_NEUTRAL = {"Add": (0, True), "Sub": (0, False), "Mul": (1, True), "Div": (1, False), "Pow": (1, False)}
_ONE_INPUT = ("Concat", "Sum", "Mean", "Max", "Min")


def remove_noops(graph: Graph) -> Graph:
    uses = Uses(graph)
    rw = Rewriter(graph)
    current: dict[str, Node] = {}          # tensor -> the node producing it after rewrites
    renamed_outputs: dict[str, str] = {}   # producer output -> graph output name it now has
    made_by = graph.producers()

    for node in graph.nodes:
        ins = tuple(rw.resolve(i) if i else i for i in node.inputs)
        if ins != node.inputs:
            node_r = node.with_(inputs=ins)
        else:
            node_r = node
        src = None
        new = None
        if node.domain in ("", "ai.onnx"):
            src = identity_source(node_r, graph, uses)
            if src is None:
                new, src = _compose(node_r, graph, current, rw)
        if src is None:
            emitted = new or node_r
            rw.replace(node, [emitted])
            for o in emitted.outputs:
                if o:
                    current[o] = emitted
            continue
        out = node.outputs[0]
        t_out, t_src = graph.tensors.get(out), rw.tensors.get(src)
        same_type = t_out is not None and t_src is not None and t_out.dtype == t_src.dtype and \
            tuple(t_out.shape) == tuple(t_src.shape)
        if not same_type:
            rw.replace(node, [new or node_r])
            for o in (new or node_r).outputs:
                if o:
                    current[o] = new or node_r
            continue
        if node.op == "Dropout" and len(node.outputs) > 1 and node.outputs[1]:
            _constant_mask(node.outputs[1], rw)
        if uses.is_free(out):
            rw.renames[out] = src
            rw.replace(node, [])
            continue
        # `out` is a graph output (or pinned): keep its name
        producer = current.get(src)
        if (uses.is_free(src) and src not in graph.inputs and producer is not None
                and src in made_by and src not in renamed_outputs and not graph.is_constant(src)):
            renamed_outputs[src] = out
            rw.renames[src] = out
            rw.replace(node, [])
            current[out] = producer
            continue
        ident = Node("Identity", (src,), (out,), {}, name=node.name, opset=max(node_opset(node, graph), 1)) \
            if node.op != "Identity" or node_r.inputs[0] != src else node_r
        rw.replace(node, [ident])
        current[out] = ident

    if not rw.changed:
        return graph
    result = rw.finish()
    if renamed_outputs:
        result = result.replace(nodes=tuple(
            n.with_(outputs=tuple(renamed_outputs.get(o, o) for o in n.outputs))
            if any(o in renamed_outputs for o in n.outputs) else n for n in result.nodes))
        result = result.with_nodes(result.nodes)
    return eliminate_dead_code(result)


def _constant_mask(name: str, rw: Rewriter) -> None:
    """An inference Dropout's mask is all true: it becomes a constant of that name."""
    t = rw.tensors[name]
    rw.set_constant(name, np.ones(t.shape, dtype=t.dtype))


# --- what is a no-op ------------------------------------------------------------------------

def identity_source(node: Node, graph: Graph, uses: Uses) -> str | None:
    """The input whose value the node's (only live) output equals, or None."""
    op = node.op
    ins = node.inputs
    if not ins or not ins[0] or not node.outputs or not node.outputs[0]:
        return None
    x = ins[0]
    tx, ty = graph.tensors.get(x), graph.tensors.get(node.outputs[0])
    if tx is None or ty is None:
        return None
    same = tuple(tx.shape) == tuple(ty.shape) and tx.dtype == ty.dtype
    if op == "Identity":
        return x
    if op == "Dropout":
        mask = node.outputs[1] if len(node.outputs) > 1 else ""
        if mask and mask in uses.pinned:
            return None
        if len(ins) > 2 and ins[2]:
            mode = const_value(graph, ins[2])
            if mode is None or bool(np.asarray(mode).any()):
                return None
        return x if same else None
    if op in _NEUTRAL:
        neutral, commutative = _NEUTRAL[op]
        if len(ins) != 2:
            return None
        candidates = [(ins[0], ins[1])] + ([(ins[1], ins[0])] if commutative else [])
        for keep, drop in candidates:
            tk, td = graph.tensors.get(keep), graph.tensors.get(drop)
            if tk is None or td is None or tk.dtype != ty.dtype or tuple(tk.shape) != tuple(ty.shape):
                continue
            if all_equal(graph, drop, neutral) and broadcast_keeps_shape(tk.shape, td.shape):
                return keep
        return None
    if not same:
        return None
    if op in _SAME_SHAPE:
        return x
    if op == "Transpose":
        perm = node.attrs.get("perm")
        rank = len(tx.shape)
        perm = list(range(rank))[::-1] if perm is None else [int(p) for p in perm]
        return x if perm == list(range(rank)) else None
    if op in ("Cast", "CastLike"):
        return x
    if op == "Pad":
        if node_opset(node, graph) < 11:
            pads = node.attrs.get("pads", [])
            return x if all(int(p) == 0 for p in pads) else None
        if len(ins) < 2 or not ins[1]:
            return x
        return x if all_equal(graph, ins[1], 0) else None
    if op == "Slice":
        if node_opset(node, graph) >= 10 and len(ins) > 4 and ins[4]:
            steps = const_value(graph, ins[4])
            if steps is None or not bool(np.all(steps > 0)):
                return None
        return x
    if op in _ONE_INPUT:
        live = [i for i in ins if i]
        return x if len(live) == 1 else None
    if op in ("Resize", "Upsample"):
        return x if _resize_is_identity(node, graph) else None
    return None


def _resize_is_identity(node: Node, graph: Graph) -> bool:
    mode = node.attrs.get("coordinate_transformation_mode", "half_pixel")
    if isinstance(mode, bytes):
        mode = mode.decode()
    if mode == "tf_crop_and_resize":
        return False
    ins = node.inputs
    if node.op == "Upsample" or node_opset(node, graph) < 11:
        if len(ins) > 1 and ins[1]:
            return all_equal(graph, ins[1], 1.0)
        scales = node.attrs.get("scales")
        return scales is not None and all(float(s) == 1.0 for s in scales)
    if len(ins) > 2 and ins[2] and const_value(graph, ins[2]) is not None and const_value(graph, ins[2]).size:
        return all_equal(graph, ins[2], 1.0)
    if len(ins) > 3 and ins[3]:
        policy = node.attrs.get("keep_aspect_ratio_policy", "stretch")
        if isinstance(policy, bytes):
            policy = policy.decode()
        return policy == "stretch" and const_value(graph, ins[3]) is not None
    return False


# --- pairs that compose ---------------------------------------------------------------------

def _compose(node: Node, graph: Graph, current: dict, rw: Rewriter) -> tuple[Node | None, str | None]:
    """(replacement node, None) when ``node`` composes with its producer into one node;
    (None, source) when the composition is the identity; (None, None) otherwise."""
    if not node.inputs or not node.inputs[0]:
        return None, None
    prev = current.get(node.inputs[0])
    if prev is None or prev.domain not in ("", "ai.onnx") or not prev.inputs or not prev.inputs[0]:
        return None, None
    x = prev.inputs[0]
    tx = rw.tensors.get(x)
    ty = graph.tensors.get(node.outputs[0])
    if tx is None or ty is None:
        return None, None
    if node.op == "Transpose" and prev.op == "Transpose":
        rank = len(tx.shape)
        p1 = prev.attrs.get("perm")
        p2 = node.attrs.get("perm")
        p1 = list(range(rank))[::-1] if p1 is None else [int(p) for p in p1]
        p2 = list(range(rank))[::-1] if p2 is None else [int(p) for p in p2]
        perm = [p1[i] for i in p2]
        if perm == list(range(rank)):
            return None, x
        return node.with_(inputs=(x,), attrs={**node.attrs, "perm": perm}), None
    if node.op in _VIEWS and prev.op in _VIEWS and len(prev.outputs) == 1:
        if tuple(ty.shape) == tuple(tx.shape):
            return None, x
        if any(int(d) == 0 for d in ty.shape):
            return None, None
        shape = rw.constant(f"{node.outputs[0]}__shape", np.array(ty.shape, dtype=np.int64))
        return Node("Reshape", (x, shape), node.outputs, {}, name=node.name,
                    opset=max(node_opset(node, graph), 5)), None
    return None, None
