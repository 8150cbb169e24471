"""Elementwise operators: arithmetic with numpy broadcasting, activations and math functions.

Conventions shared by every op here:

* float16 / bfloat16 are computed in float32 and rounded once at the end (what onnxruntime
  does for the ops it runs in half precision by casting), float32 / float64 natively;
* NaN propagates the way onnxruntime propagates it: clamps and Relu are written as
  ``select(x < lo, lo, x)`` (a NaN ``x`` fails the comparison and passes through), Max/Min
  return NaN when any operand is NaN, Sign(NaN) is NaN;
* integer division and remainder never trap: a zero divisor (and ``-1``, whose quotient of
  INT_MIN overflows) is replaced before the instruction and the result selected after, so a
  masked vector tail or a bad input gives a defined value instead of SIGFPE.
"""
from __future__ import annotations

import numpy as np

from mlc.loop.expr import (Expr, binary, call, cast, const, eq, is_float, is_int, is_signed,
                           maximum, minimum, select)
from mlc.registry import register

from .common import broadcast_load

_HALF = ("float16", "bfloat16")


def compute_dtype(dtype: str) -> str:
    """The dtype an elementwise op computes in for a tensor of ``dtype``."""
    return "float32" if dtype in _HALF else dtype


def up(e: Expr) -> Expr:
    """``e`` in its compute dtype (half precision widened to float32)."""
    return cast("float32", e) if e.dtype in _HALF else e


def fmax_nan(x: Expr, lo) -> Expr:
    """max(x, lo) for a float ``x`` that keeps a NaN ``x`` (as std::max(lo, x) does)."""
    return select(x < lo, lo, x)


def fmin_nan(x: Expr, hi) -> Expr:
    return select(x > hi, hi, x)


def max_nan(a: Expr, b: Expr) -> Expr:
    """max(a, b), NaN when either is NaN (floats); plain max for integers."""
    if not is_float(a.dtype):
        return maximum(a, b)
    return select((b > a) | call("isnan", b), b, a)


def min_nan(a: Expr, b: Expr) -> Expr:
    if not is_float(a.dtype):
        return minimum(a, b)
    return select((b < a) | call("isnan", b), b, a)


# --- broadcasting operand access ------------------------------------------------------------

def operand_loaders(ctx, count: int | None = None):
    """One function per input mapping output indices to that input's value under numpy
    (multidirectional) broadcasting.  (The frontend converts models older than opset 11, so
    the legacy ``broadcast``/``axis`` attributes of opset < 7 never reach a kernel.)"""
    n = len(ctx.inputs) if count is None else count
    ins = [ctx.input(i) for i in range(n)]
    return [lambda i, t=t: broadcast_load(t, i) for t in ins]


def _int_div(a: Expr, b: Expr) -> Expr:
    """C integer division (truncating) that never traps."""
    zero, one = const(0, a.dtype), const(1, a.dtype)
    if is_signed(a.dtype):
        m1 = const(-1, a.dtype)
        bad = eq(b, zero) | eq(b, m1)
        q = binary("div", a, select(bad, one, b))
        return select(eq(b, m1), call("neg", a), q)
    return binary("div", a, select(eq(b, zero), one, b))


def _int_rem(op: str, a: Expr, b: Expr) -> Expr:
    """Integer remainder ("mod": sign of the divisor, "fmod": sign of the dividend)."""
    zero, one = const(0, a.dtype), const(1, a.dtype)
    bad = eq(b, zero)
    if is_signed(a.dtype):
        bad = bad | eq(b, const(-1, a.dtype))     # x % -1 == 0; INT_MIN % -1 traps on x86
    return binary(op, a, select(bad, one, b))


# --- binary arithmetic ----------------------------------------------------------------------

def _arith(op: str, a: Expr, b: Expr) -> Expr:
    if op == "div" and not is_float(a.dtype):
        return _int_div(a, b)
    return binary(op, a, b)


def _binary(op_name: str, op: str):
    @register(op_name, pattern="broadcast")
    def build(ctx):
        dt = ctx.out_dtype(0)
        if dt == "bool":
            raise ctx.unsupported(f"{op_name} on bool tensors")
        la, lb = operand_loaders(ctx, 2)
        return [ctx.compute(ctx.out_shape(0), lambda *i: _arith(op, up(la(i)), up(lb(i))),
                            op_name.lower(), dtype=dt)]
    return build


for _name, _op in {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}.items():
    _binary(_name, _op)


@register("Pow", pattern="broadcast")
def pow_(ctx):
    dt = ctx.out_dtype(0)
    cdt = compute_dtype(dt)
    la, lb = operand_loaders(ctx, 2)
    e_const = ctx.const(1)
    e_val = None
    if e_const is not None and e_const.size == 1:
        e_val = float(np.asarray(e_const).reshape(-1)[0])

    if is_float(dt):
        def f(*i):
            x = up(la(i))
            if e_val is not None:
                if e_val == 1.0:
                    return x
                if e_val == 2.0:
                    return x * x
                if e_val == 3.0:
                    return x * x * x
                if e_val == -1.0:
                    return const(1.0, cdt) / x
                if e_val == 0.5:     # pow(-inf, 0.5) = +inf where sqrt gives NaN
                    return select(eq(x, const(-np.inf, cdt)), const(np.inf, cdt), call("sqrt", x))
            y = lb(i)
            y = cast(cdt, up(y))
            return binary("pow", x, y)
        return [ctx.compute(ctx.out_shape(0), f, "pow", dtype=dt)]

    if not is_int(dt):
        raise ctx.unsupported(f"Pow of {dt}")

    # integer base: onnxruntime computes static_cast<T>(std::pow(double(x), double(y))),
    # except x*x / x*x*x in integer arithmetic for a constant exponent 2 / 3
    def g(*i):
        x = la(i)
        if e_val == 2.0:
            return x * x
        if e_val == 3.0:
            return x * x * x
        if e_val == 1.0:
            return x
        y = lb(i)
        r = binary("pow", cast("float64", x), cast("float64", y))
        return cast(dt, r)
    return [ctx.compute(ctx.out_shape(0), g, "pow", dtype=dt)]


@register("Mod", pattern="broadcast")
def mod(ctx):
    dt = ctx.out_dtype(0)
    fmod = int(ctx.attr("fmod", 0))
    la, lb = operand_loaders(ctx, 2)
    if is_float(dt):
        if not fmod and ctx.opset < 28:
            raise ctx.unsupported("fmod=0 on float tensors (ONNX requires fmod=1 before opset 28)")

        def f(*i):
            a, b = up(la(i)), up(lb(i))
            r = binary("fmod", a, b)
            if fmod:
                return r
            zero = const(0.0, a.dtype)
            fix = binary("ne", r, zero) & binary("ne", r < zero, b < zero)
            return select(fix, r + b, r)
        return [ctx.compute(ctx.out_shape(0), f, "fmod" if fmod else "mod", dtype=dt)]
    if not is_int(dt):
        raise ctx.unsupported(f"Mod of {dt}")
    op = "fmod" if fmod else "mod"
    return [ctx.compute(ctx.out_shape(0), lambda *i: _int_rem(op, la(i), lb(i)), op, dtype=dt)]


@register("BitShift", pattern="broadcast")
def bit_shift(ctx):
    dt = ctx.out_dtype(0)
    if not is_int(dt):
        raise ctx.unsupported(f"BitShift of {dt}")
    direction = str(ctx.attr("direction", "")).upper()
    if direction not in ("LEFT", "RIGHT"):
        raise ctx.unsupported(f"direction={ctx.attr('direction')!r} (must be LEFT or RIGHT)")
    bits = np.dtype(dt).itemsize * 8
    la, lb = operand_loaders(ctx, 2)

    def f(*i):
        x, y = la(i), lb(i)
        big = y >= const(bits, dt)
        if is_signed(dt):
            big = big | (y < const(0, dt))
        if direction == "LEFT":
            return select(big, const(0, dt), binary("shl", x, select(big, const(0, dt), y)))
        if is_signed(dt):       # arithmetic shift: an oversized shift fills with the sign
            return binary("shr", x, select(big, const(bits - 1, dt), y))
        return select(big, const(0, dt), binary("shr", x, select(big, const(0, dt), y)))
    return [ctx.compute(ctx.out_shape(0), f, "shl" if direction == "LEFT" else "shr")]


# --- variadic ---------------------------------------------------------------------------------

def _variadic(op_name: str, combine, finish=None, float_only=False):
    @register(op_name, pattern="broadcast")
    def build(ctx):
        dt = ctx.out_dtype(0)
        if float_only and not is_float(dt):
            raise ctx.unsupported(f"{op_name} of {dt}")
        if dt == "bool":
            raise ctx.unsupported(f"{op_name} of bool")
        n = sum(1 for t in ctx.inputs if t is not None)
        if n == 0 or any(t is None for t in ctx.inputs[:n]):
            raise ctx.unsupported(f"{op_name} needs 1 or more (non-empty) inputs")
        loaders = operand_loaders(ctx, n)

        def f(*i):
            acc = up(loaders[0](i))
            for ld in loaders[1:]:
                acc = combine(acc, up(ld(i)))
            if finish is not None:
                acc = finish(acc, n)
            return acc
        return [ctx.compute(ctx.out_shape(0), f, op_name.lower(), dtype=dt)]
    return build


_variadic("Sum", lambda a, b: a + b, float_only=False)
_variadic("Mean", lambda a, b: a + b, lambda acc, n: acc / const(n, acc.dtype), float_only=True)
_variadic("Max", max_nan)
_variadic("Min", min_nan)


@register("PRelu", pattern="broadcast")
def prelu(ctx):
    dt = ctx.out_dtype(0)
    x, slope = ctx.input(0), ctx.input(1)
    shape = ctx.out_shape(0)

    def f(*i):
        v, s = up(x[i]), up(broadcast_load(slope, i))
        return select(v < const(0, v.dtype), v * s, v)
    return [ctx.compute(shape, f, "prelu", dtype=dt)]


# --- unary ----------------------------------------------------------------------------------

def _unary(op_name: str, fn, kinds: str = "float", pattern: str = "elemwise", out=None):
    """Register a unary op; ``fn(ctx, x, cdt)`` gets the widened input and compute dtype.

    ``kinds``: "float" (float tensors only), "signed" (floats and signed ints), "any"."""
    @register(op_name, pattern=pattern)
    def build(ctx):
        x = ctx.input(0)
        dt_in = ctx.in_dtype(0)
        if kinds == "float" and not is_float(dt_in) or \
                kinds == "signed" and not (is_float(dt_in) or is_signed(dt_in)) or dt_in == "bool":
            raise ctx.unsupported(f"{op_name} of {dt_in}")
        cdt = compute_dtype(dt_in)
        return [ctx.compute(ctx.out_shape(0), lambda *i: fn(ctx, up(x[i]), cdt), op_name.lower(),
                            dtype=ctx.out_dtype(0))]
    return build


def _c(value, dt):
    return const(value, dt)


def _relu(ctx, x, dt):
    if is_float(dt):
        return select(x < _c(0, dt), _c(0, dt), x)
    return maximum(x, _c(0, dt))


def _sign(ctx, x, dt):
    s = call("sign", x)
    return select(call("isnan", x), x, s) if is_float(dt) else s


def _hard_sigmoid(x, alpha, beta, dt):
    return fmax_nan(fmin_nan(x * _c(alpha, dt) + _c(beta, dt), _c(1, dt)), _c(0, dt))


def _attr(ctx, name, default):
    """A float attribute; defaults rounded to float32 as ONNX stores them (LeakyRelu's 0.01
    is 0.00999999977..., which shows in float64 results)."""
    return float(np.float32(ctx.attr(name, default)))


_unary("Relu", _relu, "signed")
_unary("Abs", lambda ctx, x, dt: call("abs", x), "any")
_unary("Neg", lambda ctx, x, dt: call("neg", x), "signed")
_unary("Sign", _sign, "any")
_unary("Sigmoid", lambda ctx, x, dt: call("sigmoid", x))
_unary("Tanh", lambda ctx, x, dt: call("tanh", x))
_unary("Exp", lambda ctx, x, dt: call("exp", x))
_unary("Log", lambda ctx, x, dt: call("log", x))
_unary("Sqrt", lambda ctx, x, dt: call("sqrt", x))
_unary("Erf", lambda ctx, x, dt: call("erf", x))
_unary("Reciprocal", lambda ctx, x, dt: _c(1.0, dt) / x)
_unary("Floor", lambda ctx, x, dt: call("floor", x))
_unary("Ceil", lambda ctx, x, dt: call("ceil", x))
_unary("Round", lambda ctx, x, dt: call("round", x))          # half to even
for _fn in ("Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh"):
    _unary(_fn, lambda ctx, x, dt, _f=_fn.lower(): call(_f, x))
_unary("LeakyRelu", lambda ctx, x, dt: select(x >= _c(0, dt), x, x * _c(_attr(ctx, "alpha", 0.01), dt)))
_unary("HardSigmoid", lambda ctx, x, dt: _hard_sigmoid(x, _attr(ctx, "alpha", 0.2), _attr(ctx, "beta", 0.5), dt))
_unary("HardSwish", lambda ctx, x, dt: x * _hard_sigmoid(x, 1.0 / 6.0, 0.5, dt))
_unary("Elu", lambda ctx, x, dt: select(x < _c(0, dt), _c(_attr(ctx, "alpha", 1.0), dt) * call("expm1", x), x))
_SELU_ALPHA, _SELU_GAMMA = 1.67326319217681884765625, 1.05070102214813232421875
_unary("Selu", lambda ctx, x, dt: _c(_attr(ctx, "gamma", _SELU_GAMMA), dt) * select(
    x > _c(0, dt), x, _c(_attr(ctx, "alpha", _SELU_ALPHA), dt) * call("expm1", x)))
_unary("Celu", lambda ctx, x, dt: select(
    x > _c(0, dt), x,
    _c(_attr(ctx, "alpha", 1.0), dt) * call("expm1", x / _c(_attr(ctx, "alpha", 1.0), dt))))
_unary("Softplus", lambda ctx, x, dt: call("softplus", x))
_unary("Softsign", lambda ctx, x, dt: x / (_c(1, dt) + call("abs", x)))
_unary("Mish", lambda ctx, x, dt: x * call("tanh", call("softplus", x)))
_unary("Swish", lambda ctx, x, dt: x * call("sigmoid", x * _c(_attr(ctx, "alpha", 1.0), dt)))
_unary("ThresholdedRelu", lambda ctx, x, dt: select(x > _c(_attr(ctx, "alpha", 1.0), dt), x, _c(0, dt)))
_unary("IsNaN", lambda ctx, x, dt: call("isnan", x))


@register("IsInf", pattern="elemwise")
def is_inf(ctx):
    x = ctx.input(0)
    dt = ctx.in_dtype(0)
    if not is_float(dt):
        raise ctx.unsupported(f"IsInf of {dt}")
    pos, neg = int(ctx.attr("detect_positive", 1)), int(ctx.attr("detect_negative", 1))

    def f(*i):
        v = up(x[i])
        if pos and neg:
            return call("isinf", v)
        if pos:
            return eq(v, const(np.inf, v.dtype))
        if neg:
            return eq(v, const(-np.inf, v.dtype))
        return const(False, "bool")
    return [ctx.compute(ctx.out_shape(0), f, "isinf", dtype="bool")]


@register("Shrink", pattern="elemwise")
def shrink(ctx):
    x = ctx.input(0)
    dt = ctx.out_dtype(0)
    bias, lambd = _attr(ctx, "bias", 0.0), _attr(ctx, "lambd", 0.5)
    if dt == "bool":
        raise ctx.unsupported("Shrink of bool")
    # onnxruntime: float(x) < -lambd ? T(x + bias) : float(x) > lambd ? T(x - bias) : 0,
    # in float for every non-double type
    cdt = "float64" if dt == "float64" else "float32"

    def f(*i):
        v = cast(cdt, x[i])
        lo = v < const(-lambd, cdt)
        hi = v > const(lambd, cdt)
        return select(lo, v + const(bias, cdt), select(hi, v - const(bias, cdt), const(0, cdt)))
    return [ctx.compute(ctx.out_shape(0), f, "shrink", dtype=dt)]


_BF16_MAX = 3.3895313892515355e38


def _type_limits(dtype: str) -> tuple:
    if dtype == "bfloat16":
        return -_BF16_MAX, _BF16_MAX
    if is_float(dtype):
        return float(np.finfo(dtype).min), float(np.finfo(dtype).max)
    return int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)


@register("Clip", pattern="broadcast")
def clip(ctx):
    """min(max(x, lo), hi); a missing bound is the type's lowest / max (as ONNX specifies:
    float Clip without max maps +inf to FLT_MAX); NaN passes through."""
    x = ctx.input(0)
    dt = ctx.out_dtype(0)
    cdt = compute_dtype(dt)
    if dt == "bool":
        raise ctx.unsupported("Clip of bool")
    tmin, tmax = _type_limits(dt)
    bounds = {1: None, 2: None}
    for k in (1, 2):
        if not ctx.has_input(k):
            continue
        v = ctx.const(k)
        if v is not None:
            if np.asarray(v).size != 1:
                raise ctx.unsupported(f"Clip bound input {k} must be a scalar")
            bounds[k] = const(np.asarray(v).reshape(-1)[0].item(), cdt)
        else:
            t = ctx.inputs[k]
            if len(t.shape) > 1 or (len(t.shape) == 1 and t.shape[0] != 1):
                raise ctx.unsupported(f"Clip bound input {k} must be a scalar")
            bounds[k] = up(t[(0,) * len(t.shape)] if t.shape else t[()])
    lo, hi = bounds[1], bounds[2]
    flt = is_float(cdt)
    if flt:
        lo = const(tmin, cdt) if lo is None else lo
        hi = const(tmax, cdt) if hi is None else hi

    def f(*i):
        v = up(x[i])
        if lo is not None:
            v = fmax_nan(v, lo) if flt else maximum(v, lo)
        if hi is not None:
            v = fmin_nan(v, hi) if flt else minimum(v, hi)
        return v
    return [ctx.compute(ctx.out_shape(0), f, "clip", dtype=dt)]
