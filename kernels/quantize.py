"""Linear quantization: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear.

    QuantizeLinear    y = saturate(round_half_even(x / y_scale) + y_zero_point)
    DequantizeLinear  y = (x - x_zero_point) * x_scale

Granularity follows the shape of the scale (and zero point, which has the same shape):
one element = per tensor; 1-D of length ``x.shape[axis]`` = per axis; same rank as ``x``
with ``block_size`` = blocked (opset 21), index ``i // block_size`` along ``axis``.
Scales and zero points may be run-time inputs (as in the ONNX node tests) or constants.

Types (opsets 10 to 28):

* integer outputs uint8, int8, uint16, int16 and the sub-byte uint4, int4, uint2, int2
  (one value per byte, as onnx / ml_dtypes hold them): the quotient is rounded half to
  even, the zero point added, the result clamped to the type's range — all in the float
  domain (NaN -> the low end, +-inf -> the ends), as onnxruntime's MLAS kernel does;
* float8 outputs (e4m3fn, e4m3fnuz, e5m2, e5m2fnuz) and float4 e2m1: round to nearest
  even into the format, computed with integer arithmetic from the exponent found by
  comparisons (see :func:`encode_minifloat`); ``saturate=1`` clamps overflow to the largest
  finite value, ``saturate=0`` gives inf (e5m2) or NaN (the others).  As the ONNX reference
  does, a float8 zero point is not added; a float4 one is;
* DequantizeLinear inputs: every integer type above plus int32 (no zero point), float8 and
  float4 (decoded exactly through a 256-entry table built at compile time);
* the quotient ``x / y_scale`` is a true division in float32 (float64 for int32 ``x``), as
  onnxruntime computes it; the ``precision`` attribute (opset 23) may ask for float16 (the
  float32 quotient of two float16 numbers rounded to float16 is exactly their float16
  quotient) or float32; bfloat16 precision and float8e8m0 scales raise unsupported.

DynamicQuantizeLinear (uint8): ``scale = (max(0, max x) - min(0, min x)) / 255`` (1.0 when
that range is empty, as onnxruntime does; the ONNX reference uses 1/255 there),
``zero_point = round(clamp(0 - min / scale, 0, 255))``, then QuantizeLinear.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlc.loop.expr import (INDEX, binary, call, cast, const, eq, maximum, minimum,
                           reduce_max, reduce_min, select)
from mlc.loop.tensor import reduce_axis
from mlc.registry import register, register_blocked

from .common import norm_axis

INT_RANGES = {"uint8": (0, 255), "int8": (-128, 127), "uint16": (0, 65535), "int16": (-32768, 32767),
              "uint4": (0, 15), "int4": (-8, 7), "uint2": (0, 3), "int2": (-2, 1)}
_FLOAT_IN = ("float32", "float16", "bfloat16")
_DQ_INT_IN = tuple(INT_RANGES) + ("int32",)


# --------------------------------------------------------------------------------------
# small floats (float8, float4) as bit patterns
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MiniFloat:
    """A sign-exponent-mantissa format of at most 8 bits."""

    ebits: int
    mbits: int
    bias: int
    max_code: int          # largest finite magnitude code
    nan_code: int | None   # code a NaN (or an unsaturated overflow without inf) becomes
    inf_code: int | None   # +inf magnitude code, if the format has one
    sign_bit: int
    fnuz: bool = False     # no negative zero (and NaN is the "negative zero" code)

    @property
    def emin(self) -> int:
        """Exponent of the smallest normal number."""
        return 1 - self.bias

    @property
    def emax(self) -> int:
        """Exponent of the largest finite number."""
        return (self.max_code >> self.mbits) - self.bias


MINIFLOATS = {
    "float8_e4m3fn": MiniFloat(4, 3, 7, 0x7E, 0x7F, None, 0x80),
    "float8_e4m3fnuz": MiniFloat(4, 3, 8, 0x7F, 0x80, None, 0x80, fnuz=True),
    "float8_e5m2": MiniFloat(5, 2, 15, 0x7B, 0x7F, 0x7C, 0x80),
    "float8_e5m2fnuz": MiniFloat(5, 2, 16, 0x7F, 0x80, None, 0x80, fnuz=True),
    "float4_e2m1fn": MiniFloat(2, 1, 1, 0x7, None, None, 0x8),
}


def decode_table(dtype: str) -> np.ndarray:
    """float32 value of every code of a small float type (index: the stored byte)."""
    n = 1 << (1 + MINIFLOATS[dtype].ebits + MINIFLOATS[dtype].mbits)
    return np.arange(n, dtype=np.uint8).view(np.dtype(dtype)).astype(np.float32)


def decode_minifloat(ctx, bits, dtype: str):
    """The float32 value of a loaded float8 / float4 element (exact: a table lookup)."""
    table = ctx.constant(decode_table(dtype), "f8_table")
    code = cast("int32", cast("uint8", bits))
    if dtype == "float4_e2m1fn":
        code = binary("and", code, const(0xF, "int32"))
    return table[cast(INDEX, code)]


def encode_minifloat(ctx, v, dtype: str, saturate: bool = True):
    """The code (int32, 0..255) of float32 ``v`` rounded to nearest even in a small float.

    With ``e = clamp(floor(log2 |v|), emin, emax)`` found by comparisons against powers of
    two, ``q = round_half_even(|v| * 2^(M - e))`` is the significand in units of the last
    place (``2^M <= q <= 2^(M+1)`` for normals, ``q <= 2^M`` below, where the code is the
    subnormal itself), and ``code = q + (e - emin) * 2^M``: a significand that rounds up to
    ``2^(M+1)`` carries into the exponent field by itself.  Codes beyond ``max_code``
    overflow.  Every step is exact in float32 (scaling by a power of two)."""
    f = MINIFLOATS[dtype]
    M = f.mbits
    a = call("abs", v)
    k = const(0, "int32")
    one, zero = const(1, "int32"), const(0, "int32")
    for j in range(1, f.emax - f.emin + 1):
        k = k + select(a >= const(2.0 ** (f.emin + j), "float32"), one, zero)
    scale_tab = ctx.constant(np.array([2.0 ** (M - f.emin - j) for j in range(f.emax - f.emin + 1)],
                                      np.float32), "f8_scale")
    scaled = minimum(a * scale_tab[cast(INDEX, k)], const(2.0 ** (M + 2), "float32"))
    q = cast("int32", call("round", scaled))
    code = q + k * const(1 << M, "int32")
    over = code > const(f.max_code, "int32")
    code = select(over, const(f.max_code, "int32"), code)
    # sign: v < 0, or v is -0.0 (1 / -0.0 = -inf)
    zero_f = const(0.0, "float32")
    neg = (v < zero_f) | (eq(v, zero_f) & (const(1.0, "float32") / v < zero_f))
    if f.fnuz:
        neg = neg & (code > zero)       # no negative zero
    sign = select(neg, const(f.sign_bit, "int32"), zero)
    code = code + sign
    if not saturate and f.inf_code is not None:
        code = select(over, const(f.inf_code, "int32") + sign, code)
    elif not saturate and f.nan_code is not None:
        code = select(over, const(f.nan_code, "int32") + (zero if f.fnuz else sign), code)
    if f.nan_code is not None:
        code = select(call("isnan", v), const(f.nan_code, "int32"), code)
    else:
        # no NaN in e2m1: ml_dtypes (the ONNX reference) turns NaN into the code 0x8 (-0)
        code = select(call("isnan", v), const(f.sign_bit, "int32"), code)
    return code


# --------------------------------------------------------------------------------------
# scale / zero point broadcasting
# --------------------------------------------------------------------------------------

def _axis_block(ctx, rank: int):
    axis = int(ctx.attr("axis", 1))
    block = int(ctx.attr("block_size", 0))
    if -rank <= axis < rank:
        axis = norm_axis(axis, rank)
    return axis, block          # an out-of-range axis only matters for per-axis parameters


def quant_param(ctx, i: int, xshape: tuple, axis: int, block: int, what: str):
    """``idx -> expression`` reading input ``i`` (a scale or zero point) for the element of
    ``x`` at ``idx``; None when the input is absent."""
    if not ctx.has_input(i):
        return None
    t = ctx.input(i)
    shp = ctx.in_shape(i)
    size = int(np.prod(shp, dtype=np.int64)) if shp else 1
    rank = len(xshape)
    if size == 1:
        zero = (0,) * len(shp)
        return lambda idx: t[zero]
    if not 0 <= axis < rank:
        raise ctx.unsupported(f"axis {ctx.attr('axis', 1)} is out of range for rank {rank}")
    if block > 0:
        if len(shp) != rank or any(shp[d] != xshape[d] for d in range(rank) if d != axis):
            raise ctx.unsupported(f"blocked {what} of shape {list(shp)} for input {list(xshape)} "
                                  f"(axis {axis})")
        if not (shp[axis] * block >= xshape[axis] > (shp[axis] - 1) * block):
            raise ctx.unsupported(f"block_size {block} does not fit {what} {list(shp)} and input "
                                  f"{list(xshape)} along axis {axis}")
        return lambda idx: t[tuple(idx[d] // block if d == axis else idx[d] for d in range(rank))]
    if len(shp) == 1 and rank > 0 and shp[0] == xshape[axis]:
        return lambda idx: t[idx[axis]]
    raise ctx.unsupported(f"{what} of shape {list(shp)} for input {list(xshape)} with axis {axis} "
                          "(per-tensor, per-axis or blocked expected)")


def _scalar_params(node, graph) -> bool:
    """Per-tensor scale and zero point: the op is then purely elementwise."""
    for name in node.inputs[1:3]:
        if name:
            shp = graph.tensor(name).shape
            if int(np.prod(shp, dtype=np.int64)) != 1:
                return False
    return True


def _blocked_elementwise(node, graph, b):
    """A per-tensor Q/DQ runs in the blocked channel layout like any elementwise op (a QDQ
    model then keeps its convolutions blocked); per-axis ones need plain NCHW."""
    x = graph.tensor(node.inputs[0])
    if len(x.shape) < 3 or not _scalar_params(node, graph):
        return None
    return node, {0}


# --------------------------------------------------------------------------------------
# QuantizeLinear
# --------------------------------------------------------------------------------------

_PRECISION = {1: "float32", 10: "float16", 16: "bfloat16", 11: "float64"}


def quantize_value(ctx, xv, xdt: str, sv, sdt: str, zv, out_dt: str, saturate: bool = True,
                   precision: str | None = None):
    """The quantized value (of ``out_dt``) of ``xv`` with scale ``sv`` and zero point ``zv``."""
    if xdt == "int32" and precision is None:
        q = cast("float64", xv) / cast("float64", sv)          # numpy: int32 / float32 -> float64
    elif precision == "float16":
        q = cast("float32", cast("float16", cast("float32", cast("float16", xv))
                                 / cast("float32", cast("float16", sv))))
    elif precision == "float64":
        q = cast("float64", xv) / cast("float64", sv)
    else:
        q = cast("float32", xv) / cast("float32", sv)
    if out_dt in INT_RANGES:
        lo, hi = INT_RANGES[out_dt]
        fdt = q.dtype
        r = call("round", q)
        if zv is not None:
            r = r + cast(fdt, zv)
        r = minimum(maximum(r, const(lo, fdt)), const(hi, fdt))
        return cast(out_dt, cast("int32", r))
    if out_dt in MINIFLOATS:
        q = cast("float32", q)
        if out_dt == "float4_e2m1fn" and zv is not None:
            q = q + decode_minifloat(ctx, zv, out_dt)
        return cast(out_dt, encode_minifloat(ctx, q, out_dt, saturate))
    raise ctx.unsupported(f"quantization to {out_dt}")


@register("QuantizeLinear", pattern="broadcast")
def quantize_linear(ctx):
    x = ctx.input(0)
    xs, xdt = ctx.in_shape(0), ctx.in_dtype(0)
    sdt = ctx.in_dtype(1)
    out_dt = ctx.out_dtype(0)
    if xdt not in _FLOAT_IN + ("int32",):
        raise ctx.unsupported(f"QuantizeLinear of {xdt}")
    if sdt not in _FLOAT_IN + ("int32",):
        raise ctx.unsupported(f"scale of type {sdt}")
    if out_dt not in INT_RANGES and out_dt not in MINIFLOATS:
        raise ctx.unsupported(f"quantization to {out_dt}")
    precision = ctx.attr("precision", 0)
    precision = _PRECISION.get(int(precision)) if precision else None
    if ctx.attr("precision", 0) and precision in (None, "bfloat16"):
        raise ctx.unsupported(f"precision={ctx.attr('precision')}")
    axis, block = _axis_block(ctx, len(xs))
    scale = quant_param(ctx, 1, xs, axis, block, "y_scale")
    zp = quant_param(ctx, 2, xs, axis, block, "y_zero_point")
    saturate = bool(int(ctx.attr("saturate", 1)))

    def f(*i):
        return quantize_value(ctx, x[i], xdt, scale(i), sdt, zp(i) if zp else None, out_dt,
                              saturate, precision)

    return [ctx.compute(ctx.out_shape(0), f, "quantize", dtype=out_dt)]


register_blocked("QuantizeLinear")(_blocked_elementwise)


# --------------------------------------------------------------------------------------
# DequantizeLinear
# --------------------------------------------------------------------------------------

def dequantize_value(ctx, xv, xdt: str, sv, zv, out_dt: str):
    if xdt in MINIFLOATS:
        dx = decode_minifloat(ctx, xv, xdt)
    else:
        dx = cast("float32", xv)
        if zv is not None:
            dx = dx - cast("float32", zv)
    return cast(out_dt, dx * cast("float32", sv))


@register("DequantizeLinear", pattern="broadcast")
def dequantize_linear(ctx):
    x = ctx.input(0)
    xs, xdt = ctx.in_shape(0), ctx.in_dtype(0)
    sdt, out_dt = ctx.in_dtype(1), ctx.out_dtype(0)
    if xdt not in _DQ_INT_IN and xdt not in MINIFLOATS:
        raise ctx.unsupported(f"DequantizeLinear of {xdt}")
    if sdt not in _FLOAT_IN or out_dt not in _FLOAT_IN:
        raise ctx.unsupported(f"scale of type {sdt} / output of type {out_dt}")
    axis, block = _axis_block(ctx, len(xs))
    scale = quant_param(ctx, 1, xs, axis, block, "x_scale")
    zp = quant_param(ctx, 2, xs, axis, block, "x_zero_point")
    if zp is not None and xdt in MINIFLOATS:
        zval = ctx.const(2)
        if xdt.startswith("float8") and zval is not None and np.any(zval.view(np.uint8) != 0):
            raise ctx.unsupported("a non-zero float8 zero point")
        zp = None           # float8 zero points are zero; a float4 one is ignored (ONNX reference)

    def f(*i):
        return dequantize_value(ctx, x[i], xdt, scale(i), zp(i) if zp else None, out_dt)

    return [ctx.compute(ctx.out_shape(0), f, "dequantize", dtype=out_dt)]


register_blocked("DequantizeLinear")(_blocked_elementwise)


# --------------------------------------------------------------------------------------
# DynamicQuantizeLinear
# --------------------------------------------------------------------------------------

@register("DynamicQuantizeLinear", pattern="opaque")
def dynamic_quantize_linear(ctx):
    x = ctx.input(0)
    xs = ctx.in_shape(0)
    if ctx.in_dtype(0) != "float32":
        raise ctx.unsupported(f"DynamicQuantizeLinear of {ctx.in_dtype(0)} (float32 only)")
    if any(int(d) == 0 for d in xs):
        raise ctx.unsupported(f"empty input {list(xs)}")
    f32 = "float32"
    zero = const(0.0, f32)

    def extreme(reducer, name):
        rs = [reduce_axis(d, f"r{k}") for k, d in enumerate(xs)]
        if not rs:
            return ctx.compute((), lambda: x[()], name)
        return ctx.compute((), lambda: reducer(x[tuple(rs)], rs), name)

    mn = extreme(reduce_min, "qmin")
    mx = extreme(reduce_max, "qmax")
    lo = lambda: minimum(mn[()], zero)
    hi = lambda: maximum(mx[()], zero)
    scale = ctx.compute(ctx.out_shape(1), lambda *i: select(eq(hi(), lo()), const(1.0, f32),
                                                            (hi() - lo()) / const(255.0, f32)),
                        "qscale")
    s0 = (0,) * len(ctx.out_shape(1))
    zpf = lambda: call("round", minimum(maximum(zero - lo() / scale[s0], zero), const(255.0, f32)))
    zp = ctx.compute(ctx.out_shape(2), lambda *i: cast("uint8", cast("int32", zpf())), "qzero_point")
    z0 = (0,) * len(ctx.out_shape(2))

    def fy(*i):
        r = call("round", x[i] / scale[s0]) + cast(f32, zp[z0])
        return cast("uint8", cast("int32", minimum(maximum(r, zero), const(255.0, f32))))

    y = ctx.compute(xs, fy, "qdynamic")
    return [y, scale, zp]


# --------------------------------------------------------------------------------------
# QDQ graphs -> integer operators
# --------------------------------------------------------------------------------------
