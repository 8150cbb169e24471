"""Pooling: MaxPool, AveragePool (1-3 spatial dims), GlobalAveragePool, GlobalMaxPool.

A window reduction over the spatial axes.  Out-of-bounds (padding) positions read the
reducer's identity; AveragePool divides by the window size counted the ONNX way
(``count_include_pad`` counts the padding but not the ``ceil_mode`` overhang).
"""
from __future__ import annotations

import numpy as np

from mlc.loop.expr import (binary, cast, const, identity_of, logical_and, reduce_max, reduce_sum,
                           select)
from mlc.loop.tensor import reduce_axis
from mlc.registry import register, register_blocked


def _window_geometry(ctx, spatial_in, spatial_out):
    kernel = list(ctx.attr("kernel_shape"))
    nd = len(kernel)
    strides = list(ctx.attr("strides", [1] * nd))
    dil = list(ctx.attr("dilations", [1] * nd))
    auto = ctx.attr("auto_pad", "NOTSET")
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
        pads = list(ctx.attr("pads", [0] * (2 * nd)))
        begin, end = pads[:nd], pads[nd:]
    return kernel, strides, dil, begin, end


def _pool(ctx, kind: str):
    x = ctx.input(0)
    xs = ctx.in_shape(0)
    out = ctx.out_shape(0)
    lane = bool(ctx.attr("mlc_blocked", 0))      # blocked layout: a trailing lane axis
    if lane:
        xs, out = xs[:-1], out[:-1]
    if len(ctx.node.outputs) > 1 and ctx.node.outputs[1]:
        raise ctx.unsupported("the Indices output of MaxPool")
    if ctx.in_dtype(0) not in ("float32", "float64", "float16") and kind == "avg":
        raise ctx.unsupported(f"AveragePool on {ctx.in_dtype(0)}")
    spatial_in, spatial_out = list(xs[2:]), list(out[2:])
    kernel, strides, dil, pb, pe = _window_geometry(ctx, spatial_in, spatial_out)
    nd = len(kernel)
    dt = ctx.out_dtype(0)
    red = [reduce_axis(k, f"r{d}") for d, k in enumerate(kernel)]
    ident = identity_of("max", dt)
    include_pad = int(ctx.attr("count_include_pad", 0))

    def f(n, c, *o):
        tail = ()
        if lane:
            *o, ci = o
            tail = (ci,)
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
            v = select(logical_and(*conds), x[(n, c, *safe, *tail)], ident if kind == "max" else const(0, dt))
        else:
            v = x[(n, c, *pos, *tail)]
        if kind == "max":
            return reduce_max(v, red)
        total = reduce_sum(v, red)
        count = const(1, "int64")
        for d in range(nd):
            start = o[d] * strides[d] - pb[d]
            if include_pad:
                end = binary("min", start + kernel[d], spatial_in[d] + pe[d])
                cnt = end - start
            else:
                end = binary("min", start + kernel[d], spatial_in[d])
                cnt = end - binary("max", start, 0)
            count = count * cnt
        return total / cast(dt, count)

    names = ["n", "c"] + [f"o{d}" for d in range(nd)] + (["ci"] if lane else [])
    return [ctx.compute(ctx.out_shape(0), f, f"{kind}pool", axis_names=names)]


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
