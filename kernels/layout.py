"""Layout transforms between plain NCHW and blocked NCHW[b]c.

``mlc.ToBlocked``  [N, C, *S] -> [N, ceil(C/b), *S, b], channels beyond C zero-filled.
``mlc.FromBlocked`` [N, CB, *S, b] -> [N, C, *S] (attr ``channels`` = C).
The layout pass inserts them only where a blocked region meets a plain one.
"""
from __future__ import annotations

from mlc.loop.expr import binary, const, select
from mlc.registry import register


@register("ToBlocked", pattern="injective", domain="mlc")
def to_blocked(ctx):
    x = ctx.input(0)
    b = int(ctx.attr("block"))
    C = ctx.in_shape(0)[1]
    dt = ctx.out_dtype(0)

    def f(n, cb, *rest):
        *s, ci = rest
        c = cb * b + ci
        if C % b == 0:
            return x[(n, c, *s)]
        return select(c < C, x[(n, binary("min", c, C - 1), *s)], const(0, dt))

    return [ctx.compute(ctx.out_shape(0), f, "to_blocked")]


@register("FromBlocked", pattern="injective", domain="mlc")
def from_blocked(ctx):
    x = ctx.input(0)
    b = int(ctx.attr("block"))

    def f(n, c, *s):
        return x[(n, c // b, *s, c % b)]

    return [ctx.compute(ctx.out_shape(0), f, "from_blocked")]
