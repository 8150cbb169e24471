"""Shape and type ops: Shape, Size, ConstantOfShape, Constant, Range, Cast, CastLike, EyeLike.

The frontend folds most of these away (Shape/Size of a known shape, anything whose inputs
are constants); the kernels here run when a node survives to compile time.  Values known
at compile time become constant stages (numpy computes them, generated code reads them).

Cast follows onnxruntime on x86 where C++ leaves the result open: a float converts to a
narrow integer (8/16 bits) through int32 and to uint32 through int64, then wraps; to
uint64 through int64 (so negative values wrap too).  Conversions to float16 from float64
or integers go through float32 (two roundings, as onnxruntime does).  A cast to bfloat16
is materialised: bfloat16 values are computed in float32 registers, and only storing them
rounds to bfloat16.
"""
from __future__ import annotations

import numpy as np

from mlc.loop.expr import ALL_DTYPES, INDEX, cast, const, eq, is_float, select
from mlc.registry import register

# --- constant outputs --------------------------------------------------------------------


def constant_stage(ctx, value, name: str, k: int = 0):
    """A stage whose value is the compile-time array ``value`` (shape/dtype of output k)."""
    dt = ctx.out_dtype(k)
    shape = tuple(ctx.out_shape(k))
    if dt not in ALL_DTYPES:
        raise ctx.unsupported(f"output dtype {dt}")
    value = np.asarray(value)
    if value.dtype.name != dt:
        value = value.astype(dt)
    value = value.reshape(shape)
    if value.size == 0:
        return ctx.compute(shape, lambda *i: const(0, dt), name)
    first = value.reshape(-1)[0]
    if value.size == 1 or bool(np.all(value == first)):
        c = _scalar_const(first, dt)
        return ctx.compute(shape, lambda *i: c, name)
    flat = value.reshape(-1)
    buf = ctx.constant(flat, name + "_data")
    strides = [int(np.prod(shape[d + 1:], dtype=np.int64)) for d in range(len(shape))]

    def f(*i):
        off = const(0, INDEX)
        for v, s in zip(i, strides):
            off = off + v * s
        return buf[off]
    return ctx.compute(shape, f, name)


def _scalar_const(v, dt: str):
    if dt == "bool":
        return const(bool(v), dt)
    if is_float(dt):
        return const(float(v), dt)
    return const(int(v), dt)


@register("Shape", pattern="injective")
def shape(ctx):
    dims = np.array(ctx.in_shape(0), dtype=np.int64)
    start, end = ctx.attr("start", 0), ctx.attr("end", None)
    return [constant_stage(ctx, dims[int(start):None if end is None else int(end)], "shape")]


@register("Size", pattern="injective")
def size(ctx):
    return [constant_stage(ctx, np.array(int(np.prod(ctx.in_shape(0), dtype=np.int64)), np.int64), "size")]


@register("ConstantOfShape", pattern="injective")
def constant_of_shape(ctx):
    value = ctx.attr("value")
    dt = ctx.out_dtype(0)
    if dt not in ALL_DTYPES:
        raise ctx.unsupported(f"value of dtype {dt}")
    v = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    if v.size != 1:
        raise ctx.unsupported("a value attribute with more than one element")
    if ctx.has_input(0):
        want = [int(d) for d in np.asarray(ctx.require_const(0, "shape")).reshape(-1)]
        if list(ctx.out_shape(0)) != want:
            raise ctx.unsupported(f"shape {want} disagrees with the output shape {list(ctx.out_shape(0))}")
    c = _scalar_const(v[0], dt)
    return [ctx.compute(ctx.out_shape(0), lambda *i: c, "constant_of_shape")]


@register("Constant", pattern="injective")
def constant(ctx):
    attrs = ctx.node.attrs
    if "value" in attrs or "sparse_value" in attrs:
        value = attrs.get("value", attrs.get("sparse_value"))
    elif "value_float" in attrs:
        value = np.array(attrs["value_float"], np.float32)
    elif "value_floats" in attrs:
        value = np.array(attrs["value_floats"], np.float32)
    elif "value_int" in attrs:
        value = np.array(attrs["value_int"], np.int64)
    elif "value_ints" in attrs:
        value = np.array(attrs["value_ints"], np.int64)
    elif "value_string" in attrs or "value_strings" in attrs:
        raise ctx.unsupported("string constants")
    else:
        raise ctx.unsupported("a Constant without a value attribute")
    value = np.asarray(value)
    if value.dtype == object or value.dtype.kind in "SU":
        raise ctx.unsupported("string constants")
    return [constant_stage(ctx, value, "constant")]


@register("Range", pattern="injective")
def range_(ctx):
    dt = ctx.out_dtype(0)
    vals = [ctx.const(i) for i in range(3)]
    if any(v is None for v in vals):
        raise ctx.unsupported("start, limit and delta must be compile-time constants "
                              "(the output size depends on them)")
    start, limit, delta = (np.asarray(v).reshape(-1)[0] for v in vals)
    if delta == 0:
        raise ctx.unsupported("delta 0")
    n = max(int(np.ceil((float(limit) - float(start)) / float(delta))), 0)
    if (n,) != tuple(ctx.out_shape(0)):
        raise ctx.unsupported(f"range of {n} elements but the output shape is {list(ctx.out_shape(0))}")
    if not is_float(dt):
        s, d = int(start), int(delta)
        return [ctx.compute((n,), lambda i: const(s, dt) + cast(dt, i) * const(d, dt), "range")]
    # onnxruntime accumulates (value += delta); reproduce its rounding exactly
    out = np.empty(n, dtype=dt)
    acc = np.asarray(start, dtype=dt)
    d = np.asarray(delta, dtype=dt)
    for k in range(n):
        out[k] = acc
        acc = (acc + d).astype(dt)
    return [constant_stage(ctx, out, "range")]


# --- Cast --------------------------------------------------------------------------------

_F32_MAX_INT64 = float(2 ** 63)


def cast_value(x, src: str, dst: str):
    """``x`` (of dtype ``src``) converted to ``dst`` the way onnxruntime does it on x86."""
    if src == dst:
        return x
    if is_float(src) and not is_float(dst) and dst != "bool":
        if dst in ("int8", "int16", "uint8", "uint16"):
            return cast(dst, cast("int32", x))
        if dst == "uint32":
            return cast(dst, cast("int64", x))
        if dst == "uint64":
            if src == "float16":            # 2**63 is not a float16 number
                x, src = cast("float32", x), "float32"
            big = x >= const(_F32_MAX_INT64, src)
            hi = cast("int64", x - const(_F32_MAX_INT64, src)) + const(-2 ** 63, "int64")
            return cast(dst, select(big, hi, cast("int64", x)))
        return cast(dst, x)
    if dst == "float16" and src not in ("float16", "bool", "float32"):
        return cast(dst, cast("float32", x))
    return cast(dst, x)


def _cast(ctx, dst: str):
    x = ctx.input(0)
    src = ctx.in_dtype(0)
    for dt in (src, dst):
        if dt not in ALL_DTYPES:
            raise ctx.unsupported(f"cast {src} -> {dst}: no code generation for {dt}")
    materialize = dst == "bfloat16" and src != "bfloat16"
    return [ctx.compute(ctx.out_shape(0), lambda *i: cast_value(x[i], src, dst), "cast",
                        materialize=materialize)]


@register("Cast", pattern="elemwise")
def cast_op(ctx):
    return _cast(ctx, ctx.out_dtype(0))


@register("CastLike", pattern="elemwise")
def cast_like(ctx):
    return _cast(ctx, ctx.out_dtype(0))


# --- EyeLike -----------------------------------------------------------------------------

@register("EyeLike", pattern="injective")
def eye_like(ctx):
    shape = ctx.out_shape(0)
    dt = ctx.out_dtype(0)
    if len(shape) != 2:
        raise ctx.unsupported("input of rank other than 2")
    if dt not in ALL_DTYPES:
        raise ctx.unsupported(f"dtype {dt}")
    k = int(ctx.attr("k", 0))
    one, zero = _scalar_const(1, dt), _scalar_const(0, dt)
    return [ctx.compute(shape, lambda i, j: select(eq(j - i, k), one, zero), "eye_like")]
