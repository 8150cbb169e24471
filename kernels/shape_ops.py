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

from mlc.loop.expr import (ALL_DTYPES, BITS_DTYPES, INDEX, STORAGE_DTYPES, SUBBYTE_INT_BITS, binary, cast, const,
                           call, eq, is_float, is_signed, select)
from mlc.registry import register

try:    # the float8 / float4 coding QuantizeLinear uses (importing it registers Q/DQ too)
    from .quantize import decode_minifloat, encode_minifloat
except ImportError:
    decode_minifloat = encode_minifloat = None

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
    # the output size depends on start, limit and delta
    vals = [ctx.require_const(i, what) for i, what in enumerate(("start", "limit", "delta"))]
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
        if dt not in ALL_DTYPES and dt not in STORAGE_DTYPES:
            raise ctx.unsupported(f"cast {src} -> {dst}: no code generation for {dt}")
    if src in STORAGE_DTYPES or dst in STORAGE_DTYPES:
        return [_cast_storage(ctx, x, src, dst)]
    materialize = dst == "bfloat16" and src != "bfloat16"
    return [ctx.compute(ctx.out_shape(0), lambda *i: cast_value(x[i], src, dst), "cast",
                        materialize=materialize)]


def _cast_storage(ctx, x, src: str, dst: str):
    """A cast from or to a storage-only type (int4/uint4/int2/uint2, float8, float4).

    Such a value is read into a computable one first: a sub-byte integer loads sign- or
    zero-extended (any integer type holds it), a small float is decoded exactly to float32.
    To a sub-byte integer, the value converts to int32 (floats truncate toward zero) and
    keeps its low bits, sign-extended for int4/int2 — it wraps, as the ONNX reference
    (ml_dtypes) does.  To a small float, it goes through float32 and is rounded to nearest
    even; ``saturate`` (default 1) clamps overflow to the largest finite value, else it
    becomes inf or NaN as the format has them.  The float8 / float4 encoding is the one
    QuantizeLinear uses (mlc.kernels.quantize).
    """
    if (src in _MINIFLOATS or dst in _MINIFLOATS) and encode_minifloat is None:
        raise ctx.unsupported(f"cast {src} -> {dst}: small-float casts need mlc.kernels.quantize")
    saturate = bool(int(ctx.attr("saturate", 1)))

    round_mode = ctx.attr("round_mode", "up")
    if dst == E8M0 and round_mode not in ("up", "down", "nearest"):
        raise ctx.unsupported(f"round_mode {round_mode!r}")

    def f(*i):
        v, vdt = x[i], src
        if src == E8M0:
            v, vdt = _decode_e8m0(ctx, v), "float32"
        elif src in BITS_DTYPES:
            v, vdt = decode_minifloat(ctx, v, src), "float32"
        elif src in SUBBYTE_INT_BITS:
            v, vdt = cast("int32", v), "int32"
        if dst == E8M0:
            code = _encode_e8m0(ctx, cast_value(v, vdt, "float32"), saturate, round_mode)
            return cast(dst, cast("uint8", code))
        if dst in BITS_DTYPES:
            code = encode_minifloat(ctx, cast_value(v, vdt, "float32"), dst, saturate)
            return cast(dst, cast("uint8", code))
        if dst in SUBBYTE_INT_BITS:
            bits = SUBBYTE_INT_BITS[dst]
            low = binary("and", cast_value(v, vdt, "int32"), const((1 << bits) - 1, "int32"))
            if is_signed(dst):
                half = const(1 << (bits - 1), "int32")
                low = binary("xor", low, half) - half
            return cast(dst, low)
        return cast_value(v, vdt, dst)

    return ctx.compute(ctx.out_shape(0), f, "cast")


E8M0 = "float8_e8m0fnu"
_MINIFLOATS = tuple(dt for dt in BITS_DTYPES if dt != E8M0)


def _decode_e8m0(ctx, bits):
    """float8_e8m0fnu (a bare biased exponent): code k is 2^(k - 127), 255 is NaN."""
    table = np.array([2.0 ** (k - 127) for k in range(255)] + [np.nan], np.float32)
    return ctx.constant(table, "e8m0_table")[cast(INDEX, cast("uint8", bits))]


def _encode_e8m0(ctx, v, saturate: bool, round_mode: str):
    """The e8m0 code (int32) of float32 ``v``, as the ONNX reference derives it from the
    float32 bits: the biased exponent E, plus one when rounding up the fraction f
    ("up": f > 0; "nearest": f > 1/2, or f = 1/2 and E > 0; "down": never), except at
    E = 254 when saturating; the sign is dropped, inf and NaN give 255.  E and f come from
    exact float arithmetic: E by a binary search over a table of powers of two (0 below
    2^-126, where f is the subnormal's fraction)."""
    a = call("abs", v)
    powers = ctx.constant(np.array([0.0] + [2.0 ** (k - 127) for k in range(1, 255)] + [np.inf], np.float32),
                          "e8m0_pow")
    e = const(0, "int32")
    for step in (128, 64, 32, 16, 8, 4, 2, 1):
        cand = e + const(step, "int32")
        e = select(a >= powers[cast(INDEX, binary("min", cand, const(255, "int32")))], cand, e)
    inverse = ctx.constant(np.array([2.0 ** 126] + [2.0 ** (127 - k) for k in range(1, 256)], np.float32),
                           "e8m0_inv")
    normal = e > const(0, "int32")
    f = a * inverse[cast(INDEX, e)] - select(normal, const(1.0, "float32"), const(0.0, "float32"))
    half = const(0.5, "float32")
    if round_mode == "up":
        up = f > const(0.0, "float32")
    elif round_mode == "nearest":
        up = (f > half) | (eq(f, half) & normal)
    else:
        up = None
    if up is not None:
        if saturate:
            up = up & (e < const(254, "int32"))
        e = e + select(up, const(1, "int32"), const(0, "int32"))
    special = call("isnan", v) | call("isinf", v)
    return select(special, const(255, "int32"), e)


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
