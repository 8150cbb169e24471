"""Outputs whose size depends on the data (NonMaxSuppression's selected boxes).

mlc needs static shapes, so such an output gets its maximum shape (the op says how many
rows it can have at most) plus an int64 row-count output that the kernel writes; the
runtime trims the output to that many rows.  This works when the output leaves the model
directly; an op reading it would see the padding, so that is refused with a clear error.
"""
from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from ..errors import UnsupportedError
from ..registry import lookup
from .onnx_types import dims, normalize_domain


def bound_data_dependent_outputs(wg):
    """Give bounded static shapes and row-count outputs to ops that declare them."""
    graph_outputs = {vi.name for vi in wg.outputs}
    readers: dict = {}
    for node in wg.nodes:
        for i in node.input:
            readers.setdefault(i, []).append(node)
    for k, node in enumerate(wg.nodes):
        opdef = lookup(node.op_type, normalize_domain(node.domain))
        if opdef is None or opdef.bounded_rows is None or not node.output or not node.output[0]:
            continue
        out = node.output[0]
        known = dims(wg.types.get(out))
        if known is not None and all(isinstance(d, int) and d >= 0 for d in known):
            continue                                  # already static (folded)
        users = [n.name or n.op_type for n in readers.get(out, [])]
        if users or out not in graph_outputs:
            raise UnsupportedError(
                f"{node.op_type} node {node.name!r}: its output {out!r} has a data-dependent number of "
                f"rows; mlc supports it as a model output only, but it is read by {users}",
                [(node.op_type, wg.opsets.get(normalize_domain(node.domain), 0), node.name,
                  "data-dependent output read by other nodes")])
        consts = {i: wg.consts.get(i) for i in node.input if i}
        shapes = {i: dims(wg.types.get(i)) if i not in wg.consts else tuple(wg.consts[i].shape)
                  for i in node.input if i}
        rows = int(opdef.bounded_rows(node, consts, shapes))
        rest = list(known[1:]) if known is not None else []
        elem = wg.types[out].tensor_type.elem_type if out in wg.types else TensorProto.INT64
        count = f"{out}__rows"
        wg.types[out] = helper.make_tensor_type_proto(elem, [rows] + rest)
        wg.types[count] = helper.make_tensor_type_proto(TensorProto.INT64, [])
        new = onnx.NodeProto()
        new.CopyFrom(node)
        new.output.append(count)
        wg.nodes[k] = new
        wg.row_counts[out] = count
    return wg
