"""FLOP counting for ONNX models, for GFLOP/s reporting.

Convention (the one behind the published numbers, e.g. torchvision's "1.81 GFLOPS" for
ResNet-18, which are multiply-accumulates): only the dense ops -- ``Conv``, ``Gemm`` and
``MatMul`` -- are counted, and one multiply-add counts as **2** FLOPs. Bias adds,
normalization, activations, pooling and other element-wise work are not counted.
"""

from __future__ import annotations

import math

import onnx
from onnx import shape_inference


def _static_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Shapes of every value whose shape onnx shape inference can fully determine."""
    inferred = shape_inference.infer_shapes(model, strict_mode=True)
    g = inferred.graph
    shapes: dict[str, tuple[int, ...]] = {t.name: tuple(t.dims) for t in g.initializer}
    for vi in [*g.input, *g.value_info, *g.output]:
        dims = vi.type.tensor_type.shape.dim
        if vi.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = tuple(d.dim_value for d in dims)
    return shapes


def node_flops(node: onnx.NodeProto, shapes: dict[str, tuple[int, ...]]) -> int:
    """FLOPs (2 x multiply-adds) of one node; 0 for ops that are not counted."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "Conv":
        out = shapes[node.output[0]]
        w = shapes[node.input[1]]                 # [C_out, C_in / group, *kernel]
        return 2 * math.prod(out) * math.prod(w[1:])
    if node.op_type == "Gemm":
        a, b = shapes[node.input[0]], shapes[node.input[1]]
        m, k = (a[1], a[0]) if attrs.get("transA", 0) else a
        n = b[0] if attrs.get("transB", 0) else b[1]
        return 2 * m * k * n
    if node.op_type == "MatMul":
        a, b = shapes[node.input[0]], shapes[node.input[1]]
        a2 = (1,) + a if len(a) == 1 else a
        b2 = b + (1,) if len(b) == 1 else b
        batch = math.prod(_broadcast(a2[:-2], b2[:-2]))
        return 2 * batch * a2[-2] * a2[-1] * b2[-1]
    return 0


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + a, (1,) * (n - len(b)) + b
    return tuple(max(x, y) for x, y in zip(a, b))


def count_flops(model: onnx.ModelProto) -> int:
    """Total FLOPs of one inference of ``model`` (static shapes required), multiply-add = 2."""
    shapes = _static_shapes(model)
    return sum(node_flops(n, shapes) for n in model.graph.node)
