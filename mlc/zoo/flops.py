"""FLOP counting for ONNX models, for GFLOP/s reporting.

Convention (the one behind the published numbers, e.g. torchvision's "1.81 GFLOPS" for
ResNet-18, which are multiply-accumulates): only the dense ops -- ``Conv``, ``Gemm`` and
``MatMul``, and their integer forms ``ConvInteger`` and ``MatMulInteger`` -- are counted,
and one multiply-add counts as **2** operations. Bias adds, normalization, activations,
pooling and other element-wise work are not counted.
"""

from __future__ import annotations

import math

import onnx
from onnx import shape_inference


def _bind_inputs(model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]]) -> onnx.ModelProto:
    """A copy of ``model`` whose inputs named in ``input_shapes`` have those static shapes
    (values for symbolic dimensions)."""
    bound = onnx.ModelProto()
    bound.CopyFrom(model)
    for vi in bound.graph.input:
        if vi.name in input_shapes:
            dims = vi.type.tensor_type.shape.dim
            for d, n in zip(dims, input_shapes[vi.name]):
                d.Clear()
                d.dim_value = int(n)
    return bound


def _static_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Shapes of every value whose shape onnx shape inference can fully determine."""
    inferred = shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
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
    if node.op_type in ("Conv", "ConvInteger"):
        out = shapes[node.output[0]]
        w = shapes[node.input[1]]                 # [C_out, C_in / group, *kernel]
        return 2 * math.prod(out) * math.prod(w[1:])
    if node.op_type == "Gemm":
        a, b = shapes[node.input[0]], shapes[node.input[1]]
        m, k = (a[1], a[0]) if attrs.get("transA", 0) else a
        n = b[0] if attrs.get("transB", 0) else b[1]
        return 2 * m * k * n
    if node.op_type in ("MatMul", "MatMulInteger"):
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


def count_flops(model: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]] | None = None) -> int:
    """Total FLOPs of one inference of ``model``, multiply-add = 2. The shapes must be
    static, or made so by ``input_shapes`` (input name -> shape, for symbolic dims)."""
    shapes = _static_shapes(_bind_inputs(model, input_shapes) if input_shapes else model)
    return sum(node_flops(n, shapes) for n in model.graph.node)
