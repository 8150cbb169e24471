"""Scalar expressions of the loop-level IR.

Operator computations (in ``kernels/``) are written with these: index variables, constants,
arithmetic, math calls, casts, selects and loads from n-d buffers.  Expressions are
immutable; ``Var`` and ``Buffer`` compare by identity, everything else structurally, so
two expressions are equal when they compute the same thing from the same variables.

Python operators build expressions (``a + b``, ``a * 2``, ``-a``, ``a < b``); equality
comparisons are functions (``eq(a, b)``, ``ne(a, b)``) because ``==`` stays structural.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

# --------------------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------------------

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
ALL_DTYPES = FLOAT_DTYPES + INT_DTYPES + ("bool",)
INDEX = "int64"
# Storage-only types, one value per byte as onnx / ml_dtypes hold them (not in ALL_DTYPES:
# only kernels that know them accept them).  Sub-byte integers keep the value in the low
# bits; code computes with them as 8-bit integers (loads sign/zero-extend, stores mask).
# Small floats are kept as bit patterns: a cast to or from an integer type reinterprets
# the bits, and mlc.kernels.quantize encodes / decodes them explicitly.
SUBBYTE_INT_BITS = {"int4": 4, "uint4": 4, "int2": 2, "uint2": 2}
BITS_DTYPES = ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float4_e2m1fn",
               "float8_e8m0fnu")
STORAGE_DTYPES = tuple(SUBBYTE_INT_BITS) + BITS_DTYPES


def is_float(dtype: str) -> bool:
    return dtype in FLOAT_DTYPES


def is_int(dtype: str) -> bool:
    return dtype in INT_DTYPES


def is_signed(dtype: str) -> bool:
    return dtype.startswith("int") or is_float(dtype)


def dtype_bits(dtype: str) -> int:
    if dtype == "bool":
        return 8
    if dtype == "bfloat16":
        return 16
    if dtype in STORAGE_DTYPES:
        return 8
    return np.dtype(dtype).itemsize * 8


def dtype_bytes(dtype: str) -> int:
    return dtype_bits(dtype) // 8


# --------------------------------------------------------------------------------------
# expression nodes
# --------------------------------------------------------------------------------------

_COMPARE_OPS = ("lt", "le", "gt", "ge", "eq", "ne")
_LOGIC_OPS = ("and", "or", "xor")
BINARY_OPS = ("add", "sub", "mul", "div", "floordiv", "mod", "max", "min", "pow",
              "shl", "shr", "atan2", "fmod") + _COMPARE_OPS + _LOGIC_OPS   # fmod: C fmod / srem
# Math functions a Call may name.  Codegen implements each for scalars and vectors.
CALL_FUNCS = ("exp", "log", "sqrt", "rsqrt", "erf", "tanh", "sigmoid", "abs", "neg",
              "floor", "ceil", "round", "trunc", "sin", "cos", "tan", "asin", "acos", "atan",
              "sinh", "cosh", "asinh", "acosh", "atanh", "not", "isnan", "isinf", "sign",
              "reciprocal", "softplus", "log1p", "expm1",
              # dot4_u8s8(a, b), int32 operands: sum over the 4 bytes t of
              # u8(a.byte[t]) * s8(b.byte[t]); ``acc + dot4_u8s8(a, b)`` is one vpdpbusd (VNNI)
              "dot4_u8s8")


class Expr:
    """Base class of expressions.  Subclasses are frozen dataclasses with a ``dtype``."""

    dtype: str
    __slots__ = ()

    # arithmetic ---------------------------------------------------------------------
    def __add__(self, other):
        return binary("add", self, other)

    def __radd__(self, other):
        return binary("add", other, self)

    def __sub__(self, other):
        return binary("sub", self, other)

    def __rsub__(self, other):
        return binary("sub", other, self)

    def __mul__(self, other):
        return binary("mul", self, other)

    def __rmul__(self, other):
        return binary("mul", other, self)

    def __truediv__(self, other):
        return binary("div", self, other)

    def __rtruediv__(self, other):
        return binary("div", other, self)

    def __floordiv__(self, other):
        return binary("floordiv", self, other)

    def __rfloordiv__(self, other):
        return binary("floordiv", other, self)

    def __mod__(self, other):
        return binary("mod", self, other)

    def __rmod__(self, other):
        return binary("mod", other, self)

    def __neg__(self):
        return call("neg", self)

    def __lt__(self, other):
        return binary("lt", self, other)

    def __le__(self, other):
        return binary("le", self, other)

    def __gt__(self, other):
        return binary("gt", self, other)

    def __ge__(self, other):
        return binary("ge", self, other)

    def __and__(self, other):
        return binary("and", self, other)

    def __or__(self, other):
        return binary("or", self, other)

    def __invert__(self):
        return call("not", self)

    def __bool__(self):
        raise TypeError("an mlc expression has no truth value; use select() or an If statement")

    def __str__(self) -> str:
        return format_expr(self)


@dataclass(frozen=True, eq=False, repr=False)
class Var(Expr):
    """A loop or index variable (int64 unless said otherwise).  Compared by identity."""

    name: str
    dtype: str = INDEX

    def __repr__(self) -> str:
        return f"Var({self.name})"

    __hash__ = object.__hash__


@dataclass(frozen=True, repr=False)
class Const(Expr):
    value: object
    dtype: str

    def __repr__(self) -> str:
        return f"Const({self.value!r}:{self.dtype})"


@dataclass(frozen=True, repr=False)
class Binary(Expr):
    op: str
    a: Expr
    b: Expr
    dtype: str


@dataclass(frozen=True, repr=False)
class Call(Expr):
    fn: str
    args: tuple
    dtype: str


@dataclass(frozen=True, repr=False)
class Cast(Expr):
    dtype: str
    value: Expr


@dataclass(frozen=True, repr=False)
class Select(Expr):
    cond: Expr
    a: Expr
    b: Expr
    dtype: str


@dataclass(frozen=True, eq=False, repr=False)
class Buffer:
    """An n-d row-major array in memory.  Compared by identity.

    ``scope`` is "global" for buffers the kernel receives (inputs, outputs, scratch in
    the arena) and "local" for small per-thread buffers (register accumulators).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    scope: str = "global"

    __hash__ = object.__hash__

    def __getitem__(self, index) -> "Load":
        if not isinstance(index, tuple):
            index = (index,)
        if len(index) != len(self.shape):
            raise IndexError(f"buffer {self.name} has rank {len(self.shape)}, indexed with {len(index)}")
        return Load(self, tuple(as_expr(i, INDEX) for i in index))

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * dtype_bytes(self.dtype)

    def strides(self) -> tuple[int, ...]:
        out, acc = [], 1
        for d in reversed(self.shape):
            out.append(acc)
            acc *= d
        return tuple(reversed(out))

    def __repr__(self) -> str:
        return f"Buffer({self.name}:{self.dtype}{list(self.shape)})"


def flat_offset(buffer: Buffer, indices) -> "Expr":
    """The element offset of ``buffer[indices]`` in its row-major storage, simplified."""
    off = const(0, INDEX)
    for i, st in zip(indices, buffer.strides()):
        off = binary("add", off, binary("mul", i, st))
    return simplify(off)


@dataclass(frozen=True, repr=False)
class Load(Expr):
    buffer: Buffer
    indices: tuple

    @property
    def dtype(self) -> str:  # type: ignore[override]
        return self.buffer.dtype


@dataclass(frozen=True, eq=False, repr=False)
class IterVar:
    """An axis of a computation: its variable, extent and kind ("spatial"/"reduce")."""

    var: Var
    extent: int
    kind: str = "spatial"

    @property
    def name(self) -> str:
        return self.var.name

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return f"IterVar({self.var.name}:{self.extent}:{self.kind})"

    # an axis reads as its variable in index arithmetic: A[i, k * 2 + 1]
    def __add__(self, o): return self.var + o
    def __radd__(self, o): return o + self.var
    def __sub__(self, o): return self.var - o
    def __rsub__(self, o): return o - self.var
    def __mul__(self, o): return self.var * o
    def __rmul__(self, o): return o * self.var
    def __floordiv__(self, o): return self.var // o
    def __mod__(self, o): return self.var % o


@dataclass(frozen=True, repr=False)
class Reduce(Expr):
    """A commutative reduction of ``value`` over ``axes`` with ``combiner``.

    Only valid as (part of) the value returned to :func:`mlc.loop.tensor.compute`.
    """

    combiner: str            # "sum", "max", "min", "prod"
    value: Expr
    axes: tuple              # tuple[IterVar]

    @property
    def dtype(self) -> str:  # type: ignore[override]
        return self.value.dtype


REDUCERS = ("sum", "max", "min", "prod")


# --------------------------------------------------------------------------------------
# builders (with light constant folding so that index arithmetic stays small)
# --------------------------------------------------------------------------------------

def const(value, dtype: str) -> Const:
    if dtype == "bool":
        return Const(bool(value), dtype)
    if is_float(dtype):
        return Const(float(value), dtype)
    return Const(int(value), dtype)


def as_expr(value, dtype: str | None = None) -> Expr:
    if isinstance(value, Expr):
        return value
    if isinstance(value, IterVar):
        return value.var
    if isinstance(value, (bool, np.bool_)):
        return Const(bool(value), "bool")
    if isinstance(value, (int, np.integer)):
        return const(int(value), dtype or INDEX)
    if isinstance(value, (float, np.floating)):
        return const(float(value), dtype if dtype and is_float(dtype) else "float32")
    raise TypeError(f"cannot make an expression from {value!r}")


def _unify(a, b) -> tuple[Expr, Expr]:
    if isinstance(a, Expr) and not isinstance(b, Expr):
        return a, as_expr(b, a.dtype)
    if isinstance(b, Expr) and not isinstance(a, Expr):
        return as_expr(a, b.dtype), b
    return as_expr(a), as_expr(b)


def _fold(op: str, x, y, dtype: str):
    if op == "add":
        return x + y
    if op == "sub":
        return x - y
    if op == "mul":
        return x * y
    if op == "floordiv" and y != 0:
        return x // y
    if op == "mod" and y != 0:
        return x % y
    if op == "max":
        return max(x, y)
    if op == "min":
        return min(x, y)
    if op in _COMPARE_OPS:
        return {"lt": x < y, "le": x <= y, "gt": x > y, "ge": x >= y, "eq": x == y, "ne": x != y}[op]
    if op == "and" and dtype == "bool":
        return bool(x) and bool(y)
    if op == "or" and dtype == "bool":
        return bool(x) or bool(y)
    return None


def binary(op: str, a, b) -> Expr:
    a, b = _unify(a, b)
    if a.dtype != b.dtype:
        raise TypeError(f"{op}: operand dtypes differ ({a.dtype} vs {b.dtype}) in {a} {op} {b}")
    dtype = "bool" if op in _COMPARE_OPS else a.dtype
    if isinstance(a, Const) and isinstance(b, Const) and not is_float(a.dtype):
        folded = _fold(op, a.value, b.value, a.dtype)
        if folded is not None:
            return const(folded, dtype)
    if not is_float(a.dtype):
        # identities that keep index expressions short; safe for integers only
        if op == "add":
            if _is_const(a, 0):
                return b
            if _is_const(b, 0):
                return a
        elif op == "sub" and _is_const(b, 0):
            return a
        elif op == "mul":
            if _is_const(a, 1):
                return b
            if _is_const(b, 1):
                return a
            if _is_const(a, 0) or _is_const(b, 0):
                return const(0, dtype)
        elif op == "floordiv" and _is_const(b, 1):
            return a
        elif op == "mod" and _is_const(b, 1):
            return const(0, dtype)
        elif op == "and" and dtype == "bool":
            if _is_const(a, True):
                return b
            if _is_const(b, True):
                return a
    return Binary(op, a, b, dtype)


def _is_const(e: Expr, v) -> bool:
    return isinstance(e, Const) and e.value == v


def call(fn: str, *args) -> Expr:
    if fn not in CALL_FUNCS:
        raise ValueError(f"unknown math function {fn!r}")
    args = tuple(as_expr(a) for a in args)
    if fn == "not" or fn in ("isnan", "isinf"):
        dtype = "bool"
    else:
        dtype = args[0].dtype
    if fn == "neg" and isinstance(args[0], Const) and not is_float(args[0].dtype):
        return const(-args[0].value, dtype)
    return Call(fn, args, dtype)


def cast(dtype: str, value) -> Expr:
    value = as_expr(value)
    if value.dtype == dtype:
        return value
    if isinstance(value, Const) and not is_float(dtype) and not is_float(value.dtype):
        return const(value.value, dtype)
    if isinstance(value, Const) and is_float(dtype) and value.dtype != "bool":
        return const(float(value.value), dtype)
    return Cast(dtype, value)


def select(cond, a, b) -> Expr:
    a, b = _unify(a, b)
    cond = as_expr(cond)
    if isinstance(cond, Const):
        return a if cond.value else b
    if a.dtype != b.dtype:
        raise TypeError(f"select: branch dtypes differ ({a.dtype} vs {b.dtype})")
    return Select(cond, a, b, a.dtype)


def eq(a, b) -> Expr:
    return binary("eq", a, b)


def ne(a, b) -> Expr:
    return binary("ne", a, b)


def maximum(a, b) -> Expr:
    return binary("max", a, b)


def minimum(a, b) -> Expr:
    return binary("min", a, b)


def logical_and(*conds) -> Expr:
    out: Expr = Const(True, "bool")
    for c in conds:
        out = binary("and", out, c)
    return out


def reduce(combiner: str, value: Expr, axes: Sequence[IterVar]) -> Reduce:
    if combiner not in REDUCERS:
        raise ValueError(f"unknown reducer {combiner!r}")
    axes = tuple(axes)
    for ax in axes:
        if ax.kind != "reduce":
            raise ValueError(f"axis {ax.name} of a reduction must be a reduce axis")
    return Reduce(combiner, as_expr(value), axes)


def reduce_sum(value, axes) -> Reduce:
    return reduce("sum", value, axes)


def reduce_max(value, axes) -> Reduce:
    return reduce("max", value, axes)


def reduce_min(value, axes) -> Reduce:
    return reduce("min", value, axes)


def reduce_prod(value, axes) -> Reduce:
    return reduce("prod", value, axes)


def identity_of(combiner: str, dtype: str) -> Const:
    """The neutral element of a reducer, in ``dtype``."""
    if combiner == "sum":
        return const(0, dtype)
    if combiner == "prod":
        return const(1, dtype)
    if is_float(dtype):
        return const(-np.inf if combiner == "max" else np.inf, dtype)
    if dtype == "bool":
        return Const(combiner == "min", "bool")
    info = np.iinfo(dtype)
    return const(info.min if combiner == "max" else info.max, dtype)


def combine(combiner: str, acc: Expr, value: Expr) -> Expr:
    return binary({"sum": "add", "prod": "mul", "max": "max", "min": "min"}[combiner], acc, value)


# --------------------------------------------------------------------------------------
# traversal
# --------------------------------------------------------------------------------------

def children(e: Expr) -> tuple:
    if isinstance(e, Binary):
        return (e.a, e.b)
    if isinstance(e, Call):
        return e.args
    if isinstance(e, Cast):
        return (e.value,)
    if isinstance(e, Select):
        return (e.cond, e.a, e.b)
    if isinstance(e, Load):
        return e.indices
    if isinstance(e, Reduce):
        return (e.value,)
    return ()


def rebuild(e: Expr, new_children: Sequence[Expr]) -> Expr:
    """``e`` with its children replaced (re-running the builders' constant folding)."""
    if isinstance(e, Binary):
        return binary(e.op, new_children[0], new_children[1])
    if isinstance(e, Call):
        return call(e.fn, *new_children)
    if isinstance(e, Cast):
        return cast(e.dtype, new_children[0])
    if isinstance(e, Select):
        return select(*new_children)
    if isinstance(e, Load):
        return Load(e.buffer, tuple(new_children))
    if isinstance(e, Reduce):
        return Reduce(e.combiner, new_children[0], e.axes)
    return e


def transform(e: Expr, fn) -> Expr:
    """Bottom-up rewrite: ``fn(node)`` returns a replacement or None to keep the node."""
    memo: dict[int, Expr] = {}

    def visit(x: Expr) -> Expr:
        key = id(x)
        if key in memo:
            return memo[key]
        kids = children(x)
        if kids:
            new_kids = [visit(k) for k in kids]
            if any(n is not o for n, o in zip(new_kids, kids)):
                x2 = rebuild(x, new_kids)
            else:
                x2 = x
        else:
            x2 = x
        out = fn(x2)
        result = x2 if out is None else out
        memo[key] = result
        return result

    return visit(e)


def substitute(e: Expr, mapping: dict) -> Expr:
    """Replace variables (keys: Var) by expressions."""
    if not mapping:
        return e
    return transform(e, lambda x: mapping.get(x) if isinstance(x, Var) else None)


def walk(e: Expr):
    """Yield every node of ``e`` (pre-order; shared sub-expressions once)."""
    seen: set[int] = set()
    stack = [e]
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        yield x
        stack.extend(children(x))


def free_vars(e: Expr) -> set:
    return {x for x in walk(e) if isinstance(x, Var)}


def loads_of(e: Expr, buffer: Buffer | None = None) -> list[Load]:
    return [x for x in walk(e) if isinstance(x, Load) and (buffer is None or x.buffer is buffer)]


def depends_on(e: Expr, var: Var) -> bool:
    return any(x is var for x in walk(e))


# --------------------------------------------------------------------------------------
# affine analysis: e == sum(coeff * term) + constant
# --------------------------------------------------------------------------------------

def linear_form(e: Expr) -> tuple[dict, int] | None:
    """Decompose an integer expression into ({term: coeff}, constant).

    Terms are Vars or other opaque integer sub-expressions; returns None for a float.
    """
    if is_float(e.dtype) or e.dtype == "bool":
        return None
    if isinstance(e, Const):
        return {}, int(e.value)
    if isinstance(e, Binary):
        if e.op in ("add", "sub"):
            la, lb = linear_form(e.a), linear_form(e.b)
            if la is None or lb is None:
                return None
            sign = 1 if e.op == "add" else -1
            terms = dict(la[0])
            for t, c in lb[0].items():
                terms[t] = terms.get(t, 0) + sign * c
            return {t: c for t, c in terms.items() if c != 0}, la[1] + sign * lb[1]
        if e.op == "mul":
            la, lb = linear_form(e.a), linear_form(e.b)
            if la is not None and lb is not None:
                if not la[0]:
                    k = la[1]
                    return {t: c * k for t, c in lb[0].items() if c * k != 0}, lb[1] * k
                if not lb[0]:
                    k = lb[1]
                    return {t: c * k for t, c in la[0].items() if c * k != 0}, la[1] * k
    if isinstance(e, Call) and e.fn == "neg":
        la = linear_form(e.args[0])
        if la is not None:
            return {t: -c for t, c in la[0].items()}, -la[1]
    return {e: 1}, 0


def from_linear(terms: dict, constant: int, dtype: str = INDEX) -> Expr:
    out: Expr = const(constant, dtype)
    # keep a stable order: Vars by name, then other terms by their printed form
    for t, c in sorted(terms.items(), key=lambda kv: (not isinstance(kv[0], Var), str(kv[0]))):
        out = binary("add", binary("mul", t, const(c, dtype)), out) if c != 1 else binary("add", t, out)
    return out


def int_range(e: Expr, ranges: dict) -> tuple[int, int] | None:
    """Inclusive integer bounds of ``e`` when each Var in ``ranges`` spans (lo, hi).

    Returns None when some variable is unbounded or the expression is not analysable.
    """
    if isinstance(e, Const):
        return int(e.value), int(e.value)
    if isinstance(e, Var):
        return ranges.get(e)
    if isinstance(e, Binary):
        ra = int_range(e.a, ranges)
        rb = int_range(e.b, ranges)
        if ra is None or rb is None:
            return None
        if e.op == "add":
            return ra[0] + rb[0], ra[1] + rb[1]
        if e.op == "sub":
            return ra[0] - rb[1], ra[1] - rb[0]
        if e.op == "mul":
            prods = [x * y for x in ra for y in rb]
            return min(prods), max(prods)
        if e.op == "floordiv" and rb[0] == rb[1] and rb[0] > 0:
            return ra[0] // rb[0], ra[1] // rb[0]
        if e.op == "mod" and rb[0] == rb[1] and rb[0] > 0:
            if ra[0] >= 0 and ra[1] < rb[0]:
                return ra
            return 0, rb[0] - 1
        if e.op == "max":
            return max(ra[0], rb[0]), max(ra[1], rb[1])
        if e.op == "min":
            return min(ra[0], rb[0]), min(ra[1], rb[1])
    if isinstance(e, Select):
        ra, rb = int_range(e.a, ranges), int_range(e.b, ranges)
        if ra is None or rb is None:
            return None
        return min(ra[0], rb[0]), max(ra[1], rb[1])
    return None


def simplify(e: Expr, ranges: dict | None = None) -> Expr:
    """Simplify integer index arithmetic.

    Normalises sums of products into a linear form and removes floordiv/mod that split
    variables undo: with ``0 <= i < f``, ``(o * f + i) // f -> o`` and ``% f -> i``.
    ``ranges`` maps Vars to inclusive (lo, hi) bounds.
    """
    ranges = ranges or {}

    def rule(x: Expr):
        if isinstance(x, Binary) and x.op in ("floordiv", "mod") and isinstance(x.b, Const) \
                and not is_float(x.dtype) and x.b.value > 0:
            f = int(x.b.value)
            lf = linear_form(x.a)
            if lf is None:
                return None
            terms, c0 = lf
            whole = {t: c // f for t, c in terms.items() if c % f == 0}
            rest = {t: c for t, c in terms.items() if c % f != 0}
            rest_expr = from_linear(rest, c0 % f, x.dtype)
            r = int_range(rest_expr, ranges)
            if r is not None and 0 <= r[0] and r[1] < f:
                if x.op == "floordiv":
                    return from_linear(whole, c0 // f, x.dtype)
                return rest_expr
            return None
        if isinstance(x, Binary) and x.op in ("lt", "le", "gt", "ge") and not is_float(x.a.dtype):
            ra, rb = int_range(x.a, ranges), int_range(x.b, ranges)
            if ra is not None and rb is not None:
                if x.op == "lt" and ra[1] < rb[0] or x.op == "le" and ra[1] <= rb[0] \
                        or x.op == "gt" and ra[0] > rb[1] or x.op == "ge" and ra[0] >= rb[1]:
                    return Const(True, "bool")
                if x.op == "lt" and ra[0] >= rb[1] or x.op == "le" and ra[0] > rb[1] \
                        or x.op == "gt" and ra[1] <= rb[0] or x.op == "ge" and ra[1] < rb[0]:
                    return Const(False, "bool")
            return None
        if isinstance(x, Binary) and x.op in ("min", "max") and not is_float(x.dtype):
            ra, rb = int_range(x.a, ranges), int_range(x.b, ranges)
            if ra is not None and rb is not None:
                if x.op == "min":
                    if ra[1] <= rb[0]:
                        return x.a
                    if rb[1] <= ra[0]:
                        return x.b
                else:
                    if ra[0] >= rb[1]:
                        return x.a
                    if rb[0] >= ra[1]:
                        return x.b
            return None
        if isinstance(x, Select) and isinstance(x.cond, Const):
            return x.a if x.cond.value else x.b
        if isinstance(x, Binary) and x.op in ("add", "sub", "mul") and not is_float(x.dtype) \
                and x.dtype != "bool":
            lf = linear_form(x)
            if lf is not None:
                return _from_linear_merged(lf, x.dtype)
        return None

    return transform(e, rule)


def _from_linear_merged(lf: tuple, dtype: str) -> Expr:
    """from_linear, first folding ``k*c*(x // c) + k*(x % c)`` back into ``k*x``.

    Fusing loops and splitting them again leaves exactly these pairs in index arithmetic.
    """
    terms, c0 = dict(lf[0]), lf[1]
    changed = True
    while changed:
        changed = False
        for t, k in list(terms.items()):
            if isinstance(t, Binary) and t.op == "mod" and isinstance(t.b, Const):
                c = int(t.b.value)
                partner = Binary("floordiv", t.a, t.b, t.dtype)
                if terms.get(partner) == k * c:
                    del terms[t], terms[partner]
                    inner = linear_form(t.a)
                    if inner is None:
                        terms[t.a] = terms.get(t.a, 0) + k
                    else:
                        for it, ik in inner[0].items():
                            terms[it] = terms.get(it, 0) + ik * k
                        c0 += inner[1] * k
                    terms = {a: b for a, b in terms.items() if b != 0}
                    changed = True
                    break
    return from_linear(terms, c0, dtype)


def coefficient(e: Expr, var: Var) -> int | None:
    """If ``e`` is ``c * var + (terms free of var)``, return c; otherwise None."""
    lf = linear_form(e)
    if lf is None:
        return None
    terms, _ = lf
    c = 0
    for t, k in terms.items():
        if t is var:
            c += k
        elif depends_on(t, var):
            return None
    return c


# --------------------------------------------------------------------------------------
# printing
# --------------------------------------------------------------------------------------

_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//", "mod": "%",
            "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!=",
            "and": "&&", "or": "||"}


def format_expr(e: Expr) -> str:
    if isinstance(e, Var):
        return e.name
    if isinstance(e, Const):
        if e.dtype == INDEX or e.dtype == "bool":
            return str(e.value)
        return f"{e.value!r}:{e.dtype}"
    if isinstance(e, Binary):
        if e.op in _SYMBOLS:
            return f"({format_expr(e.a)} {_SYMBOLS[e.op]} {format_expr(e.b)})"
        return f"{e.op}({format_expr(e.a)}, {format_expr(e.b)})"
    if isinstance(e, Call):
        return f"{e.fn}({', '.join(format_expr(a) for a in e.args)})"
    if isinstance(e, Cast):
        return f"{e.dtype}({format_expr(e.value)})"
    if isinstance(e, Select):
        return f"select({format_expr(e.cond)}, {format_expr(e.a)}, {format_expr(e.b)})"
    if isinstance(e, Load):
        return f"{e.buffer.name}[{', '.join(format_expr(i) for i in e.indices)}]"
    if isinstance(e, Reduce):
        axes = ", ".join(f"{a.name}<{a.extent}" for a in e.axes)
        return f"{e.combiner}({format_expr(e.value)} over {axes})"
    return repr(e)
