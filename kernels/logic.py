"""Comparisons and boolean / bitwise operators (numpy broadcasting, bool results).

Float comparisons are IEEE: every ordered comparison with a NaN is false (so Equal(NaN,
NaN) is false); half-precision inputs are compared in float32 (exact).
"""
from __future__ import annotations

from mlc.loop.expr import binary, call, const, is_int
from mlc.registry import register

from .elementwise import operand_loaders, up

_COMPARE = {"Equal": "eq", "Less": "lt", "Greater": "gt", "LessOrEqual": "le", "GreaterOrEqual": "ge"}


def _compare(op_name: str, op: str):
    @register(op_name, pattern="broadcast")
    def build(ctx):
        dt = ctx.in_dtype(0)
        if dt not in ("bool",) and not dt.startswith(("float", "int", "uint", "bfloat")):
            raise ctx.unsupported(f"{op_name} of {dt} tensors")
        if ctx.in_dtype(1) != dt:
            raise ctx.unsupported(f"{op_name} of mixed types {dt} and {ctx.in_dtype(1)}")
        la, lb = operand_loaders(ctx, 2)
        return [ctx.compute(ctx.out_shape(0), lambda *i: binary(op, up(la(i)), up(lb(i))),
                            op_name.lower(), dtype="bool")]
    return build


for _name, _op in _COMPARE.items():
    _compare(_name, _op)


def _logical(op_name: str, op: str, kind: str):
    @register(op_name, pattern="broadcast")
    def build(ctx):
        dt = ctx.in_dtype(0)
        if kind == "bool" and dt != "bool" or kind == "int" and not is_int(dt):
            raise ctx.unsupported(f"{op_name} of {dt} tensors")
        la, lb = operand_loaders(ctx, 2)
        return [ctx.compute(ctx.out_shape(0), lambda *i: binary(op, la(i), lb(i)),
                            op_name.lower(), dtype=ctx.out_dtype(0))]
    return build


for _name, _op in {"And": "and", "Or": "or", "Xor": "xor"}.items():
    _logical(_name, _op, "bool")
for _name, _op in {"BitwiseAnd": "and", "BitwiseOr": "or", "BitwiseXor": "xor"}.items():
    _logical(_name, _op, "int")


def _not(op_name: str, kind: str):
    @register(op_name, pattern="elemwise")
    def build(ctx):
        x = ctx.input(0)
        dt = ctx.in_dtype(0)
        if kind == "bool" and dt != "bool" or kind == "int" and not is_int(dt):
            raise ctx.unsupported(f"{op_name} of {dt} tensors")
        if kind == "bool":
            return [ctx.compute(ctx.out_shape(0), lambda *i: call("not", x[i]), op_name.lower())]
        # x ^ all-ones (call("not") is the boolean not)
        return [ctx.compute(ctx.out_shape(0), lambda *i: binary("xor", x[i], const(-1, dt)),
                            op_name.lower())]
    return build


_not("Not", "bool")
_not("BitwiseNot", "int")
