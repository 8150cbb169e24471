"""Evaluate one ONNX node with ``onnx.reference``: how mlc folds constants.

ONNX's reference implementation is the definition of each op, so a folded value is what
the op *means*, not what mlc's kernel computes.  Two callers share this:

* the frontend's fold-to-a-fixed-point (``mlc.frontend.fold``), on ONNX NodeProtos, while
  shape subgraphs are being resolved;
* the graph pass ``fold_constants``, on mlc :class:`Node` s that other passes left with
  all-constant inputs (:func:`node_to_onnx` turns one back into a NodeProto).

It lives in the graph layer so that the frontend (the layer above) imports it, never the
reverse.  Each evaluation builds a one-node model (about 50 µs).
"""
from __future__ import annotations

import logging
import warnings
from typing import Mapping

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from ..ir import Graph, Node

log = logging.getLogger(__name__)

NONDETERMINISTIC_OPS = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform",
                                  "RandomUniformLike", "Multinomial", "Bernoulli"})
EVALUABLE_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
# onnx.reference implements these ops only from a later version whose inputs and attributes
# are a superset of the earlier ones: evaluate older nodes with that version
REFERENCE_STANDINS = {"DequantizeLinear": 19}


def run_node(node: onnx.NodeProto, feeds: Mapping[str, object], opsets: Mapping[str, int],
             ir_version: int = 8) -> list | None:
    """The values of ``node``'s (non-omitted) outputs given its inputs, or None when
    onnx.reference cannot evaluate it.  Values are returned as onnx.reference gives them
    (arrays, numpy scalars, or sequences/maps for non-tensor outputs)."""
    outputs = [name for name in node.output if name]
    # typed inputs: onnx.reference needs them to expand context-dependent function ops
    inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
              if isinstance(v, np.ndarray) else onnx.ValueInfoProto(name=n) for n, v in feeds.items()]
    graph = helper.make_graph([node], "fold", inputs, [onnx.ValueInfoProto(name=n) for n in outputs])
    opsets = dict(opsets)
    standin = REFERENCE_STANDINS.get(node.op_type)
    if standin and node.domain in ("", "ai.onnx") and opsets.get("", standin) < standin:
        opsets[""] = standin
    # IR >= 4 so initializers that are not graph inputs count as constants
    model = helper.make_model(graph, ir_version=max(int(ir_version), 4),
                              opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return list(ReferenceEvaluator(model).run(None, dict(feeds)))
    except Exception as e:      # onnx.reference raises many kinds; the node simply stays
        log.debug("not folding %s %r: %s", node.op_type, node.name, e)
        return None


# --- mlc Node -> NodeProto ------------------------------------------------------------------

_A = onnx.AttributeProto


def node_to_onnx(node: Node, graph: Graph) -> onnx.NodeProto | None:
    """``node`` as an ONNX NodeProto, or None when an attribute has no ONNX form here
    (subgraphs, type protos).  Attribute types come from the op's schema where onnx knows
    it — mlc keeps attributes as plain Python values, and ``[]`` or ``1`` alone do not say
    whether they were INTS/FLOATS or INT/FLOAT."""
    schema = None
    try:
        version = node.opset or graph.opsets.get(node.domain or "", 0) or onnx.defs.onnx_opset_version()
        schema = onnx.defs.get_schema(node.op, version, node.domain or "")
    except Exception:       # SchemaError: an op or domain onnx does not know
        schema = None
    attrs = []
    for key, value in node.attrs.items():
        declared = schema.attributes[key].type if schema is not None and key in schema.attributes else None
        attr = _attribute(key, value, declared)
        if attr is None:
            return None
        attrs.append(attr)
    proto = helper.make_node(node.op, list(node.inputs), list(node.outputs), name=node.name or None,
                             domain=node.domain or None)
    proto.attribute.extend(attrs)
    return proto


def _attribute(key: str, value, declared) -> onnx.AttributeProto | None:
    if isinstance(value, Graph) or (isinstance(value, (list, tuple)) and any(isinstance(v, Graph) for v in value)):
        return None
    try:
        if declared == _A.FLOAT:
            return helper.make_attribute(key, float(value))
        if declared == _A.INT:
            return helper.make_attribute(key, int(value))
        if declared == _A.FLOATS:
            return helper.make_attribute(key, [float(v) for v in value], attr_type=_A.FLOATS)
        if declared == _A.INTS:
            return helper.make_attribute(key, [int(v) for v in value], attr_type=_A.INTS)
        if declared == _A.STRINGS:
            return helper.make_attribute(key, [str(v) if not isinstance(v, bytes) else v for v in value],
                                         attr_type=_A.STRINGS)
        if isinstance(value, np.ndarray):
            return helper.make_attribute(key, numpy_helper.from_array(value))
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, np.ndarray) for v in value):
            return helper.make_attribute(key, [numpy_helper.from_array(v) for v in value])
        if isinstance(value, (list, tuple)) and not value:
            return None         # an empty list of unknown element type
        if isinstance(value, onnx.TypeProto) or isinstance(value, (list, tuple)) and \
                any(isinstance(v, onnx.TypeProto) for v in value):
            return None
        return helper.make_attribute(key, value)
    except (TypeError, ValueError):
        return None
