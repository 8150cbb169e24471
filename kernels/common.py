"""Helpers shared by operator modules: broadcasting, axis normalisation, dtype checks."""
from __future__ import annotations

from typing import Callable, Sequence

from mlc.loop.expr import Expr, as_expr, const, is_float


def broadcast_shape(*shapes: Sequence[int]) -> tuple:
    rank = max(len(s) for s in shapes)
    out = []
    for d in range(rank):
        dims = {s[len(s) - rank + d] for s in shapes if len(s) - rank + d >= 0}
        dims.discard(1)
        if len(dims) > 1:
            raise ValueError(f"shapes {list(map(list, shapes))} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def broadcast_load(tensor, out_index: Sequence[Expr]) -> Expr:
    """``tensor`` read at ``out_index`` under numpy broadcasting (size-1 dims read index 0)."""
    shape = tensor.shape
    rank = len(out_index)
    idx = []
    for d, n in enumerate(shape):
        if n == 1:
            idx.append(0)
        else:
            idx.append(out_index[rank - len(shape) + d])
    return tensor[tuple(idx)] if idx else tensor[()]


def norm_axis(axis: int, rank: int, what: str = "axis") -> int:
    a = axis + rank if axis < 0 else axis
    if not 0 <= a < max(rank, 1):
        raise ValueError(f"{what} {axis} is out of range for rank {rank}")
    return a


def elementwise(ctx, fn: Callable[..., Expr], name: str, dtype: str | None = None):
    """A stage computing ``fn(*input values)`` over the broadcast output shape."""
    ins = [ctx.input(i) for i in range(len(ctx.inputs)) if ctx.inputs[i] is not None]
    shape = ctx.out_shape(0)
    return ctx.compute(shape, lambda *i: fn(*[broadcast_load(t, i) for t in ins]), name,
                       dtype=dtype or ctx.out_dtype(0))


def fconst(value: float, dtype: str) -> Expr:
    return const(value, dtype)
