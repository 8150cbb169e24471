"""Data movement: Transpose, Concat, Split, Slice, Expand, Tile, Pad, DepthToSpace,
SpaceToDepth, Trilu, Where.

Every op here is an index remapping (pattern "injective", Where "broadcast"): each output
element is one input element (or a constant), found by integer arithmetic on the output
indices.  Shape-determining operands (perm, split sizes, slice bounds, pads, repeats) must
be compile-time constants — the output shape is static anyway; values that only affect
data (Pad's constant_value, Trilu's k) may be run-time tensors.

Whatever an index expression computes, a load never leaves its buffer: selects evaluate
both branches, so the not-taken branch reads a clamped index.
"""
from __future__ import annotations

import numpy as np

from mlc.loop.expr import (INDEX, Expr, as_expr, binary, cast, const, logical_and, maximum, minimum,
                           select)
from mlc.registry import register

from .common import broadcast_load, norm_axis

# --- helpers shared by the index-remapping kernels (also used by gather_scatter, resize) --

def clamp(e, lo: int, hi: int) -> Expr:
    """``e`` clamped to ``[lo, hi]`` (int64)."""
    return minimum(maximum(as_expr(e, INDEX), lo), hi)


def as_index(e: Expr) -> Expr:
    """An integer tensor value as an int64 index expression."""
    return cast(INDEX, e) if e.dtype != INDEX else e


def wrap_index(e: Expr, n: int) -> Expr:
    """A possibly negative index into a dim of size ``n``: wrapped once, then clamped into
    ``[0, n-1]`` so that an out-of-range value can never read outside the buffer."""
    signed = not e.dtype.startswith("uint")
    e = as_index(e)
    if signed:
        e = select(e < 0, e + n, e)
    return clamp(e, 0, max(n - 1, 0))


def const_ints(ctx, i: int, what: str) -> list[int]:
    """Input ``i`` as a list of Python ints (must be a compile-time constant)."""
    return [int(v) for v in np.asarray(ctx.require_const(i, what)).reshape(-1)]


def scalar_load(t) -> Expr:
    """Element 0 of a scalar-like (0-d or one-element) tensor."""
    return t[tuple(0 for _ in t.shape)]


def _zero_size(shape) -> bool:
    return any(int(d) == 0 for d in shape)


def _empty_output(ctx, k: int = 0):
    """A stage for an output with no elements (nothing is ever read)."""
    dt = ctx.out_dtype(k)
    return ctx.compute(ctx.out_shape(k), lambda *i: const(0, dt), "empty")


# --- Transpose ---------------------------------------------------------------------------

@register("Transpose", pattern="injective")
def transpose(ctx):
    x = ctx.input(0)
    rank = len(ctx.in_shape(0))
    perm = ctx.attr("perm")
    perm = list(range(rank))[::-1] if perm is None else [norm_axis(int(p), rank, "perm") for p in perm]
    if sorted(perm) != list(range(rank)):
        raise ctx.unsupported(f"perm {perm} is not a permutation of {rank} axes")

    def f(*i):
        idx = [None] * rank
        for k, p in enumerate(perm):
            idx[p] = i[k]
        return x[tuple(idx)]
    return [ctx.compute(ctx.out_shape(0), f, "transpose")]


# --- Concat ------------------------------------------------------------------------------

@register("Concat", pattern="injective")
def concat(ctx):
    out_shape = ctx.out_shape(0)
    rank = len(out_shape)
    axis = ctx.axis(0, rank)
    parts = []                       # (tensor, offset, size)
    off = 0
    for k in range(len(ctx.inputs)):
        if not ctx.has_input(k):
            continue
        n = int(ctx.in_shape(k)[axis])
        if n > 0:
            parts.append((ctx.input(k), off, n))
        off += n
    if off != out_shape[axis]:
        raise ctx.unsupported(f"inputs add up to {off} along axis {axis}, output has {out_shape[axis]}")
    if _zero_size(out_shape):
        return [_empty_output(ctx)]

    def f(*i):
        pos = i[axis]

        def read(t, o, n):
            idx = list(i)
            idx[axis] = clamp(pos - o, 0, n - 1)
            return t[tuple(idx)]
        t, o, n = parts[-1]
        value = read(t, o, n)
        for t, o, n in reversed(parts[:-1]):
            value = select(pos < o + n, read(t, o, n), value)
        return value
    return [ctx.compute(out_shape, f, "concat")]


# --- Split -------------------------------------------------------------------------------

@register("Split", pattern="injective")
def split(ctx):
    x = ctx.input(0)
    in_shape = ctx.in_shape(0)
    rank = len(in_shape)
    axis = ctx.axis(0, rank)
    # output sizes come from shape inference, which resolved split / num_outputs
    sizes = [int(t.shape[axis]) if t is not None else None for t in ctx.output_tensors]
    if ctx.opset >= 13 and ctx.has_input(1):
        want = const_ints(ctx, 1, "split")
    elif ctx.opset < 13 and ctx.attr("split") is not None:
        want = [int(v) for v in ctx.attr("split")]
    else:
        want = None
    if want is not None and (len(want) != len(sizes) or any(s is not None and s != w for s, w in zip(sizes, want))):
        raise ctx.unsupported(f"split sizes {want} disagree with the output shapes")
    if None in sizes:
        if want is None:
            raise ctx.unsupported("an unused Split output whose size is unknown")
        sizes = want
    if sum(sizes) != in_shape[axis]:
        raise ctx.unsupported(f"split sizes {sizes} do not add up to dim {in_shape[axis]}")
    outs, off = [], 0
    for k, n in enumerate(sizes):
        t = ctx.output_tensors[k]
        if t is None:
            outs.append(None)
        else:
            def f(*i, o=off):
                idx = list(i)
                idx[axis] = i[axis] + o
                return x[tuple(idx)]
            outs.append(ctx.compute(t.shape, f, "split"))
        off += n
    return outs


# --- Slice -------------------------------------------------------------------------------

def slice_params(starts, ends, axes, steps, in_shape):
    """Per-axis (start, step) and output size, the ONNX/numpy way (clamped to the dims)."""
    rank = len(in_shape)
    start = [0] * rank
    step = [1] * rank
    size = list(in_shape)
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = norm_axis(a, rank)
        if st == 0:
            raise ValueError("slice step 0")
        b, _, _ = slice(s, e, st).indices(in_shape[a])
        n = len(range(*slice(s, e, st).indices(in_shape[a])))
        start[a], step[a], size[a] = b, st, n
    return start, step, size


@register("Slice", pattern="injective")
def slice_(ctx):
    x = ctx.input(0)
    in_shape = ctx.in_shape(0)
    rank = len(in_shape)
    if ctx.opset < 10:
        starts = [int(v) for v in ctx.attr("starts")]
        ends = [int(v) for v in ctx.attr("ends")]
        axes = [int(v) for v in ctx.attr("axes", list(range(len(starts))))]
        steps = [1] * len(starts)
    else:
        starts = const_ints(ctx, 1, "starts")
        ends = const_ints(ctx, 2, "ends")
        axes = const_ints(ctx, 3, "axes") if ctx.has_input(3) else list(range(len(starts)))
        steps = const_ints(ctx, 4, "steps") if ctx.has_input(4) else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ctx.unsupported("starts/ends/axes/steps of different lengths")
    if any(s == 0 for s in steps):
        raise ctx.unsupported("a slice step of 0")
    axes = [norm_axis(a, rank) for a in axes]
    if len(set(axes)) != len(axes):
        raise ctx.unsupported(f"repeated axes {axes}")
    start, step, size = slice_params(starts, ends, axes, steps, in_shape)
    out_shape = ctx.out_shape(0)
    if tuple(size) != tuple(out_shape):
        raise ctx.unsupported(f"slice gives shape {size} but shape inference says {list(out_shape)}")
    if _zero_size(out_shape):
        return [_empty_output(ctx)]
    return [ctx.compute(out_shape, lambda *i: x[tuple(i[d] * step[d] + start[d] for d in range(rank))],
                        "slice")]


# --- Expand, Tile ------------------------------------------------------------------------

@register("Expand", pattern="injective")
def expand(ctx):
    x = ctx.input(0)
    out_shape = ctx.out_shape(0)
    if _zero_size(out_shape):
        return [_empty_output(ctx)]
    return [ctx.compute(out_shape, lambda *i: broadcast_load(x, i), "expand")]


@register("Tile", pattern="injective")
def tile(ctx):
    x = ctx.input(0)
    in_shape = ctx.in_shape(0)
    out_shape = ctx.out_shape(0)
    if len(in_shape) != len(out_shape) or any(o % max(n, 1) for n, o in zip(in_shape, out_shape)):
        raise ctx.unsupported(f"output shape {list(out_shape)} is not a tiling of {list(in_shape)}")
    if _zero_size(out_shape):
        return [_empty_output(ctx)]
    return [ctx.compute(out_shape, lambda *i: x[tuple(v if n == o else v % n
                                                       for v, n, o in zip(i, in_shape, out_shape))],
                        "tile")]


# --- Pad ---------------------------------------------------------------------------------

@register("Pad", pattern="injective")
def pad(ctx):
    x = ctx.input(0)
    in_shape = ctx.in_shape(0)
    rank = len(in_shape)
    dt = ctx.out_dtype(0)
    mode = ctx.attr("mode", "constant")
    if isinstance(mode, bytes):
        mode = mode.decode()
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise ctx.unsupported(f"mode {mode!r}")
    cval = None                      # expression of the constant value
    if ctx.opset < 11:
        pads = [int(v) for v in ctx.attr("pads")]
        cval = const(float(ctx.attr("value", 0.0)), dt)
        axes = list(range(rank))
    else:
        pads = const_ints(ctx, 1, "pads")
        if ctx.has_input(2):
            cv = ctx.const(2)
            if cv is not None:
                v = np.asarray(cv).reshape(-1)
                cval = const(v[0].item() if v.size else 0, dt)
            else:
                cval = scalar_load(ctx.input(2))
                if cval.dtype != dt:
                    cval = cast(dt, cval)
        else:
            cval = const(0, dt)
        if ctx.opset >= 18 and ctx.has_input(3):
            axes = [norm_axis(a, rank) for a in const_ints(ctx, 3, "axes")]
        else:
            axes = list(range(rank))
    if len(pads) != 2 * len(axes):
        raise ctx.unsupported(f"{len(pads)} pads for {len(axes)} axes")
    begin, end = [0] * rank, [0] * rank
    for k, a in enumerate(axes):
        begin[a] += pads[k]
        end[a] += pads[len(axes) + k]
    out_shape = ctx.out_shape(0)
    want = [n + b + e for n, b, e in zip(in_shape, begin, end)]
    if list(out_shape) != want:
        raise ctx.unsupported(f"pads give shape {want} but shape inference says {list(out_shape)}")
    if _zero_size(out_shape):
        return [_empty_output(ctx)]
    # negative pads crop first; the remaining (non-negative) pads then extend the cropped view
    crop = [max(0, -b) for b in begin]
    view = [n - max(0, -b) - max(0, -e) for n, b, e in zip(in_shape, begin, end)]
    pb = [max(0, b) for b in begin]
    pe = [max(0, e) for e in end]
    for d in range(rank):
        if (pb[d] or pe[d]) and view[d] <= 0 and mode != "constant":
            raise ctx.unsupported(f"{mode} padding of an axis with no elements left")
    if _zero_size(in_shape) or any(v <= 0 for v in view):
        # nothing of the input survives: the output is all padding
        if mode != "constant":
            raise ctx.unsupported(f"{mode} padding of an empty tensor")
        return [ctx.compute(out_shape, lambda *i: cval, "pad")]

    def f(*i):
        idx, conds = [], []
        for d in range(rank):
            n = view[d]
            src = i[d] - pb[d]
            if not (pb[d] or pe[d]):
                idx.append(src + crop[d])
                continue
            if mode == "constant":
                if pb[d]:
                    conds.append(src >= 0)
                if pe[d]:
                    conds.append(src < n)
                src = clamp(src, 0, n - 1)
            elif mode == "edge":
                src = clamp(src, 0, n - 1)
            elif mode == "wrap":
                src = binary("mod", src + n * ((pb[d] + n - 1) // n), n) if n > 1 else const(0, INDEX)
            else:  # reflect: period 2(n-1)
                if n == 1:
                    src = const(0, INDEX)
                else:
                    period = 2 * (n - 1)
                    m = binary("mod", src + period * ((pb[d] + period - 1) // period), period)
                    src = select(m < n, m, period - m)
            idx.append(src + crop[d])
        value = x[tuple(idx)]
        if conds:
            value = select(logical_and(*conds), value, cval)
        return value
    return [ctx.compute(out_shape, f, "pad")]


# --- DepthToSpace, SpaceToDepth ------------------------------------------------------------

@register("DepthToSpace", pattern="injective")
def depth_to_space(ctx):
    x = ctx.input(0)
    if len(ctx.in_shape(0)) != 4:
        raise ctx.unsupported("input of rank other than 4")
    bs = int(ctx.attr("blocksize"))
    mode = ctx.attr("mode", "DCR")
    if mode not in ("DCR", "CRD"):
        raise ctx.unsupported(f"mode {mode!r}")
    C_out = ctx.out_shape(0)[1]

    def f(n, c, h, w):
        bh, bw = h % bs, w % bs
        if mode == "DCR":
            ch = (bh * bs + bw) * C_out + c
        else:
            ch = c * (bs * bs) + bh * bs + bw
        return x[n, ch, h // bs, w // bs]
    return [ctx.compute(ctx.out_shape(0), f, "depth_to_space")]


@register("SpaceToDepth", pattern="injective")
def space_to_depth(ctx):
    x = ctx.input(0)
    if len(ctx.in_shape(0)) != 4:
        raise ctx.unsupported("input of rank other than 4")
    bs = int(ctx.attr("blocksize"))
    C = ctx.in_shape(0)[1]
    mode = ctx.attr("mode", "DCR")          # opset 28: CRD as well
    if mode not in ("DCR", "CRD"):
        raise ctx.unsupported(f"mode {mode!r}")

    def f(n, c, h, w):
        if mode == "DCR":
            b, ci = c // C, c % C
        else:
            b, ci = c % (bs * bs), c // (bs * bs)
        return x[n, ci, h * bs + b // bs, w * bs + b % bs]
    return [ctx.compute(ctx.out_shape(0), f, "space_to_depth")]


# --- Trilu -------------------------------------------------------------------------------

@register("Trilu", pattern="injective")
def trilu(ctx):
    x = ctx.input(0)
    dt = ctx.out_dtype(0)
    shape = ctx.out_shape(0)
    if len(shape) < 2:
        raise ctx.unsupported("input of rank < 2")
    upper = int(ctx.attr("upper", 1))
    k: Expr = const(0, INDEX)
    if ctx.has_input(1):
        kc = ctx.const(1)
        k = const(int(np.asarray(kc).reshape(-1)[0]), INDEX) if kc is not None else as_index(scalar_load(ctx.input(1)))
    if _zero_size(shape):
        return [_empty_output(ctx)]
    zero = const(0, dt)

    def f(*i):
        diff = i[-1] - i[-2]
        keep = diff >= k if upper else diff <= k
        return select(keep, x[i], zero)
    return [ctx.compute(shape, f, "trilu")]


# --- Where -------------------------------------------------------------------------------

@register("Where", pattern="broadcast")
def where(ctx):
    c, a, b = ctx.input(0), ctx.input(1), ctx.input(2)
    shape = ctx.out_shape(0)
    if _zero_size(shape):
        return [_empty_output(ctx)]

    def f(*i):
        cond = broadcast_load(c, i)
        if cond.dtype != "bool":
            cond = cast("bool", cond)
        return select(cond, broadcast_load(a, i), broadcast_load(b, i))
    return [ctx.compute(shape, f, "where")]
