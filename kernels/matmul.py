"""MatMul (numpy semantics: batched, broadcast, 1-D operands) and Gemm.

Both are one reduction stage ``out[.., m, n] = sum_k A[.., m, k] * B[.., k, n]``; the
default scheduler's tiling rule turns that into a register-tiled kernel with B packed into
panels when B is a constant (weights).  float16 products accumulate in float32 and round
once, as onnxruntime and numpy compute them (float16 arithmetic would round every step).
"""
from __future__ import annotations

from mlc.loop.expr import cast, const, reduce_sum
from mlc.loop.tensor import reduce_axis
from mlc.registry import register

from .common import broadcast_load, broadcast_shape


@register("MatMul", pattern="anchor")
def matmul(ctx):
    a, b = ctx.input(0), ctx.input(1)
    sa, sb = ctx.in_shape(0), ctx.in_shape(1)
    a_vec, b_vec = len(sa) == 1, len(sb) == 1
    a2 = (1,) + sa if a_vec else sa
    b2 = sb + (1,) if b_vec else sb
    K = a2[-1]
    if b2[-2] != K:
        raise ctx.unsupported(f"inner dimensions differ: {list(sa)} @ {list(sb)}")
    batch = broadcast_shape(a2[:-2], b2[:-2])
    out_shape = ctx.out_shape(0)
    k = reduce_axis(K, "k")
    nb = len(batch)
    dt = ctx.out_dtype(0)

    def f(*idx):
        idx = list(idx)
        m = const(0, "int64") if a_vec else idx[nb]
        n = const(0, "int64") if b_vec else idx[-1]
        bidx = idx[:nb]
        av = a[k] if a_vec else broadcast_load(_Sub(a, 2), bidx)(m, k)
        bv = b[k] if b_vec else broadcast_load(_Sub(b, 2), bidx)(k, n)
        if dt == "float16":     # accumulate in float32, round once (as onnxruntime, numpy)
            return cast(dt, reduce_sum(cast("float32", av) * cast("float32", bv), [k]))
        return reduce_sum(av * bv, [k])

    names = [f"b{i}" for i in range(nb)] + (["m"] if not a_vec else []) + (["n"] if not b_vec else [])
    return [ctx.compute(out_shape, f, "matmul", axis_names=names)]


class _Sub:
    """A view of a tensor's leading (batch) dims whose load returns a function of the rest.

    ``broadcast_load(_Sub(t, 2), batch_idx)(m, k)`` reads ``t[bcast(batch_idx), m, k]``.
    """

    def __init__(self, t, trailing: int):
        self.t = t
        self.trailing = trailing
        self.shape = tuple(t.shape[:-trailing])

    def __getitem__(self, idx):
        if not isinstance(idx, tuple):
            idx = (idx,)
        return lambda *rest: self.t[tuple(idx) + tuple(rest)]


@register("Gemm", pattern="anchor")
def gemm(ctx):
    a, b = ctx.input(0), ctx.input(1)
    ta, tb = int(ctx.attr("transA", 0)), int(ctx.attr("transB", 0))
    alpha, beta = float(ctx.attr("alpha", 1.0)), float(ctx.attr("beta", 1.0))
    sa = ctx.in_shape(0)
    K = sa[0] if ta else sa[1]
    dt = ctx.out_dtype(0)
    k = reduce_axis(K, "k")
    c = ctx.inputs[2] if ctx.has_input(2) else None

    def f(m, n):
        av = a[k, m] if ta else a[m, k]
        bv = b[n, k] if tb else b[k, n]
        if dt == "float16":     # accumulate (and scale, add the bias) in float32, round once
            av, bv = cast("float32", av), cast("float32", bv)
        acc = reduce_sum(av * bv, [k])
        if alpha != 1.0:
            acc = acc * const(alpha, acc.dtype)
        if c is not None and beta != 0.0:
            cv = cast(acc.dtype, broadcast_load(c, (m, n)))
            acc = acc + (cv if beta == 1.0 else cv * const(beta, acc.dtype))
        return cast(dt, acc)

    return [ctx.compute(ctx.out_shape(0), f, "gemm", axis_names=["m", "n"])]
