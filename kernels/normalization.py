"""Normalisation operators.

BatchNormalization (inference): ``y = x * a[c] + b[c]`` with ``a = scale / sqrt(var + eps)``
and ``b = bias - mean * a`` folded at compile time when the statistics are constants.
(The graph pass ``fold_batchnorm`` usually removes a BN that follows a convolution.)
"""
from __future__ import annotations

import numpy as np

from mlc.loop.expr import call, const
from mlc.registry import register


@register("BatchNormalization", pattern="broadcast")
def batch_normalization(ctx):
    if int(ctx.attr("training_mode", 0)):
        raise ctx.unsupported("training_mode=1 (mlc compiles inference graphs)")
    x = ctx.input(0)
    dt = ctx.out_dtype(0)
    eps = float(ctx.attr("epsilon", 1e-5))
    shape = ctx.out_shape(0)
    params = [ctx.const(i) for i in range(1, 5)]
    if all(p is not None for p in params):
        scale, bias, mean, var = (p.astype(np.float64) for p in params)
        a = scale / np.sqrt(var + eps)
        b = bias - mean * a
        A = ctx.constant(a.astype(dt), "bn_scale")
        B = ctx.constant(b.astype(dt), "bn_shift")
        return [ctx.compute(shape, lambda n, c, *r: x[(n, c, *r)] * A[c] + B[c], "batchnorm")]
    scale, bias, mean, var = (ctx.input(i) for i in range(1, 5))

    def f(n, c, *r):
        inv = call("rsqrt", var[c] + const(eps, dt))
        return (x[(n, c, *r)] - mean[c]) * inv * scale[c] + bias[c]
    return [ctx.compute(shape, f, "batchnorm")]
