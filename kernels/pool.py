"""Pooling: MaxPool, AveragePool (1-3 spatial dims), GlobalAveragePool, GlobalMaxPool.

A window reduction over the spatial axes.  Out-of-bounds (padding) positions read the
reducer's identity; AveragePool divides by the window size counted the ONNX way
(``count_include_pad`` counts the padding but not the ``ceil_mode`` overhang; with
dilations, only the taps of the window count).
"""
from __future__ import annotations

import numpy as np

from mlc.loop.expr import (binary, cast, const, eq, identity_of, logical_and, reduce_max, reduce_min,
                           reduce_sum, select)
from mlc.loop.tensor import reduce_axis
from mlc.registry import register, register_blocked

from .common import window_geometry


def _pool(ctx, kind: str):
    x = ctx.input(0)
    xs = ctx.in_shape(0)
    out = ctx.out_shape(0)
    lane = bool(ctx.attr("mlc_blocked", 0))      # blocked layout: a trailing lane axis
    if lane:
        xs, out = xs[:-1], out[:-1]
    with_indices = len(ctx.node.outputs) > 1 and bool(ctx.node.outputs[1])
    if with_indices and lane:
        raise ctx.unsupported("the Indices output of MaxPool in the blocked layout")
    if ctx.in_dtype(0) not in ("float32", "float64", "float16") and kind == "avg":
        raise ctx.unsupported(f"AveragePool on {ctx.in_dtype(0)}")
    spatial_in, spatial_out = list(xs[2:]), list(out[2:])
    kernel, strides, dil, pb, pe = window_geometry(ctx, spatial_in, spatial_out)
    nd = len(kernel)
    dt = ctx.out_dtype(0)
    red = [reduce_axis(k, f"r{d}") for d, k in enumerate(kernel)]
    ident = identity_of("max", dt)
    include_pad = int(ctx.attr("count_include_pad", 0))

    def window(n, c, o, tail, red=red):
        """(value read at the window tap, in-bounds condition or None, tap position)."""
        pos = [o[d] * strides[d] + red[d] * dil[d] - pb[d] for d in range(nd)]
        conds = []
        for d in range(nd):
            lo_ok = pb[d] > 0
            hi_ok = (spatial_out[d] - 1) * strides[d] + (kernel[d] - 1) * dil[d] - pb[d] >= spatial_in[d]
            if lo_ok:
                conds.append(pos[d] >= 0)
            if hi_ok:
                conds.append(pos[d] < spatial_in[d])
        if conds:
            safe = [binary("min", binary("max", p, 0), spatial_in[d] - 1) for d, p in enumerate(pos)]
            inb = logical_and(*conds)
            return select(inb, x[(n, c, *safe, *tail)], ident if kind == "max" else const(0, dt)), inb, safe
        return x[(n, c, *pos, *tail)], None, pos

    def f(n, c, *o):
        tail = ()
        if lane:
            *o, ci = o
            tail = (ci,)
        v, _, _ = window(n, c, o, tail)
        if kind == "max":
            return reduce_max(v, red)
        total = reduce_sum(v, red)
        count = const(1, "int64")
        for d in range(nd):
            start = o[d] * strides[d] - pb[d]
            hi = spatial_in[d] + pe[d] if include_pad else spatial_in[d]
            if dil[d] == 1:
                end = binary("min", start + kernel[d], hi)
                cnt = end - (start if include_pad else binary("max", start, 0))
            else:
                # taps start + k * dil, k in [0, kernel), that lie in [lo, hi): with a
                # dilation the window's extent is not its tap count
                lo = -pb[d] if include_pad else 0
                k_lo = binary("max", (lo - start + dil[d] - 1) // dil[d], 0)
                k_hi = binary("min", (hi - start + dil[d] - 1) // dil[d], kernel[d])
                cnt = binary("max", k_hi - k_lo, 0)
            count = count * cnt
        return total / cast(dt, count)

    names = ["n", "c"] + [f"o{d}" for d in range(nd)] + (["ci"] if lane else [])
    out = ctx.compute(ctx.out_shape(0), f, f"{kind}pool", axis_names=names)
    if not with_indices:
        return [out]
    # Indices: the first tap (in window order) holding the maximum, as an index into the
    # flattened input; storage_order=1 numbers the spatial dims column-major (onnxruntime)
    order = int(ctx.attr("storage_order", 0))
    C = xs[1]
    plane = int(np.prod(spatial_in, dtype=np.int64))
    big = const(np.iinfo(np.int64).max, "int64")
    red2 = [reduce_axis(k, f"r{d}") for d, k in enumerate(kernel)]

    def g(n, c, *o):
        v, inb, pos = window(n, c, o, (), red2)
        dims = list(range(nd)) if order == 0 else list(reversed(range(nd)))
        flat = const(0, "int64")
        for d in dims:
            flat = flat * spatial_in[d] + cast("int64", pos[d])
        flat = (cast("int64", n) * C + cast("int64", c)) * plane + flat
        hit = eq(v, out[(n, c, *o)])
        if inb is not None:
            hit = logical_and(hit, inb)
        return reduce_min(select(hit, flat, big), red2)

    return [out, ctx.compute(ctx.out_shape(1), g, "maxpool_indices", dtype="int64", axis_names=names)]


@register("MaxPool", pattern="reduce")
def max_pool(ctx):
    return _pool(ctx, "max")


@register("AveragePool", pattern="reduce")
def average_pool(ctx):
    return _pool(ctx, "avg")


def _global(ctx, kind: str):
    x = ctx.input(0)
    xs = ctx.in_shape(0)
    lane = bool(ctx.attr("mlc_blocked", 0))
    spatial = xs[2:-1] if lane else xs[2:]
    red = [reduce_axis(n, f"r{d}") for d, n in enumerate(spatial)]
    size = int(np.prod(spatial)) if spatial else 1
    dt = ctx.out_dtype(0)

    def f(n, c, *rest):
        v = x[(n, c, *red, rest[-1])] if lane else x[(n, c, *red)]
        if kind == "max":
            return reduce_max(v, red)
        return reduce_sum(v, red) * const(1.0 / size, dt)

    names = ["n", "c"] + [f"o{d}" for d in range(len(spatial))] + (["ci"] if lane else [])
    return [ctx.compute(ctx.out_shape(0), f, f"global{kind}pool", axis_names=names)]


@register("GlobalAveragePool", pattern="reduce")
def global_average_pool(ctx):
    return _global(ctx, "avg")


@register("GlobalMaxPool", pattern="reduce")
def global_max_pool(ctx):
    return _global(ctx, "max")


def _blocked_pool(node, graph, b):
    """Pooling runs blocked as is: the lanes are independent channels."""
    if len(node.outputs) > 1 and node.outputs[1]:
        return None
    if len(graph.tensor(node.inputs[0]).shape) < 3:
        return None
    return node.with_(attrs={**node.attrs, "mlc_blocked": b}), {0}


for _op in ("MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"):
    register_blocked(_op)(_blocked_pool)
