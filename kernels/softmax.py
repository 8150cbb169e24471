"""Softmax, LogSoftmax, Hardmax, and Gelu.

Softmax-like ops reduce over a set of trailing-or-single axes:

* opset >= 13: along the one axis ``axis`` (default -1);
* opset < 13: the input is seen as 2-D, ``[prod(shape[:axis]), prod(shape[axis:])]``
  (default axis 1), so the reduction runs over every axis from ``axis`` on.

They are numerically stable multi-stage computes, max-subtracted:

    mx[o]  = max_r x[o, r]
    s[o]   = 1 / sum_r exp(x[o, r] - mx[o])           (LogSoftmax: log(sum))
    y[o,r] = exp(x[o, r] - mx[o]) * s[o]               (LogSoftmax: (x[o, r] - mx[o]) - s[o])

so the default scheduler runs each statistic as a reduction vectorised along the reduced
axis (attached inside the consumer's row loop when the axis is the innermost one).
Hardmax: mx, then the first index reaching it (row-major over the reduced axes), then a
one-hot.  Gelu (opset 20): ``approximate`` "none" (erf) or "tanh".
"""
from __future__ import annotations

import math

import numpy as np

from mlc.loop.expr import INDEX, binary, call, cast, const, eq, reduce_max, reduce_min, reduce_sum, select
from mlc.registry import register

from .reduce import compute_dtype, merged_reduce_axes, no_empty

_FLOATS = ("float32", "float64", "float16", "bfloat16")


def softmax_axes(ctx) -> list:
    """The reduced axes of a Softmax-like node, by its opset's semantics."""
    rank = len(ctx.in_shape(0))
    if rank == 0:
        raise ctx.unsupported("a scalar input")
    new = ctx.opset >= 13
    axis = ctx.axis(-1 if new else 1, rank)
    return [axis] if new else list(range(axis, rank))


class _Rows:
    """Index bookkeeping for a reduction over ``axes`` of a rank-``rank`` tensor.

    Statistics live in stages of the kept axes' shape; ``x_at(o, r)`` is the input index."""

    def __init__(self, shape, axes):
        self.shape = tuple(shape)
        self.axes = list(axes)
        self.kept = [d for d in range(len(shape)) if d not in axes]
        self.stat_shape = tuple(shape[d] for d in self.kept)

    def stat_index(self, full_idx) -> tuple:
        return tuple(full_idx[d] for d in self.kept)

    def x_index(self, kept_idx, red) -> tuple:
        """``red``: the index expression of each reduced axis, in ``axes`` order."""
        idx, k, r = [], 0, 0
        for d in range(len(self.shape)):
            if d in self.axes:
                idx.append(red[r])
                r += 1
            else:
                idx.append(kept_idx[k])
                k += 1
        return tuple(idx)

    def red_axes(self):
        """(reduce IterVars, index expression per reduced axis); the reduced axes are
        adjacent, so they are one merged axis."""
        return merged_reduce_axes([self.shape[d] for d in self.axes], [list(range(len(self.axes)))])


def _check(ctx, op):
    dt = ctx.in_dtype(0)
    if dt not in _FLOATS:
        raise ctx.unsupported(f"{op} on {dt}")
    no_empty(ctx, ctx.in_shape(0))
    return dt, compute_dtype(dt)


def _softmax(ctx, log: bool):
    op = "LogSoftmax" if log else "Softmax"
    dt, cdt = _check(ctx, op)
    x = ctx.input(0)
    shape = ctx.in_shape(0)
    rows = _Rows(shape, softmax_axes(ctx))
    up = lambda v: cast(cdt, v)  # noqa: E731

    red, ri = rows.red_axes()
    mx = ctx.compute(rows.stat_shape, lambda *o: reduce_max(up(x[rows.x_index(o, ri)]), red),
                     f"{op.lower()}_max")
    red2, ri2 = rows.red_axes()
    if log:
        # (x - mx) - log(sum): subtracting mx first keeps the small results exact
        s = ctx.compute(rows.stat_shape,
                        lambda *o: call("log", reduce_sum(call("exp", up(x[rows.x_index(o, ri2)]) - mx[o]), red2)),
                        f"{op.lower()}_lse")
        return [ctx.compute(shape, lambda *i: (up(x[i]) - mx[rows.stat_index(i)]) - s[rows.stat_index(i)],
                            op.lower(), dtype=dt)]
    s = ctx.compute(rows.stat_shape,
                    lambda *o: const(1.0, cdt) / reduce_sum(call("exp", up(x[rows.x_index(o, ri2)]) - mx[o]), red2),
                    f"{op.lower()}_rsum")
    return [ctx.compute(shape, lambda *i: call("exp", up(x[i]) - mx[rows.stat_index(i)]) * s[rows.stat_index(i)],
                        op.lower(), dtype=dt)]


@register("Softmax", pattern="reduce")
def softmax(ctx):
    return _softmax(ctx, log=False)


@register("LogSoftmax", pattern="reduce")
def log_softmax(ctx):
    return _softmax(ctx, log=True)


@register("Hardmax", pattern="reduce")
def hardmax(ctx):
    dt, cdt = _check(ctx, "Hardmax")
    x = ctx.input(0)
    shape = ctx.in_shape(0)
    rows = _Rows(shape, softmax_axes(ctx))
    n = int(np.prod([shape[d] for d in rows.axes], dtype=np.int64))

    def flat(idx):
        # row-major position within the reduced axes
        out = const(0, INDEX)
        for d in rows.axes:
            out = binary("add", binary("mul", out, shape[d]), idx[d])
        return out

    red, ri = rows.red_axes()
    mx = ctx.compute(rows.stat_shape, lambda *o: reduce_max(cast(cdt, x[rows.x_index(o, ri)]), red), "hardmax_max")
    red2, ri2 = rows.red_axes()

    def first(*o):
        idx = rows.x_index(o, ri2)
        return reduce_min(select(eq(cast(cdt, x[idx]), mx[o]), flat(idx), const(n, INDEX)), red2)
    am = ctx.compute(rows.stat_shape, first, "hardmax_idx")
    return [ctx.compute(shape, lambda *i: select(eq(flat(i), am[rows.stat_index(i)]), const(1, dt), const(0, dt)),
                        "hardmax")]


# --------------------------------------------------------------------------------------
# Gelu (opset 20)
# --------------------------------------------------------------------------------------

@register("Gelu", pattern="elemwise")
def gelu(ctx):
    x = ctx.input(0)
    dt = ctx.out_dtype(0)
    if dt not in _FLOATS:
        raise ctx.unsupported(f"Gelu on {dt}")
    cdt = compute_dtype(dt)
    approx = ctx.attr("approximate", "none")
    if isinstance(approx, bytes):
        approx = approx.decode()
    half, one = const(0.5, cdt), const(1.0, cdt)
    if approx == "none":
        def f(*i):
            v = cast(cdt, x[i])
            return half * v * (one + call("erf", v * const(1 / math.sqrt(2), cdt)))
    elif approx == "tanh":
        def f(*i):
            v = cast(cdt, x[i])
            inner = const(math.sqrt(2 / math.pi), cdt) * (v + const(0.044715, cdt) * v * v * v)
            return half * v * (one + call("tanh", inner))
    else:
        raise ctx.unsupported(f"approximate={approx!r}")
    return [ctx.compute(ctx.out_shape(0), f, "gelu", dtype=dt)]
