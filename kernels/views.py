"""Operators that only reinterpret memory: between kernels they are free aliases; inside a
fused kernel they are index arithmetic.  (And Dropout, which is a copy in inference.)"""
from __future__ import annotations

import numpy as np

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


for _op in ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"):
    _view(_op)


@register("Dropout", pattern="injective")
def dropout(ctx):
    """Dropout in inference: a copy, and an all-true mask (output 1).  The simplify pass
    removes the common case; this kernel runs when a mask is read or ``training_mode`` is
    an input.  Training mode (random drops) is unsupported unless the ratio is 0."""
    x = ctx.input(0)
    if ctx.has_input(2):
        training = bool(np.asarray(ctx.require_const(2, "training_mode")).reshape(-1)[0])
        ratio = 0.5
        if training and ctx.has_input(1):
            ratio = float(np.asarray(ctx.require_const(1, "ratio")).reshape(-1)[0])
        if training and ratio != 0:
            raise ctx.unsupported("training_mode=true (random dropout) with a ratio other than 0")
    outs = [ctx.compute(ctx.out_shape(0), lambda *i: x[i], "dropout")]
    if len(ctx.node.outputs) > 1 and ctx.node.outputs[1]:
        outs.append(ctx.compute(ctx.out_shape(1), lambda *i: const(True, "bool"), "dropout_mask"))
    return outs
