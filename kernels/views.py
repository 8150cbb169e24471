"""Operators that only reinterpret memory: between kernels they are free aliases; inside a
fused kernel they are index arithmetic."""
from __future__ import annotations

from mlc.loop.expr import binary, const
from mlc.registry import register


def reshape_index(in_shape: tuple, out_shape: tuple, idx: tuple) -> tuple:
    """Index into a row-major ``in_shape`` array of the element at ``idx`` of ``out_shape``."""
    flat = const(0, "int64")
    for i, n in zip(idx, out_shape):
        flat = binary("add", binary("mul", flat, n), i)
    out = []
    for n in reversed(in_shape):
        out.append(binary("mod", flat, n) if n != 1 else const(0, "int64"))
        flat = binary("floordiv", flat, n)
    return tuple(reversed(out))


def _view(op_name: str):
    @register(op_name, pattern="view")
    def build(ctx):
        x = ctx.input(0)
        in_shape, out_shape = ctx.in_shape(0), ctx.out_shape(0)
        if in_shape == out_shape:
            f = lambda *i: x[i]
        else:
            f = lambda *i: x[reshape_index(in_shape, out_shape, i)]
        return [ctx.compute(out_shape, f, op_name.lower())]
    return build


for _op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"):
    _view(_op)
