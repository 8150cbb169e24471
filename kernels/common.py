"""Helpers shared by operator modules: broadcasting, axis normalisation, dtype checks."""
from __future__ import annotations

from typing import Callable, Sequence

from mlc.loop.expr import Expr, const


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


def window_geometry(ctx, spatial_in, spatial_out, kernel=None):
    """(kernel, strides, dilations, pads_begin, pads_end) of a sliding window (Conv,
    pooling), with ``auto_pad`` resolved: SAME_UPPER puts the odd padding pixel at the end,
    SAME_LOWER at the start.  ``kernel`` defaults to the ``kernel_shape`` attribute."""
    kernel = [int(k) for k in (kernel if kernel is not None else ctx.attr("kernel_shape"))]
    nd = len(kernel)
    strides = [int(s) for s in (ctx.attr("strides", None) or [1] * nd)]
    dil = [int(d) for d in (ctx.attr("dilations", None) or [1] * nd)]
    auto = ctx.attr("auto_pad", "NOTSET")
    if isinstance(auto, bytes):
        auto = auto.decode()
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for i in range(nd):
            total = max(0, (spatial_out[i] - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 - spatial_in[i])
            b = total // 2 if auto == "SAME_UPPER" else total - total // 2
            begin.append(b)
            end.append(total - b)
    elif auto == "VALID":
        begin, end = [0] * nd, [0] * nd
    else:
        pads = [int(p) for p in (ctx.attr("pads", None) or [0] * (2 * nd))]
        begin, end = pads[:nd], pads[nd:]
    return kernel, strides, dil, begin, end
