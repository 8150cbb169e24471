"""A model's run-time input signature without importing it: names, dims, dtypes.

Symbolic or missing dims are None.  ``mlc.compile`` uses it to decide whether a model can
be compiled once (every dim known or bound by ``input_shapes``) or is specialised per
input shape at run time.
"""
from __future__ import annotations

from dataclasses import dataclass

import onnx

from .onnx_types import dtype_name


@dataclass(frozen=True)
class InputSpec:
    name: str
    dims: tuple          # int or None per dim
    dtype: str


def input_signature(proto: onnx.ModelProto) -> list:
    inits = {t.name for t in proto.graph.initializer}
    out = []
    for vi in proto.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim) \
            if tt.HasField("shape") else None
        out.append(InputSpec(vi.name, dims, dtype_name(tt.elem_type) or "unknown"))
    return out
