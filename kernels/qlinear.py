"""Integer matmul and convolution: MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv.

Everything accumulates exactly in int32::

    acc = sum_k (a[k] - a_zero_point) * (b[k] - b_zero_point)        (+ bias for QLinearConv)

MatMulInteger / ConvInteger return ``acc``; the QLinear ops requantize it as onnxruntime
does (MLAS ``MlasRequantizeOutput``): ``multiplier = a_scale * b_scale / y_scale`` in float32
(one per output channel with per-channel weight scales), then
``y = clamp(round_half_even(float(acc) * multiplier) + y_zero_point, qmin, qmax)``.

Two computations:

* **VNNI** (the target has AVX-512 VNNI, the weights and their zero points are constants):
  the product runs on ``vpdpbusd`` (u8 x s8, four adjacent k per 32-bit lane) through the
  ``dot4_u8s8`` expression.  Activations are shifted to u8 (``a' = a + 128`` for int8),
  weights to s8 (``b' = b - 128`` for uint8) and packed four k per int32 at compile time;
  activations are packed at run time by a cheap stage (convolution: four channels of the
  zero-padded input per int32, padding with the zero point; matmul: four k).  With
  ``ZA = a_zp + shift_a`` and ``ZB = b_zp - shift_b``:

      acc = sum a'b' - ZB[n] * sum_k a'[m, k] - ZA * sum_k b'[k, n] + K * ZA * ZB[n]

  the weight sums are compile-time constants; the activation sums (a small reduction, or
  for a convolution a window sum, itself a ``dot4`` with 0x01010101) are only computed
  when some ``ZB`` is non-zero (uint8 weights, or int8 weights with a zero point).
* **plain** (any other case: run-time weights, no VNNI, depthwise convolutions):
  ``(a - a_zp) * (b - b_zp)`` widened to int32 multiply-adds, register-tiled by the
  default scheduler (constant weights minus their zero point are folded at compile time).

Convolutions read a materialised copy of the input, zero-padded in the zero-pointed domain
and, for a horizontal stride s > 1, split into s phases so that the vector loop over output
columns always reads contiguous memory.  1-D and 2-D convolutions, groups (depthwise
included), strides, dilations, pads and auto_pad.  Zero points: per tensor, per output
channel for weights (ConvInteger / QLinearConv), per row of A / per column of B for
MatMulInteger.
"""
from __future__ import annotations


import numpy as np

from mlc.loop.auto_schedule import PAR_MIN_WORK, TilePlan, plan_kernel
from mlc.loop.expr import (Expr, Buffer, Call, Var, binary, call, cast, const, logical_and, maximum, minimum,
                           reduce_sum, select, walk)
from mlc.loop.stmt import buffers_used, if_then, loop, seq, store
from mlc.loop.tensor import ExternStage, reduce_axis
from mlc.registry import register, register_schedule

from .common import broadcast_load, broadcast_shape
from .conv import conv_dims

I32 = "int32"
_Q8 = ("uint8", "int8")
_RANGE = {"uint8": (0, 255), "int8": (-128, 127)}


def use_vnni(ctx) -> bool:
    return ctx.target.lanes_f32 == 16 and ctx.target.has("avx512vnni")


def _i(v) -> Expr:
    return cast(I32, v)


def _shift_a(dt: str) -> int:
    """What makes an activation unsigned for vpdpbusd (int8: + 128)."""
    return 128 if dt == "int8" else 0


def _shift_b(dt: str) -> int:
    """What makes a weight signed for vpdpbusd (uint8: - 128)."""
    return 128 if dt == "uint8" else 0


def _pack4(values: np.ndarray, axis: int) -> np.ndarray:
    """int8 ``values`` with four consecutive entries along ``axis`` packed per int32 (the
    axis zero-padded to a multiple of 4); the packed axis stays where it was."""
    v = np.moveaxis(values.astype(np.int8), axis, -1)
    pad = (-v.shape[-1]) % 4
    if pad:
        v = np.concatenate([v, np.zeros(v.shape[:-1] + (pad,), np.int8)], axis=-1)
    w = np.ascontiguousarray(v).view("<i4")
    return np.ascontiguousarray(np.moveaxis(w, -1, axis)).astype(np.int32)


def _word(bytes_):
    """int32 from four expressions in 0..255 (little endian)."""
    out = bytes_[0]
    for t in range(1, 4):
        out = binary("or", out, binary("shl", bytes_[t], const(8 * t, I32)))
    return out


def _scalar_input(ctx, i):
    """A scalar input (any shape of one element) as an expression, or None when absent."""
    if not ctx.has_input(i):
        return None
    t = ctx.input(i)
    shp = ctx.in_shape(i)
    if int(np.prod(shp, dtype=np.int64)) != 1:
        raise ctx.unsupported(f"input {i} must be a scalar (shape {list(shp)})")
    return t[(0,) * len(shp)]


def _const_int(ctx, i):
    """Input ``i`` as an int64 numpy array when it is a compile-time constant (zeros when
    absent), else None."""
    if not ctx.has_input(i):
        return np.zeros((), np.int64)
    v = ctx.const(i)
    return None if v is None else np.asarray(v).astype(np.int64)


# --------------------------------------------------------------------------------------
# requantization (QLinear*)
# --------------------------------------------------------------------------------------

def _multiplier(ctx, ia: int, ib: int, iy: int, per_channel: int | None):
    """``c -> float32 expression``: a_scale * b_scale[c] / y_scale (onnxruntime's order),
    computed at compile time when all three are constants.  ``per_channel``: the number of
    output channels b_scale may have (None: it must be a scalar)."""
    dts = {ctx.in_dtype(i) for i in (ia, ib, iy)}
    if not dts <= {"float32", "float16"}:
        raise ctx.unsupported(f"scales of type {sorted(dts)}")
    bshape = ctx.in_shape(ib)
    nb = int(np.prod(bshape, dtype=np.int64))
    if nb != 1 and (per_channel is None or nb != per_channel or len([d for d in bshape if d != 1]) != 1):
        raise ctx.unsupported(f"weight scale of shape {list(bshape)}")
    for i in (ia, iy):
        if int(np.prod(ctx.in_shape(i), dtype=np.int64)) != 1:
            raise ctx.unsupported(f"input {i} (a scale) must be a scalar")
    vals = [ctx.const(i) for i in (ia, ib, iy)]
    if all(v is not None for v in vals):
        a, b, y = (np.asarray(v).reshape(-1) for v in vals)
        m = (a.astype(np.float32) * b.astype(np.float32) / y.astype(np.float32)).astype(np.float32)
        if nb == 1:
            mv = float(m[0])
            return lambda c: const(mv, "float32")
        buf = ctx.constant(m, "requant_scale")
        return lambda c: buf[c]
    a = _scalar_input(ctx, ia)
    y = _scalar_input(ctx, iy)
    bt = ctx.input(ib)

    def b_at(c):
        if nb == 1:
            return bt[(0,) * len(bshape)]
        return bt[tuple(c if d != 1 else 0 for d in bshape)]

    def f(c):
        return cast("float32", a) * cast("float32", b_at(c)) / cast("float32", y)
    return f


def _requantize(acc, mult, yzp, out_dt: str):
    lo, hi = _RANGE[out_dt]
    r = call("round", cast("float32", acc) * mult)
    if yzp is not None:
        r = r + cast("float32", yzp)
    r = minimum(maximum(r, const(float(lo), "float32")), const(float(hi), "float32"))
    return cast(out_dt, cast(I32, r))


# --------------------------------------------------------------------------------------
# integer matmul
# --------------------------------------------------------------------------------------

def _matmul_int(ctx, ia: int, ib: int, iza: int | None, izb: int | None, epi, name: str):
    """The stage of ``epi(acc, idx)`` over the matmul output; ``acc`` the exact int32 sum."""
    a, b = ctx.input(ia), ctx.input(ib)
    sa, sb = ctx.in_shape(ia), ctx.in_shape(ib)
    adt, bdt = ctx.in_dtype(ia), ctx.in_dtype(ib)
    if adt not in _Q8 or bdt not in _Q8:
        raise ctx.unsupported(f"integer matmul of {adt} x {bdt} (uint8 / int8 expected)")
    if len(sa) < 2 or len(sb) < 2:
        raise ctx.unsupported(f"operands of rank {len(sa)} and {len(sb)} (rank >= 2 supported)")
    M, K = sa[-2], sa[-1]
    N = sb[-1]
    if sb[-2] != K:
        raise ctx.unsupported(f"inner dimensions differ: {list(sa)} x {list(sb)}")
    batch = broadcast_shape(sa[:-2], sb[:-2])
    nbat = len(batch)
    out_shape = tuple(batch) + (M, N)
    za = _row_param(ctx, iza, sa, "row") if iza is not None else None
    zb = _row_param(ctx, izb, sb, "col") if izb is not None else None
    names = [f"b{i}" for i in range(nbat)] + ["m", "n"]

    def aload(buf, bidx, m, k):
        return broadcast_load(_Rows(buf, sa), bidx)(m, k)

    def bload(buf, shape, bidx, k, n):
        return broadcast_load(_Rows(buf, shape), bidx)(k, n)

    bval = ctx.const(ib)
    zbval = _const_int(ctx, izb) if izb is not None else np.zeros((), np.int64)
    if use_vnni(ctx) and bval is not None and zbval is not None and K >= 4:
        return _matmul_vnni(ctx, a, sa, adt, np.asarray(bval), bdt, za, zbval, batch, epi, name)

    # plain int32 multiply-adds; constant weights minus their zero point folded
    if bval is not None and zbval is not None:
        bq = np.asarray(bval).astype(np.int64) - _col_broadcast(zbval, sb)
        bconst = ctx.constant(bq.astype(np.int16), "wq")
        bterm = lambda bidx, k, n: _i(bload(bconst, bq.shape, bidx, k, n))
    else:
        bterm = lambda bidx, k, n: _i(bload(b, sb, bidx, k, n)) - (zb(bidx, n) if zb else 0)
    k = reduce_axis(K, "k")

    def f(*idx):
        bidx, m, n = list(idx[:nbat]), idx[nbat], idx[nbat + 1]
        av = _i(aload(a, bidx, m, k))
        if za is not None:
            av = av - za(bidx, m)
        return epi(reduce_sum(av * bterm(bidx, k, n), [k]), idx)

    return ctx.compute(out_shape, f, name, axis_names=names)


class _Rows:
    """``broadcast_load(_Rows(t, shape), batch_idx)(r, c)`` reads ``t[bcast(batch), r, c]``."""

    def __init__(self, t, shape):
        self.t = t
        self.shape = tuple(shape[:-2])

    def __getitem__(self, idx):
        if not isinstance(idx, tuple):
            idx = (idx,)
        return lambda r, c: self.t[tuple(idx) + (r, c)]


def _row_param(ctx, i, operand_shape, kind):
    """A zero point of A (per tensor or per row) / of B (per tensor or per column) as
    ``(batch_idx, row_or_col) -> int32 expression``."""
    if not ctx.has_input(i):
        return None
    t = ctx.input(i)
    shp = ctx.in_shape(i)
    if int(np.prod(shp, dtype=np.int64)) == 1:
        return lambda bidx, r: _i(t[(0,) * len(shp)])
    dim = operand_shape[-2] if kind == "row" else operand_shape[-1]
    if len(shp) == 1 and shp[0] == dim:
        return lambda bidx, r: _i(t[r])
    want = tuple(operand_shape[:-2]) + ((dim, 1) if kind == "row" else (1, dim))
    if len(shp) >= 2 and len(shp) <= len(want) and all(s in (1, w) for s, w in zip(shp, want[-len(shp):])) \
            and shp[-2:] == want[-2:]:
        def f(bidx, r):
            full = list(bidx) + ([r, 0] if kind == "row" else [0, r])
            return _i(broadcast_load(t, full))
        return f
    raise ctx.unsupported(f"zero point of shape {list(shp)} for an operand of shape {list(operand_shape)}")


def _col_broadcast(zb: np.ndarray, sb) -> np.ndarray:
    """A B zero point (scalar, [N] or [.., 1, N]) broadcastable against B's shape."""
    if zb.ndim == 1:
        return zb.reshape((1,) * (len(sb) - 1) + (-1,))
    return zb


def _matmul_vnni(ctx, a, sa, adt, bval, bdt, za, zbval, batch, epi, name):
    M, K = sa[-2], sa[-1]
    N = bval.shape[-1]
    K4 = -(-K // 4)
    nbat = len(batch)
    sha, shb = _shift_a(adt), _shift_b(bdt)
    zb_full = np.broadcast_to(_col_broadcast(zbval, bval.shape), bval.shape[:-2] + (1, N)) \
        if zbval.ndim else np.full(bval.shape[:-2] + (1, N), int(zbval))
    bp = bval.astype(np.int64) - shb                     # s8 weights
    ZB = (zb_full - shb).astype(np.int64)                # [.., 1, N]
    b4 = _pack4(bp, bp.ndim - 2)                         # [.., K4, N]
    CB = bp.sum(axis=-2, keepdims=True)                  # [.., 1, N]
    CB2 = (CB - K * ZB).astype(np.int32)
    any_zb = bool(np.any(ZB != 0))
    B4 = ctx.constant(b4, "w4")
    cb2 = ctx.constant(CB2, "wsum")
    zbc = ctx.constant(ZB.astype(np.int32), "wzp") if any_zb else None
    bshape4 = b4.shape

    # A packed four k per int32 (A' = A + 128 for int8), K zero-padded to a multiple of 4
    abatch = tuple(sa[:-2])

    def fa(*idx):
        pre, m, k4 = idx[:-2], idx[-2], idx[-1]
        bytes_ = []
        for t in range(4):
            kk = k4 * 4 + t
            v = _i(a[tuple(pre) + (m, binary("min", kk, K - 1))]) + const(sha, I32)
            bytes_.append(v if (K % 4 == 0 or t == 0) else select(kk < K, v, const(0, I32)))
        return _word(bytes_)

    a4 = ctx.compute(abatch + (M, K4), fa, "a4", materialize=True)
    ra = None
    if any_zb:
        kr = reduce_axis(K, "k")
        ra = ctx.compute(abatch + (M,), lambda *idx: reduce_sum(_i(a[tuple(idx) + (kr,)]) + const(sha, I32), [kr]),
                         "asum", materialize=True)
    k4 = reduce_axis(K4, "k4")
    names = [f"b{i}" for i in range(nbat)] + ["m", "n"]

    def f(*idx):
        bidx, m, n = list(idx[:nbat]), idx[nbat], idx[nbat + 1]
        av = broadcast_load(_Rows(a4, abatch + (M, K4)), bidx)(m, k4)
        bv = broadcast_load(_Rows(B4, bshape4), bidx)(k4, n)
        acc = reduce_sum(call("dot4_u8s8", av, bv), [k4])
        za_ = (za(bidx, m) + const(sha, I32)) if za is not None else (const(sha, I32) if sha else None)
        if any_zb:
            acc = acc - broadcast_load(_Rows(zbc, ZB.shape), bidx)(0, n) * broadcast_load(ra, bidx + [m])
        if za_ is not None:
            acc = acc - za_ * broadcast_load(_Rows(cb2, CB2.shape), bidx)(0, n)
        return epi(acc, idx)

    out_shape = tuple(batch) + (M, N)
    return ctx.compute(out_shape, f, name, axis_names=names)


@register("MatMulInteger", pattern="anchor")
def matmul_integer(ctx):
    if ctx.out_dtype(0) != I32:
        raise ctx.unsupported(f"output of type {ctx.out_dtype(0)}")
    return [_matmul_int(ctx, 0, 1, 2 if ctx.has_input(2) else None, 3 if ctx.has_input(3) else None,
                        lambda acc, idx: acc, "matmul_int")]


@register("QLinearMatMul", pattern="anchor")
def qlinear_matmul(ctx):
    out_dt = ctx.out_dtype(0)
    if out_dt not in _Q8:
        raise ctx.unsupported(f"output of type {out_dt}")
    for i in (2, 7):
        if int(np.prod(ctx.in_shape(i), dtype=np.int64)) != 1:
            raise ctx.unsupported(f"input {i} (a zero point) must be a scalar")
    sb = ctx.in_shape(3)
    N = sb[-1]
    if int(np.prod(ctx.in_shape(5), dtype=np.int64)) not in (1, N) or \
            int(np.prod(ctx.in_shape(4), dtype=np.int64)) not in (1, N):
        raise ctx.unsupported("b scale / zero point must be per tensor or per column")
    mult = _multiplier(ctx, 1, 4, 6, N)
    yzp = _scalar_input(ctx, 7)

    def epi(acc, idx):
        return _requantize(acc, mult(idx[-1]), yzp, out_dt)

    return [_matmul_int(ctx, 0, 3, 2, 5, epi, "qmatmul")]


# --------------------------------------------------------------------------------------
# integer convolution
# --------------------------------------------------------------------------------------

def _conv_geo(ctx, ix: int, iw: int):
    xs, ws = ctx.in_shape(ix), ctx.in_shape(iw)
    if len(xs) not in (3, 4):
        raise ctx.unsupported(f"{len(xs) - 2}-D convolution (1-D and 2-D supported)")
    for i, what in ((ix, "x"), (iw, "w")):
        if ctx.in_dtype(i) not in _Q8:
            raise ctx.unsupported(f"{what} of type {ctx.in_dtype(i)} (uint8 / int8 expected)")
    g = conv_dims(ctx, xs, ws, ctx.out_shape(0))
    C, OC, ICg, group = g["C"], g["OC"], g["ICg"], g["group"]
    if C != ICg * group or OC % group:
        raise ctx.unsupported(f"channels {C} / {OC} do not match group {group} and weights {list(ws)}")
    g.update(OCg=OC // group, G=group)
    return g


def _padded_activation(ctx, x, g, cg: int, value, pad_value, name: str):
    """The materialised input of a convolution: int32 ``[N, G*cg, Hp, (sw,) Wq]``, channels
    in ``G`` groups of ``cg``, padded spatially with ``pad_value(gc)`` and, for a horizontal
    stride s > 1, split into s column phases (column ``w = wq * s + phase``).
    ``value(n, gc, h, w)`` is the element at an in-bounds input position.

    An imperative stage: per row, the left padding, the interior (contiguous vector loads,
    no bounds checks) and the right padding are separate vector loops."""
    Hp = (g["OH"] - 1) * g["sh"] + (g["KH"] - 1) * g["dh"] + 1
    Wp = (g["OW"] - 1) * g["sw"] + (g["KW"] - 1) * g["dw"] + 1
    sw = g["sw"]
    Wq = -(-Wp // sw)
    H, W, pt, pl = g["H"], g["W"], g["pt"], g["pl"]
    GC = g["G"] * cg
    shape = (g["N"], GC, Hp) + ((sw, Wq) if sw > 1 else (Wp,))
    out = Buffer(ctx.unique(name), shape, I32)
    r, j = Var("row"), Var("col")
    n, gc, hp = r // (GC * Hp), (r // Hp) % GC, r % Hp
    hh = hp - pt

    def row(ph):
        """Stores of one row (of phase ph): output column wq holds input column
        wq * sw + ph - pl."""
        def at(col):
            return (n, gc, hp, ph, col) if sw > 1 else (n, gc, hp, col)
        lo = max(0, min(Wq, -(-(pl - ph) // sw)))             # first wq inside the input
        hi = max(lo, min(Wq, -(-(pl + W - ph) // sw)))         # one past the last
        pad = pad_value(gc)
        parts = []
        if lo > 0:
            parts.append(loop(j, lo, store(out, at(j), pad), "vector"))
        if hi > lo:
            parts.append(loop(j, hi - lo, store(out, at(j + lo), value(n, gc, hh, (j + lo) * sw + (ph - pl))),
                              "vector"))
        if Wq > hi:
            parts.append(loop(j, Wq - hi, store(out, at(j + hi), pad), "vector"))
        inside = seq(*parts)
        if pt > 0 or Hp - pt > H:
            return if_then(logical_and(hh >= 0, hh < H), inside, loop(j, Wq, store(out, at(j), pad), "vector"))
        return inside

    if sw > 1:
        body = seq(*[row(ph) for ph in range(sw)])
    else:
        body = row(0)
    rows = g["N"] * GC * Hp
    par = ctx.target.num_cores > 1 and rows > 1 and out.size >= PAR_MIN_WORK
    stmt = loop(r, rows, body, "parallel" if par else "serial")
    reads = tuple(b for b in buffers_used(stmt) if b is not out)
    ctx.extern(ExternStage((out,), reads, stmt, tag="pad"))
    return out


def _act_load(act, g, n, gc, ih, kw, ow):
    """Element of the padded activation under output column ``ow`` and kernel column ``kw``."""
    sw, dw = g["sw"], g["dw"]
    if sw > 1:
        off = kw * dw
        return act[n, gc, ih, off % sw, ow + off // sw]
    return act[n, gc, ih, ow + kw * dw]


def _x_at(x, g, n, c, h, w):
    return x[(n, c, w) if g["one_d"] else (n, c, h, w)]


def _w_at(w, g, oc, ic, kh, kw):
    return w[(oc, ic, kw) if g["one_d"] else (oc, ic, kh, kw)]


def _conv_out(ctx, g, body, epi, name):
    """The output stage ``epi(body(n, oc, oh, ow), idx)`` in the node's layout (1-D or 2-D)."""
    if g["one_d"]:
        return ctx.compute(ctx.out_shape(0), lambda n, oc, ow: epi(body(n, oc, 0, ow), (n, oc, ow)), name,
                           axis_names=["n", "oc", "ow"])
    return ctx.compute(ctx.out_shape(0), lambda n, oc, oh, ow: epi(body(n, oc, oh, ow), (n, oc, oh, ow)), name,
                       axis_names=["n", "oc", "oh", "ow"])


def _conv_int(ctx, ix: int, iw: int, izx: int | None, izw: int | None, epi, name: str):
    g = _conv_geo(ctx, ix, iw)
    x, w = ctx.input(ix), ctx.input(iw)
    xdt, wdt = ctx.in_dtype(ix), ctx.in_dtype(iw)
    za = _scalar_input(ctx, izx) if izx is not None else None
    wval = ctx.const(iw)
    zwval = _const_int(ctx, izw) if izw is not None else np.zeros((), np.int64)
    OC = g["OC"]
    if zwval is not None and zwval.size not in (1, OC):
        raise ctx.unsupported(f"weight zero point of shape {list(zwval.shape)}")
    if izw is not None and ctx.has_input(izw) and int(np.prod(ctx.in_shape(izw), dtype=np.int64)) not in (1, OC):
        raise ctx.unsupported(f"weight zero point of shape {list(ctx.in_shape(izw))}")
    depthwise = g["ICg"] == 1 and g["OCg"] == 1
    if use_vnni(ctx) and wval is not None and zwval is not None and not depthwise:
        return _conv_vnni(ctx, x, xdt, np.asarray(wval), wdt, za, zwval.reshape(-1), g, epi, name)

    # plain: (x - x_zp) zero-padded as int32, weights minus their zero point
    zero = const(0, I32)

    def xval(n, gc, h, ww):
        v = _i(_x_at(x, g, n, gc, h, ww))
        return v - _i(za) if za is not None else v

    xq = _padded_activation(ctx, x, g, g["ICg"], xval, lambda gc: zero, "xq")
    if wval is not None and zwval is not None:
        zw = zwval.reshape((-1,) + (1,) * (len(wval.shape) - 1)) if zwval.size > 1 else zwval.reshape(())
        wq = ctx.constant((np.asarray(wval).astype(np.int64) - zw).astype(np.int16), "wq")
        wterm = lambda oc, ic, kh, kw: _i(_w_at(wq, g, oc, ic, kh, kw))
    else:
        zwt = ctx.input(izw) if (izw is not None and ctx.has_input(izw)) else None
        zshape = ctx.in_shape(izw) if zwt is not None else ()

        def wterm(oc, ic, kh, kw):
            v = _i(_w_at(w, g, oc, ic, kh, kw))
            if zwt is None:
                return v
            if int(np.prod(zshape, dtype=np.int64)) == 1:
                return v - _i(zwt[(0,) * len(zshape)])
            return v - _i(zwt[oc])
    ic = reduce_axis(g["ICg"], "ic")
    kh = reduce_axis(g["KH"], "kh")
    kw = reduce_axis(g["KW"], "kw")
    OCg, ICg = g["OCg"], g["ICg"]

    def body(n, oc, oh, ow):
        gc = ic if g["G"] == 1 else (oc // OCg) * ICg + ic
        xv = _act_load(xq, g, n, gc, oh * g["sh"] + kh * g["dh"], kw, ow)
        return reduce_sum(xv * wterm(oc, ic, kh, kw), [ic, kh, kw])

    return _conv_out(ctx, g, body, epi, name)


def _conv_vnni(ctx, x, xdt, wval, wdt, za, zw, g, epi, name):
    G, ICg, OCg, OC = g["G"], g["ICg"], g["OCg"], g["OC"]
    KH, KW = g["KH"], g["KW"]
    C4 = -(-ICg // 4)
    sha, shb = _shift_a(xdt), _shift_b(wdt)
    w4d = wval.reshape(OC, ICg, KH, KW).astype(np.int64)
    wp = w4d - shb                                          # s8 weights
    ZB = (np.broadcast_to(zw, (OC,)) - shb).astype(np.int64)
    any_zb = bool(np.any(ZB != 0))
    Kc = ICg * KH * KW
    CWZ = (Kc * ZB - wp.sum(axis=(1, 2, 3))).astype(np.int32)     # ZA * this joins acc
    W4 = ctx.constant(_pack4(wp, 1), "w4")                   # [OC, C4, KH, KW]
    zero = const(0, I32)
    ZA = (_i(za) + const(sha, I32)) if za is not None else const(sha, I32)

    def value(n, gc, h, ww):
        gi, c0 = (gc // C4, gc % C4) if G > 1 else (0, gc)
        bytes_ = []
        for t in range(4):
            c = c0 * 4 + t
            ch = gi * ICg + binary("min", c, ICg - 1)
            v = _i(_x_at(x, g, n, ch, h, ww)) + const(sha, I32)
            bytes_.append(v if ICg % 4 == 0 else select(c < ICg, v, zero))
        return _word(bytes_)

    def pad_value(gc):
        if ICg % 4 == 0:
            return _word([ZA] * 4)
        c0 = gc % C4 if G > 1 else gc
        return _word([select(c0 * 4 + t < ICg, ZA, zero) for t in range(4)])

    x4 = _padded_activation(ctx, x, g, C4, value, pad_value, "x4")
    c4 = reduce_axis(C4, "c4")
    kh = reduce_axis(KH, "kh")
    kw = reduce_axis(KW, "kw")
    sh, dh = g["sh"], g["dh"]

    S = None
    if any_zb:
        ones = const(0x01010101, I32)
        s4 = reduce_axis(C4, "c4")
        sh_ = reduce_axis(KH, "kh")
        sw_ = reduce_axis(KW, "kw")
        S = ctx.compute((g["N"], G, g["OH"], g["OW"]),
                        lambda n, gi, oh, ow: reduce_sum(call("dot4_u8s8", _act_load(
                            x4, g, n, gi * C4 + s4, oh * sh + sh_ * dh, sw_, ow), ones), [s4, sh_, sw_]),
                        "xsum", axis_names=["n", "g", "oh", "ow"], materialize=True)
    zbc = ctx.constant(ZB.astype(np.int32), "wzp") if any_zb else None
    cwz = ctx.constant(CWZ, "wsum")

    def corrected(acc, n, oc, oh, ow):
        if any_zb:
            gi = 0 if G == 1 else oc // OCg
            acc = acc - zbc[oc] * S[n, gi, oh, ow]
        if za is not None or sha:
            acc = acc + ZA * cwz[oc]
        return acc

    bo = _channel_block(g)
    if bo:
        # output channels in blocks of bo vector lanes (weights [OB, C4, KH, KW, bo]), a
        # register tile of output columns; then the node's layout with the corrections
        OB = -(-OC // bo)
        w4 = _pack4(wp, 1)
        w4 = np.concatenate([w4, np.zeros((OB * bo - OC,) + w4.shape[1:], np.int32)])
        W4b = ctx.constant(np.ascontiguousarray(w4.reshape(OB, bo, C4, KH, KW).transpose(0, 2, 3, 4, 1)), "w4b")
        obg = OCg // bo if G > 1 else 0

        def fb(n, ob, oh, ow, oi):
            gc = c4 if G == 1 else (ob // obg) * C4 + c4
            xv = _act_load(x4, g, n, gc, oh * sh + kh * dh, kw, ow)
            return reduce_sum(call("dot4_u8s8", xv, W4b[ob, c4, kh, kw, oi]), [c4, kh, kw])

        yb = ctx.compute((g["N"], OB, g["OH"], g["OW"], bo), fb, "conv4",
                         axis_names=["n", "ob", "oh", "ow", "oi"], materialize=True)
        return _conv_out(ctx, g, lambda n, oc, oh, ow: corrected(yb[n, oc // bo, oh, ow, oc % bo], n, oc, oh, ow),
                         epi, name)

    if G == 1:
        def body(n, oc, oh, ow):
            xv = _act_load(x4, g, n, c4, oh * sh + kh * dh, kw, ow)
            acc = reduce_sum(call("dot4_u8s8", xv, W4[oc, c4, kh, kw]), [c4, kh, kw])
            return corrected(acc, n, oc, oh, ow)
        return _conv_out(ctx, g, body, epi, name)

    # groups: the product per (group, channel in group) so that the activation does not
    # depend on the register-tiled channel axis, then the output in the node's layout
    def f5(n, gi, ocg, oh, ow):
        xv = _act_load(x4, g, n, gi * C4 + c4, oh * sh + kh * dh, kw, ow)
        return reduce_sum(call("dot4_u8s8", xv, W4[gi * OCg + ocg, c4, kh, kw]), [c4, kh, kw])

    y5 = ctx.compute((g["N"], G, OCg, g["OH"], g["OW"]), f5, "gconv4",
                     axis_names=["n", "g", "ocg", "oh", "ow"], materialize=True)
    return _conv_out(ctx, g, lambda n, oc, oh, ow: corrected(y5[n, oc // OCg, oc % OCg, oh, ow], n, oc, oh, ow),
                     epi, name)


# "auto", or "ow" / "oc" to force the vectorised axis of VNNI convolutions (tests)
CONV_VECTOR_AXIS = "auto"


def _channel_block(g) -> int:
    """Output-channel block of the channel-vectorised VNNI convolution (0: vectorise
    output columns instead).  Few output columns fill few vector lanes; channels then fill
    them all."""
    mode = CONV_VECTOR_AXIS
    if mode == "ow":
        return 0
    OCg = g["OCg"]
    bo = 32 if (OCg % 32 == 0 or (g["G"] == 1 and OCg > 16)) else 16
    if g["G"] > 1 and OCg % bo:
        return 0
    if mode == "oc":
        return bo
    # measured: blocks win when output rows fill few lanes and the reduction is long
    # enough to hide the pass that puts the channels back in place
    k4 = -(-g["ICg"] // 4) * g["KH"] * g["KW"]
    return bo if g["OW"] < 16 or (g["OW"] < 32 and k4 >= 64) else 0


@register("ConvInteger", pattern="anchor")
def conv_integer(ctx):
    if ctx.out_dtype(0) != I32:
        raise ctx.unsupported(f"output of type {ctx.out_dtype(0)}")
    return [_conv_int(ctx, 0, 1, 2 if ctx.has_input(2) else None, 3 if ctx.has_input(3) else None,
                      lambda acc, idx: acc, "conv_int")]


@register("QLinearConv", pattern="anchor")
def qlinear_conv(ctx):
    out_dt = ctx.out_dtype(0)
    if out_dt not in _Q8:
        raise ctx.unsupported(f"output of type {out_dt}")
    OC = ctx.in_shape(3)[0]
    for i in (2, 7):
        if int(np.prod(ctx.in_shape(i), dtype=np.int64)) != 1:
            raise ctx.unsupported(f"input {i} (a zero point) must be a scalar")
    mult = _multiplier(ctx, 1, 4, 6, OC)
    yzp = _scalar_input(ctx, 7)
    bias = ctx.input(8) if ctx.has_input(8) else None
    if bias is not None and ctx.in_dtype(8) != I32:
        raise ctx.unsupported(f"bias of type {ctx.in_dtype(8)}")

    def epi(acc, idx):
        oc = idx[1]
        if bias is not None:
            acc = acc + bias[oc]
        return _requantize(acc, mult(oc), yzp, out_dt)

    return [_conv_int(ctx, 0, 3, 2, 5, epi, "qconv")]


# --------------------------------------------------------------------------------------
# default schedule: the generic rules, with the dot4 register tile chosen by tile_knobs
# --------------------------------------------------------------------------------------


def tile_knobs(t_ext: int, v_ext: int, regs: int = 32, lanes: int = 16) -> tuple:
    """(mr, nv) of a dot4 register tile: ``mr`` rows of the tiled axis x ``nv`` vectors of
    the vector axis, by a cost model over every tile of the loop nest (fitted to measured
    convolutions): per reduction step a tile costs max(accumulators / 2 (two vpdpbusd per
    cycle), loads / 2.5, 3) + 6 cycles; a tail tile of several vectors whose last one is
    partial runs guarded (x2).  At most regs - 8 accumulators (more spill), and at least
    two vectors when the vector axis has them (one broadcast per vpdpbusd is load-bound)."""
    def cost(mr, nv):
        vt = nv * lanes
        v_tiles = [nv] * (v_ext // vt)
        rv = v_ext % vt
        pen = 1.0
        if rv:
            v_tiles.append(-(-rv // lanes))
            if rv > lanes and rv % lanes:
                pen = 2.0
        t_tiles = [mr] * (t_ext // mr) + ([t_ext % mr] if t_ext % mr else [])
        total = 0.0
        for k, v in enumerate(v_tiles):
            p = pen if (rv and k == len(v_tiles) - 1) else 1.0
            for r in t_tiles:
                total += p * (max(r * v / 2, (r + v) / 2.5, 3.0) + 6)
        return total

    cap = max(1, regs - 8)
    best = None
    for nv in range(2 if v_ext >= 2 * lanes else 1, min(4, -(-v_ext // lanes)) + 1):
        for mr in range(1, max(1, min(t_ext, cap // nv)) + 1):
            c = cost(mr, nv)
            if best is None or c < best[0]:
                best = (c, mr, nv)
    return best[1], best[2]


def _qschedule(kernel, target):
    plan = plan_kernel(kernel, target)
    knobs = plan.default_knobs(target)
    for p, k in zip(plan.plans, knobs):
        if isinstance(p, TilePlan) and any(
                isinstance(x, Call) and x.fn == "dot4_u8s8" for x in walk(p.stage.body)):
            t_ext = p._extent(p.tile_axis) if p.tile_axis else 1
            k["mr"], k["nv"] = tile_knobs(t_ext, p._extent(p.vector_axis), target.num_vector_registers,
                                          target.lanes_f32)
    return plan.schedule(knobs)


for _op in ("ConvInteger", "QLinearConv", "MatMulInteger", "QLinearMatMul"):
    register_schedule(_op)(_qschedule)
