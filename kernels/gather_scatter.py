"""Indexing by data: Gather, GatherElements, GatherND, ScatterND, ScatterElements, OneHot.

Gathers are injective stages whose load indices come from an index tensor.  Negative
indices count from the back (wrapped once); indices still out of range are clamped to the
dim, so a bad index gives some element of the input rather than a read outside it
(onnxruntime reports an error for them instead).

Scatters are ExternStages: copy ``data`` to the output, then apply the updates one by one
in index order, so duplicate indices combine exactly as a sequential loop would (the last
write wins for reduction "none"; add / mul / max / min accumulate).
"""
from __future__ import annotations

import numpy as np

from mlc.loop.expr import INDEX, Buffer, Var, binary, cast, const, eq, is_float, select
from mlc.loop.stmt import Let, loop, seq, store
from mlc.loop.tensor import ExternStage
from mlc.registry import register

from .data_movement import as_index, wrap_index

_INDEX_DTYPES = ("int32", "int64")


def _buffer(h) -> Buffer:
    return h if isinstance(h, Buffer) else h.buffer


def _check_index_dtype(ctx, i: int):
    if ctx.in_dtype(i) not in _INDEX_DTYPES:
        raise ctx.unsupported(f"indices of dtype {ctx.in_dtype(i)} (int32 or int64 expected)")


# --- Gather ------------------------------------------------------------------------------

@register("Gather", pattern="injective")
def gather(ctx):
    data, idx = ctx.input(0), ctx.input(1)
    _check_index_dtype(ctx, 1)
    ds, iq = ctx.in_shape(0), len(ctx.in_shape(1))
    axis = ctx.axis(0, len(ds))
    n = ds[axis]
    if any(d == 0 for d in ctx.out_shape(0)):
        return [ctx.compute(ctx.out_shape(0), lambda *i: const(0, ctx.out_dtype(0)), "gather")]
    if n == 0:
        raise ctx.unsupported("gathering from an empty axis")
    known = ctx.const(1)

    def f(*o):
        pre, ii, post = o[:axis], o[axis:axis + iq], o[axis + iq:]
        if known is not None and known.size == 1:
            v = int(np.asarray(known).reshape(-1)[0])
            pos = const(min(max(v + n if v < 0 else v, 0), n - 1), INDEX)
        else:
            pos = wrap_index(idx[tuple(ii)], n)
        return data[(*pre, pos, *post)]
    return [ctx.compute(ctx.out_shape(0), f, "gather")]


@register("GatherElements", pattern="injective")
def gather_elements(ctx):
    data, idx = ctx.input(0), ctx.input(1)
    _check_index_dtype(ctx, 1)
    ds = ctx.in_shape(0)
    axis = ctx.axis(0, len(ds))
    if any(d == 0 for d in ctx.out_shape(0)):
        return [ctx.compute(ctx.out_shape(0), lambda *i: const(0, ctx.out_dtype(0)), "gather_elements")]
    if ds[axis] == 0:
        raise ctx.unsupported("gathering from an empty axis")

    def f(*o):
        pos = list(o)
        pos[axis] = wrap_index(idx[o], ds[axis])
        return data[tuple(pos)]
    return [ctx.compute(ctx.out_shape(0), f, "gather_elements")]


@register("GatherND", pattern="injective")
def gather_nd(ctx):
    data, idx = ctx.input(0), ctx.input(1)
    if ctx.in_dtype(1) != "int64":
        raise ctx.unsupported(f"indices of dtype {ctx.in_dtype(1)} (int64 expected)")
    ds, ish = ctx.in_shape(0), ctx.in_shape(1)
    b = int(ctx.attr("batch_dims", 0))
    k = ish[-1]
    if b + k > len(ds):
        raise ctx.unsupported(f"index tuples of length {k} with {b} batch dims on rank {len(ds)}")
    if any(d == 0 for d in ctx.out_shape(0)):
        return [ctx.compute(ctx.out_shape(0), lambda *i: const(0, ctx.out_dtype(0)), "gather_nd")]
    lead = len(ish) - 1

    def f(*o):
        head, rest = o[:lead], o[lead:]
        coords = [wrap_index(idx[(*head, j)], ds[b + j]) for j in range(k)]
        return data[(*head[:b], *coords, *rest)]
    return [ctx.compute(ctx.out_shape(0), f, "gather_nd")]


# --- scatters (imperative) -------------------------------------------------------------

_COMBINE = {"add": "add", "mul": "mul", "max": "max", "min": "min"}


def _reduction(ctx) -> str:
    red = ctx.attr("reduction", "none")
    if isinstance(red, bytes):
        red = red.decode()
    if red != "none" and red not in _COMBINE:
        raise ctx.unsupported(f"reduction {red!r}")
    if red != "none" and ctx.out_dtype(0) == "bool":
        raise ctx.unsupported(f"reduction {red!r} on bool data")
    return red


def _combine(red: str, old, new):
    if red == "none":
        return new
    return binary(_COMBINE[red], old, new)


def _loops(vars_, extents, body, inner_kind="serial"):
    for k in reversed(range(len(vars_))):
        kind = inner_kind if k == len(vars_) - 1 else "serial"
        body = loop(vars_[k], extents[k], body, kind)
    return body


def _copy(src: Buffer, dst: Buffer, prefix: str):
    vs = [Var(f"{prefix}{d}") for d in range(len(src.shape))]
    body = store(dst, vs, src[tuple(vs)] if vs else src[()])
    return _loops(vs, src.shape, body, "vector" if vs and src.shape[-1] > 1 else "serial")


@register("ScatterND", pattern="opaque")
def scatter_nd(ctx):
    data, idx, upd = (_buffer(ctx.input(i)) for i in range(3))
    if ctx.in_dtype(1) != "int64":
        raise ctx.unsupported(f"indices of dtype {ctx.in_dtype(1)} (int64 expected)")
    red = _reduction(ctx)
    ds, ish = data.shape, idx.shape
    k = ish[-1]
    lead = len(ish) - 1
    out = Buffer(ctx.unique("scatter_nd"), tuple(ds), ctx.out_dtype(0))
    copy = _copy(data, out, "c")
    if any(d == 0 for d in ish[:-1]) or any(d == 0 for d in ds):
        body = copy
    else:
        u = [Var(f"u{d}") for d in range(lead)]
        s = [Var(f"s{d}") for d in range(len(ds) - k)]
        cs = [Var(f"p{j}") for j in range(k)]
        pos = (*cs, *s)
        inner = store(out, pos, _combine(red, out[pos], upd[(*u, *s)]))
        inner = _loops(s, ds[k:], inner)
        for j in reversed(range(k)):
            inner = Let(cs[j], wrap_index(idx[(*u, j)], ds[j]), inner)
        body = seq(copy, _loops(u, ish[:-1], inner))
    stage = ExternStage((out,), (data, idx, upd), body, tag="ScatterND")
    ctx.extern(stage)
    return [out]


@register("ScatterElements", pattern="opaque")
def scatter_elements(ctx):
    data, idx, upd = (_buffer(ctx.input(i)) for i in range(3))
    _check_index_dtype(ctx, 1)
    red = _reduction(ctx)
    ds, ish = data.shape, idx.shape
    axis = ctx.axis(0, len(ds))
    out = Buffer(ctx.unique("scatter_elements"), tuple(ds), ctx.out_dtype(0))
    copy = _copy(data, out, "c")
    if any(d == 0 for d in ish) or ds[axis] == 0:
        body = copy
    else:
        u = [Var(f"u{d}") for d in range(len(ish))]
        p = Var("p")
        pos = list(u)
        pos[axis] = p
        pos = tuple(pos)
        inner = Let(p, wrap_index(idx[tuple(u)], ds[axis]),
                    store(out, pos, _combine(red, out[pos], upd[tuple(u)])))
        body = seq(copy, _loops(u, ish, inner))
    stage = ExternStage((out,), (data, idx, upd), body, tag="ScatterElements")
    ctx.extern(stage)
    return [out]


# --- OneHot ------------------------------------------------------------------------------

@register("OneHot", pattern="injective")
def one_hot(ctx):
    indices, values = ctx.input(0), ctx.input(2)
    out_shape = ctx.out_shape(0)
    rank = len(out_shape)
    axis = ctx.axis(-1, rank)
    depth = out_shape[axis]
    if ctx.const(1) is not None:
        dv = np.asarray(ctx.const(1)).reshape(-1)[0]
        if int(dv) != depth:
            raise ctx.unsupported(f"depth {dv} disagrees with the output shape {list(out_shape)}")
    if values.shape != (2,) and int(np.prod(values.shape)) != 2:
        raise ctx.unsupported(f"values of shape {list(values.shape)} (2 elements expected)")
    vidx = (lambda j: (j,)) if len(values.shape) == 1 else (lambda j: tuple([0] * (len(values.shape) - 1) + [j]))
    if any(d == 0 for d in out_shape):
        return [ctx.compute(out_shape, lambda *i: const(0, ctx.out_dtype(0)), "one_hot")]

    def f(*o):
        d = o[axis]
        rest = o[:axis] + o[axis + 1:]
        raw = indices[rest] if rest else indices[()]
        if is_float(raw.dtype):
            raw = cast(INDEX, raw)          # truncation, as onnxruntime casts
        iv = as_index(raw)
        if not ctx.in_dtype(0).startswith("uint"):
            iv = select(iv < 0, iv + depth, iv)
        return select(eq(iv, d), values[vidx(1)], values[vidx(0)])
    return [ctx.compute(out_shape, f, "one_hot")]
