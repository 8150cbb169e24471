"""Fold inference-mode BatchNormalization into the convolution or Gemm before it.

``BN(Conv(x, W, b))`` is ``Conv(x, W * s, (b - mean) * s + beta)`` with
``s = gamma / sqrt(var + eps)`` per output channel, computed once at compile time, so the
normalisation costs nothing at run time.  Applies when the conv output feeds only the
BatchNormalization and W (and b) and the BN parameters are constants.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Tensor


def fold_batchnorm(graph: Graph) -> Graph:
    producers = graph.producers()
    consumers = graph.consumers()
    outputs = set(graph.outputs)
    replace: dict = {}     # id(node) -> new node (or None to drop)
    new_tensors: dict = {}
    for bn in graph.nodes:
        if bn.op != "BatchNormalization" or len([o for o in bn.outputs if o]) != 1:
            continue
        if int(bn.attrs.get("training_mode", 0)):
            continue
        src = bn.inputs[0]
        conv = producers.get(src)
        if conv is None or conv.op not in ("Conv", "ConvTranspose") or id(conv) in replace:
            continue
        if len(consumers.get(src, [])) != 1 or src in outputs:
            continue
        params = [graph.tensors[n].value if n in graph.tensors else None for n in bn.inputs[1:5]]
        if any(p is None for p in params) or not graph.is_constant(conv.inputs[1]):
            continue
        has_bias = len(conv.inputs) > 2 and conv.inputs[2]
        if has_bias and not graph.is_constant(conv.inputs[2]):
            continue
        gamma, beta, mean, var = (p.astype(np.float64) for p in params)
        eps = float(bn.attrs.get("epsilon", 1e-5))
        scale = gamma / np.sqrt(var + eps)
        w = graph.tensors[conv.inputs[1]].value
        if w.dtype != np.float32:
            continue
        if conv.op == "Conv":
            w_new = (w.astype(np.float64) * scale.reshape(-1, *([1] * (w.ndim - 1)))).astype(np.float32)
        else:  # ConvTranspose weights are [C_in, C_out / group, ...]
            group = int(conv.attrs.get("group", 1))
            if group != 1:
                continue
            w_new = (w.astype(np.float64) * scale.reshape(1, -1, *([1] * (w.ndim - 2)))).astype(np.float32)
        b = graph.tensors[conv.inputs[2]].value.astype(np.float64) if has_bias else np.zeros_like(scale)
        b_new = ((b - mean) * scale + beta).astype(np.float32)
        wname = graph.fresh_name(conv.inputs[1] + "_bnfolded")
        bname = graph.fresh_name((conv.inputs[2] if has_bias else conv.outputs[0]) + "_bnbias")
        new_tensors[wname] = Tensor.constant(wname, w_new)
        new_tensors[bname] = Tensor.constant(bname, b_new)
        graph = graph.replace(tensors={**graph.tensors, wname: new_tensors[wname], bname: new_tensors[bname]})
        replace[id(conv)] = conv.with_(inputs=(conv.inputs[0], wname, bname), outputs=(bn.outputs[0],))
        replace[id(bn)] = None
    if not replace:
        return graph
    nodes = []
    for node in graph.nodes:
        if id(node) in replace:
            if replace[id(node)] is not None:
                nodes.append(replace[id(node)])
        else:
            nodes.append(node)
    return graph.with_nodes(nodes, new_tensors)
