"""Elementwise operators: arithmetic with numpy broadcasting and activation functions."""
from __future__ import annotations

from mlc.loop.expr import (binary, call, cast, const, is_float, maximum, minimum, select)
from mlc.registry import register

from .common import broadcast_load, elementwise

# --- binary arithmetic (numpy broadcasting) ----------------------------------------------

_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}


def _binary(op_name: str, op: str):
    @register(op_name, pattern="broadcast")
    def build(ctx):
        a, b = ctx.input(0), ctx.input(1)
        shape = ctx.out_shape(0)
        return [ctx.compute(shape, lambda *i: binary(op, broadcast_load(a, i), broadcast_load(b, i)),
                            op_name.lower())]
    return build


for _name, _op in _BINARY.items():
    _binary(_name, _op)


@register("Pow", pattern="broadcast")
def pow_(ctx):
    a, b = ctx.input(0), ctx.input(1)
    dt = ctx.out_dtype(0)
    exp_const = ctx.const(1)

    def f(*i):
        x = broadcast_load(a, i)
        if exp_const is not None and exp_const.size == 1 and is_float(dt):
            e = float(exp_const.reshape(-1)[0])
            if e == 2.0:
                return x * x
            if e == 3.0:
                return x * x * x
            if e == 1.0:
                return x
            if e == 0.5:
                return call("sqrt", x)
            if e == -1.0:
                return const(1.0, dt) / x
        y = broadcast_load(b, i)
        if y.dtype != dt:
            y = cast(dt, y)
        return binary("pow", x, y)
    return [ctx.compute(ctx.out_shape(0), f, "pow")]


# --- unary activations -------------------------------------------------------------------

def _unary(op_name: str, fn, pattern: str = "elemwise"):
    @register(op_name, pattern=pattern)
    def build(ctx):
        x = ctx.input(0)
        dt = ctx.out_dtype(0)
        return [ctx.compute(ctx.out_shape(0), lambda *i: fn(ctx, x[i], dt), op_name.lower())]
    return build


_unary("Relu", lambda ctx, x, dt: maximum(x, const(0, dt)))
_unary("Sigmoid", lambda ctx, x, dt: call("sigmoid", x))
_unary("Tanh", lambda ctx, x, dt: call("tanh", x))
_unary("Exp", lambda ctx, x, dt: call("exp", x))
_unary("Log", lambda ctx, x, dt: call("log", x))
_unary("Sqrt", lambda ctx, x, dt: call("sqrt", x))
_unary("Erf", lambda ctx, x, dt: call("erf", x))
_unary("Neg", lambda ctx, x, dt: call("neg", x))
_unary("Abs", lambda ctx, x, dt: call("abs", x))
_unary("Reciprocal", lambda ctx, x, dt: const(1.0, dt) / x)
_unary("LeakyRelu", lambda ctx, x, dt: select(x >= const(0, dt), x, x * const(ctx.attr("alpha", 0.01), dt)))
_unary("HardSigmoid", lambda ctx, x, dt: maximum(minimum(
    x * const(ctx.attr("alpha", 0.2), dt) + const(ctx.attr("beta", 0.5), dt), const(1, dt)), const(0, dt)))
_unary("HardSwish", lambda ctx, x, dt: x * maximum(minimum(
    x * const(1 / 6, dt) + const(0.5, dt), const(1, dt)), const(0, dt)))


@register("Clip", pattern="elemwise")
def clip(ctx):
    x = ctx.input(0)
    dt = ctx.out_dtype(0)
    if ctx.opset < 11:
        lo, hi = ctx.attr("min"), ctx.attr("max")
    else:
        lo = ctx.const(1) if ctx.has_input(1) else None
        hi = ctx.const(2) if ctx.has_input(2) else None
        if ctx.has_input(1) and lo is None or ctx.has_input(2) and hi is None:
            # run-time bounds: read them from their (scalar) tensors
            lo_t = ctx.inputs[1] if ctx.has_input(1) else None
            hi_t = ctx.inputs[2] if ctx.has_input(2) else None

            def f(*i):
                v = x[i]
                if lo_t is not None:
                    v = maximum(v, lo_t[()])
                if hi_t is not None:
                    v = minimum(v, hi_t[()])
                return v
            return [ctx.compute(ctx.out_shape(0), f, "clip")]
        lo = None if lo is None else lo.reshape(-1)[0].item()
        hi = None if hi is None else hi.reshape(-1)[0].item()

    def g(*i):
        v = x[i]
        if lo is not None:
            v = maximum(v, const(lo, dt))
        if hi is not None:
            v = minimum(v, const(hi, dt))
        return v
    return [ctx.compute(ctx.out_shape(0), g, "clip")]
