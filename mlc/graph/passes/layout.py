"""Layout: run convolution regions in the blocked channel layout NCHW[b]c.

A blocked tensor ``[N, C, *S]`` is stored as ``[N, ceil(C/b), *S, b]``: ``b`` channels
(one SIMD vector) contiguous per pixel, so a convolution's inner step is one broadcast
input value times one weight vector.  The pass walks the graph once in order:

* ops that *prefer* blocked (convolutions) start or continue a region; their
  ``blocked`` hook says which inputs must be blocked (a 3-channel first layer reads the
  plain image rather than a 16-lane block that is mostly zeros);
* elementwise / broadcast ops whose activation inputs are blocked stay blocked: per-
  channel constants are re-laid out at compile time, other activation inputs are
  converted;
* ops with a ``blocked`` hook (pooling, channel concat) stay blocked when their input is;
* anything else gets its inputs converted back with ``mlc.FromBlocked``.

Conversions are inserted once per tensor and only where a blocked region meets a plain
one; a graph output is always plain.  Channels beyond C in the last block hold zeros
where it matters (convolution inputs) and finite values elsewhere.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, Tensor
from ...registry import lookup

LAYOUT_DOMAIN = "mlc"


def blocked_shape(shape: tuple, b: int) -> tuple:
    return (shape[0], -(-shape[1] // b)) + tuple(shape[2:]) + (b,)


def block_constant(value: np.ndarray, out_rank: int, b: int) -> np.ndarray | None:
    """A constant broadcast against a rank-``out_rank`` NCHW tensor, in blocked form."""
    v = np.asarray(value)
    if v.ndim > out_rank:
        return None
    v = v.reshape((1,) * (out_rank - v.ndim) + v.shape)
    C = v.shape[1]
    if C == 1:
        return v.reshape(v.shape + (1,))
    pad = (-C) % b
    if pad:
        # repeat the last channel: padded lanes then compute finite values like a real one
        v = np.concatenate([v, np.repeat(v[:, -1:], pad, axis=1)], axis=1)
    CB = v.shape[1] // b
    v = v.reshape((v.shape[0], CB, b) + v.shape[2:])
    return np.ascontiguousarray(np.moveaxis(v, 2, -1))


def convert_to_blocked(graph: Graph, block: int | None = None) -> Graph:
    """Rewrite ``graph`` so that convolution regions run blocked (see module doc)."""
    nodes = list(graph.nodes)
    if not any((lookup(n.op, n.domain) or _NO).prefers_blocked for n in nodes):
        return graph
    tensors = dict(graph.tensors)
    new_nodes: list = []
    blocked: dict = {}        # plain tensor name -> its blocked twin
    plain_of: dict = {}       # blocked twin -> plain tensor name (materialised lazily)
    plain_ready: set = set(graph.inputs) | {n for n, t in tensors.items() if t.value is not None}

    def fresh(base: str) -> str:
        name, i = base, 0
        while name in tensors:
            i += 1
            name = f"{base}_{i}"
        return name

    def as_blocked(name: str, b: int) -> str:
        if name in blocked:
            return blocked[name]
        t = tensors[name]
        bname = fresh(f"{name}__b{b}")
        tensors[bname] = Tensor(bname, t.dtype, blocked_shape(t.shape, b))
        new_nodes.append(Node("ToBlocked", (name,), (bname,), {"block": b}, name=f"to_blocked_{name}",
                              domain=LAYOUT_DOMAIN, opset=1))
        blocked[name] = bname
        plain_of[bname] = name
        return bname

    def as_plain(name: str) -> str:
        """``name`` is a plain tensor name whose value may so far exist only blocked."""
        if name in plain_ready:
            return name
        bname = blocked[name]
        b = tensors[bname].shape[-1]
        t = tensors[name]
        if t.shape[1] % b == 0 and int(np.prod(t.shape[2:])) == 1:
            # [N, C, 1, 1] blocked is [N, C/b, 1, 1, b]: the same bytes in the same order
            sname = fresh(f"{name}__shape")
            tensors[sname] = Tensor.constant(sname, np.array(t.shape, dtype=np.int64))
            new_nodes.append(Node("Reshape", (bname, sname), (name,), {}, name=f"from_blocked_{name}", opset=14))
        else:
            new_nodes.append(Node("FromBlocked", (bname,), (name,), {"block": b}, name=f"from_blocked_{name}",
                                  domain=LAYOUT_DOMAIN, opset=1))
        plain_ready.add(name)
        return name

    for node in nodes:
        opdef = lookup(node.op, node.domain) or _NO
        outs = [o for o in node.outputs if o]
        b = block or 16
        rewrite = None
        if opdef.blocked is not None and (opdef.prefers_blocked or
                                          any(i in blocked for i in node.inputs if i)):
            rewrite = opdef.blocked(node, graph.replace(tensors=tensors), b)
        elif opdef.pattern in ("elemwise", "broadcast") and any(i in blocked for i in node.inputs if i):
            rewrite = _elementwise_blocked(node, tensors, blocked, b)
        if rewrite is None:
            ins = tuple(as_plain(i) if i and i not in plain_ready and i in blocked else i for i in node.inputs)
            new_nodes.append(node.with_(inputs=ins))
            plain_ready.update(outs)
            continue
        new_node, want_blocked = rewrite
        ins = []
        for k, i in enumerate(new_node.inputs):
            if not i:
                ins.append(i)
            elif k in want_blocked:
                ins.append(as_blocked(i, b) if i not in blocked else blocked[i])
            elif i in tensors and tensors[i].value is None and i not in plain_ready:
                ins.append(as_plain(i))
            else:
                ins.append(i)
        new_outs = []
        for o in new_node.outputs:
            if not o:
                new_outs.append(o)
                continue
            t = tensors[o]
            bname = fresh(f"{o}__b{b}")
            tensors[bname] = Tensor(bname, t.dtype, blocked_shape(t.shape, b))
            blocked[o] = bname
            plain_of[bname] = o
            new_outs.append(bname)
        new_nodes.append(new_node.with_(inputs=tuple(ins), outputs=tuple(new_outs)))
    for name in graph.outputs:
        if name in blocked and name not in plain_ready:
            as_plain(name)
    return graph.replace(nodes=tuple(new_nodes), tensors=tensors)


class _NoOp:
    blocked = None
    prefers_blocked = False
    pattern = "opaque"


_NO = _NoOp()


def _elementwise_blocked(node: Node, tensors: dict, blocked: dict, b: int):
    """Keep an elementwise node blocked: activation inputs blocked, constants re-laid out."""
    out = tensors[node.outputs[0]]
    rank = len(out.shape)
    if rank < 3:
        return None
    C = out.shape[1]
    new_inputs = list(node.inputs)
    want = set()
    for k, name in enumerate(node.inputs):
        if not name:
            continue
        t = tensors[name]
        if t.value is not None:
            if t.value.size == 1:
                continue
            v = block_constant(t.value, rank, b)
            if v is None:
                return None
            cname = f"{name}__b{b}"
            if cname not in tensors:
                tensors[cname] = Tensor.constant(cname, v)
            new_inputs[k] = cname
            continue
        shape = tuple(t.shape)
        if len(shape) != rank or shape[1] not in (C, 1):
            return None
        if shape[1] == 1 and name not in blocked:
            return None         # a channel-broadcast activation: keep the op plain
        want.add(k)
    return node.with_(inputs=tuple(new_inputs)), want
