"""Reductions: the Reduce* family, ArgMax/ArgMin, LpPool/GlobalLpPool and CumSum.

Reduce ops are one stage ``out[o] = epilogue(combine_{r} value(x[o, r]))`` whose reduce axes
are the reduced input dimensions; the per-element transform (abs, square, exp) is the body
and the finishing step (divide by the count, sqrt, log) the epilogue, so the default
scheduler vectorises whichever of the innermost output axis / innermost reduce axis reads
contiguous memory.  Semantics followed (checked against onnxruntime):

* axes come from the ``axes`` attribute before opset 13 (ReduceSum) / 18 (the others) and
  from the optional second input after; they must then be a compile-time constant;
* empty axes reduce everything, unless ``noop_with_empty_axes`` is set: then no axis is
  reduced and the op is its per-element transform (ReduceL1 -> |x|, ReduceSumSquare -> x^2,
  ReduceLogSum -> log x, ReduceMean/Max/... -> x), as onnxruntime computes it;
* ReduceLogSumExp is max-shifted: ``m + log(sum(exp(x - m)))`` (an infinite ``m`` shifts by 0);
* integer inputs: Sum, Mean (truncating division), Max, Min, Prod, L1, SumSquare, and L2 /
  LogSum through float64 then truncated; float16 accumulates in float32; bool inputs
  (Max / Min, opset 20) are "any" / "all";
* an empty reduced axis gives the reduction of the empty set (see ``_empty_reduce``).

ArgMax/ArgMin are two stages: the extreme value, then the first (or last, with
``select_last_index``) index holding it.  CumSum is an imperative scan (ExternStage): the
rows before the axis are a parallel loop, the axis a serial loop, the dims after it inner
loops with the innermost vectorised.
"""
from __future__ import annotations

import numpy as np

from mlc.loop.expr import (INDEX, Buffer, Var, binary, call, cast, const, eq, is_float, logical_and,
                           reduce, reduce_max, reduce_min, reduce_sum, select)
from mlc.loop.stmt import loop, seq, store
from mlc.loop.tensor import ExternStage, Stage, reduce_axis
from mlc.registry import register

from .common import norm_axis, window_geometry

_FLOATS = ("float32", "float64", "float16", "bfloat16")
_WIDE_INTS = ("int32", "int64", "uint32", "uint64")
_ALL_INTS = _WIDE_INTS + ("int8", "uint8", "int16", "uint16")


def compute_dtype(dt: str) -> str:
    """The type arithmetic runs in: half-precision floats compute in float32."""
    return "float32" if dt in ("float16", "bfloat16") else dt


def no_empty(ctx, *shapes):
    for s in shapes:
        if any(int(d) == 0 for d in s):
            raise ctx.unsupported(f"empty tensors (shape {list(s)})")


# --------------------------------------------------------------------------------------
# axes handling
# --------------------------------------------------------------------------------------

def reduce_axes_of(ctx, input_from: int) -> list:
    """Normalised, sorted axes to reduce ([] = reduce nothing).

    ``input_from``: the opset from which axes are an input rather than an attribute."""
    rank = len(ctx.in_shape(0))
    if ctx.opset >= input_from:
        if ctx.has_input(1):
            axes = [int(a) for a in np.asarray(ctx.require_const(1, "axes")).reshape(-1)]
        else:
            axes = []
        noop = int(ctx.attr("noop_with_empty_axes", 0))
    else:
        axes = [int(a) for a in (ctx.attr("axes", None) or [])]
        noop = 0
    if not axes:
        return [] if noop else list(range(rank))
    try:
        return sorted({norm_axis(a, rank, "axes") for a in axes})
    except ValueError as e:
        raise ctx.unsupported(str(e)) from None


def adjacent_groups(axes) -> list:
    """Sorted axes split into runs of adjacent ones: [0, 2, 3] -> [[0], [2, 3]]."""
    groups: list = []
    for a in sorted(axes):
        if groups and groups[-1][-1] == a - 1:
            groups[-1].append(a)
        else:
            groups.append([a])
    return groups


def merged_reduce_axes(extents, groups, prefix: str = "r") -> tuple:
    """Reduce axes over ``extents`` (a list) with each group of positions merged into one axis.

    Returns (IterVars, index expression per position).  A run of adjacent dimensions read
    as one axis is one contiguous stretch of memory, so the scheduler can vectorise the
    whole run instead of its (perhaps short) last dimension: the row-major split
    ``(r // c) % b, r % c`` folds back into ``r`` in the address arithmetic."""
    ivs, per = [], [None] * len(extents)
    for g in groups:
        ext = int(np.prod([extents[k] for k in g], dtype=np.int64))
        iv = reduce_axis(ext, f"{prefix}{g[0]}")
        ivs.append(iv)
        parts = unflatten(iv.var, [extents[k] for k in g]) if len(g) > 1 else [iv.var]
        for k, e in zip(g, parts):
            per[k] = e
    return ivs, per


def input_index(rank: int, axes: list, keepdims: bool, out_idx, red) -> tuple:
    """Index of the input element for output index ``out_idx``; ``red``: the index
    expression of each reduced axis, in ``axes`` order."""
    idx, k, ri = [], 0, 0
    for d in range(rank):
        if d in axes:
            idx.append(red[ri])
            ri += 1
            if keepdims:
                k += 1
        else:
            idx.append(out_idx[k])
            k += 1
    return tuple(idx)


def reduction(ctx, x, in_shape, axes, keepdims, out_shape, combiner, value_fn, epi_fn, name,
              out_dtype, materialize=False, axis_names=None) -> Stage:
    """``out[o] = epi_fn(combine_{r} value_fn(x[o, r], o), o)``; no reduction when axes == []."""
    rank = len(in_shape)
    pos = {a: k for k, a in enumerate(axes)}
    red, per = merged_reduce_axes([in_shape[a] for a in axes],
                                  [[pos[a] for a in g] for g in adjacent_groups(axes)])

    def f(*o):
        v = value_fn(x[input_index(rank, axes, keepdims, o, per)], o)
        acc = reduce(combiner, v, red) if red else v
        return epi_fn(acc, o)
    return ctx.compute(out_shape, f, name, dtype=out_dtype, materialize=materialize, axis_names=axis_names)


# --------------------------------------------------------------------------------------
# Reduce*
# --------------------------------------------------------------------------------------

# op -> (input_from opset, allowed integer dtypes)
_REDUCE_OPS = {
    "ReduceSum": (13, _WIDE_INTS),
    "ReduceMean": (18, _WIDE_INTS),
    "ReduceMax": (18, _ALL_INTS),
    "ReduceMin": (18, _ALL_INTS),
    "ReduceProd": (18, _WIDE_INTS),
    "ReduceL1": (18, _WIDE_INTS),
    "ReduceL2": (18, _WIDE_INTS),
    "ReduceLogSum": (18, _WIDE_INTS),
    "ReduceLogSumExp": (18, ()),
    "ReduceSumSquare": (18, _WIDE_INTS),
}


def _build_reduce(op: str, ctx):
    input_from, ints = _REDUCE_OPS[op]
    x = ctx.input(0)
    in_shape = ctx.in_shape(0)
    dt = ctx.in_dtype(0)
    out_dt = ctx.out_dtype(0)
    out_shape = ctx.out_shape(0)
    bool_in = dt == "bool" and op in ("ReduceMax", "ReduceMin")     # opset 20: any / all
    if dt not in _FLOATS and dt not in ints and not bool_in:
        raise ctx.unsupported(f"{op} on {dt}")
    axes = reduce_axes_of(ctx, input_from)
    keepdims = bool(int(ctx.attr("keepdims", 1)))
    cdt = "uint8" if bool_in else compute_dtype(dt)
    n = int(np.prod([in_shape[a] for a in axes], dtype=np.int64)) if axes else 1
    if any(int(d) == 0 for d in in_shape):
        return [_empty_reduce(ctx, op, n, out_dt)]
    floaty = is_float(cdt)

    def up(v):
        return cast(cdt, v)

    ident = lambda acc, o: acc  # noqa: E731
    sq = lambda v, o: up(v) * up(v)  # noqa: E731

    def via_f64(fn):
        # integer results of float functions: through float64, truncated like onnxruntime
        if floaty:
            return lambda acc, o: call(fn, acc)
        return lambda acc, o: cast(cdt, call(fn, cast("float64", acc)))

    if op == "ReduceSum":
        spec = ("sum", lambda v, o: up(v), ident)
    elif op == "ReduceMean":
        spec = ("sum", lambda v, o: up(v), lambda acc, o: acc / const(n, cdt))
    elif op == "ReduceMax":
        spec = ("max", lambda v, o: up(v), ident)
    elif op == "ReduceMin":
        spec = ("min", lambda v, o: up(v), ident)
    elif op == "ReduceProd":
        spec = ("prod", lambda v, o: up(v), ident)
    elif op == "ReduceL1":
        spec = ("sum", lambda v, o: call("abs", up(v)), ident)
    elif op == "ReduceL2":
        if not axes:
            spec = ("sum", lambda v, o: call("abs", up(v)), ident)
        else:
            spec = ("sum", sq, via_f64("sqrt"))
    elif op == "ReduceLogSum":
        spec = ("sum", lambda v, o: up(v), via_f64("log"))
    elif op == "ReduceSumSquare":
        spec = ("sum", sq, ident)
    elif op == "ReduceLogSumExp":
        if not axes:
            spec = ("sum", lambda v, o: up(v), ident)
        else:
            # m = max; out = m' + log(sum exp(x - m')), m' = 0 where m is infinite
            m = reduction(ctx, x, in_shape, axes, keepdims, out_shape, "max", lambda v, o: up(v),
                          lambda acc, o: select(call("isinf", acc), const(0, cdt), acc), "lse_max", cdt)
            return [reduction(ctx, x, in_shape, axes, keepdims, out_shape, "sum",
                              lambda v, o: call("exp", up(v) - m[o]),
                              lambda acc, o: call("log", acc) + m[o], "logsumexp", out_dt)]
    else:  # pragma: no cover
        raise ctx.unsupported(op)
    combiner, value_fn, epi_fn = spec
    if bool_in:
        epi_fn = lambda acc, o: cast("bool", acc)  # noqa: E731
    return [reduction(ctx, x, in_shape, axes, keepdims, out_shape, combiner, value_fn, epi_fn,
                      op[6:].lower() if op != "ReduceSum" else "reducesum", out_dt)]


def _empty_reduce(ctx, op: str, n: int, out_dt: str):
    """A reduction of an empty input: the output is empty too, or (``n == 0``: an empty
    reduced axis) every element is the reduction of the empty set — the combiner's
    identity (Max: the dtype's lowest value, -inf for floats; Min: its highest), and
    LogSum and LogSumExp log(0) = -inf; Mean gives 0 (not 0 / 0), as onnxruntime does."""
    from .shape_ops import constant_stage
    if n > 0 or int(np.prod(ctx.out_shape(0), dtype=np.int64)) == 0:
        return constant_stage(ctx, np.zeros(ctx.out_shape(0), out_dt), "reduce_empty")
    floaty = np.dtype(out_dt).kind == "f"
    if out_dt == "bool":
        lo, hi = False, True
    elif floaty:
        lo, hi = -np.inf, np.inf
    else:
        lo, hi = np.iinfo(out_dt).min, np.iinfo(out_dt).max
    values = {"ReduceMax": lo, "ReduceMin": hi, "ReduceProd": 1,
              "ReduceLogSum": -np.inf, "ReduceLogSumExp": -np.inf}
    value = values.get(op, 0)
    if not floaty and isinstance(value, float) and not np.isfinite(value):
        raise ctx.unsupported(f"{op} of an empty set on {out_dt} (the result is not finite)")
    return constant_stage(ctx, np.full(ctx.out_shape(0), value, dtype=out_dt), "reduce_empty")


def _register_reduce(op: str):
    @register(op, pattern="reduce")
    def build(ctx):
        return _build_reduce(op, ctx)
    return build


for _op in _REDUCE_OPS:
    _register_reduce(_op)


# --------------------------------------------------------------------------------------
# ArgMax / ArgMin
# --------------------------------------------------------------------------------------

def _arg(ctx, kind: str):
    x = ctx.input(0)
    in_shape = ctx.in_shape(0)
    rank = len(in_shape)
    dt = ctx.in_dtype(0)
    if dt not in _FLOATS and dt not in _ALL_INTS:
        raise ctx.unsupported(f"Arg{kind} on {dt}")
    no_empty(ctx, in_shape)
    axis = ctx.axis(0, rank)
    keepdims = bool(int(ctx.attr("keepdims", 1)))
    last = bool(int(ctx.attr("select_last_index", 0)))
    out_shape = ctx.out_shape(0)
    K = in_shape[axis]
    cdt = compute_dtype(dt)
    m = reduction(ctx, x, in_shape, [axis], keepdims, out_shape, kind, lambda v, o: cast(cdt, v),
                  lambda acc, o: acc, f"arg{kind}_val", cdt)
    r = reduce_axis(K, f"r{axis}")

    def f(*o):
        hit = eq(cast(cdt, x[input_index(rank, [axis], keepdims, o, [r.var])]), m[o])
        if last:
            return reduce_max(select(hit, r.var, const(-1, INDEX)), [r])
        return reduce_min(select(hit, r.var, const(K, INDEX)), [r])
    return [ctx.compute(out_shape, f, f"arg{kind}", dtype="int64")]


@register("ArgMax", pattern="reduce")
def argmax(ctx):
    return _arg(ctx, "max")


@register("ArgMin", pattern="reduce")
def argmin(ctx):
    return _arg(ctx, "min")


# --------------------------------------------------------------------------------------
# LpPool / GlobalLpPool
# --------------------------------------------------------------------------------------

def _lp_value(v, p: float, dt: str):
    if p == 1:
        return call("abs", v)
    if p == 2:
        return v * v
    if float(p).is_integer() and 2 < p <= 4:
        a = call("abs", v)
        out = a
        for _ in range(int(p) - 1):
            out = out * a
        return out
    return binary("pow", call("abs", v), const(p, dt))


def _lp_finish(acc, p: float, dt: str):
    if p == 1:
        return acc
    if p == 2:
        return call("sqrt", acc)
    return binary("pow", acc, const(1.0 / p, dt))


def _lp_p(ctx) -> float:
    p = ctx.attr("p", 2)
    p = float(p)
    if not np.isfinite(p) or p <= 0:
        raise ctx.unsupported(f"p={p} (must be a positive number)")
    return p


def _window(ctx, spatial_in, spatial_out):
    kernel, strides, dil, begin, _ = window_geometry(ctx, spatial_in, spatial_out)
    return kernel, strides, dil, begin


@register("LpPool", pattern="reduce")
def lp_pool(ctx):
    x = ctx.input(0)
    xs = ctx.in_shape(0)
    out = ctx.out_shape(0)
    dt = ctx.out_dtype(0)
    if dt not in _FLOATS:
        raise ctx.unsupported(f"LpPool on {dt}")
    no_empty(ctx, xs, out)
    p = _lp_p(ctx)
    cdt = compute_dtype(dt)
    spatial_in, spatial_out = list(xs[2:]), list(out[2:])
    kernel, strides, dil, pb = _window(ctx, spatial_in, spatial_out)
    nd = len(kernel)
    if len(spatial_in) != nd:
        raise ctx.unsupported(f"kernel_shape of rank {nd} for a rank-{len(xs)} input")
    red = [reduce_axis(k, f"r{d}") for d, k in enumerate(kernel)]

    def f(n, c, *o):
        pos = [o[d] * strides[d] + red[d] * dil[d] - pb[d] for d in range(nd)]
        conds = []
        for d in range(nd):
            if pb[d] > 0:
                conds.append(pos[d] >= 0)
            if (spatial_out[d] - 1) * strides[d] + (kernel[d] - 1) * dil[d] - pb[d] >= spatial_in[d]:
                conds.append(pos[d] < spatial_in[d])
        if conds:
            safe = [binary("min", binary("max", q, 0), spatial_in[d] - 1) for d, q in enumerate(pos)]
            v = select(logical_and(*conds), cast(cdt, x[(n, c, *safe)]), const(0, cdt))
        else:
            v = cast(cdt, x[(n, c, *pos)])
        return _lp_finish(reduce_sum(_lp_value(v, p, cdt), red), p, cdt)

    names = ["n", "c"] + [f"o{d}" for d in range(nd)]
    return [ctx.compute(out, f, "lppool", dtype=dt, axis_names=names)]


@register("GlobalLpPool", pattern="reduce")
def global_lp_pool(ctx):
    x = ctx.input(0)
    xs = ctx.in_shape(0)
    dt = ctx.out_dtype(0)
    if dt not in _FLOATS:
        raise ctx.unsupported(f"GlobalLpPool on {dt}")
    no_empty(ctx, xs)
    p = _lp_p(ctx)
    cdt = compute_dtype(dt)
    axes = list(range(2, len(xs)))
    if not axes:   # nothing to pool: (|x|^p)^(1/p)
        return [ctx.compute(ctx.out_shape(0), lambda *i: call("abs", cast(cdt, x[i])), "globallppool", dtype=dt)]
    return [reduction(ctx, x, xs, axes, True, ctx.out_shape(0), "sum",
                      lambda v, o: _lp_value(cast(cdt, v), p, cdt),
                      lambda acc, o: _lp_finish(acc, p, cdt), "globallppool", dt)]


# --------------------------------------------------------------------------------------
# CumSum
# --------------------------------------------------------------------------------------

PAR_MIN_WORK = 1 << 14


def unflatten(flat, dims) -> list:
    """Row-major multi-index of ``flat`` (in ``[0, prod(dims))``) within ``dims``.

    Written ``r % c, (r // c) % b, (r // c) // b`` so that address arithmetic folds the
    parts back into ``r`` (see ``mlc.loop.expr.simplify``)."""
    out = []
    for k, d in enumerate(reversed(dims)):
        if d == 1:
            out.append(const(0, INDEX))
            continue
        out.append(flat if k == len(dims) - 1 else binary("mod", flat, d))
        flat = binary("floordiv", flat, d)
    return list(reversed(out))


def as_buffer(h):
    return h.buffer if isinstance(h, (Stage, ExternStage)) else h


@register("CumSum", pattern="opaque")
def cumsum(ctx):
    x = as_buffer(ctx.input(0))
    shape = ctx.in_shape(0)
    dt = ctx.out_dtype(0)
    if dt not in ("float32", "float64") and dt not in _WIDE_INTS:
        raise ctx.unsupported(f"CumSum on {dt}")
    rank = len(shape)
    if rank == 0:
        raise ctx.unsupported("CumSum of a scalar")
    no_empty(ctx, shape)
    axis_v = np.asarray(ctx.require_const(1, "axis")).reshape(-1)
    if axis_v.size != 1:
        raise ctx.unsupported("axis must be a scalar")
    try:
        axis = norm_axis(int(axis_v[0]), rank)
    except ValueError as e:
        raise ctx.unsupported(str(e)) from None
    exclusive = bool(int(ctx.attr("exclusive", 0)))
    reverse = bool(int(ctx.attr("reverse", 0)))
    out = Buffer(ctx.unique("cumsum"), tuple(shape), dt)
    before, K, after = shape[:axis], shape[axis], shape[axis + 1:]
    rows = int(np.prod(before, dtype=np.int64)) if before else 1
    rv = Var("row")
    kq = Var("k")
    ivs = [Var(f"j{d}") for d in range(len(after))]
    pre = unflatten(rv, before) if before else []

    def at(k):
        return tuple(pre) + (k,) + tuple(ivs)

    def inner(body):
        for d in reversed(range(len(after))):
            kind = "vector" if d == len(after) - 1 and after[d] > 1 else "serial"
            body = loop(ivs[d], after[d], body, kind)
        return body

    # the first element along the axis, then out[k] = out[prev] + x[k] (x[prev] if exclusive)
    k0 = const(K - 1 if reverse else 0, INDEX)
    first = inner(store(out, at(k0), const(0, dt) if exclusive else x[at(k0)]))
    rest = None
    if K > 1:
        # kq runs over the K - 1 remaining positions in scan order
        kk = (const(K - 2, INDEX) - kq) if reverse else (kq + 1)
        kp = (const(K - 1, INDEX) - kq) if reverse else kq
        rest = loop(kq, K - 1, inner(store(out, at(kk), out[at(kp)] + x[at(kp if exclusive else kk)])))
    body = seq(first, rest)
    par = ctx.target.num_cores > 1 and rows > 1 and rows * K * max(1, int(np.prod(after or [1]))) >= PAR_MIN_WORK
    stmt = loop(rv, rows, body, "parallel" if par else "serial")
    stage = ExternStage((out,), (x,), stmt, tag="CumSum")
    ctx.extern(stage)
    return [out]

