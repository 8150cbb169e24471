"""Normalisation operators.

BatchNormalization (inference): ``y = x * a[c] + b[c]`` with ``a = scale / sqrt(var + eps)``
and ``b = bias - mean * a`` folded at compile time when the statistics are constants (in
onnxruntime's order and precision, so that the result is bit-identical to its kernel).
(The graph pass ``fold_batchnorm`` usually removes a BN that follows a convolution.)

LayerNormalization (opset 17: axis, epsilon, stash_type, optional bias, optional Mean and
InvStdDev outputs), InstanceNormalization, GroupNormalization (opset 18: scale/bias per
group; opset 21: per channel, stash_type), MeanVarianceNormalization (onnx's function
body: ``(x - mean) / (sqrt(var) + 1e-9)``) and LpNormalization (p = 1, 2; an all-zero row
gives zeros): reductions for the statistics, then one elementwise stage.
"""
from __future__ import annotations

import numpy as np

from mlc.loop.expr import call, cast, const, eq, reduce_sum, select
from mlc.loop.tensor import reduce_axis
from mlc.registry import register

from .common import broadcast_load, norm_axis
from .reduce import adjacent_groups, merged_reduce_axes


@register("BatchNormalization", pattern="broadcast")
def batch_normalization(ctx):
    if int(ctx.attr("training_mode", 0)):
        return _batch_norm_training(ctx)
    x = ctx.input(0)
    dt = ctx.out_dtype(0)
    eps = float(ctx.attr("epsilon", 1e-5))
    shape = ctx.out_shape(0)
    params = [ctx.const(i) for i in range(1, 5)]
    if all(p is not None for p in params):
        # folded in onnxruntime's order and precision (float32 for float32 tensors:
        # inv = 1 / sqrt(var + eps), a = inv * scale, b = bias - mean * a; then x * a + b,
        # rounded after the multiply), so that a BN between dynamically quantized layers
        # rounds exactly as there: a one-ulp difference ahead of DynamicQuantizeLinear can
        # move its scale and shift whole quantization steps downstream
        ct = np.float32 if dt == "float32" else np.float64
        scale, bias, mean, var = (p.astype(ct) for p in params)
        a = (ct(1.0) / np.sqrt(var + ct(eps))) * scale
        b = bias - mean * a
        A = ctx.constant(a.astype(dt), "bn_scale")
        B = ctx.constant(b.astype(dt), "bn_shift")
        return [ctx.compute(shape, lambda n, c, *r: x[(n, c, *r)] * A[c] + B[c], "batchnorm")]
    scale, bias, mean, var = (ctx.input(i) for i in range(1, 5))

    def f(n, c, *r):
        inv = call("rsqrt", var[c] + const(eps, dt))
        return (x[(n, c, *r)] - mean[c]) * inv * scale[c] + bias[c]
    return [ctx.compute(shape, f, "batchnorm")]


def _batch_norm_training(ctx):
    """training_mode=1 (opset 14+): normalise with the batch's own per-channel mean and
    (population) variance; the optional outputs 1 and 2 are the updated running statistics
    ``input_mean * momentum + batch_mean * (1 - momentum)`` (and the same for the variance)."""
    dt, cdt = _float_input(ctx, "BatchNormalization")
    x = ctx.input(0)
    shape = ctx.in_shape(0)
    if len(shape) < 2:
        raise ctx.unsupported(f"input of rank {len(shape)}")
    eps = float(ctx.attr("epsilon", 1e-5))
    momentum = float(ctx.attr("momentum", 0.9))
    C = shape[1]
    red_extents = [shape[0]] + list(shape[2:])
    groups = [[0]] + ([list(range(1, len(red_extents)))] if len(red_extents) > 1 else [])
    mean, var = _moments(ctx, x, (C,), red_extents, lambda o, r: (r[0], o[0], *r[1:]), cdt, eps,
                         "batchnorm", inv_fn=lambda v: v, groups=groups)
    scale, bias, in_mean, in_var = (ctx.input(i) for i in range(1, 5))

    def y(n, c, *r):
        inv = call("rsqrt", var[c] + const(eps, cdt))
        return cast(dt, (cast(cdt, x[(n, c, *r)]) - mean[c]) * inv * cast(cdt, scale[c]) + cast(cdt, bias[c]))
    outs = [ctx.compute(shape, y, "batchnorm")]
    for k, (running, batch) in enumerate(((in_mean, mean), (in_var, var)), start=1):
        if len(ctx.node.outputs) > k and ctx.node.outputs[k]:
            odt = ctx.out_dtype(k)
            outs.append(ctx.compute((C,), lambda c, running=running, batch=batch, odt=odt: cast(
                odt, cast(cdt, running[c]) * const(momentum, cdt) + batch[c] * const(1.0 - momentum, cdt)),
                f"batchnorm_running{k}", dtype=odt))
    return outs


# --------------------------------------------------------------------------------------
# statistics-based normalisations: LayerNormalization, InstanceNormalization,
# GroupNormalization, MeanVarianceNormalization, LpNormalization
#
# Each is two reductions over the normalised elements of a "row" -- the mean, then the
# inverse standard deviation from the centred second moment (two-pass, as accurate as the
# reference) -- and an elementwise stage applying them.  Statistics compute in float32
# for half-precision inputs.
# --------------------------------------------------------------------------------------

_FLOATS = ("float32", "float64", "float16", "bfloat16")


def _up(dt: str) -> str:
    return "float32" if dt in ("float16", "bfloat16") else dt


def _moments(ctx, x, stat_shape, red_extents, x_index, cdt, eps, name, mean_dtype=None, inv_dtype=None,
             inv_fn=None, groups=None):
    """(mean stage, inverse-std stage) over the elements ``x[x_index(o, r)]`` of each row o,
    ``r`` spanning ``red_extents``.  ``groups``: positions of ``red_extents`` adjacent in
    memory, each merged into one reduce axis (default: all of them).

    ``inv_fn(var)`` overrides ``1 / sqrt(var + eps)``."""
    n = int(np.prod(red_extents, dtype=np.int64)) if red_extents else 1
    if groups is None:
        groups = [list(range(len(red_extents)))] if red_extents else []
    red, ri = merged_reduce_axes(red_extents, groups)

    def mean_of(*o):
        # shifted by the row's first element: the running sum stays small for data far
        # from zero (float32 would lose the low bits of a large sum)
        pivot = cast(cdt, x[x_index(o, [0] * len(red_extents))])
        return pivot + reduce_sum(cast(cdt, x[x_index(o, ri)]) - pivot, red) / const(n, cdt)
    mean = ctx.compute(stat_shape, mean_of, f"{name}_mean", dtype=mean_dtype or cdt)
    red2, ri2 = merged_reduce_axes(red_extents, groups)

    def var(*o):
        d = cast(cdt, x[x_index(o, ri2)]) - cast(cdt, mean[o])
        v = reduce_sum(d * d, red2) / const(n, cdt)
        if inv_fn is not None:
            return inv_fn(v)
        return call("rsqrt", v + const(eps, cdt))
    inv = ctx.compute(stat_shape, var, f"{name}_inv", dtype=inv_dtype or cdt)
    return mean, inv


def _float_input(ctx, op):
    dt = ctx.in_dtype(0)
    if dt not in _FLOATS:
        raise ctx.unsupported(f"{op} on {dt}")
    if any(int(d) == 0 for d in ctx.in_shape(0)):
        raise ctx.unsupported(f"empty tensors (shape {list(ctx.in_shape(0))})")
    return dt, _up(dt)


@register("LayerNormalization", pattern="reduce")
def layer_normalization(ctx):
    dt, cdt = _float_input(ctx, "LayerNormalization")
    x = ctx.input(0)
    shape = ctx.in_shape(0)
    rank = len(shape)
    axis = ctx.axis(-1, rank)
    eps = float(ctx.attr("epsilon", 1e-5))
    stash = int(ctx.attr("stash_type", 1))
    if stash == 11:
        cdt = "float64"
    elif stash != 1:
        raise ctx.unsupported(f"stash_type={stash}")
    tail = shape[axis:]
    k = rank - axis
    stat_shape = tuple(shape[:axis]) + (1,) * k
    n_out = len(ctx.node.outputs)
    mean_dt = ctx.out_dtype(1) if n_out > 1 and ctx.node.outputs[1] else cdt
    inv_dt = ctx.out_dtype(2) if n_out > 2 and ctx.node.outputs[2] else cdt
    mean, inv = _moments(ctx, x, stat_shape, list(tail), lambda o, r: tuple(o[:axis]) + tuple(r), cdt, eps,
                         "layernorm", mean_dt, inv_dt)
    scale = ctx.input(1)
    bias = ctx.inputs[2] if ctx.has_input(2) else None
    for t, what in ((scale, "Scale"), (bias, "B")):
        if t is not None and len(t.shape) > k:
            raise ctx.unsupported(f"{what} of rank {len(t.shape)} over {k} normalised axes")

    def y(*i):
        s = tuple(i[:axis]) + (0,) * k
        v = (cast(cdt, x[i]) - cast(cdt, mean[s])) * cast(cdt, inv[s]) * cast(cdt, broadcast_load(scale, i))
        if bias is not None:
            v = v + cast(cdt, broadcast_load(bias, i))
        return v
    out = ctx.compute(shape, y, "layernorm", dtype=ctx.out_dtype(0))
    return [out, mean, inv][:max(1, n_out)]


@register("InstanceNormalization", pattern="reduce")
def instance_normalization(ctx):
    dt, cdt = _float_input(ctx, "InstanceNormalization")
    x = ctx.input(0)
    shape = ctx.in_shape(0)
    if len(shape) < 2:
        raise ctx.unsupported(f"rank-{len(shape)} input (needs N, C, ...)")
    eps = float(ctx.attr("epsilon", 1e-5))
    N, C, spatial = shape[0], shape[1], list(shape[2:])
    mean, inv = _moments(ctx, x, (N, C), spatial, lambda o, r: (o[0], o[1], *r), cdt, eps, "instnorm")
    scale, bias = ctx.input(1), ctx.input(2)
    return [ctx.compute(shape, lambda n, c, *s: (cast(cdt, x[(n, c, *s)]) - mean[n, c]) * inv[n, c]
                        * cast(cdt, scale[c]) + cast(cdt, bias[c]), "instnorm", dtype=ctx.out_dtype(0))]


@register("GroupNormalization", pattern="reduce")
def group_normalization(ctx):
    dt, cdt = _float_input(ctx, "GroupNormalization")
    x = ctx.input(0)
    shape = ctx.in_shape(0)
    if len(shape) < 2:
        raise ctx.unsupported(f"rank-{len(shape)} input (needs N, C, ...)")
    eps = float(ctx.attr("epsilon", 1e-5))
    G = int(ctx.attr("num_groups"))
    N, C, spatial = shape[0], shape[1], list(shape[2:])
    if G <= 0 or C % G:
        raise ctx.unsupported(f"num_groups={G} does not divide {C} channels")
    if ctx.opset >= 21:
        stash = int(ctx.attr("stash_type", 1))
        if stash == 11:
            cdt = "float64"
        elif stash != 1:
            raise ctx.unsupported(f"stash_type={stash}")
    cg = C // G
    scale, bias = ctx.input(1), ctx.input(2)
    # opset 18: scale/bias per group ([G]); opset 21: per channel ([C])
    per_channel = ctx.opset >= 21
    want = C if per_channel else G
    for t, what in ((scale, "scale"), (bias, "bias")):
        if tuple(t.shape) != (want,):
            raise ctx.unsupported(f"{what} of shape {list(t.shape)} (opset {ctx.opset} expects [{want}])")
    mean, inv = _moments(ctx, x, (N, G), [cg] + spatial, lambda o, r: (o[0], o[1] * cg + r[0], *r[1:]),
                         cdt, eps, "groupnorm")

    def y(n, c, *s):
        g = c // cg
        p = c if per_channel else g
        return (cast(cdt, x[(n, c, *s)]) - mean[n, g]) * inv[n, g] * cast(cdt, scale[p]) + cast(cdt, bias[p])
    return [ctx.compute(shape, y, "groupnorm", dtype=ctx.out_dtype(0))]


@register("MeanVarianceNormalization", pattern="reduce")
def mean_variance_normalization(ctx):
    dt, cdt = _float_input(ctx, "MeanVarianceNormalization")
    x = ctx.input(0)
    shape = ctx.in_shape(0)
    rank = len(shape)
    try:
        axes = sorted({norm_axis(int(a), rank, "axes") for a in ctx.attr("axes", [0, 2, 3])})
    except ValueError as e:
        raise ctx.unsupported(str(e)) from None
    stat_shape = tuple(1 if d in axes else n for d, n in enumerate(shape))

    def x_index(o, r):
        it = iter(r)
        return tuple(next(it) if d in axes else o[d] for d in range(rank))

    # onnx's function body: (x - mean) / (sqrt(E[x^2] - mean^2) + 1e-9)
    pos = {a: k for k, a in enumerate(axes)}
    mean, inv = _moments(ctx, x, stat_shape, [shape[a] for a in axes], x_index, cdt, 0.0, "mvn",
                         inv_fn=lambda v: const(1.0, cdt) / (call("sqrt", v) + const(1e-9, cdt)),
                         groups=[[pos[a] for a in g] for g in adjacent_groups(axes)])

    def y(*i):
        s = tuple(0 if d in axes else i[d] for d in range(rank))
        return (cast(cdt, x[i]) - mean[s]) * inv[s]
    return [ctx.compute(shape, y, "mvn", dtype=ctx.out_dtype(0))]


@register("LpNormalization", pattern="reduce")
def lp_normalization(ctx):
    dt, cdt = _float_input(ctx, "LpNormalization")
    x = ctx.input(0)
    shape = ctx.in_shape(0)
    rank = len(shape)
    axis = ctx.axis(-1, rank)
    p = int(ctx.attr("p", 2))
    if p not in (1, 2):
        raise ctx.unsupported(f"p={p} (ONNX allows 1 or 2)")
    stat_shape = tuple(n for d, n in enumerate(shape) if d != axis)
    r = reduce_axis(shape[axis], "r")

    def norm(*o):
        v = cast(cdt, x[tuple(o[:axis]) + (r,) + tuple(o[axis:])])
        acc = reduce_sum(call("abs", v) if p == 1 else v * v, [r])
        nrm = acc if p == 1 else call("sqrt", acc)
        # an all-zero row stays zero (onnxruntime), not 0/0
        return select(eq(nrm, const(0, cdt)), const(0, cdt), const(1.0, cdt) / nrm)
    inv = ctx.compute(stat_shape, norm, "lpnorm_inv")
    return [ctx.compute(shape, lambda *i: cast(cdt, x[i]) * inv[tuple(i[:axis]) + tuple(i[axis + 1:])],
                        "lpnorm", dtype=ctx.out_dtype(0))]
